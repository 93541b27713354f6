#include "agent/service/state_writer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

#include "agent/base/log.hpp"
#include "agent/base/state_file.hpp"

namespace natkeeper {
namespace {

// On a worker, with copies of what it needs; the snapshot, which may be large,
// is shared, and nothing on the loop changes it.
asio::awaitable<std::error_code> attempt(StateWriter::Write write, std::filesystem::path file,
                                         std::shared_ptr<const StateWriter::Snapshot> snapshot) {
  co_return write(file, *snapshot);
}

// What a snapshot holds, as far as deciding whether to write it goes.
std::optional<std::uint64_t> digest(const StateWriter::Snapshot& snapshot) {
  if (!snapshot) return std::nullopt;
  return state::holdings_digest(*snapshot);
}

}  // namespace

std::chrono::seconds policy::state_write_retry_delay(unsigned failures) {
  // Doubling stops at the limit: no overflow however long the disk stays full.
  std::chrono::seconds delay{1};
  for (unsigned i = 1; i < failures && delay < kStateWriteRetryLimit; ++i) delay *= 2;
  return std::min(delay, kStateWriteRetryLimit);
}

// Lives on the loop: only drain()'s attempt runs on a worker, with copies.
struct StateWriter::Core {
  Core(const asio::any_io_executor& loop, asio::any_io_executor worker_executor, std::filesystem::path state_file,
       Write write_function, Timebase& timebase)
      : workers(std::move(worker_executor)),
        file(std::move(state_file)),
        write(std::move(write_function)),
        time(timebase),
        wake(loop),
        idle(loop) {}

  asio::any_io_executor workers;
  std::filesystem::path file;
  Write write;
  Timebase& time;
  std::shared_ptr<const Snapshot> pending;  // the newest snapshot, not yet written
  // What the file holds (its digest, nullopt for no file), once this writer wrote it.
  std::optional<std::optional<std::uint64_t>> written;
  bool running = false;             // drain() is on, attempting or waiting to retry
  bool attempting = false;          // an attempt runs on a worker
  unsigned failures = 0;            // failed attempts in a row
  std::error_code reported;         // the failure last logged
  unsigned flushes = 0;             // flush() calls waiting
  asio::steady_timer wake;          // ends a wait to retry: a newer snapshot, or a flush
  asio::steady_timer idle;          // tells flush() calls that drain() ended
};

std::error_code StateWriter::write_or_remove(const std::filesystem::path& file, const Snapshot& snapshot) {
  return snapshot ? write_state_file(file, *snapshot) : remove_state_file(file);
}

StateWriter::StateWriter(asio::any_io_executor loop, asio::any_io_executor workers, std::filesystem::path file,
                         Write write, Timebase& time)
    : core_(std::make_shared<Core>(std::move(loop), std::move(workers), std::move(file), std::move(write), time)) {}

const std::filesystem::path& StateWriter::file() const { return core_->file; }

void StateWriter::save(Snapshot snapshot) {
  auto& core = *core_;
  if (!core.attempting && core.written && *core.written == digest(snapshot)) {
    // The file holds it already: whatever waited to be written is older.
    core.pending.reset();
    return;
  }
  core.pending = std::make_shared<const Snapshot>(std::move(snapshot));
  if (core.running) {
    core.wake.cancel();  // a newer snapshot is tried at once
    return;
  }
  core.running = true;
  core.idle.expires_at(asio::steady_timer::time_point::max());
  asio::co_spawn(core.wake.get_executor(), drain(core_), asio::detached);
}

asio::awaitable<void> StateWriter::drain(std::shared_ptr<Core> core) {
  using namespace asio::experimental::awaitable_operators;
  while (core->pending) {
    auto snapshot = std::exchange(core->pending, nullptr);
    core->attempting = true;
    const auto error = co_await asio::co_spawn(core->workers, attempt(core->write, core->file, snapshot),
                                               asio::use_awaitable);
    core->attempting = false;
    if (!error) {
      if (core->failures > 0)
        log::notice("wrote {} again, after {} failed attempts", core->file.string(), core->failures);
      core->failures = 0;
      core->reported.clear();
      core->written = digest(*snapshot);
      continue;
    }
    ++core->failures;
    if (!core->pending) core->pending = std::move(snapshot);  // else a newer one takes its place
    if (core->flushes > 0) {
      log::warning("cannot write {}: {}; it may not record the mappings the service held", core->file.string(),
                   error.message());
      break;
    }
    if (error != core->reported) {
      log::warning("cannot write {}: {}; trying again, every {} s at most", core->file.string(), error.message(),
                   policy::kStateWriteRetryLimit.count());
      core->reported = error;
    }
    core->wake.expires_at(asio::steady_timer::time_point::max());
    co_await (core->time.sleep_until(core->time.now() + policy::state_write_retry_delay(core->failures)) ||
              core->wake.async_wait(asio::as_tuple(asio::use_awaitable)));
  }
  core->running = false;
  core->idle.cancel();
}

asio::awaitable<void> StateWriter::flush() {
  const auto core = core_;
  ++core->flushes;
  core->wake.cancel();  // no waiting for a retry's time
  while (core->running) co_await core->idle.async_wait(asio::as_tuple(asio::use_awaitable));
  --core->flushes;
}

}  // namespace natkeeper
