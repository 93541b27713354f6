#include "agent/service/state_writer.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/base/log.hpp"
#include "agent/base/state_file.hpp"

namespace natkeeper {

std::error_code StateWriter::write_or_remove(const std::filesystem::path& file,
                                             const std::optional<state::ServiceState>& snapshot) {
  return snapshot ? write_state_file(file, *snapshot) : remove_state_file(file);
}

StateWriter::StateWriter(asio::any_io_executor loop, asio::any_io_executor workers, std::filesystem::path file,
                         Write write)
    : loop_(std::move(loop)), strand_(asio::make_strand(workers)), file_(std::move(file)), write_(std::move(write)) {}

void StateWriter::save(std::optional<state::ServiceState> snapshot) {
  // The worker owns copies only.
  asio::post(strand_, [file = file_, write = write_, snapshot = std::move(snapshot), loop = loop_] {
    const auto error = write(file, snapshot);
    if (error)
      asio::post(loop, [file, error] { log::warning("cannot write {}: {}", file.string(), error.message()); });
  });
}

asio::awaitable<void> StateWriter::flush() {
  // The strand runs in order: this completes after every write posted before it.
  co_await asio::post(strand_, asio::use_awaitable);
}

}  // namespace natkeeper
