#include "agent/reflector/server.hpp"

#include <sodium.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <stdexcept>

#include "agent/reflector/rate_limit.hpp"

namespace natkeeper::reflector {

namespace asio = boost::asio;
namespace ip = asio::ip;

namespace {

constexpr auto token = asio::as_tuple(asio::use_awaitable);

// Attempts at a port that is free for both UDP and TCP when port 0 is asked for.
constexpr int kBindAttempts = 20;
// After an accept error other than cancellation (EMFILE, ENOBUFS, ...): a pause,
// so a persistent error is no busy loop.
constexpr std::chrono::milliseconds kAcceptErrorPause{100};

template <class T>
T random_value() {
  // sodium_init() picks the system's random source; it is idempotent and thread-safe.
  if (sodium_init() < 0) throw std::runtime_error("libsodium cannot initialise (no random source)");
  T value{};
  randombytes_buf(&value, sizeof value);
  return value;
}

Source source_of(const ip::address& address, std::uint16_t port) { return {normalized(address), port}; }

// Counters that stats() may read from another thread.
struct Counters {
  std::atomic<std::uint64_t> udp_received{0}, tcp_accepted{0}, tcp_refused{0}, oversized{0}, malformed{0},
      rate_limited{0}, cookies_sent{0}, results_sent{0}, auth_failed{0}, bad_requests{0}, busy{0},
      udp_probes{0}, tcp_probes{0}, send_errors{0};
};

void bump(std::atomic<std::uint64_t>& counter) noexcept { counter.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

std::string_view to_string(SendRecord::Kind kind) noexcept {
  switch (kind) {
    case SendRecord::Kind::cookie: return "cookie";
    case SendRecord::Kind::result: return "result";
    case SendRecord::Kind::udp_probe: return "udp probe";
    case SendRecord::Kind::tcp_probe: return "tcp probe";
  }
  return "?";
}

// --- The server's state -----------------------------------------------------------

namespace {

struct Listener {
  ip::address address;
  ip::udp::socket udp;        // requests and replies
  ip::udp::socket probe_udp;  // UDP probes: same address, another port
  ip::tcp::acceptor tcp;

  explicit Listener(asio::io_context& loop) : udp(loop), probe_udp(loop), tcp(loop) {}
};

// A TCP exchange or a TCP probe in flight, with the timer that ends it.
struct Pending {
  ip::tcp::socket socket;
  asio::steady_timer timer;
  explicit Pending(ip::tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {}

  // Closes the socket when `timeout` passes first.
  void arm(std::chrono::milliseconds timeout, const std::shared_ptr<Pending>& self) {
    timer.expires_after(timeout);
    timer.async_wait([weak = std::weak_ptr<Pending>(self)](boost::system::error_code ec) {
      if (ec) return;
      if (auto pending = weak.lock()) {
        boost::system::error_code ignored;
        pending->socket.close(ignored);
      }
    });
  }
};

}  // namespace

struct Server::State : std::enable_shared_from_this<Server::State> {
  asio::io_context& loop;
  ServerOptions options;
  Secret secret = random_value<Secret>();
  std::vector<std::unique_ptr<Listener>> listeners;
  SourceLimiter limiter;
  TokenBucket global;
  std::list<std::shared_ptr<Pending>> pending;  // at most max_tcp_connections + max_tcp_probes
  std::size_t tcp_connections = 0;
  std::map<SourceLimiter::Key, std::size_t> connections_per_source;  // entries > 0 only
  std::size_t tcp_probes_in_flight = 0;
  bool stopped = false;
  Counters counters;

  State(asio::io_context& l, ServerOptions o)
      : loop(l), options(std::move(o)),
        limiter(options.rate_per_source, burst_for(options.rate_per_source), options.source_table_size,
                random_value<std::uint64_t>()),
        global(options.global_rate, burst_for(options.global_rate), Clock::now()) {}

  void open(const ip::udp::endpoint& endpoint);
  void close_all();

  void notify(const SendRecord& record) const {
    if (options.on_send) options.on_send(record);
  }

  // Both buckets: the source's first, so a source over its rate costs the others nothing.
  bool take_tokens(const ip::address& source) {
    const auto now = Clock::now();
    return limiter.take(source, now) && global.take(now);
  }

  // The listener whose sockets send a probe for a request that came to
  // `index`: another address of the same family when there is one.
  std::size_t probe_listener(std::size_t index) const {
    const auto& own = listeners[index]->address;
    for (std::size_t i = 0; i < listeners.size(); ++i) {
      const auto& other = listeners[i]->address;
      if (i != index && other.is_v4() == own.is_v4() && other != own && !other.is_unspecified() &&
          !own.is_unspecified())
        return i;
    }
    return index;
  }

  Status checked(const Request& request, std::span<const std::uint8_t> bytes) {
    if (!options.key.empty() && !auth_tag_valid(bytes, options.key)) {
      bump(counters.auth_failed);
      return Status::auth_failed;
    }
    if (!probe_transport(request) || request.target_port == 0) {
      bump(counters.bad_requests);
      return Status::bad_request;
    }
    return Status::sent;
  }

  Status start_probe(std::size_t index, const Request& request, const ip::address& to, SendRecord record);
  void handle_datagram(std::size_t index, const ip::udp::endpoint& from, std::span<const std::uint8_t> bytes);
  std::optional<TcpResultBytes> handle_tcp_request(std::size_t index, const ip::tcp::endpoint& from,
                                                   std::span<const std::uint8_t> bytes);
  void send_udp(ip::udp::socket& socket, std::span<const std::uint8_t> message, const ip::udp::endpoint& to,
                const SendRecord& record);

  // Each coroutine holds `self` (this state; a parameter is kept in the
  // coroutine frame, used or not) from its creation on, so the state outlives
  // it whenever the Server goes.
  asio::awaitable<void> udp_loop(std::shared_ptr<State> self, std::size_t index);
  asio::awaitable<void> accept_loop(std::shared_ptr<State> self, std::size_t index);
  asio::awaitable<void> serve_connection(std::shared_ptr<State> self, std::shared_ptr<Pending> connection,
                                         std::size_t index, ip::tcp::endpoint remote);
  asio::awaitable<void> tcp_probe(std::shared_ptr<State> self, std::shared_ptr<Pending> probe,
                                  ip::tcp::endpoint to, ProbeBytes message);

  void forget(const std::shared_ptr<Pending>& done) {
    const auto found = std::find(pending.begin(), pending.end(), done);
    if (found != pending.end()) pending.erase(found);
  }
};

void Server::State::open(const ip::udp::endpoint& endpoint) {
  auto listener = std::make_unique<Listener>(loop);
  listener->address = endpoint.address();
  const bool v6 = endpoint.address().is_v6();
  for (int attempt = 1;; ++attempt) {
    listener->udp.open(endpoint.protocol());
    if (v6) listener->udp.set_option(ip::v6_only(true));  // [::] and 0.0.0.0 can both be given
    listener->udp.bind(endpoint);
    const auto port = listener->udp.local_endpoint().port();

    const ip::tcp::endpoint tcp_endpoint(endpoint.address(), port);
    listener->tcp.open(tcp_endpoint.protocol());
    listener->tcp.set_option(ip::tcp::acceptor::reuse_address(true));
    if (v6) listener->tcp.set_option(ip::v6_only(true));
    boost::system::error_code ec;
    listener->tcp.bind(tcp_endpoint, ec);
    if (ec == asio::error::address_in_use && endpoint.port() == 0 && attempt < kBindAttempts) {
      listener->tcp.close();
      listener->udp.close();
      continue;  // that UDP port's TCP twin is taken: another free port
    }
    if (ec) throw boost::system::system_error(ec);
    listener->tcp.listen(static_cast<int>(std::min<std::size_t>(options.max_tcp_connections, 128)));
    break;
  }
  listener->udp.non_blocking(true);  // replies never wait: a full buffer drops them
  listener->probe_udp.open(endpoint.protocol());
  if (v6) listener->probe_udp.set_option(ip::v6_only(true));
  listener->probe_udp.bind(ip::udp::endpoint(endpoint.address(), 0));
  listener->probe_udp.non_blocking(true);
  listeners.push_back(std::move(listener));
}

void Server::State::close_all() {
  stopped = true;
  boost::system::error_code ignored;
  for (auto& listener : listeners) {
    listener->udp.close(ignored);
    listener->probe_udp.close(ignored);
    listener->tcp.close(ignored);
  }
  for (auto& p : pending) {
    p->socket.close(ignored);
    p->timer.cancel();
  }
}

void Server::State::send_udp(ip::udp::socket& socket, std::span<const std::uint8_t> message,
                             const ip::udp::endpoint& to, const SendRecord& record) {
  boost::system::error_code ec;
  socket.send_to(asio::buffer(message.data(), message.size()), to, 0, ec);
  if (ec) {
    bump(counters.send_errors);
    return;
  }
  notify(record);
}

// Sends a UDP probe or starts a TCP one to `to` (the request's source
// address, as the socket gave it) at the request's target port.
Status Server::State::start_probe(std::size_t index, const Request& request, const ip::address& to,
                                  SendRecord record) {
  const auto transport = *probe_transport(request);
  const auto message = encode_probe(request.token);
  auto& prober = *listeners[probe_listener(index)];
  record.destination = source_of(to, request.target_port);
  record.size = message.size();
  if (transport == Transport::udp) {
    record.kind = SendRecord::Kind::udp_probe;
    boost::system::error_code ec;
    prober.probe_udp.send_to(asio::buffer(message), ip::udp::endpoint(to, request.target_port), 0, ec);
    if (ec) {
      bump(counters.send_errors);
      return Status::busy;
    }
    bump(counters.udp_probes);
    notify(record);
    return Status::sent;
  }

  if (tcp_probes_in_flight >= options.max_tcp_probes) {
    bump(counters.busy);
    return Status::busy;
  }
  ip::tcp::socket socket(loop);
  boost::system::error_code ec;
  socket.open(to.is_v4() ? ip::tcp::v4() : ip::tcp::v6(), ec);
  if (!ec && !prober.address.is_unspecified()) socket.bind(ip::tcp::endpoint(prober.address, 0), ec);
  if (ec) {
    bump(counters.send_errors);
    return Status::busy;
  }
  auto probe = std::make_shared<Pending>(std::move(socket));
  pending.push_back(probe);
  ++tcp_probes_in_flight;
  bump(counters.tcp_probes);
  record.kind = SendRecord::Kind::tcp_probe;
  notify(record);
  auto task = tcp_probe(shared_from_this(), probe, ip::tcp::endpoint(to, request.target_port), message);
  asio::co_spawn(loop, std::move(task), asio::detached);
  // Answered at once, before the connect ends: neither the status nor the
  // time the answer takes tells whether the port is open.
  return Status::sent;
}

void Server::State::handle_datagram(std::size_t index, const ip::udp::endpoint& from,
                                    std::span<const std::uint8_t> bytes) {
  bump(counters.udp_received);
  if (bytes.size() > request::kMaxSize) {
    bump(counters.oversized);
    return;
  }
  const auto request = decode_request(bytes);
  if (!request || from.port() == 0) {
    bump(counters.malformed);
    return;
  }
  const Source source = source_of(from.address(), from.port());
  const bool allowed = take_tokens(from.address());
  const bool cookie_ok = cookie_valid(secret, source, request->cookie, cookie_slot(std::chrono::system_clock::now()));
  auto& socket = listeners[index]->udp;
  SendRecord record{SendRecord::Kind::result, Transport::udp, source, bytes.size(), source, 0, Status::sent};

  // Nothing but a COOKIE goes to a source that has not echoed one; nothing is
  // larger than the request.
  auto reply_result = [&](Status status) {
    const auto message = encode_result(request->token, status, source);
    if (!cookie_ok || message.size() > bytes.size()) return;
    record.kind = SendRecord::Kind::result;
    record.size = message.size();
    record.status = status;
    bump(counters.results_sent);
    send_udp(socket, message, from, record);
  };

  if (!allowed) {
    bump(counters.rate_limited);
    reply_result(Status::rate_limited);
    return;
  }
  if (!cookie_ok) {
    const auto message = encode_cookie(request->token, source,
                                       make_cookie(secret, source, cookie_slot(std::chrono::system_clock::now())));
    if (message.size() > bytes.size()) return;
    record.kind = SendRecord::Kind::cookie;
    record.size = message.size();
    bump(counters.cookies_sent);
    send_udp(socket, message, from, record);
    return;
  }
  auto status = checked(*request, bytes);
  if (status == Status::sent) status = start_probe(index, *request, from.address(), record);
  reply_result(status);
}

std::optional<TcpResultBytes> Server::State::handle_tcp_request(std::size_t index, const ip::tcp::endpoint& from,
                                                                std::span<const std::uint8_t> bytes) {
  const auto request = decode_request(bytes);
  if (!request) {
    bump(counters.malformed);
    return std::nullopt;
  }
  const Source source = source_of(from.address(), from.port());
  SendRecord record{SendRecord::Kind::result, Transport::tcp, source, bytes.size(), source, 0, Status::sent};
  // The handshake proved the source: no cookie.
  Status status = Status::sent;
  if (!take_tokens(from.address())) {
    bump(counters.rate_limited);
    status = Status::rate_limited;
  } else {
    status = checked(*request, bytes);
    if (status == Status::sent) status = start_probe(index, *request, from.address(), record);
  }
  record.kind = SendRecord::Kind::result;
  record.size = result_reply::kSize;
  record.status = status;
  bump(counters.results_sent);
  notify(record);
  return encode_tcp_result(request->token, status, source);
}

// --- Coroutines -----------------------------------------------------------------

asio::awaitable<void> Server::State::udp_loop(std::shared_ptr<State> /*self*/, std::size_t index) {
  auto& socket = listeners[index]->udp;
  // One byte more than the largest request: a longer datagram is cut there and counted.
  std::array<std::uint8_t, request::kMaxSize + 1> buffer{};
  ip::udp::endpoint from;
  for (;;) {
    auto [ec, size] = co_await socket.async_receive_from(asio::buffer(buffer), from, token);
    if (stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) continue;
    handle_datagram(index, from, std::span<const std::uint8_t>(buffer.data(), size));
  }
}

asio::awaitable<void> Server::State::accept_loop(std::shared_ptr<State> self, std::size_t index) {
  auto& acceptor = listeners[index]->tcp;
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(token);
    if (stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      asio::steady_timer pause(loop, kAcceptErrorPause);
      co_await pause.async_wait(token);
      continue;
    }
    bump(counters.tcp_accepted);
    boost::system::error_code endpoint_error;
    const auto remote = socket.remote_endpoint(endpoint_error);
    const auto key = SourceLimiter::key(remote.address());
    auto& per_source = connections_per_source[key];
    if (endpoint_error || tcp_connections >= options.max_tcp_connections ||
        per_source >= options.max_tcp_connections_per_source) {
      if (per_source == 0) connections_per_source.erase(key);
      bump(counters.tcp_refused);
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    ++per_source;
    ++tcp_connections;
    auto connection = std::make_shared<Pending>(std::move(socket));
    pending.push_back(connection);
    auto task = serve_connection(self, connection, index, remote);
    asio::co_spawn(loop, std::move(task), asio::detached);
  }
}

asio::awaitable<void> Server::State::serve_connection(std::shared_ptr<State> /*self*/,
                                                      std::shared_ptr<Pending> connection, std::size_t index,
                                                      ip::tcp::endpoint remote) {
  connection->arm(options.tcp_read_timeout, connection);
  const auto key = SourceLimiter::key(remote.address());
  // Whatever happens below, the connection is closed and forgotten.
  struct Done {
    State& state;
    std::shared_ptr<Pending> connection;
    SourceLimiter::Key key;
    ~Done() {
      boost::system::error_code ignored;
      connection->socket.close(ignored);
      connection->timer.cancel();
      --state.tcp_connections;
      if (auto found = state.connections_per_source.find(key);
          found != state.connections_per_source.end() && --found->second == 0)
        state.connections_per_source.erase(found);
      state.forget(connection);
    }
  } done{*this, connection, key};

  std::array<std::uint8_t, kFrameLengthSize> length_bytes{};
  auto [length_error, length_read] = co_await asio::async_read(connection->socket, asio::buffer(length_bytes), token);
  if (length_error || length_read != length_bytes.size()) {
    bump(counters.malformed);
    co_return;
  }
  const std::size_t length = decode_frame_length(length_bytes);
  if (length > request::kMaxSize) {
    bump(counters.oversized);
    co_return;
  }
  std::array<std::uint8_t, request::kMaxSize> body{};
  auto [body_error, body_read] =
      co_await asio::async_read(connection->socket, asio::buffer(body.data(), length), token);
  if (body_error || body_read != length) {
    bump(counters.malformed);
    co_return;
  }
  const auto reply = handle_tcp_request(index, remote, std::span<const std::uint8_t>(body.data(), length));
  if (!reply) co_return;
  auto [write_error, written] = co_await asio::async_write(connection->socket, asio::buffer(*reply), token);
  if (write_error || written != reply->size()) bump(counters.send_errors);
  boost::system::error_code ignored;
  connection->socket.shutdown(ip::tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> Server::State::tcp_probe(std::shared_ptr<State> /*self*/, std::shared_ptr<Pending> probe,
                                               ip::tcp::endpoint to, ProbeBytes message) {
  probe->arm(options.tcp_probe_timeout, probe);
  struct Done {
    State& state;
    std::shared_ptr<Pending> probe;
    ~Done() {
      boost::system::error_code ignored;
      probe->socket.close(ignored);
      probe->timer.cancel();
      --state.tcp_probes_in_flight;
      state.forget(probe);
    }
  } done{*this, probe};

  auto [connect_error] = co_await probe->socket.async_connect(to, token);
  if (connect_error) co_return;  // refused, unreachable or timed out: never reported
  auto [write_error, written] = co_await asio::async_write(probe->socket, asio::buffer(message), token);
  if (write_error || written != message.size()) co_return;
  boost::system::error_code ignored;
  probe->socket.shutdown(ip::tcp::socket::shutdown_send, ignored);
}

// --- Server -----------------------------------------------------------------------

Server::Server(asio::io_context& loop, ServerOptions options)
    : state_(std::make_shared<State>(loop, std::move(options))) {
  if (state_->options.listen.empty()) throw ListenError("no listen address");
  for (const auto& endpoint : state_->options.listen) {
    try {
      state_->open(endpoint);
    } catch (const boost::system::system_error& e) {
      const auto address = endpoint.address().to_string();
      throw ListenError((endpoint.address().is_v6() ? "[" + address + "]" : address) + ":" +
                        std::to_string(endpoint.port()) + ": " + e.code().message());
    }
  }
}

Server::~Server() { state_->close_all(); }

void Server::start() {
  for (std::size_t i = 0; i < state_->listeners.size(); ++i) {
    auto udp = state_->udp_loop(state_, i);
    asio::co_spawn(state_->loop, std::move(udp), asio::detached);
    auto tcp = state_->accept_loop(state_, i);
    asio::co_spawn(state_->loop, std::move(tcp), asio::detached);
  }
}

void Server::stop() { state_->close_all(); }

std::vector<ip::udp::endpoint> Server::udp_endpoints() const {
  std::vector<ip::udp::endpoint> endpoints;
  for (const auto& listener : state_->listeners) endpoints.push_back(listener->udp.local_endpoint());
  return endpoints;
}

std::vector<ip::tcp::endpoint> Server::tcp_endpoints() const {
  std::vector<ip::tcp::endpoint> endpoints;
  for (const auto& listener : state_->listeners) endpoints.push_back(listener->tcp.local_endpoint());
  return endpoints;
}

ServerStats Server::stats() const noexcept {
  const auto& c = state_->counters;
  auto get = [](const std::atomic<std::uint64_t>& v) { return v.load(std::memory_order_relaxed); };
  return {get(c.udp_received), get(c.tcp_accepted), get(c.tcp_refused), get(c.oversized), get(c.malformed),
          get(c.rate_limited), get(c.cookies_sent), get(c.results_sent), get(c.auth_failed), get(c.bad_requests),
          get(c.busy), get(c.udp_probes), get(c.tcp_probes), get(c.send_errors)};
}

}  // namespace natkeeper::reflector
