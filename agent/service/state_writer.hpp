#pragma once
// Writes the service's state file off the event loop: its fsync can take
// seconds on a busy disk, which must not stall the loop and its watchdog.
// One write at a time, in the order asked; a failure is logged from the loop.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/strand.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <system_error>

#include "agent/codecs/state_codec.hpp"

namespace natkeeper {

namespace asio = boost::asio;

class StateWriter {
 public:
  // Writes `snapshot` to `file`, or removes the file when there is none.
  using Write = std::function<std::error_code(const std::filesystem::path& file,
                                              const std::optional<state::ServiceState>& snapshot)>;
  // write_state_file, or remove_state_file for nothing.
  static std::error_code write_or_remove(const std::filesystem::path& file,
                                         const std::optional<state::ServiceState>& snapshot);

  // Failures are reported on `loop`; writes run on `workers`.
  StateWriter(asio::any_io_executor loop, asio::any_io_executor workers, std::filesystem::path file,
              Write write = write_or_remove);

  const std::filesystem::path& file() const { return file_; }
  // Records `snapshot` (nullopt: nothing to record, the file goes).
  void save(std::optional<state::ServiceState> snapshot);
  // Completes once every write asked for so far is done.
  asio::awaitable<void> flush();

 private:
  asio::any_io_executor loop_;
  asio::strand<asio::any_io_executor> strand_;
  std::filesystem::path file_;
  Write write_;
};

}  // namespace natkeeper
