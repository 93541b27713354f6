#include <catch2/catch.hpp>

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "agent/base/log.hpp"
#include "agent/service/state_writer.hpp"
#include "virtual_time.hpp"

using namespace natkeeper;
using namespace std::chrono_literals;
using natkeeper::testing::VirtualTime;

namespace {

state::ServiceState snapshot(std::uint16_t port, std::int64_t expires = 1790000000) {
  return {"10.77.0.1", "upnp", "10.77.0.2", {{Transport::udp, port, port, "203.0.113.1", false, expires, "", ""}}};
}

// What stderr receives meanwhile (the log), read back.
class CapturedStderr {
 public:
  CapturedStderr() : file_(std::tmpfile()), saved_(::dup(2)) {
    std::fflush(stderr);
    ::dup2(::fileno(file_), 2);
    log::set_verbosity(0);
  }
  ~CapturedStderr() {
    restore();
    std::fclose(file_);
    log::set_verbosity(-1);
  }
  std::string text() {
    std::fflush(stderr);
    std::string all;
    std::rewind(file_);
    for (int c; (c = std::fgetc(file_)) != EOF;) all += static_cast<char>(c);
    return all;
  }
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }

 private:
  std::FILE* file_;
  int saved_;
};

std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// A writer on a loop in virtual time whose writes are recorded and fail while
// `failure` is set.
struct Fixture {
  VirtualTime time;
  asio::io_context loop;
  std::error_code failure;
  struct Attempt {
    VirtualTime::TimePoint at;
    StateWriter::Snapshot snapshot;
    bool failed;
  };
  std::vector<Attempt> attempts;
  StateWriter writer{loop.get_executor(), loop.get_executor(), "/nonexistent/mappings.json",
                     [this](const std::filesystem::path&, const StateWriter::Snapshot& snapshot) {
                       attempts.push_back({time.now(), snapshot, bool(failure)});
                       return failure;
                     },
                     time};
  VirtualTime::TimePoint start = time.now();

  Fixture() { log::set_verbosity(-1); }
  void run_for(VirtualTime::Duration span) {
    time.run_until(loop, [] { return false; }, span);
  }
  // Runs flush() to its end; false if it did not end within `limit`.
  bool flush(VirtualTime::Duration limit = 1s) {
    bool done = false;
    asio::co_spawn(loop, writer.flush(), [&](std::exception_ptr error) {
      if (error) std::rethrow_exception(error);
      done = true;
    });
    return time.run_until(loop, [&] { return done; }, limit);
  }
  std::vector<long> seconds_of_attempts() const {
    std::vector<long> seconds;
    for (const auto& attempt : attempts)
      seconds.push_back(std::chrono::duration_cast<std::chrono::seconds>(attempt.at - start).count());
    return seconds;
  }
};

}  // namespace

TEST_CASE("state write retries wait 1 s, doubling up to 60 s", "[state_writer]") {
  using policy::state_write_retry_delay;
  CHECK(state_write_retry_delay(1) == 1s);
  CHECK(state_write_retry_delay(2) == 2s);
  CHECK(state_write_retry_delay(6) == 32s);
  CHECK(state_write_retry_delay(7) == 60s);
  CHECK(state_write_retry_delay(1000000) == 60s);
}

TEST_CASE("a failed state write is tried again until it succeeds", "[state_writer]") {
  Fixture f;
  f.failure = std::make_error_code(std::errc::no_space_on_device);
  f.writer.save(snapshot(5000));
  f.run_for(200s);
  // 0, then after 1, 2, 4, 8, 16, 32, 60, 60 s.
  CHECK(f.seconds_of_attempts() == std::vector<long>{0, 1, 3, 7, 15, 31, 63, 123, 183});
  f.failure = {};
  f.run_for(60s);
  REQUIRE(f.attempts.size() == 10);
  CHECK_FALSE(f.attempts.back().failed);
  CHECK(f.attempts.back().snapshot == snapshot(5000));
  // Written: nothing more to do.
  f.run_for(1h);
  CHECK(f.attempts.size() == 10);
}

TEST_CASE("a newer snapshot takes the place of a failed one, and is tried at once", "[state_writer]") {
  Fixture f;
  f.failure = std::make_error_code(std::errc::no_space_on_device);
  f.writer.save(snapshot(5000));
  f.run_for(10s);  // attempts at 0, 1, 3, 7 s
  REQUIRE(f.attempts.size() == 4);
  f.writer.save(snapshot(5001));
  f.run_for(0s);
  REQUIRE(f.attempts.size() == 5);
  CHECK(f.attempts.back().snapshot == snapshot(5001));
  CHECK(f.seconds_of_attempts().back() == 10);
  f.failure = {};
  f.run_for(1h);
  // Only the newest is retried (after 16 s), and once written nothing older follows.
  CHECK(f.attempts.size() == 6);
  CHECK(f.attempts.back().snapshot == snapshot(5001));
  CHECK_FALSE(f.attempts.back().failed);
}

TEST_CASE("a snapshot the file already holds is not written again", "[state_writer]") {
  Fixture f;
  f.writer.save(snapshot(5000));
  f.run_for(1s);
  REQUIRE(f.attempts.size() == 1);
  // A reload that changed nothing records the same mappings, with later expiry times.
  f.writer.save(snapshot(5000, 1790000600));
  f.writer.save(snapshot(5000, 1790001200));
  f.run_for(1s);
  CHECK(f.attempts.size() == 1);
  f.writer.save(snapshot(5001));
  f.run_for(1s);
  CHECK(f.attempts.size() == 2);
  f.writer.save(std::nullopt);
  f.writer.save(std::nullopt);
  f.run_for(1s);
  CHECK(f.attempts.size() == 3);
  CHECK_FALSE(f.attempts.back().snapshot);
  // Back to what was written before the last: written again.
  f.writer.save(snapshot(5001));
  f.run_for(1s);
  CHECK(f.attempts.size() == 4);
}

TEST_CASE("a snapshot the file holds again drops a retry of another", "[state_writer]") {
  Fixture f;
  f.writer.save(snapshot(5000));
  f.run_for(1s);
  f.failure = std::make_error_code(std::errc::no_space_on_device);
  f.writer.save(snapshot(5001));
  f.run_for(0s);
  REQUIRE(f.attempts.size() == 2);
  f.writer.save(snapshot(5000));
  f.run_for(1h);
  CHECK(f.attempts.size() == 2);
}

TEST_CASE("a snapshot saved during a write is written after it", "[state_writer]") {
  Fixture f;
  // Both saves before the loop runs: the second arrives while the first is attempted.
  f.writer.save(snapshot(5000));
  asio::post(f.loop, [&] { f.writer.save(snapshot(5000, 1790000600)); });
  f.run_for(1s);
  // It records the same, but the file did not hold the first yet when it came.
  REQUIRE(f.attempts.size() == 2);
  CHECK(f.attempts.back().snapshot == snapshot(5000, 1790000600));
}

TEST_CASE("a failing state write is logged once per distinct error, and its recovery", "[state_writer]") {
  Fixture f;
  CapturedStderr log;
  f.failure = std::make_error_code(std::errc::no_space_on_device);
  f.writer.save(snapshot(5000));
  f.run_for(100s);
  f.failure = std::make_error_code(std::errc::read_only_file_system);
  f.run_for(100s);
  f.failure = {};
  f.run_for(100s);
  const auto text = log.text();
  log.restore();
  INFO(text);
  CHECK(count_of(text, "cannot write /nonexistent/mappings.json: No space left on device; trying again") == 1);
  CHECK(count_of(text, "cannot write /nonexistent/mappings.json: Read-only file system; trying again") == 1);
  CHECK(count_of(text, "wrote /nonexistent/mappings.json again, after 9 failed attempts") == 1);
  CHECK(count_of(text, "\n") == 3);
}

TEST_CASE("flush makes the last attempt at once, reports its failure, and leaves no retry", "[state_writer]") {
  Fixture f;
  CHECK(f.flush(0s));  // nothing to write
  f.failure = std::make_error_code(std::errc::no_space_on_device);
  f.writer.save(snapshot(5000));
  f.run_for(20s);  // attempts at 0, 1, 3, 7, 15 s; the next at 31 s
  REQUIRE(f.attempts.size() == 5);
  CapturedStderr log;
  CHECK(f.flush(0s));
  CHECK(f.attempts.size() == 6);
  CHECK(f.seconds_of_attempts().back() == 20);
  CHECK(count_of(log.text(), "cannot write /nonexistent/mappings.json: No space left on device; it may not record") ==
        1);
  log.restore();
  f.run_for(1h);
  CHECK(f.attempts.size() == 6);
  // A later save starts again.
  f.failure = {};
  f.writer.save(snapshot(5001));
  CHECK(f.flush(0s));
  CHECK(f.attempts.size() == 7);
  CHECK_FALSE(f.attempts.back().failed);
}

TEST_CASE("flush waits for every snapshot saved before it", "[state_writer]") {
  Fixture f;
  f.writer.save(snapshot(5000));
  f.writer.save(snapshot(5001));
  f.writer.save(std::nullopt);
  CHECK(f.flush(0s));
  REQUIRE_FALSE(f.attempts.empty());
  CHECK_FALSE(f.attempts.back().snapshot);
}
