// The reflector's admission rules, on virtual time and without sockets: each
// case hands requests to Admission::decide and checks what it says to do.
#include <catch2/catch.hpp>

#include "result_printer.hpp"

#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <random>
#include <vector>

#include "agent/reflector/admission.hpp"
#include "agent/reflector/protocol.hpp"
#include "agent/reflector/rate_limit.hpp"

using namespace natkeeper;
using namespace natkeeper::reflector;
using namespace std::chrono_literals;
namespace ip = boost::asio::ip;
using Verdict = Decision::Verdict;

namespace {

using Bytes = std::vector<std::uint8_t>;

const Secret kSecret{1, 2, 3, 4, 5, 6, 7, 8};
constexpr std::uint16_t kTargetPort = 5000;

// Some time on each clock; `later` moves both.
Now at(std::chrono::milliseconds later = 0ms) {
  return {Clock::time_point{} + 1h + later, std::chrono::system_clock::time_point{} + 20'000h + later};
}

struct Peer {
  ip::address address;
  std::uint16_t port = 0;
  Source source() const { return {normalized(address), port}; }
};
const Peer kClient{ip::make_address("192.0.2.7"), 40000};

struct Rules {
  Bytes key;
  double rate_per_source = 100;
  double global_rate = 1000;
};

Budget budget(const Rules& rules) {
  return {SourceLimiter(rules.rate_per_source, burst_for(rules.rate_per_source), 4096, 0),
          TokenBucket(rules.global_rate, burst_for(rules.global_rate), at().steady)};
}

Admission make_admission(const Rules& rules = {}) { return Admission(rules.key, kSecret, budget(rules), budget(rules)); }

// The server's caps on TCP probes, none in flight.
const SlotCounts kNoProbes{64, 16};

// `from` holding `n` TCP probe slots of `slots`.
SlotCounts holding(SlotCounts slots, std::size_t n, const ip::address& from) {
  for (std::size_t i = 0; i < n; ++i) slots.take(slot_key(from));
  return slots;
}

Decision over_udp(Admission& admission, std::span<const std::uint8_t> bytes, const Peer& from = kClient,
                  const Now& now = at(), const SlotCounts& probes = kNoProbes) {
  return admission.decide({bytes, from.address, from.port, Transport::udp}, now, probes);
}

Decision over_tcp(Admission& admission, std::span<const std::uint8_t> bytes, const SlotCounts& probes = kNoProbes,
                  const Peer& from = kClient, const Now& now = at()) {
  return admission.decide({bytes, from.address, from.port, Transport::tcp}, now, probes);
}

Token token(std::uint8_t n) {
  Token t{};
  t.fill(n);
  return t;
}

// What every decision must respect: a reply goes to the request's source and
// is no larger than the request; a probe goes to the source's own address at
// the target port.
void check_safety(const Decision& decision, std::span<const std::uint8_t> request, const Peer& from) {
  if (decision.reply) {
    CHECK(decision.reply->observed == from.source());
    const auto size = decision.reply->type == MessageType::cookie ? cookie_reply::kSize : result_reply::kSize;
    CHECK(size <= request.size());
  }
  if (decision.probe) {
    CHECK(decision.probe->address == from.address);
    CHECK(decision.probe->message.size() <= request.size());
  }
}

// The first round over UDP: a request without a cookie, answered with a COOKIE.
Cookie cookie_for(Admission& admission, RequestFields fields, const Peer& from = kClient, const Now& now = at()) {
  fields.cookie = {};
  const auto bytes = encode_request(fields);
  const auto decision = over_udp(admission, bytes, from, now);
  check_safety(decision, bytes, from);
  CHECK(decision.verdict == Verdict::cookie);
  CHECK_FALSE(decision.probe);
  REQUIRE(decision.reply);
  REQUIRE(decision.reply->type == MessageType::cookie);
  CHECK(decision.reply->token == fields.token);
  return decision.reply->cookie;
}

// Both rounds over UDP; gives the second decision.
Decision request_probe(Admission& admission, RequestFields fields, std::span<const std::uint8_t> key = {},
                       const Peer& from = kClient) {
  fields.cookie = cookie_for(admission, fields, from);
  const auto bytes = encode_request(fields, key);
  auto decision = over_udp(admission, bytes, from);
  check_safety(decision, bytes, from);
  REQUIRE(decision.reply);
  CHECK(decision.reply->type == MessageType::result);
  CHECK(decision.reply->token == fields.token);
  CHECK(decision.probe.has_value() == (decision.verdict == Verdict::probe || decision.verdict == Verdict::handshake));
  return decision;
}

// A RESULT "sent" and the probe it announces: to the source at the target port.
void check_probed(const Decision& decision, const RequestFields& fields, const Peer& from = kClient) {
  CHECK(decision.verdict == Verdict::probe);
  REQUIRE(decision.reply);
  CHECK(decision.reply->type == MessageType::result);
  CHECK(decision.reply->status == Status::sent);
  CHECK(decision.reply->observed == from.source());
  REQUIRE(decision.probe);
  CHECK(decision.probe->transport == fields.transport);
  CHECK(decision.probe->address == from.address);
  CHECK(decision.probe->port == fields.target_port);
  CHECK(decode_probe(decision.probe->message) == fields.token);
}

}  // namespace

TEST_CASE("reflector admission: a COOKIE first, then a probe to the source at the target port",
          "[reflector][admission]") {
  auto admission = make_admission();
  for (const auto transport : {Transport::udp, Transport::tcp}) {
    INFO(to_string(transport));
    RequestFields fields{token(1), transport, kTargetPort, {}};
    const auto first = encode_request(fields);
    const auto cookie = over_udp(admission, first);
    CHECK(cookie.verdict == Verdict::cookie);
    REQUIRE(cookie.reply);
    CHECK(cookie.reply->type == MessageType::cookie);
    CHECK(cookie.reply->observed == kClient.source());
    CHECK_FALSE(cookie.probe);  // no probe before the cookie is echoed

    fields.cookie = cookie.reply->cookie;
    const auto second = encode_request(fields);
    const auto result = over_udp(admission, second);
    check_probed(result, fields);
    check_safety(result, second, kClient);
  }
}

TEST_CASE("reflector admission: requests without a valid cookie never cause a probe or a RESULT",
          "[reflector][admission]") {
  auto admission = make_admission();
  const Peer other_port{kClient.address, 40001}, other_address{ip::make_address("192.0.2.8"), kClient.port};
  const RequestFields fields{token(2), Transport::udp, kTargetPort, {}};
  auto only_a_cookie = [&](const Cookie& cookie, const Peer& from, const Now& now = at()) {
    RequestFields guess = fields;
    guess.cookie = cookie;
    const auto bytes = encode_request(guess);
    const auto decision = over_udp(admission, bytes, from, now);
    check_safety(decision, bytes, from);
    CHECK(decision.verdict == Verdict::cookie);
    REQUIRE(decision.reply);
    CHECK(decision.reply->type == MessageType::cookie);
    CHECK_FALSE(decision.probe);
  };
  SECTION("random cookies") {
    std::mt19937 rng(7);
    for (int i = 0; i < 20; ++i) {
      Cookie cookie{};
      for (auto& b : cookie) b = static_cast<std::uint8_t>(rng());
      only_a_cookie(cookie, kClient);
    }
  }
  SECTION("a cookie made for another source port") {
    only_a_cookie(cookie_for(admission, fields, other_port), kClient);
  }
  SECTION("a cookie for this source, sent from another port or address") {
    const auto own = cookie_for(admission, fields);
    only_a_cookie(own, other_port);
    only_a_cookie(own, other_address);
  }
  SECTION("a cookie from two slots ago (one slot ago still holds)") {
    const auto old = cookie_for(admission, fields);
    only_a_cookie(old, kClient, at(2 * kCookieSlot));
    RequestFields echoed = fields;
    echoed.cookie = old;
    CHECK(over_udp(admission, encode_request(echoed), kClient, at(kCookieSlot)).verdict == Verdict::probe);
  }
}

TEST_CASE("reflector admission: a TCP request needs no cookie and gets a RESULT", "[reflector][admission]") {
  auto admission = make_admission();
  for (const auto transport : {Transport::udp, Transport::tcp}) {
    INFO(to_string(transport));
    const RequestFields fields{token(3), transport, kTargetPort, {}};
    const auto bytes = encode_request(fields);
    const auto decision = over_tcp(admission, bytes);
    check_probed(decision, fields);
    check_safety(decision, bytes, kClient);
  }
}

TEST_CASE("reflector admission: bad transport or port 0 → RESULT bad request, no probe", "[reflector][admission]") {
  auto admission = make_admission();
  SECTION("port 0") {
    const auto decision = request_probe(admission, {token(4), Transport::udp, 0, {}});
    CHECK(decision.verdict == Verdict::bad_request);
    CHECK(decision.reply->status == Status::bad_request);
    CHECK_FALSE(decision.probe);
    CHECK(over_tcp(admission, encode_request({token(4), Transport::tcp, 0, {}})).verdict == Verdict::bad_request);
  }
  SECTION("transport 99") {
    RequestFields fields{token(4), Transport::udp, kTargetPort, {}};
    auto first = encode_request(fields);
    first[request::kTransport] = 99;
    const auto cookie = over_udp(admission, first);
    REQUIRE(cookie.reply);
    CHECK(cookie.verdict == Verdict::cookie);
    fields.cookie = cookie.reply->cookie;
    auto second = encode_request(fields);
    second[request::kTransport] = 99;
    const auto decision = over_udp(admission, second);
    CHECK(decision.verdict == Verdict::bad_request);
    REQUIRE(decision.reply);
    CHECK(decision.reply->status == Status::bad_request);
    CHECK_FALSE(decision.probe);
  }
}

TEST_CASE("reflector admission: oversized, truncated and garbage requests are dropped", "[reflector][admission]") {
  auto admission = make_admission();
  const RequestFields fields{token(5), Transport::udp, kTargetPort, {}};
  const auto good = encode_request(fields);
  Bytes oversized(good.begin(), good.end());
  oversized.resize(request::kMaxSize + 1, 0);
  Bytes huge(good.begin(), good.end());
  huge.resize(9000, 0);
  Bytes bad_padding(good.begin(), good.end());
  bad_padding.resize(100, 0xAA);
  Bytes wrong_magic(good.begin(), good.end());
  wrong_magic[0] = 'X';
  Bytes wrong_version(good.begin(), good.end());
  wrong_version[header::kVersion] = 2;
  const Bytes garbage{'G', 'E', 'T', ' ', '/', '\r', '\n'};

  const std::vector<std::span<const std::uint8_t>> dropped{
      oversized, huge, std::span(good).first(75), std::span(good).first(24), Bytes{}, bad_padding, wrong_magic,
      wrong_version, garbage};
  int oversized_count = 0, malformed_count = 0;
  for (const auto bytes : dropped) {
    for (const auto& decision : {over_udp(admission, bytes), over_tcp(admission, bytes)}) {
      oversized_count += decision.verdict == Verdict::oversized;
      malformed_count += decision.verdict == Verdict::malformed;
      CHECK_FALSE(decision.reply);
      CHECK_FALSE(decision.probe);
    }
  }
  CHECK(oversized_count == 2 * 2);
  CHECK(malformed_count == 7 * 2);
  // A good request from port 0 (no reply could reach it) is malformed too.
  const auto from_port_0 = over_udp(admission, good, Peer{kClient.address, 0});
  CHECK(from_port_0.verdict == Verdict::malformed);
  CHECK_FALSE(from_port_0.reply);

  // Still serving.
  CHECK(request_probe(admission, fields).verdict == Verdict::probe);
}

TEST_CASE("reflector admission: a padded request gets replies no larger than itself", "[reflector][admission]") {
  auto admission = make_admission();
  RequestFields fields{token(6), Transport::udp, kTargetPort, {}};
  for (const std::size_t size : {request::kSize, std::size_t{300}, request::kMaxSize}) {
    INFO(size);
    const auto plain = encode_request(fields);
    Bytes padded(plain.begin(), plain.end());
    padded.resize(size, 0);
    const auto cookie = over_udp(admission, padded);
    check_safety(cookie, padded, kClient);
    REQUIRE(cookie.reply);
    CHECK(cookie.reply->type == MessageType::cookie);

    fields.cookie = cookie.reply->cookie;
    const auto echoed = encode_request(fields);
    padded.assign(echoed.begin(), echoed.end());
    padded.resize(size, 0);
    const auto result = over_udp(admission, padded);
    check_safety(result, padded, kClient);
    CHECK(result.verdict == Verdict::probe);
    fields.cookie = {};
  }
}

TEST_CASE("reflector admission: too many TCP probes in flight → busy", "[reflector][admission]") {
  auto admission = make_admission();
  const auto tcp_probe = encode_request({token(7), Transport::tcp, kTargetPort, {}});
  const auto other = ip::make_address("198.51.100.9");  // another /24
  SECTION("none allowed") {
    RequestFields fields{token(7), Transport::tcp, kTargetPort, {}};
    fields.cookie = cookie_for(admission, fields);
    const auto decision = over_udp(admission, encode_request(fields), kClient, at(), SlotCounts{0, 16});
    CHECK(decision.verdict == Verdict::busy);
    REQUIRE(decision.reply);
    CHECK(decision.reply->status == Status::busy);
    CHECK_FALSE(decision.probe);
  }
  SECTION("as many in flight as allowed, from anyone") {
    const auto busy = over_tcp(admission, tcp_probe, holding(SlotCounts{2, 2}, 2, other));
    CHECK(busy.verdict == Verdict::busy);
    REQUIRE(busy.reply);
    CHECK(busy.reply->status == Status::busy);
    CHECK_FALSE(busy.probe);
    CHECK(over_tcp(admission, tcp_probe, holding(SlotCounts{2, 2}, 1, other)).verdict == Verdict::probe);
    // UDP probes hold no connection: not limited.
    CHECK(over_tcp(admission, encode_request({token(7), Transport::udp, kTargetPort, {}}),
                   holding(SlotCounts{2, 2}, 2, other))
              .verdict == Verdict::probe);
  }
  SECTION("as many in flight as one /24 may hold, while others have room") {
    const auto neighbour = ip::make_address("192.0.2.200");  // kClient's /24
    const auto full = holding(kNoProbes, 16, neighbour);
    CHECK(over_tcp(admission, tcp_probe, full).verdict == Verdict::busy);
    CHECK(over_tcp(admission, tcp_probe, full, {other, 40000}).verdict == Verdict::probe);
    CHECK(over_tcp(admission, tcp_probe, holding(kNoProbes, 15, neighbour)).verdict == Verdict::probe);
  }
  SECTION("IPv6: as many as one /48 may hold") {
    const auto full = holding(kNoProbes, 16, ip::make_address("2001:db8:1:ffff::1"));
    CHECK(over_tcp(admission, tcp_probe, full, {ip::make_address("2001:db8:1:2::9"), 40000}).verdict ==
          Verdict::busy);
    CHECK(over_tcp(admission, tcp_probe, full, {ip::make_address("2001:db8:2::9"), 40000}).verdict ==
          Verdict::probe);
  }
}

TEST_CASE("reflector admission: the per-source rate holds", "[reflector][admission]") {
  Rules rules;
  rules.rate_per_source = 5;  // a burst of 10
  auto admission = make_admission(rules);
  RequestFields fields{token(8), Transport::udp, kTargetPort, {}};
  fields.cookie = cookie_for(admission, fields);
  const auto request = encode_request(fields);
  auto send_burst = [&](int requests, const Now& now) {
    int probes = 0, limited = 0;
    for (int i = 0; i < requests; ++i) {
      const auto decision = over_udp(admission, request, kClient, now);
      check_safety(decision, request, kClient);
      REQUIRE(decision.reply);
      probes += decision.verdict == Verdict::probe;
      if (decision.verdict == Verdict::rate_limited) {
        CHECK(decision.reply->status == Status::rate_limited);
        ++limited;
      }
    }
    return std::pair{probes, limited};
  };
  // The burst: the cookie round was charged to the unproven budget.
  CHECK(send_burst(60, at()) == std::pair{10, 50});
  CHECK(send_burst(20, at(1s)) == std::pair{5, 15});
  // Without a valid cookie a source over its rate gets nothing at all: its
  // own burst of COOKIEs (refilled since the first round), then silence.
  const auto unproven = encode_request({token(8), Transport::udp, kTargetPort, {}});
  int cookies = 0;
  for (int i = 0; i < 20; ++i) {
    const auto decision = over_udp(admission, unproven, kClient, at(1s));
    cookies += decision.verdict == Verdict::cookie;
    if (decision.verdict != Verdict::cookie) {
      CHECK(decision.verdict == Verdict::rate_limited);
      CHECK_FALSE(decision.reply);
    }
  }
  CHECK(cookies == 10);
  // Another source has its own bucket.
  CHECK(request_probe(admission, fields, {}, {ip::make_address("192.0.2.8"), 40000}).verdict == Verdict::probe);
}

TEST_CASE("reflector admission: the global rate holds across sources", "[reflector][admission]") {
  Rules rules;
  rules.global_rate = 5;  // a burst of 10
  auto admission = make_admission(rules);
  const Peer a{ip::make_address("192.0.2.1"), 40000}, b{ip::make_address("192.0.2.2"), 40000};
  RequestFields fa{token(9), Transport::udp, kTargetPort, {}}, fb = fa;
  fa.cookie = cookie_for(admission, fa, a);
  fb.cookie = cookie_for(admission, fb, b);
  int probes = 0;
  for (int i = 0; i < 30; ++i) {
    probes += over_udp(admission, encode_request(fa), a).verdict == Verdict::probe;
    probes += over_udp(admission, encode_request(fb), b).verdict == Verdict::probe;
  }
  CHECK(probes == 10);  // the burst: the cookie rounds were charged to the unproven budget
  CHECK(over_udp(admission, encode_request(fa), a, at(200ms)).verdict == Verdict::probe);
  // Unproven requests have a global budget of their own, as large.
  int cookies = 0;
  for (std::uint16_t port = 1000; port < 1030; ++port)
    cookies += over_udp(admission, encode_request({token(9), Transport::udp, kTargetPort, {}}), {a.address, port},
                        at(200ms))
                   .verdict == Verdict::cookie;
  CHECK(cookies == 9);  // the burst, less the two cookie rounds, and 200 ms' refill
}

TEST_CASE("reflector admission: forged requests from a client's address do not use up its budget",
          "[reflector][admission]") {
  // A forger sends from the client's address, which it may forge at will, but
  // from another port, as it cannot know the client's: 1000 requests a second
  // (76 KB/s), with no cookie or a made-up one. The client verifies a mapping
  // every 100 ms: a cookie round, then a request with the cookie.
  auto admission = make_admission();
  const Peer forger{kClient.address, 1234};
  const auto no_cookie = encode_request({token(20), Transport::udp, kTargetPort, {}});
  RequestFields guessed{token(21), Transport::udp, kTargetPort, {}};
  guessed.cookie.fill(0x5A);
  const auto made_up = encode_request(guessed);
  int verified = 0, forged_answers = 0;
  constexpr int kVerifications = 30;
  for (int ms = 0; ms < kVerifications * 100; ++ms) {
    const auto now = at(std::chrono::milliseconds(ms));
    for (const auto& forged : {no_cookie, made_up}) {
      if (ms % 2) continue;  // 2 every 2 ms: 1000 a second
      const auto decision = over_udp(admission, forged, forger, now);
      check_safety(decision, forged, forger);
      CHECK_FALSE(decision.probe);
      if (decision.reply) {
        CHECK(decision.reply->type == MessageType::cookie);
        ++forged_answers;
      }
    }
    if (ms % 100 != 50) continue;
    RequestFields fields{token(22), Transport::udp, kTargetPort, {}};
    const auto cookie = over_udp(admission, encode_request(fields), kClient, now);
    if (cookie.verdict != Verdict::cookie) continue;
    fields.cookie = cookie.reply->cookie;
    verified += over_udp(admission, encode_request(fields), kClient, now).verdict == Verdict::probe;
  }
  CHECK(verified == kVerifications);
  // The forger's own budget held: the burst of 200 and 100 a second, of 6000.
  CHECK(forged_answers <= 200 + 100 * kVerifications / 10 + 1);
}

TEST_CASE("reflector admission: a flood of unproven requests from everywhere leaves proven clients their budget",
          "[reflector][admission]") {
  auto admission = make_admission();
  RequestFields fields{token(23), Transport::udp, kTargetPort, {}};
  fields.cookie = cookie_for(admission, fields);
  std::mt19937 rng(11);
  int probes = 0;
  for (int ms = 0; ms < 2000; ++ms) {
    const auto now = at(std::chrono::milliseconds(ms));
    // 5000 a second, each from an address and port of its own: every one has
    // a full bucket of its own; the global unproven budget runs dry.
    for (int i = 0; i < 5; ++i) {
      const Peer forged{ip::address_v4(static_cast<std::uint32_t>(rng())),
                        static_cast<std::uint16_t>(1 + rng() % 65535)};
      over_udp(admission, encode_request({token(24), Transport::udp, kTargetPort, {}}), forged, now);
    }
    if (ms % 20 == 0) probes += over_udp(admission, encode_request(fields), kClient, now).verdict == Verdict::probe;
    if (ms % 20 == 10) {
      const auto over_connection =
          over_tcp(admission, encode_request(fields), kNoProbes, {kClient.address, 40001}, now);
      probes += over_connection.verdict == Verdict::probe;
    }
  }
  CHECK(probes == 200);
}

TEST_CASE("reflector admission: with a pre-shared key, only tagged requests are probed", "[reflector][admission]") {
  const Bytes key{'s', '3', 'c', 'r', 'e', 't', '-', 'k', 'e', 'y', '-', 'o', 'f', '-', '1', '6', 'b'};
  const Bytes wrong{'n', 'o', 't', '-', 't', 'h', 'e', '-', 'k', 'e', 'y', '-', 'a', 't', '-', 'a', 'l'};
  Rules rules;
  rules.key = key;
  auto admission = make_admission(rules);
  const std::vector<Decision> refused{
      request_probe(admission, {token(10), Transport::udp, kTargetPort, {}}),
      request_probe(admission, {token(10), Transport::udp, kTargetPort, {}}, wrong),
      request_probe(admission, {token(10), Transport::tcp, kTargetPort, {}}),
      over_tcp(admission, encode_request({token(10), Transport::udp, kTargetPort, {}})),
  };
  for (const auto& decision : refused) {
    CHECK(decision.verdict == Verdict::auth_failed);
    REQUIRE(decision.reply);
    CHECK(decision.reply->status == Status::auth_failed);
    CHECK_FALSE(decision.probe);
  }

  const auto tagged = request_probe(admission, {token(11), Transport::udp, kTargetPort, {}}, key);
  CHECK(tagged.reply->status == Status::sent);
  REQUIRE(tagged.probe);
  CHECK(decode_probe(tagged.probe->message) == token(11));
  const auto tagged_tcp = over_tcp(admission, encode_request({token(12), Transport::udp, kTargetPort, {}}, key));
  REQUIRE(tagged_tcp.reply);
  CHECK(tagged_tcp.reply->status == Status::sent);
}

TEST_CASE("reflector admission: the observed source is plain IPv4 or IPv6; the probe goes where the socket said",
          "[reflector][admission]") {
  auto admission = make_admission();
  const Peer v4_mapped{ip::make_address("::ffff:192.0.2.9"), 40000}, v6{ip::make_address("2001:db8::9"), 40000};
  for (const Peer& from : {v4_mapped, v6}) {
    INFO(from.address.to_string());
    const auto decision = request_probe(admission, {token(13), Transport::udp, kTargetPort, {}}, {}, from);
    CHECK(decision.reply->observed == from.source());
    CHECK(decision.reply->observed.address == normalized(from.address));
    REQUIRE(decision.probe);
    CHECK(decision.probe->address == from.address);
  }
}

TEST_CASE("reflector admission: a handshake request, once the source is proven, orders a TCP connect to it",
          "[reflector][admission]") {
  auto admission = make_admission();
  const RequestFields fields{token(11), Transport::tcp, kTargetPort, {}, ProbeKind::handshake};
  // Over UDP the cookie comes first, as for any request (cookie_for checks there is no probe).
  const auto decision = request_probe(admission, fields);
  CHECK(decision.verdict == Verdict::handshake);
  REQUIRE(decision.reply);  // the RESULT to send once the connect ends
  CHECK(decision.reply->observed == kClient.source());
  REQUIRE(decision.probe);
  CHECK(decision.probe->transport == Transport::tcp);
  CHECK(decision.probe->kind == ProbeKind::handshake);
  CHECK(decision.probe->address == kClient.address);  // never an address named in the request
  CHECK(decision.probe->port == kTargetPort);

  // Over TCP the connection proved the source.
  const auto bytes = encode_request(fields);
  const auto over_connection = over_tcp(admission, bytes);
  check_safety(over_connection, bytes, kClient);
  CHECK(over_connection.verdict == Verdict::handshake);
  REQUIRE(over_connection.probe);
  CHECK(over_connection.probe->address == kClient.address);
}

TEST_CASE("reflector admission: handshakes are TCP only, of a known kind, and count as TCP probes in flight",
          "[reflector][admission]") {
  auto admission = make_admission();
  RequestFields udp_handshake{token(12), Transport::udp, kTargetPort, {}, ProbeKind::handshake};
  auto decision = request_probe(admission, udp_handshake);
  CHECK(decision.verdict == Verdict::bad_request);
  CHECK_FALSE(decision.probe);
  REQUIRE(decision.reply);
  CHECK(decision.reply->status == Status::bad_request);

  auto unknown_kind = encode_request({token(13), Transport::tcp, kTargetPort, {}, ProbeKind::handshake});
  unknown_kind[request::kKind] = 2;  // a kind from a newer client: refused plainly, not dropped
  decision = over_tcp(admission, unknown_kind);
  CHECK(decision.verdict == Verdict::bad_request);
  CHECK_FALSE(decision.probe);

  const auto handshake = encode_request({token(14), Transport::tcp, kTargetPort, {}, ProbeKind::handshake});
  const auto other = ip::make_address("198.51.100.9");
  CHECK(over_tcp(admission, handshake, holding(SlotCounts{2, 2}, 1, other)).verdict == Verdict::handshake);
  decision = over_tcp(admission, handshake, holding(SlotCounts{2, 2}, 2, other));
  CHECK(decision.verdict == Verdict::busy);
  CHECK_FALSE(decision.probe);
}

TEST_CASE("reflector admission: with a pre-shared key, a handshake needs the tag too", "[reflector][admission]") {
  const Bytes key(20, 'k');
  auto admission = make_admission({key});
  const RequestFields fields{token(15), Transport::tcp, kTargetPort, {}, ProbeKind::handshake};
  auto decision = over_tcp(admission, encode_request(fields));
  CHECK(decision.verdict == Verdict::auth_failed);
  CHECK_FALSE(decision.probe);
  decision = over_tcp(admission, encode_request(fields, key));
  CHECK(decision.verdict == Verdict::handshake);
}
