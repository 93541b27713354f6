// natkeeper-reflector's server, run in this process on 127.0.0.x ephemeral
// ports: its io_context runs on a thread of its own while the test plays the
// clients and the probed hosts with plain blocking sockets. Only what needs
// real sockets and time is here; the admission rules are tested without
// either in test_reflector_admission.cpp.
#include <catch2/catch.hpp>

#include "result_printer.hpp"

#include <poll.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/reflector/protocol.hpp"
#include "agent/reflector/rate_limit.hpp"
#include "agent/reflector/server.hpp"

using namespace natkeeper;
using namespace natkeeper::reflector;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace ip = asio::ip;

namespace {

using Bytes = std::vector<std::uint8_t>;
using SteadyClock = std::chrono::steady_clock;

asio::io_context& client_io() {
  static asio::io_context io;  // blocking calls only: never run
  return io;
}

bool readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
}

// The server on its own thread; every message it sends is recorded.
struct Running {
  asio::io_context loop;
  std::mutex mutex;
  std::vector<SendRecord> sent;
  std::optional<Server> server;
  std::thread thread;

  explicit Running(ServerOptions options = {}) {
    if (options.listen.empty()) options.listen = {{ip::make_address("127.0.0.1"), 0}};
    options.on_send = [this](const SendRecord& record) {
      std::lock_guard lock(mutex);
      sent.push_back(record);
    };
    server.emplace(loop, std::move(options));
    server->start();
    thread = std::thread([this] { loop.run(); });
  }
  ~Running() {
    asio::post(loop, [this] { server->stop(); });
    thread.join();
    server.reset();
  }
  ip::udp::endpoint udp(std::size_t i = 0) const { return server->udp_endpoints().at(i); }
  ip::tcp::endpoint tcp(std::size_t i = 0) const { return server->tcp_endpoints().at(i); }
  std::vector<SendRecord> records() {
    std::lock_guard lock(mutex);
    return sent;
  }
  std::size_t count(SendRecord::Kind kind) {
    std::size_t n = 0;
    for (const auto& record : records()) n += record.kind == kind;
    return n;
  }
  // Until the server has dropped `datagrams` datagrams (oversized or
  // malformed), or 2 s have passed.
  void wait_dropped(std::uint64_t datagrams) {
    const auto deadline = SteadyClock::now() + 2s;
    auto dropped = [this] { return server->stats().oversized + server->stats().malformed; };
    while (dropped() < datagrams && SteadyClock::now() < deadline) std::this_thread::sleep_for(1ms);
  }
  // Until the server has read `datagrams` datagrams, or read none for `quiet`
  // (the kernel may drop some of a flood).
  void wait_received(std::uint64_t datagrams, std::chrono::milliseconds quiet = 200ms) {
    auto last = server->stats().udp_received;
    auto last_change = SteadyClock::now();
    while (last < datagrams && SteadyClock::now() - last_change < quiet) {
      std::this_thread::sleep_for(1ms);
      if (const auto now = server->stats().udp_received; now != last) {
        last = now;
        last_change = SteadyClock::now();
      }
    }
  }
};

struct Datagram {
  Bytes bytes;
  ip::udp::endpoint from;
};

struct Udp {
  ip::udp::socket socket;
  explicit Udp(const char* address = "127.0.0.1")
      : socket(client_io(), ip::udp::endpoint(ip::make_address(address), 0)) {}
  ip::udp::endpoint local() const { return socket.local_endpoint(); }
  std::uint16_t port() const { return local().port(); }
  void send(std::span<const std::uint8_t> bytes, const ip::udp::endpoint& to) {
    socket.send_to(asio::buffer(bytes.data(), bytes.size()), to);
  }
  std::optional<Datagram> receive(std::chrono::milliseconds timeout = 2000ms) {
    if (!readable(socket.native_handle(), timeout)) return std::nullopt;
    Datagram d;
    d.bytes.resize(2048);
    d.bytes.resize(socket.receive_from(asio::buffer(d.bytes), d.from));
    return d;
  }
  std::vector<Datagram> drain(std::chrono::milliseconds quiet) {
    std::vector<Datagram> all;
    while (auto d = receive(quiet)) all.push_back(std::move(*d));
    return all;
  }
};

Token random_token() {
  static std::mt19937 rng(12345);
  Token token{};
  for (auto& b : token) b = static_cast<std::uint8_t>(rng());
  return token;
}

// The first round: a request without a cookie, answered with a COOKIE.
Reply cookie_round(Udp& client, const ip::udp::endpoint& server, RequestFields fields,
                   std::span<const std::uint8_t> key = {}) {
  fields.cookie = {};
  client.send(encode_request(fields, key), server);
  auto reply = client.receive();
  REQUIRE(reply);
  CHECK(reply->from == server);
  auto decoded = decode_reply(reply->bytes);
  REQUIRE(decoded);
  REQUIRE(decoded->type == MessageType::cookie);
  CHECK(decoded->token == fields.token);
  return *decoded;
}

// Both rounds; gives the RESULT.
Reply request_probe(Udp& client, const ip::udp::endpoint& server, RequestFields fields,
                    std::span<const std::uint8_t> key = {}) {
  fields.cookie = cookie_round(client, server, fields, key).cookie;
  client.send(encode_request(fields, key), server);
  auto reply = client.receive();
  REQUIRE(reply);
  auto decoded = decode_reply(reply->bytes);
  REQUIRE(decoded);
  REQUIRE(decoded->type == MessageType::result);
  CHECK(decoded->token == fields.token);
  return *decoded;
}

struct TcpClient {
  ip::tcp::socket socket{client_io()};
  explicit TcpClient(const ip::tcp::endpoint& server, const char* address = "127.0.0.1") {
    socket.open(server.protocol());
    socket.bind(ip::tcp::endpoint(ip::make_address(address), 0));
    socket.connect(server);
  }
  void send(std::span<const std::uint8_t> bytes) { asio::write(socket, asio::buffer(bytes.data(), bytes.size())); }
  // Everything until the server closes (or the timeout): at most 4 KiB.
  std::optional<Bytes> read_to_end(std::chrono::milliseconds timeout = 3000ms) {
    Bytes all;
    const auto deadline = SteadyClock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
      if (left <= 0ms || !readable(socket.native_handle(), left)) return std::nullopt;  // still open
      std::array<std::uint8_t, 512> chunk{};
      boost::system::error_code ec;
      const auto n = socket.read_some(asio::buffer(chunk), ec);
      if (ec) return all;  // EOF or reset: closed
      all.insert(all.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
      if (all.size() > 4096) return all;
    }
  }
};

std::optional<Reply> tcp_request(const ip::tcp::endpoint& server, const RequestFields& fields,
                                 std::span<const std::uint8_t> key = {}) {
  TcpClient client(server);
  client.send(encode_tcp_request(fields, key));
  auto bytes = client.read_to_end();
  REQUIRE(bytes);
  if (bytes->size() < 2) return std::nullopt;
  REQUIRE(bytes->size() == 2u + (*bytes)[1]);
  auto reply = decode_reply(std::span(*bytes).subspan(2));
  REQUIRE(reply);
  CHECK(reply->token == fields.token);
  return *reply;
}

// One request over a new TCP connection from `address`; its RESULT, or
// nothing when the server closes the connection without one (or fails it).
std::optional<Reply> try_tcp_request(const ip::tcp::endpoint& server, const RequestFields& fields,
                                     const char* address) {
  ip::tcp::socket socket(client_io());
  boost::system::error_code ec;
  socket.open(server.protocol(), ec);
  if (!ec) socket.bind(ip::tcp::endpoint(ip::make_address(address), 0), ec);
  if (!ec) socket.connect(server, ec);
  const auto request = encode_tcp_request(fields);
  if (!ec) asio::write(socket, asio::buffer(request), ec);
  if (ec || !readable(socket.native_handle(), 2000ms)) return std::nullopt;
  std::array<std::uint8_t, kFrameLengthSize + result_reply::kSize> framed{};
  asio::read(socket, asio::buffer(framed), ec);
  if (ec) return std::nullopt;
  const auto reply = decode_reply(std::span(framed).subspan(kFrameLengthSize));
  if (!reply || reply->token != fields.token) return std::nullopt;
  return *reply;
}

// Both rounds over UDP, as a client that gives up on silence: the RESULT, or
// nothing when either round goes unanswered within `wait`.
std::optional<Reply> try_request_probe(Udp& client, const ip::udp::endpoint& server, RequestFields fields,
                                       std::chrono::milliseconds wait) {
  auto round = [&](MessageType expected) -> std::optional<Reply> {
    client.send(encode_request(fields), server);
    const auto deadline = SteadyClock::now() + wait;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
      if (left <= 0ms) return std::nullopt;
      const auto datagram = client.receive(left);
      if (!datagram) return std::nullopt;
      const auto reply = decode_reply(datagram->bytes);
      // A late reply to an earlier request is skipped.
      if (reply && reply->token == fields.token && reply->type == expected) return *reply;
    }
  };
  fields.cookie = {};
  const auto cookie = round(MessageType::cookie);
  if (!cookie) return std::nullopt;
  fields.cookie = cookie->cookie;
  return round(MessageType::result);
}

struct TcpListener {
  ip::tcp::acceptor acceptor{client_io()};
  // With a backlog of 0 the kernel queues one connection and then drops SYNs:
  // a connect to it hangs until its timeout, as to a host that does not answer.
  explicit TcpListener(const char* address = "127.0.0.1",
                       int backlog = asio::socket_base::max_listen_connections) {
    const ip::tcp::endpoint endpoint(ip::make_address(address), 0);
    acceptor.open(endpoint.protocol());
    acceptor.bind(endpoint);
    acceptor.listen(backlog);
  }
  std::uint16_t port() const { return acceptor.local_endpoint().port(); }
  ip::tcp::endpoint endpoint() const { return acceptor.local_endpoint(); }
  // A connection's bytes until it closes, and where it came from.
  std::optional<std::pair<Bytes, ip::tcp::endpoint>> accept(std::chrono::milliseconds timeout = 3000ms) {
    if (!readable(acceptor.native_handle(), timeout)) return std::nullopt;
    ip::tcp::socket socket(client_io());
    acceptor.accept(socket);
    const auto remote = socket.remote_endpoint();
    Bytes all;
    boost::system::error_code ec;
    asio::read(socket, asio::dynamic_buffer(all), ec);  // to EOF
    return std::pair{all, remote};
  }
};

// Every message went to the request's source; over UDP none was larger than the request.
void check_safety(const std::vector<SendRecord>& records) {
  for (const auto& r : records) {
    INFO(to_string(r.kind) << " to " << r.destination.address.to_string() << ":" << r.destination.port);
    CHECK(r.destination.address == r.request_source.address);
    if (r.kind == SendRecord::Kind::cookie || r.kind == SendRecord::Kind::result) CHECK(r.destination == r.request_source);
    if (r.via == Transport::udp) CHECK(r.size <= r.request_size);
    CHECK(r.size <= request::kSize);
  }
}

}  // namespace

TEST_CASE("reflector: UDP cookie exchange, then a UDP probe to the source at the target port",
          "[reflector][server][realtime]") {
  // Real time: the probe must really leave the server, from another port than the request went to.
  Running reflector;
  Udp client, target;
  const RequestFields fields{random_token(), Transport::udp, target.port(), {}};

  const auto cookie = cookie_round(client, reflector.udp(), fields);
  CHECK(cookie.observed == Source{ip::make_address("127.0.0.1"), client.port()});
  // A probe would have been sent before the COOKIE: none was.
  CHECK(reflector.server->stats().udp_probes == 0);

  RequestFields second = fields;
  second.cookie = cookie.cookie;
  client.send(encode_request(second), reflector.udp());
  const auto reply = client.receive();
  REQUIRE(reply);
  const auto result = decode_reply(reply->bytes);
  REQUIRE(result);
  CHECK(result->type == MessageType::result);
  CHECK(result->status == Status::sent);
  CHECK(result->observed == cookie.observed);

  const auto probe = target.receive();
  REQUIRE(probe);
  CHECK(decode_probe(probe->bytes) == fields.token);
  CHECK(probe->from.address() == ip::make_address("127.0.0.1"));
  CHECK(probe->from.port() != reflector.udp().port());  // not the port the request went to
  CHECK(reflector.server->stats().udp_probes == 1);
  check_safety(reflector.records());
}

TEST_CASE("reflector: with two listen addresses the UDP probe comes from the other one",
          "[reflector][server][realtime]") {
  // Real time: which of the server's sockets sends the probe.
  ServerOptions options;
  options.listen = {{ip::make_address("127.0.0.1"), 0}, {ip::make_address("127.0.0.2"), 0}};
  Running reflector(options);
  Udp client, target;
  const auto result = request_probe(client, reflector.udp(0), {random_token(), Transport::udp, target.port(), {}});
  CHECK(result.status == Status::sent);
  const auto probe = target.receive();
  REQUIRE(probe);
  CHECK(probe->from.address() == ip::make_address("127.0.0.2"));
  CHECK(reflector.tcp(1).port() == reflector.udp(1).port());  // UDP and TCP share each port
}

TEST_CASE("reflector: a TCP probe connects to the source at the target port, writes the token, closes",
          "[reflector][server][realtime]") {
  // Real time: a real connection is made, written to and closed.
  Running reflector;
  Udp client;
  TcpListener target;
  const Token token = random_token();
  const auto result = request_probe(client, reflector.udp(), {token, Transport::tcp, target.port(), {}});
  CHECK(result.status == Status::sent);
  const auto probe = target.accept();
  REQUIRE(probe);
  CHECK(decode_probe(probe->first) == token);
  CHECK(probe->second.address() == ip::make_address("127.0.0.1"));
  CHECK(probe->second.port() != reflector.tcp().port());
  check_safety(reflector.records());
}

TEST_CASE("reflector: a TCP probe to a closed port is reported as sent, like any other",
          "[reflector][server][realtime]") {
  // Real time: the answer must neither wait for nor tell a real connect's outcome.
  Running reflector;
  Udp client;
  std::uint16_t closed = 0;
  {
    TcpListener gone;  // a port that was free a moment ago
    closed = gone.port();
  }
  const auto result = request_probe(client, reflector.udp(), {random_token(), Transport::tcp, closed, {}});
  CHECK(result.status == Status::sent);
  const auto over_tcp = tcp_request(reflector.tcp(), {random_token(), Transport::tcp, closed, {}});
  REQUIRE(over_tcp);
  CHECK(over_tcp->status == Status::sent);
}

TEST_CASE("reflector: a handshake request reports the TCP handshake to the source, and writes nothing",
          "[reflector][server][realtime]") {
  // Real time: real connections to a listening and to a closed port.
  Running reflector;
  Udp client;
  TcpListener target;
  auto handshake = [](std::uint16_t port) {
    return RequestFields{random_token(), Transport::tcp, port, {}, ProbeKind::handshake};
  };
  auto result = request_probe(client, reflector.udp(), handshake(target.port()));
  CHECK(result.status == Status::connected);
  const auto connection = target.accept();
  REQUIRE(connection);
  CHECK(connection->first.empty());  // the device's application reads nothing
  CHECK(connection->second.address() == ip::make_address("127.0.0.1"));

  std::uint16_t closed = 0;
  {
    TcpListener gone;
    closed = gone.port();
  }
  result = request_probe(client, reflector.udp(), handshake(closed));
  CHECK(result.status == Status::refused);

  const auto over_tcp = tcp_request(reflector.tcp(), handshake(target.port()));
  REQUIRE(over_tcp);
  CHECK(over_tcp->status == Status::connected);
  REQUIRE(target.accept());

  const auto records = reflector.records();
  CHECK(std::count_if(records.begin(), records.end(),
                      [](const SendRecord& r) { return r.kind == SendRecord::Kind::tcp_handshake; }) == 3);
  check_safety(records);
  CHECK(reflector.server->stats().tcp_handshakes == 3);
}

TEST_CASE("reflector: a TCP request needs no cookie and gets its RESULT on the connection",
          "[reflector][server][realtime]") {
  // Real time: the RESULT is framed on the request's own connection, and the probes go out.
  Running reflector;
  Udp udp_target;
  TcpListener tcp_target;
  SECTION("UDP probe") {
    const RequestFields fields{random_token(), Transport::udp, udp_target.port(), {}};
    const auto reply = tcp_request(reflector.tcp(), fields);
    REQUIRE(reply);
    CHECK(reply->type == MessageType::result);
    CHECK(reply->status == Status::sent);
    CHECK(reply->observed.address == ip::make_address("127.0.0.1"));
    const auto probe = udp_target.receive();
    REQUIRE(probe);
    CHECK(decode_probe(probe->bytes) == fields.token);
  }
  SECTION("TCP probe") {
    const RequestFields fields{random_token(), Transport::tcp, tcp_target.port(), {}};
    const auto reply = tcp_request(reflector.tcp(), fields);
    REQUIRE(reply);
    CHECK(reply->status == Status::sent);
    const auto probe = tcp_target.accept();
    REQUIRE(probe);
    CHECK(decode_probe(probe->first) == fields.token);
  }
  check_safety(reflector.records());
}

TEST_CASE("reflector: oversized, truncated and garbage datagrams are dropped and counted",
          "[reflector][server][realtime]") {
  // Real time: the kernel cuts a datagram at the receive buffer; the server counts what it drops.
  Running reflector;
  Udp client, target;
  const RequestFields fields{random_token(), Transport::udp, target.port(), {}};
  const auto good = encode_request(fields);
  Bytes oversized(good.begin(), good.end());
  oversized.resize(request::kMaxSize + 1, 0);
  Bytes huge(good.begin(), good.end());
  huge.resize(9000, 0);  // cut at the receive buffer: still over the maximum
  const Bytes garbage{'G', 'E', 'T', ' ', '/', '\r', '\n'};

  // (Every kind of malformed request is in test_reflector_admission.cpp.)
  client.send(oversized, reflector.udp());
  client.send(huge, reflector.udp());
  client.send(std::span(good).first(75), reflector.udp());
  client.send(Bytes{}, reflector.udp());
  client.send(garbage, reflector.udp());
  reflector.wait_dropped(5);
  CHECK_FALSE(client.receive(0ms));
  const auto stats = reflector.server->stats();
  CHECK(stats.udp_received == 5);
  CHECK(stats.oversized == 2);
  CHECK(stats.malformed == 3);
  CHECK(reflector.records().empty());

  // Still serving.
  CHECK(request_probe(client, reflector.udp(), fields).status == Status::sent);
  CHECK(target.receive());
}

TEST_CASE("reflector: malformed, oversized and slow TCP exchanges are closed without a reply",
          "[reflector][server][realtime]") {
  // Real time: TCP framing and the read timeout are the server's sockets and timers.
  ServerOptions options;
  options.tcp_read_timeout = 300ms;
  Running reflector(options);
  const auto good = encode_tcp_request({random_token(), Transport::udp, 9, {}});
  SECTION("a frame longer than 512 bytes") {
    TcpClient client(reflector.tcp());
    client.send(encode_frame_length(1000));
    const auto reply = client.read_to_end();
    REQUIRE(reply);
    CHECK(reply->empty());
    CHECK(reflector.server->stats().oversized == 1);
  }
  SECTION("a frame of garbage") {
    TcpClient client(reflector.tcp());
    Bytes frame{0, 80};
    frame.resize(82, 0x5A);
    client.send(frame);
    const auto reply = client.read_to_end();
    REQUIRE(reply);
    CHECK(reply->empty());
  }
  SECTION("a frame too short to be a request") {
    TcpClient client(reflector.tcp());
    Bytes frame{0, 10};
    frame.resize(12, 0);
    client.send(frame);
    const auto reply = client.read_to_end();
    REQUIRE(reply);
    CHECK(reply->empty());
  }
  SECTION("truncated, then silence: closed at the read timeout") {
    TcpClient client(reflector.tcp());
    client.send(std::span(good).first(30));
    const auto started = SteadyClock::now();
    const auto reply = client.read_to_end(3000ms);
    REQUIRE(reply);
    CHECK(reply->empty());
    CHECK(SteadyClock::now() - started < 2s);
  }
  SECTION("nothing at all") {
    TcpClient client(reflector.tcp());
    const auto reply = client.read_to_end(3000ms);
    REQUIRE(reply);
    CHECK(reply->empty());
  }
  CHECK(reflector.records().empty());
  // Still serving.
  Udp target;
  const auto reply = tcp_request(reflector.tcp(), {random_token(), Transport::udp, target.port(), {}});
  REQUIRE(reply);
  CHECK(reply->status == Status::sent);
}

TEST_CASE("reflector: TCP connections are bounded per /24", "[reflector][server][realtime]") {
  // Real time: connections are accepted by the kernel and closed by the server.
  ServerOptions options;
  options.max_tcp_connections_per_prefix = 2;
  Running reflector(options);
  TcpClient first(reflector.tcp(), "127.0.0.2"), second(reflector.tcp(), "127.0.0.3");
  TcpClient third(reflector.tcp(), "127.0.0.4");  // accepted by the kernel, closed by the reflector
  const auto closed = third.read_to_end(2000ms);
  REQUIRE(closed);
  CHECK(closed->empty());
  CHECK(reflector.server->stats().tcp_refused == 1);
  CHECK_FALSE(first.read_to_end(100ms));  // the first two wait for their request
  TcpClient elsewhere(reflector.tcp(), "127.0.1.2");  // another /24
  CHECK_FALSE(elsewhere.read_to_end(100ms));
  CHECK(reflector.server->stats().tcp_refused == 1);
}

TEST_CASE("reflector: with every connection held, a new one closes the oldest idle one",
          "[reflector][server][realtime]") {
  // Real time: connections accepted by the kernel, closed by the server.
  ServerOptions options;
  options.max_tcp_connections = 3;
  Running reflector(options);
  Udp target;
  // Where the handshake goes: the request's own address.
  TcpListener blackhole("127.0.2.2", 0);
  TcpClient filler(blackhole.endpoint());  // fills its backlog
  TcpClient oldest(reflector.tcp(), "127.0.1.2");
  std::this_thread::sleep_for(20ms);  // accepted in this order
  // Not idle: its request has arrived, and it waits for a handshake that gets no answer.
  TcpClient busy(reflector.tcp(), "127.0.2.2");
  busy.send(encode_tcp_request({random_token(), Transport::tcp, blackhole.port(), {}, ProbeKind::handshake}));
  std::this_thread::sleep_for(20ms);
  TcpClient newer(reflector.tcp(), "127.0.3.2");
  std::this_thread::sleep_for(20ms);

  const auto reply = try_tcp_request(reflector.tcp(), {random_token(), Transport::udp, target.port(), {}},
                                     "127.0.4.2");
  REQUIRE(reply);
  CHECK(reply->status == Status::sent);
  const auto evicted = oldest.read_to_end(500ms);
  REQUIRE(evicted);
  CHECK(evicted->empty());
  CHECK(reflector.server->stats().tcp_evicted == 1);
  CHECK_FALSE(newer.read_to_end(50ms));  // still open, waiting for its request
  // The handshake's RESULT still comes, when the attempt has timed out.
  const auto handshake = busy.read_to_end(5000ms);
  REQUIRE(handshake);
  REQUIRE(handshake->size() == kFrameLengthSize + result_reply::kSize);
  const auto result = decode_reply(std::span(*handshake).subspan(kFrameLengthSize));
  REQUIRE(result);
  CHECK(result->status == Status::no_answer);
}

TEST_CASE("reflector: a handshake over TCP outlasts the read timeout", "[reflector][server][realtime]") {
  // Real time: the read timeout is for the request; a handshake that gets no
  // answer lasts the probe timeout, and its RESULT is still written.
  ServerOptions options;
  options.tcp_read_timeout = 200ms;
  options.tcp_probe_timeout = 800ms;
  Running reflector(options);
  TcpListener blackhole("127.0.0.1", 0);
  TcpClient filler(blackhole.endpoint());  // fills its backlog
  const auto started = SteadyClock::now();
  TcpClient client(reflector.tcp());
  client.send(encode_tcp_request({random_token(), Transport::tcp, blackhole.port(), {}, ProbeKind::handshake}));
  const auto bytes = client.read_to_end(3000ms);
  REQUIRE(bytes);
  REQUIRE(bytes->size() == kFrameLengthSize + result_reply::kSize);
  const auto result = decode_reply(std::span(*bytes).subspan(kFrameLengthSize));
  REQUIRE(result);
  CHECK(result->status == Status::no_answer);
  CHECK(SteadyClock::now() - started >= 700ms);
}

TEST_CASE("reflector: too many TCP probes in flight → busy", "[reflector][server][realtime]") {
  // Real time: the server hands its bound on TCP probes in flight to admission.
  ServerOptions options;
  options.max_tcp_probes = 0;
  Running reflector(options);
  Udp client;
  TcpListener target;
  CHECK(request_probe(client, reflector.udp(), {random_token(), Transport::tcp, target.port(), {}}).status ==
        Status::busy);
  // The RESULT follows the probe's start: none was started.
  CHECK(reflector.server->stats().tcp_probes == 0);
  CHECK(reflector.server->stats().busy == 1);
}

TEST_CASE("reflector: a flood of 10,000 random datagrams", "[reflector][server][realtime]") {
  // Real time: socket buffers and the event loop under load, against rates on the wall clock.
  ServerOptions options;
  options.rate_per_source = 50;
  options.global_rate = 200;
  Running reflector(options);
  std::mt19937 rng(2024);
  auto below = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };

  // A few sources, each with its own cookie: half their requests are valid.
  std::vector<std::unique_ptr<Udp>> flooders;
  std::vector<Cookie> cookies;
  const auto started = SteadyClock::now();
  for (const char* address : {"127.0.0.2", "127.0.0.3", "127.0.0.4"}) {
    flooders.push_back(std::make_unique<Udp>(address));
    auto& f = *flooders.back();
    cookies.push_back(cookie_round(f, reflector.udp(), {random_token(), Transport::udp, f.port(), {}}).cookie);
  }
  std::set<ip::udp::endpoint> flooder_endpoints;
  for (const auto& f : flooders) flooder_endpoints.insert(f->local());

  std::size_t received_replies = 0;
  std::size_t largest_reply = 0;
  auto collect = [&](Udp& f) {
    while (auto d = f.receive(0ms)) {
      ++received_replies;
      largest_reply = std::max(largest_reply, d->bytes.size());
      CHECK(d->from.address() == ip::make_address("127.0.0.1"));
      const bool known = decode_reply(d->bytes) || decode_probe(d->bytes);
      CHECK(known);
    }
  };

  constexpr int kDatagrams = 10'000;
  for (int i = 0; i < kDatagrams; ++i) {
    const std::size_t which = i % flooders.size();
    auto& f = *flooders[which];
    // Probes only ever go back to the flooder itself: its own port is the target.
    RequestFields fields{random_token(), Transport::udp, f.port(), {}};
    Bytes bytes;
    switch (below(6)) {
      case 0: {  // noise of any length
        bytes.resize(below(700));
        for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
        break;
      }
      case 1: {  // a valid header, random rest
        const auto r = encode_request(fields);
        bytes.assign(r.begin(), r.begin() + 24);
        bytes.resize(24 + below(600));
        for (std::size_t k = 24; k < bytes.size(); ++k) bytes[k] = static_cast<std::uint8_t>(rng());
        break;
      }
      case 2: {  // a request without a cookie, maybe padded
        const auto r = encode_request(fields);
        bytes.assign(r.begin(), r.end());
        bytes.resize(request::kSize + below(request::kMaxSize - request::kSize + 1), 0);
        break;
      }
      case 3:
      case 4: {  // a valid request, or one with a byte changed (never port or transport)
        fields.cookie = cookies[which];
        const auto r = encode_request(fields);
        bytes.assign(r.begin(), r.end());
        if (below(2)) {
          std::size_t at = below(request::kSize - 4);
          if (at >= request::kTransport) at += 4;
          bytes[at] ^= static_cast<std::uint8_t>(1 + below(255));
        }
        break;
      }
      default: {  // oversized
        const auto r = encode_request(fields);
        bytes.assign(r.begin(), r.end());
        bytes.resize(request::kMaxSize + 1 + below(1000), 0);
        break;
      }
    }
    f.send(bytes, reflector.udp());
    if (i % 64 == 0) collect(f);
    // A little pacing, so that most of the flood is read rather than dropped by the kernel.
    if (i % 32 == 31) reflector.wait_received(static_cast<std::uint64_t>(i) - 64, 20ms);
  }
  reflector.wait_received(kDatagrams + flooders.size());
  for (auto& f : flooders) {
    for (const auto& d : f->drain(100ms)) {
      ++received_replies;
      largest_reply = std::max(largest_reply, d.bytes.size());
    }
  }
  const std::chrono::duration<double> elapsed = SteadyClock::now() - started;

  const auto records = reflector.records();
  check_safety(records);
  CHECK(largest_reply <= request::kSize);
  CHECK(received_replies > 0);
  // Every request the buckets let through gave one COOKIE (charged to the
  // unproven budget: each flooder sends from one port) or one RESULT (the
  // proven budget).
  std::map<std::pair<ip::address, bool>, double> allowed;
  std::map<bool, double> total;
  for (const auto& r : records) {
    if (r.kind == SendRecord::Kind::udp_probe) {
      const ip::udp::endpoint to(r.destination.address, r.destination.port);
      CHECK(flooder_endpoints.count(to) == 1);
    }
    const bool proven = r.kind == SendRecord::Kind::result;
    if (r.kind == SendRecord::Kind::cookie || (proven && r.status != Status::rate_limited)) {
      allowed[{r.request_source.address, proven}] += 1;
      total[proven] += 1;
    }
  }
  for (const auto& [source, count] : allowed) {
    INFO(source.first.to_string() << (source.second ? " proven: " : " unproven: ") << count << " in "
                                  << elapsed.count() << " s");
    CHECK(count <= burst_for(50) + 50 * elapsed.count() + 1);
  }
  for (const auto& [proven, count] : total) {
    INFO((proven ? "proven: " : "unproven: ") << count << " in " << elapsed.count() << " s");
    CHECK(count <= burst_for(200) + 200 * elapsed.count() + 1);
  }
  CHECK(reflector.count(SendRecord::Kind::udp_probe) > 0);
  const auto stats = reflector.server->stats();
  INFO(stats.udp_received << " of " << kDatagrams << " datagrams read (the kernel may drop some)");
  CHECK(stats.udp_received > kDatagrams / 2);
  CHECK(stats.malformed > 0);
  CHECK(stats.oversized > 0);
  CHECK(stats.rate_limited > 0);
  CHECK(stats.tcp_probes == 0);

  // After the flood a good request is answered (once the global bucket has a token or two).
  std::this_thread::sleep_for(50ms);
  Udp client, target;
  CHECK(request_probe(client, reflector.udp(), {random_token(), Transport::udp, target.port(), {}}).status ==
        Status::sent);
  CHECK(target.receive());
}

TEST_CASE("reflector: with a pre-shared key, only tagged requests are probed", "[reflector][server][realtime]") {
  // Real time: the key in ServerOptions is the one the server checks, over UDP and TCP.
  const Bytes key{'s', '3', 'c', 'r', 'e', 't', '-', 'k', 'e', 'y', '-', 'o', 'f', '-', '1', '6', 'b'};
  ServerOptions options;
  options.key = key;
  Running reflector(options);
  Udp client, target;
  TcpListener tcp_target;
  const Bytes wrong{'n', 'o', 't', '-', 't', 'h', 'e', '-', 'k', 'e', 'y', '-', 'a', 't', '-', 'a', 'l'};

  CHECK(request_probe(client, reflector.udp(), {random_token(), Transport::udp, target.port(), {}}).status ==
        Status::auth_failed);
  CHECK(request_probe(client, reflector.udp(), {random_token(), Transport::udp, target.port(), {}}, wrong).status ==
        Status::auth_failed);
  CHECK(request_probe(client, reflector.udp(), {random_token(), Transport::tcp, tcp_target.port(), {}}).status ==
        Status::auth_failed);
  const auto over_tcp = tcp_request(reflector.tcp(), {random_token(), Transport::udp, target.port(), {}});
  REQUIRE(over_tcp);
  CHECK(over_tcp->status == Status::auth_failed);
  // Each RESULT follows its probe's start: none was started.
  CHECK(reflector.server->stats().udp_probes == 0);
  CHECK(reflector.server->stats().tcp_probes == 0);
  CHECK(reflector.server->stats().auth_failed == 4);

  const Token token = random_token();
  CHECK(request_probe(client, reflector.udp(), {token, Transport::udp, target.port(), {}}, key).status ==
        Status::sent);
  const auto probe = target.receive();
  REQUIRE(probe);
  CHECK(decode_probe(probe->bytes) == token);
  const auto tagged_tcp = tcp_request(reflector.tcp(), {random_token(), Transport::udp, target.port(), {}}, key);
  REQUIRE(tagged_tcp);
  CHECK(tagged_tcp->status == Status::sent);
}

TEST_CASE("reflector: IPv6 loopback works the same way", "[reflector][server][realtime]") {
  // Real time: IPv6 sockets (IPV6_V6ONLY) and the addresses they give.
  ServerOptions options;
  options.listen = {{ip::make_address("::1"), 0}};
  Running reflector(options);
  Udp client("::1"), target("::1");
  const Token token = random_token();
  const auto result = request_probe(client, reflector.udp(), {token, Transport::udp, target.port(), {}});
  CHECK(result.status == Status::sent);
  CHECK(result.observed == Source{ip::make_address("::1"), client.port()});
  const auto probe = target.receive();
  REQUIRE(probe);
  CHECK(decode_probe(probe->bytes) == token);
}

TEST_CASE("reflector: a client holding TCP probes in flight leaves other prefixes their share",
          "[reflector][server][realtime][budgets]") {
  // Real time: each probe holds its slot until a real connect times out.
  Running reflector;
  // Client A, in 127.0.0.0/24, asks for TCP probes of its own address at a
  // port whose listener never accepts: once its backlog is full the kernel
  // drops the SYNs, so every probe holds its slot for the probe timeout.
  TcpListener blackhole("127.0.0.2", 0);
  Udp hog("127.0.0.2");
  const RequestFields hog_fields{random_token(), Transport::tcp, blackhole.port(), {}};
  RequestFields echoed = hog_fields;
  echoed.cookie = cookie_round(hog, reflector.udp(), hog_fields).cookie;
  std::atomic<bool> done{false};
  std::thread hogging([&] {
    // As fast as its rate allows (100 a second from one source): far more
    // than the probes that time out.
    for (int i = 0; !done; ++i) {
      echoed.token = random_token();
      hog.send(encode_request(echoed), reflector.udp());
      hog.drain(0ms);
      std::this_thread::sleep_for(12ms);
    }
  });
  std::this_thread::sleep_for(1000ms);  // A holds what it can

  // Client B, in another /24, asks for TCP probes of a port that accepts.
  Udp client("127.1.0.2");
  TcpListener target("127.1.0.2");
  constexpr int kRequests = 30;
  int sent = 0;
  for (int i = 0; i < kRequests; ++i) {
    const auto result =
        try_request_probe(client, reflector.udp(), {random_token(), Transport::tcp, target.port(), {}}, 500ms);
    sent += result && result->status == Status::sent;
    std::this_thread::sleep_for(30ms);
  }
  done = true;
  hogging.join();
  INFO("B's TCP probes sent under A's hog: " << sent << " of " << kRequests);
  CHECK(sent == kRequests);
  CHECK(reflector.server->stats().busy > 0);  // A asked for more than its share
}

TEST_CASE("reflector: idle TCP connections from 16 prefixes do not lock others out",
          "[reflector][server][realtime][budgets]") {
  // Real time: connections accepted by the kernel and held open by the clients.
  Running reflector;
  // 16 holders, each in a /24 of its own, keep 4 connections each open without
  // a request (64: every connection the reflector holds), and open another as
  // soon as one is closed.
  std::vector<std::string> holders;
  for (int i = 1; i <= 16; ++i) holders.push_back("127.0." + std::to_string(i) + ".2");
  std::vector<std::unique_ptr<TcpClient>> held;
  std::vector<std::size_t> owner;
  for (std::size_t h = 0; h < holders.size(); ++h) {
    for (int k = 0; k < 4; ++k) {
      held.push_back(std::make_unique<TcpClient>(reflector.tcp(), holders[h].c_str()));
      owner.push_back(h);
    }
  }
  std::atomic<bool> done{false};
  std::thread holding([&] {
    while (!done) {
      for (std::size_t i = 0; i < held.size(); ++i) {
        if (!readable(held[i]->socket.native_handle(), 0ms)) continue;  // still open and idle
        boost::system::error_code ignored;
        held[i]->socket.close(ignored);
        try {
          held[i] = std::make_unique<TcpClient>(reflector.tcp(), holders[owner[i]].c_str());
        } catch (const boost::system::system_error&) {
          // the listen backlog is full for a moment: try again on the next pass
        }
      }
      std::this_thread::sleep_for(5ms);
    }
  });
  std::this_thread::sleep_for(300ms);

  Udp target("127.0.100.2");
  constexpr int kRequests = 20;
  int answered = 0;
  for (int i = 0; i < kRequests; ++i) {
    const auto reply =
        try_tcp_request(reflector.tcp(), {random_token(), Transport::udp, target.port(), {}}, "127.0.100.2");
    answered += reply && reply->status == Status::sent;
    std::this_thread::sleep_for(50ms);
  }
  done = true;
  holding.join();
  INFO("a 17th client's TCP requests answered: " << answered << " of " << kRequests);
  CHECK(answered == kRequests);
  CHECK(reflector.server->stats().tcp_evicted >= kRequests);  // each took an idle one's place
}

TEST_CASE("reflector: a forged flood from a client's address does not stop its verifications",
          "[reflector][server][realtime][budgets]") {
  // Real time: the flood and the client's exchanges share the wall clock's buckets.
  Running reflector;
  // The forger sends from the client's address, as an off-path forger can,
  // but cannot know the client's port: here it sends from another port of the
  // same address, 1000 requests a second of 76 bytes (76 KB/s), none with a
  // valid cookie. (The COOKIEs it is sent stand for those a forger never sees.)
  Udp forger("127.0.0.5");
  std::atomic<bool> done{false};
  std::thread flooding([&] {
    const auto flood = encode_request({random_token(), Transport::udp, forger.port(), {}});
    while (!done) {
      for (int i = 0; i < 10; ++i) forger.send(flood, reflector.udp());
      forger.drain(0ms);
      std::this_thread::sleep_for(10ms);
    }
  });
  std::this_thread::sleep_for(500ms);  // long enough to empty the address's bucket

  Udp client("127.0.0.5"), target("127.0.0.5");
  constexpr int kVerifications = 20;
  int verified = 0;
  for (int i = 0; i < kVerifications; ++i) {
    const RequestFields fields{random_token(), Transport::udp, target.port(), {}};
    const auto result = try_request_probe(client, reflector.udp(), fields, 200ms);
    if (result && result->status == Status::sent) {
      const auto probe = target.receive(500ms);
      verified += probe && decode_probe(probe->bytes) == fields.token;
    }
    std::this_thread::sleep_for(20ms);
  }
  done = true;
  flooding.join();
  INFO("the client's verifications under the forged flood: " << verified << " of " << kVerifications);
  CHECK(verified == kVerifications);
  CHECK(reflector.server->stats().rate_limited > 0);  // the flood was over its rate
  check_safety(reflector.records());
}
