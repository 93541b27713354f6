#include <catch2/catch.hpp>

#include "mappers/epoch.hpp"

using natkeeper::EpochTracker;
using namespace std::chrono_literals;

TEST_CASE("an epoch that advances with the clock is the same gateway") {
  EpochTracker tracker;
  const auto t0 = EpochTracker::Clock::time_point{} + 1000s;
  CHECK_FALSE(tracker.lost_state(500, t0));
  CHECK_FALSE(tracker.lost_state(500, t0));          // same second
  CHECK_FALSE(tracker.lost_state(560, t0 + 60s));
  CHECK_FALSE(tracker.lost_state(562, t0 + 60s));    // within 2 s of slack
  CHECK_FALSE(tracker.lost_state(4052, t0 + 3360s)); // 190 s fast over 3300 s: within 1/16
}

TEST_CASE("an epoch that runs backwards means the gateway lost its state") {
  EpochTracker tracker;
  const auto t0 = EpochTracker::Clock::time_point{} + 1000s;
  CHECK_FALSE(tracker.lost_state(5000, t0));
  CHECK_FALSE(tracker.lost_state(4999, t0));  // one second back is tolerated
  CHECK(tracker.lost_state(3, t0 + 10s));     // restarted
  CHECK_FALSE(tracker.lost_state(13, t0 + 20s));  // the new epoch is the reference
}

TEST_CASE("an epoch that advances far slower or faster than the clock means lost state") {
  EpochTracker slow;
  const auto t0 = EpochTracker::Clock::time_point{} + 1000s;
  CHECK_FALSE(slow.lost_state(100, t0));
  CHECK(slow.lost_state(110, t0 + 600s));  // rebooted during the 10 minutes

  EpochTracker fast;
  CHECK_FALSE(fast.lost_state(100, t0));
  CHECK(fast.lost_state(1000, t0 + 10s));
}
