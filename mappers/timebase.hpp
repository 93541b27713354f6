#pragma once
// Time, injected: the real steady clock and Asio timers in the program,
// virtual time in tests (tests/unit/virtual_time.hpp), so that retransmission
// schedules, renewals due in an hour, backoff and notice spacing are tested in
// milliseconds.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>

namespace natkeeper {

namespace asio = boost::asio;

class Timebase {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Duration = Clock::duration;

  virtual ~Timebase() = default;
  virtual TimePoint now() const = 0;
  // The wall clock, for what is shown to people ("verified 5 min ago").
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
  // Completes at `when` (at once when it has passed, after yielding to the
  // loop); throws operation_aborted when the awaiting coroutine is cancelled.
  virtual asio::awaitable<void> sleep_until(TimePoint when) = 0;
};

// steady_clock, system_clock and a steady_timer on the awaiting coroutine's executor.
class SystemTimebase final : public Timebase {
 public:
  TimePoint now() const override;
  std::chrono::system_clock::time_point wall_now() const override;
  asio::awaitable<void> sleep_until(TimePoint when) override;
};

// The one SystemTimebase of the program, for code that takes a Timebase and
// is given none.
Timebase& system_timebase();

}  // namespace natkeeper
