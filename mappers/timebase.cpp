#include "mappers/timebase.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace natkeeper {

Timebase::TimePoint SystemTimebase::now() const { return Clock::now(); }

std::chrono::system_clock::time_point SystemTimebase::wall_now() const { return std::chrono::system_clock::now(); }

Timebase& system_timebase() {
  static SystemTimebase time;
  return time;
}

asio::awaitable<void> SystemTimebase::sleep_until(TimePoint when) {
  asio::steady_timer timer(co_await asio::this_coro::executor, when);
  co_await timer.async_wait(asio::use_awaitable);
}

}  // namespace natkeeper
