// NatpmpMapper's policy against a scripted gateway, in virtual time: no
// sockets, no sleeps. The libnatpmp glue under it has its own tests
// (test_natpmp_libnatpmp.cpp).
#include <catch2/catch.hpp>

#include "result_printer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <vector>

#include "mappers/errors.hpp"
#include "mappers/lease_policy.hpp"
#include "mappers/natpmp/natpmp_codec.hpp"
#include "mappers/natpmp/natpmp_channel.hpp"
#include "mappers/natpmp/natpmp_mapper.hpp"
#include "natpmp_replies.hpp"
#include "virtual_time.hpp"

using namespace natkeeper;
using namespace natkeeper::natpmp;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

using namespace natpmp_replies;

const auto kGateway = asio::ip::make_address_v4("10.77.0.1");
const auto kT0 = TimePoint{} + 1000s;
// How long every scripted reply takes to come back.
constexpr auto kRoundTrip = 2ms;

// A request as the scripted gateway received it.
struct Received {
  Request request;
  Bytes datagram;  // as encoded on the wire
  int channel = 0;  // which channel (socket) sent it
  TimePoint at;
  bool is_address() const { return request.opcode == Opcode::public_address; }
  bool is_mapping() const { return !is_address(); }
};

// What the gateway answers: a success reply echoing the request.
Bytes answer(const Received& r, std::uint32_t epoch = 100, std::uint16_t result = 0) {
  const Request& q = r.request;
  if (r.is_address()) return address_reply(result, epoch);
  return mapping_reply(static_cast<std::uint8_t>(kReplyBit + static_cast<std::uint8_t>(q.opcode)), result, epoch,
                       q.internal_port, q.lifetime == 0 ? 0 : q.suggested_external_port, q.lifetime);
}

struct Send {
  Bytes bytes;
  enum Source { server, other_port, other_address, unreachable } from = server;
};

class ScriptedGateway final : public ChannelFactory {
 public:
  // Answers each request with what the script returns (given the request and
  // how many came before it), kRoundTrip later; the default answers every
  // request with success.
  std::function<std::vector<Send>(const Received&, std::size_t)> script = [](const Received& r, std::size_t) {
    return std::vector<Send>{{answer(r)}};
  };
  std::vector<Received> requests;
  int channels_open = 0;
  // A LAN host spraying one datagram from the gateway's address at every
  // channel each `every`, from `from` (or the channel's opening) to just
  // before `until`.
  struct Flood {
    Bytes bytes;
    TimePoint from;
    TimePoint::duration every;
    TimePoint until;
  };
  std::optional<Flood> flood;
  // The time the mapper takes for each datagram it takes off a queue (a slow
  // build under a flood).
  TimePoint::duration cost_per_datagram{};

  explicit ScriptedGateway(testing::VirtualTime& time) : time_(time) {}

  Result<std::unique_ptr<Channel>> open() override {
    return std::unique_ptr<Channel>(std::make_unique<ScriptedChannel>(*this, ++channels_opened_));
  }

  std::size_t count(bool (Received::*kind)() const) const {
    return static_cast<std::size_t>(std::count_if(requests.begin(), requests.end(),
                                                  [kind](const Received& r) { return (r.*kind)(); }));
  }
  std::vector<Received> mappings() const {
    std::vector<Received> out;
    std::copy_if(requests.begin(), requests.end(), std::back_inserter(out),
                 [](const Received& r) { return r.is_mapping(); });
    return out;
  }

 private:
  struct Arrival {
    TimePoint at;
    Send send;
  };

  class ScriptedChannel final : public Channel {
   public:
    ScriptedChannel(ScriptedGateway& gateway, int id) : gateway_(gateway), id_(id), opened_(gateway.time_.now()) {
      ++gateway_.channels_open;
    }
    ~ScriptedChannel() override { --gateway_.channels_open; }

    void begin_request() override { request_began_ = gateway_.time_.now(); }

    std::error_code send(const Request& request) override {
      auto& time = gateway_.time_;
      const Received received{request, encode_request(request), id_, time.now()};
      gateway_.requests.push_back(received);
      for (auto& send : gateway_.script(received, gateway_.requests.size() - 1))
        queue_.push_back({time.now() + kRoundTrip, std::move(send)});
      std::stable_sort(queue_.begin(), queue_.end(), [](const Arrival& a, const Arrival& b) { return a.at < b.at; });
      return {};
    }

    asio::awaitable<Result<std::optional<Datagram>>> peek(TimePoint until) override {
      auto& time = gateway_.time_;
      for (;;) {
        const auto head = next();
        if (head && head->at <= time.now()) {
          if (head->send.from == Send::unreachable) {
            take();
            co_return make_error_code(Errc::no_gateway_answer);
          }
          Datagram datagram;
          datagram.bytes = head->send.bytes;
          datagram.source =
              head->send.from == Send::other_address ? asio::ip::address_v4(kGateway.to_uint() + 1) : kGateway;
          datagram.source_port = head->send.from == Send::other_port ? 40001 : kServerPort;
          // Queued when the request began: what arrives at that instant comes
          // first, as time stands still while the mapper works.
          datagram.stale = head->at <= request_began_;
          co_return datagram;
        }
        if (time.now() >= until) co_return std::nullopt;
        const auto wake = head ? std::min(until, head->at) : until;
        try {
          co_await time.sleep_until(wake);
        } catch (const boost::system::system_error&) {
          co_return make_error_code(std::errc::operation_canceled);
        }
      }
    }

    bool accept() override {
      take();
      return true;
    }
    void discard() override { take(); }

   private:
    // Does the flood's next datagram arrive before the script's next one?
    bool flood_first() {
      const auto& spray = gateway_.flood;
      if (!spray) return false;
      if (!next_flood_) next_flood_ = std::max(spray->from, opened_);
      return *next_flood_ < spray->until && (queue_.empty() || *next_flood_ < queue_.front().at);
    }
    // The datagram to arrive next, or already at the head of the queue.
    std::optional<Arrival> next() {
      if (flood_first()) return Arrival{*next_flood_, {gateway_.flood->bytes}};
      if (queue_.empty()) return std::nullopt;
      return queue_.front();
    }
    void take() {
      if (flood_first())
        *next_flood_ += gateway_.flood->every;
      else
        queue_.pop_front();
      gateway_.time_.pass(gateway_.cost_per_datagram);
    }

    ScriptedGateway& gateway_;
    int id_;
    TimePoint opened_;
    TimePoint request_began_;
    std::optional<TimePoint> next_flood_;
    std::deque<Arrival> queue_;
  };

  testing::VirtualTime& time_;
  int channels_opened_ = 0;
};

struct Fixture {
  // Time and gateway outlive the loop, and with it any coroutine still suspended.
  testing::VirtualTime time{kT0};
  std::shared_ptr<ScriptedGateway> gateway_ptr = std::make_shared<ScriptedGateway>(time);
  ScriptedGateway& gateway = *gateway_ptr;
  asio::io_context loop;
  NatpmpMapperOptions options;
  std::optional<NatpmpMapper> mapper_;

  NatpmpMapper& mapper() {
    if (!mapper_) mapper_.emplace(loop.get_executor(), kGateway, options, gateway_ptr, time);
    return *mapper_;
  }

  // Runs one coroutine until it ends, moving virtual time on whenever nothing
  // else can run; a coroutine that waits for nothing but never ends fails.
  template <class T>
  T run(asio::awaitable<T> task) {
    std::optional<T> result;
    std::exception_ptr failure;
    bool done = false;
    asio::co_spawn(loop, std::move(task), [&](std::exception_ptr e, T value) {
      done = true;
      failure = e;
      if (!e) result.emplace(std::move(value));
    });
    for (;;) {
      loop.restart();
      loop.poll();
      if (done) break;
      if (!time.advance()) FAIL("the operation waits for something that never comes");
    }
    if (failure) std::rethrow_exception(failure);
    return std::move(*result);
  }
};

MapRequest request(std::uint16_t port, Transport proto = Transport::udp, std::chrono::seconds lifetime = 3600s) {
  return {proto, port, port, lifetime, "natkeeper test", {}, {}};
}

}  // namespace

TEST_CASE("natpmp mapper: address once, then a mapping with the wanted port and lifetime", "[natpmp]") {
  Fixture f;
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
  CHECK(f.gateway.requests[0].datagram == Bytes{0, 0});
  CHECK(f.gateway.requests[1].request == Request{Opcode::map_udp, 7076, 7076, 3600});
  CHECK(f.gateway.requests[2].request == Request{Opcode::map_tcp, 15063, 15063, 7200});
  CHECK(m.dropped() == 0);
  CHECK_FALSE(m.take_gateway_lost_state());
  CHECK(m.last_epoch() == 100u);

  auto address = f.run(m.external_address());
  REQUIRE(address);
  CHECK(address->to_string() == "203.0.113.1");
  CHECK(f.gateway.requests.size() == 3);  // cached
}

TEST_CASE("natpmp mapper: malformed replies are dropped and counted, the good one that follows is used",
          "[natpmp]") {
  Fixture f;
  f.gateway.script = [](const Received& r, std::size_t) {
    std::vector<Send> sends;
    if (r.is_address()) {
      auto long_reply = answer(r);
      long_reply.push_back(0);
      sends.push_back({long_reply});  // 13 bytes
    } else {
      auto short_reply = answer(r);
      short_reply.pop_back();
      sends.push_back({short_reply});  // 15 bytes
      auto version = answer(r);
      version[0] = 1;
      sends.push_back({version});                                        // version 1
      sends.push_back({mapping_reply(129, 0, 100, 7077, 7077, 3600)});   // another internal port
      sends.push_back({mapping_reply(130, 0, 100, 7076, 40000, 3600)});  // TCP reply to a UDP request
      sends.push_back({Bytes{}});                                        // empty datagram
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
  CHECK(f.time.now() == kT0 + 2 * kRoundTrip);
}

TEST_CASE("natpmp mapper: replies from another port or address are dropped, never used", "[natpmp]") {
  // Over libnatpmp the kernel drops them before they reach the mapper (see
  // test_natpmp_libnatpmp.cpp); this is the check behind that.
  Fixture f;
  f.gateway.script = [](const Received& r, std::size_t) {
    if (r.is_address()) {
      return std::vector<Send>{{address_reply(0, 100, 0x01010101), Send::other_port},
                               {address_reply(0, 100, 0x02020202), Send::other_address},
                               {answer(r)}};
    }
    return std::vector<Send>{{mapping_reply(129, 0, 100, r.request.internal_port, 40000, 3600), Send::other_port},
                             {mapping_reply(129, 0, 100, r.request.internal_port, 40001, 3600), Send::other_address},
                             {answer(r)}};
  };
  auto& m = f.mapper();
  auto mapping = f.run(m.map(request(7076)));
  REQUIRE(mapping);
  CHECK(mapping->external_ip.to_string() == "203.0.113.1");
  CHECK(mapping->external_port == 7076);
  CHECK(m.dropped() == 4);
}

TEST_CASE("natpmp mapper: result codes 2 and 4 are not-authorized and a full table", "[natpmp]") {
  for (const std::uint16_t code : {2, 4}) {
    Fixture f;
    f.gateway.script = [code](const Received& r, std::size_t) {
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

TEST_CASE("natpmp mapper: a failed public address request fails the mapping before it is asked", "[natpmp]") {
  Fixture f;
  f.gateway.script = [](const Received& r, std::size_t) { return std::vector<Send>{{answer(r, 100, 3)}}; };
  auto& m = f.mapper();
  auto mapping = f.run(m.map(request(7076)));
  REQUIRE_FALSE(mapping);
  CHECK(mapping.error() == make_natpmp_error(3));
  CHECK(f.gateway.mappings().empty());
}

TEST_CASE("natpmp mapper: an unanswered request is retransmitted after 250 ms", "[natpmp]") {
  Fixture f;
  f.gateway.script = [](const Received& r, std::size_t index) {
    if (index == 1) return std::vector<Send>{};  // the first mapping request is lost
    return std::vector<Send>{{answer(r)}};
  };
  auto& m = f.mapper();
  auto mapping = f.run(m.map(request(7076)));
  REQUIRE(mapping);
  CHECK(mapping->external_port == 7076);
  const auto sent = f.gateway.mappings();
  REQUIRE(sent.size() == 2);
  CHECK(sent[0].datagram == sent[1].datagram);
  CHECK(sent[0].channel == sent[1].channel);  // the same channel retransmitted
  CHECK(sent[1].at - sent[0].at == 250ms);
}

TEST_CASE("natpmp mapper: a silent gateway is asked nine times on RFC 6886's schedule, then given up", "[natpmp]") {
  Fixture f;
  f.gateway.script = [](const Received&, std::size_t) { return std::vector<Send>{}; };
  auto& m = f.mapper();  // max_request_time 130 s: the schedule ends first
  auto address = f.run(m.external_address());
  REQUIRE_FALSE(address);
  CHECK(address.error() == Errc::no_gateway_answer);
  CHECK(f.time.now() == kT0 + 127750ms);
  std::vector<TimePoint::duration> sent;
  for (const auto& r : f.gateway.requests) sent.push_back(r.at - kT0);
  const std::vector<TimePoint::duration> schedule{0ms, 250ms, 750ms, 1750ms, 3750ms, 7750ms, 15750ms, 31750ms,
                                                  63750ms};
  CHECK(sent == schedule);
  CHECK(m.open_sessions() == 0);  // the unanswered channel is closed
}

TEST_CASE("natpmp mapper: an epoch that runs backwards reports lost gateway state once", "[natpmp]") {
  Fixture f;
  std::uint32_t epoch = 5000;
  f.gateway.script = [&epoch](const Received& r, std::size_t) { return std::vector<Send>{{answer(r, epoch)}}; };
  auto& m = f.mapper();
  REQUIRE(f.run(m.map(request(7076))));
  CHECK_FALSE(m.take_gateway_lost_state());
  REQUIRE(f.run(m.map(request(7077))));  // same epoch, same second: no loss
  CHECK_FALSE(m.take_gateway_lost_state());
  CHECK(f.gateway.count(&Received::is_address) == 1);

  epoch = 12;  // the gateway restarted
  REQUIRE(f.run(m.map(request(7078))));
  CHECK(m.take_gateway_lost_state());
  CHECK_FALSE(m.take_gateway_lost_state());
  CHECK(m.gateway_lost_state_count() == 1);
  CHECK(m.last_epoch() == 12u);
  // The address is asked again after a restart.
  REQUIRE(f.run(m.external_address()));
  CHECK(f.gateway.count(&Received::is_address) == 2);
  CHECK_FALSE(m.take_gateway_lost_state());
}

TEST_CASE("natpmp mapper: an epoch that keeps pace with the clock is no loss, one that lags is", "[natpmp]") {
  Fixture f;
  std::uint32_t epoch = 5000;
  f.gateway.script = [&epoch](const Received& r, std::size_t) { return std::vector<Send>{{answer(r, epoch)}}; };
  auto& m = f.mapper();
  REQUIRE(f.run(m.map(request(7076))));
  auto later = [&](std::chrono::seconds wait) -> asio::awaitable<Result<Mapping>> {
    co_await f.time.sleep_until(f.time.now() + wait);
    co_return co_await m.map(request(7077));
  };
  epoch = 5600;  // ten minutes on, both sides
  REQUIRE(f.run(later(600s)));
  CHECK_FALSE(m.take_gateway_lost_state());
  epoch = 5700;  // another ten minutes here, but under two there: a restart in between
  REQUIRE(f.run(later(600s)));
  CHECK(m.take_gateway_lost_state());
}

TEST_CASE("natpmp mapper: unmap asks for lifetime 0 and suggested port 0", "[natpmp]") {
  Fixture f;
  auto& m = f.mapper();
  const Mapping mapping{request(15063, Transport::tcp), asio::ip::make_address("203.0.113.1"), 15063, 3600s, false};
  SECTION("success") {
    CHECK_FALSE(f.run(m.unmap(mapping)));
    REQUIRE(f.gateway.requests.size() == 1);
    CHECK(f.gateway.requests[0].request == Request{Opcode::map_tcp, 15063, 0, 0});
  }
  SECTION("a stale creation reply for the same port is not taken for the deletion's") {
    f.gateway.script = [](const Received& r, std::size_t) {
      return std::vector<Send>{{mapping_reply(130, 0, 100, r.request.internal_port, 15063, 3600)}, {answer(r)}};
    };
    CHECK_FALSE(f.run(m.unmap(mapping)));
    CHECK(m.dropped() == 1);
  }
  SECTION("a refusal is reported") {
    f.gateway.script = [](const Received& r, std::size_t) { return std::vector<Send>{{answer(r, 100, 2)}}; };
    CHECK(f.run(m.unmap(mapping)) == MapFailure::not_authorized);
  }
}

TEST_CASE("natpmp mapper: a late duplicate reply is not taken for the next request", "[natpmp]") {
  Fixture f;
  f.options.max_parallel = 1;  // both requests on the same channel
  f.gateway.script = [](const Received& r, std::size_t index) {
    if (r.is_address()) return std::vector<Send>{{answer(r)}};
    if (index == 1) return std::vector<Send>{{answer(r)}, {answer(r)}};  // answered twice
    return std::vector<Send>{{mapping_reply(129, 0, 100, r.request.internal_port, 50000, 3600)}};
  };
  auto& m = f.mapper();
  auto first = f.run(m.map(request(7076)));
  REQUIRE(first);
  CHECK(first->external_port == 7076);
  auto second = f.run(m.map(request(7076)));
  REQUIRE(second);
  CHECK(second->external_port == 50000);
  CHECK(m.dropped() == 1);
  const auto sent = f.gateway.mappings();
  REQUIRE(sent.size() == 2);
  CHECK(sent[0].channel == sent[1].channel);
}

TEST_CASE("natpmp mapper: concurrent maps share a bounded pool of channels, first come first served",
          "[natpmp]") {
  Fixture f;
  f.options.max_parallel = 3;
  auto& m = f.mapper();
  static constexpr int kCount = 7;
  std::vector<Result<Mapping>> results;
  std::size_t most_open = 0;
  auto all = [&]() -> asio::awaitable<bool> {
    auto executor = co_await asio::this_coro::executor;
    int done = 0;
    asio::steady_timer finished(executor, TimePoint::max());
    for (int i = 0; i < kCount; ++i) {
      auto one = [&, i]() -> asio::awaitable<void> {
        auto mapping = co_await m.map(request(static_cast<std::uint16_t>(20000 + i)));
        most_open = std::max<std::size_t>(most_open, static_cast<std::size_t>(f.gateway.channels_open));
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
  std::vector<std::uint16_t> order;
  for (const auto& r : results) {
    REQUIRE(r);
    CHECK(r->external_port == r->request.internal_port);
    order.push_back(r->external_port);
  }
  CHECK(std::is_sorted(order.begin(), order.end()));  // answered in the order asked
  CHECK(std::set(order.begin(), order.end()).size() == kCount);
  CHECK(f.gateway.count(&Received::is_address) == 1);  // the batch shared one address request
  std::set<int> channels;
  for (const auto& r : f.gateway.requests) channels.insert(r.channel);
  CHECK(channels.size() == 3);
  CHECK(most_open == 3);
  CHECK(m.open_sessions() == 3);
  // Three in flight at a time: the seven mappings take three round trips after the address.
  CHECK(f.time.now() == kT0 + 4 * kRoundTrip);
}

TEST_CASE("natpmp mapper: a cancelled map ends at once and the mapper carries on", "[natpmp]") {
  Fixture f;
  f.gateway.script = [](const Received& r, std::size_t) {
    if (r.is_mapping() && r.request.internal_port == 7000) return std::vector<Send>{};  // never answered
    return std::vector<Send>{{answer(r)}};
  };
  auto& m = f.mapper();
  auto race = [&]() -> asio::awaitable<bool> {
    using namespace asio::experimental::awaitable_operators;
    auto outcome = co_await (m.map(request(7000)) || f.time.sleep_until(f.time.now() + 50ms));
    co_return outcome.index() == 1;
  };
  CHECK(f.run(race()));
  CHECK(f.time.now() == kT0 + 50ms);
  auto mapping = f.run(m.map(request(7001)));
  REQUIRE(mapping);
  CHECK(mapping->external_port == 7001);
  // The cancelled request's channel was closed, not reused: its reply could
  // still come. The new request went out on another one.
  const auto sent = f.gateway.mappings();
  REQUIRE(sent.size() == 2);
  CHECK(sent[0].channel != sent[1].channel);
  CHECK(m.open_sessions() == 1);
  CHECK(f.gateway.channels_open == 1);
}

TEST_CASE("natpmp mapper: an unreachable gateway port fails the request at once", "[natpmp]") {
  Fixture f;
  f.gateway.script = [](const Received&, std::size_t) { return std::vector<Send>{{{}, Send::unreachable}}; };
  auto& m = f.mapper();
  auto mapping = f.run(m.map(request(7076)));
  REQUIRE_FALSE(mapping);
  CHECK(mapping.error() == Errc::no_gateway_answer);
  CHECK(f.time.now() == kT0 + kRoundTrip);
  CHECK(f.gateway.requests.size() == 1);
  CHECK(m.open_sessions() == 0);
}

TEST_CASE("natpmp mapper: a silent gateway is bounded by max_request_time", "[natpmp]") {
  Fixture f;
  f.gateway.script = [](const Received&, std::size_t) { return std::vector<Send>{}; };
  f.options.max_request_time = 300ms;
  auto& m = f.mapper();
  auto address = f.run(m.external_address());
  REQUIRE_FALSE(address);
  CHECK(address.error() == Errc::timed_out);
  CHECK(f.time.now() == kT0 + 300ms);
  CHECK(f.gateway.requests.size() == 2);  // sent, and retransmitted at 250 ms
}

TEST_CASE("natpmp mapper: concurrent address requests share one, and a cancelled one is asked again",
          "[natpmp]") {
  Fixture f;
  auto& m = f.mapper();
  std::vector<Result<asio::ip::address>> shared;
  auto three = [&]() -> asio::awaitable<bool> {
    using namespace asio::experimental::awaitable_operators;
    auto one = [&]() -> asio::awaitable<void> { shared.push_back(co_await m.external_address()); };
    co_await (one() && one() && one());
    co_return true;
  };
  REQUIRE(f.run(three()));
  REQUIRE(shared.size() == 3);
  for (const auto& r : shared) {
    REQUIRE(r);
    CHECK(r->to_string() == "203.0.113.1");
  }
  CHECK(f.gateway.count(&Received::is_address) == 1);

  // The caller who asks gives up before the answer; the one waiting for it asks again.
  f.mapper_.reset();
  auto& fresh = f.mapper();
  std::optional<Result<asio::ip::address>> waited;
  auto both = [&]() -> asio::awaitable<bool> {
    using namespace asio::experimental::awaitable_operators;
    auto waiting = [&]() -> asio::awaitable<void> {
      co_await f.time.sleep_until(f.time.now() + kRoundTrip / 4);
      waited = co_await fresh.external_address();
    };
    auto asking = [&]() -> asio::awaitable<bool> {
      auto outcome = co_await (fresh.external_address() || f.time.sleep_until(f.time.now() + kRoundTrip / 2));
      co_return outcome.index() == 1;
    };
    co_return co_await (asking() && waiting());
  };
  const auto started = f.time.now();
  REQUIRE(f.run(both()));
  REQUIRE(waited);
  REQUIRE(*waited);
  CHECK((*waited)->to_string() == "203.0.113.1");
  CHECK(f.gateway.count(&Received::is_address) == 3);
  CHECK(f.time.now() == started + kRoundTrip / 2 + kRoundTrip);
  CHECK(fresh.open_sessions() == 1);  // the cancelled request's channel was closed
}

TEST_CASE("natpmp mapper: probe_public_address and adopting its answer", "[natpmp]") {
  Fixture f;
  f.gateway.script = [](const Received& r, std::size_t) {
    Bytes wrong_version = answer(r, 4242);
    wrong_version[0] = 2;
    return std::vector<Send>{{wrong_version}, {answer(r, 4242)}};
  };
  auto probe = f.run(probe_public_address(kGateway, 1s, f.gateway_ptr, f.time));
  REQUIRE(probe);
  CHECK(probe->external_address.to_string() == "203.0.113.1");
  CHECK(probe->epoch == 4242);
  CHECK(probe->round_trip == kRoundTrip);
  CHECK(probe->received == kT0 + kRoundTrip);
  CHECK(probe->dropped == 1);
  CHECK(f.gateway.channels_open == 0);  // the probe's channel is closed

  auto& m = f.mapper();
  m.adopt_probe(*probe);
  CHECK(m.last_epoch() == 4242u);
  REQUIRE(f.run(m.map(request(7076))));
  CHECK(f.gateway.count(&Received::is_address) == 1);  // the probe's answer was used
}

TEST_CASE("natpmp mapper: probe_public_address gives up after max_wait, and reports errors", "[natpmp]") {
  Fixture f;
  SECTION("silence") {
    f.gateway.script = [](const Received&, std::size_t) { return std::vector<Send>{}; };
    auto probe = f.run(probe_public_address(kGateway, 1s, f.gateway_ptr, f.time));
    REQUIRE_FALSE(probe);
    CHECK(probe.error() == Errc::timed_out);
    CHECK(f.time.now() == kT0 + 1s);
    CHECK(f.gateway.requests.size() == 3);  // at 0, 250 and 750 ms
  }
  SECTION("a result code") {
    f.gateway.script = [](const Received& r, std::size_t) { return std::vector<Send>{{answer(r, 1, 5)}}; };
    auto probe = f.run(probe_public_address(kGateway, 1s, f.gateway_ptr, f.time));
    REQUIRE_FALSE(probe);
    CHECK(probe.error() == make_natpmp_error(5));
  }
  SECTION("no address") {
    f.gateway.script = [](const Received&, std::size_t) { return std::vector<Send>{{address_reply(0, 1, 0)}}; };
    auto probe = f.run(probe_public_address(kGateway, 1s, f.gateway_ptr, f.time));
    REQUIRE_FALSE(probe);
    CHECK(probe.error() == Errc::bad_reply);
  }
}

TEST_CASE("natpmp mapper: a permanent lease asked for (0) is a two-hour lifetime, never a deletion", "[natpmp]") {
  Fixture f;
  auto& m = f.mapper();
  auto mapping = f.run(m.map(request(7076, Transport::udp, 0s)));
  REQUIRE(mapping);
  CHECK(mapping->lifetime == lease::kLifetimeForPermanent);
  CHECK_FALSE(mapping->permanent);
  const auto asked = std::find_if(f.gateway.requests.begin(), f.gateway.requests.end(),
                                  [](const Received& r) { return r.is_mapping(); });
  REQUIRE(asked != f.gateway.requests.end());
  CHECK(asked->request.lifetime == 7200);
}

TEST_CASE("natpmp mapper: a check asks the gateway itself for its epoch and address", "[natpmp]") {
  Fixture f;
  auto& m = f.mapper();
  const auto mapped = f.run(m.map(request(7076)));  // epoch 100, 203.0.113.1
  REQUIRE(mapped);
  auto checked = f.run(m.check(*mapped));
  REQUIRE(checked);
  CHECK_FALSE(checked->mappings_lost);
  CHECK(checked->external_ip.to_string() == "203.0.113.1");
  CHECK(f.gateway.count(&Received::is_address) == 2);  // asked afresh, not the cached address

  // The gateway restarted (epoch 3) with another address.
  f.gateway.script = [](const Received&, std::size_t) {
    return std::vector<Send>{{address_reply(0, 3, 0xCB007109)}};  // 203.0.113.9
  };
  checked = f.run(m.check(*mapped));
  REQUIRE(checked);
  CHECK(checked->mappings_lost);
  CHECK(checked->external_ip.to_string() == "203.0.113.9");
  CHECK_FALSE(m.take_gateway_lost_state());  // the check told it
  auto address = f.run(m.external_address());
  REQUIRE(address);
  CHECK(address->to_string() == "203.0.113.9");
  CHECK(f.gateway.count(&Received::is_address) == 3);
}

TEST_CASE("natpmp mapper: a mapping for another device is refused without asking the gateway", "[natpmp]") {
  Fixture f;
  auto& m = f.mapper();
  auto doorbell = request(7076);
  doorbell.internal_client = boost::asio::ip::make_address("10.77.0.50");
  const auto mapped = f.run(m.map(doorbell));
  REQUIRE_FALSE(mapped);
  CHECK(mapped.error() == Errc::third_party_unsupported);
  CHECK(mapped.error() == MapFailure::third_party_refused);
  // Deleting it would delete this host's own mapping of the port: nothing is sent.
  CHECK(f.run(m.unmap(Mapping{doorbell, {}, 7076, 3600s, false})) == Errc::third_party_unsupported);
  CHECK(f.gateway.requests.empty());
}

// Any LAN host can send datagrams from the gateway's address: NAT-PMP has no
// nonce, so what is checked is when a reply came and what it claims.
TEST_CASE("natpmp mapper: forged replies queued before a request are never its answer", "[natpmp][forged]") {
  Fixture f;
  f.options.max_parallel = 1;  // both requests on the same channel
  f.gateway.script = [](const Received& r, std::size_t) {
    std::vector<Send> sends{{answer(r)}};
    // Sprayed at the channel while it is idle, for the port asked next.
    if (r.is_mapping())
      for (int i = 0; i < 100; ++i) sends.push_back({mapping_reply(129, 0, 100, 7077, 1, 0xFFFFFFFF)});
    return sends;
  };
  auto& m = f.mapper();
  REQUIRE(f.run(m.map(request(7076))));
  auto mapping = f.run(m.map(request(7077)));
  REQUIRE(mapping);
  CHECK(mapping->external_port == 7077);
  CHECK(mapping->lifetime == 3600s);
  CHECK(m.dropped() == 100);
  CHECK(f.gateway.mappings().size() == 2);
}

TEST_CASE("natpmp mapper: forged replies sprayed until a request is sent neither hold it up nor answer it",
          "[natpmp][forged]") {
  Fixture f;
  f.options.max_parallel = 1;  // both requests on the same channel
  auto& m = f.mapper();
  REQUIRE(f.run(m.map(request(7076))));
  // At the idle channel until the next request is sent, a grant of the port
  // asked next every 5 µs: twice as fast as the mapper takes them.
  const auto asked = f.time.now() + 1ms;
  f.gateway.flood = ScriptedGateway::Flood{mapping_reply(129, 0, 100, 7077, 1, 0xFFFFFFFF), f.time.now(), 5us, asked};
  f.gateway.cost_per_datagram = 10us;
  auto idle = [&]() -> asio::awaitable<bool> {
    co_await f.time.sleep_until(asked);
    co_return true;
  };
  REQUIRE(f.run(idle()));
  auto mapping = f.run(m.map(request(7077)));
  REQUIRE(mapping);
  CHECK(mapping->external_port == 7077);
  CHECK(mapping->lifetime == 3600s);
  CHECK(m.dropped() == 200);
  const auto sent = f.gateway.mappings();
  REQUIRE(sent.size() == 2);
  CHECK(sent[1].at == asked);  // at once, not after the spray was taken off the queue
}

TEST_CASE("natpmp mapper: a flood that never ends does not keep requests from going out", "[natpmp][forged]") {
  Fixture f;
  f.options.max_request_time = 1s;
  // From the first request on, a reply for a port nobody asked for every
  // 5 µs: twice as fast as the mapper takes them.
  f.gateway.flood =
      ScriptedGateway::Flood{mapping_reply(129, 0, 100, 7999, 7999, 3600), kT0, 5us, TimePoint::max()};
  f.gateway.cost_per_datagram = 10us;
  auto& m = f.mapper();
  auto mapping = f.run(m.map(request(7076)));
  REQUIRE(mapping);
  CHECK(mapping->external_port == 7076);
  CHECK(mapping->lifetime == 3600s);
  REQUIRE(f.gateway.requests.size() == 2);  // none retransmitted
  CHECK(f.gateway.requests[0].at == kT0);
  CHECK(f.time.now() < kT0 + 20ms);
  CHECK(m.dropped() > 400);
}

TEST_CASE("natpmp mapper: an UNSUPP_VERSION once the gateway spoke NAT-PMP fails nothing", "[natpmp][forged]") {
  Fixture f;
  f.gateway.script = [](const Received& r, std::size_t) {
    if (r.is_address()) return std::vector<Send>{{answer(r)}};
    // Forged, ahead of the gateway's answer.
    return std::vector<Send>{{answer(r, 100, 1)}, {answer(r)}};
  };
  auto& m = f.mapper();
  auto mapping = f.run(m.map(request(7076)));
  REQUIRE(mapping);
  CHECK(mapping->external_port == 7076);
  auto removed = f.run(m.unmap(*mapping));
  CHECK_FALSE(removed);
  CHECK(m.dropped() == 2);
  CHECK(f.gateway.mappings().size() == 2);

  // Discovery is where a gateway says it does not speak NAT-PMP.
  Fixture probe;
  probe.gateway.script = [](const Received& r, std::size_t) { return std::vector<Send>{{answer(r, 100, 1)}}; };
  auto found = probe.run(probe_public_address(kGateway, 10s, probe.gateway_ptr, probe.time));
  REQUIRE_FALSE(found);
  CHECK(found.error() == make_natpmp_error(1));
}

TEST_CASE("natpmp mapper: a grant far beyond the request is asked again and never scheduled beyond it",
          "[natpmp][forged]") {
  SECTION("a forged never-ending grant: the gateway's own answer is believed") {
    Fixture f;
    f.gateway.script = [](const Received& r, std::size_t index) {
      if (index == 1) return std::vector<Send>{{mapping_reply(129, 0, 100, 7076, 1, 0xFFFFFFFF)}};
      return std::vector<Send>{{answer(r)}};
    };
    auto mapping = f.run(f.mapper().map(request(7076)));
    REQUIRE(mapping);
    CHECK(mapping->external_port == 7076);
    CHECK(mapping->lifetime == 3600s);
    CHECK(f.gateway.mappings().size() == 2);
  }
  SECTION("a gateway that grants a week every time: the request's hour is scheduled") {
    Fixture f;
    f.gateway.script = [](const Received& r, std::size_t) {
      if (r.is_address()) return std::vector<Send>{{answer(r)}};
      return std::vector<Send>{{mapping_reply(129, 0, 100, 7076, 7076, 7 * 24 * 3600)}};
    };
    auto mapping = f.run(f.mapper().map(request(7076)));
    REQUIRE(mapping);
    CHECK(mapping->lifetime == 3600s);
    CHECK(f.gateway.mappings().size() == 2);
  }
  SECTION("a long request granted as asked: one request, scheduled within the cap") {
    Fixture f;
    auto mapping = f.run(f.mapper().map(request(7076, Transport::udp, 72h)));
    REQUIRE(mapping);
    CHECK(mapping->lifetime == 24h);
    CHECK(f.gateway.mappings().size() == 1);
  }
  SECTION("a short request raised to the gateway's minimum: believed at once, scheduled as asked") {
    Fixture f;
    f.gateway.script = [](const Received& r, std::size_t) {
      if (r.is_address()) return std::vector<Send>{{answer(r)}};
      return std::vector<Send>{{mapping_reply(129, 0, 100, 7076, 7076, 120)}};
    };
    auto mapping = f.run(f.mapper().map(request(7076, Transport::udp, 60s)));
    REQUIRE(mapping);
    CHECK(mapping->lifetime == 60s);
    CHECK(f.gateway.mappings().size() == 1);
  }
}
