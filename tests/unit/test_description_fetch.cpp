// Fetching a UPnP description within limits (http_get on a real loopback
// socket, with scripted servers) and reading it (open_igd, which asks a
// scripted gateway's WAN connections about themselves when there are several).
#include <catch2/catch.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mappers/errors.hpp"
#include "mappers/upnp/http_client.hpp"
#include "mappers/upnp/soap_igd.hpp"
#include "tests/unit/http_request_reader.hpp"
#include "tests/unit/run_loop.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using natkeeper::Errc;
using natkeeper::upnp::HttpAnswer;
using natkeeper::upnp::HttpOptions;
using natkeeper::upnp::HttpUrl;

namespace {

constexpr auto token = asio::as_tuple(asio::use_awaitable);

// Accepts one connection on 127.0.0.1, reads the request head and hands the
// socket to `behave`.
class ScriptedServer {
 public:
  using Behaviour = std::function<asio::awaitable<void>(tcp::socket&)>;
  ScriptedServer(asio::io_context& loop, Behaviour behave)
      : acceptor_(loop, {asio::ip::make_address_v4("127.0.0.1"), 0}), behave_(std::move(behave)) {
    asio::co_spawn(loop, serve(), asio::detached);
  }
  HttpUrl url(std::string path = "/rootDesc.xml") const {
    return {"127.0.0.1", acceptor_.local_endpoint().port(), std::move(path)};
  }
  const std::string& request() const { return request_; }

 private:
  asio::awaitable<void> serve() {
    auto [ec, socket] = co_await acceptor_.async_accept(token);
    if (ec) co_return;
    auto [read_error, size] = co_await asio::async_read_until(socket, asio::dynamic_buffer(request_), "\r\n\r\n", token);
    if (read_error) co_return;
    co_await behave_(socket);
  }

  tcp::acceptor acceptor_;
  Behaviour behave_;
  std::string request_;
};

asio::awaitable<boost::system::error_code> send(tcp::socket& socket, std::string text) {
  auto [ec, size] = co_await asio::async_write(socket, asio::buffer(text), token);
  co_return ec;
}

// Until the client closes the connection.
asio::awaitable<void> wait_for_close(tcp::socket& socket) {
  char byte;
  co_await socket.async_read_some(asio::buffer(&byte, 1), token);
}

asio::awaitable<void> pause(std::chrono::milliseconds duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(token);
}

HttpAnswer get(asio::io_context& loop, const HttpUrl& url, HttpOptions options = {}) {
  return run_loop(loop, natkeeper::upnp::http_get(url, options));
}

// open_igd on a loop of its own: the scripted gateways below serve from their own threads.
natkeeper::Result<natkeeper::upnp::OpenedIgd> open_igd(std::string location, std::string description) {
  asio::io_context loop;
  return run_loop(loop, natkeeper::upnp::open_igd(std::move(location), std::move(description)));
}

}  // namespace

TEST_CASE("http_get returns the body of a 200 answer and asks for a closed connection") {
  asio::io_context loop;
  ScriptedServer server(loop, [](tcp::socket& socket) -> asio::awaitable<void> {
    co_await send(socket, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n<root/>");
  });
  const auto result = get(loop, server.url());
  CHECK_FALSE(result.error);
  CHECK(result.body == "<root/>");
  CHECK(server.request().starts_with("GET /rootDesc.xml HTTP/1.1\r\n"));
  CHECK_THAT(server.request(), Catch::Contains("Connection: close\r\n"));
}

// [realtime]: a real TCP server that is silent or trickles; the deadline is the client's own timer.
TEST_CASE("http_get gives up at its deadline on a silent or trickling server", "[realtime]") {
  asio::io_context loop;
  const HttpOptions options{200ms, {}};
  SECTION("silent") {
    ScriptedServer server(loop, [](tcp::socket& socket) -> asio::awaitable<void> { co_await wait_for_close(socket); });
    const auto started = std::chrono::steady_clock::now();
    const auto result = get(loop, server.url(), options);
    CHECK(result.error == Errc::timed_out);
    CHECK(std::chrono::steady_clock::now() - started < 1s);
  }
  SECTION("one byte every 50 ms never completes the head") {
    ScriptedServer server(loop, [](tcp::socket& socket) -> asio::awaitable<void> {
      for (int i = 0; i < 40; ++i) {
        if (co_await send(socket, "X")) co_return;  // the client gave up
        co_await pause(50ms);
      }
    });
    const auto started = std::chrono::steady_clock::now();
    CHECK(get(loop, server.url(), options).error == Errc::timed_out);
    CHECK(std::chrono::steady_clock::now() - started < 1s);
  }
}

TEST_CASE("http_get refuses what a rogue device serves") {
  asio::io_context loop;
  SECTION("a body past the limit") {
    ScriptedServer server(loop, [](tcp::socket& socket) -> asio::awaitable<void> {
      co_await send(socket, "HTTP/1.1 200 OK\r\n\r\n");
      const std::string block(64 * 1024, 'x');
      for (int i = 0; i < 16; ++i) {
        auto [ec, size] = co_await asio::async_write(socket, asio::buffer(block), token);
        if (ec) co_return;
      }
    });
    const auto result = get(loop, server.url());
    CHECK(result.error == Errc::bad_http_answer);
    CHECK_THAT(result.detail, Catch::Contains("limit"));
  }
  SECTION("a redirect, not followed") {
    ScriptedServer server(loop, [](tcp::socket& socket) -> asio::awaitable<void> {
      co_await send(socket, "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1/loop\r\nContent-Length: 0\r\n\r\n");
    });
    const auto result = get(loop, server.url());
    CHECK(result.error == Errc::bad_http_answer);
    CHECK_THAT(result.detail, Catch::Contains("302") && Catch::Contains("not followed"));
  }
  SECTION("a host name instead of an address") {
    const auto result = get(loop, {"gateway.example", 80, "/"});
    CHECK(result.error == Errc::bad_http_answer);
  }
}

namespace {

std::string description(const std::string& control_url) {
  return "<?xml version=\"1.0\"?><root xmlns=\"urn:schemas-upnp-org:device-1-0\"><device>"
         "<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType><deviceList><device>"
         "<deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType><deviceList><device>"
         "<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType><serviceList><service>"
         "<serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType>"
         "<controlURL>" + control_url + "</controlURL><eventSubURL>/evt/IPConn</eventSubURL>"
         "<SCPDURL>/WANIPCn.xml</SCPDURL></service></serviceList></device></deviceList></device>"
         "</deviceList></device></root>";
}

}  // namespace

TEST_CASE("open_igd reads the WAN connection service from the fetched bytes") {
  const std::string location = "http://10.77.0.1:5000/rootDesc.xml";
  const auto igd = open_igd(location, description("/ctl/IPConn"));
  REQUIRE(igd.has_value());
  CHECK(igd->description.version == 2);
  CHECK(igd->description.control_url == "http://10.77.0.1:5000/ctl/IPConn");
  CHECK(igd->control->has_add_any_port_mapping());
}

TEST_CASE("open_igd takes TR-064's names for the WAN connection services") {
  const std::string location = "http://10.77.0.1:49000/igddesc.xml";
  const auto igd = open_igd(
      location, "<root><device><serviceList><service><serviceType>urn:dslforum-org:service:WANPPPConnection:1"
                "</serviceType><controlURL>/upnp/control/wanpppconn1</controlURL></service></serviceList>"
                "</device></root>");
  REQUIRE(igd.has_value());
  CHECK(igd->description.service_type == "urn:dslforum-org:service:WANPPPConnection:1");
  CHECK(igd->description.control_url == "http://10.77.0.1:49000/upnp/control/wanpppconn1");
  CHECK(igd->description.version == 1);
  CHECK_FALSE(igd->control->has_add_any_port_mapping());
  CHECK(igd->asked.empty());
}

TEST_CASE("open_igd refuses a description that aims the control calls at another host, or no IGD") {
  const std::string location = "http://10.77.0.66:8000/desc.xml";
  CHECK(open_igd(location, description("http://169.254.169.254/ctl")).error() ==
        Errc::not_an_igd);
  CHECK(open_igd(location, "<root><device><deviceType>x</deviceType></device></root>").error() ==
        Errc::not_an_igd);
  CHECK(open_igd(location, std::string(4096, '<')).error() == Errc::not_an_igd);
}

namespace {

// A gateway's WAN connections on 127.0.0.1, answering GetStatusInfo and
// GetExternalIPAddress from a thread of its own, and
// recording each call as "PATH SERVICE-TYPE#ACTION".
class SoapGateway {
 public:
  struct Connection {
    std::string status, external_ip;
  };
  explicit SoapGateway(std::map<std::string, Connection> connections)
      : acceptor_(loop_, {asio::ip::make_address_v4("127.0.0.1"), 0}), connections_(std::move(connections)) {
    asio::co_spawn(loop_, serve(), asio::detached);
    thread_ = std::thread([this] { loop_.run(); });
  }
  ~SoapGateway() {
    loop_.stop();
    thread_.join();
  }
  SoapGateway(const SoapGateway&) = delete;
  SoapGateway& operator=(const SoapGateway&) = delete;

  std::string location() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/rootDesc.xml";
  }
  std::vector<std::string> calls() const {
    const std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  asio::awaitable<void> serve() {
    while (true) {
      auto [ec, socket] = co_await acceptor_.async_accept(token);
      if (ec) co_return;
      auto received = co_await natkeeper::testing::read_http_request(socket);
      if (!received) continue;
      const auto& request = *received;
      const auto path = request.substr(5, request.find(' ', 5) - 5);  // after "POST "
      const auto action_at = request.find("SOAPAction: \"") + 13;
      const auto soap_action = request.substr(action_at, request.find('"', action_at) - action_at);
      {
        const std::lock_guard lock(mutex_);
        calls_.push_back(path + " " + soap_action);
      }
      co_await send(socket, answer(path, soap_action));
    }
  }

  std::string answer(const std::string& path, const std::string& soap_action) const {
    const auto& connection = connections_.at(path);
    const auto hash = soap_action.find('#');
    const auto type = soap_action.substr(0, hash), action = soap_action.substr(hash + 1);
    const auto arguments = action == "GetStatusInfo"
                               ? "<NewConnectionStatus>" + connection.status +
                                     "</NewConnectionStatus><NewLastConnectionError>ERROR_NONE"
                                     "</NewLastConnectionError><NewUptime>7</NewUptime>"
                               : "<NewExternalIPAddress>" + connection.external_ip + "</NewExternalIPAddress>";
    const auto body = "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">"
                      "<s:Body><u:" + action + "Response xmlns:u=\"" + type + "\">" + arguments + "</u:" + action +
                      "Response></s:Body></s:Envelope>";
    return "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + body;
  }

  asio::io_context loop_;
  tcp::acceptor acceptor_;
  const std::map<std::string, Connection> connections_;
  mutable std::mutex mutex_;
  std::vector<std::string> calls_;
  std::thread thread_;
};

std::string described(const std::vector<std::pair<std::string, std::string>>& services) {
  std::string list;
  for (const auto& [type, control_url] : services)
    list += "<service><serviceType>" + type + "</serviceType><controlURL>" + control_url + "</controlURL></service>";
  return "<root><device><serviceList>" + list + "</serviceList></device></root>";
}

const std::string kDslPpp = "urn:dslforum-org:service:WANPPPConnection:1";
const std::string kDslIp = "urn:dslforum-org:service:WANIPConnection:1";
const std::string kIp1 = "urn:schemas-upnp-org:service:WANIPConnection:1";
const std::string kIp2 = "urn:schemas-upnp-org:service:WANIPConnection:2";

}  // namespace

TEST_CASE("open_igd asks a device's WAN connections in turn until one is Connected with an address") {
  SoapGateway gateway({{"/ppp", {"Disconnected", ""}},
                       {"/ip1", {"Connected", "0.0.0.0"}},
                       {"/dslip", {"Connected", "203.0.113.1"}},
                       {"/ip2", {"Connected", "203.0.113.1"}}});
  const auto igd = open_igd(
      gateway.location(), described({{kDslPpp, "/ppp"}, {kIp1, "/ip1"}, {kDslIp, "/dslip"}, {kIp2, "/ip2"}}));
  REQUIRE(igd.has_value());
  CHECK(igd->description.service_type == kDslIp);
  CHECK(igd->description.control_url.ends_with("/dslip"));
  // Each asked with its own service type; the one after the first usable one is not asked.
  CHECK(gateway.calls() == std::vector<std::string>{
                               "/ppp " + kDslPpp + "#GetStatusInfo", "/ppp " + kDslPpp + "#GetExternalIPAddress",
                               "/ip1 " + kIp1 + "#GetStatusInfo", "/ip1 " + kIp1 + "#GetExternalIPAddress",
                               "/dslip " + kDslIp + "#GetStatusInfo", "/dslip " + kDslIp + "#GetExternalIPAddress"});
  REQUIRE(igd->asked.size() == 3);
  CHECK(igd->asked[0].second.status == "Disconnected");
  CHECK(igd->asked[1].second.external_ip == "0.0.0.0");
  CHECK(igd->asked[2].first == igd->description);
}

TEST_CASE("open_igd takes a single WAN connection without asking, and the first of several that do not answer") {
  SoapGateway gateway({{"/ppp", {"Disconnected", ""}}});
  const auto single = open_igd(gateway.location(), described({{kDslPpp, "/ppp"}}));
  REQUIRE(single.has_value());
  CHECK(single->description.control_url.ends_with("/ppp"));
  CHECK(gateway.calls().empty());

  // Port 9 (discard) on loopback: nobody listens, every call is refused at once.
  const auto silent = open_igd(
      "http://127.0.0.1:9/rootDesc.xml", described({{kIp2, "/a"}, {kIp1, "/b"}}));
  REQUIRE(silent.has_value());
  CHECK(silent->description.control_url == "http://127.0.0.1:9/a");
  REQUIRE(silent->asked.size() == 2);
  CHECK(silent->asked[1].second.status.empty());
}
