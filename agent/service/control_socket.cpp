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
// A status document is a few KiB; this bounds what a confused server can make us hold.
constexpr std::size_t kMaxReplyBytes = 4 * 1024 * 1024;
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

asio::awaitable<Result<Json>> ask_status(stream_protocol::endpoint endpoint) {
  stream_protocol::socket socket(co_await asio::this_coro::executor);
  const auto [connect_error] = co_await socket.async_connect(endpoint, kToken);
  if (connect_error) co_return std::error_code(connect_error);
  static constexpr std::string_view kRequest = "status\n";
  const auto [write_error, written] = co_await asio::async_write(socket, asio::buffer(kRequest), kToken);
  if (write_error) co_return std::error_code(write_error);
  std::string reply;
  const auto [read_error, size] = co_await asio::async_read(socket, asio::dynamic_buffer(reply, kMaxReplyBytes), kToken);
  // The server ends its reply by closing: anything else is a failure or a reply too long.
  if (read_error != asio::error::eof)
    co_return read_error ? std::error_code(read_error) : std::make_error_code(std::errc::message_size);
  auto document = Json::parse(reply, nullptr, false);
  if (document.is_discarded()) co_return std::make_error_code(std::errc::bad_message);
  co_return Result<Json>(boost::system::in_place_value, std::move(document));
}

}  // namespace

std::filesystem::path runtime_directory() { return directory_from_systemd("RUNTIME_DIRECTORY", "/run/natkeeper"); }

std::filesystem::path control_socket_path() { return runtime_directory() / "control"; }

// Shared with the coroutines it spawns, which outlive the ControlServer when
// it is destroyed while they wait: they see `closed` and end.
struct ControlServer::Impl {
  using Clients = std::list<stream_protocol::socket>;

  Impl(const asio::any_io_executor& on, std::filesystem::path at, StatusSource source,
       std::chrono::milliseconds deadline)
      : executor(on),
        path(std::move(at)),
        status(std::move(source)),
        client_deadline(deadline),
        acceptor(on),
        slot_freed(on) {}

  static asio::awaitable<void> accept_clients(std::shared_ptr<Impl> self);
  static asio::awaitable<void> serve_client(std::shared_ptr<Impl> self, Clients::iterator client);

  asio::any_io_executor executor;
  std::filesystem::path path;
  StatusSource status;
  std::chrono::milliseconds client_deadline;
  stream_protocol::acceptor acceptor;
  // Wakes an accept loop waiting for one of the kMaxClients slots.
  asio::steady_timer slot_freed;
  Clients clients;
  bool owns_socket_file = false;
  bool closed = false;
};

asio::awaitable<void> ControlServer::Impl::accept_clients(std::shared_ptr<Impl> self) {
  while (!self->closed) {
    if (self->clients.size() >= kMaxClients) {
      self->slot_freed.expires_at(asio::steady_timer::time_point::max());
      co_await self->slot_freed.async_wait(kToken);
      continue;
    }
    auto [ec, socket] = co_await self->acceptor.async_accept(kToken);
    if (self->closed) co_return;
    if (ec) {
      asio::steady_timer pause(self->executor, kAcceptRetryPause);
      co_await pause.async_wait(kToken);
      continue;
    }
    self->clients.push_back(std::move(socket));
    auto serve = serve_client(self, std::prev(self->clients.end()));
    asio::co_spawn(self->executor, std::move(serve), asio::detached);
  }
}

asio::awaitable<void> ControlServer::Impl::serve_client(std::shared_ptr<Impl> self, Clients::iterator client) {
  // However this coroutine ends, its connection closes and its slot frees.
  struct Slot {
    Impl& server;
    Clients::iterator client;
    ~Slot() {
      server.clients.erase(client);
      if (!server.closed) server.slot_freed.cancel();
    }
  };
  const Slot slot{*self, client};
  auto& socket = *client;

  asio::steady_timer deadline(self->executor, self->client_deadline);
  std::string request;
  auto receive = asio::async_read_until(socket, asio::dynamic_buffer(request, kMaxRequestBytes), '\n', kToken);
  auto read_expiry = deadline.async_wait(kToken);
  const auto read = co_await (std::move(receive) || std::move(read_expiry));
  // A timeout, an error, no line within kMaxRequestBytes, or close().
  if (read.index() != 0 || std::get<0>(std::get<0>(read)) || self->closed) co_return;
  auto line = request.substr(0, std::get<1>(std::get<0>(read)) - 1);
  if (!line.empty() && line.back() == '\r') line.pop_back();

  std::string reply = line == "status" ? dump(self->status()) : dump(Json{{"error", "unknown request: " + line}});
  reply += '\n';
  deadline.expires_after(self->client_deadline);
  auto send = asio::async_write(socket, asio::buffer(reply), kToken);
  auto send_expiry = deadline.async_wait(kToken);
  co_await (std::move(send) || std::move(send_expiry));
}

ControlServer::ControlServer(asio::any_io_executor executor, std::filesystem::path path, StatusSource status,
                             std::chrono::milliseconds client_deadline)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(path), std::move(status), client_deadline)) {}

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
  impl.slot_freed.cancel();
  for (auto& client : impl.clients) client.close(ignored);
  if (impl.owns_socket_file) ::unlink(impl.path.c_str());
  impl.owns_socket_file = false;
}

Result<nlohmann::json> query_status(const std::filesystem::path& socket, std::chrono::milliseconds deadline) {
  const auto endpoint = endpoint_of(socket);
  if (!endpoint) return endpoint.error();
  std::optional<Result<Json>> answer;
  asio::io_context io;
  auto ask = ask_status(*endpoint);
  asio::co_spawn(io, std::move(ask), [&answer](std::exception_ptr error, Result<Json> result) {
    if (error) answer.emplace(std::make_error_code(std::errc::io_error));
    else answer.emplace(std::move(result));
  });
  io.run_for(deadline);
  if (!answer) return std::make_error_code(std::errc::timed_out);
  return std::move(*answer);
}

}  // namespace natkeeper
