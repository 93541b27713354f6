#include <catch2/catch.hpp>

#include "agent/service/service_policy.hpp"

using namespace natkeeper;
using namespace std::chrono_literals;

TEST_CASE("renewal falls in [1/2, 5/8] of the lifetime", "[service_policy]") {
  CHECK(policy::renewal_delay(3600s, 0.0) == 1800s);
  CHECK(policy::renewal_delay(3600s, 1.0) == 2250s);
  CHECK(policy::renewal_delay(3600s, 0.5) == 2025s);
  CHECK(policy::renewal_delay(3600s, 7.0) == 2250s);  // out-of-range randomness is clamped
  CHECK(policy::renewal_window_start(120s) == 60s);
}

TEST_CASE("retries back off from 5 s to 10 minutes with ±25 % spread", "[service_policy]") {
  CHECK(policy::retry_delay(1, 0.5) == 5s);
  CHECK(policy::retry_delay(2, 0.5) == 10s);
  CHECK(policy::retry_delay(4, 0.5) == 40s);
  CHECK(policy::retry_delay(40, 0.5) == 600s);
  CHECK(policy::retry_delay(1, 0.0) == 3750ms);
  CHECK(policy::retry_delay(1, 1.0) == 6250ms);
  CHECK(policy::announcement_delay(0.5) == 250ms);
  CHECK(policy::announcement_delay(1.5) == 500ms);
}

TEST_CASE("only gateway, protocol and IGD URL changes move every mapping", "[service_policy]") {
  config::Config before, after;
  after.lease = 600s;
  after.ports.push_back({Transport::udp, 5000, 5001});
  CHECK_FALSE(policy::gateway_settings_differ(before, after));
  after.protocol = config::ProtocolChoice::pcp;
  CHECK(policy::gateway_settings_differ(before, after));
  after = before;
  after.gateway = boost::asio::ip::make_address_v4("10.0.0.1");
  CHECK(policy::gateway_settings_differ(before, after));
}

TEST_CASE("a gateway that keeps losing its state: three remaps at once, then backoff", "[service_policy]") {
  CHECK(policy::remap_delay_after_loss(1, 0.5) == policy::Duration::zero());
  CHECK(policy::remap_delay_after_loss(3, 0.5) == policy::Duration::zero());
  CHECK(policy::remap_delay_after_loss(4, 0.5) == 5s);
  CHECK(policy::remap_delay_after_loss(5, 0.5) == 10s);
}

TEST_CASE("slices of the read-back are 8 s apart: 4 requests at 0.5 a second", "[service_policy]") {
  CHECK(policy::held_check_spacing() == 8s);
  CHECK(policy::held_check_delay(10s, false) == policy::held_check_spacing());
  CHECK(policy::held_check_delay(58s, true) == policy::held_check_spacing());
  CHECK(policy::held_check_delay(20s, true) == 40s);
}

TEST_CASE("an event subscription is renewed at half its duration, every one to five minutes", "[service_policy]") {
  CHECK(policy::subscription_renewal_delay(300s) == 150s);
  CHECK(policy::subscription_renewal_delay(1800s) == 300s);
  CHECK(policy::subscription_renewal_delay(86400s) == 300s);
  CHECK(policy::subscription_renewal_delay(60s) == 60s);
  CHECK(policy::subscription_renewal_delay(0s) == 60s);
}
