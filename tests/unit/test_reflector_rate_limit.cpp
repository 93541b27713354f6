// The reflector's rate limits: token buckets and the bounded table of sources,
// on virtual time.
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
    CHECK(limiter.take(a, t0));
    CHECK(limiter.take(a, t0));
    CHECK_FALSE(limiter.take(a, t0));
    CHECK(limiter.take(b, t0));
    CHECK(limiter.take(ip::make_address("::ffff:192.0.2.2"), t0));
    CHECK_FALSE(limiter.take(ip::make_address("::ffff:192.0.2.2"), t0));
    CHECK(limiter.take(ip::make_address("2001:db8:1:2::1"), t0));
    CHECK(limiter.take(ip::make_address("2001:db8:1:2:ffff::9"), t0));
    CHECK_FALSE(limiter.take(ip::make_address("2001:db8:1:2:abcd::"), t0));
    CHECK(limiter.take(ip::make_address("2001:db8:1:3::1"), t0));
  }
  SECTION("the table never holds more than its capacity") {
    SourceLimiter limiter(1, 1, 64, 0);
    for (std::uint32_t i = 0; i < 10'000; ++i) {
      limiter.take(ip::address_v4(0x0A000000 + i), t0);
      REQUIRE(limiter.size() <= 64);
    }
    CHECK(limiter.size() == 64);
    // The most recent sources are remembered, the oldest forgotten.
    CHECK_FALSE(limiter.take(ip::address_v4(0x0A000000 + 9'999), t0));
    CHECK(limiter.take(ip::address_v4(0x0A000000), t0));
  }
  CHECK(burst_for(10) == 20);
  CHECK(burst_for(0.1) == 1);
}
