// Fetching a UPnP description within limits (http_get on a real loopback
// socket, with scripted servers) and reading it (open_igd).
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
#include <string>

#include "mappers/errors.hpp"
#include "mappers/upnp/http_get.hpp"
#include "mappers/upnp/miniupnpc_igd.hpp"
#include "tests/unit/run_loop.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using natkeeper::Errc;
using natkeeper::upnp::HttpGetOptions;
using natkeeper::upnp::HttpGetResult;
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

HttpGetResult get(asio::io_context& loop, const HttpUrl& url, HttpGetOptions options = {}) {
  return run_loop(loop, natkeeper::upnp::http_get(url, options));
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
  const HttpGetOptions options{200ms, {}};
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
  const auto igd = natkeeper::upnp::open_igd(location, description("/ctl/IPConn"));
  REQUIRE(igd.has_value());
  CHECK(igd->description.version == 2);
  CHECK(igd->description.control_url == "http://10.77.0.1:5000/ctl/IPConn");
  CHECK(igd->control->has_add_any_port_mapping());
}

TEST_CASE("open_igd refuses a description that aims the control calls at another host, or no IGD") {
  const std::string location = "http://10.77.0.66:8000/desc.xml";
  CHECK(natkeeper::upnp::open_igd(location, description("http://169.254.169.254/ctl")).error() ==
        Errc::not_an_igd);
  CHECK(natkeeper::upnp::open_igd(location, "<root><device><deviceType>x</deviceType></device></root>").error() ==
        Errc::not_an_igd);
  CHECK(natkeeper::upnp::open_igd(location, std::string(4096, '<')).error() == Errc::not_an_igd);
}
