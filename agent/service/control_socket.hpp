#pragma once
// The service's control socket: `natkeeper --status` asks the running service
// for its state. A client connects, sends one request line ("status\n"), and
// reads the status's parts (StatusParts), one JSON document per line, until the
// server closes the connection. A refused client reads one line
// {"error": "..."}. Access is the socket file's mode (0660): local users of its
// owner and group.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>

#include "agent/report/status.hpp"
#include "mappers/result.hpp"

namespace natkeeper {

namespace asio = boost::asio;

// systemd's $RUNTIME_DIRECTORY (RuntimeDirectory=; the first entry when it
// lists several) when set, else /run/natkeeper.
std::filesystem::path runtime_directory();
// runtime_directory()/control
std::filesystem::path control_socket_path();

// How many clients the control socket serves at once, and how long it waits
// for each. A connection beyond a limit is refused at once, so that clients
// that connect and stay silent delay nobody else's --status.
struct ControlLimits {
  // To send the request line; and again to take each part of the reply.
  std::chrono::milliseconds deadline = std::chrono::seconds(1);
  std::size_t clients = 16;
  std::size_t per_user = 8;     // from one user (SO_PEERCRED uid)
  std::size_t per_process = 2;  // from one process (SO_PEERCRED pid)
};

// Serves clients concurrently within `limits`, writing the reply as it takes
// the parts from `status` (a bounded buffer at a time, however large the
// plan). Everything runs on `executor`, which must not run two handlers at once
// (one thread, or a strand); call open() and close() there.
class ControlServer {
 public:
  static constexpr std::size_t kMaxRequestBytes = 64;
  using StatusSource = std::function<StatusParts()>;
  ControlServer(asio::any_io_executor executor, std::filesystem::path path, StatusSource status,
                ControlLimits limits = {});
  ~ControlServer();  // closes, and removes the socket file
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Creates the socket's directory if needed, binds and listens. A socket
  // file left by a dead instance is replaced; one a live server answers on is
  // not (std::errc::address_in_use), nor a file that is not a socket
  // (std::errc::file_exists). Call once: a closed server stays closed.
  std::error_code open();
  // Stops accepting, drops the clients in flight (neither status nor the
  // parts it gave are called again), and removes the socket file if open()
  // created it.
  void close();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Asks the service at `socket` for its status and hands each part to `on_part`
// as it arrives: the head, then each row. Blocks; gives up when the service
// sends nothing for `deadline` (std::errc::timed_out). When nothing listens,
// the system's error comes back as it is: no_such_file_or_directory or
// connection_refused; a service that refuses this client (too many at once) is
// device_or_resource_busy; a line that is not JSON or too long, bad_message.
std::error_code query_status(const std::filesystem::path& socket, std::chrono::milliseconds deadline,
                             const std::function<void(nlohmann::json part)>& on_part);

}  // namespace natkeeper
