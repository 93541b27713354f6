#include <catch2/catch.hpp>

#include <string_view>
#include <vector>

#include "agent/codecs/gateway_notice.hpp"
#include "agent/service/notice_policy.hpp"
#include "natpmp_replies.hpp"
#include "result_printer.hpp"

using namespace natkeeper;
using namespace natkeeper::policy;
using namespace std::chrono_literals;
using Action = NoticeVerdict::Action;

namespace {

const auto kStart = std::chrono::steady_clock::time_point(1000h);

GatewayNotice natpmp_address(std::uint32_t epoch, const char* address) {
  return {GatewayNotice::Kind::natpmp_address, epoch, boost::asio::ip::make_address_v4(address), {}, {}};
}
GatewayNotice pcp_announce(std::uint32_t epoch) { return {GatewayNotice::Kind::pcp_announce, epoch, {}, {}, {}}; }
GatewayNotice ssdp_alive(std::optional<std::uint32_t> boot_id) {
  return {GatewayNotice::Kind::ssdp_alive, 0, {}, "http://10.77.0.1:5000/rootDesc.xml", boot_id};
}

}  // namespace

TEST_CASE("NAT-PMP/PCP: the first notice, a lost epoch and a new address remap; a steady epoch is ignored",
          "[notice_policy]") {
  NoticeHistory history;
  NoticeContext context{Method::pcp, boost::asio::ip::make_address("203.0.113.1"), false, {}};
  auto verdict = judge_notice(pcp_announce(100), history, context, kStart, 0.5);
  CHECK(verdict.action == Action::remap);
  CHECK(verdict.delay == 250ms);  // spread over [0, 0.5 s)
  CHECK(judge_notice(pcp_announce(110), history, context, kStart + 10s, 0.5).action == Action::ignore);
  CHECK(judge_notice(pcp_announce(3), history, context, kStart + 11s, 0.0).action == Action::remap);

  CHECK(judge_notice(natpmp_address(50, "203.0.113.1"), history, context, kStart, 0).action == Action::remap);
  CHECK(judge_notice(natpmp_address(60, "203.0.113.1"), history, context, kStart + 10s, 0).action == Action::ignore);
  verdict = judge_notice(natpmp_address(70, "198.51.100.7"), history, context, kStart + 20s, 0);
  CHECK(verdict.action == Action::remap);
  CHECK(verdict.why == "the gateway announced a new external address, 198.51.100.7");
}

TEST_CASE("over UPnP a gateway's restart or new address finds the gateway again", "[notice_policy]") {
  NoticeHistory history;
  NoticeContext context{Method::upnp, boost::asio::ip::make_address("203.0.113.1"), false, {}};
  CHECK(judge_notice(pcp_announce(100), history, context, kStart, 0).action == Action::reconnect);
  CHECK(judge_notice(natpmp_address(5, "198.51.100.7"), history, context, kStart, 0).action == Action::reconnect);
}

TEST_CASE("SSDP: a new boot id reconnects; alive notices are spot-checked at most every 10 s", "[notice_policy]") {
  NoticeHistory history;
  NoticeContext context{Method::upnp, {}, false, kStart - 1h};
  CHECK(judge_notice(ssdp_alive(7), history, context, kStart, 0).action == Action::spot_check);
  CHECK(history.boot_id == 7u);
  context.spot_check_pending = true;
  CHECK(judge_notice(ssdp_alive(7), history, context, kStart, 0).action == Action::ignore);
  context = {Method::upnp, {}, false, kStart};
  CHECK(judge_notice(ssdp_alive(7), history, context, kStart + 9s, 0).action == Action::ignore);
  CHECK(judge_notice(ssdp_alive(std::nullopt), history, context, kStart + 10s, 0).action == Action::spot_check);
  auto verdict = judge_notice(ssdp_alive(8), history, context, kStart + 11s, 0);
  CHECK(verdict.action == Action::reconnect);
  CHECK(history.boot_id == 8u);
  // Not the protocol in use: nothing to check.
  context.method = Method::natpmp;
  CHECK(judge_notice(ssdp_alive(9), history, context, kStart + 60s, 0).action == Action::ignore);
  CHECK(judge_notice({GatewayNotice::Kind::ssdp_byebye, 0, {}, {}, {}}, history, context, kStart, 0).why.empty());
}

TEST_CASE("gateway notices: what each kind of datagram decodes to, or why not", "[notice_policy]") {
  using natpmp_replies::address_reply;
  const auto ssdp = [](std::string_view text) {
    return parse_gateway_notice({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()}, kSsdpNotifyPort);
  };
  // A PCP ANNOUNCE response (RFC 6887 §7.2, §14.1) with the given result code.
  const auto pcp_announce_response = [](std::uint8_t result_code) {
    std::vector<std::uint8_t> bytes(24, 0);
    bytes[0] = 2;
    bytes[1] = 0x80;  // R bit, opcode ANNOUNCE
    bytes[3] = result_code;
    bytes[11] = 9;  // epoch
    return bytes;
  };

  const auto natpmp = parse_gateway_notice(address_reply(0, 7), kAnnouncePort);
  REQUIRE(natpmp);
  CHECK(natpmp->kind == GatewayNotice::Kind::natpmp_address);
  CHECK(natpmp->epoch == 7);
  const auto pcp = parse_gateway_notice(pcp_announce_response(0), kAnnouncePort);
  REQUIRE(pcp);
  CHECK(pcp->kind == GatewayNotice::Kind::pcp_announce);
  CHECK(pcp->epoch == 9);
  const auto byebye = ssdp("NOTIFY * HTTP/1.1\r\nNT: upnp:rootdevice\r\nNTS: ssdp:byebye\r\n\r\n");
  REQUIRE(byebye);
  CHECK(byebye->kind == GatewayNotice::Kind::ssdp_byebye);

  // Every GatewayNoticeError is non-zero: a success's error() never equals one.
  CHECK(parse_gateway_notice(address_reply(0, 7), 1234).error() == GatewayNoticeError::unknown_port);
  CHECK(parse_gateway_notice(address_reply(3, 7), kAnnouncePort).error() == GatewayNoticeError::error_result);
  CHECK(parse_gateway_notice(pcp_announce_response(7), kAnnouncePort).error() == GatewayNoticeError::error_result);
  CHECK(parse_gateway_notice(std::vector<std::uint8_t>{0, 1, 2}, kAnnouncePort).error() ==
        GatewayNoticeError::not_an_announcement);
  CHECK(ssdp("HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\nLOCATION: http://10.77.0.1/\r\n\r\n").error() ==
        GatewayNoticeError::not_a_notify);
  CHECK(ssdp("NOTIFY * HTTP/1.1\r\nNT: urn:schemas-upnp-org:device:MediaRenderer:1\r\nNTS: ssdp:byebye\r\n\r\n")
            .error() == GatewayNoticeError::not_a_gateway);
}
