// The gateway's UPnP events (EventSubscription) over real loopback sockets, in
// virtual time, against a scripted event publisher.
#include <catch2/catch.hpp>

#include "http_request_reader.hpp"
#include "result_printer.hpp"
#include "virtual_time.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "agent/base/log.hpp"
#include "agent/service/event_subscription.hpp"
#include "agent/service/service_policy.hpp"

using namespace natkeeper;
using namespace std::chrono_literals;
using asio::ip::tcp;

namespace {

constexpr auto token = asio::as_tuple(asio::use_awaitable);
const auto kLoopback = asio::ip::make_address_v4("127.0.0.1");

struct Request {
  Timebase::TimePoint at;
  std::string method, path;
  std::map<std::string, std::string> headers;  // names in upper case
  bool has(const std::string& name) const { return headers.count(name) > 0; }
};

// The gateway's event publisher on 127.0.0.1, as miniupnpd behaves: each
// SUBSCRIBE is answered with what `answer` says (by default a new SID, or the
// renewed one, for 1800 s), and NOTIFYs go to the last CALLBACK on demand.
class Publisher {
 public:
  Publisher(asio::io_context& loop, Timebase& time)
      : loop_(loop), time_(time), acceptor_(loop, {kLoopback, 0}) {
    asio::co_spawn(loop, serve(), asio::detached);
  }

  std::string event_url() const {
    return fmt::format("http://127.0.0.1:{}/evt/IPConn", acceptor_.local_endpoint().port());
  }

  std::vector<Request> requests;
  std::function<std::string(const Request&)> answer = [this](const Request& request) {
    if (request.method != "SUBSCRIBE") return std::string("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    const auto sid = request.has("SID") ? request.headers.at("SID") : fmt::format("uuid:sub-{}", ++subscriptions);
    return granted(sid, "Second-1800");
  };
  // A new subscription's first event, sent (and answered) before its answer.
  std::optional<unsigned> initial_event_first;
  int subscriptions = 0;
  std::string callback_host;
  unsigned short callback_port = 0;
  std::vector<std::string> notify_answers;  // status lines, as they come

  static std::string granted(const std::string& sid, const std::string& timeout) {
    return fmt::format("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTimeout: {}\r\nSID: {}\r\n\r\n", timeout, sid);
  }
  static std::string event(const std::string& sid, unsigned seq, const std::string& entries) {
    const auto body = fmt::format(
        "<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\"><e:property><ConnectionStatus>Connected"
        "</ConnectionStatus></e:property><e:property><PortMappingNumberOfEntries>{}</PortMappingNumberOfEntries>"
        "</e:property></e:propertyset>\r\n",
        entries);
    return fmt::format("NOTIFY /natkeeper/event HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nNT: upnp:event\r\n"
                       "NTS: upnp:propchange\r\nSID: {}\r\nSEQ: {}\r\n\r\n{}",
                       body.size(), sid, seq, body);
  }
  // Sends `request` to the callback from `from`; its answer's status line lands in notify_answers.
  void send(std::string request, asio::ip::address_v4 from = kLoopback) {
    asio::co_spawn(loop_, deliver(std::move(request), from), asio::detached);
  }
  void notify(const std::string& sid, unsigned seq, unsigned entries) { send(event(sid, seq, std::to_string(entries))); }

 private:
  asio::awaitable<void> serve() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(token);
      if (ec) co_return;
      const auto received = co_await testing::read_http_request(socket);
      if (!received) continue;
      const auto& head = *received;
      Request request{time_.now(), {}, {}, {}};
      std::smatch line;
      static const std::regex request_line("^(\\S+) (\\S+) HTTP/1.1\r\n");
      std::regex_search(head, line, request_line);
      request.method = line[1];
      request.path = line[2];
      static const std::regex header("\r\n([^:\r\n]+): ([^\r\n]*)");
      for (std::sregex_iterator it(head.begin(), head.end(), header), end; it != end; ++it) {
        auto name = (*it)[1].str();
        for (auto& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        request.headers[name] = (*it)[2];
      }
      requests.push_back(request);
      if (request.has("CALLBACK")) {
        std::smatch url;
        const auto& callback = request.headers["CALLBACK"];
        if (std::regex_match(callback, url, std::regex("<http://([0-9.]+):([0-9]+)/natkeeper/event>"))) {
          callback_host = url[1];
          callback_port = static_cast<unsigned short>(std::stoi(url[2]));
        }
        if (initial_event_first) co_await deliver(event(fmt::format("uuid:sub-{}", subscriptions + 1), 0,
                                                        std::to_string(*initial_event_first)), kLoopback);
      }
      const auto text = answer(request);
      co_await asio::async_write(socket, asio::buffer(text), token);
    }
  }

  asio::awaitable<void> deliver(std::string request, asio::ip::address_v4 from) {
    tcp::socket socket(loop_);
    socket.open(tcp::v4());
    socket.bind({from, 0});
    auto [connect_error] = co_await socket.async_connect({asio::ip::make_address_v4(callback_host), callback_port}, token);
    if (connect_error) {
      notify_answers.push_back("refused");
      co_return;
    }
    co_await asio::async_write(socket, asio::buffer(request), token);
    std::string reply;
    co_await asio::async_read(socket, asio::dynamic_buffer(reply), token);
    notify_answers.push_back(reply.empty() ? "closed" : reply.substr(0, reply.find("\r\n")));
  }

  asio::io_context& loop_;
  Timebase& time_;
  tcp::acceptor acceptor_;
};

struct Fixture {
  testing::VirtualTime time;  // outlives the loop's coroutines
  asio::io_context loop;
  Publisher publisher{loop, time};
  int hints = 0;
  std::unique_ptr<EventSubscription> subscription;

  Fixture() {
    log::set_verbosity(-1);
    time.wait_for_real_io(2ms);
  }
  void start() {
    auto started = EventSubscription::start(loop.get_executor(), time, publisher.event_url(), kLoopback,
                                            [this] { ++hints; }, 7);
    REQUIRE(started);
    subscription = std::move(*started);
  }
  bool run_until(const std::function<bool()>& done, Timebase::Duration limit = 10s) {
    return time.run_until(loop, done, limit);
  }
  void run_for(Timebase::Duration span) { time.run_until(loop, [] { return false; }, span); }
  bool subscribed() { return run_until([&] { return !subscription->sid().empty(); }); }
  // Sends an event and waits for its answer.
  std::string deliver(std::string request) {
    const auto before = publisher.notify_answers.size();
    publisher.send(std::move(request));
    REQUIRE(run_until([&] { return publisher.notify_answers.size() > before; }));
    return publisher.notify_answers.back();
  }
  std::string notify(unsigned seq, unsigned entries) {
    return deliver(Publisher::event(subscription->sid(), seq, std::to_string(entries)));
  }
};

}  // namespace

TEST_CASE("events: subscribes with its callback; every event but the initial one hints", "[events]") {
  Fixture f;
  f.start();
  REQUIRE(f.subscribed());
  REQUIRE(f.publisher.requests.size() == 1);
  const auto& subscribe = f.publisher.requests[0];
  CHECK(subscribe.method == "SUBSCRIBE");
  CHECK(subscribe.path == "/evt/IPConn");
  CHECK(subscribe.headers.at("NT") == "upnp:event");
  CHECK(subscribe.headers.at("TIMEOUT") == "Second-1800");
  CHECK(f.publisher.callback_host == "127.0.0.1");
  CHECK(f.subscription->sid() == "uuid:sub-1");

  CHECK(f.notify(0, 3) == "HTTP/1.1 200 OK");
  CHECK(f.hints == 0);  // the initial event: the state when subscribing
  CHECK(f.notify(1, 2) == "HTTP/1.1 200 OK");
  CHECK(f.hints == 1);
  // As miniupnpd 2.3.1 told the lab: 4 mappings added at once, the events
  // said 1 and 3 (the last addition came while an event was on its way and
  // was never told), then a deletion said 3.
  CHECK(f.notify(2, 3) == "HTTP/1.1 200 OK");
  CHECK(f.hints == 2);
  CHECK(f.notify(3, 4) == "HTTP/1.1 200 OK");
  CHECK(f.hints == 3);
  CHECK(f.subscription->counts().events == 4);
  CHECK(f.subscription->counts().hints == 3);
  CHECK(f.subscription->counts().dropped == 0);
}

TEST_CASE("events: another subscription's, malformed or oversized events are dropped, never hints", "[events]") {
  Fixture f;
  f.start();
  REQUIRE(f.subscribed());
  REQUIRE(f.notify(0, 9) == "HTTP/1.1 200 OK");
  CHECK(f.deliver(Publisher::event("uuid:forged", 1, "0")) == "HTTP/1.1 412 Precondition Failed");
  CHECK(f.deliver(Publisher::event(f.subscription->sid(), 1, "none")) == "HTTP/1.1 400 Bad Request");
  auto not_propchange = Publisher::event(f.subscription->sid(), 1, "0");
  not_propchange.replace(not_propchange.find("upnp:propchange"), 15, "ssdp:alive");
  CHECK(f.deliver(not_propchange) == "HTTP/1.1 400 Bad Request");
  CHECK(f.deliver(Publisher::event(f.subscription->sid(), 1, std::string(20000, '0'))) == "HTTP/1.1 400 Bad Request");
  CHECK(f.deliver("GET / HTTP/1.1\r\n\r\n") == "HTTP/1.1 400 Bad Request");
  CHECK(f.hints == 0);
  CHECK(f.subscription->counts().dropped == 5);
  // ... and the subscription's own events still count
  CHECK(f.notify(1, 8) == "HTTP/1.1 200 OK");
  CHECK(f.hints == 1);
}

TEST_CASE("events: a new subscription's first event may come before its answer", "[events]") {
  Fixture f;
  f.publisher.initial_event_first = 5;
  f.start();
  REQUIRE(f.subscribed());
  REQUIRE(f.publisher.notify_answers.size() == 1);
  CHECK(f.publisher.notify_answers[0] == "HTTP/1.1 200 OK");
  CHECK(f.subscription->counts().events == 1);
  CHECK(f.notify(1, 4) == "HTTP/1.1 200 OK");
  CHECK(f.hints == 1);
}

TEST_CASE("events: renewed at half the granted duration; subscribed anew when the gateway forgot", "[events]") {
  Fixture f;
  f.publisher.answer = [&](const Request& request) {
    if (request.has("CALLBACK"))
      return Publisher::granted(fmt::format("uuid:sub-{}", ++f.publisher.subscriptions), "Second-200");
    return Publisher::granted(request.headers.at("SID"), "Second-200");
  };
  f.start();
  REQUIRE(f.subscribed());
  REQUIRE(f.notify(0, 3) == "HTTP/1.1 200 OK");
  REQUIRE(f.run_until([&] { return f.publisher.requests.size() == 2; }, 10min));
  const auto& renewal = f.publisher.requests[1];
  CHECK(renewal.at - f.publisher.requests[0].at == 100s);
  CHECK(renewal.method == "SUBSCRIBE");
  CHECK(renewal.headers.at("SID") == "uuid:sub-1");
  CHECK(renewal.headers.at("TIMEOUT") == "Second-1800");
  CHECK_FALSE(renewal.has("CALLBACK"));
  CHECK_FALSE(renewal.has("NT"));
  CHECK(f.notify(1, 3) == "HTTP/1.1 200 OK");  // the renewed subscription's events go on
  CHECK(f.hints == 1);

  // miniupnpd forgets a subscriber it could not deliver an event to, or when it restarts.
  f.publisher.answer = [&](const Request& request) {
    if (request.has("SID")) return std::string("HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\n\r\n");
    return Publisher::granted(fmt::format("uuid:sub-{}", ++f.publisher.subscriptions), "Second-200");
  };
  REQUIRE(f.run_until([&] { return f.publisher.requests.size() == 4; }, 10min));
  CHECK(f.publisher.requests[3].at == f.publisher.requests[2].at);
  CHECK(f.publisher.requests[3].has("CALLBACK"));
  REQUIRE(f.subscribed());
  CHECK(f.subscription->sid() == "uuid:sub-2");
  // a new subscription's initial event tells no change
  CHECK(f.notify(0, 1) == "HTTP/1.1 200 OK");
  CHECK(f.hints == 1);
}

TEST_CASE("events: a renewal is at most five minutes after the last, at least one", "[events]") {
  const auto timeout = GENERATE(as<std::string>{}, "Second-infinite", "Second-10");
  Fixture f;
  f.publisher.answer = [&](const Request&) { return Publisher::granted("uuid:1", timeout); };
  f.start();
  REQUIRE(f.run_until([&] { return f.publisher.requests.size() == 2; }, 10min));
  CHECK(f.publisher.requests[1].at - f.publisher.requests[0].at ==
        (timeout == "Second-10" ? 60s : 300s));
}

TEST_CASE("events: a refused or unanswered subscription is tried again with backoff", "[events]") {
  Fixture f;
  f.publisher.answer = [](const Request&) {
    return std::string("HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
  };
  f.start();
  REQUIRE(f.run_until([&] { return f.publisher.requests.size() == 3; }, 1min));
  const auto first = f.publisher.requests[1].at - f.publisher.requests[0].at;
  const auto second = f.publisher.requests[2].at - f.publisher.requests[1].at;
  CHECK(first >= policy::retry_delay(1, 0.0));
  CHECK(first <= policy::retry_delay(1, 1.0));
  CHECK(second >= policy::retry_delay(2, 0.0));
  CHECK(second <= policy::retry_delay(2, 1.0));
  CHECK(f.subscription->sid().empty());
}

TEST_CASE("events: a publisher that never answers costs 2 s an attempt", "[events]") {
  testing::VirtualTime time;
  time.wait_for_real_io(2ms);
  asio::io_context loop;
  log::set_verbosity(-1);
  tcp::acceptor silent(loop, {kLoopback, 0});
  std::vector<tcp::socket> held;
  std::vector<Timebase::TimePoint> accepted;
  auto hold = [&]() -> asio::awaitable<void> {
    for (int i = 0; i < 2; ++i) {
      auto [ec, socket] = co_await silent.async_accept(token);
      if (ec) co_return;
      accepted.push_back(time.now());
      held.push_back(std::move(socket));
    }
  };
  asio::co_spawn(loop, hold(), asio::detached);
  const auto url = fmt::format("http://127.0.0.1:{}/evt/IPConn", silent.local_endpoint().port());
  auto subscription = EventSubscription::start(loop.get_executor(), time, url, kLoopback, [] {}, 7);
  REQUIRE(subscription);
  REQUIRE(time.run_until(loop, [&] { return accepted.size() == 2; }, 1min));
  CHECK(accepted[1] - accepted[0] >= 2s + policy::retry_delay(1, 0.0));
  CHECK(accepted[1] - accepted[0] <= 2s + policy::retry_delay(1, 1.0));
  subscription->reset();
  time.run_until(loop, [] { return false; }, 3s);
}

TEST_CASE("events: four connections at once, from the gateway only, 2 s each; others closed at once", "[events]") {
  Fixture f;
  f.start();
  REQUIRE(f.subscribed());
  // Another LAN host claiming to be the gateway's publisher.
  f.publisher.send(Publisher::event(f.subscription->sid(), 0, "1"), asio::ip::make_address_v4("127.0.0.2"));
  REQUIRE(f.run_until([&] { return f.publisher.notify_answers.size() == 1; }, 100ms));
  CHECK(f.publisher.notify_answers[0] == "closed");
  CHECK(f.subscription->counts().dropped == 1);
  std::vector<tcp::socket> idle;
  for (int i = 0; i < 4; ++i) {
    idle.emplace_back(f.loop);
    idle.back().connect({kLoopback, f.publisher.callback_port});
  }
  f.run_for(100ms);
  // the fifth
  f.publisher.send(Publisher::event(f.subscription->sid(), 0, "1"));
  REQUIRE(f.run_until([&] { return f.publisher.notify_answers.size() == 2; }, 100ms));
  CHECK(f.publisher.notify_answers[1] == "closed");
  CHECK(f.subscription->counts().dropped == 2);
  // the four idle ones end after 2 s, and take a place no more
  f.run_for(2100ms);
  for (auto& socket : idle) {
    char byte;
    boost::system::error_code ec;
    socket.non_blocking(true);
    socket.read_some(asio::buffer(&byte, 1), ec);
    CHECK(ec == asio::error::eof);
  }
  CHECK(f.subscription->counts().dropped == 6);
  CHECK(f.notify(0, 3) == "HTTP/1.1 200 OK");
}

TEST_CASE("events: the subscription ends with an UNSUBSCRIBE, and hints no more", "[events]") {
  Fixture f;
  f.start();
  REQUIRE(f.subscribed());
  REQUIRE(f.notify(0, 3) == "HTTP/1.1 200 OK");
  f.subscription.reset();
  REQUIRE(f.run_until([&] { return f.publisher.requests.size() == 2; }, 1s));
  CHECK(f.publisher.requests[1].method == "UNSUBSCRIBE");
  CHECK(f.publisher.requests[1].headers.at("SID") == "uuid:sub-1");
  f.publisher.notify("uuid:sub-1", 1, 0);
  REQUIRE(f.run_until([&] { return f.publisher.notify_answers.size() == 2; }, 1s));
  CHECK(f.publisher.notify_answers[1] == "refused");
  CHECK(f.hints == 0);
}

TEST_CASE("events: an event URL that is no http URL with an IPv4 host is refused", "[events]") {
  testing::VirtualTime time;
  asio::io_context loop;
  for (const auto* url : {"http://router.lan:5000/evt/IPConn", "https://10.77.0.1/evt", ""}) {
    INFO(url);
    CHECK_FALSE(EventSubscription::start(loop.get_executor(), time, url, kLoopback, [] {}, 7));
  }
}
