#include "agent/codecs/gateway_notice.hpp"

#include <string_view>

#include "mappers/natpmp/natpmp_codec.hpp"
#include "mappers/pcp/pcp_codec.hpp"
#include "mappers/upnp/ssdp.hpp"

namespace natkeeper {
namespace {

GatewayNoticeResult parse_announcement(std::span<const std::uint8_t> datagram) {
  if (const auto natpmp = natpmp::decode_reply(datagram, {natpmp::Opcode::public_address, 0, false})) {
    if (natpmp->result_code != 0) return GatewayNoticeError::error_result;
    return GatewayNotice{GatewayNotice::Kind::natpmp_address, natpmp->epoch, natpmp->external_address, {}, {}};
  }
  const auto pcp = pcp::decode_response(datagram);
  if (!pcp || pcp->version != pcp::kProtocolVersion || pcp->opcode != pcp::Opcode::announce)
    return GatewayNoticeError::not_an_announcement;
  if (pcp->result_code != pcp::ResultCode::success) return GatewayNoticeError::error_result;
  return GatewayNotice{GatewayNotice::Kind::pcp_announce, pcp->epoch, {}, {}, {}};
}

GatewayNoticeResult parse_ssdp(std::span<const std::uint8_t> datagram) {
  const std::string_view text(reinterpret_cast<const char*>(datagram.data()), datagram.size());
  const auto notify = upnp::parse_notify(text);
  if (!notify) return GatewayNoticeError::not_a_notify;
  // The root device's and the IGD's own notices; the gateway sends one per
  // device and service, and one kind is enough.
  if (notify->notification_type != "upnp:rootdevice" && !upnp::is_igd_search_target(notify->notification_type))
    return GatewayNoticeError::not_a_gateway;
  if (notify->kind == upnp::Notify::Kind::byebye)
    return GatewayNotice{GatewayNotice::Kind::ssdp_byebye, 0, {}, {}, notify->boot_id};
  return GatewayNotice{GatewayNotice::Kind::ssdp_alive, 0, {}, notify->location, notify->boot_id};
}

}  // namespace

GatewayNoticeResult parse_gateway_notice(std::span<const std::uint8_t> datagram, std::uint16_t port) {
  if (port == kAnnouncePort) return parse_announcement(datagram);
  if (port == kSsdpNotifyPort) return parse_ssdp(datagram);
  return GatewayNoticeError::unknown_port;
}

}  // namespace natkeeper
