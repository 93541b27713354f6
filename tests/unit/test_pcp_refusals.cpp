#include <catch2/catch.hpp>

#include <cstdint>

#include "mappers/errors.hpp"
#include "mappers/pcp/pcp_refusals.hpp"

using namespace natkeeper;
using namespace natkeeper::pcp;
using namespace std::chrono_literals;
namespace ip = boost::asio::ip;

namespace {

const auto kHost = ip::make_address_v4("10.77.0.2");
const auto kDoorbell = ip::make_address_v4("10.77.0.50");
const auto kT0 = Refusals::Clock::time_point{} + 1000s;
const auto kNoResources = make_pcp_error(8);
const auto kNotAuthorized = make_pcp_error(2);

MapRequestKey request(std::uint16_t port, std::uint32_t lifetime = 3600) {
  return {kHost, Transport::udp, port, port, lifetime};
}

}  // namespace

TEST_CASE("an error lifetime is honoured as sent up to 30 minutes") {
  CHECK(honoured_error_lifetime(0s) == 0s);
  CHECK(honoured_error_lifetime(30s) == 30s);
  CHECK(honoured_error_lifetime(30min) == 30min);
  CHECK(honoured_error_lifetime(30min + 1s) == 30min);
  CHECK(honoured_error_lifetime(std::chrono::seconds(0xFFFFFFFF)) == 30min);
}

TEST_CASE("a refusal holds its request until its lifetime has passed") {
  Refusals refusals;
  refusals.remember(request(7076), kNoResources, 30s, kT0);
  const auto early = refusals.holding(request(7076), kT0);
  REQUIRE(early);
  CHECK(early->error == kNoResources);
  CHECK(early->remaining == 30s);
  const auto late = refusals.holding(request(7076), kT0 + 30s - 1ms);
  REQUIRE(late);
  CHECK(late->remaining == 1ms);
  CHECK_FALSE(refusals.holding(request(7076), kT0 + 30s));
  CHECK(refusals.size() == 0);  // an expired refusal is dropped when asked about
}

TEST_CASE("a refusal holds that request only, not one differing in any field") {
  Refusals refusals;
  refusals.remember(request(7076), kNotAuthorized, 60s, kT0);
  CHECK(refusals.holding(request(7076), kT0 + 1s));
  auto other = request(7076);
  other.internal_client = kDoorbell;
  CHECK_FALSE(refusals.holding(other, kT0 + 1s));
  other = request(7076);
  other.proto = Transport::tcp;
  CHECK_FALSE(refusals.holding(other, kT0 + 1s));
  CHECK_FALSE(refusals.holding(request(7077), kT0 + 1s));
  other = request(7076);
  other.suggested_external_port = 0;
  CHECK_FALSE(refusals.holding(other, kT0 + 1s));
  CHECK_FALSE(refusals.holding(request(7076, 0), kT0 + 1s));      // the delete
  CHECK_FALSE(refusals.holding(request(7076, 7200), kT0 + 1s));   // another lease
}

TEST_CASE("an error lifetime of 0 holds nothing back") {
  // miniupnpd 2.3.1 sends its long-lifetime errors (NOT_AUTHORIZED...) so.
  Refusals refusals;
  refusals.remember(request(80), kNotAuthorized, 0s, kT0);
  CHECK_FALSE(refusals.holding(request(80), kT0));
  CHECK(refusals.size() == 0);
}

TEST_CASE("a gateway's 136-year error lifetime is held for 30 minutes") {
  Refusals refusals;
  refusals.remember(request(7076), kNotAuthorized, std::chrono::seconds(0xFFFFFFFF), kT0);
  const auto held = refusals.holding(request(7076), kT0 + 30min - 1s);
  REQUIRE(held);
  CHECK(held->remaining == 1s);
  CHECK_FALSE(refusals.holding(request(7076), kT0 + 30min));
}

TEST_CASE("a later refusal of the same request replaces the earlier") {
  Refusals refusals;
  refusals.remember(request(7076), kNotAuthorized, 1800s, kT0);
  refusals.remember(request(7076), kNoResources, 30s, kT0 + 10s);
  const auto held = refusals.holding(request(7076), kT0 + 10s);
  REQUIRE(held);
  CHECK(held->error == kNoResources);
  CHECK(held->remaining == 30s);
  CHECK(refusals.size() == 1);
}

TEST_CASE("a grant or deletion of a mapping forgets every refusal of its requests, and only those") {
  Refusals refusals;
  refusals.remember(request(7076), kNoResources, 30s, kT0);
  refusals.remember(request(7076, 0), kNoResources, 30s, kT0);  // its delete
  auto elsewhere = request(7076);
  elsewhere.suggested_external_port = 0xFFFF;
  elsewhere.lifetime = 0xFFFFFFFF;
  refusals.remember(elsewhere, kNoResources, 30s, kT0);
  refusals.remember(request(7075), kNoResources, 30s, kT0);
  refusals.remember(request(7077), kNoResources, 30s, kT0);
  auto tcp = request(7076);
  tcp.proto = Transport::tcp;
  refusals.remember(tcp, kNoResources, 30s, kT0);
  auto doorbell = request(7076);
  doorbell.internal_client = kDoorbell;
  refusals.remember(doorbell, kNoResources, 30s, kT0);
  REQUIRE(refusals.size() == 7);

  refusals.forget_mapping(request(7076, 1234));
  CHECK_FALSE(refusals.holding(request(7076), kT0));
  CHECK_FALSE(refusals.holding(request(7076, 0), kT0));
  CHECK_FALSE(refusals.holding(elsewhere, kT0));
  CHECK(refusals.holding(request(7075), kT0));
  CHECK(refusals.holding(request(7077), kT0));
  CHECK(refusals.holding(tcp, kT0));
  CHECK(refusals.holding(doorbell, kT0));
}

TEST_CASE("what is remembered is bounded: the expired go first, then what ends soonest") {
  Refusals refusals(4);
  refusals.remember(request(1), kNoResources, 10s, kT0);
  refusals.remember(request(2), kNoResources, 100s, kT0);
  refusals.remember(request(3), kNoResources, 20s, kT0);
  refusals.remember(request(4), kNoResources, 200s, kT0);
  CHECK(refusals.size() == 4);

  // Full: request 1's refusal has ended, and goes.
  refusals.remember(request(5), kNoResources, 30s, kT0 + 10s);
  CHECK(refusals.size() == 4);
  CHECK_FALSE(refusals.holding(request(1), kT0 + 10s));

  // Full, none ended: request 3's ends soonest (at 20 s), and goes.
  refusals.remember(request(6), kNoResources, 300s, kT0 + 11s);
  CHECK(refusals.size() == 4);
  CHECK_FALSE(refusals.holding(request(3), kT0 + 11s));
  CHECK(refusals.holding(request(2), kT0 + 11s));
  CHECK(refusals.holding(request(4), kT0 + 11s));
  CHECK(refusals.holding(request(5), kT0 + 11s));
  CHECK(refusals.holding(request(6), kT0 + 11s));

  // A flood of distinct refusals never holds more.
  for (std::uint16_t port = 1000; port < 3000; ++port) refusals.remember(request(port), kNoResources, 1800s, kT0 + 12s);
  CHECK(refusals.size() == 4);
  // Refusing again what is held takes no room from the others.
  refusals.remember(request(2999), kNotAuthorized, 1800s, kT0 + 13s);
  CHECK(refusals.size() == 4);
  CHECK(refusals.holding(request(2998), kT0 + 13s));
}

TEST_CASE("the default bound is 1024 refusals") {
  Refusals refusals;
  for (std::uint32_t port = 1; port <= 5000; ++port)
    refusals.remember(request(static_cast<std::uint16_t>(port)), kNotAuthorized, 1800s, kT0);
  CHECK(refusals.size() == Refusals::kDefaultCapacity);
  CHECK(Refusals::kDefaultCapacity == 1024);
}

TEST_CASE("clear forgets every refusal") {
  Refusals refusals;
  refusals.remember(request(7076), kNoResources, 30s, kT0);
  refusals.remember(request(7077), kNotAuthorized, 1800s, kT0);
  refusals.clear();
  CHECK(refusals.size() == 0);
  CHECK_FALSE(refusals.holding(request(7076), kT0));
}
