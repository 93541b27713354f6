#include "agent/base/bounded_concurrency.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <exception>
#include <vector>

namespace natkeeper {

asio::awaitable<void> for_each_windowed(std::size_t count, std::size_t maximum, std::function<std::size_t()> window,
                                        std::function<asio::awaitable<void>(std::size_t)> job) {
  auto executor = co_await asio::this_coro::executor;
  const std::size_t workers = std::min(count, std::max<std::size_t>(maximum, 1));
  if (workers == 0) co_return;
  // Each of `workers` coroutines runs one job at a time; those beyond the
  // window wait for a job to end. They use this frame: it must outlive them
  // even when the caller cancels. A cancellation is passed on to every worker
  // (their requests in flight end with operation_aborted, no new job starts),
  // then awaited.
  co_await asio::this_coro::throw_if_cancelled(false);
  std::size_t next = 0, running = workers, in_flight = 0;
  bool cancelled = false;
  std::exception_ptr failure;
  std::vector<asio::cancellation_signal> cancel_worker(workers);
  asio::steady_timer all_done(executor, asio::steady_timer::time_point::max());
  // Never expires: cancelling it wakes the workers waiting for room.
  asio::steady_timer job_ended(executor, asio::steady_timer::time_point::max());
  auto has_room = [&] { return in_flight < std::max<std::size_t>(window(), 1); };
  for (std::size_t w = 0; w < workers; ++w) {
    asio::co_spawn(
        executor,
        [&]() -> asio::awaitable<void> {
          while (next < count && !cancelled) {
            if (!has_room()) {
              co_await job_ended.async_wait(asio::as_tuple(asio::use_awaitable));
              continue;
            }
            ++in_flight;
            struct Ended {
              std::size_t& in_flight;
              asio::steady_timer& job_ended;
              ~Ended() {
                --in_flight;
                job_ended.cancel();
              }
            } ended{in_flight, job_ended};
            co_await job(next++);
          }
        },
        asio::bind_cancellation_slot(cancel_worker[w].slot(), [&](std::exception_ptr error) {
          if (error && !failure) failure = error;
          if (--running == 0) all_done.cancel();
        }));
  }
  while (running > 0) {
    co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
    if (running == 0 || cancelled) continue;
    if ((co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none) {
      cancelled = true;
      for (auto& signal : cancel_worker) signal.emit(asio::cancellation_type::terminal);
      job_ended.cancel();
      co_await asio::this_coro::reset_cancellation_state(asio::disable_cancellation());
    }
    all_done.expires_at(asio::steady_timer::time_point::max());
  }
  if (cancelled) throw boost::system::system_error(asio::error::operation_aborted);
  if (failure) std::rethrow_exception(failure);
}

asio::awaitable<void> for_each_bounded(std::size_t count, std::size_t parallel,
                                       std::function<asio::awaitable<void>(std::size_t)> job) {
  return for_each_windowed(count, parallel, [parallel] { return parallel; }, std::move(job));
}

}  // namespace natkeeper
