#pragma once
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <optional>
#include <stdexcept>

// Runs one coroutine to completion on `loop` and returns its result.
template <class T>
T run_loop(boost::asio::io_context& loop, boost::asio::awaitable<T> task) {
  std::optional<T> result;
  boost::asio::co_spawn(loop, std::move(task), [&](std::exception_ptr error, T value) {
    if (error) std::rethrow_exception(error);
    result.emplace(std::move(value));
  });
  loop.restart();
  loop.run();
  if (!result) throw std::logic_error("coroutine did not finish");
  return std::move(*result);
}

// Runs one coroutine on `loop` until it ends, at most `limit` of real time;
// nullopt when it did not end by then.
template <class T>
std::optional<T> run_for(boost::asio::io_context& loop, boost::asio::awaitable<T> task,
                         std::chrono::steady_clock::duration limit) {
  std::optional<T> result;
  boost::asio::co_spawn(loop, std::move(task), [&](std::exception_ptr error, T value) {
    if (error) std::rethrow_exception(error);
    result.emplace(std::move(value));
    loop.stop();
  });
  loop.restart();
  loop.run_for(limit);
  return result;
}
