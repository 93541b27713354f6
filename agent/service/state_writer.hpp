#pragma once
// Writes the service's state file off the event loop: its fsync can take
// seconds on a busy disk, which must not stall the loop and its watchdog.
// One write at a time, and only the newest snapshot matters: a newer one takes
// the place of one still waiting. A snapshot recording what the file already
// holds is not written (a reload that changed nothing costs no fsync). A
// failed write (a full disk) is tried again, for as long as the service runs,
// after 1 s, doubling to 60 s, or at once for a newer snapshot; a failure is
// logged once per distinct error, and the recovery too.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <system_error>

#include "agent/codecs/state_codec.hpp"
#include "mappers/timebase.hpp"

namespace natkeeper {

namespace asio = boost::asio;

namespace policy {
// The wait before the next attempt after `failures` (1 or more) failed
// writes in a row: 1 s, doubling, at most kStateWriteRetryLimit.
inline constexpr std::chrono::seconds kStateWriteRetryLimit{60};
std::chrono::seconds state_write_retry_delay(unsigned failures);
}  // namespace policy

class StateWriter {
 public:
  // What to record: the state, or nullopt for nothing (the file goes).
  using Snapshot = std::optional<state::ServiceState>;
  // Writes `snapshot` to `file`, or removes the file when there is none.
  using Write = std::function<std::error_code(const std::filesystem::path& file, const Snapshot& snapshot)>;
  // write_state_file, or remove_state_file for nothing.
  static std::error_code write_or_remove(const std::filesystem::path& file, const Snapshot& snapshot);

  // Failures are reported and retries timed on `loop`; writes run on `workers`.
  StateWriter(asio::any_io_executor loop, asio::any_io_executor workers, std::filesystem::path file,
              Write write = write_or_remove, Timebase& time = system_timebase());

  const std::filesystem::path& file() const;
  // Records `snapshot`, in the background.
  void save(Snapshot snapshot);
  // The last write of a stopping service: completes once the newest snapshot
  // was attempted, at once rather than at a retry's time. A failure then is
  // logged and not tried again until the next save().
  asio::awaitable<void> flush();

 private:
  struct Core;
  static asio::awaitable<void> drain(std::shared_ptr<Core> core);
  // Shared with drain(), which may outlive this writer until the loop ends.
  std::shared_ptr<Core> core_;
};

}  // namespace natkeeper
