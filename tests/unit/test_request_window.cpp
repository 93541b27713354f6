#include <catch2/catch.hpp>

#include "agent/cli/progress.hpp"
#include "agent/gateway/request_window.hpp"

using natkeeper::RequestWindow;
using namespace std::chrono_literals;

TEST_CASE("the request window starts at its maximum and stays there while answers are prompt") {
  RequestWindow window({8, 100ms});
  CHECK(window.size() == 8);
  for (int i = 0; i < 100; ++i) window.on_answer(10ms);
  CHECK(window.size() == 8);
}

TEST_CASE("late answers halve the window once per window's worth, down to one") {
  RequestWindow window({16, 100ms});
  window.on_answer(300ms);
  CHECK(window.size() == 8);
  // The other 15 sent with the old window are late for the same reason.
  for (int i = 0; i < 15; ++i) window.on_answer(300ms);
  CHECK(window.size() == 8);
  window.on_answer(300ms);
  CHECK(window.size() == 4);
  for (int i = 0; i < 100; ++i) window.on_answer(300ms);
  CHECK(window.size() == 1);
}

TEST_CASE("a timeout shrinks the window like a late answer") {
  RequestWindow window({4, 100ms});
  window.on_timeout();
  CHECK(window.size() == 2);
}

TEST_CASE("after a shrink, prompt answers grow the window by one per window's worth, up to the maximum") {
  RequestWindow window({8, 100ms});
  window.on_answer(1s);
  REQUIRE(window.size() == 4);
  for (int i = 0; i < 4; ++i) window.on_answer(1ms);
  CHECK(window.size() == 5);
  for (int i = 0; i < 5; ++i) window.on_answer(1ms);
  CHECK(window.size() == 6);
  for (int i = 0; i < 100; ++i) window.on_answer(1ms);
  CHECK(window.size() == 8);
}

TEST_CASE("a window with maximum 0 still lets one request through") {
  RequestWindow window({0, 100ms});
  CHECK(window.size() == 1);
  window.on_answer(1ms);
  CHECK(window.size() == 1);
}

TEST_CASE("the progress line shows the bar, the count, the rate and the time left") {
  using natkeeper::format_progress;
  CHECK(format_progress("mapping", 412, 1000, 4.2s) == "mapping [########............] 412/1000  98/s  ETA 6 s");
  CHECK(format_progress("mapping", 0, 1000, 0s) == "mapping [....................] 0/1000");
  CHECK(format_progress("mapping", 1000, 1000, 10s) == "mapping [####################] 1000/1000  100/s");
  CHECK_THAT(format_progress("mapping", 100, 48501, 30s), Catch::Contains("ETA 4 h 2 min"));
}
