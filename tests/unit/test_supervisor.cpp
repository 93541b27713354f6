#include <catch2/catch.hpp>

#include "result_printer.hpp"
#include "virtual_time.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <linux/neighbour.h>

#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "agent/base/log.hpp"
#include "agent/base/state_file.hpp"
#include "agent/service/service_policy.hpp"
#include "agent/service/supervisor.hpp"
#include "mappers/errors.hpp"

using namespace natkeeper;
using namespace std::chrono_literals;
namespace ip = boost::asio::ip;

namespace {

const auto kGateway = ip::make_address_v4("10.77.0.1");
const auto kLocal = ip::make_address_v4("127.0.0.1");

// A gateway's mapping table behind the Mapper interface; each request yields
// to the loop once, as a real one would. Every request is logged with the
// virtual time it was made at.
class TableMapper final : public Mapper {
 public:
  explicit TableMapper(Timebase& time) : time_(time) {}

  std::map<std::pair<Transport, std::uint16_t>, std::uint16_t> table;  // (proto, external) -> internal
  std::map<std::pair<Transport, std::uint16_t>, std::optional<ip::address>> clients;  // ... -> the device, if any
  std::set<std::uint16_t> refused;  // internal ports answered "out of resources"
  std::chrono::seconds lease{3600};
  bool answers = true;      // false: every request times out
  int lose_state_on = 0;    // the next so many map() calls show lost state (epoch)
  bool unmap_hangs = false;  // unmap() never ends (until cancelled)
  std::set<std::uint16_t> silent;  // internal ports granted whose answer never arrives
  Timebase::Duration answer_delay{};  // how long each map() takes to answer
  bool check_finds_loss = false;  // what check() says: the mappings are gone
  std::optional<std::chrono::seconds> check_epoch;  // ... and the gateway's epoch
  bool check_refused = false;  // check() is answered with an error
  ip::address external_ip = ip::make_address("203.0.113.1");
  bool lists = false;  // list_table() works, as UPnP's does
  std::map<std::pair<Transport, std::uint16_t>, std::string> descriptions;
  std::size_t read_back_per = 0;  // mappings one read_back() request covers; 0: it cannot read back
  std::vector<Timebase::TimePoint> map_times;
  int unmap_calls = 0, check_calls = 0, read_back_requests = 0;

  int map_calls() const { return static_cast<int>(map_times.size()); }
  Method method() const override { return Method::natpmp; }
  asio::awaitable<Result<ip::address>> external_address() override { co_return external_ip; }
  asio::awaitable<Result<Mapping>> map(MapRequest request) override {
    map_times.push_back(time_.now());
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    if (lose_state_on > 0) {
      --lose_state_on;
      lost_state_ = true;
    }
    if (!answers) co_return make_error_code(Errc::timed_out);
    if (refused.count(request.internal_port)) co_return make_natpmp_error(4);
    table[{request.proto, request.wanted_external_port}] = request.internal_port;
    clients[{request.proto, request.wanted_external_port}] = request.internal_client;
    descriptions[{request.proto, request.wanted_external_port}] = request.description;
    if (silent.count(request.internal_port)) co_await hang();
    if (answer_delay > Timebase::Duration::zero()) co_await time_.sleep_until(time_.now() + answer_delay);
    const auto port = request.wanted_external_port;
    co_return Mapping{std::move(request), external_ip, port, lease, false};
  }
  asio::awaitable<std::error_code> unmap(Mapping mapping) override {
    ++unmap_calls;
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    if (unmap_hangs) co_await hang();
    if (!answers) co_return make_error_code(Errc::timed_out);
    table.erase({mapping.request.proto, mapping.external_port});
    clients.erase({mapping.request.proto, mapping.external_port});
    co_return std::error_code{};
  }
  asio::awaitable<Result<GatewayCheck>> check(const Mapping&) override {
    ++check_calls;
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    if (!answers) co_return make_error_code(Errc::timed_out);
    if (check_refused) co_return make_natpmp_error(3);
    co_return GatewayCheck{check_finds_loss, external_ip, check_epoch};
  }
  bool take_gateway_lost_state() override { return std::exchange(lost_state_, false); }
  std::size_t read_back_per_request() const override { return read_back_per; }
  asio::awaitable<Result<std::vector<std::optional<HeldLease>>>> read_back(std::vector<Mapping> mappings) override {
    if (read_back_per == 0) co_return co_await Mapper::read_back(std::move(mappings));
    read_back_requests += static_cast<int>((mappings.size() + read_back_per - 1) / read_back_per);
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    if (!answers) co_return make_error_code(Errc::timed_out);
    std::vector<std::optional<HeldLease>> held;
    for (const auto& mapping : mappings) {
      const auto key = std::pair(mapping.request.proto, mapping.external_port);
      const auto entry = table.find(key);
      const bool as_made = entry != table.end() && entry->second == mapping.request.internal_port &&
                           clients[key] == mapping.request.internal_client;
      held.push_back(as_made ? std::optional(HeldLease{lease, false}) : std::nullopt);
    }
    co_return held;
  }
  asio::awaitable<Result<std::vector<Mapping>>> list_table(std::size_t limit) override {
    if (!lists) co_return co_await Mapper::list_table(limit);
    std::vector<Mapping> listed;
    for (const auto& [key, internal] : table) {
      if (listed.size() == limit) break;
      const auto client = clients[key].value_or(ip::address(kLocal));
      listed.push_back(Mapping{{key.first, internal, key.second, lease, descriptions[key], client, {}},
                               {}, key.second, lease, false});
    }
    co_return listed;
  }

 private:
  // Until cancelled.
  static asio::awaitable<void> hang() {
    asio::steady_timer never(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
    co_await never.async_wait(asio::use_awaitable);
  }

  Timebase& time_;
  bool lost_state_ = false;
};

config::Config ports_config(std::vector<config::PortRange> ports) {
  config::Config config;
  config.ring_profile = false;
  config.verify = false;
  config.ports = std::move(ports);
  return config;
}

// In memory where there is a tmpfs: a state write's fsync then costs nothing.
std::filesystem::path scratch_directory() {
  return std::filesystem::is_directory("/dev/shm") ? std::filesystem::path("/dev/shm")
                                                   : std::filesystem::temp_directory_path();
}

struct TemporaryStateFile {
  std::filesystem::path directory = scratch_directory() / ("natkeeper-supervisor-" + std::to_string(::getpid()));
  std::filesystem::path file = directory / "mappings.json";
  TemporaryStateFile() { std::filesystem::create_directories(directory); }
  ~TemporaryStateFile() { std::filesystem::remove_all(directory); }
};

// The supervisor over a scripted gateway and network, on the test's own loop
// and virtual time.
struct Fixture {
  testing::VirtualTime time;  // outlives the loop's coroutines
  asio::io_context loop;
  TemporaryStateFile state;
  TableMapper* mapper = nullptr;  // owned by the current connection
  // How the next gateway found answers.
  Method method = Method::natpmp;
  std::set<std::uint16_t> refused;
  std::chrono::seconds lease{3600};
  int connects = 0, ready_calls = 0, verify_calls = 0;
  bool gateway_answers = true;
  Result<GatewayPath> path = GatewayPath{kGateway, LocalInterface{"lo", kLocal, ip::make_address_v4("255.0.0.0")}};
  std::vector<state::ServiceState> removed_recorded;
  std::vector<netlink::Neighbour> neighbours;  // the neighbour table devices are found in
  std::error_code write_error;  // what the state writer's writes fail with
  int failed_writes = 0, writes = 0;
  // What the gateway holds before the first connection (left by an earlier run).
  std::map<std::pair<Transport, std::uint16_t>, std::uint16_t> earlier_table;
  std::map<std::pair<Transport, std::uint16_t>, std::string> earlier_descriptions;
  bool gateway_lists = false;
  std::size_t gateway_reads_back = 0;  // as TableMapper's read_back_per
  std::set<std::uint16_t> silent;     // as TableMapper's
  Timebase::Duration answer_delay{};  // as TableMapper's
  // The watch of the current connection (effects.watch): what it hints with, and whether it lasts.
  std::function<void()> hint;
  std::weak_ptr<void> watch;
  int watches = 0;
  bool started_run = false, finished = false;
  std::unique_ptr<Supervisor> supervisor;

  explicit Fixture(config::Config config) {
    log::set_verbosity(-1);
    SupervisorEffects effects;
    effects.connect = [this](const config::Config&) -> asio::awaitable<std::optional<Connection>> {
      ++connects;
      if (!gateway_answers || !path) co_return std::nullopt;
      auto table = std::make_unique<TableMapper>(time);
      table->refused = refused;
      table->lease = lease;
      table->lists = gateway_lists;
      table->read_back_per = gateway_reads_back;
      table->silent = silent;
      table->answer_delay = answer_delay;
      if (mapper) {  // the same gateway, found again
        table->table = mapper->table;
        table->clients = mapper->clients;
        table->descriptions = mapper->descriptions;
      } else {
        table->table = earlier_table;
        table->descriptions = earlier_descriptions;
        for (const auto& [key, internal] : earlier_table) table->clients[key] = std::nullopt;
      }
      mapper = table.get();
      co_return Connection{*path, FoundProtocol{method, std::move(table), "scripted", {}, {}, {}}};
    };
    effects.locate = [this](const config::Config&) { return path; };
    effects.verify = [this](const config::Config&, const GatewayPath&, std::vector<MappingReport>& reports,
                            const std::optional<ip::address>&, Mapper*) -> asio::awaitable<VerifyResult> {
      ++verify_calls;
      for (auto& report : reports) report.note = "verification is off";
      co_return VerifyResult{};
    };
    effects.remove_recorded = [this](const state::ServiceState& recorded,
                                     const config::Config&) -> asio::awaitable<std::vector<Mapping>> {
      removed_recorded.push_back(recorded);
      co_return std::vector<Mapping>{};
    };
    effects.find_devices = [this](const config::Config& wanted, const LocalInterface& lan,
                                  const config::DeviceAddresses& previous) {
      return look_up_devices(wanted, lan, neighbours, previous);
    };
    effects.watch = [this](asio::any_io_executor, Timebase&, const Connection&,
                           std::function<void()> fire) -> std::shared_ptr<void> {
      ++watches;
      hint = std::move(fire);
      auto handle = std::make_shared<int>(0);
      watch = handle;
      return handle;
    };
    StateWriter state_writer(loop.get_executor(), loop.get_executor(), state.file,
                             [this](const std::filesystem::path& file, const std::optional<state::ServiceState>& snapshot) {
                               if (write_error) {
                                 ++failed_writes;
                                 return write_error;
                               }
                               ++writes;
                               return StateWriter::write_or_remove(file, snapshot);
                             });
    supervisor = std::make_unique<Supervisor>(loop.get_executor(), time, std::move(effects), std::move(config),
                                              std::move(state_writer),
                                              SupervisorHooks{[](const std::string&) {}, [this] { ++ready_calls; }},
                                              /*seed=*/42);
  }

  // The loop's coroutines refer to the supervisor and the time: they end first.
  ~Fixture() {
    if (!started_run) return;
    supervisor->stop();
    time.run_until(loop, [&] { return finished; }, 10s);
  }

  void start() {
    started_run = true;
    asio::co_spawn(loop, supervisor->run(), [this](std::exception_ptr error) {
      if (error) std::rethrow_exception(error);
      finished = true;
    });
  }

  // Runs until `done` holds, at most `limit` of virtual time.
  bool run_until(const std::function<bool()>& done, Timebase::Duration limit = 10s) {
    return time.run_until(loop, done, limit);
  }
  void run_for(Timebase::Duration span) {
    time.run_until(loop, [] { return false; }, span);
  }
  bool started() {
    start();
    return run_until([&] { return ready_calls == 1; });
  }

  // Stops the loop, releases with `deadline` and waits for the state file; the release's verdict.
  bool stop_and_release(Timebase::Duration deadline = 1s) {
    supervisor->stop();
    REQUIRE(run_until([&] { return finished; }));
    std::optional<bool> released;
    auto release_and_flush = [this, deadline]() -> asio::awaitable<bool> {
      const bool removed = co_await supervisor->release(deadline);
      co_await supervisor->flush_state();
      co_return removed;
    };
    asio::co_spawn(loop, release_and_flush(), [&](std::exception_ptr error, bool removed) {
      if (error) std::rethrow_exception(error);
      released = removed;
    });
    REQUIRE(run_until([&] { return released.has_value(); }, deadline + 1s));
    return *released;
  }

  state::ServiceState recorded() const { return read_state_file(state.file).state; }
  std::size_t unconfirmed_records() const {
    const auto mappings = recorded().mappings;
    return std::count_if(mappings.begin(), mappings.end(), [](const auto& m) { return !m.confirmed; });
  }

  nlohmann::json summary() { return supervisor->status()["summary"]; }
  Timebase::Duration since(Timebase::TimePoint then) const { return time.now() - then; }
};

const auto kDoorbellMac = *parse_mac("54:e0:19:00:00:50");

netlink::Neighbour neighbour(const char* address, std::uint16_t state, std::uint32_t ticks_since_update = 100) {
  return {false, 1, ip::make_address(address), kDoorbellMac, state, 0, ticks_since_update};
}

config::Config doorbell_config() {
  auto config = ports_config({});
  config.devices.push_back({"doorbell", std::nullopt, kDoorbellMac, false, {{Transport::udp, 5000, 5001}}});
  return config;
}

std::vector<std::uint8_t> pcp_announce(std::uint32_t epoch) {
  std::vector<std::uint8_t> datagram(24, 0);
  datagram[0] = 2;     // version
  datagram[1] = 0x80;  // response to ANNOUNCE
  for (int i = 0; i < 4; ++i) datagram[8 + i] = static_cast<std::uint8_t>(epoch >> (24 - 8 * i));
  return datagram;
}

// "My external address is 198.51.100.66", from the gateway's address.
std::vector<std::uint8_t> natpmp_address_notice() {
  return {0, 0x80, 0, 0, 0, 0, 0, 1, 198, 51, 100, 66};
}

std::vector<std::uint8_t> ssdp_alive(std::uint32_t boot_id) {
  const auto text = "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: urn:schemas-upnp-org:device:"
                    "InternetGatewayDevice:1\r\nNTS: ssdp:alive\r\nLOCATION: http://10.77.0.1:5000/rootDesc.xml\r\n"
                    "BOOTID.UPNP.ORG: " +
                    std::to_string(boot_id) + "\r\n\r\n";
  return {text.begin(), text.end()};
}

}  // namespace

TEST_CASE("the first round maps the plan, tells READY, and records it in the state file", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5002}, {Transport::tcp, 6000, 6000}}));
  REQUIRE(f.started());
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

TEST_CASE("each lease is renewed within [1/2, 5/8] of it, renewals due together go together", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5002}}));
  const auto start = f.time.now();
  REQUIRE(f.started());
  REQUIRE(f.mapper->map_calls() == 3);
  // Nothing is asked again before half the lease (30 min) has gone.
  f.run_for(1800s - 1s);
  CHECK(f.mapper->map_calls() == 3);
  REQUIRE(f.run_until([&] { return f.mapper->map_calls() == 6; }, 2250s - 1799s));
  const auto renewed = f.mapper->map_times.back() - start;
  CHECK(renewed >= 1800s);
  CHECK(renewed <= 2250s);
  // The three were due within 450 s of each other: one round renewed them all.
  CHECK(f.mapper->map_times[3] == f.mapper->map_times[5]);
  // And the next round follows the renewed leases, not the first ones.
  REQUIRE(f.run_until([&] { return f.mapper->map_calls() == 9; }, 2250s));
  CHECK(f.mapper->map_times[6] - f.mapper->map_times[5] >= 1800s);
}

TEST_CASE("a short lease is renewed as if it were 4 s long: no busy loop on a silly grant", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5000}}));
  f.lease = 0s;
  REQUIRE(f.started());
  f.run_for(60s);
  // Every 2-2.5 s: 24 to 30 renewals in a minute, and not one more.
  CHECK(f.mapper->map_calls() >= 1 + 24);
  CHECK(f.mapper->map_calls() <= 1 + 30);
}

TEST_CASE("a refused mapping is retried with backoff; the others stay", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5002}}));
  f.refused = {5001};
  REQUIRE(f.started());
  CHECK(f.summary()["active"] == 2);
  CHECK(f.summary()["failed"] == 1);
  const auto mappings = f.supervisor->status()["mappings"];
  CHECK(mappings[1]["state"] == "failed");
  CHECK(mappings[1]["error_code"] == "natpmp:4");
  CHECK(mappings[1]["renew_in_s"].get<long long>() <= 7);  // retried within the first backoff step
  CHECK(f.run_until([&] { return read_state_file(f.state.file).state.mappings.size() == 2; }));

  // 5 s, then 10 s, then 20 s, each spread by ±25 %.
  auto retried_after = [&](int calls) {
    const auto before = f.mapper->map_times.back();
    REQUIRE(f.run_until([&] { return f.mapper->map_calls() == calls; }, 60s));
    return f.mapper->map_times.back() - before;
  };
  const auto first = retried_after(4), second = retried_after(5), third = retried_after(6);
  CHECK(first >= 3750ms);
  CHECK(first <= 6250ms);
  CHECK(second >= 7500ms);
  CHECK(second <= 12500ms);
  CHECK(third >= 15s);
  CHECK(third <= 25s);
  // Once granted, it is active and renewed like the others.
  f.mapper->refused.clear();
  REQUIRE(f.run_until([&] { return f.summary()["active"] == 3; }, 60s));
  // Active alike, the three are one row; its renewal is the soonest of the three.
  const auto row = f.supervisor->status()["mappings"][0];
  CHECK(row["count"] == 3);
  CHECK(row["renew_in_s"].get<long long>() >= 1800);
}

TEST_CASE("a gateway announcement is a question to the gateway; only a confirmed loss maps again", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5002}}));
  REQUIRE(f.started());
  REQUIRE(f.mapper->map_calls() == 3);
  const auto announce = pcp_announce(0);

  f.supervisor->gateway_datagram(announce, {ip::make_address("10.77.0.9"), 5351}, kAnnouncePort);
  f.supervisor->gateway_datagram(announce, {kGateway, 40000}, kAnnouncePort);  // not the server port
  f.run_for(700ms);
  CHECK(f.mapper->check_calls == 0);
  CHECK(f.supervisor->status()["dropped_datagrams"] == 2);

  // From the gateway's address: asked at once; it lost nothing, so nothing is mapped again.
  f.supervisor->gateway_datagram(announce, {kGateway, 5351}, kAnnouncePort);
  REQUIRE(f.run_until([&] { return f.mapper->check_calls == 1; }, 100ms));
  f.run_for(3s);
  CHECK(f.mapper->map_calls() == 3);

  // The gateway confirms a loss: everything again, spread over at most 0.5 s.
  f.mapper->check_finds_loss = true;
  const auto announced = f.time.now();
  f.supervisor->gateway_datagram(announce, {kGateway, 5351}, kAnnouncePort);
  REQUIRE(f.run_until([&] { return f.mapper->map_calls() == 6; }, 5s));
  CHECK(f.mapper->check_calls == 2);
  CHECK(f.mapper->map_times[3] - announced <= 4500ms);  // after the 4 s spacing the needless question earned

  // The gateway confirms a new external address: everything again, and the address is taken.
  f.mapper->check_finds_loss = false;
  f.mapper->external_ip = ip::make_address("203.0.113.9");
  f.run_for(10s);
  f.supervisor->gateway_datagram(natpmp_address_notice(), {kGateway, 5351}, kAnnouncePort);
  REQUIRE(f.run_until([&] { return f.mapper->map_calls() == 9; }, 5s));
  f.run_for(1s);
  CHECK(f.supervisor->status()["gateway"]["external_ip"] == "203.0.113.9");
}

TEST_CASE("an epoch younger than the last round, or a refused question, maps everything again", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5001}}));
  REQUIRE(f.started());
  f.run_for(10s);
  // Up for an hour: it kept the mappings of the round 10 s ago.
  f.mapper->check_epoch = 3600s;
  f.supervisor->gateway_datagram(pcp_announce(0), {kGateway, 5351}, kAnnouncePort);
  f.run_for(1s);
  CHECK(f.mapper->check_calls == 1);
  CHECK(f.mapper->map_calls() == 2);
  // Up for 3 s, the round was 13 s ago: it restarted since, although two
  // epoch samples would not show it.
  f.mapper->check_epoch = 3s;
  f.run_for(2s);
  f.supervisor->gateway_datagram(pcp_announce(0), {kGateway, 5351}, kAnnouncePort);
  REQUIRE(f.run_until([&] { return f.mapper->map_calls() == 4; }, 5s));
  // A change the notice announced (epoch 20 s, as the gateway's, which is
  // older than the last round) and the answer confirms.
  f.run_for(10s);
  f.mapper->check_epoch = 20s;
  f.supervisor->gateway_datagram(pcp_announce(20), {kGateway, 5351}, kAnnouncePort);
  REQUIRE(f.run_until([&] { return f.mapper->map_calls() == 6; }, 5s));
  // The gateway refuses the question (as miniupnpd does while it re-checks a
  // new address, dropping the mapping it was renewing): everything again.
  f.mapper->check_epoch.reset();
  f.mapper->check_refused = true;
  f.run_for(10s);
  f.supervisor->gateway_datagram(pcp_announce(0), {kGateway, 5351}, kAnnouncePort);
  CHECK(f.run_until([&] { return f.mapper->map_calls() == 8; }, 5s));
}

TEST_CASE("a stream of forged notices costs a question a minute and no round", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5107}}));
  REQUIRE(f.started());
  REQUIRE(f.mapper->map_calls() == 108);
  // What a rogue on the LAN sends with the gateway's address, 4 of each a second
  // for 10 minutes: announcements, address notices claiming another address,
  // SSDP notices with a new boot id each time.
  int sent = 0;
  auto questions_after_5_minutes = 0;
  for (std::uint32_t second = 0; second < 600; ++second) {
    for (std::uint32_t i = 0; i < 4; ++i) {
      f.supervisor->gateway_datagram(pcp_announce(i), {kGateway, 5351}, kAnnouncePort);
      f.supervisor->gateway_datagram(natpmp_address_notice(), {kGateway, 5351}, kAnnouncePort);
      f.supervisor->gateway_datagram(ssdp_alive(second * 4 + i), {kGateway, 1900}, kSsdpNotifyPort);
      sent += 3;
    }
    f.run_for(1s);
    if (second == 299) questions_after_5_minutes = f.mapper->check_calls;
  }
  INFO(sent << " forged notices, " << f.mapper->check_calls << " questions");
  CHECK(f.mapper->map_calls() == 108);
  CHECK(f.mapper->check_calls <= 15);
  CHECK(f.mapper->check_calls - questions_after_5_minutes <= 5);  // the last 5 minutes: one a minute
  CHECK(f.supervisor->status()["gateway"]["external_ip"] == "203.0.113.1");
}

TEST_CASE("answers that keep confirming a loss start three rounds at once, then one a minute", "[supervisor]") {
  // (A NAT-PMP answer has no nonce: a rogue that answers the question in time
  // can claim a loss too.)
  Fixture f(ports_config({{Transport::udp, 5000, 5000}}));
  REQUIRE(f.started());
  f.mapper->check_finds_loss = true;
  for (int second = 0; second < 300; ++second) {
    f.supervisor->gateway_datagram(pcp_announce(0), {kGateway, 5351}, kAnnouncePort);
    f.run_for(1s);
  }
  // 1 first round, 3 at once, then one a minute for the remaining ~4 minutes.
  CHECK(f.mapper->map_calls() >= 1 + 3 + 3);
  CHECK(f.mapper->map_calls() <= 1 + 3 + 5);
}

TEST_CASE("a gateway that keeps losing its state is mapped again at once three times, then with backoff",
          "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5000}}));
  REQUIRE(f.started());
  const auto calls = f.mapper->map_calls();
  f.mapper->lose_state_on = 5;  // five rounds in a row
  f.supervisor->refresh("test");
  REQUIRE(f.run_until([&] { return f.mapper->map_calls() == calls + 6; }, 60s));
  const auto& times = f.mapper->map_times;
  auto gap = [&](int round) { return times[calls + round + 1] - times[calls + round]; };
  // Losses 1-3: at once; then the backoff: 5 s, then 10 s (±25 %).
  CHECK(gap(0) == 0s);
  CHECK(gap(1) == 0s);
  CHECK(gap(2) == 0s);
  CHECK(gap(3) >= 3750ms);
  CHECK(gap(3) <= 6250ms);
  CHECK(gap(4) >= 7500ms);
  CHECK(gap(4) <= 12500ms);
  // The sixth round lost nothing: the count starts again.
  f.run_for(60s);
  CHECK(f.mapper->map_calls() == calls + 6);
}

TEST_CASE("SSDP: a burst of alive notices is one question; a gateway that does not answer is found again",
          "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5000}}));
  f.method = Method::upnp;
  REQUIRE(f.started());
  REQUIRE(f.connects == 1);
  const ip::udp::endpoint gateway{kGateway, 1900};
  for (int i = 0; i < 12; ++i) f.supervisor->gateway_datagram(ssdp_alive(7), gateway, kSsdpNotifyPort);
  f.run_for(1s);
  CHECK(f.mapper->check_calls == 1);
  CHECK(f.connects == 1);
  // The next burst: the gateway no longer holds the mapping
  f.run_for(9s);
  f.mapper->check_finds_loss = true;
  const auto calls = f.mapper->map_calls();
  f.supervisor->gateway_datagram(ssdp_alive(7), gateway, kSsdpNotifyPort);
  REQUIRE(f.run_until([&] { return f.mapper->map_calls() == calls + 1; }, 1s));
  CHECK(f.mapper->check_calls == 2);
  // a new boot id, and the gateway's old address does not answer: it restarted elsewhere
  f.run_for(10s);
  f.mapper->answers = false;
  f.supervisor->gateway_datagram(ssdp_alive(8), gateway, kSsdpNotifyPort);
  CHECK(f.run_until([&] { return f.connects == 2; }, 1s));
}

TEST_CASE("a reload applies only the difference", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5002}, {Transport::tcp, 6000, 6000}}));
  REQUIRE(f.started());
  REQUIRE(f.mapper->map_calls() == 4);

  f.supervisor->reload(ports_config({{Transport::udp, 5001, 5003}, {Transport::tcp, 6000, 6000}}));
  REQUIRE(f.run_until([&] { return f.ready_calls == 2 && f.mapper->table.count({Transport::udp, 5003}) == 1; }));
  CHECK(f.mapper->map_calls() == 5);  // only udp 5003: the kept ones are not asked again
  CHECK(f.mapper->unmap_calls == 1);  // udp 5000
  CHECK_FALSE(f.mapper->table.count({Transport::udp, 5000}));
  CHECK(f.mapper->table.size() == 4);
  CHECK(f.summary()["planned"] == 4);
  CHECK(f.connects == 1);
}

TEST_CASE("a reload with other gateway settings moves every mapping", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5001}}));
  REQUIRE(f.started());
  auto changed = ports_config({{Transport::udp, 5000, 5001}});
  changed.gateway = kGateway;
  f.supervisor->reload(changed);
  REQUIRE(f.run_until([&] { return f.ready_calls == 2 && f.connects == 2 && f.mapper->map_calls() == 2; }));
  // removed through the old connection, made again through the new one
  CHECK(f.mapper->table.size() == 2);
  CHECK(f.summary()["active"] == 2);
}

TEST_CASE("verification runs after the first round, after a change, and every verify interval", "[supervisor]") {
  auto config = ports_config({{Transport::udp, 5000, 5000}});
  config.verify_interval = 600s;
  Fixture f(config);
  REQUIRE(f.started());
  CHECK(f.verify_calls == 1);
  f.run_for(599s);
  CHECK(f.verify_calls == 1);
  REQUIRE(f.run_until([&] { return f.verify_calls == 2; }, 2s));
  CHECK(f.supervisor->status()["mappings"][0]["note"] == "verification is off");
}

TEST_CASE("a changed way to the gateway is noticed half a second after the burst", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5000}}));
  REQUIRE(f.started());
  f.path = make_error_code(Errc::no_default_route);
  f.supervisor->network_changed("link 2 down");
  f.run_for(400ms);
  f.supervisor->network_changed("default route removed");  // the same burst: no later check
  f.run_for(150ms);
  CHECK(f.supervisor->status()["status"] == "no network towards the gateway; waiting for it");
  // back on the same path: everything is asked again, without finding the gateway anew
  f.path = GatewayPath{kGateway, LocalInterface{"lo", kLocal, ip::make_address_v4("255.0.0.0")}};
  const auto calls = f.mapper->map_calls();
  f.supervisor->network_changed("link 2 up");
  REQUIRE(f.run_until([&] { return f.mapper->map_calls() == calls + 1; }, 1s));
  CHECK(f.connects == 1);
  // on another address: the gateway is found again
  f.path->local.address = ip::make_address_v4("127.0.0.2");
  f.supervisor->network_changed("address added on 2");
  CHECK(f.run_until([&] { return f.connects == 2; }, 1s));
}

TEST_CASE("a gateway that stops answering is looked for again", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5000}}));
  REQUIRE(f.started());
  f.mapper->answers = false;
  f.supervisor->refresh("test");
  CHECK(f.run_until([&] { return f.connects == 2; }, 1s));
}

TEST_CASE("a failing state write is logged and counted; the service keeps its mappings and writes again",
          "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5001}}));
  f.write_error = std::make_error_code(std::errc::no_space_on_device);
  REQUIRE(f.started());
  f.run_for(1s);
  CHECK_FALSE(std::filesystem::exists(f.state.file));
  CHECK(f.summary()["active"] == 2);
  CHECK(f.failed_writes == 2);  // what the first round was about to ask for, then what it got
  f.write_error = {};
  f.supervisor->refresh("test");
  CHECK(f.run_until([&] { return read_state_file(f.state.file).state.mappings.size() == 2; }, 1s));
}

TEST_CASE("stop ends the loop; release removes every mapping and the state file", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5002}}));
  REQUIRE(f.started());
  REQUIRE(f.run_until([&] { return std::filesystem::exists(f.state.file); }));
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

TEST_CASE("release gives up at its deadline when the gateway does not answer", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5000}}));
  REQUIRE(f.started());
  f.supervisor->stop();
  REQUIRE(f.run_until([&] { return f.finished; }));
  f.mapper->unmap_hangs = true;  // the gateway is gone
  std::optional<bool> released;
  const auto asked = f.time.now();
  asio::co_spawn(f.loop, f.supervisor->release(2s), [&](std::exception_ptr error, bool removed) {
    if (error) std::rethrow_exception(error);
    released = removed;
  });
  REQUIRE(f.run_until([&] { return released.has_value(); }, 3s));
  CHECK(f.time.now() - asked == 2s);
  CHECK_FALSE(*released);
  // What is left stays recorded for the next start.
  f.run_for(1s);
  CHECK(read_state_file(f.state.file).state.mappings.size() == 1);
}

TEST_CASE("without a gateway it is READY all the same, and looks again later", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5000}}));
  f.gateway_answers = false;
  REQUIRE(f.started());
  CHECK(f.connects == 1);
  CHECK(f.supervisor->status()["status"] == "no gateway answers; trying again");
  CHECK(f.supervisor->status()["gateway"].is_null());
  // the next look is 3.75-6.25 s away: nothing happens before
  f.run_for(3700ms);
  CHECK(f.connects == 1);
  f.gateway_answers = true;
  REQUIRE(f.run_until([&] { return f.connects == 2; }, 2600ms));
  CHECK(f.run_until([&] { return f.summary()["active"] == 1; }, 1s));
}

TEST_CASE("a state file's mappings are taken over where still wanted, the rest removed", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5001}}));
  state::ServiceState earlier{"10.77.0.1", "natpmp", "127.0.0.1", {}};
  earlier.mappings.push_back({Transport::udp, 5000, 5000, "203.0.113.1", false, 0, "", ""});
  earlier.mappings.push_back({Transport::udp, 7000, 7000, "203.0.113.1", false, 0, "", ""});
  REQUIRE_FALSE(write_state_file(f.state.file, earlier));
  REQUIRE(f.started());
  CHECK(f.mapper->unmap_calls == 1);   // udp 7000, no longer planned
  CHECK(f.mapper->map_calls() == 2);  // udp 5000 renewed on its port, udp 5001 made
  CHECK(f.removed_recorded.empty());
  REQUIRE(f.run_until([&] {  // the earlier file had 2 mappings too: wait for udp 5001
    const auto mappings = read_state_file(f.state.file).state.mappings;
    return mappings.size() == 2 && mappings[1].internal_port == 5001;
  }));
  const auto recorded = read_state_file(f.state.file).state;
  REQUIRE(recorded.mappings.size() == 2);
  CHECK(recorded.mappings[0].internal_port == 5000);
  CHECK(recorded.mappings[1].internal_port == 5001);
}

TEST_CASE("a state file of another gateway is removed there, not taken over", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5000}}));
  state::ServiceState earlier{"10.99.0.1", "upnp", "127.0.0.1", {}};
  earlier.mappings.push_back({Transport::udp, 5000, 5000, "198.51.100.1", false, 0, "", ""});
  REQUIRE_FALSE(write_state_file(f.state.file, earlier));
  REQUIRE(f.started());
  REQUIRE(f.removed_recorded.size() == 1);
  CHECK(f.removed_recorded[0].gateway == "10.99.0.1");
  CHECK(f.mapper->unmap_calls == 0);
  CHECK(f.mapper->map_calls() == 1);
}

TEST_CASE("a device named by MAC is mapped where the neighbour table shows it, and followed when it moves",
          "[supervisor]") {
  Fixture f(doorbell_config());
  f.neighbours = {neighbour("127.0.0.50", NUD_REACHABLE)};
  REQUIRE(f.started());
  const std::pair key{Transport::udp, std::uint16_t{5000}};
  REQUIRE(f.mapper->clients.count(key) == 1);
  CHECK(f.mapper->clients[key] == ip::make_address("127.0.0.50"));
  CHECK(f.mapper->table.size() == 2);

  // Renumbered by DHCP: the table holds the old address (going stale) and the new one.
  f.neighbours = {neighbour("127.0.0.50", NUD_STALE, 3000), neighbour("127.0.0.51", NUD_REACHABLE, 10)};
  const auto moved = f.time.now();
  f.supervisor->neighbours_changed();
  REQUIRE(f.run_until([&] { return f.mapper->clients[key] == ip::make_address("127.0.0.51"); }));
  CHECK(f.since(moved) <= 2s);
  CHECK(f.mapper->unmap_calls == 2);  // the old address's mappings, removed before the new ones are made
  CHECK(f.mapper->table.size() == 2);
  CHECK(f.supervisor->status()["mappings"][0]["internal_client"] == "127.0.0.51");

  // A quiet device drops out of the table: it has not moved, nothing changes.
  f.neighbours.clear();
  f.supervisor->neighbours_changed();
  f.run_for(5s);
  CHECK(f.mapper->unmap_calls == 2);
  CHECK(f.mapper->clients[key] == ip::make_address("127.0.0.51"));
}

TEST_CASE("a device not in the neighbour table is mapped for once it appears", "[supervisor]") {
  Fixture f(doorbell_config());
  REQUIRE(f.started());
  CHECK(f.mapper->table.empty());
  CHECK(f.summary()["planned"] == 0);
  f.neighbours = {neighbour("127.0.0.50", NUD_REACHABLE)};
  f.supervisor->neighbours_changed();
  REQUIRE(f.run_until([&] { return f.mapper->table.size() == 2; }, 3s));
  CHECK(f.summary()["active"] == 2);
}

TEST_CASE("a reload keeps a followed device where it was found", "[supervisor]") {
  Fixture f(doorbell_config());
  f.neighbours = {neighbour("127.0.0.50", NUD_REACHABLE)};
  REQUIRE(f.started());
  auto more = doorbell_config();
  more.devices[0].ports.push_back({Transport::tcp, 6000, 6000});
  f.neighbours.clear();  // gone quiet meanwhile
  f.supervisor->reload(more);
  REQUIRE(f.run_until([&] { return f.mapper->table.size() == 3; }));
  CHECK(f.mapper->unmap_calls == 0);
  for (const auto& [key, client] : f.mapper->clients) CHECK(client == ip::make_address("127.0.0.50"));
}

TEST_CASE("after a restart, a quiet device keeps the mappings an earlier run recorded for it", "[supervisor]") {
  Fixture f(doorbell_config());
  state::ServiceState earlier{"10.77.0.1", "natpmp", "127.0.0.1", {}};
  earlier.mappings.push_back({Transport::udp, 5000, 5000, "203.0.113.1", false, 0, "127.0.0.50", "doorbell"});
  REQUIRE_FALSE(write_state_file(f.state.file, earlier));
  REQUIRE(f.started());  // the neighbour table is empty
  CHECK(f.mapper->unmap_calls == 0);
  CHECK(f.mapper->table.size() == 2);
  CHECK(f.mapper->clients[{Transport::udp, 5001}] == ip::make_address("127.0.0.50"));
}

TEST_CASE("a round records what it is about to ask for before it asks, and its grants as they come", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5199}}));
  f.answer_delay = 100ms;
  f.start();
  REQUIRE(f.run_until([&] { return f.mapper && f.mapper->map_calls() > 0; }));
  // Before the first request went out, all 200 were recorded, none confirmed.
  CHECK(f.recorded().mappings.size() == 200);
  CHECK(f.unconfirmed_records() == 200);
  // 200 answers of 100 ms, 8 at a time: the round takes 2.5 s. Half-way
  // through, the file shows what was granted so far, written once a second.
  const auto writes_before = f.writes;
  f.run_for(1200ms);
  CHECK(f.unconfirmed_records() > 0);
  CHECK(f.unconfirmed_records() < 150);
  CHECK(f.recorded().mappings.size() == 200);
  REQUIRE(f.run_until([&] { return f.ready_calls == 1; }, 10s));
  f.run_for(100ms);
  CHECK(f.unconfirmed_records() == 0);
  CHECK(f.writes - writes_before <= 4);
}

TEST_CASE("stop mid-round: release deletes every request sent, answered or not, and nothing unsent", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5019}}));
  // 8 grants whose answers are lost fill the window: 5013-5019 are never sent.
  for (std::uint16_t port = 5005; port <= 5012; ++port) f.silent.insert(port);
  f.start();
  REQUIRE(f.run_until([&] { return f.mapper->map_calls() == 13; }));
  f.run_for(1s);
  REQUIRE(f.mapper->map_calls() == 13);
  REQUIRE(f.mapper->table.size() == 13);
  CHECK(f.stop_and_release());
  CHECK(f.mapper->table.empty());
  CHECK(f.mapper->unmap_calls == 13);
  CHECK_FALSE(std::filesystem::exists(f.state.file));
}

TEST_CASE("a release the gateway does not confirm does not claim success and keeps every mapping recorded",
          "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5009}}));
  f.silent = {5008, 5009};
  f.start();
  REQUIRE(f.run_until([&] { return f.mapper->map_calls() == 10; }));
  f.mapper->answers = false;
  CHECK_FALSE(f.stop_and_release());
  CHECK(f.mapper->table.size() == 10);
  CHECK(f.recorded().mappings.size() == 10);
  CHECK(f.unconfirmed_records() == 10);
}

TEST_CASE("killed mid-round: the next start deletes what the intent recorded and the plan no longer wants",
          "[supervisor]") {
  std::string left_file;
  std::map<std::pair<Transport, std::uint16_t>, std::uint16_t> left_table;
  {
    Fixture killed(ports_config({{Transport::udp, 5000, 5019}}));
    for (std::uint16_t port = 5012; port <= 5019; ++port) killed.silent.insert(port);
    killed.start();
    REQUIRE(killed.run_until([&] { return killed.mapper->map_calls() == 20; }));
    left_table = killed.mapper->table;
    REQUIRE(left_table.size() == 20);
    std::ifstream in(killed.state.file);
    left_file.assign(std::istreambuf_iterator<char>(in), {});
  }  // gone without a release, like SIGKILL
  REQUIRE_FALSE(left_file.empty());
  Fixture restarted(ports_config({{Transport::udp, 5000, 5004}}));
  restarted.earlier_table = left_table;
  std::ofstream(restarted.state.file) << left_file;
  REQUIRE(restarted.started());
  CHECK(restarted.mapper->table.size() == 5);
  CHECK(restarted.stop_and_release());
  CHECK(restarted.mapper->table.empty());
}

TEST_CASE("removals the gateway does not confirm stay recorded and are retried until it does", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5004}}));
  REQUIRE(f.started());
  f.mapper->answers = false;
  f.supervisor->reload(ports_config({{Transport::udp, 5000, 5001}}));
  REQUIRE(f.run_until([&] { return f.ready_calls == 2; }));
  f.run_for(100ms);
  CHECK(f.mapper->table.size() == 5);
  CHECK(f.recorded().mappings.size() == 5);
  CHECK(f.unconfirmed_records() == 3);
  // Tried again with backoff (5 s, 10 s, ... each ±25 %) while the gateway is silent.
  const auto calls = f.mapper->unmap_calls;
  f.run_for(30s);
  CHECK(f.mapper->unmap_calls >= calls + 3 * 2);
  CHECK(f.mapper->unmap_calls <= calls + 3 * 4);
  f.mapper->answers = true;
  REQUIRE(f.run_until([&] { return f.mapper->table.size() == 2; }, 60s));
  f.run_for(100ms);
  CHECK(f.recorded().mappings.size() == 2);
  CHECK(f.unconfirmed_records() == 0);
  CHECK(f.stop_and_release());
  CHECK(f.mapper->table.empty());
}

TEST_CASE("a removal is given up once its lease has ended: the gateway dropped it by itself", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5002}}));
  f.lease = 60s;
  REQUIRE(f.started());
  f.run_for(10s);
  f.mapper->answers = false;
  f.supervisor->reload(ports_config({{Transport::udp, 5000, 5000}}));
  REQUIRE(f.run_until([&] { return f.ready_calls == 2; }));
  f.run_for(100ms);
  CHECK(f.unconfirmed_records() == 2);
  f.run_for(60s);
  const auto calls = f.mapper->unmap_calls;
  f.run_for(10min);
  CHECK(f.mapper->unmap_calls == calls);
  CHECK(f.unconfirmed_records() == 0);
}

TEST_CASE("a mapping wanted again while its removal is pending is not deleted", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5001}}));
  REQUIRE(f.started());
  f.mapper->answers = false;
  f.supervisor->reload(ports_config({{Transport::udp, 5000, 5000}}));
  REQUIRE(f.run_until([&] { return f.ready_calls == 2; }));
  f.mapper->answers = true;
  f.supervisor->reload(ports_config({{Transport::udp, 5000, 5001}}));
  REQUIRE(f.run_until([&] { return f.ready_calls == 3 && f.summary()["active"] == 2; }));
  f.run_for(10min);
  CHECK(f.mapper->table.size() == 2);
  CHECK(f.unconfirmed_records() == 0);
}

TEST_CASE("where the gateway lists its table, natkeeper's unplanned mappings for this host are removed",
          "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5001}}));
  f.gateway_lists = true;
  // left by a run that recorded nothing (a lost or damaged state file)
  f.earlier_table = {{{Transport::udp, 7000}, 7000}, {{Transport::udp, 7001}, 7001}, {{Transport::tcp, 7002}, 7002},
                     {{Transport::udp, 5000}, 5000}};
  f.earlier_descriptions = {{{Transport::udp, 7000}, "natkeeper"},
                            {{Transport::udp, 7001}, "another program"},
                            {{Transport::tcp, 7002}, "natkeeper doorbell"},
                            {{Transport::udp, 5000}, "natkeeper"}};
  REQUIRE(f.started());
  f.run_for(1s);
  CHECK_FALSE(f.mapper->table.count({Transport::udp, 7000}));
  CHECK_FALSE(f.mapper->table.count({Transport::tcp, 7002}));
  CHECK(f.mapper->table.count({Transport::udp, 7001}));  // not natkeeper's
  CHECK(f.mapper->table.size() == 3);
  CHECK(f.summary()["active"] == 2);
}

TEST_CASE("a mapping the gateway drops without a word is back within a check pass", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5002}, {Transport::tcp, 6000, 6000}}));
  const auto per_request = GENERATE(std::size_t{1}, std::size_t{256});
  f.gateway_reads_back = per_request;
  REQUIRE(f.started());
  REQUIRE(f.mapper->table.size() == 4);
  f.run_for(10s);
  const auto dropped = f.time.now();
  const int maps_before = f.mapper->map_calls();
  f.mapper->table.erase({Transport::udp, 5001});
  REQUIRE(f.run_until([&] { return f.mapper->table.count({Transport::udp, 5001}) == 1; }, 3min));
  // One pass: every slice of the 4 mappings, then the round that asks again.
  const auto slices = (4 + policy::held_check_slice(per_request) - 1) / policy::held_check_slice(per_request);
  const auto pass = std::chrono::duration_cast<Timebase::Duration>(
      std::chrono::duration<double>((slices - 1) * policy::kHeldCheckSliceRequests / policy::kHeldCheckRequestsPerSecond));
  CHECK(f.since(dropped) <= policy::kHeldCheckPeriod + pass + 1s);
  CHECK(f.mapper->map_calls() == maps_before + 1);  // only the lost one is asked for
  CHECK(f.summary()["active"] == 4);
}

TEST_CASE("reading every mapping back costs the gateway at most the check's request rate", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5039}}));
  f.gateway_reads_back = 1;  // one lookup a mapping, as GetSpecificPortMappingEntry
  f.lease = std::chrono::hours(24);
  REQUIRE(f.started());
  f.run_for(10min);
  const double rate = f.mapper->read_back_requests / 600.0;
  INFO("read-back requests: " << f.mapper->read_back_requests);
  CHECK(rate <= policy::kHeldCheckRequestsPerSecond);
  // ... and every mapping is read back several times meanwhile.
  CHECK(f.mapper->read_back_requests >= 40 * 5);
}

TEST_CASE("a hint from the gateway's events brings a dropped mapping back long before the pass would",
          "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5002}, {Transport::tcp, 6000, 6000}}));
  const auto per_request = GENERATE(std::size_t{1}, std::size_t{256});
  f.gateway_reads_back = per_request;
  REQUIRE(f.started());
  REQUIRE(f.watches == 1);
  const auto back = [&] { return f.mapper->table.count({Transport::udp, 5001}) == 1; };
  // Before the first pass: read back at once.
  f.run_for(10s);
  auto dropped = f.time.now();
  f.mapper->table.erase({Transport::udp, 5001});
  f.hint();
  REQUIRE(f.run_until(back, 3min));
  CHECK(f.since(dropped) < 1s);
  // Right after a slice was read: the next one no sooner than the request rate allows.
  REQUIRE(f.run_until([&] { return f.mapper->read_back_requests > 1; }, 3min));
  dropped = f.time.now();
  f.mapper->table.erase({Transport::udp, 5001});
  f.hint();
  REQUIRE(f.run_until(back, 3min));
  CHECK(f.since(dropped) >= policy::held_check_spacing() - 1s);
  CHECK(f.since(dropped) <= policy::held_check_spacing() + 1s);
  CHECK(f.summary()["active"] == 4);
}

TEST_CASE("a flood of hints keeps reading back within the check's request rate", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5039}}));
  f.gateway_reads_back = 1;
  f.lease = std::chrono::hours(24);
  REQUIRE(f.started());
  // Forged events, ten a second, for ten minutes.
  for (int i = 0; i < 6000; ++i) {
    f.hint();
    f.run_for(100ms);
  }
  // The first hint has the first slice read at once; the rate is of the slices after it.
  const double rate = static_cast<double>(f.mapper->read_back_requests - policy::kHeldCheckSliceRequests) / 600.0;
  INFO("read-back requests: " << f.mapper->read_back_requests);
  CHECK(rate <= policy::kHeldCheckRequestsPerSecond);
  // ... and yet faster than without hints: no pause between passes.
  CHECK(rate >= 0.9 * policy::kHeldCheckRequestsPerSecond);
}

TEST_CASE("the gateway is watched from each connection until the next, and not after stop", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5000}}));
  REQUIRE(f.started());
  REQUIRE(f.watches == 1);
  auto first = f.watch;
  CHECK_FALSE(first.expired());
  f.mapper->answers = false;
  f.supervisor->refresh("test");
  REQUIRE(f.run_until([&] { return f.connects == 2; }, 1s));
  CHECK(first.expired());
  CHECK(f.watches == 2);
  CHECK_FALSE(f.watch.expired());
  f.supervisor->stop();
  REQUIRE(f.run_until([&] { return f.finished; }));
  CHECK(f.watch.expired());
}

TEST_CASE("a gateway that cannot look mappings up is not asked to", "[supervisor]") {
  Fixture f(ports_config({{Transport::udp, 5000, 5002}}));
  REQUIRE(f.started());
  f.mapper->table.erase({Transport::udp, 5001});
  f.run_for(5min);
  CHECK(f.mapper->read_back_requests == 0);
  CHECK(f.mapper->table.size() == 2);  // the lease's renewal brings it back, not a read-back
}
