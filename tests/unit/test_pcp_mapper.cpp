// PcpMapper on a real socket against a fake PCP server on a loopback
// address's port 5351: what happens to what queues on the socket, and what a
// grant is believed to be. The protocol logic under it is tested in virtual
// time (test_pcp_client.cpp). Each test case has its own 127.78.N.1.
#include <catch2/catch.hpp>

#include "result_printer.hpp"
#include "run_loop.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <functional>
#include <optional>
#include <vector>

#include "mappers/errors.hpp"
#include "mappers/pcp/pcp_mapper.hpp"
#include "pcp_replies.hpp"

using namespace natkeeper;
using namespace natkeeper::pcp;
using namespace std::chrono_literals;
using namespace pcp_replies;
namespace asio = boost::asio;
using asio::ip::udp;

namespace {

// NAT-PMP's UNSUPP_VERSION (version 0, result 1), as a NAT-PMP-only server
// answers a PCP request, and as anyone can forge it: it has no nonce.
const Bytes kUnsuppVersion{0x00, 0x81, 0x00, 0x01, 0x00, 0x00, 0x10, 0x00};

class LoopbackServer {
 public:
  // What to send back for each request (given how many came before it).
  std::function<std::vector<Bytes>(const Bytes&, std::size_t)> script;
  std::vector<Bytes> received;

  LoopbackServer(asio::io_context& loop, asio::ip::address_v4 address) : socket_(loop) {
    socket_.open(udp::v4(), error_);
    if (!error_) socket_.bind({address, kServerPort}, error_);
    if (!error_) asio::co_spawn(loop, serve(), asio::detached);
  }
  ~LoopbackServer() {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
  const boost::system::error_code& error() const { return error_; }
  // Sends `bytes` from the server's port to the mapper's socket, unasked.
  void send_unasked(const Bytes& bytes) { socket_.send_to(asio::buffer(bytes), client_); }

 private:
  asio::awaitable<void> serve() {
    std::array<std::uint8_t, 1100> buffer{};
    for (;;) {
      auto [ec, size] =
          co_await socket_.async_receive_from(asio::buffer(buffer), client_, asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      received.emplace_back(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(size));
      for (const auto& reply : script(received.back(), received.size() - 1))
        socket_.send_to(asio::buffer(reply), client_);
    }
  }

  udp::socket socket_;
  udp::endpoint client_;
  boost::system::error_code error_;
};

ClientOptions options_for(asio::ip::address_v4 server) {
  ClientOptions options;
  options.client_address = asio::ip::make_address_v4("127.0.0.1");
  options.server_address = server;
  options.max_request_duration = 2s;
  return options;
}

MapRequest request(std::uint16_t port, std::chrono::seconds lifetime = 3600s) {
  return {Transport::udp, port, port, lifetime, "natkeeper test", {}, {}};
}

std::uint32_t requested_lifetime(const Bytes& request) {
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < 4; ++i) value = value << 8 | request[request_header::kLifetime + i];
  return value;
}

}  // namespace

// [realtime]: the kernel's receive queue of an idle socket is what is tested.
TEST_CASE("pcp mapper: what queued while the socket was idle answers no request", "[pcp][realtime][forged]") {
  asio::io_context loop;
  const auto address = asio::ip::make_address_v4("127.78.1.1");
  LoopbackServer server(loop, address);
  if (server.error()) {
    WARN("skipped: cannot bind " << address << ":5351 for the fake server (" << server.error().message() << ")");
    return;
  }
  server.script = [](const Bytes& r, std::size_t) {
    return std::vector<Bytes>{answer(r, {.lifetime = requested_lifetime(r)})};
  };
  PcpMapper m(loop.get_executor(), options_for(address));
  REQUIRE_FALSE(m.open());
  const auto mapped = run_for(loop, m.map(request(7076)), 2s);
  REQUIRE(mapped);
  REQUIRE(*mapped);

  // Forged while nothing reads the socket, ahead of the next requests.
  for (int i = 0; i < 20; ++i) server.send_unasked(kUnsuppVersion);
  run_for(loop, [&]() -> asio::awaitable<bool> { co_return true; }(), 50ms);  // let them arrive
  const auto announced = run_for(loop, m.announce(), 2s);
  REQUIRE(announced);
  CHECK(*announced);
  const auto removed = run_for(loop, m.unmap(**mapped), 2s);
  REQUIRE(removed);
  CHECK_FALSE(*removed);
  CHECK(m.dropped() == 20);
}

// [realtime]: a forged response that arrives after the request, ahead of the answer.
TEST_CASE("pcp mapper: an UNSUPP_VERSION ahead of the answer fails no mapping", "[pcp][realtime][forged]") {
  asio::io_context loop;
  const auto address = asio::ip::make_address_v4("127.78.2.1");
  LoopbackServer server(loop, address);
  if (server.error()) {
    WARN("skipped: cannot bind " << address << ":5351 for the fake server (" << server.error().message() << ")");
    return;
  }
  server.script = [](const Bytes& r, std::size_t) {
    return std::vector<Bytes>{kUnsuppVersion, answer(r, {.lifetime = requested_lifetime(r)})};
  };
  PcpMapper m(loop.get_executor(), options_for(address));
  REQUIRE_FALSE(m.open());
  const auto mapped = run_for(loop, m.map(request(7076)), 2s);
  REQUIRE(mapped);
  REQUIRE(*mapped);
  CHECK((*mapped)->external_port == 7076);
  const auto removed = run_for(loop, m.unmap(**mapped), 2s);
  REQUIRE(removed);
  CHECK_FALSE(*removed);
  CHECK(m.dropped() == 2);
}

// [realtime]: the mapper's own sockets and event loop are what is tested.
TEST_CASE("pcp mapper: a grant far beyond the request is asked again and never scheduled beyond it",
          "[pcp][realtime][forged]") {
  asio::io_context loop;
  const auto address = asio::ip::make_address_v4("127.78.3.1");
  LoopbackServer server(loop, address);
  if (server.error()) {
    WARN("skipped: cannot bind " << address << ":5351 for the fake server (" << server.error().message() << ")");
    return;
  }
  PcpMapper m(loop.get_executor(), options_for(address));
  REQUIRE_FALSE(m.open());

  server.script = [](const Bytes& r, std::size_t index) {
    if (index == 0) return std::vector<Bytes>{answer(r, {.lifetime = 0xFFFFFFFF, .external_port = 1})};
    return std::vector<Bytes>{answer(r, {.lifetime = requested_lifetime(r)})};
  };
  const auto believed = run_for(loop, m.map(request(7076)), 2s);
  REQUIRE(believed);
  REQUIRE(*believed);
  CHECK((*believed)->external_port == 7076);
  CHECK((*believed)->lifetime == 3600s);
  CHECK(server.received.size() == 2);

  server.script = [](const Bytes& r, std::size_t) {
    return std::vector<Bytes>{answer(r, {.lifetime = 7 * 24 * 3600})};
  };
  const auto week = run_for(loop, m.map(request(7077)), 2s);
  REQUIRE(week);
  REQUIRE(*week);
  CHECK((*week)->lifetime == 3600s);
  CHECK(server.received.size() == 4);

  server.script = [](const Bytes& r, std::size_t) {
    return std::vector<Bytes>{answer(r, {.lifetime = requested_lifetime(r)})};
  };
  const auto long_lease = run_for(loop, m.map(request(7078, 72h)), 2s);
  REQUIRE(long_lease);
  REQUIRE(*long_lease);
  CHECK((*long_lease)->lifetime == 24h);
  CHECK(server.received.size() == 5);
}

// [realtime]: miniupnpd answers the delete of a mapping it does not hold with
// NO_RESOURCES; the mapping is gone either way, so --delete must not fail.
TEST_CASE("pcp mapper: a delete answered NO_RESOURCES is done", "[pcp][realtime]") {
  asio::io_context loop;
  const auto address = asio::ip::make_address_v4("127.78.4.1");
  LoopbackServer server(loop, address);
  if (server.error()) {
    WARN("skipped: cannot bind " << address << ":5351 for the fake server (" << server.error().message() << ")");
    return;
  }
  server.script = [](const Bytes& r, std::size_t) {
    return std::vector<Bytes>{answer(r, {.result = ResultCode::no_resources, .lifetime = 30})};
  };
  PcpMapper m(loop.get_executor(), options_for(address));
  REQUIRE_FALSE(m.open());
  const Mapping gone{request(7076), asio::ip::make_address("203.0.113.1"), 7076, 3600s, false};
  const auto removed = run_for(loop, m.unmap(gone), 2s);
  REQUIRE(removed);
  CHECK_FALSE(*removed);
  CHECK(server.received.size() == 1);
}

// [realtime]: what reaches the fake server is what is tested.
TEST_CASE("pcp mapper: a request refused for 30 s is answered with the refusal, unsent, meanwhile",
          "[pcp][realtime]") {
  asio::io_context loop;
  const auto address = asio::ip::make_address_v4("127.78.5.1");
  LoopbackServer server(loop, address);
  if (server.error()) {
    WARN("skipped: cannot bind " << address << ":5351 for the fake server (" << server.error().message() << ")");
    return;
  }
  server.script = [](const Bytes& r, std::size_t) {
    return std::vector<Bytes>{answer(r, {.result = ResultCode::no_resources, .lifetime = 30})};
  };
  PcpMapper m(loop.get_executor(), options_for(address));
  REQUIRE_FALSE(m.open());
  for (int i = 0; i < 3; ++i) {
    const auto refused = run_for(loop, m.map(request(7076)), 2s);
    REQUIRE(refused);
    REQUIRE_FALSE(*refused);
    CHECK(refused->error() == make_pcp_error(8));
  }
  CHECK(server.received.size() == 1);
  // Another request still goes out.
  const auto other = run_for(loop, m.map(request(7077)), 2s);
  REQUIRE(other);
  CHECK(server.received.size() == 2);
}

// [realtime]: the mapper's own sockets and event loop are what is tested.
TEST_CASE("pcp mapper: SUCCESS with lifetime 0 to a new mapping is no mapping", "[pcp][realtime][forged]") {
  asio::io_context loop;
  const auto address = asio::ip::make_address_v4("127.78.6.1");
  LoopbackServer server(loop, address);
  if (server.error()) {
    WARN("skipped: cannot bind " << address << ":5351 for the fake server (" << server.error().message() << ")");
    return;
  }
  server.script = [](const Bytes& r, std::size_t) { return std::vector<Bytes>{answer(r, {.lifetime = 0})}; };
  PcpMapper m(loop.get_executor(), options_for(address));
  REQUIRE_FALSE(m.open());
  const auto mapped = run_for(loop, m.map(request(7076)), 2s);
  REQUIRE(mapped);
  REQUIRE_FALSE(*mapped);
  CHECK(mapped->error() == Errc::nothing_granted);
  CHECK(server.received.size() == 1);
}
