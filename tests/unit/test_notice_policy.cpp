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

TEST_CASE("every notice from the gateway is a question to it, never a remap by itself", "[notice_policy]") {
  for (const auto method : {Method::pcp, Method::natpmp, Method::upnp}) {
    CHECK(notice_question(pcp_announce(100), method) == "a PCP ANNOUNCE says the gateway restarted or changed (epoch 100 s)");
    CHECK(notice_question(natpmp_address(70, "198.51.100.7"), method) ==
          "a NAT-PMP notice says the external address is 198.51.100.7 (epoch 70 s)");
    CHECK_FALSE(notice_question({GatewayNotice::Kind::ssdp_byebye, 0, {}, {}, {}}, method));
  }
  // SSDP is asked about only where UPnP makes the mappings.
  CHECK(notice_question(ssdp_alive(8), Method::upnp) == "an SSDP alive notice (boot id 8)");
  CHECK(notice_question(ssdp_alive(std::nullopt), Method::upnp) == "an SSDP alive notice");
  CHECK_FALSE(notice_question(ssdp_alive(8), Method::pcp));
}

TEST_CASE("an epoch shorter than the round's age, with 2 s of slack, means a restart since", "[notice_policy]") {
  CHECK(restarted_since_round(0s, 5s));
  CHECK(restarted_since_round(2s, 4500ms));
  CHECK_FALSE(restarted_since_round(2s, 4s));
  CHECK_FALSE(restarted_since_round(3600s, 10min));
}

TEST_CASE("an answer confirms a notice when its epoch is the announced one, counted on", "[notice_policy]") {
  const AnnouncedEpoch restart{0s, kStart};
  CHECK(confirms(restart, 3s, kStart + 3s));
  CHECK(confirms(restart, 5s, kStart + 3s));
  CHECK_FALSE(confirms(restart, 6s, kStart + 3s));
  // A forged "I restarted" to a gateway up for an hour.
  CHECK_FALSE(confirms(restart, 3603s, kStart + 3s));
  CHECK_FALSE(confirms({3600s, kStart}, 3s, kStart + 3s));
}

TEST_CASE("questions back off while they find nothing, and a stream of notices cannot reset that", "[notice_policy]") {
  QuestionPacer pacer;
  CHECK(question_time(pacer, kStart) == kStart);  // the first at once
  auto now = kStart;
  std::vector<std::chrono::seconds> spacings;
  for (int i = 0; i < 8; ++i) {
    note_answer(pacer, now, false);
    const auto next = question_time(pacer, now);
    spacings.push_back(std::chrono::duration_cast<std::chrono::seconds>(next - now));
    now = next;
  }
  CHECK(spacings == std::vector<std::chrono::seconds>{2s, 4s, 8s, 16s, 32s, 60s, 60s, 60s});
  // A real change found keeps the spacing as it is.
  note_answer(pacer, now, true);
  CHECK(question_time(pacer, now) == now + 60s);
  // Ten quiet minutes without a needless question: back to the start.
  now += 10min;
  note_answer(pacer, now, true);
  CHECK(question_time(pacer, now) == now + 2s);
}

TEST_CASE("rounds that confirmed notices start: three at once, then one a minute", "[notice_policy]") {
  NoticeRoundBudget budget;
  CHECK(notice_round_delay(budget, kStart) == 0s);
  CHECK(notice_round_delay(budget, kStart + 1s) == 0s);
  CHECK(notice_round_delay(budget, kStart + 2s) == 0s);
  CHECK(notice_round_delay(budget, kStart + 3s) == 57s);
  CHECK(notice_round_delay(budget, kStart + 60s) == 60s);
  // A sustained stream: each further round a minute after the one before.
  CHECK(notice_round_delay(budget, kStart + 61s) == 119s);
  // Quiet for long enough, the burst is back.
  CHECK(notice_round_delay(budget, kStart + 1h) == 0s);
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
