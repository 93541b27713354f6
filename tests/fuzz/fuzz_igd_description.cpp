// IGD root descriptions come from any device that answers SSDP in the
// gateway's name.
#include <string>
#include <string_view>

#include "mappers/upnp/http_url.hpp"
#include "mappers/upnp/igd_description.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(igd_description) {
  using namespace natkeeper::upnp;
  const std::string location = "http://10.77.0.1:5000/rootDesc.xml";
  const auto description = parse_root_description({reinterpret_cast<const char*>(data), size});
  if (description.services.size() > kMaxDescribedServices) __builtin_trap();
  const auto services = connection_services(description, location);
  if (services.size() > kMaxConnectionServices) __builtin_trap();
  for (const auto& service : services) {
    const auto control = parse_http_url(service.control_url);
    if (!control || control->host != "10.77.0.1") __builtin_trap();
    if (!is_wan_connection_service(service.service_type) || (service.version != 1 && service.version != 2))
      __builtin_trap();
  }
  return 0;
}
