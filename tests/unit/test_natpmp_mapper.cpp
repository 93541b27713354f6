// NatpmpMapper against a scripted fake gateway: a UDP socket on a loopback
// address's port 5351, on the same event loop. Each test case has its own
// 127.77.N.1, so test cases run in parallel (ctest -j) do not collide.
#include <catch2/catch.hpp>

#include "result_printer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <functional>
#include <optional>
#include <set>
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

std::uint16_t get16(const Bytes& b, std::size_t at) {
  return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}

// A request as the fake gateway received it.
struct Request {
  Bytes raw;
  udp::endpoint from;
  Clock::time_point at;
  std::uint8_t opcode() const { return raw.size() > 1 ? raw[1] : 0xFF; }
  bool is_address() const { return raw.size() == 2 && opcode() == 0; }
  bool is_mapping() const { return raw.size() == 12 && (opcode() == 1 || opcode() == 2); }
  std::uint16_t internal_port() const { return get16(raw, 4); }
  std::uint16_t suggested_port() const { return get16(raw, 6); }
  std::uint32_t lifetime() const {
    return (std::uint32_t{get16(raw, 8)} << 16) | get16(raw, 10);
  }
};

// What the gateway answers: a success reply echoing the request.
Bytes answer(const Request& r, std::uint32_t epoch = 100, std::uint16_t result = 0) {
  if (r.is_address()) return address_reply(result, epoch);
  const auto lifetime = r.lifetime();
  return mapping_reply(static_cast<std::uint8_t>(128 + r.opcode()), result, epoch, r.internal_port(),
                       lifetime == 0 ? 0 : r.suggested_port(), lifetime);
}

struct Send {
  Bytes bytes;
  enum Source { server, other_port, other_address } from = server;
};

class FakeGateway {
 public:
  // Answers each request with what the script returns (given the request and
  // how many came before it); the default answers every request with success.
  std::function<std::vector<Send>(const Request&, std::size_t)> script =
      [](const Request& r, std::size_t) { return std::vector<Send>{{answer(r)}}; };
  std::vector<Request> requests;

  FakeGateway(asio::io_context& loop, asio::ip::address_v4 address)
      : socket_(loop), other_port_(loop), other_address_(loop) {
    boost::system::error_code ec;
    socket_.open(udp::v4(), ec);
    if (!ec) socket_.bind({address, kServerPort}, ec);
    if (ec) {
      error_ = ec;
      return;
    }
    const auto other = asio::ip::address_v4(address.to_uint() + 1);
    other_port_.open(udp::v4());
    other_port_.bind({address, 0});
    other_address_.open(udp::v4());
    other_address_.bind({other, kServerPort});
    asio::co_spawn(loop, serve(), asio::detached);
  }
  ~FakeGateway() {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
  const boost::system::error_code& error() const { return error_; }

  std::size_t count(bool (Request::*kind)() const) const {
    std::size_t n = 0;
    for (const auto& r : requests) n += (r.*kind)() ? 1 : 0;
    return n;
  }
  std::vector<Request> mappings() const {
    std::vector<Request> out;
    for (const auto& r : requests)
      if (r.is_mapping()) out.push_back(r);
    return out;
  }

 private:
  asio::awaitable<void> serve() {
    std::array<std::uint8_t, 64> buffer{};
    for (;;) {
      udp::endpoint from;
      auto [ec, size] = co_await socket_.async_receive_from(asio::buffer(buffer), from,
                                                            asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      Request request{Bytes(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(size)), from,
                      Clock::now()};
      requests.push_back(request);
      for (const auto& send : script(request, requests.size() - 1)) {
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

struct Fixture {
  asio::io_context loop;
  asio::ip::address_v4 gateway_address;
  FakeGateway gateway;
  NatpmpMapperOptions options;
  std::optional<NatpmpMapper> mapper_;

  explicit Fixture(int n)
      : gateway_address(asio::ip::make_address_v4(fmt_address(n))), gateway(loop, gateway_address) {}

  static std::string fmt_address(int n) { return "127.77." + std::to_string(n) + ".1"; }

  // Port 5351 on this loopback address may be taken on the host running the tests.
  bool ready() const {
    if (gateway.error()) {
      WARN("skipped: cannot bind " << gateway_address << ":5351 for the fake gateway ("
                                   << gateway.error().message() << ")");
      return false;
    }
    return true;
  }

  NatpmpMapper& mapper() {
    if (!mapper_) mapper_.emplace(loop.get_executor(), gateway_address, options);
    return *mapper_;
  }

  // Runs one coroutine on the loop, next to the fake gateway, until it ends;
  // a test that hangs is cancelled after `limit` and fails.
  template <class T>
  T run(asio::awaitable<T> task, Clock::duration limit = 2s) {
    std::optional<T> result;
    std::exception_ptr failure;
    asio::cancellation_signal cancel;
    asio::co_spawn(loop, std::move(task),
                   asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, T value) {
                     failure = e;
                     if (!e) result.emplace(std::move(value));
                     loop.stop();
                   }));
    loop.restart();
    loop.run_for(limit);
    if (!result && !failure) {
      cancel.emit(asio::cancellation_type::terminal);
      loop.restart();
      loop.run_for(500ms);
      FAIL("the operation did not finish within the limit");
    }
    if (failure) std::rethrow_exception(failure);
    return std::move(*result);
  }
};

MapRequest request(std::uint16_t port, Transport proto = Transport::udp, std::chrono::seconds lifetime = 3600s) {
  return {proto, port, port, lifetime, "natkeeper test"};
}

}  // namespace

TEST_CASE("natpmp mapper: address once, then a mapping with the wanted port and lifetime") {
  Fixture f(1);
  if (!f.ready()) return;
  auto& m = f.mapper();
  CHECK(m.method() == Method::natpmp);
  auto mapping = f.run(m.map(request(7076)));
  REQUIRE(mapping);
  CHECK(mapping->external_ip.to_string() == "203.0.113.1");
  CHECK(mapping->external_port == 7076);
  CHECK(mapping->lifetime == 3600s);
  CHECK_FALSE(mapping->permanent);
  CHECK(mapping->request.description == "natkeeper test");

  auto tcp = f.run(m.map(request(15063, Transport::tcp, 7200s)));
  REQUIRE(tcp);
  CHECK(tcp->external_port == 15063);
  CHECK(tcp->lifetime == 7200s);

  REQUIRE(f.gateway.requests.size() == 3);
  CHECK(f.gateway.requests[0].is_address());
  const auto& udp_request = f.gateway.requests[1];
  REQUIRE(udp_request.is_mapping());
  CHECK(udp_request.opcode() == 1);
  CHECK(udp_request.internal_port() == 7076);
  CHECK(udp_request.suggested_port() == 7076);
  CHECK(udp_request.lifetime() == 3600);
  CHECK(f.gateway.requests[2].opcode() == 2);  // TCP
  CHECK(f.gateway.requests[2].lifetime() == 7200);
  CHECK(m.dropped() == 0);
  CHECK_FALSE(m.take_gateway_lost_state());
  CHECK(m.last_epoch() == 100u);

  auto address = f.run(m.external_address());
  REQUIRE(address);
  CHECK(address->to_string() == "203.0.113.1");
  CHECK(f.gateway.requests.size() == 3);  // cached
}

TEST_CASE("natpmp mapper: malformed replies are dropped and counted, the good one that follows is used") {
  Fixture f(2);
  if (!f.ready()) return;
  f.gateway.script = [](const Request& r, std::size_t) {
    std::vector<Send> sends;
    if (r.is_address()) {
      auto long_reply = answer(r);
      long_reply.push_back(0);
      sends.push_back({long_reply});                  // 13 bytes
    } else {
      auto short_reply = answer(r);
      short_reply.pop_back();
      sends.push_back({short_reply});                 // 15 bytes
      auto version = answer(r);
      version[0] = 1;
      sends.push_back({version});                     // version 1
      sends.push_back({mapping_reply(129, 0, 100, 7077, 7077, 3600)});   // another internal port
      sends.push_back({mapping_reply(130, 0, 100, 7076, 40000, 3600)});  // TCP reply to a UDP request
      sends.push_back({Bytes{}});                     // empty datagram
    }
    sends.push_back({answer(r)});
    return sends;
  };
  auto& m = f.mapper();
  auto mapping = f.run(m.map(request(7076)));
  REQUIRE(mapping);
  CHECK(mapping->external_port == 7076);
  CHECK(mapping->external_ip.to_string() == "203.0.113.1");
  CHECK(m.dropped() == 6);
  CHECK(f.gateway.requests.size() == 2);  // no retransmission was needed
}

TEST_CASE("natpmp mapper: replies from another port or address never count") {
  Fixture f(3);
  if (!f.ready()) return;
  f.gateway.script = [](const Request& r, std::size_t) {
    if (r.is_address()) {
      return std::vector<Send>{{address_reply(0, 100, 0x01010101), Send::other_port},
                               {address_reply(0, 100, 0x02020202), Send::other_address},
                               {answer(r)}};
    }
    return std::vector<Send>{{mapping_reply(129, 0, 100, r.internal_port(), 40000, 3600), Send::other_port},
                             {mapping_reply(129, 0, 100, r.internal_port(), 40001, 3600), Send::other_address},
                             {answer(r)}};
  };
  auto& m = f.mapper();
  auto mapping = f.run(m.map(request(7076)));
  REQUIRE(mapping);
  CHECK(mapping->external_ip.to_string() == "203.0.113.1");
  CHECK(mapping->external_port == 7076);
  // libnatpmp's socket is connected to gateway:5351: the kernel discards the
  // others before they reach it, so they are not even counted.
  CHECK(m.dropped() == 0);
}

TEST_CASE("natpmp mapper: result codes 2 and 4 are not-authorized and a full table") {
  for (const std::uint16_t code : {2, 4}) {
    Fixture f(4);
    if (!f.ready()) return;
    f.gateway.script = [code](const Request& r, std::size_t) {
      return std::vector<Send>{{answer(r, 100, r.is_address() ? 0 : code)}};
    };
    auto& m = f.mapper();
    auto mapping = f.run(m.map(request(7076)));
    REQUIRE_FALSE(mapping);
    CHECK(mapping.error() == make_natpmp_error(code));
    CHECK(mapping.error() == (code == 2 ? MapFailure::not_authorized : MapFailure::table_full));
    CHECK(f.gateway.mappings().size() == 1);  // an error reply ends the request
  }
}

TEST_CASE("natpmp mapper: a failed public address request fails the mapping before it is asked") {
  Fixture f(5);
  if (!f.ready()) return;
  f.gateway.script = [](const Request& r, std::size_t) { return std::vector<Send>{{answer(r, 100, 3)}}; };
  auto& m = f.mapper();
  auto mapping = f.run(m.map(request(7076)));
  REQUIRE_FALSE(mapping);
  CHECK(mapping.error() == make_natpmp_error(3));
  CHECK(f.gateway.mappings().empty());
}

TEST_CASE("natpmp mapper: an unanswered request is retransmitted after about 250 ms") {
  Fixture f(6);
  if (!f.ready()) return;
  f.gateway.script = [](const Request& r, std::size_t index) {
    if (index == 1) return std::vector<Send>{};  // the first mapping request is lost
    return std::vector<Send>{{answer(r)}};
  };
  auto& m = f.mapper();
  auto mapping = f.run(m.map(request(7076)));
  REQUIRE(mapping);
  CHECK(mapping->external_port == 7076);
  const auto sent = f.gateway.mappings();
  REQUIRE(sent.size() == 2);
  CHECK(sent[0].raw == sent[1].raw);
  CHECK(sent[0].from == sent[1].from);  // the same natpmp_t retransmitted
  const auto gap = sent[1].at - sent[0].at;
  CHECK(gap >= 240ms);
  CHECK(gap < 600ms);
}

TEST_CASE("natpmp mapper: an epoch that runs backwards reports lost gateway state once") {
  Fixture f(7);
  if (!f.ready()) return;
  std::uint32_t epoch = 5000;
  f.gateway.script = [&epoch](const Request& r, std::size_t) { return std::vector<Send>{{answer(r, epoch)}}; };
  auto& m = f.mapper();
  REQUIRE(f.run(m.map(request(7076))));
  CHECK_FALSE(m.take_gateway_lost_state());
  REQUIRE(f.run(m.map(request(7077))));  // same epoch, same second: no loss
  CHECK_FALSE(m.take_gateway_lost_state());
  CHECK(f.gateway.count(&Request::is_address) == 1);

  epoch = 12;  // the gateway restarted
  REQUIRE(f.run(m.map(request(7078))));
  CHECK(m.take_gateway_lost_state());
  CHECK_FALSE(m.take_gateway_lost_state());
  CHECK(m.gateway_lost_state_count() == 1);
  CHECK(m.last_epoch() == 12u);
  // The address is asked again after a restart.
  REQUIRE(f.run(m.external_address()));
  CHECK(f.gateway.count(&Request::is_address) == 2);
  CHECK_FALSE(m.take_gateway_lost_state());
}

TEST_CASE("natpmp mapper: unmap asks for lifetime 0 and suggested port 0") {
  Fixture f(8);
  if (!f.ready()) return;
  auto& m = f.mapper();
  const Mapping mapping{request(15063, Transport::tcp), asio::ip::make_address("203.0.113.1"), 15063, 3600s, false};
  SECTION("success") {
    CHECK_FALSE(f.run(m.unmap(mapping)));
    REQUIRE(f.gateway.requests.size() == 1);
    const auto& r = f.gateway.requests[0];
    REQUIRE(r.is_mapping());
    CHECK(r.opcode() == 2);
    CHECK(r.internal_port() == 15063);
    CHECK(r.suggested_port() == 0);
    CHECK(r.lifetime() == 0);
  }
  SECTION("a stale creation reply for the same port is not taken for the deletion's") {
    f.gateway.script = [](const Request& r, std::size_t) {
      return std::vector<Send>{{mapping_reply(130, 0, 100, r.internal_port(), 15063, 3600)}, {answer(r)}};
    };
    CHECK_FALSE(f.run(m.unmap(mapping)));
    CHECK(m.dropped() == 1);
  }
  SECTION("a refusal is reported") {
    f.gateway.script = [](const Request& r, std::size_t) { return std::vector<Send>{{answer(r, 100, 2)}}; };
    CHECK(f.run(m.unmap(mapping)) == MapFailure::not_authorized);
  }
}

TEST_CASE("natpmp mapper: a late duplicate reply is not taken for the next request") {
  Fixture f(9);
  if (!f.ready()) return;
  f.options.max_parallel = 1;  // both requests on the same natpmp_t
  f.gateway.script = [](const Request& r, std::size_t index) {
    if (r.is_address()) return std::vector<Send>{{answer(r)}};
    if (index == 1) return std::vector<Send>{{answer(r)}, {answer(r)}};  // answered twice
    return std::vector<Send>{{mapping_reply(129, 0, 100, r.internal_port(), 50000, 3600)}};
  };
  auto& m = f.mapper();
  auto first = f.run(m.map(request(7076)));
  REQUIRE(first);
  CHECK(first->external_port == 7076);
  auto second = f.run(m.map(request(7076)));
  REQUIRE(second);
  CHECK(second->external_port == 50000);
  CHECK(m.dropped() == 1);
}

TEST_CASE("natpmp mapper: concurrent maps share a bounded pool of natpmp_t") {
  Fixture f(10);
  if (!f.ready()) return;
  f.options.max_parallel = 3;
  auto& m = f.mapper();
  static constexpr int kCount = 7;
  std::vector<Result<Mapping>> results;
  auto all = [&]() -> asio::awaitable<bool> {
    auto executor = co_await asio::this_coro::executor;
    int done = 0;
    asio::steady_timer finished(executor, Clock::time_point::max());
    for (int i = 0; i < kCount; ++i) {
      auto one = [&m, &results, &done, &finished, i]() -> asio::awaitable<void> {
        auto r = request(static_cast<std::uint16_t>(20000 + i));
        auto mapping = co_await m.map(std::move(r));
        results.push_back(std::move(mapping));
        if (++done == kCount) finished.cancel();
      };
      asio::co_spawn(executor, std::move(one), asio::detached);
    }
    co_await finished.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return true;
  };
  REQUIRE(f.run(all()));
  REQUIRE(results.size() == kCount);
  std::set<std::uint16_t> ports;
  for (const auto& r : results) {
    REQUIRE(r);
    CHECK(r->external_port == r->request.internal_port);
    ports.insert(r->external_port);
  }
  CHECK(ports.size() == kCount);
  CHECK(f.gateway.count(&Request::is_address) == 1);  // the batch shared one address request
  std::set<udp::endpoint> sources;
  for (const auto& r : f.gateway.requests) sources.insert(r.from);
  CHECK(sources.size() <= 3);
  CHECK(m.open_sessions() <= 3);
}

TEST_CASE("natpmp mapper: a cancelled map ends at once and the mapper carries on") {
  Fixture f(11);
  if (!f.ready()) return;
  f.gateway.script = [](const Request& r, std::size_t) {
    if (r.is_mapping() && r.internal_port() == 7000) return std::vector<Send>{};  // never answered
    return std::vector<Send>{{answer(r)}};
  };
  auto& m = f.mapper();
  auto race = [&]() -> asio::awaitable<bool> {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(co_await asio::this_coro::executor, 50ms);
    auto r = request(7000);
    auto mapping = m.map(std::move(r));
    auto timeout = timer.async_wait(asio::use_awaitable);
    auto either = std::move(mapping) || std::move(timeout);
    auto outcome = co_await std::move(either);
    co_return outcome.index() == 1;
  };
  const auto started = Clock::now();
  CHECK(f.run(race()));
  CHECK(Clock::now() - started < 200ms);
  auto mapping = f.run(m.map(request(7001)));
  REQUIRE(mapping);
  CHECK(mapping->external_port == 7001);
  // The cancelled request's socket was closed, not reused: its reply could
  // still come. The new request went out from another port.
  const auto sent = f.gateway.mappings();
  REQUIRE(sent.size() == 2);
  CHECK(sent[0].from != sent[1].from);
  CHECK(m.open_sessions() == 1);
}

TEST_CASE("natpmp mapper: nothing listening on 5351 fails at once") {
  boost::asio::io_context loop;
  // The port-unreachable ICMP comes straight back on loopback.
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
  std::optional<Result<Mapping>> result;
  asio::co_spawn(loop, m.map(request(7076)), [&](std::exception_ptr, Result<Mapping> r) { result = r; });
  loop.run_for(2s);
  REQUIRE(result);
  REQUIRE_FALSE(*result);
  CHECK(result->error() == Errc::no_gateway_answer);
  CHECK(Clock::now() - started < 200ms);
}

TEST_CASE("natpmp mapper: a silent gateway is bounded by max_request_time") {
  Fixture f(13);
  if (!f.ready()) return;
  f.gateway.script = [](const Request&, std::size_t) { return std::vector<Send>{}; };
  f.options.max_request_time = 300ms;
  auto& m = f.mapper();
  const auto started = Clock::now();
  auto address = f.run(m.external_address());
  const auto took = Clock::now() - started;
  REQUIRE_FALSE(address);
  CHECK(address.error() == Errc::timed_out);
  CHECK(took >= 290ms);
  CHECK(took < 600ms);
  CHECK(f.gateway.requests.size() == 2);  // sent, and retransmitted at 250 ms
}

TEST_CASE("natpmp mapper: probe_public_address and adopting its answer") {
  Fixture f(14);
  if (!f.ready()) return;
  f.gateway.script = [](const Request& r, std::size_t) {
    Bytes wrong_version = answer(r, 4242);
    wrong_version[0] = 2;
    return std::vector<Send>{{wrong_version}, {answer(r, 4242)}};
  };
  auto probe = f.run(probe_public_address(f.gateway_address, 1s));
  REQUIRE(probe);
  CHECK(probe->external_address.to_string() == "203.0.113.1");
  CHECK(probe->epoch == 4242);
  CHECK(probe->round_trip < 100ms);
  CHECK(probe->dropped == 1);

  auto& m = f.mapper();
  m.adopt_probe(*probe);
  CHECK(m.last_epoch() == 4242u);
  REQUIRE(f.run(m.map(request(7076))));
  CHECK(f.gateway.count(&Request::is_address) == 1);  // the probe's answer was used
}

TEST_CASE("natpmp mapper: a zero lifetime is no mapping request") {
  Fixture f(15);
  if (!f.ready()) return;
  auto& m = f.mapper();
  auto mapping = f.run(m.map(request(7076, Transport::udp, 0s)));
  REQUIRE_FALSE(mapping);
  CHECK(mapping.error() == std::errc::invalid_argument);
  CHECK(f.gateway.requests.empty());
}

TEST_CASE("natpmp mapper: address announcements from the gateway update the address and the epoch") {
  Fixture f(16);
  if (!f.ready()) return;
  auto& m = f.mapper();
  REQUIRE(f.run(m.map(request(7076))));  // epoch 100, 203.0.113.1
  const auto gw = asio::ip::address(f.gateway_address);
  const auto restarted = address_reply(0, 3, 0xCB007109);  // 203.0.113.9, epoch 3
  CHECK_FALSE(m.on_announcement(restarted, gw, 5350));     // not from the server port
  CHECK_FALSE(m.on_announcement(restarted, asio::ip::make_address("127.77.16.2"), kServerPort));
  auto truncated = restarted;
  truncated.pop_back();
  CHECK_FALSE(m.on_announcement(truncated, gw, kServerPort));
  CHECK_FALSE(m.on_announcement(address_reply(3, 3, 0), gw, kServerPort));  // an error is no address
  CHECK_FALSE(m.take_gateway_lost_state());

  CHECK(m.on_announcement(restarted, gw, kServerPort));
  CHECK(m.take_gateway_lost_state());
  auto address = f.run(m.external_address());
  REQUIRE(address);
  CHECK(address->to_string() == "203.0.113.9");
  CHECK(f.gateway.count(&Request::is_address) == 1);  // taken from the announcement
}
