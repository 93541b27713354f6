#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "agent/service/control_socket.hpp"
#include "result_printer.hpp"

using namespace natkeeper;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct TemporaryDirectory {
  TemporaryDirectory() {
    static std::atomic<int> counter{0};
    // Short: a socket's path must fit in sockaddr_un.
    path = fs::temp_directory_path() / ("nk-ctl-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) +
                                        "-" + std::to_string(std::random_device{}() % 100000));
    fs::create_directories(path);
  }
  ~TemporaryDirectory() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  fs::path path;
};

// A ControlServer whose io_context runs on a thread of its own, so that the
// test can use blocking clients. open() and close() run on that thread.
class RunningServer {
 public:
  RunningServer(const fs::path& path, ControlServer::StatusSource status, ControlLimits limits = {})
      : server_(io_.get_executor(), path, std::move(status), limits),
        thread_([this] {
          io_.run();
          stopped_.set_value();
        }) {}
  ~RunningServer() {
    if (work_.owns_work()) {
      close();
      work_.reset();
    }
    thread_.join();
  }
  std::error_code open() {
    return on_loop([this] { return server_.open(); });
  }
  void close() {
    on_loop([this] {
      server_.close();
      return 0;
    });
  }
  // True when the server's io_context runs out of work within `wait` once
  // the server is closed: no coroutine of it is left hanging. Call once.
  bool stops_within(std::chrono::milliseconds wait) {
    close();
    work_.reset();
    return stopped_future_.wait_for(wait) == std::future_status::ready;
  }

 private:
  template <class F>
  std::invoke_result_t<F> on_loop(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    asio::post(io_, std::ref(task));
    return result.get();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::promise<void> stopped_;
  std::future<void> stopped_future_ = stopped_.get_future();
  ControlServer server_;
  std::thread thread_;
};

using Json = nlohmann::json;

StatusParts parts_of(std::vector<Json> parts) {
  return [parts = std::move(parts), next = std::size_t{0}]() mutable -> std::optional<Json> {
    if (next == parts.size()) return std::nullopt;
    return parts[next++];
  };
}
const std::vector<Json> kExampleParts = {{{"state", "running"}}, {{"row", 1}}, {{"row", 2}}};
StatusParts example_status() { return parts_of(kExampleParts); }

// The parts query_status hands over, or its error.
Result<std::vector<Json>> query_parts(const fs::path& path, std::chrono::milliseconds deadline) {
  std::vector<Json> parts;
  if (const auto error = query_status(path, deadline, [&](Json part) { parts.push_back(std::move(part)); })) return error;
  return parts;
}

// A blocking client socket connected to `path`; reads give up after 5 s.
int connect_client(const fs::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  const timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  return fd;
}

// Everything the server sends until it closes the connection.
std::string read_to_end(int fd) {
  std::string text;
  char chunk[4096];
  for (;;) {
    const auto n = ::read(fd, chunk, sizeof chunk);
    if (n <= 0) break;
    text.append(chunk, static_cast<std::size_t>(n));
  }
  return text;
}

std::string send_request(const fs::path& path, const std::string& request) {
  const int fd = connect_client(path);
  CHECK(::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
  auto reply = read_to_end(fd);
  ::close(fd);
  return reply;
}

// The socket file a server killed with SIGKILL leaves behind.
void leave_dead_socket_file(const fs::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  ::close(fd);
  REQUIRE(fs::is_socket(path));
}

}  // namespace

TEST_CASE("the control socket serves the status, mode 0660", "[control_socket]") {
  const TemporaryDirectory directory;
  const auto path = directory.path / "run" / "control";
  RunningServer server(path, example_status);
  REQUIRE_FALSE(server.open());
  struct stat info {};
  REQUIRE(::stat(path.c_str(), &info) == 0);
  CHECK(S_ISSOCK(info.st_mode));
  CHECK((info.st_mode & 0777) == 0660);

  const auto status = query_parts(path, 2s);
  REQUIRE(status.has_value());
  CHECK(*status == kExampleParts);
  CHECK(send_request(path, "status\r\n") == "{\"state\":\"running\"}\n{\"row\":1}\n{\"row\":2}\n");
  CHECK(server.stops_within(2s));
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("the control socket answers an unknown request with an error", "[control_socket]") {
  const TemporaryDirectory directory;
  const auto path = directory.path / "control";
  RunningServer server(path, example_status);
  REQUIRE_FALSE(server.open());
  const auto reply = nlohmann::json::parse(send_request(path, "stop\n"));
  CHECK(reply == nlohmann::json{{"error", "unknown request: stop"}});
  // No line within the limit: the connection is closed without a reply.
  CHECK(send_request(path, std::string(ControlServer::kMaxRequestBytes + 10, 'x')).empty());
  CHECK(query_parts(path, 2s).has_value());
}

TEST_CASE("a dead instance's socket file is replaced, a live one is not", "[control_socket]") {
  const TemporaryDirectory directory;
  const auto path = directory.path / "control";
  leave_dead_socket_file(path);
  const auto refused = query_parts(path, 2s);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error() == std::errc::connection_refused);

  RunningServer live(path, example_status);
  REQUIRE_FALSE(live.open());
  {
    asio::io_context io;
    ControlServer second(io.get_executor(), path, [] { return parts_of({{{"state", "second"}}}); });
    CHECK(second.open() == std::errc::address_in_use);
  }
  // The refused server left the live one's socket file alone.
  const auto status = query_parts(path, 2s);
  REQUIRE(status.has_value());
  CHECK(*status == kExampleParts);
}

TEST_CASE("the control socket does not replace a file that is not a socket", "[control_socket]") {
  const TemporaryDirectory directory;
  const auto path = directory.path / "control";
  std::ofstream(path) << "data";
  asio::io_context io;
  ControlServer server(io.get_executor(), path, example_status);
  CHECK(server.open() == std::errc::file_exists);
  CHECK(fs::is_regular_file(path));
}

TEST_CASE("query_status reports a service that is not running as the system's error", "[control_socket]") {
  const TemporaryDirectory directory;
  const auto missing = query_parts(directory.path / "control", 2s);
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error() == std::errc::no_such_file_or_directory);
  const auto too_long = query_parts(directory.path / std::string(200, 'x'), 2s);
  REQUIRE_FALSE(too_long.has_value());
  CHECK(too_long.error() == std::errc::filename_too_long);
}

// [realtime]: the deadline of a blocking client on a real Unix socket is what is tested.
TEST_CASE("query_status gives up on a server that never answers", "[control_socket][realtime]") {
  const TemporaryDirectory directory;
  const auto path = directory.path / "control";
  // Listens, and never accepts.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  const auto started = Clock::now();
  const auto status = query_parts(path, 200ms);
  const auto elapsed = Clock::now() - started;
  ::close(fd);
  REQUIRE_FALSE(status.has_value());
  CHECK(status.error() == std::errc::timed_out);
  CHECK(elapsed >= 200ms);
  CHECK(elapsed < 2s);
}

// [realtime]: the server's read deadline against a real client that stays silent.
TEST_CASE("a client that never sends is dropped after the deadline and blocks nobody", "[control_socket][realtime]") {
  const TemporaryDirectory directory;
  const auto path = directory.path / "control";
  RunningServer server(path, example_status, {.deadline = 300ms});
  REQUIRE_FALSE(server.open());
  const auto started = Clock::now();
  const int silent = connect_client(path);
  const auto status = query_parts(path, 2s);
  CHECK(status.has_value());
  CHECK(Clock::now() - started < 250ms);
  CHECK(read_to_end(silent).empty());
  const auto dropped_after = Clock::now() - started;
  ::close(silent);
  CHECK(dropped_after >= 250ms);
  CHECK(dropped_after < 2s);
}

// [realtime]: the deadline holds for the whole request, however slowly it trickles in.
TEST_CASE("a client that trickles its request is dropped at the deadline", "[control_socket][realtime]") {
  const TemporaryDirectory directory;
  const auto path = directory.path / "control";
  RunningServer server(path, example_status, {.deadline = 300ms});
  REQUIRE_FALSE(server.open());
  const auto started = Clock::now();
  const int slow = connect_client(path);
  for (const char c : std::string_view("sta")) {
    CHECK(::send(slow, &c, 1, MSG_NOSIGNAL) == 1);
    std::this_thread::sleep_for(80ms);
  }
  CHECK(read_to_end(slow).empty());
  const auto dropped_after = Clock::now() - started;
  ::close(slow);
  CHECK(dropped_after >= 250ms);
  CHECK(dropped_after < 1s);
}

// The reply of a refused client: one error line, at once.
std::string refusal_of(int fd) {
  const auto started = Clock::now();
  auto reply = read_to_end(fd);
  CHECK(Clock::now() - started < 500ms);
  return reply;
}

// [realtime]: real connections from two processes, as the kernel reports them (SO_PEERCRED).
TEST_CASE("silent clients of one process do not delay another's status", "[control_socket][realtime]") {
  const TemporaryDirectory directory;
  const auto path = directory.path / "control";
  RunningServer server(path, example_status, {.deadline = 3s});
  REQUIRE_FALSE(server.open());
  const ControlLimits limits;
  // This process holds as many silent connections as the server serves at once.
  std::vector<int> silent;
  for (std::size_t i = 0; i < limits.clients; ++i) silent.push_back(connect_client(path));
  // Those beyond its own limit are refused at once, not kept waiting.
  for (std::size_t i = limits.per_process; i < silent.size(); ++i)
    CHECK_THAT(refusal_of(silent[i]), Catch::StartsWith("{\"error\":\"busy: too many clients of this process"));
  // Another process asks for the status, and has it long before the silent ones' deadline.
  const auto started = Clock::now();
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    std::vector<Json> parts;
    const auto error = query_status(path, 5s, [&](Json part) { parts.push_back(std::move(part)); });
    ::_exit(!error && parts == kExampleParts ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  const auto elapsed = Clock::now() - started;
  for (const int fd : silent) ::close(fd);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(elapsed < 1s);
}

// [realtime]: the global limit on real connections.
TEST_CASE("a client beyond the control socket's limit is refused at once", "[control_socket][realtime]") {
  const TemporaryDirectory directory;
  const auto path = directory.path / "control";
  RunningServer server(path, example_status, {.deadline = 3s, .clients = 3, .per_user = 3, .per_process = 3});
  REQUIRE_FALSE(server.open());
  std::vector<int> silent;
  for (int i = 0; i < 3; ++i) silent.push_back(connect_client(path));
  const auto started = Clock::now();
  const auto refused = query_parts(path, 2s);
  const auto elapsed = Clock::now() - started;
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error() == std::errc::device_or_resource_busy);
  CHECK(elapsed < 500ms);
  // A slot frees as a client goes.
  ::close(silent.back());
  silent.pop_back();
  std::optional<Result<std::vector<Json>>> served;
  for (int i = 0; i < 50 && !(served && served->has_value()); ++i) {
    served = query_parts(path, 2s);
    if (!served->has_value()) std::this_thread::sleep_for(10ms);
  }
  CHECK(served->has_value());
  for (const int fd : silent) ::close(fd);
}

TEST_CASE("a large status goes out in chunks as the client reads", "[control_socket]") {
  const TemporaryDirectory directory;
  const auto path = directory.path / "control";
  constexpr std::size_t kRows = 50'000;
  // The server holds the parts source's state and one chunk, never the whole reply.
  std::atomic<std::size_t> produced{0};
  RunningServer server(path, [&] {
    return StatusParts([&, next = std::size_t{0}]() mutable -> std::optional<Json> {
      if (next > kRows) return std::nullopt;
      ++produced;
      return next++ == 0 ? Json{{"state", "running"}} : Json{{"row", next - 1}, {"padding", std::string(100, 'x')}};
    });
  });
  REQUIRE_FALSE(server.open());
  const int fd = connect_client(path);
  CHECK(::write(fd, "status\n", 7) == 7);
  std::this_thread::sleep_for(200ms);
  // The client has read nothing yet: the server stopped at what the socket holds.
  CHECK(produced < kRows / 2);
  ::close(fd);

  std::size_t rows = 0;
  bool in_order = true;
  const auto error = query_status(path, 2s, [&](Json part) {
    if (part.contains("row")) in_order = in_order && part["row"] == ++rows;
  });
  CHECK_FALSE(error);
  CHECK(rows == kRows);
  CHECK(in_order);
}

TEST_CASE("closing the control socket drops the clients in flight at once", "[control_socket]") {
  const TemporaryDirectory directory;
  const auto path = directory.path / "control";
  std::atomic<int> status_calls{0};
  RunningServer server(path, [&] {
    ++status_calls;
    return example_status();
  }, {.deadline = 10s});
  REQUIRE_FALSE(server.open());
  const int silent = connect_client(path);
  // Served after the silent client was accepted: it is in flight now.
  REQUIRE(query_parts(path, 2s).has_value());
  const auto started = Clock::now();
  CHECK(server.stops_within(2s));
  CHECK(read_to_end(silent).empty());
  ::close(silent);
  CHECK(Clock::now() - started < 2s);
  CHECK(status_calls == 1);
  CHECK_FALSE(fs::exists(path));
  const auto after = query_parts(path, 1s);
  REQUIRE_FALSE(after.has_value());
  CHECK(after.error() == std::errc::no_such_file_or_directory);
}

// [realtime]: a real accept must have happened before the server goes away.
TEST_CASE("destroying the control server while a client is in flight", "[control_socket][realtime]") {
  const TemporaryDirectory directory;
  const auto path = directory.path / "control";
  std::optional<asio::io_context> io(std::in_place);
  std::atomic<int> status_calls{0};
  auto server = std::make_unique<ControlServer>(io->get_executor(), path, [&] {
    ++status_calls;
    return example_status();
  });
  REQUIRE_FALSE(server->open());
  const int silent = connect_client(path);
  io->run_for(50ms);  // accepted: its coroutine waits for the request
  server.reset();
  CHECK_FALSE(fs::exists(path));
  SECTION("the loop runs on: the client is dropped and nothing is left to run") {
    const auto started = Clock::now();
    io->run();
    CHECK(Clock::now() - started < 1s);
    CHECK(read_to_end(silent).empty());
  }
  SECTION("the loop is destroyed without running again") {
    io.reset();
    CHECK(read_to_end(silent).empty());
  }
  ::close(silent);
  CHECK(status_calls == 0);
}

TEST_CASE("the control socket lives in systemd's runtime directory", "[control_socket]") {
  const char* saved = std::getenv("RUNTIME_DIRECTORY");
  const std::string previous = saved ? saved : "";
  ::setenv("RUNTIME_DIRECTORY", "/run/natkeeper-test:/run/other", 1);
  CHECK(runtime_directory() == fs::path("/run/natkeeper-test"));
  CHECK(control_socket_path() == fs::path("/run/natkeeper-test/control"));
  ::unsetenv("RUNTIME_DIRECTORY");
  CHECK(control_socket_path() == fs::path("/run/natkeeper/control"));
  if (saved) ::setenv("RUNTIME_DIRECTORY", previous.c_str(), 1);
}
