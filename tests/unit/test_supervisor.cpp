#include <catch2/catch.hpp>

#include "result_printer.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <map>
#include <set>

#include "agent/log.hpp"
#include "agent/state_file.hpp"
#include "agent/supervisor.hpp"
#include "mappers/errors.hpp"

using namespace natkeeper;
using namespace std::chrono_literals;
namespace ip = boost::asio::ip;

namespace {

const auto kGateway = ip::make_address_v4("10.77.0.1");

// A gateway's mapping table behind the Mapper interface; each request yields
// to the loop once, as a real one would.
class TableMapper final : public Mapper {
 public:
  std::map<std::pair<Transport, std::uint16_t>, std::uint16_t> table;  // (proto, external) -> internal
  std::set<std::uint16_t> refused;  // internal ports answered "out of resources"
  int map_calls = 0, unmap_calls = 0;

  std::string_view method() const override { return "natpmp"; }
  asio::awaitable<Result<ip::address>> external_address() override { co_return ip::make_address("203.0.113.1"); }
  asio::awaitable<Result<Mapping>> map(MapRequest request) override {
    ++map_calls;
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    if (refused.count(request.internal_port)) co_return make_natpmp_error(4);
    table[{request.proto, request.wanted_external_port}] = request.internal_port;
    const auto port = request.wanted_external_port;
    co_return Mapping{std::move(request), ip::make_address("203.0.113.1"), port, 3600s, false};
  }
  asio::awaitable<std::error_code> unmap(Mapping mapping) override {
    ++unmap_calls;
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    table.erase({mapping.request.proto, mapping.external_port});
    co_return std::error_code{};
  }
};

config::Config ports_config(std::vector<config::PortRange> ports) {
  config::Config config;
  config.ring_profile = false;
  config.verify = false;
  config.ports = std::move(ports);
  return config;
}

struct TemporaryStateFile {
  std::filesystem::path directory = std::filesystem::temp_directory_path() /
                                    ("natkeeper-supervisor-" + std::to_string(::getpid()));
  std::filesystem::path file = directory / "mappings.json";
  TemporaryStateFile() { std::filesystem::create_directories(directory); }
  ~TemporaryStateFile() { std::filesystem::remove_all(directory); }
};

// The supervisor over a scripted gateway, run on the test's own loop.
struct Fixture {
  asio::io_context loop;
  TemporaryStateFile state;
  TableMapper* mapper = nullptr;  // owned by the current connection
  int connects = 0, ready_calls = 0;
  bool gateway_answers = true;
  bool finished = false;
  std::unique_ptr<Supervisor> supervisor;

  explicit Fixture(config::Config config) {
    log::set_verbosity(-1);
    auto connector = [this](const config::Config&) -> asio::awaitable<std::optional<Connection>> {
      ++connects;
      if (!gateway_answers) co_return std::nullopt;
      auto table = std::make_unique<TableMapper>();
      if (mapper) table->table = mapper->table;  // the same gateway, found again
      mapper = table.get();
      co_return Connection{GatewayPath{kGateway, LocalInterface{"lo", ip::make_address_v4("127.0.0.1"),
                                                                ip::make_address_v4("255.0.0.0")}},
                           FoundProtocol{Method::natpmp, std::move(table), "scripted", {}, {}}};
    };
    supervisor = std::make_unique<Supervisor>(loop.get_executor(), loop.get_executor(), connector, std::move(config),
                                              state.file, SupervisorHooks{[](const std::string&) {},
                                                                          [this] { ++ready_calls; }});
  }

  void start() {
    asio::co_spawn(loop, supervisor->run(), [this](std::exception_ptr error) {
      if (error) std::rethrow_exception(error);
      finished = true;
    });
  }

  // Runs the loop until `done` holds, at most `limit` (real time).
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 2000ms) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) loop.run_one_for(10ms);
    return done();
  }

  nlohmann::json summary() { return supervisor->status()["summary"]; }
};

std::vector<std::uint8_t> pcp_announce(std::uint32_t epoch) {
  std::vector<std::uint8_t> datagram(24, 0);
  datagram[0] = 2;     // version
  datagram[1] = 0x80;  // response to ANNOUNCE
  for (int i = 0; i < 4; ++i) datagram[8 + i] = static_cast<std::uint8_t>(epoch >> (24 - 8 * i));
  return datagram;
}

}  // namespace

TEST_CASE("the first round maps the plan, tells READY, and records it in the state file", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5002}, {Transport::tcp, 6000, 6000}}));
  f.start();
  REQUIRE(f.run_until([&] { return f.ready_calls == 1; }));
  CHECK(f.mapper->table.size() == 4);
  CHECK(f.summary()["active"] == 4);
  CHECK(f.summary()["failed"] == 0);
  // Written by the workers (here: the same loop), after READY.
  REQUIRE(f.run_until([&] { return std::filesystem::exists(f.state.file); }));
  const auto recorded = read_state_file(f.state.file);
  CHECK(recorded.error.empty());
  CHECK(recorded.state.mappings.size() == 4);
  CHECK(recorded.state.method == "natpmp");
  CHECK(recorded.state.gateway == "10.77.0.1");
}

TEST_CASE("a gateway announcement maps everything again; the same from another host is dropped", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5002}}));
  f.start();
  REQUIRE(f.run_until([&] { return f.ready_calls == 1; }));
  REQUIRE(f.mapper->map_calls == 3);
  const auto announce = pcp_announce(0);

  f.supervisor->gateway_datagram(announce, {ip::make_address("10.77.0.9"), 5351}, kAnnouncePort);
  f.supervisor->gateway_datagram(announce, {kGateway, 40000}, kAnnouncePort);  // not the server port
  f.run_until([] { return false; }, 700ms);
  CHECK(f.mapper->map_calls == 3);
  CHECK(f.supervisor->status()["dropped_datagrams"] == 2);

  const auto announced = std::chrono::steady_clock::now();
  f.supervisor->gateway_datagram(announce, {kGateway, 5351}, kAnnouncePort);
  // after at most 0.5 s of spreading
  CHECK(f.run_until([&] { return f.mapper->map_calls == 6; }, 1500ms));
  // the same announcement again, its epoch as far on as the clock: nothing to repair
  const auto since = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - announced);
  f.supervisor->gateway_datagram(pcp_announce(static_cast<std::uint32_t>(since.count())), {kGateway, 5351},
                                 kAnnouncePort);
  f.run_until([] { return false; }, 700ms);
  CHECK(f.mapper->map_calls == 6);
}

TEST_CASE("a reload applies only the difference", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5002}, {Transport::tcp, 6000, 6000}}));
  f.start();
  REQUIRE(f.run_until([&] { return f.ready_calls == 1; }));
  REQUIRE(f.mapper->map_calls == 4);

  f.supervisor->reload(ports_config({{Transport::udp, 5001, 5003}, {Transport::tcp, 6000, 6000}}));
  REQUIRE(f.run_until([&] { return f.ready_calls == 2 && f.mapper->table.count({Transport::udp, 5003}) == 1; }));
  CHECK(f.mapper->map_calls == 5);    // only udp 5003: the kept ones are not asked again
  CHECK(f.mapper->unmap_calls == 1);  // udp 5000
  CHECK_FALSE(f.mapper->table.count({Transport::udp, 5000}));
  CHECK(f.mapper->table.size() == 4);
  CHECK(f.summary()["planned"] == 4);
}

TEST_CASE("a refused mapping is reported with the gateway's reason; the others stay", "[supervisor]") {
  config::Config config = ports_config({{Transport::udp, 5000, 5002}});
  Fixture f(config);
  f.start();
  f.run_until([&] { return f.mapper != nullptr; });
  f.mapper->refused = {5001};
  REQUIRE(f.run_until([&] { return f.ready_calls == 1; }));
  CHECK(f.summary()["active"] == 2);
  CHECK(f.summary()["failed"] == 1);
  const auto mappings = f.supervisor->status()["mappings"];
  CHECK(mappings[1]["state"] == "failed");
  CHECK(mappings[1]["error_code"] == "natpmp:4");
  CHECK(mappings[1]["renew_in_s"].get<long long>() <= 7);  // retried within the first backoff step
  CHECK(f.run_until([&] { return read_state_file(f.state.file).state.mappings.size() == 2; }));
}

TEST_CASE("stop ends the loop; release removes every mapping and the state file", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5002}}));
  f.start();
  REQUIRE(f.run_until([&] { return f.ready_calls == 1 && std::filesystem::exists(f.state.file); }));
  f.supervisor->stop();
  REQUIRE(f.run_until([&] { return f.finished; }));
  bool all_removed = false, released = false;
  auto release_and_flush = [&]() -> asio::awaitable<bool> {
    const bool removed = co_await f.supervisor->release(1s);
    co_await f.supervisor->flush_state();
    co_return removed;
  };
  asio::co_spawn(f.loop, release_and_flush(), [&](std::exception_ptr error, bool removed) {
    if (error) std::rethrow_exception(error);
    all_removed = removed;
    released = true;
  });
  REQUIRE(f.run_until([&] { return released; }));
  CHECK(all_removed);
  CHECK(f.mapper->table.empty());
  CHECK_FALSE(std::filesystem::exists(f.state.file));
}

TEST_CASE("without a gateway it is READY all the same, and looks again later", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5000}}));
  f.gateway_answers = false;
  f.start();
  REQUIRE(f.run_until([&] { return f.ready_calls == 1; }));
  CHECK(f.connects == 1);
  CHECK(f.supervisor->status()["status"] == "no gateway answers; trying again");
  CHECK(f.supervisor->status()["gateway"].is_null());
  // the next look is 3.75-6.25 s away: nothing happens before
  f.run_until([] { return false; }, 1s);
  CHECK(f.connects == 1);
}

TEST_CASE("a state file's mappings are taken over where still wanted, the rest removed", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5001}}));
  state::ServiceState earlier{"10.77.0.1", "natpmp", "127.0.0.1", {}};
  earlier.mappings.push_back({Transport::udp, 5000, 5000, "203.0.113.1", false, 0});
  earlier.mappings.push_back({Transport::udp, 7000, 7000, "203.0.113.1", false, 0});
  REQUIRE_FALSE(write_state_file(f.state.file, earlier));
  f.start();
  REQUIRE(f.run_until([&] { return f.ready_calls == 1; }));
  CHECK(f.mapper->unmap_calls == 1);  // udp 7000, no longer planned
  CHECK(f.mapper->map_calls == 2);    // udp 5000 renewed on its port, udp 5001 made
  REQUIRE(f.run_until([&] {  // the earlier file had 2 mappings too: wait for udp 5001
    const auto mappings = read_state_file(f.state.file).state.mappings;
    return mappings.size() == 2 && mappings[1].internal_port == 5001;
  }));
  const auto recorded = read_state_file(f.state.file).state;
  REQUIRE(recorded.mappings.size() == 2);
  CHECK(recorded.mappings[0].internal_port == 5000);
  CHECK(recorded.mappings[1].internal_port == 5001);
}
