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
#include <list>
#include <optional>
#include <stdexcept>

#include "agent/reflector/admission.hpp"
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

// A RESULT to the request's source, to be filled in.
SendRecord record_of(const Arrival& arrival) {
  const auto source = source_of(arrival.address, arrival.port);
  return {SendRecord::Kind::result, arrival.via, source, arrival.bytes.size(), source, 0, Status::sent};
}

// Counters that stats() may read from another thread.
struct Counters {
  std::atomic<std::uint64_t> udp_received{0}, tcp_accepted{0}, tcp_refused{0}, tcp_evicted{0}, oversized{0},
      malformed{0}, rate_limited{0}, cookies_sent{0}, results_sent{0}, auth_failed{0}, bad_requests{0}, busy{0},
      udp_probes{0}, tcp_probes{0}, tcp_handshakes{0}, send_errors{0};
};

void bump(std::atomic<std::uint64_t>& counter) noexcept { counter.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

std::string_view to_string(SendRecord::Kind kind) noexcept {
  switch (kind) {
    case SendRecord::Kind::cookie: return "cookie";
    case SendRecord::Kind::result: return "result";
    case SendRecord::Kind::udp_probe: return "udp probe";
    case SendRecord::Kind::tcp_probe: return "tcp probe";
    case SendRecord::Kind::tcp_handshake: return "tcp handshake";
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

// A TCP exchange: idle until its request has been read.
struct Connection : Pending {
  SourceKey prefix;  // its slot_key
  bool idle = true;
  Connection(ip::tcp::socket s, const SourceKey& p) : Pending(std::move(s)), prefix(p) {}
};

Budget make_budget(const ServerOptions& options) {
  return {SourceLimiter(options.rate_per_source, burst_for(options.rate_per_source), options.source_table_size,
                        random_value<std::uint64_t>()),
          TokenBucket(options.global_rate, burst_for(options.global_rate), Clock::now())};
}

}  // namespace

struct Server::State : std::enable_shared_from_this<Server::State> {
  asio::io_context& loop;
  ServerOptions options;
  std::vector<std::unique_ptr<Listener>> listeners;
  Admission admission;
  std::list<std::shared_ptr<Pending>> probes;           // at most max_tcp_probes
  std::list<std::shared_ptr<Connection>> connections;  // oldest first; at most max_tcp_connections
  SlotCounts connection_slots;
  SlotCounts probe_slots;
  bool stopped = false;
  Counters counters;

  State(asio::io_context& l, ServerOptions o)
      : loop(l), options(std::move(o)),
        admission(options.key, random_value<Secret>(), make_budget(options), make_budget(options)),
        connection_slots(options.max_tcp_connections, options.max_tcp_connections_per_prefix),
        probe_slots(options.max_tcp_probes, options.max_tcp_probes_per_prefix) {}

  void open(const ip::udp::endpoint& endpoint);
  void close_all();

  void notify(const SendRecord& record) const {
    if (options.on_send) options.on_send(record);
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

  Decision admit(std::size_t index, const Arrival& arrival);
  void count(Decision::Verdict verdict);
  bool start_probe(std::size_t index, const ProbeOrder& probe, SendRecord record);
  void handle_datagram(std::size_t index, const ip::udp::endpoint& from, std::span<const std::uint8_t> bytes);
  asio::awaitable<std::optional<TcpResultBytes>> handle_tcp_request(std::size_t index, const ip::tcp::endpoint& from,
                                                                    std::span<const std::uint8_t> bytes);
  void send_udp(ip::udp::socket& socket, std::span<const std::uint8_t> message, const ip::udp::endpoint& to,
                const SendRecord& record);

  // Each coroutine holds `self` (this state; a parameter is kept in the
  // coroutine frame, used or not) from its creation on, so the state outlives
  // it whenever the Server goes.
  asio::awaitable<void> udp_loop(std::shared_ptr<State> self, std::size_t index);
  asio::awaitable<void> accept_loop(std::shared_ptr<State> self, std::size_t index);
  asio::awaitable<void> serve_connection(std::shared_ptr<State> self, std::shared_ptr<Connection> connection,
                                         std::size_t index, ip::tcp::endpoint remote);
  asio::awaitable<void> tcp_probe(std::shared_ptr<State> self, std::shared_ptr<Pending> probe,
                                  ip::tcp::endpoint to, ProbeBytes message);
  // Connects as `probe` says, writes nothing, and gives how the attempt ended.
  asio::awaitable<Status> tcp_handshake(std::shared_ptr<State> self, std::size_t index, ProbeOrder probe,
                                        SendRecord record);
  // A handshake request that came over UDP: its RESULT goes to `to` once the handshake ends.
  asio::awaitable<void> report_handshake(std::shared_ptr<State> self, std::size_t index, ip::udp::endpoint to,
                                         ProbeOrder probe, Reply reply, SendRecord record);

  // Closes a probe or handshake and gives back its slot.
  void end_probe(const std::shared_ptr<Pending>& probe, const SourceKey& prefix) {
    boost::system::error_code ignored;
    probe->socket.close(ignored);
    probe->timer.cancel();
    probe_slots.give_back(prefix);
    const auto found = std::find(probes.begin(), probes.end(), probe);
    if (found != probes.end()) probes.erase(found);
  }
  // Closes a connection and gives back its slot, once: eviction may have come first.
  void end_connection(const std::shared_ptr<Connection>& connection) {
    const auto found = std::find(connections.begin(), connections.end(), connection);
    if (found == connections.end()) return;
    connections.erase(found);
    connection_slots.give_back(connection->prefix);
    boost::system::error_code ignored;
    connection->socket.close(ignored);
    connection->timer.cancel();
  }
  // Makes room for a new connection by closing the one that has waited
  // longest for its request: idle connections cost their holder nothing, so
  // holding them must not lock others out. False when none is idle.
  bool evict_oldest_idle() {
    const auto oldest = std::find_if(connections.begin(), connections.end(), [](const auto& c) { return c->idle; });
    if (oldest == connections.end()) return false;
    end_connection(std::shared_ptr<Connection>(*oldest));  // a copy: the list's own is erased
    bump(counters.tcp_evicted);
    return true;
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
  for (auto& p : probes) {
    p->socket.close(ignored);
    p->timer.cancel();
  }
  for (auto& c : connections) {
    c->socket.close(ignored);
    c->timer.cancel();
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

// Asks admission what to do with a request, counts its verdict and starts a
// probe to deliver; a handshake is the caller's to start, as its RESULT waits
// for it, but its slot is taken here, before another request is admitted.
Decision Server::State::admit(std::size_t index, const Arrival& arrival) {
  auto decision = admission.decide(arrival, {Clock::now(), std::chrono::system_clock::now()}, probe_slots);
  count(decision.verdict);
  if (decision.verdict == Decision::Verdict::probe && !start_probe(index, *decision.probe, record_of(arrival)) &&
      decision.reply)
    decision.reply->status = Status::busy;
  // (Without a reply there is no handshake to start: the callers drop the request.)
  if (decision.verdict == Decision::Verdict::handshake && decision.reply)
    probe_slots.take(slot_key(decision.probe->address));
  if (decision.reply)
    bump(decision.reply->type == MessageType::cookie ? counters.cookies_sent : counters.results_sent);
  return decision;
}

void Server::State::count(Decision::Verdict verdict) {
  using Verdict = Decision::Verdict;
  switch (verdict) {
    case Verdict::oversized: bump(counters.oversized); break;
    case Verdict::malformed: bump(counters.malformed); break;
    case Verdict::rate_limited: bump(counters.rate_limited); break;
    case Verdict::auth_failed: bump(counters.auth_failed); break;
    case Verdict::bad_request: bump(counters.bad_requests); break;
    case Verdict::busy: bump(counters.busy); break;
    case Verdict::cookie:
    case Verdict::probe:
    case Verdict::handshake: break;  // counted as what they send
  }
}

// Sends a UDP probe or starts a TCP one; false when the kernel refuses it.
bool Server::State::start_probe(std::size_t index, const ProbeOrder& probe, SendRecord record) {
  auto& prober = *listeners[probe_listener(index)];
  record.destination = source_of(probe.address, probe.port);
  record.size = probe.message.size();
  boost::system::error_code ec;
  if (probe.transport == Transport::udp) {
    record.kind = SendRecord::Kind::udp_probe;
    prober.probe_udp.send_to(asio::buffer(probe.message), ip::udp::endpoint(probe.address, probe.port), 0, ec);
    if (ec) {
      bump(counters.send_errors);
      return false;
    }
    bump(counters.udp_probes);
    notify(record);
    return true;
  }

  ip::tcp::socket socket(loop);
  socket.open(probe.address.is_v4() ? ip::tcp::v4() : ip::tcp::v6(), ec);
  if (!ec && !prober.address.is_unspecified()) socket.bind(ip::tcp::endpoint(prober.address, 0), ec);
  if (ec) {
    bump(counters.send_errors);
    return false;
  }
  auto pending_probe = std::make_shared<Pending>(std::move(socket));
  probes.push_back(pending_probe);
  probe_slots.take(slot_key(probe.address));
  bump(counters.tcp_probes);
  record.kind = SendRecord::Kind::tcp_probe;
  notify(record);
  auto task = tcp_probe(shared_from_this(), pending_probe, ip::tcp::endpoint(probe.address, probe.port), probe.message);
  asio::co_spawn(loop, std::move(task), asio::detached);
  // Answered at once, before the connect ends: neither the status nor the
  // time the answer takes tells whether the port is open.
  return true;
}

void Server::State::handle_datagram(std::size_t index, const ip::udp::endpoint& from,
                                    std::span<const std::uint8_t> bytes) {
  bump(counters.udp_received);
  const Arrival arrival{bytes, from.address(), from.port(), Transport::udp};
  const auto decision = admit(index, arrival);
  const auto& reply = decision.reply;
  if (!reply) return;
  auto record = record_of(arrival);
  if (decision.verdict == Decision::Verdict::handshake) {
    auto task = report_handshake(shared_from_this(), index, from, *decision.probe, *reply, record);
    asio::co_spawn(loop, std::move(task), asio::detached);
    return;
  }
  record.status = reply->status;
  auto send = [&](SendRecord::Kind kind, std::span<const std::uint8_t> message) {
    record.kind = kind;
    record.size = message.size();
    send_udp(listeners[index]->udp, message, from, record);
  };
  if (reply->type == MessageType::cookie)
    send(SendRecord::Kind::cookie, encode_cookie(reply->token, reply->observed, reply->cookie));
  else
    send(SendRecord::Kind::result, encode_result(reply->token, reply->status, reply->observed));
}

asio::awaitable<std::optional<TcpResultBytes>> Server::State::handle_tcp_request(
    std::size_t index, const ip::tcp::endpoint& from, std::span<const std::uint8_t> bytes) {
  const Arrival arrival{bytes, from.address(), from.port(), Transport::tcp};
  auto decision = admit(index, arrival);  // a RESULT: the handshake proved the source
  auto& reply = decision.reply;
  if (!reply) co_return std::nullopt;
  auto record = record_of(arrival);
  if (decision.verdict == Decision::Verdict::handshake)
    reply->status = co_await tcp_handshake(shared_from_this(), index, *decision.probe, record);
  record.kind = SendRecord::Kind::result;
  record.size = result_reply::kSize;
  record.status = reply->status;
  notify(record);
  co_return encode_tcp_result(reply->token, reply->status, reply->observed);
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
    const auto prefix = slot_key(remote.address());
    // A prefix at its cap waits for its own connections to end; otherwise a
    // new connection may take an idle one's place.
    if (endpoint_error || connection_slots.prefix_full(prefix) ||
        (connection_slots.full() && !evict_oldest_idle())) {
      bump(counters.tcp_refused);
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    connection_slots.take(prefix);
    auto connection = std::make_shared<Connection>(std::move(socket), prefix);
    connections.push_back(connection);
    auto task = serve_connection(self, connection, index, remote);
    asio::co_spawn(loop, std::move(task), asio::detached);
  }
}

asio::awaitable<void> Server::State::serve_connection(std::shared_ptr<State> /*self*/,
                                                      std::shared_ptr<Connection> connection, std::size_t index,
                                                      ip::tcp::endpoint remote) {
  connection->arm(options.tcp_read_timeout, connection);
  // Whatever happens below, the connection is closed and forgotten.
  struct Done {
    State& state;
    std::shared_ptr<Connection> connection;
    ~Done() { state.end_connection(connection); }
  } done{*this, connection};

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
  // No longer idle, so never evicted: a handshake's time, then the read
  // timeout again for the RESULT to be written.
  connection->idle = false;
  connection->arm(options.tcp_probe_timeout + options.tcp_read_timeout, connection);
  const auto reply =
      co_await handle_tcp_request(index, remote, std::span<const std::uint8_t>(body.data(), length));
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
    SourceKey prefix;
    ~Done() { state.end_probe(probe, prefix); }
  } done{*this, probe, slot_key(to.address())};

  auto [connect_error] = co_await probe->socket.async_connect(to, token);
  if (connect_error) co_return;  // refused, unreachable or timed out: never reported
  auto [write_error, written] = co_await asio::async_write(probe->socket, asio::buffer(message), token);
  if (write_error || written != message.size()) co_return;
  boost::system::error_code ignored;
  probe->socket.shutdown(ip::tcp::socket::shutdown_send, ignored);
}

asio::awaitable<Status> Server::State::tcp_handshake(std::shared_ptr<State> /*self*/, std::size_t index,
                                                     ProbeOrder probe, SendRecord record) {
  const auto& prober = *listeners[probe_listener(index)];
  ip::tcp::socket socket(loop);
  boost::system::error_code ec;
  socket.open(probe.address.is_v4() ? ip::tcp::v4() : ip::tcp::v6(), ec);
  if (!ec && !prober.address.is_unspecified()) socket.bind(ip::tcp::endpoint(prober.address, 0), ec);
  auto attempt = std::make_shared<Pending>(std::move(socket));
  probes.push_back(attempt);
  // The slot admit() took is given back whichever way this ends.
  struct Done {
    State& state;
    std::shared_ptr<Pending> attempt;
    SourceKey prefix;
    ~Done() { state.end_probe(attempt, prefix); }
  } done{*this, attempt, slot_key(probe.address)};
  if (ec) {
    bump(counters.send_errors);
    co_return Status::busy;
  }
  bump(counters.tcp_handshakes);
  record.kind = SendRecord::Kind::tcp_handshake;
  record.destination = source_of(probe.address, probe.port);
  record.size = 0;
  notify(record);
  attempt->arm(options.tcp_probe_timeout, attempt);
  auto [connect_error] = co_await attempt->socket.async_connect(ip::tcp::endpoint(probe.address, probe.port), token);
  // Closed at once (by `done`), nothing written: the device's application sees an empty connection.
  if (!connect_error) co_return Status::connected;
  if (connect_error == asio::error::connection_refused) co_return Status::refused;
  co_return Status::no_answer;  // timed out (the timer closed the socket), unreachable, ...
}

asio::awaitable<void> Server::State::report_handshake(std::shared_ptr<State> self, std::size_t index,
                                                      ip::udp::endpoint to, ProbeOrder probe, Reply reply,
                                                      SendRecord record) {
  reply.status = co_await tcp_handshake(self, index, probe, record);
  if (stopped) co_return;
  record.kind = SendRecord::Kind::result;
  record.size = result_reply::kSize;
  record.status = reply.status;
  send_udp(listeners[index]->udp, encode_result(reply.token, reply.status, reply.observed), to, record);
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
  return {get(c.udp_received), get(c.tcp_accepted), get(c.tcp_refused), get(c.tcp_evicted), get(c.oversized),
          get(c.malformed), get(c.rate_limited), get(c.cookies_sent), get(c.results_sent), get(c.auth_failed),
          get(c.bad_requests), get(c.busy), get(c.udp_probes), get(c.tcp_probes), get(c.tcp_handshakes),
          get(c.send_errors)};
}

}  // namespace natkeeper::reflector
