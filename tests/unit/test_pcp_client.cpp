#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "mappers/errors.hpp"
#include "mappers/pcp/pcp_client.hpp"
#include "pcp_replies.hpp"

using namespace natkeeper;
using namespace natkeeper::pcp;
using namespace std::chrono_literals;
namespace ip = boost::asio::ip;

namespace {

using namespace pcp_replies;

const auto kGateway = ip::make_address_v4("10.77.0.1");
const auto kHost = ip::make_address_v4("10.77.0.2");
// Two LAN devices this host maps ports for (RFC 6887 §13.1 THIRD_PARTY).
const auto kDoorbell = ip::make_address_v4("10.77.0.50");
const auto kCamera = ip::make_address_v4("10.77.0.51");
const auto kT0 = Clock::time_point{} + 1000s;

ClientOptions options(std::uint32_t seed = 42) {
  ClientOptions o;
  o.client_address = kHost;
  o.server_address = kGateway;
  o.seed = seed;
  return o;
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

Bytes nonce_of(const Bytes& request) {
  const auto at = request.begin() + request_header::kSize + map_body::kNonce;
  return Bytes(at, at + kNonceSize);
}

std::uint32_t lifetime_of(const Bytes& request) {
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < 4; ++i) value = value << 8 | request[request_header::kLifetime + i];
  return value;
}

// The address of a request's THIRD_PARTY option (RFC 6887 §13.1), read by
// hand: nullopt when the request is a plain 60-byte MAP.
std::optional<ip::address_v4> third_party_in(const Bytes& request) {
  if (request.size() == kMapRequestSize) return std::nullopt;
  REQUIRE(request.size() == kMapRequestSize + 20);
  CHECK(request[60] == 1);  // code THIRD_PARTY
  CHECK(request[61] == 0);
  CHECK(request[62] == 0);  // length 16
  CHECK(request[63] == 16);
  ip::address_v6::bytes_type address{};
  std::copy(request.begin() + 64, request.end(), address.begin());
  const auto v4 = v4_mapped(ip::address_v6(address));
  REQUIRE(v4);
  return v4;
}

struct Fixture {
  Client client{options()};

  Bytes only_outgoing() {
    auto out = client.take_outgoing();
    REQUIRE(out.size() == 1);
    return out[0];
  }
  void from_gateway(const Bytes& bytes, Clock::time_point now = kT0) {
    client.on_datagram(bytes, kGateway, kServerPort, now);
  }
  Completion only_completion() {
    auto done = client.take_completions();
    REQUIRE(done.size() == 1);
    return done[0];
  }
};

}  // namespace

TEST_CASE("a MAP request is queued at once, with a first wakeup in [2.7, 3.3] s") {
  Fixture f;
  const auto id = f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  CHECK(f.client.pending() == 1);
  const auto request = f.only_outgoing();
  REQUIRE(request.size() == kMapRequestSize);
  MapRequestFields expected;
  expected.client_address = kHost;
  std::copy_n(request.begin() + request_header::kSize + map_body::kNonce, kNonceSize, expected.nonce.begin());
  expected.proto = Transport::udp;
  expected.internal_port = 7076;
  expected.suggested_external_port = 7076;
  expected.lifetime = 3600;
  const auto encoded = encode_map(expected);
  CHECK(request == Bytes(encoded.begin(), encoded.end()));

  const auto wake = f.client.next_wakeup();
  REQUIRE(wake);
  CHECK(seconds(*wake - kT0) >= 2.7);
  CHECK(seconds(*wake - kT0) <= 3.3);
  f.client.on_time(*wake - 1ms);  // not yet due
  CHECK(f.client.take_outgoing().empty());
  CHECK(f.client.take_completions().empty());
  CHECK(id != 0);
}

TEST_CASE("retransmissions double with jitter, are capped at MRT, and time out at the bound") {
  auto o = options(7);
  o.max_request_duration = 3h;
  Client client(o);
  client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  const auto first = client.take_outgoing();
  REQUIRE(first.size() == 1);

  std::vector<double> rts;
  auto sent_at = kT0;
  while (true) {
    const auto wake = client.next_wakeup();
    REQUIRE(wake);
    client.on_time(*wake);
    const auto out = client.take_outgoing();
    if (out.empty()) {
      CHECK(*wake == kT0 + 3h);  // the deadline, exactly
      break;
    }
    REQUIRE(out.size() == 1);
    CHECK(out[0] == first[0]);  // the same datagram, same nonce
    CHECK(*wake < kT0 + 3h);
    rts.push_back(seconds(*wake - sent_at));
    sent_at = *wake;
  }
  const auto done = client.take_completions();
  REQUIRE(done.size() == 1);
  CHECK(done[0].error == Errc::timed_out);
  CHECK(client.pending() == 0);
  CHECK_FALSE(client.next_wakeup());

  // RT = IRT(1+RAND); then 2*RTprev + RAND*RTprev; past MRT, MRT(1+RAND).
  REQUIRE(rts.size() > 10);
  CHECK(rts[0] >= 2.7);
  CHECK(rts[0] <= 3.3);
  std::size_t doubled = 0;
  std::size_t capped = 0;
  for (std::size_t i = 1; i < rts.size(); ++i) {
    INFO("retransmission " << i << ": " << rts[i - 1] << " s then " << rts[i] << " s");
    const bool doubling = rts[i] >= 1.9 * rts[i - 1] - 1e-6 && rts[i] <= 2.1 * rts[i - 1] + 1e-6 &&
                          rts[i] <= 1024 + 1e-6;
    const bool at_cap = rts[i] >= 0.9 * 1024 - 1e-6 && rts[i] <= 1.1 * 1024 + 1e-6;
    if (capped == 0 && doubling) {
      ++doubled;
    } else {
      CHECK(at_cap);
      ++capped;
    }
  }
  CHECK(doubled >= 7);  // 3 → 6 → ... → 384, at least
  CHECK(capped >= 5);
  // Not all equal: the jitter is there.
  CHECK(std::adjacent_find(rts.begin() + static_cast<std::ptrdiff_t>(rts.size()) - 5, rts.end()) ==
        rts.end());
}

TEST_CASE("with the default 10 s bound a request is retransmitted, then times out at 10 s") {
  Fixture f;
  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  std::size_t sends = f.client.take_outgoing().size();
  while (const auto wake = f.client.next_wakeup()) {
    f.client.on_time(*wake);
    sends += f.client.take_outgoing().size();
    if (f.client.pending() == 0) CHECK(*wake == kT0 + 10s);
  }
  CHECK(sends >= 2);
  CHECK(sends <= 3);
  const auto done = f.only_completion();
  CHECK(done.error == Errc::timed_out);
  CHECK_FALSE(done.map);
}

TEST_CASE("the answer to a retransmission completes the request") {
  Fixture f;
  const auto id = f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  const auto request = f.only_outgoing();
  const auto wake = *f.client.next_wakeup();
  f.client.on_time(wake);
  CHECK(f.only_outgoing() == request);

  // miniupnpd clamps lifetimes to 120..86400 s and may assign another port.
  f.from_gateway(answer(request, {.lifetime = 120, .external_port = 7080}), wake + 5ms);
  const auto done = f.only_completion();
  CHECK(done.id == id);
  CHECK_FALSE(done.error);
  REQUIRE(done.map);
  CHECK(done.map->proto == Transport::udp);
  CHECK(done.map->internal_port == 7076);
  CHECK(done.map->external_port == 7080);
  CHECK(done.map->external_address.is_v4());
  CHECK(done.map->external_address.to_string() == "203.0.113.1");
  CHECK(done.map->lifetime == 120s);
  CHECK(done.epoch == 100);
  CHECK(f.client.pending() == 0);
  CHECK_FALSE(f.client.next_wakeup());
  CHECK(f.client.dropped_total() == 0);

  // A late duplicate matches nothing any more.
  f.from_gateway(answer(request));
  CHECK(f.client.dropped(DropReason::unexpected) == 1);
  CHECK(f.client.take_completions().empty());
}

TEST_CASE("a MAP response with another nonce is dropped and the request keeps waiting") {
  Fixture f;
  const auto id = f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  const auto request = f.only_outgoing();
  auto forged = answer(request);
  forged[request_header::kSize + map_body::kNonce + 5] ^= 0x01;
  f.from_gateway(forged);
  CHECK(f.client.dropped(DropReason::nonce_mismatch) == 1);
  CHECK(f.client.dropped_total() == 1);
  CHECK(f.client.take_completions().empty());
  CHECK(f.client.pending() == 1);
  CHECK(f.client.next_wakeup());

  // Another protocol or port with our nonce is not our mapping either.
  auto other_port = answer(request);
  other_port[request_header::kSize + map_body::kInternalPort + 1] ^= 0x01;
  f.from_gateway(other_port);
  auto other_proto = answer(request);
  other_proto[request_header::kSize + map_body::kProtocol] = 6;
  f.from_gateway(other_proto);
  CHECK(f.client.dropped(DropReason::unexpected) == 2);
  CHECK(f.client.pending() == 1);

  f.from_gateway(answer(request));
  CHECK(f.only_completion().id == id);
}

TEST_CASE("datagrams from another address or port are dropped") {
  Fixture f;
  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  const auto reply = answer(f.only_outgoing());
  f.client.on_datagram(reply, ip::make_address_v4("10.77.0.99"), kServerPort, kT0);
  f.client.on_datagram(reply, kGateway, kClientAnnouncePort, kT0);
  f.client.on_datagram(reply, kGateway, 5352, kT0);
  f.client.on_datagram(reply, ip::make_address_v6("2001:db8::1"), kServerPort, kT0);
  CHECK(f.client.dropped(DropReason::wrong_source) == 4);
  CHECK(f.client.take_completions().empty());
  CHECK(f.client.pending() == 1);

  // A dual-stack socket reports the gateway IPv4-mapped: that is the gateway.
  f.client.on_datagram(reply, to_v4_mapped(kGateway), kServerPort, kT0);
  CHECK_FALSE(f.only_completion().error);
}

TEST_CASE("truncated, oversized, wrong-version and other garbage is dropped as malformed") {
  Fixture f;
  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  const auto request = f.only_outgoing();
  const auto reply = answer(request);
  auto wrong_version = reply;
  wrong_version[response_header::kVersion] = 3;
  auto oversized = reply;
  oversized.resize(1104);
  const std::vector<Bytes> garbage = {
      Bytes{},
      Bytes(reply.begin(), reply.begin() + 23),
      Bytes(reply.begin(), reply.begin() + 59),
      Bytes(reply.begin(), reply.begin() + 56),
      oversized,
      wrong_version,
      request,  // R bit clear: a request, not a response
  };
  for (const auto& bytes : garbage) f.from_gateway(bytes);
  CHECK(f.client.dropped(DropReason::malformed) == garbage.size());
  CHECK(f.client.dropped_total() == garbage.size());
  CHECK(f.client.take_completions().empty());
  CHECK(f.client.pending() == 1);
}

TEST_CASE("each error result code completes with make_pcp_error(code) and its lifetime") {
  Fixture f;
  for (int code = 1; code <= 13; ++code) {
    INFO("result code " << code);
    const auto port = static_cast<std::uint16_t>(7000 + code);
    const auto id = f.client.map(Transport::udp, port, port, 3600s, kT0);
    const auto request = f.only_outgoing();
    const auto lifetime = static_cast<std::uint32_t>(30 * code);
    f.from_gateway(answer(request, {.result = static_cast<ResultCode>(code), .lifetime = lifetime}));
    const auto done = f.only_completion();
    CHECK(done.id == id);
    CHECK(done.error == make_pcp_error(code));
    CHECK(done.error.category() == pcp_category());
    CHECK(done.error_lifetime == std::chrono::seconds(lifetime));
    CHECK_FALSE(done.map);
  }
  CHECK(f.client.pending() == 0);
  CHECK(f.client.dropped_total() == 0);
}

TEST_CASE("renewals and the delete reuse the nonce of the first request for the mapping") {
  Fixture f;
  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  const auto first = f.only_outgoing();
  f.from_gateway(answer(first));
  f.client.take_completions();

  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0 + 1800s);
  const auto renewal = f.only_outgoing();
  f.client.map(Transport::udp, 7076, 0, 0s, kT0 + 1900s);
  const auto deletion = f.only_outgoing();
  CHECK(nonce_of(renewal) == nonce_of(first));
  CHECK(nonce_of(deletion) == nonce_of(first));
  CHECK(renewal == first);  // byte for byte
  CHECK(lifetime_of(deletion) == 0);
  CHECK(deletion[request_header::kSize + map_body::kExternalPort] == 0);
  CHECK(deletion[request_header::kSize + map_body::kExternalPort + 1] == 0);

  // Another port or protocol is another mapping, with its own nonce.
  f.client.map(Transport::udp, 7077, 7077, 3600s, kT0);
  const auto other_port = f.only_outgoing();
  f.client.map(Transport::tcp, 7076, 7076, 3600s, kT0);
  const auto other_proto = f.only_outgoing();
  CHECK(nonce_of(other_port) != nonce_of(first));
  CHECK(nonce_of(other_proto) != nonce_of(first));
  CHECK(nonce_of(other_proto) != nonce_of(other_port));
}

TEST_CASE("a map and the delete right after it, both pending, are told apart") {
  Fixture f;
  const auto map_id = f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  const auto map_request = f.only_outgoing();
  const auto delete_id = f.client.map(Transport::udp, 7076, 0, 0s, kT0 + 10ms);
  const auto delete_request = f.only_outgoing();
  CHECK(f.client.pending() == 2);

  f.from_gateway(answer(delete_request, {.lifetime = 0}));
  auto done = f.only_completion();
  CHECK(done.id == delete_id);
  REQUIRE(done.map);
  CHECK(done.map->lifetime == 0s);

  f.from_gateway(answer(map_request));
  done = f.only_completion();
  CHECK(done.id == map_id);
  CHECK(f.client.pending() == 0);
}

TEST_CASE("an epoch that runs backwards flags lost server state once") {
  Fixture f;
  auto round_trip = [&](std::uint16_t port, std::uint32_t epoch, Clock::time_point now) {
    f.client.map(Transport::udp, port, port, 3600s, now);
    f.from_gateway(answer(f.only_outgoing(), {.epoch = epoch}), now);
    CHECK_FALSE(f.only_completion().error);
  };
  round_trip(7076, 5000, kT0);
  round_trip(7077, 5010, kT0 + 10s);
  CHECK_FALSE(f.client.take_server_lost_state());
  round_trip(7078, 3, kT0 + 20s);  // the gateway restarted
  CHECK(f.client.take_server_lost_state());
  CHECK_FALSE(f.client.take_server_lost_state());
  round_trip(7079, 13, kT0 + 30s);
  CHECK_FALSE(f.client.take_server_lost_state());

  // Error responses carry a valid epoch too.
  f.client.map(Transport::udp, 7080, 7080, 3600s, kT0 + 40s);
  f.from_gateway(answer(f.only_outgoing(), {.result = ResultCode::no_resources, .lifetime = 30, .epoch = 1}),
                 kT0 + 40s);
  CHECK(f.only_completion().error == make_pcp_error(8));
  CHECK(f.client.take_server_lost_state());
}

TEST_CASE("an unsolicited ANNOUNCE after a gateway restart flags lost state") {
  Fixture f;
  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  f.from_gateway(answer(f.only_outgoing(), {.epoch = 5000}));
  f.client.take_completions();

  // miniupnpd restarted: epoch 0, one ANNOUNCE to 224.0.0.1:5350.
  const auto announce = encode_announce(kGateway);
  f.from_gateway(answer(Bytes(announce.begin(), announce.end()), {.lifetime = 0, .epoch = 0}), kT0 + 60s);
  CHECK(f.client.take_server_lost_state());
  CHECK(f.client.take_completions().empty());
  CHECK(f.client.dropped_total() == 0);
}

TEST_CASE("pipelined requests are matched to their own responses") {
  Fixture f;
  const auto udp76 = f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  const auto tcp76 = f.client.map(Transport::tcp, 7076, 7076, 3600s, kT0);
  const auto udp77 = f.client.map(Transport::udp, 7077, 7077, 3600s, kT0);
  const auto probe = f.client.announce(kT0);
  const auto out = f.client.take_outgoing();
  REQUIRE(out.size() == 4);
  CHECK(f.client.pending() == 4);

  f.from_gateway(answer(out[2], {.external_port = 9077}));
  f.from_gateway(answer(out[3], {.lifetime = 0}));
  f.from_gateway(answer(out[1], {.external_port = 9176}));
  f.from_gateway(answer(out[0], {.external_port = 9076}));
  const auto done = f.client.take_completions();
  REQUIRE(done.size() == 4);
  CHECK(done[0].id == udp77);
  REQUIRE(done[0].map);
  CHECK(done[0].map->internal_port == 7077);
  CHECK(done[0].map->external_port == 9077);
  CHECK(done[1].id == probe);
  CHECK_FALSE(done[1].map);
  CHECK(done[2].id == tcp76);
  REQUIRE(done[2].map);
  CHECK(done[2].map->proto == Transport::tcp);
  CHECK(done[2].map->external_port == 9176);
  CHECK(done[3].id == udp76);
  REQUIRE(done[3].map);
  CHECK(done[3].map->proto == Transport::udp);
  CHECK(done[3].map->external_port == 9076);
  CHECK(f.client.pending() == 0);
  CHECK(f.client.dropped_total() == 0);
}

TEST_CASE("an ANNOUNCE request completes on the ANNOUNCE response") {
  Fixture f;
  const auto id = f.client.announce(kT0);
  const auto request = f.only_outgoing();
  const auto expected = encode_announce(kHost);
  CHECK(request == Bytes(expected.begin(), expected.end()));
  CHECK(f.client.next_wakeup());

  f.from_gateway(answer(request, {.lifetime = 0, .epoch = 77}));
  const auto done = f.only_completion();
  CHECK(done.id == id);
  CHECK_FALSE(done.error);
  CHECK_FALSE(done.map);
  CHECK(done.epoch == 77);
  CHECK(f.client.pending() == 0);
}

TEST_CASE("a NAT-PMP-only or PCPv1 gateway answers ANNOUNCE with UNSUPP_VERSION; a MAP is not failed by it") {
  // UNSUPP_VERSION carries no nonce: any LAN host can forge one from the
  // gateway's address. Discovery (ANNOUNCE) is where it is believed.
  Fixture f;
  const auto map_id = f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  const auto announce_id = f.client.announce(kT0);
  const auto sent = f.client.take_outgoing();
  REQUIRE(sent.size() == 2);

  SECTION("NAT-PMP: version 0, 16-bit result code, 8 bytes") {
    f.from_gateway({0x00, 0x81, 0x00, 0x01, 0x00, 0x00, 0x10, 0x00});
    const auto done = f.only_completion();
    CHECK(done.id == announce_id);
    CHECK(done.error == make_pcp_error(1));
    CHECK(done.epoch == 4096);
  }
  SECTION("PCPv1") {
    Bytes v1(24, 0);
    v1[0] = 1;
    v1[1] = 0x81;
    v1[3] = 1;
    put32(v1, response_header::kLifetime, 1800);
    f.from_gateway(v1);
    const auto done = f.only_completion();
    CHECK(done.id == announce_id);
    CHECK(done.error == make_pcp_error(1));
    CHECK(done.error_lifetime == 1800s);
  }
  CHECK(f.client.pending() == 1);
  CHECK_FALSE(f.client.take_server_lost_state());
  f.from_gateway(answer(sent[0]));
  const auto mapped = f.only_completion();
  CHECK(mapped.id == map_id);
  CHECK_FALSE(mapped.error);
}

TEST_CASE("forged UNSUPP_VERSION responses mid-operation fail no pending MAP") {
  Fixture f;
  for (std::uint16_t port = 7000; port < 7100; ++port) f.client.map(Transport::udp, port, port, 3600s, kT0);
  const auto deletion = f.client.map(Transport::tcp, 8000, 0, 0s, kT0);
  const auto sent = f.client.take_outgoing();
  REQUIRE(sent.size() == 101);
  Bytes v1(24, 0);
  v1[0] = 1;
  v1[1] = 0x81;
  v1[3] = 1;
  for (int i = 0; i < 50; ++i) {
    f.from_gateway({0x00, 0x81, 0x00, 0x01, 0x00, 0x00, 0x10, 0x00});
    f.from_gateway(v1);
  }
  CHECK(f.client.take_completions().empty());
  CHECK(f.client.pending() == 101);
  CHECK(f.client.dropped(DropReason::unexpected) == 100);
  for (const auto& request : sent) f.from_gateway(answer(request, {.lifetime = lifetime_of(request)}));
  const auto done = f.client.take_completions();
  REQUIRE(done.size() == 101);
  for (const auto& completion : done) CHECK_FALSE(completion.error);
  CHECK(done.back().id == deletion);
  CHECK(f.client.pending() == 0);
}

TEST_CASE("a cancelled request is neither retransmitted nor completed") {
  Fixture f;
  const auto id = f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  const auto request = f.only_outgoing();
  f.client.cancel(id);
  CHECK(f.client.pending() == 0);
  CHECK_FALSE(f.client.next_wakeup());
  f.client.on_time(kT0 + 1h);
  CHECK(f.client.take_outgoing().empty());
  CHECK(f.client.take_completions().empty());
  f.from_gateway(answer(request));
  CHECK(f.client.dropped(DropReason::unexpected) == 1);
  f.client.cancel(id);  // twice is harmless
}

TEST_CASE("next_wakeup is the earliest of all pending requests") {
  Fixture f;
  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  const auto first = *f.client.next_wakeup();
  f.client.map(Transport::udp, 7077, 7077, 3600s, kT0 + 1s);
  CHECK(*f.client.next_wakeup() == first);
  CHECK(f.client.take_outgoing().size() == 2);
  f.client.on_time(first);
  CHECK(f.client.take_outgoing().size() == 1);  // only the first was due
  const auto next = *f.client.next_wakeup();
  CHECK(next > first);
  CHECK(seconds(next - kT0) <= 4.3);  // the second request's first retransmission
}

TEST_CASE("the client is deterministic for a seed") {
  auto run = [](std::uint32_t seed) {
    Client client(options(seed));
    client.map(Transport::udp, 7076, 7076, 3600s, kT0);
    client.on_time(*client.next_wakeup());
    auto out = client.take_outgoing();
    out.push_back({});
    const auto wake = seconds(*client.next_wakeup() - kT0);
    return std::pair{out, wake};
  };
  CHECK(run(1) == run(1));
  CHECK(run(1).first[0] != run(2).first[0]);  // another nonce
  CHECK(run(1).second != run(2).second);      // other jitter
}

TEST_CASE("max_request_duration 0 means no bound, like RFC 6887's MRD = 0") {
  auto o = options();
  o.max_request_duration = std::chrono::milliseconds(0);
  Client client(o);
  client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  client.take_outgoing();
  auto last = kT0;
  for (int i = 0; i < 100; ++i) {
    last = *client.next_wakeup();
    client.on_time(last);
    REQUIRE(client.take_outgoing().size() == 1);
  }
  CHECK(last > kT0 + 24h);
  CHECK(client.take_completions().empty());
  CHECK(client.pending() == 1);
}

TEST_CASE("a PEER response is never expected") {
  Fixture f;
  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  auto peer = answer(f.only_outgoing());
  peer[response_header::kROpcode] = kResponseBit | static_cast<std::uint8_t>(Opcode::peer);
  peer.resize(kMinPeerResponseSize);
  f.from_gateway(peer);
  CHECK(f.client.dropped(DropReason::unexpected) == 1);
  CHECK(f.client.pending() == 1);
}

TEST_CASE("a MAP for another device carries a THIRD_PARTY option and completes on the echoed answer") {
  Fixture f;
  const auto id = f.client.map(Transport::tcp, 8080, 8080, 3600s, kT0, kDoorbell);
  const auto request = f.only_outgoing();
  CHECK(third_party_in(request) == kDoorbell);
  MapRequestFields expected;
  expected.client_address = kHost;  // the header names the host that asks
  std::copy_n(request.begin() + request_header::kSize + map_body::kNonce, kNonceSize, expected.nonce.begin());
  expected.proto = Transport::tcp;
  expected.internal_port = 8080;
  expected.suggested_external_port = 8080;
  expected.lifetime = 3600;
  expected.third_party = kDoorbell;
  const auto encoded = encode_map(expected);
  CHECK(request == Bytes(encoded.begin(), encoded.end()));

  // miniupnpd with pcp_allow_thirdparty=yes answers SUCCESS, the option echoed.
  f.from_gateway(answer(request, {.external_port = 8081}));
  const auto done = f.only_completion();
  CHECK(done.id == id);
  CHECK_FALSE(done.error);
  REQUIRE(done.map);
  CHECK(done.map->proto == Transport::tcp);
  CHECK(done.map->internal_port == 8080);
  CHECK(done.map->external_port == 8081);
  CHECK(f.client.dropped_total() == 0);
}

TEST_CASE("naming this host's own address sends no THIRD_PARTY option (RFC 6887 §13.1)") {
  Fixture f;
  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  const auto plain = f.only_outgoing();
  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0, kHost);
  const auto named = f.only_outgoing();
  CHECK_FALSE(third_party_in(named));
  CHECK(named == plain);  // one mapping: same bytes, same nonce
}

TEST_CASE("a refused third-party mapping completes once with the server's code and is not retried") {
  // miniupnpd's default pcp_allow_thirdparty=no answers UNSUPP_OPTION; others
  // say NOT_AUTHORIZED or ADDRESS_MISMATCH. All are long-lifetime errors
  // (lifetime 0 from miniupnpd): asking again at once would be a hot loop.
  for (const auto code : {ResultCode::not_authorized, ResultCode::unsupp_option, ResultCode::address_mismatch}) {
    INFO("result code " << static_cast<int>(code));
    Fixture f;
    const auto id = f.client.map(Transport::udp, 7076, 7076, 3600s, kT0, kDoorbell);
    const auto request = f.only_outgoing();
    f.from_gateway(answer(request, {.result = code, .lifetime = 0}));
    const auto done = f.only_completion();
    CHECK(done.id == id);
    CHECK(done.error == make_pcp_error(static_cast<int>(code)));
    CHECK(done.error_lifetime == 0s);
    CHECK_FALSE(done.map);
    CHECK(f.client.pending() == 0);
    CHECK_FALSE(f.client.next_wakeup());
    f.client.on_time(kT0 + 1h);
    CHECK(f.client.take_outgoing().empty());
    CHECK(f.client.take_completions().empty());
  }
}

TEST_CASE("two devices mapping the same internal port are told apart by the echoed THIRD_PARTY address") {
  // A nonce source that ignores the internal client: the answers can only be
  // told apart by the address the server echoes.
  auto o = options();
  o.nonce_for = [](const ip::address_v4&, Transport, std::uint16_t) { return Nonce{7, 7, 7}; };
  Client client(o);
  const auto doorbell = client.map(Transport::udp, 7076, 7076, 3600s, kT0, kDoorbell);
  const auto camera = client.map(Transport::udp, 7076, 7076, 3600s, kT0, kCamera);
  const auto out = client.take_outgoing();
  REQUIRE(out.size() == 2);
  CHECK(third_party_in(out[0]) == kDoorbell);
  CHECK(third_party_in(out[1]) == kCamera);

  // An answer about a third device is no answer to either.
  auto stranger = answer(out[1]);
  stranger[kMapRequestSize + 4 + 15] = 52;  // ::ffff:10.77.0.52
  client.on_datagram(stranger, kGateway, kServerPort, kT0);
  CHECK(client.dropped(DropReason::unexpected) == 1);

  client.on_datagram(answer(out[1], {.external_port = 9051}), kGateway, kServerPort, kT0);
  client.on_datagram(answer(out[0], {.external_port = 9050}), kGateway, kServerPort, kT0);
  const auto done = client.take_completions();
  REQUIRE(done.size() == 2);
  CHECK(done[0].id == camera);
  REQUIRE(done[0].map);
  CHECK(done[0].map->external_port == 9051);
  CHECK(done[1].id == doorbell);
  REQUIRE(done[1].map);
  CHECK(done[1].map->external_port == 9050);
  CHECK(client.pending() == 0);
}

TEST_CASE("each device's mapping of a port has its own nonce, which matches answers without the option") {
  Fixture f;
  const auto doorbell = f.client.map(Transport::udp, 7076, 7076, 3600s, kT0, kDoorbell);
  const auto camera = f.client.map(Transport::udp, 7076, 7076, 3600s, kT0, kCamera);
  const auto own = f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  const auto out = f.client.take_outgoing();
  REQUIRE(out.size() == 3);
  CHECK(nonce_of(out[0]) != nonce_of(out[1]));
  CHECK(nonce_of(out[0]) != nonce_of(out[2]));
  CHECK(nonce_of(out[1]) != nonce_of(out[2]));

  // A server that leaves the option out of its answer.
  const auto without_option = [](Bytes reply) {
    reply.resize(kMapRequestSize);
    return reply;
  };
  f.from_gateway(without_option(answer(out[1])));
  f.from_gateway(without_option(answer(out[0])));
  f.from_gateway(answer(out[2]));
  const auto done = f.client.take_completions();
  REQUIRE(done.size() == 3);
  CHECK(done[0].id == camera);
  CHECK(done[1].id == doorbell);
  CHECK(done[2].id == own);
  CHECK(f.client.dropped_total() == 0);
}

TEST_CASE("a third party's renewal and deletion carry its nonce and its THIRD_PARTY option") {
  Fixture f;
  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0, kDoorbell);
  const auto first = f.only_outgoing();
  f.from_gateway(answer(first));
  f.client.take_completions();

  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0 + 1800s, kDoorbell);
  const auto renewal = f.only_outgoing();
  CHECK(renewal == first);  // byte for byte: nonce and option

  const auto delete_id = f.client.map(Transport::udp, 7076, 0, 0s, kT0 + 1900s, kDoorbell);
  const auto deletion = f.only_outgoing();
  CHECK(nonce_of(deletion) == nonce_of(first));
  CHECK(third_party_in(deletion) == kDoorbell);
  CHECK(lifetime_of(deletion) == 0);
  f.from_gateway(answer(deletion, {.lifetime = 0}), kT0 + 1900s);
  const auto done = f.only_completion();
  CHECK(done.id == delete_id);
  CHECK_FALSE(done.error);
  REQUIRE(done.map);
  CHECK(done.map->lifetime == 0s);
}

TEST_CASE("a nonce source replaces the random nonces, per (internal client, proto, port)") {
  auto o = options();
  std::vector<std::tuple<ip::address_v4, Transport, std::uint16_t>> asked;
  o.nonce_for = [&asked](const ip::address_v4& internal_client, Transport proto, std::uint16_t port) {
    asked.emplace_back(internal_client, proto, port);
    Nonce nonce{};
    nonce.fill(static_cast<std::uint8_t>(port & 0xff));
    nonce[0] = internal_client.to_bytes()[3];
    return nonce;
  };
  Client client(o);
  client.map(Transport::udp, 0x1234, 0x1234, 3600s, kT0);
  client.map(Transport::udp, 0x1234, 0, 0s, kT0);  // delete: same nonce, not asked again
  client.map(Transport::udp, 0x1234, 0x1234, 3600s, kT0, kDoorbell);
  client.map(Transport::udp, 0x1234, 0x1234, 3600s, kT0, kHost);  // this host named: this host's nonce
  const auto sent = client.take_outgoing();
  REQUIRE(sent.size() == 4);
  REQUIRE(asked.size() == 2);
  CHECK(asked[0] == std::tuple{kHost, Transport::udp, std::uint16_t{0x1234}});
  CHECK(asked[1] == std::tuple{kDoorbell, Transport::udp, std::uint16_t{0x1234}});
  const Bytes own = {2, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34};
  const Bytes doorbell = {50, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34};
  CHECK(nonce_of(sent[0]) == own);
  CHECK(nonce_of(sent[1]) == own);
  CHECK(nonce_of(sent[2]) == doorbell);
  CHECK(nonce_of(sent[3]) == own);
}

TEST_CASE("a refused request is not sent again before its error lifetime has passed") {
  Fixture f;
  const auto first = f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  const auto request = f.only_outgoing();
  f.from_gateway(answer(request, {.result = ResultCode::no_resources, .lifetime = 30}));
  auto done = f.only_completion();
  CHECK(done.id == first);
  CHECK(done.error == make_pcp_error(8));
  CHECK(done.error_lifetime == 30s);

  // Asked again 10.5 s later: answered at once with the same error, unsent.
  const auto again = f.client.map(Transport::udp, 7076, 7076, 3600s, kT0 + 10500ms);
  CHECK(f.client.take_outgoing().empty());
  CHECK(f.client.pending() == 0);
  CHECK_FALSE(f.client.next_wakeup());
  done = f.only_completion();
  CHECK(done.id == again);
  CHECK(done.id != first);
  CHECK(done.error == make_pcp_error(8));
  CHECK(done.error_lifetime == 20s);  // 19.5 s left, rounded up
  CHECK_FALSE(done.map);

  // Other requests go out meanwhile: another port, another lease, the delete.
  f.client.map(Transport::udp, 7077, 7077, 3600s, kT0 + 11s);
  f.client.map(Transport::udp, 7076, 7076, 7200s, kT0 + 11s);
  f.client.map(Transport::udp, 7076, 0, 0s, kT0 + 11s);
  CHECK(f.client.take_outgoing().size() == 3);
  CHECK(f.client.take_completions().empty());

  // Once the lifetime has passed, the request goes out as before.
  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0 + 30s);
  CHECK(f.only_outgoing() == request);
  CHECK(f.client.take_completions().empty());
}

TEST_CASE("a long-lifetime error is held for at most 30 minutes, however long the gateway says") {
  Fixture f;
  f.client.map(Transport::tcp, 8080, 8080, 3600s, kT0);
  f.from_gateway(answer(f.only_outgoing(), {.result = ResultCode::not_authorized, .lifetime = 0xFFFFFFFF}));
  CHECK(f.only_completion().error_lifetime == std::chrono::seconds(0xFFFFFFFF));  // as sent

  f.client.map(Transport::tcp, 8080, 8080, 3600s, kT0 + 30min - 1s);
  CHECK(f.client.take_outgoing().empty());
  const auto held = f.only_completion();
  CHECK(held.error == make_pcp_error(2));
  CHECK(held.error_lifetime == 1s);

  f.client.map(Transport::tcp, 8080, 8080, 3600s, kT0 + 30min);
  CHECK(f.client.take_outgoing().size() == 1);
}

TEST_CASE("an error lifetime of 0, as miniupnpd sends NOT_AUTHORIZED, holds nothing back") {
  Fixture f;
  f.client.map(Transport::tcp, 80, 80, 3600s, kT0);
  f.from_gateway(answer(f.only_outgoing(), {.result = ResultCode::not_authorized, .lifetime = 0}));
  f.client.take_completions();
  f.client.map(Transport::tcp, 80, 80, 3600s, kT0);
  CHECK(f.client.take_outgoing().size() == 1);
  CHECK(f.client.take_completions().empty());
}

TEST_CASE("a grant or deletion of the mapping ends what was remembered of its requests") {
  // miniupnpd answers the delete of a mapping it does not hold NO_RESOURCES
  // (30 s); once the mapping is made again, a delete must reach the gateway.
  Fixture f;
  f.client.map(Transport::udp, 7076, 0, 0s, kT0);
  f.from_gateway(answer(f.only_outgoing(), {.result = ResultCode::no_resources, .lifetime = 30}));
  CHECK(f.only_completion().error == make_pcp_error(8));
  f.client.map(Transport::udp, 7076, 0, 0s, kT0 + 1s);
  CHECK(f.client.take_outgoing().empty());
  CHECK(f.only_completion().error == make_pcp_error(8));

  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0 + 2s);
  f.from_gateway(answer(f.only_outgoing()), kT0 + 2s);
  CHECK(f.only_completion().map);
  f.client.map(Transport::udp, 7076, 0, 0s, kT0 + 3s);
  CHECK(f.client.take_outgoing().size() == 1);
  CHECK(f.client.take_completions().empty());
}

TEST_CASE("after the gateway lost its state, what it refused is asked again at once") {
  Fixture f;
  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  f.from_gateway(answer(f.only_outgoing(), {.result = ResultCode::no_resources, .lifetime = 1800, .epoch = 5000}));
  f.client.take_completions();

  // miniupnpd restarted: epoch 0, one ANNOUNCE to 224.0.0.1:5350.
  const auto announce = encode_announce(kGateway);
  f.from_gateway(answer(Bytes(announce.begin(), announce.end()), {.lifetime = 0, .epoch = 0}), kT0 + 60s);
  CHECK(f.client.take_server_lost_state());
  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0 + 61s);
  CHECK(f.client.take_outgoing().size() == 1);
  CHECK(f.client.take_completions().empty());
}

TEST_CASE("SUCCESS with lifetime 0 to a new mapping is a failure: the gateway made none") {
  Fixture f;
  const auto id = f.client.map(Transport::udp, 7076, 7076, 3600s, kT0);
  f.from_gateway(answer(f.only_outgoing(), {.lifetime = 0}));
  const auto done = f.only_completion();
  CHECK(done.id == id);
  CHECK(done.error == Errc::nothing_granted);
  CHECK_FALSE(done.map);
  CHECK(f.client.pending() == 0);
  CHECK(f.client.dropped_total() == 0);

  // Nothing to honour: the next try goes out.
  f.client.map(Transport::udp, 7076, 7076, 3600s, kT0 + 1s);
  CHECK(f.client.take_outgoing().size() == 1);
}
