#pragma once
// Virtual time for tests of code that takes a Timebase: time stands still
// while the loop has work, and jumps to the next sleeper's deadline when it
// has none. An hour of a service's life runs in milliseconds, the same way
// every time. Declare it before the io_context its sleepers run on, so that it
// outlives any coroutine still suspended there.
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <functional>
#include <map>

#include "mappers/timebase.hpp"

namespace natkeeper::testing {

class VirtualTime final : public Timebase {
 public:
  // Far from zero by default, like a steady clock after boot: "long ago" stays representable.
  explicit VirtualTime(TimePoint start = TimePoint(std::chrono::hours(1000))) : now_(start) {}

  TimePoint now() const override { return now_; }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(now_.time_since_epoch()));
  }

  boost::asio::awaitable<void> sleep_until(TimePoint when) override {
    auto executor = co_await boost::asio::this_coro::executor;
    if (when <= now_) {
      co_await boost::asio::post(executor, boost::asio::use_awaitable);
      co_return;
    }
    // A timer that never expires on its own: reaching `when` cancels it.
    Sleeper sleeper{boost::asio::steady_timer(executor, TimePoint::max()), false};
    const auto entry = sleepers_.emplace(when, &sleeper);
    // Cancelled before its time: it leaves the schedule (a woken one already has).
    struct Unregister {
      VirtualTime& time;
      Sleeper& sleeper;
      decltype(entry) position;
      ~Unregister() {
        if (!sleeper.woken) time.sleepers_.erase(position);
      }
    } unregister{*this, sleeper, entry};
    boost::system::error_code error;
    co_await sleeper.timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, error));
    if (!sleeper.woken) throw boost::system::system_error(boost::asio::error::operation_aborted);
  }

  // Moves time on while the loop has work, as work that takes time does (a
  // slow build taking datagrams off a flooded socket). Sleepers due meanwhile
  // wake at the next advance().
  void pass(Duration duration) { now_ += duration; }

  // Moves to the earliest sleeper's deadline and wakes every sleeper due
  // then; false when nobody sleeps.
  bool advance() {
    if (sleepers_.empty()) return false;
    now_ = std::max(now_, sleepers_.begin()->first);
    while (!sleepers_.empty() && sleepers_.begin()->first <= now_) {
      Sleeper* sleeper = sleepers_.begin()->second;
      sleepers_.erase(sleepers_.begin());
      sleeper->woken = true;
      sleeper->timer.cancel();
    }
    return true;
  }

  // Before time moves on, waits until the loop has had nothing to do for
  // `quiet` of real time: for tests whose coroutines talk over real
  // (loopback) sockets.
  void wait_for_real_io(std::chrono::milliseconds quiet) { real_io_quiet_ = quiet; }

  // Runs `loop` while moving time on, until `done` holds or `limit` of
  // virtual time has passed. Returns done().
  bool run_until(boost::asio::io_context& loop, const std::function<bool()>& done, Duration limit) {
    const auto end = now_ + limit;
    settle(loop);
    while (!done()) {
      if (sleepers_.empty() || sleepers_.begin()->first > end) {
        now_ = std::max(now_, end);
        settle(loop);
        break;
      }
      advance();
      settle(loop);
    }
    return done();
  }

 private:
  struct Sleeper {
    boost::asio::steady_timer timer;
    bool woken;
  };

  void settle(boost::asio::io_context& loop) const {
    loop.restart();
    loop.poll();
    // Real sockets: what one end sent reaches the other in the kernel, not
    // always by the next poll. Bounded: a loop that never goes quiet is no test.
    for (int i = 0; i < 1000 && real_io_quiet_ > Duration::zero() && loop.run_for(real_io_quiet_) > 0; ++i)
      loop.restart();
  }

  TimePoint now_;
  Duration real_io_quiet_{};
  std::multimap<TimePoint, Sleeper*> sleepers_;
};

}  // namespace natkeeper::testing
