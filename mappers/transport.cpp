#include "mappers/transport.hpp"

namespace natkeeper {

std::string_view to_string(Transport proto) {
  return proto == Transport::tcp ? "tcp" : "udp";
}

std::string_view to_upper_string(Transport proto) {
  return proto == Transport::tcp ? "TCP" : "UDP";
}

std::optional<Transport> parse_transport(std::string_view text) {
  if (text == "tcp") return Transport::tcp;
  if (text == "udp") return Transport::udp;
  return std::nullopt;
}

}  // namespace natkeeper
