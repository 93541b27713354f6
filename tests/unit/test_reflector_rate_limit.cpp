// The reflector's budgets: token buckets, the bounded table of sources, the
// keys that say whose a budget is, and the slot counts; on virtual time.
#include <catch2/catch.hpp>

#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstdint>

#include "agent/reflector/rate_limit.hpp"

using namespace natkeeper::reflector;
using namespace std::chrono_literals;
namespace ip = boost::asio::ip;

TEST_CASE("reflector: token buckets and the bounded source table", "[reflector][rate_limit]") {
  const auto t0 = Clock::time_point{} + 1h;
  SECTION("a bucket starts full, refills at its rate, never above its burst") {
    TokenBucket bucket(2, 4, t0);
    for (int i = 0; i < 4; ++i) CHECK(bucket.take(t0));
    CHECK_FALSE(bucket.take(t0));
    CHECK_FALSE(bucket.take(t0 + 400ms));
    CHECK(bucket.take(t0 + 500ms));
    CHECK_FALSE(bucket.take(t0 + 500ms));
    int taken = 0;
    while (bucket.take(t0 + 100s)) ++taken;
    CHECK(taken == 4);
  }
  SECTION("each source has its own bucket; IPv6 sources share one per /64") {
    SourceLimiter limiter(1, 2, 100, 0);
    const auto a = ip::make_address("192.0.2.1"), b = ip::make_address("192.0.2.2");
    CHECK(limiter.take(rate_key(a), t0));
    CHECK(limiter.take(rate_key(a), t0));
    CHECK_FALSE(limiter.take(rate_key(a), t0));
    CHECK(limiter.take(rate_key(b), t0));
    CHECK(limiter.take(rate_key(ip::make_address("::ffff:192.0.2.2")), t0));
    CHECK_FALSE(limiter.take(rate_key(ip::make_address("::ffff:192.0.2.2")), t0));
    CHECK(limiter.take(rate_key(ip::make_address("2001:db8:1:2::1")), t0));
    CHECK(limiter.take(rate_key(ip::make_address("2001:db8:1:2:ffff::9")), t0));
    CHECK_FALSE(limiter.take(rate_key(ip::make_address("2001:db8:1:2:abcd::")), t0));
    CHECK(limiter.take(rate_key(ip::make_address("2001:db8:1:3::1")), t0));
  }
  SECTION("the table never holds more than its capacity") {
    SourceLimiter limiter(1, 1, 64, 0);
    for (std::uint32_t i = 0; i < 10'000; ++i) {
      limiter.take(rate_key(ip::address_v4(0x0A000000 + i)), t0);
      REQUIRE(limiter.size() <= 64);
    }
    CHECK(limiter.size() == 64);
    // The most recent sources are remembered, the oldest forgotten.
    CHECK_FALSE(limiter.take(rate_key(ip::address_v4(0x0A000000 + 9'999)), t0));
    CHECK(limiter.take(rate_key(ip::address_v4(0x0A000000)), t0));
  }
  CHECK(burst_for(10) == 20);
  CHECK(burst_for(0.1) == 1);
}

TEST_CASE("reflector: whose budget a source charges", "[reflector][rate_limit]") {
  auto address = [](const char* text) { return ip::make_address(text); };
  SECTION("rates: an IPv4 address, an IPv6 /64; IPv4-mapped is IPv4") {
    CHECK(rate_key(address("192.0.2.1")) == rate_key(address("::ffff:192.0.2.1")));
    CHECK(rate_key(address("192.0.2.1")) != rate_key(address("192.0.2.2")));
    CHECK(rate_key(address("2001:db8:1:2::1")) == rate_key(address("2001:db8:1:2:ffff::9")));
    CHECK(rate_key(address("2001:db8:1:2::1")) != rate_key(address("2001:db8:1:3::1")));
  }
  SECTION("unproven requests: the exact address and port") {
    CHECK(endpoint_key(address("192.0.2.1"), 4000) == endpoint_key(address("::ffff:192.0.2.1"), 4000));
    CHECK(endpoint_key(address("192.0.2.1"), 4000) != endpoint_key(address("192.0.2.1"), 4001));
    CHECK(endpoint_key(address("2001:db8:1:2::1"), 4000) != endpoint_key(address("2001:db8:1:2::2"), 4000));
  }
  SECTION("slots: an IPv4 /24, an IPv6 /48") {
    CHECK(slot_key(address("192.0.2.1")) == slot_key(address("192.0.2.254")));
    CHECK(slot_key(address("192.0.2.1")) == slot_key(address("::ffff:192.0.2.77")));
    CHECK(slot_key(address("192.0.2.1")) != slot_key(address("192.0.3.1")));
    CHECK(slot_key(address("2001:db8:1::1")) == slot_key(address("2001:db8:1:ffff::1")));
    CHECK(slot_key(address("2001:db8:1::1")) != slot_key(address("2001:db8:2::1")));
    // An IPv6 /48 of zeros is not IPv4.
    CHECK(slot_key(address("::1")) != slot_key(address("0.0.0.1")));
  }
}

TEST_CASE("reflector: slots are capped in all and per prefix", "[reflector][rate_limit]") {
  SlotCounts slots(5, 2);
  const auto a = slot_key(ip::make_address("192.0.2.1")), b = slot_key(ip::make_address("198.51.100.1")),
             c = slot_key(ip::make_address("203.0.113.1"));
  slots.take(a);
  CHECK(slots.available(a));
  slots.take(a);
  CHECK(slots.prefix_full(a));
  CHECK_FALSE(slots.available(a));
  CHECK(slots.available(b));
  slots.take(b);
  slots.take(b);
  slots.take(c);
  CHECK(slots.full());
  CHECK_FALSE(slots.available(c));
  slots.give_back(a);
  CHECK(slots.available(a));
  CHECK(slots.available(c));
  slots.give_back(a);
  slots.give_back(a);  // one more than taken: ignored
  slots.take(c);
  CHECK_FALSE(slots.full());  // 4 held: b's 2 and c's 2
  CHECK(slots.prefix_full(c));
  slots.take(a);
  CHECK(slots.full());
}
