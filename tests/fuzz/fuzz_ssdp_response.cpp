// SSDP answers and NOTIFYs come from any device on the LAN.
#include <string_view>

#include "mappers/upnp/http_url.hpp"
#include "mappers/upnp/ssdp.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(ssdp_response) {
  const std::string_view datagram(reinterpret_cast<const char*>(data), size);
  if (const auto response = natkeeper::upnp::parse_search_response(datagram)) {
    if (response->location.empty() || response->search_target.empty()) __builtin_trap();
    (void)natkeeper::upnp::parse_http_url(response->location);
  }
  if (const auto notify = natkeeper::upnp::parse_notify(datagram)) {
    if (notify->notification_type.empty()) __builtin_trap();
    if (notify->kind != natkeeper::upnp::Notify::Kind::byebye && notify->location.empty()) __builtin_trap();
  }
  return 0;
}
