#include "mappers/method.hpp"

namespace natkeeper {

std::string_view to_string(Method method) {
  switch (method) {
    case Method::pcp: return "pcp";
    case Method::natpmp: return "natpmp";
    case Method::upnp: return "upnp";
  }
  return "upnp";
}

}  // namespace natkeeper
