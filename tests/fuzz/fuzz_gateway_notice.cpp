// Anyone on the LAN can send to 224.0.0.1:5350 and the SSDP group.
#include "agent/codecs/gateway_notice.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(gateway_notice) {
  const std::span<const std::uint8_t> datagram(data, size);
  for (const std::uint16_t port : {natkeeper::kAnnouncePort, natkeeper::kSsdpNotifyPort}) {
    const auto notice = natkeeper::parse_gateway_notice(datagram, port);
    if (!notice) continue;
    if (notice->kind == natkeeper::GatewayNotice::Kind::natpmp_address && !notice->external_address) __builtin_trap();
    if (notice->kind == natkeeper::GatewayNotice::Kind::ssdp_alive && notice->location.empty()) __builtin_trap();
  }
  return 0;
}
