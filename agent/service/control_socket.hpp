#pragma once
// The service's control socket: `natkeeper --status` asks the running service
// for its state. A client connects, sends one request line ("status\n"), and
// reads one JSON document until the server closes the connection. Access is
// the socket file's mode (0660): local users of its owner and group.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>

#include "mappers/result.hpp"

namespace natkeeper {

namespace asio = boost::asio;

// systemd's $RUNTIME_DIRECTORY (RuntimeDirectory=; the first entry when it
// lists several) when set, else /run/natkeeper.
std::filesystem::path runtime_directory();
// runtime_directory()/control
std::filesystem::path control_socket_path();

// Serves at most kMaxClients connections at once; later ones wait in the
// listen backlog. A client has `client_deadline` to send its request, and
// again to take the reply. Everything runs on `executor`, which must not run
// two handlers at once (one thread, or a strand); call open() and close() there.
class ControlServer {
 public:
  static constexpr std::size_t kMaxClients = 8;
  static constexpr std::size_t kMaxRequestBytes = 64;
  using StatusSource = std::function<nlohmann::json()>;
  ControlServer(asio::any_io_executor executor, std::filesystem::path path, StatusSource status,
                std::chrono::milliseconds client_deadline = std::chrono::seconds(2));
  ~ControlServer();  // closes, and removes the socket file
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Creates the socket's directory if needed, binds and listens. A socket
  // file left by a dead instance is replaced; one a live server answers on is
  // not (std::errc::address_in_use), nor a file that is not a socket
  // (std::errc::file_exists). Call once: a closed server stays closed.
  std::error_code open();
  // Stops accepting, drops the clients in flight (status is not called
  // again), and removes the socket file if open() created it.
  void close();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Asks the service at `socket` for its status; gives up after `deadline`
// (std::errc::timed_out). Blocks. When nothing listens, the system's error
// comes back as it is: no_such_file_or_directory or connection_refused.
Result<nlohmann::json> query_status(const std::filesystem::path& socket, std::chrono::milliseconds deadline);

}  // namespace natkeeper
