// The libnatpmp glue (libnatpmp_channel.cpp) on real sockets, against a
// fake gateway on a loopback address's port 5351: only what virtual time
// cannot show. Each test case has its own 127.77.N.1, so test cases run in
// parallel (ctest -j) do not collide.
#include <catch2/catch.hpp>

#include "result_printer.hpp"
#include "run_loop.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <functional>
#include <optional>
#include <vector>

#include "mappers/errors.hpp"
#include "mappers/natpmp/natpmp_codec.hpp"
#include "mappers/natpmp/natpmp_mapper.hpp"
#include "natpmp_replies.hpp"

using namespace natkeeper;
using namespace natkeeper::natpmp;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::ip::udp;
using Clock = std::chrono::steady_clock;

namespace {

using namespace natpmp_replies;

// A datagram as the fake gateway received it.
struct Received {
  Bytes raw;
  udp::endpoint from;
  Clock::time_point at;
};

struct Send {
  Bytes bytes;
  enum Source { server, other_port, other_address } from = server;
};

class LoopbackGateway {
 public:
  // What to send back for each datagram (given how many came before it).
  std::function<std::vector<Send>(const Received&, std::size_t)> script;
  std::vector<Received> received;

  LoopbackGateway(asio::io_context& loop, asio::ip::address_v4 address)
      : socket_(loop), other_port_(loop), other_address_(loop) {
    boost::system::error_code ec;
    socket_.open(udp::v4(), ec);
    if (!ec) socket_.bind({address, kServerPort}, ec);
    if (ec) {
      error_ = ec;
      return;
    }
    other_port_.open(udp::v4());
    other_port_.bind({address, 0});
    other_address_.open(udp::v4());
    other_address_.bind({asio::ip::address_v4(address.to_uint() + 1), kServerPort});
    asio::co_spawn(loop, serve(), asio::detached);
  }
  ~LoopbackGateway() {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
  const boost::system::error_code& error() const { return error_; }

 private:
  asio::awaitable<void> serve() {
    std::array<std::uint8_t, 64> buffer{};
    for (;;) {
      udp::endpoint from;
      auto [ec, size] = co_await socket_.async_receive_from(asio::buffer(buffer), from,
                                                            asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      received.push_back({Bytes(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(size)), from,
                          Clock::now()});
      for (const auto& send : script(received.back(), received.size() - 1)) {
        auto& socket = send.from == Send::server       ? socket_
                       : send.from == Send::other_port ? other_port_
                                                       : other_address_;
        socket.send_to(asio::buffer(send.bytes), from);
      }
    }
  }

  udp::socket socket_, other_port_, other_address_;
  boost::system::error_code error_;
};

MapRequest request(std::uint16_t port) { return {Transport::udp, port, port, 3600s, "natkeeper test", {}, {}}; }

}  // namespace

// [realtime]: libnatpmp's socket, the kernel's filtering of a connected socket
// and the wait on the steady clock are what is tested.
TEST_CASE("natpmp libnatpmp: requests on the wire, replies read and dropped on one connected socket",
          "[natpmp][realtime]") {
  asio::io_context loop;
  const auto address = asio::ip::make_address_v4("127.77.1.1");
  LoopbackGateway gateway(loop, address);
  if (gateway.error()) {
    WARN("skipped: cannot bind " << address << ":5351 for the fake gateway (" << gateway.error().message() << ")");
    return;
  }
  gateway.script = [](const Received& r, std::size_t index) {
    const auto request = decode_request(r.raw);
    if (!request) return std::vector<Send>{};
    if (request->opcode == Opcode::public_address) {
      auto long_reply = address_reply(0, 100);
      long_reply.push_back(0);
      return std::vector<Send>{{address_reply(0, 100, 0x01010101), Send::other_port},
                               {address_reply(0, 100, 0x02020202), Send::other_address},
                               {long_reply},
                               {address_reply(0, 100)}};
    }
    if (index == 1) return std::vector<Send>{};  // the first mapping request is lost
    const auto reply = mapping_reply(129, 0, 100, request->internal_port, request->suggested_external_port,
                                     request->lifetime);
    if (index == 2) return std::vector<Send>{{reply}, {reply}};  // answered twice
    return std::vector<Send>{{reply}};
  };
  NatpmpMapperOptions options;
  options.max_parallel = 1;  // every request on the same natpmp_t
  NatpmpMapper m(loop.get_executor(), address, options);

  const auto first = run_for(loop, m.map(request(7076)), 2s);
  REQUIRE(first);
  REQUIRE(*first);
  CHECK((*first)->external_ip.to_string() == "203.0.113.1");
  CHECK((*first)->external_port == 7076);
  const auto second = run_for(loop, m.map(request(7077)), 2s);
  REQUIRE(second);
  REQUIRE(*second);
  CHECK((*second)->external_port == 7077);

  REQUIRE(gateway.received.size() == 4);
  // libnatpmp's bytes are the codec's.
  CHECK(gateway.received[0].raw == encode_request({}));
  CHECK(gateway.received[1].raw == encode_request({Opcode::map_udp, 7076, 7076, 3600}));
  CHECK(gateway.received[2].raw == gateway.received[1].raw);
  CHECK(gateway.received[3].raw == encode_request({Opcode::map_udp, 7077, 7077, 3600}));
  const auto gap = gateway.received[2].at - gateway.received[1].at;
  CHECK(gap >= 240ms);
  CHECK(gap < 600ms);
  for (const auto& r : gateway.received) CHECK(r.from == gateway.received[0].from);
  // The 13-byte reply and the late duplicate; the replies from another port
  // or address never reach the connected socket.
  CHECK(m.dropped() == 2);
}

// [realtime]: the kernel's ICMP port unreachable on a real socket is what is tested.
TEST_CASE("natpmp libnatpmp: nothing listening on 5351 fails at once", "[natpmp][realtime]") {
  asio::io_context loop;
  const auto nobody = asio::ip::make_address_v4("127.77.12.1");
  {
    udp::socket probe(loop, udp::v4());
    boost::system::error_code ec;
    probe.bind({nobody, kServerPort}, ec);
    if (ec) {
      WARN("skipped: " << nobody << ":5351 is in use");
      return;
    }
  }
  NatpmpMapper m(loop.get_executor(), nobody);
  const auto started = Clock::now();
  const auto result = run_for(loop, m.map(request(7076)), 2s);
  REQUIRE(result);
  REQUIRE_FALSE(*result);
  CHECK(result->error() == Errc::no_gateway_answer);
  CHECK(Clock::now() - started < 200ms);
}

// [realtime]: the kernel's receive stamps are what is tested: forged replies
// queued on the idle socket arrived before the request and are stale.
TEST_CASE("natpmp libnatpmp: every reply queued before a request is thrown away", "[natpmp][realtime][forged]") {
  asio::io_context loop;
  const auto address = asio::ip::make_address_v4("127.77.13.1");
  LoopbackGateway gateway(loop, address);
  if (gateway.error()) {
    WARN("skipped: cannot bind " << address << ":5351 for the fake gateway (" << gateway.error().message() << ")");
    return;
  }
  constexpr int kForged = 200;
  gateway.script = [](const Received& r, std::size_t) {
    const auto request = decode_request(r.raw);
    if (!request) return std::vector<Send>{};
    if (request->opcode == Opcode::public_address) return std::vector<Send>{{address_reply(0, 100)}};
    std::vector<Send> sends{{mapping_reply(129, 0, 100, request->internal_port, request->suggested_external_port,
                                           request->lifetime)}};
    // What a LAN host spoofing the gateway sprays at the socket, for the port asked next.
    if (request->internal_port == 7076)
      for (int i = 0; i < kForged; ++i) sends.push_back({mapping_reply(129, 0, 100, 7077, 1, 0xFFFFFFFF)});
    return sends;
  };
  NatpmpMapperOptions options;
  options.max_parallel = 1;  // every request on the same natpmp_t
  NatpmpMapper m(loop.get_executor(), address, options);

  const auto first = run_for(loop, m.map(request(7076)), 2s);
  REQUIRE(first);
  REQUIRE(*first);
  const auto second = run_for(loop, m.map(request(7077)), 2s);
  REQUIRE(second);
  REQUIRE(*second);
  CHECK((*second)->external_port == 7077);
  CHECK((*second)->lifetime == 3600s);
  CHECK(m.dropped() == kForged);
}
