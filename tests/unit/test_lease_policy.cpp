#include <catch2/catch.hpp>

#include "mappers/lease_policy.hpp"

using namespace natkeeper::lease;
using namespace std::chrono_literals;

TEST_CASE("lease policy: the schedule never goes beyond the request or the cap", "[lease]") {
  CHECK(scheduled_lease(3600s, 3600s) == 3600s);
  CHECK(scheduled_lease(3600s, 1800s) == 1800s);            // a gateway may grant less
  CHECK(scheduled_lease(3600s, 4294967295s) == 3600s);      // 2^32-1 s: forged, or a bug
  CHECK(scheduled_lease(60s, 120s) == 60s);                 // raised to a gateway's minimum
  CHECK(scheduled_lease(72h, 72h) == kMaxScheduledLease);   // asked for longer than the cap
  CHECK(scheduled_lease(72h, 4294967295s) == kMaxScheduledLease);
}

TEST_CASE("lease policy: only a grant far above the request needs confirming", "[lease]") {
  CHECK_FALSE(needs_confirmation(3600s, 3600s));
  CHECK_FALSE(needs_confirmation(3600s, 7200s));  // twice: still plausible
  CHECK(needs_confirmation(3600s, 7201s));
  CHECK_FALSE(needs_confirmation(60s, 120s));     // PCP's usual minimum lifetime
  CHECK_FALSE(needs_confirmation(60s, 600s));     // within the slack
  CHECK(needs_confirmation(60s, 661s));
  CHECK(needs_confirmation(3600s, 4294967295s));
  CHECK_FALSE(needs_confirmation(72h, 72h));
}
