#include "agent/service/control_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <list>
#include <optional>
#include <string>

#include "agent/base/state_dir.hpp"

namespace natkeeper {
namespace {

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using asio::local::stream_protocol;
using Json = nlohmann::json;
constexpr auto kToken = asio::as_tuple(asio::use_awaitable);
// A part is one head or one row, well under 1 KiB; this bounds what a confused
// server can make us hold.
constexpr std::size_t kMaxPartBytes = 64 * 1024;
// Rows are runs, at most one per planned mapping; with the head, bounds what a
// confused server can make us read.
constexpr std::size_t kMaxParts = 1 << 22;
// The server writes the reply this much at a time (the last part may overrun it).
constexpr std::size_t kReplyChunkBytes = 64 * 1024;
// After a failed accept (out of file descriptors, say), instead of spinning.
constexpr auto kAcceptRetryPause = 100ms;

std::error_code last_error() { return {errno, std::generic_category()}; }

std::string dump(const Json& document) {
  // Replacing invalid UTF-8 keeps dump() from throwing.
  return document.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Asio throws for a path longer than sockaddr_un holds.
Result<stream_protocol::endpoint> endpoint_of(const std::filesystem::path& path) {
  if (path.native().size() >= sizeof(sockaddr_un::sun_path))
    return std::make_error_code(std::errc::filename_too_long);
  return stream_protocol::endpoint(path.native());
}

// A socket file at `path` that nobody accepts on was left by a dead instance:
// it is removed. One a live server accepts on is address_in_use.
std::error_code clear_stale_socket(const std::filesystem::path& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) return errno == ENOENT ? std::error_code() : last_error();
  if (!S_ISSOCK(info.st_mode)) return std::make_error_code(std::errc::file_exists);
  // Non-blocking: a live server with a full backlog must not make us wait.
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe < 0) return last_error();
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.native().size());
  const bool connected = ::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  const int connect_errno = errno;
  ::close(probe);
  if (connected || connect_errno == EAGAIN || connect_errno == EINPROGRESS)
    return std::make_error_code(std::errc::address_in_use);
  if (connect_errno == ENOENT) return {};
  if (connect_errno != ECONNREFUSED) return {connect_errno, std::generic_category()};
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return last_error();
  return {};
}

// One line, within `deadline`; its text without the '\n' in `line`.
asio::awaitable<boost::system::error_code> read_line(stream_protocol::socket& socket, std::string& buffer,
                                                     std::string& line, std::chrono::milliseconds deadline) {
  asio::steady_timer expiry(socket.get_executor(), deadline);
  auto receive = asio::async_read_until(socket, asio::dynamic_buffer(buffer, kMaxPartBytes), '\n', kToken);
  const auto read = co_await (std::move(receive) || expiry.async_wait(kToken));
  if (read.index() != 0) co_return boost::system::errc::make_error_code(boost::system::errc::timed_out);
  const auto [error, size] = std::get<0>(read);
  // Too long for the buffer, or the end before a line ends: not a reply.
  if (error == asio::error::not_found || (error == asio::error::eof && !buffer.empty()))
    co_return boost::system::errc::make_error_code(boost::system::errc::bad_message);
  if (error) co_return error;
  line.assign(buffer, 0, size - 1);
  buffer.erase(0, size);
  co_return boost::system::error_code();
}

asio::awaitable<std::error_code> ask_status(stream_protocol::endpoint endpoint, std::chrono::milliseconds deadline,
                                            const std::function<void(Json)>& on_part) {
  stream_protocol::socket socket(co_await asio::this_coro::executor);
  asio::steady_timer expiry(socket.get_executor(), deadline);
  // A server with a full listen backlog keeps a connect waiting.
  const auto connected = co_await (socket.async_connect(endpoint, kToken) || expiry.async_wait(kToken));
  if (connected.index() != 0) co_return std::make_error_code(std::errc::timed_out);
  if (const auto [error] = std::get<0>(connected); error) co_return error;
  static constexpr std::string_view kRequest = "status\n";
  // A few bytes into an empty socket buffer: they do not wait.
  const auto [write_error, written] = co_await asio::async_write(socket, asio::buffer(kRequest), kToken);
  if (write_error) co_return write_error;
  std::string buffer, line;
  for (std::size_t parts = 0; parts < kMaxParts; ++parts) {
    const auto error = co_await read_line(socket, buffer, line, deadline);
    // The server ends its reply by closing; a reply without a head is none.
    if (error == asio::error::eof) co_return parts > 0 ? std::error_code() : std::make_error_code(std::errc::bad_message);
    if (error) co_return std::error_code(error);
    auto part = Json::parse(line, nullptr, false);
    if (part.is_discarded() || !part.is_object()) co_return std::make_error_code(std::errc::bad_message);
    if (parts == 0 && part.contains("error"))
      co_return std::make_error_code(part.value("error", std::string()).starts_with("busy")
                                         ? std::errc::device_or_resource_busy
                                         : std::errc::bad_message);
    on_part(std::move(part));
  }
  co_return std::make_error_code(std::errc::message_size);
}

// Refused at once, without waiting: a line if the socket takes it, then the close.
void refuse(stream_protocol::socket& socket, std::string_view why) {
  const auto line = dump(Json{{"error", why}}) + "\n";
  [[maybe_unused]] const auto sent = ::send(socket.native_handle(), line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

struct PeerCredentials {
  uid_t uid = static_cast<uid_t>(-1);
  pid_t pid = -1;
};

// The connecting process as the kernel recorded it; all unknown peers count as one.
PeerCredentials peer_of(stream_protocol::socket& socket) {
  ucred credentials{};
  socklen_t size = sizeof credentials;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0) return {};
  return {credentials.uid, credentials.pid};
}

}  // namespace

std::filesystem::path runtime_directory() { return directory_from_systemd("RUNTIME_DIRECTORY", "/run/natkeeper"); }

std::filesystem::path control_socket_path() { return runtime_directory() / "control"; }

// Shared with the coroutines it spawns, which outlive the ControlServer when
// it is destroyed while they wait: they see `closed` and end.
struct ControlServer::Impl {
  struct Client {
    stream_protocol::socket socket;
    PeerCredentials peer;
  };
  using Clients = std::list<Client>;

  Impl(const asio::any_io_executor& on, std::filesystem::path at, StatusSource source, ControlLimits bounds)
      : executor(on), path(std::move(at)), status(std::move(source)), limits(bounds), acceptor(on) {}

  static asio::awaitable<void> accept_clients(std::shared_ptr<Impl> self);
  static asio::awaitable<void> serve_client(std::shared_ptr<Impl> self, Clients::iterator client);
  // Why a new client from `peer` is refused; empty if it is served.
  std::string_view over_limit(const PeerCredentials& peer) const;

  asio::any_io_executor executor;
  std::filesystem::path path;
  StatusSource status;
  ControlLimits limits;
  stream_protocol::acceptor acceptor;
  Clients clients;
  bool owns_socket_file = false;
  bool closed = false;
};

std::string_view ControlServer::Impl::over_limit(const PeerCredentials& peer) const {
  if (clients.size() >= limits.clients) return "busy: too many clients at once";
  const auto from_user = std::count_if(clients.begin(), clients.end(),
                                       [&](const Client& client) { return client.peer.uid == peer.uid; });
  if (static_cast<std::size_t>(from_user) >= limits.per_user) return "busy: too many clients of this user at once";
  const auto from_process = std::count_if(clients.begin(), clients.end(), [&](const Client& client) {
    return client.peer.uid == peer.uid && client.peer.pid == peer.pid;
  });
  if (static_cast<std::size_t>(from_process) >= limits.per_process) return "busy: too many clients of this process at once";
  return {};
}

asio::awaitable<void> ControlServer::Impl::accept_clients(std::shared_ptr<Impl> self) {
  while (!self->closed) {
    auto [ec, socket] = co_await self->acceptor.async_accept(kToken);
    if (self->closed) co_return;
    if (ec) {
      asio::steady_timer pause(self->executor, kAcceptRetryPause);
      co_await pause.async_wait(kToken);
      continue;
    }
    const auto peer = peer_of(socket);
    if (const auto why = self->over_limit(peer); !why.empty()) {
      refuse(socket, why);
      continue;  // (the socket closes here)
    }
    self->clients.push_back({std::move(socket), peer});
    auto serve = serve_client(self, std::prev(self->clients.end()));
    asio::co_spawn(self->executor, std::move(serve), asio::detached);
  }
}

asio::awaitable<void> ControlServer::Impl::serve_client(std::shared_ptr<Impl> self, Clients::iterator client) {
  // However this coroutine ends, its connection closes and its slot frees.
  struct Slot {
    Impl& server;
    Clients::iterator client;
    ~Slot() { server.clients.erase(client); }
  };
  const Slot slot{*self, client};
  auto& socket = client->socket;

  asio::steady_timer deadline(self->executor, self->limits.deadline);
  std::string request;
  auto receive = asio::async_read_until(socket, asio::dynamic_buffer(request, kMaxRequestBytes), '\n', kToken);
  const auto read = co_await (std::move(receive) || deadline.async_wait(kToken));
  // A timeout (however slowly it trickled in), an error, no line within kMaxRequestBytes, or close().
  if (read.index() != 0 || std::get<0>(std::get<0>(read)) || self->closed) co_return;
  auto line = request.substr(0, std::get<1>(std::get<0>(read)) - 1);
  if (!line.empty() && line.back() == '\r') line.pop_back();

  StatusParts parts;
  if (line == "status") parts = self->status();
  else parts = [unknown = std::optional<Json>(Json{{"error", "unknown request: " + line}})]() mutable {
    return std::exchange(unknown, std::nullopt);
  };
  // The reply goes out a chunk at a time as the parts come: the service never
  // holds more of it than a chunk, however many mappings it keeps.
  std::string chunk;
  for (bool more = true; more;) {
    chunk.clear();
    while (chunk.size() < kReplyChunkBytes) {
      auto part = parts();
      if (!part) {
        more = false;
        break;
      }
      (chunk += dump(*part)) += '\n';
    }
    if (chunk.empty()) break;
    deadline.expires_after(self->limits.deadline);
    const auto sent = co_await (asio::async_write(socket, asio::buffer(chunk), kToken) || deadline.async_wait(kToken));
    // A client too slow to take a chunk within the deadline, gone, or close():
    // the parts refer to what the owner may no longer hold.
    if (sent.index() != 0 || std::get<0>(std::get<0>(sent)) || self->closed) co_return;
  }
}

ControlServer::ControlServer(asio::any_io_executor executor, std::filesystem::path path, StatusSource status,
                             ControlLimits limits)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(path), std::move(status), limits)) {}

ControlServer::~ControlServer() { close(); }

std::error_code ControlServer::open() {
  auto& impl = *impl_;
  if (impl.closed) return std::make_error_code(std::errc::bad_file_descriptor);
  const auto endpoint = endpoint_of(impl.path);
  if (!endpoint) return endpoint.error();
  std::error_code ec;
  if (impl.path.has_parent_path()) std::filesystem::create_directories(impl.path.parent_path(), ec);
  if (ec) return ec;
  if (const auto stale = clear_stale_socket(impl.path)) return stale;

  boost::system::error_code asio_ec;
  impl.acceptor.open(stream_protocol(), asio_ec);
  if (!asio_ec) impl.acceptor.bind(*endpoint, asio_ec);
  if (asio_ec) {
    boost::system::error_code ignored;
    impl.acceptor.close(ignored);
    return asio_ec;
  }
  impl.owns_socket_file = true;
  // Before listen(): nobody can connect while the mode is still the umask's.
  if (::chmod(impl.path.c_str(), 0660) != 0) ec = last_error();
  if (!ec) {
    impl.acceptor.listen(asio::socket_base::max_listen_connections, asio_ec);
    ec = asio_ec;
  }
  if (ec) {
    close();
    return ec;
  }
  auto accept = Impl::accept_clients(impl_);
  asio::co_spawn(impl.executor, std::move(accept), asio::detached);
  return {};
}

void ControlServer::close() {
  auto& impl = *impl_;
  if (impl.closed) return;
  impl.closed = true;
  // What the owner's status source refers to may go away with the owner.
  impl.status = nullptr;
  boost::system::error_code ignored;
  impl.acceptor.close(ignored);
  for (auto& client : impl.clients) client.socket.close(ignored);
  if (impl.owns_socket_file) ::unlink(impl.path.c_str());
  impl.owns_socket_file = false;
}

std::error_code query_status(const std::filesystem::path& socket, std::chrono::milliseconds deadline,
                             const std::function<void(nlohmann::json part)>& on_part) {
  const auto endpoint = endpoint_of(socket);
  if (!endpoint) return endpoint.error();
  std::optional<std::error_code> answer;
  asio::io_context io;
  auto ask = ask_status(*endpoint, deadline, on_part);
  asio::co_spawn(io, std::move(ask), [&answer](std::exception_ptr error, std::error_code result) {
    answer = error ? std::make_error_code(std::errc::io_error) : result;
  });
  io.run();
  return answer.value_or(std::make_error_code(std::errc::io_error));
}

}  // namespace natkeeper
