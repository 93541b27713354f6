#include "agent/codecs/gateway_notice.hpp"

#include <string_view>

#include "mappers/natpmp/natpmp_codec.hpp"
#include "mappers/pcp/pcp_codec.hpp"
#include "mappers/upnp/ssdp.hpp"

namespace natkeeper {
namespace {

std::optional<GatewayNotice> parse_announcement(std::span<const std::uint8_t> datagram) {
  if (const auto natpmp = natpmp::decode_reply(datagram, {natpmp::Opcode::public_address, 0, false});
      natpmp && natpmp->result_code == 0) {
    GatewayNotice notice{GatewayNotice::Kind::natpmp_address, natpmp->epoch, natpmp->external_address, {}, {}};
    return notice;
  }
  const auto pcp = pcp::decode_response(datagram);
  if (pcp && pcp->version == pcp::kProtocolVersion && pcp->opcode == pcp::Opcode::announce &&
      pcp->result_code == pcp::ResultCode::success) {
    GatewayNotice notice{GatewayNotice::Kind::pcp_announce, pcp->epoch, {}, {}, {}};
    return notice;
  }
  return std::nullopt;
}

std::optional<GatewayNotice> parse_ssdp(std::span<const std::uint8_t> datagram) {
  const std::string_view text(reinterpret_cast<const char*>(datagram.data()), datagram.size());
  const auto notify = upnp::parse_notify(text);
  // The root device's and the IGD's own notices; the gateway sends one per
  // device and service, and one kind is enough.
  if (!notify || (notify->notification_type != "upnp:rootdevice" &&
                  !upnp::is_igd_search_target(notify->notification_type)))
    return std::nullopt;
  if (notify->kind == upnp::Notify::Kind::byebye) {
    GatewayNotice notice{GatewayNotice::Kind::ssdp_byebye, 0, {}, {}, notify->boot_id};
    return notice;
  }
  GatewayNotice notice{GatewayNotice::Kind::ssdp_alive, 0, {}, notify->location, notify->boot_id};
  return notice;
}

}  // namespace

std::optional<GatewayNotice> parse_gateway_notice(std::span<const std::uint8_t> datagram, std::uint16_t port) {
  if (port == kAnnouncePort) return parse_announcement(datagram);
  if (port == kSsdpNotifyPort) return parse_ssdp(datagram);
  return std::nullopt;
}

}  // namespace natkeeper
