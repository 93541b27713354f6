// Verification of another device's mappings: the rules (pure), and the
// verifier against a real natkeeper-reflector on loopback, where this host is
// its own "public address" and a device's port is any port on 127.0.0.1.
#include <catch2/catch.hpp>

#include "result_printer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>

#include "agent/reflector/server.hpp"
#include "agent/verify/verification.hpp"
#include "agent/verify/verifier.hpp"
#include "run_loop.hpp"

using namespace natkeeper;
using namespace std::chrono_literals;
namespace ip = boost::asio::ip;

namespace {

const auto kDevice = ip::make_address("192.168.1.50");
const auto kLoopback = ip::make_address_v4("127.0.0.1");

MapRequest request_for(Transport proto, std::uint16_t port, bool device) {
  return {proto, port, port, 3600s, "test", device ? std::optional(kDevice) : std::nullopt,
          device ? "doorbell" : ""};
}

Mapping granted(MapRequest request, std::uint16_t external_port) {
  return {std::move(request), kLoopback, external_port, 3600s, false};
}

MappingReport row(Transport proto, std::uint16_t port, bool device, MappingState state) {
  MappingReport report;
  report.request = request_for(proto, port, device);
  report.mapping = granted(report.request, port);
  report.state = state;
  return report;
}

// A port nobody listens on now.
std::uint16_t closed_tcp_port(boost::asio::io_context& loop) {
  ip::tcp::acceptor gone(loop, {kLoopback, 0});
  return gone.local_endpoint().port();
}

// A mapper that grants what it is asked (or on `external_port` when set) and
// records what it removes.
class CanaryMapper final : public Mapper {
 public:
  bool refuse = false;
  std::optional<std::uint16_t> external_port;
  std::vector<Mapping> granted_mappings, removed;

  Method method() const override { return Method::pcp; }
  asio::awaitable<Result<asio::ip::address>> external_address() override { co_return asio::ip::address(kLoopback); }
  asio::awaitable<Result<Mapping>> map(MapRequest request) override {
    if (refuse) co_return make_error_code(std::errc::permission_denied);
    const auto port = external_port.value_or(request.wanted_external_port);
    granted_mappings.push_back(granted(std::move(request), port));
    co_return granted_mappings.back();
  }
  asio::awaitable<std::error_code> unmap(Mapping mapping) override {
    // An exchange with the gateway: an asynchronous operation, as a cancelled run would see it.
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    removed.push_back(std::move(mapping));
    co_return std::error_code{};
  }
};

reflector::ServerOptions on_loopback() {
  reflector::ServerOptions options;
  options.listen = {{kLoopback, 0}};
  return options;
}

// natkeeper-reflector on 127.0.0.1, on the test's loop: stop() it at the end
// of the test's coroutine, so that the loop runs out of work.
struct LoopbackReflector {
  reflector::Server server;
  explicit LoopbackReflector(boost::asio::io_context& loop) : server(loop, on_loopback()) { server.start(); }
  ip::udp::endpoint endpoint() const { return server.udp_endpoints().front(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(endpoint().port()); }
};

GatewayPath loopback_path() { return {kLoopback, {"lo", kLoopback, ip::make_address_v4("255.0.0.0")}}; }

config::Config config_for(const LoopbackReflector& reflector) {
  config::Config config;
  config.reflector = reflector.address();
  return config;
}

// One verification run of `rows` through the loopback reflector, which stops after it.
void verify_rows(boost::asio::io_context& loop, LoopbackReflector& reflector, const config::Config& config,
                 std::vector<MappingReport>& rows, Mapper* canary_mapper) {
  run_loop(loop, [&]() -> asio::awaitable<int> {
    VerificationRun run;
    co_await run.start(config, loopback_path());
    co_await run.finish(rows, std::nullopt, canary_mapper);
    reflector.server.stop();
    co_return 0;
  }());
}

}  // namespace

// --- The rules -------------------------------------------------------------------------

TEST_CASE("device TCP: verified only on a handshake the reflector saw complete", "[verification][device]") {
  using reflector::Status;
  const auto connected = judge_device_handshake(Status::connected);
  CHECK(connected.state == MappingState::verified);
  CHECK(connected.method == "reflector");
  CHECK_THAT(connected.note, Catch::Contains("the device accepted a TCP connection from outside"));

  // A reset may come from the gateway itself: no proof either way.
  const auto refused = judge_device_handshake(Status::refused);
  CHECK(refused.state == MappingState::mapped);
  CHECK(refused.method.empty());
  CHECK_THAT(refused.note, Catch::Contains("nothing proves"));

  CHECK(judge_device_handshake(Status::no_answer).state == MappingState::unreachable);
  for (auto status : {Status::sent, Status::rate_limited, Status::auth_failed, Status::bad_request, Status::busy,
                      static_cast<Status>(77)}) {
    INFO(static_cast<int>(status));
    const auto judged = judge_device_handshake(status);
    CHECK(judged.state == MappingState::mapped);
    CHECK_FALSE(judged.note.empty());
  }
}

TEST_CASE("device UDP: never verified; a canary says what the gateway does", "[verification][device]") {
  using Outcome = Canary::Outcome;
  for (auto outcome : {Outcome::verified, Outcome::unreachable, Outcome::unknown})
    for (auto nat : {NatKind::single, NatKind::double_nat, NatKind::cgnat, NatKind::unknown}) {
      INFO(static_cast<int>(outcome) << " " << to_string(nat));
      CHECK(judge_device_udp({outcome, "why"}, nat).state != MappingState::verified);
    }
  const auto forwards = judge_device_udp({Outcome::verified, "udp 7076 of this host"}, NatKind::single);
  CHECK(forwards.state == MappingState::mapped);
  CHECK_THAT(forwards.note, Catch::Contains("the gateway forwards: a canary port to this host was verified"));
  CHECK_THAT(forwards.note, Catch::Contains("cannot be observed from here"));
  CHECK_THAT(forwards.note, Catch::Contains("udp 7076 of this host"));

  // The canary did not arrive: the device's port is unreachable only when no
  // mapping of this gateway can be (double NAT, CGNAT); else it is unproven.
  CHECK(judge_device_udp({Outcome::unreachable, ""}, NatKind::cgnat).state == MappingState::unreachable);
  CHECK(judge_device_udp({Outcome::unreachable, ""}, NatKind::double_nat).state == MappingState::unreachable);
  const auto unproven = judge_device_udp({Outcome::unreachable, ""}, NatKind::single);
  CHECK(unproven.state == MappingState::mapped);
  CHECK_THAT(unproven.note, Catch::Contains("firewall"));

  const auto unknown = judge_device_udp({Outcome::unknown, "the gateway refused a canary mapping"}, NatKind::single);
  CHECK(unknown.state == MappingState::mapped);
  CHECK_THAT(unknown.note, Catch::Contains("the gateway refused a canary mapping"));
}

TEST_CASE("a canary from the run: this host's UDP rows only", "[verification][device]") {
  std::vector<MappingReport> rows{row(Transport::udp, 1, true, MappingState::verified),
                                  row(Transport::tcp, 2, false, MappingState::verified)};
  CHECK_FALSE(canary_from_run(rows));  // a device's row and a TCP row tell nothing of UDP forwarding
  rows.push_back(row(Transport::udp, 3, false, MappingState::mapped));
  CHECK_FALSE(canary_from_run(rows));  // not probed (busy port, no server)
  rows.push_back(row(Transport::udp, 4, false, MappingState::unreachable));
  REQUIRE(canary_from_run(rows));
  CHECK(canary_from_run(rows)->outcome == Canary::Outcome::unreachable);
  rows.push_back(row(Transport::udp, 5, false, MappingState::verified));
  REQUIRE(canary_from_run(rows));
  CHECK(canary_from_run(rows)->outcome == Canary::Outcome::verified);
  CHECK_THAT(canary_from_run(rows)->what, Catch::Contains("udp 5"));
  auto failed = row(Transport::udp, 6, false, MappingState::verified);
  failed.mapping.reset();
  CHECK_FALSE(canary_from_run({failed}));
}

// --- The verifier against a real reflector ----------------------------------------------

TEST_CASE("verifier: a device's TCP port through the reflector's handshake; its UDP port left mapped",
          "[verification][device][realtime]") {
  boost::asio::io_context loop;
  LoopbackReflector reflector(loop);
  ip::tcp::acceptor device_port(loop, {kLoopback, 0});  // the device listens here
  device_port.listen();
  VerifyOptions options;
  options.reflector = reflector.endpoint();
  run_loop(loop, [&]() -> asio::awaitable<int> {
    Verifier verifier(kLoopback, options);
    co_await verifier.prepare();
    const auto port = device_port.local_endpoint().port();
    const auto open = co_await verifier.verify(granted(request_for(Transport::tcp, 8080, true), port));
    CHECK(open.state == MappingState::verified);
    CHECK(open.method == "reflector");
    CHECK_THAT(open.note, Catch::Contains("the device accepted a TCP connection"));

    const auto closed =
        co_await verifier.verify(granted(request_for(Transport::tcp, 8081, true), closed_tcp_port(loop)));
    CHECK(closed.state == MappingState::mapped);

    // The probe for a device's UDP port would go to the device: nothing is asked.
    const auto before = reflector.server.stats();
    const auto udp = co_await verifier.verify(granted(request_for(Transport::udp, 9000, true), port));
    CHECK(udp.state == MappingState::mapped);
    CHECK_THAT(udp.note, Catch::Contains("cannot be observed"));
    CHECK(reflector.server.stats().udp_received == before.udp_received);
    reflector.server.stop();
    co_return 0;
  }());
  CHECK(reflector.server.stats().tcp_handshakes == 2);
  CHECK(reflector.server.stats().cookies_sent == 1);  // one cookie for the verifier's life
}

TEST_CASE("verifier: a reflector that drops handshake requests (it predates them) is named, once",
          "[verification][device][realtime]") {
  boost::asio::io_context loop;
  // Answers a plain request with a COOKIE, and drops a handshake as an old reflector does.
  ip::udp::socket old_reflector(loop, {kLoopback, 0});
  std::size_t handshakes_dropped = 0;
  auto serve = [&]() -> asio::awaitable<void> {
    std::array<std::uint8_t, 512> buffer{};
    for (;;) {
      ip::udp::endpoint from;
      auto [ec, size] =
          co_await old_reflector.async_receive_from(asio::buffer(buffer), from, asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      const auto request = reflector::decode_request(std::span<const std::uint8_t>(buffer.data(), size));
      if (!request) continue;
      if (request->kind != 0) {
        ++handshakes_dropped;
        continue;
      }
      const auto reply = reflector::encode_cookie(request->token, {ip::address(kLoopback), from.port()}, {});
      old_reflector.send_to(asio::buffer(reply), from);
    }
  };
  asio::co_spawn(loop, serve(), asio::detached);
  VerifyOptions options;
  options.reflector = old_reflector.local_endpoint();
  options.wait_per_attempt = 50ms;
  options.reflector_handshake_time = 50ms;
  run_loop(loop, [&]() -> asio::awaitable<int> {
    Verifier verifier(kLoopback, options);
    co_await verifier.prepare();
    for (std::uint16_t port : {8080, 8081}) {
      const auto result = co_await verifier.verify(granted(request_for(Transport::tcp, port, true), port));
      CHECK(result.state == MappingState::mapped);
      CHECK_THAT(result.note, Catch::Contains("older than this natkeeper"));
    }
    old_reflector.close();
    co_return 0;
  }());
  CHECK(handshakes_dropped == 3);  // the attempts for the first port; the second is not asked
}

TEST_CASE("verification run: a canary mapping of this host proves the gateway forwards, and is removed",
          "[verification][device][realtime]") {
  boost::asio::io_context loop;
  LoopbackReflector reflector(loop);
  const auto config = config_for(reflector);
  CanaryMapper mapper;
  std::vector<MappingReport> rows{row(Transport::udp, 9000, true, MappingState::mapped),
                                  row(Transport::udp, 9001, true, MappingState::mapped)};

  SECTION("verified") {
    verify_rows(loop, reflector, config, rows, &mapper);
    for (const auto& r : rows) {
      CHECK(r.state == MappingState::mapped);
      CHECK_THAT(r.note, Catch::Contains("the gateway forwards"));
    }
    REQUIRE(mapper.granted_mappings.size() == 1);  // one canary for all the device's rows
    CHECK_FALSE(for_other_device(mapper.granted_mappings[0].request));
    CHECK(mapper.granted_mappings[0].request.lifetime <= 120s);
    REQUIRE(mapper.removed.size() == 1);
    CHECK(mapper.removed[0].external_port == mapper.granted_mappings[0].external_port);
  }
  SECTION("refused by the gateway: nothing to remove, the rows say why") {
    mapper.refuse = true;
    verify_rows(loop, reflector, config, rows, &mapper);
    CHECK(rows[0].state == MappingState::mapped);
    CHECK_THAT(rows[0].note, Catch::Contains("the gateway refused a canary mapping"));
    CHECK(mapper.removed.empty());
  }
  SECTION("a verified UDP mapping of this host in the same run is the canary: no temporary one") {
    rows.push_back(row(Transport::udp, 7076, false, MappingState::mapped));
    ip::udp::socket own_port(loop, {kLoopback, 0});  // where the probe for this host's row arrives
    const auto port = own_port.local_endpoint().port();
    own_port.close();
    rows.back().request = request_for(Transport::udp, port, false);
    rows.back().mapping = granted(rows.back().request, port);
    verify_rows(loop, reflector, config, rows, &mapper);
    CHECK(rows.back().state == MappingState::verified);
    CHECK_THAT(rows[0].note, Catch::Contains("the gateway forwards"));
    CHECK(mapper.granted_mappings.empty());
  }
}

TEST_CASE("verification run: a canary that does not arrive leaves the device's rows unproven, and is removed "
          "even when the run is cancelled",
          "[verification][device][realtime]") {
  boost::asio::io_context loop;
  LoopbackReflector reflector(loop);
  const auto config = config_for(reflector);
  CanaryMapper mapper;
  mapper.external_port = closed_tcp_port(loop);  // the gateway "forwards" somewhere nobody listens
  std::vector<MappingReport> rows{row(Transport::udp, 9000, true, MappingState::mapped)};

  SECTION("unreachable") {
    verify_rows(loop, reflector, config, rows, &mapper);
    CHECK(rows[0].state == MappingState::mapped);
    CHECK_THAT(rows[0].note, Catch::Contains("not reachable from outside either"));
    CHECK(mapper.removed.size() == 1);
  }
  SECTION("cancelled while the canary is probed") {
    using namespace boost::asio::experimental::awaitable_operators;
    run_loop(loop, [&]() -> asio::awaitable<int> {
      VerificationRun run;
      co_await run.start(config, loopback_path());
      asio::steady_timer soon(loop, 200ms);
      const auto first = co_await (run.finish(rows, std::nullopt, &mapper) ||
                                   soon.async_wait(asio::as_tuple(asio::use_awaitable)));
      CHECK(first.index() == 1);
      reflector.server.stop();
      co_return 0;
    }());
    CHECK(mapper.granted_mappings.size() == 1);
    CHECK(mapper.removed.size() == 1);
  }
}

TEST_CASE("verify_mappings: one reflector request per mapping, and one for the cookie",
          "[verification][realtime]") {
  boost::asio::io_context loop;
  LoopbackReflector reflector(loop);
  std::vector<MappingReport> rows;
  for (int i = 0; i < 5; ++i) {
    ip::udp::socket free_port(loop, {kLoopback, 0});  // the probe for this row arrives here
    const auto port = free_port.local_endpoint().port();
    rows.push_back(row(Transport::udp, port, false, MappingState::mapped));
  }
  rows.push_back(row(Transport::udp, 9000, true, MappingState::mapped));
  run_loop(loop, [&]() -> asio::awaitable<int> {
    co_await verify_mappings(config_for(reflector), loopback_path(), rows, std::nullopt, nullptr);
    reflector.server.stop();
    co_return 0;
  }());
  for (std::size_t i = 0; i < 5; ++i) CHECK(rows[i].state == MappingState::verified);
  CHECK(reflector.server.stats().udp_received == 6);  // the device's UDP row asks nothing
  CHECK(reflector.server.stats().cookies_sent == 1);
  // Without a Mapper, this host's verified rows are the device's canary.
  CHECK(rows[5].state == MappingState::mapped);
  CHECK_THAT(rows[5].note, Catch::Contains("the gateway forwards"));
}
