#include <catch2/catch.hpp>

#include "agent/service/notice_policy.hpp"

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
