#include <catch2/catch.hpp>

#include "result_printer.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <map>
#include <optional>
#include <set>

#include "agent/gateway/map_batch.hpp"
#include "mappers/errors.hpp"
#include "run_loop.hpp"
#include "virtual_time.hpp"

using namespace natkeeper;
using namespace std::chrono_literals;

namespace {

// Answers each port with a scripted UPnP code after yielding to the loop, so
// several requests are in flight at once.
class ScriptedMapper final : public Mapper {
 public:
  std::map<std::uint16_t, int> codes;  // port -> UPnP error (absent: success)
  std::map<std::uint16_t, std::uint16_t> moved;  // port -> external port granted instead
  std::vector<std::uint16_t> asked;
  std::vector<std::uint16_t> unmapped;
  std::size_t in_flight = 0, max_in_flight = 0;
  std::vector<std::size_t> in_flight_at_start;  // counting the request itself
  std::chrono::milliseconds latency{0};         // in `time`; else: one turn of the loop
  Timebase* time = nullptr;
  // Reading back: in batches when set, each external port granted held with
  // this lease unless listed in `not_held`.
  std::optional<Result<HeldLease>> read_back_as;
  std::set<std::uint16_t> not_held;
  std::vector<std::size_t> read_back_sizes;

  Method method() const override { return Method::natpmp; }
  asio::awaitable<Result<asio::ip::address>> external_address() override {
    co_return asio::ip::make_address("203.0.113.1");
  }
  asio::awaitable<Result<Mapping>> map(MapRequest request) override {
    asked.push_back(request.internal_port);
    max_in_flight = std::max(max_in_flight, ++in_flight);
    in_flight_at_start.push_back(in_flight);
    if (latency > 0ms) {
      co_await time->sleep_until(time->now() + latency);
    } else {
      co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    }
    --in_flight;
    if (auto code = codes.find(request.internal_port); code != codes.end())
      co_return make_upnp_error(code->second);
    const auto granted = moved.count(request.internal_port) ? moved[request.internal_port] : request.internal_port;
    co_return Mapping{std::move(request), asio::ip::make_address("203.0.113.1"), granted, 3600s, false};
  }
  asio::awaitable<std::error_code> unmap(Mapping mapping) override {
    unmapped.push_back(mapping.external_port);
    asked.push_back(mapping.external_port);
    co_return std::error_code{};
  }
  bool reads_back_later() const override { return read_back_as.has_value(); }
  asio::awaitable<Result<std::vector<std::optional<HeldLease>>>> read_back(std::vector<Mapping> mappings) override {
    read_back_sizes.push_back(mappings.size());
    if (!*read_back_as) co_return read_back_as->error();
    std::vector<std::optional<HeldLease>> held;
    for (const auto& mapping : mappings)
      held.push_back(not_held.count(mapping.external_port) ? std::nullopt : std::optional(**read_back_as));
    co_return held;
  }
};

std::vector<MapRequest> ports(std::uint16_t first, std::uint16_t last) {
  std::vector<MapRequest> requests;
  for (unsigned p = first; p <= last; ++p)
    requests.push_back({Transport::udp, static_cast<std::uint16_t>(p), static_cast<std::uint16_t>(p), 3600s, "t", {}, {}});
  return requests;
}

// A fixed window of `parallel`.
BatchPolicy batch(std::size_t parallel, bool allow_other_external_port = false) {
  BatchPolicy policy;
  policy.window.maximum = parallel;
  policy.allow_other_external_port = allow_other_external_port;
  return policy;
}

}  // namespace

TEST_CASE("all requests are mapped in order, with a bounded number in flight") {
  boost::asio::io_context loop;
  ScriptedMapper mapper;
  mapper.codes = {{7, 718}};
  const auto outcomes = run_loop(loop, map_all(mapper, ports(1, 20), batch(4)));
  REQUIRE(outcomes.size() == 20);
  CHECK(mapper.max_in_flight == 4);
  CHECK(mapper.asked.front() == 1);
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    CHECK(outcomes[i].request.internal_port == i + 1);
    CHECK(outcomes[i].mapping.has_value() == (i + 1 != 7));
  }
  CHECK(outcomes[6].error == MapFailure::port_conflict);
}

TEST_CASE("a full table stops the batch: the rest are not attempted") {
  boost::asio::io_context loop;
  ScriptedMapper mapper;
  mapper.codes = {{10, 728}, {11, 728}, {12, 728}, {13, 728}};
  for (unsigned p = 14; p <= 100; ++p) mapper.codes[static_cast<std::uint16_t>(p)] = 728;
  const auto outcomes = run_loop(loop, map_all(mapper, ports(1, 100), batch(2)));
  // Only requests already in flight when the first 728 arrived were sent.
  CHECK(mapper.asked.size() <= 11);
  for (std::size_t i = 0; i < 9; ++i) CHECK(outcomes[i].mapping);
  CHECK(outcomes[9].error == make_upnp_error(728));
  CHECK(outcomes[99].error == Errc::table_full_skipped);
  CHECK(outcomes[99].error == MapFailure::table_full);
  CHECK(table_full_summary(outcomes) == "mapped 9 of 100: gateway table full");
  CHECK_FALSE(table_full_summary({outcomes.begin(), outcomes.begin() + 9}));
}

TEST_CASE("progress is reported once per request, table-full skips included") {
  boost::asio::io_context loop;
  ScriptedMapper mapper;
  mapper.codes = {{3, 728}};
  std::vector<std::size_t> reported;
  auto policy = batch(2);
  policy.on_progress = [&](std::size_t done, std::size_t total) {
    CHECK(total == 10);
    reported.push_back(done);
  };
  run_loop(loop, map_all(mapper, ports(1, 10), policy));
  REQUIRE(reported.size() == 10);
  for (std::size_t i = 0; i < reported.size(); ++i) CHECK(reported[i] == i + 1);
}

TEST_CASE("a gateway that answers late gets fewer requests in flight") {
  testing::VirtualTime time;
  boost::asio::io_context loop;
  ScriptedMapper mapper;
  mapper.latency = 5ms;
  mapper.time = &time;
  const BatchPolicy policy{{8, 1ms}, false, {}, &time};
  bool done = false;
  boost::asio::co_spawn(loop, map_all(mapper, ports(1, 40), policy), [&](std::exception_ptr error, auto) {
    if (error) std::rethrow_exception(error);
    done = true;
  });
  REQUIRE(time.run_until(loop, [&] { return done; }, 10s));
  REQUIRE(mapper.in_flight_at_start.size() == 40);
  CHECK(mapper.in_flight_at_start[7] == 8);  // the first window went out whole
  for (std::size_t i = 30; i < 40; ++i) CHECK(mapper.in_flight_at_start[i] <= 2);
}

TEST_CASE("an empty batch and a batch smaller than the window") {
  boost::asio::io_context loop;
  ScriptedMapper mapper;
  CHECK(run_loop(loop, map_all(mapper, {}, batch(4))).empty());
  CHECK(run_loop(loop, map_all(mapper, ports(1, 2), batch(4))).size() == 2);
  CHECK(mapper.max_in_flight == 2);
}

TEST_CASE("unmap_all removes each mapping once") {
  boost::asio::io_context loop;
  ScriptedMapper mapper;
  std::vector<Mapping> mappings;
  for (auto& request : ports(1, 9)) mappings.push_back({request, {}, request.internal_port, 3600s, false});
  const auto errors = run_loop(loop, unmap_all(mapper, mappings, 4));
  CHECK(errors.size() == 9);
  std::sort(mapper.asked.begin(), mapper.asked.end());
  CHECK(mapper.asked == std::vector<std::uint16_t>{1, 2, 3, 4, 5, 6, 7, 8, 9});
}

namespace {

// Loses its state (as an epoch regression shows) while the first batch runs.
class ForgetfulMapper final : public Mapper {
 public:
  int lose_every = 5;  // requests
  int losses_left = 1;
  int requests = 0;
  bool lost = false;

  Method method() const override { return Method::pcp; }
  asio::awaitable<Result<asio::ip::address>> external_address() override {
    co_return asio::ip::make_address("203.0.113.1");
  }
  asio::awaitable<Result<Mapping>> map(MapRequest request) override {
    if (++requests % lose_every == 0 && losses_left > 0) {
      --losses_left;
      lost = true;
    }
    const auto port = request.internal_port;
    co_return Mapping{std::move(request), asio::ip::make_address("203.0.113.1"), port, 3600s, false};
  }
  asio::awaitable<std::error_code> unmap(Mapping) override { co_return std::error_code{}; }
  bool take_gateway_lost_state() override { return std::exchange(lost, false); }
};

}  // namespace

TEST_CASE("a mapper that reads back in batches reads back once what the batch granted") {
  boost::asio::io_context loop;
  ScriptedMapper mapper;
  mapper.codes = {{3, 718}};
  SECTION("a grant the gateway does not hold fails; the leases held are the granted ones") {
    mapper.read_back_as = Result<HeldLease>(HeldLease{600s, false});
    mapper.not_held = {2};
    const auto outcomes = run_loop(loop, map_all(mapper, ports(1, 4), batch(4)));
    CHECK(mapper.read_back_sizes == std::vector<std::size_t>{3});
    CHECK_FALSE(outcomes[1].mapping);
    CHECK(outcomes[1].error == Errc::added_but_not_held);
    REQUIRE(outcomes[0].mapping);
    CHECK(outcomes[0].mapping->lifetime == 600s);
    CHECK(outcomes[2].error == MapFailure::port_conflict);
    CHECK(outcomes[3].mapping);
  }
  SECTION("a gateway that cannot show its table leaves its word standing") {
    mapper.read_back_as = Result<HeldLease>(make_upnp_error(501));
    const auto outcomes = run_loop(loop, map_all(mapper, ports(1, 4), batch(4)));
    CHECK(mapper.read_back_sizes.size() == 1);
    REQUIRE(outcomes[0].mapping);
    CHECK(outcomes[0].mapping->lifetime == 3600s);
    CHECK(outcomes[1].mapping);
  }
  SECTION("a mapper that reads back each mapping itself is not asked") {
    const auto outcomes = run_loop(loop, map_all(mapper, ports(1, 4), batch(4)));
    CHECK(mapper.read_back_sizes.empty());
    CHECK(outcomes[0].mapping);
  }
}

TEST_CASE("a gateway that lost its state during the batch gets every mapping again") {
  boost::asio::io_context loop;
  ForgetfulMapper mapper;
  const auto outcomes = run_loop(loop, map_all_until_stable(mapper, ports(1, 10), batch(4)));
  CHECK(outcomes.size() == 10);
  CHECK(mapper.requests == 20);
}

TEST_CASE("a gateway that keeps losing its state gets a bounded number of rounds") {
  boost::asio::io_context loop;
  ForgetfulMapper mapper;
  mapper.losses_left = 100;
  mapper.lose_every = 10;  // once in every round
  const auto outcomes = run_loop(loop, map_all_until_stable(mapper, ports(1, 10), batch(4), 3));
  CHECK(outcomes.size() == 10);
  CHECK(mapper.requests == 30);
}

TEST_CASE("a loss noticed before the batch does not repeat it") {
  boost::asio::io_context loop;
  ForgetfulMapper mapper;
  mapper.lost = true;
  mapper.losses_left = 0;
  run_loop(loop, map_all_until_stable(mapper, ports(1, 10), batch(4)));
  CHECK(mapper.requests == 10);
}

TEST_CASE("a mapping granted on another external port is undone unless allowed") {
  boost::asio::io_context loop;
  ScriptedMapper mapper;
  mapper.moved = {{2, 40000}};
  SECTION("not allowed: removed again, reported as a conflict") {
    const auto outcomes = run_loop(loop, map_all(mapper, ports(1, 3), batch(4, false)));
    CHECK_FALSE(outcomes[1].mapping);
    CHECK(outcomes[1].error == Errc::external_port_moved);
    CHECK(outcomes[1].error == MapFailure::port_conflict);
    CHECK(mapper.unmapped == std::vector<std::uint16_t>{40000});
    CHECK(outcomes[0].mapping);
    CHECK(outcomes[2].mapping);
  }
  SECTION("allowed: kept") {
    const auto outcomes = run_loop(loop, map_all(mapper, ports(1, 3), batch(4, true)));
    REQUIRE(outcomes[1].mapping);
    CHECK(outcomes[1].mapping->external_port == 40000);
    CHECK(mapper.unmapped.empty());
  }
}

namespace {

// A gateway that, like PCP servers, grants the next free external port when
// the wanted one is taken, deciding in the order requests arrive.
class NextFreePortMapper final : public Mapper {
 public:
  std::set<std::uint16_t> taken;
  Method method() const override { return Method::pcp; }
  asio::awaitable<Result<asio::ip::address>> external_address() override {
    co_return asio::ip::make_address("203.0.113.1");
  }
  asio::awaitable<Result<Mapping>> map(MapRequest request) override {
    auto port = request.wanted_external_port;
    while (taken.count(port)) ++port;
    taken.insert(port);
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    co_return Mapping{std::move(request), asio::ip::make_address("203.0.113.1"), port, 3600s, false};
  }
  asio::awaitable<std::error_code> unmap(Mapping mapping) override {
    taken.erase(mapping.external_port);
    co_return std::error_code{};
  }
};

}  // namespace

TEST_CASE("a request pushed off its port by another of the batch, itself pushed off, gets its port after all") {
  boost::asio::io_context loop;
  NextFreePortMapper mapper;
  mapper.taken = {1};  // another client's
  // In flight together: 1 gets 2, so 2 gets 3, so 3 gets 4; all are removed again.
  const auto outcomes = run_loop(loop, map_all(mapper, ports(1, 3), batch(4, false)));
  CHECK(outcomes[0].error == Errc::external_port_moved);  // port 1 really is another client's
  REQUIRE(outcomes[1].mapping);
  CHECK(outcomes[1].mapping->external_port == 2);
  REQUIRE(outcomes[2].mapping);
  CHECK(outcomes[2].mapping->external_port == 3);
  CHECK(mapper.taken == std::set<std::uint16_t>{1, 2, 3});
}

namespace {

// Like miniupnpd: a client's request for a taken port lands on the next port,
// and overwrites the client's own mapping there. With `read_back` (UPnP) each
// mapping made is read back after a turn of the loop, in which another
// request may land on its port and overwrite it; without, the turn comes first.
class OverwritingMapper final : public Mapper {
 public:
  explicit OverwritingMapper(bool read_back) : read_back_(read_back) {}
  std::map<std::uint16_t, std::uint16_t> table{{1, 100}};  // external -> internal; port 1 is another client's
  Method method() const override { return Method::upnp; }
  asio::awaitable<Result<asio::ip::address>> external_address() override {
    co_return asio::ip::make_address("203.0.113.1");
  }
  asio::awaitable<Result<Mapping>> map(MapRequest request) override {
    if (!read_back_) co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    auto port = request.wanted_external_port;
    if (table.count(port) && table[port] == 100) ++port;
    table[port] = request.internal_port;
    if (read_back_) {
      co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
      if (table[port] != request.internal_port) co_return make_error_code(Errc::added_but_not_held);
    }
    co_return Mapping{std::move(request), asio::ip::make_address("203.0.113.1"), port, 3600s, false};
  }
  asio::awaitable<std::error_code> unmap(Mapping mapping) override {
    if (table[mapping.external_port] == mapping.request.internal_port) table.erase(mapping.external_port);
    co_return std::error_code{};
  }

 private:
  bool read_back_;
};

}  // namespace

TEST_CASE("a mapping overwritten by a moved one of the batch is asked again once that one is removed") {
  boost::asio::io_context loop;
  OverwritingMapper mapper(/*read_back=*/false);
  // Port 2 is granted first; then 1 moves onto 2, overwriting it, and is removed.
  auto requests = ports(1, 2);
  std::swap(requests[0], requests[1]);
  const auto outcomes = run_loop(loop, map_all(mapper, requests, batch(1, false)));
  CHECK(outcomes[1].error == Errc::external_port_moved);
  REQUIRE(outcomes[0].mapping);
  CHECK(mapper.table == std::map<std::uint16_t, std::uint16_t>{{1, 100}, {2, 2}});
}

TEST_CASE("a mapping a moved one of the batch overwrote before it was read back is asked again") {
  boost::asio::io_context loop;
  OverwritingMapper mapper(/*read_back=*/true);
  // 2 is made, then 1 moves onto 2 before 2 is read back; 1 is removed.
  auto requests = ports(1, 2);
  std::swap(requests[0], requests[1]);
  const auto outcomes = run_loop(loop, map_all(mapper, requests, batch(2, false)));
  CHECK(outcomes[1].error == Errc::external_port_moved);
  REQUIRE(outcomes[0].mapping);
  CHECK(outcomes[0].mapping->external_port == 2);
  CHECK(mapper.table == std::map<std::uint16_t, std::uint16_t>{{1, 100}, {2, 2}});
}

TEST_CASE("each mapping kept is handed on as soon as it is granted, with its request's index") {
  boost::asio::io_context loop;
  ScriptedMapper mapper;
  mapper.codes = {{2, 718}};
  mapper.moved = {{3, 40000}};  // undone: not handed on
  auto policy = batch(2);
  std::vector<std::pair<std::size_t, std::uint16_t>> handed;
  std::vector<std::size_t> done_when_handed;
  std::size_t done = 0;
  policy.on_progress = [&](std::size_t d, std::size_t) { done = d; };
  policy.on_granted = [&](std::size_t index, const Mapping& mapping) {
    handed.emplace_back(index, mapping.external_port);
    done_when_handed.push_back(done);
  };
  run_loop(loop, map_all(mapper, ports(1, 5), policy));
  CHECK(handed == std::vector<std::pair<std::size_t, std::uint16_t>>{{0, 1}, {3, 4}, {4, 5}});
  CHECK(done_when_handed.front() == 0);  // before the batch is done: verification need not wait for it
}
