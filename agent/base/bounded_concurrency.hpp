#pragma once
// Jobs run side by side on one executor, at most so many at a time.
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <functional>

namespace natkeeper {

namespace asio = boost::asio;

// Runs job(0) ... job(count - 1) in index order, with at most window() in
// flight (asked before each start, at least 1) and never more than `maximum`.
// Cancelling it cancels the jobs in flight and starts no more; it then throws
// operation_aborted once they have ended.
asio::awaitable<void> for_each_windowed(std::size_t count, std::size_t maximum, std::function<std::size_t()> window,
                                        std::function<asio::awaitable<void>(std::size_t)> job);

// for_each_windowed with a fixed window of `parallel`.
asio::awaitable<void> for_each_bounded(std::size_t count, std::size_t parallel,
                                       std::function<asio::awaitable<void>(std::size_t)> job);

}  // namespace natkeeper
