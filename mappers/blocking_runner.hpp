#pragma once
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>

#include "mappers/errors.hpp"

namespace natkeeper {

// Runs blocking calls (libminiupnpc's) on a worker executor and resumes the
// awaiting coroutine on its own executor, so the event loop never blocks.
// The wait is bounded: past the deadline, or when the awaiting operation is
// cancelled, the caller gets timed_out / operation_canceled at once and the
// worker's late result is dropped. The call must therefore own everything it
// touches (capture by value or shared_ptr).
class BlockingRunner {
 public:
  BlockingRunner(boost::asio::any_io_executor workers, std::chrono::milliseconds deadline)
      : workers_(std::move(workers)), deadline_(deadline) {}

  // `call` returns a type constructible from std::error_code (Result<T> or
  // std::error_code itself).
  template <class Call>
  auto run(Call call) const -> boost::asio::awaitable<std::invoke_result_t<Call&>> {
    namespace asio = boost::asio;
    using R = std::invoke_result_t<Call&>;
    struct Pending {
      explicit Pending(const asio::any_io_executor& loop) : done(loop) {}
      asio::steady_timer done;
      std::optional<R> result;
    };
    asio::any_io_executor loop = co_await asio::this_coro::executor;
    auto pending = std::make_shared<Pending>(loop);
    pending->done.expires_after(deadline_);
    asio::post(workers_, [pending, loop, call = std::move(call)]() mutable {
      R result = call();
      asio::post(loop, [pending, result = std::move(result)]() mutable {
        pending->result = std::move(result);
        pending->done.cancel();
      });
    });
    auto [ec] = co_await pending->done.async_wait(asio::as_tuple(asio::use_awaitable));
    if (pending->result) co_return std::move(*pending->result);
    co_return R{ec ? std::make_error_code(std::errc::operation_canceled) : make_error_code(Errc::timed_out)};
  }

 private:
  boost::asio::any_io_executor workers_;
  std::chrono::milliseconds deadline_;
};

}  // namespace natkeeper
