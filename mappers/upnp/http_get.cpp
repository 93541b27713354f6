#include "mappers/upnp/http_get.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <fmt/format.h>

#include <array>

#include "mappers/errors.hpp"

namespace natkeeper::upnp {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

namespace {

HttpGetResult failed(std::error_code error, std::string detail) {
  return HttpGetResult{error, std::move(detail), {}};
}

HttpGetResult timed_out(std::chrono::milliseconds deadline) {
  return failed(make_error_code(Errc::timed_out), fmt::format("no complete answer within {} ms", deadline.count()));
}

}  // namespace

asio::awaitable<HttpGetResult> http_get(const HttpUrl& url, HttpGetOptions options) {
  constexpr auto token = asio::as_tuple(asio::use_awaitable);
  boost::system::error_code ec;
  const auto address = asio::ip::make_address_v4(url.host, ec);
  if (ec) co_return failed(make_error_code(Errc::bad_http_answer), "the URL's host is not an IPv4 address");

  const auto executor = co_await asio::this_coro::executor;
  asio::ip::tcp::socket socket(executor);
  asio::steady_timer deadline(executor);
  deadline.expires_after(options.deadline);
  const asio::ip::tcp::endpoint server{address, url.port};
  auto connected = co_await (socket.async_connect(server, token) || deadline.async_wait(token));
  if (connected.index() == 1) co_return timed_out(options.deadline);
  if (const auto [error] = std::get<0>(connected); error) co_return failed(error, error.message());

  const auto request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nUser-Agent: natkeeper\r\n\r\n", url.path,
      url.host, url.port);
  auto written = co_await (asio::async_write(socket, asio::buffer(request), token) || deadline.async_wait(token));
  if (written.index() == 1) co_return timed_out(options.deadline);
  if (const auto [error, size] = std::get<0>(written); error) co_return failed(error, error.message());

  HttpResponseReader reader(options.limits);
  std::array<char, 16 * 1024> buffer;
  while (reader.state() == HttpResponseReader::State::need_more) {
    auto read = co_await (socket.async_read_some(asio::buffer(buffer), token) || deadline.async_wait(token));
    if (read.index() == 1) co_return timed_out(options.deadline);
    const auto [error, size] = std::get<0>(read);
    if (error == asio::error::eof) reader.finish();
    else if (error) co_return failed(error, error.message());
    else reader.feed({buffer.data(), size});
  }
  if (reader.state() == HttpResponseReader::State::failed)
    co_return failed(make_error_code(Errc::bad_http_answer), reader.error());
  if (reader.status() != 200) {
    const auto location = reader.header("Location");
    co_return failed(make_error_code(Errc::bad_http_answer),
                     location ? fmt::format("HTTP status {} (redirects are not followed)", reader.status())
                              : fmt::format("HTTP status {}", reader.status()));
  }
  co_return HttpGetResult{{}, {}, reader.body()};
}

}  // namespace natkeeper::upnp
