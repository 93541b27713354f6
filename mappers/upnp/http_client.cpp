#include "mappers/upnp/http_client.hpp"

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

constexpr auto token = asio::as_tuple(asio::use_awaitable);

HttpAnswer failed(std::error_code error, std::string detail) {
  return HttpAnswer{error, std::move(detail), 0, {}};
}

std::string request_text(const HttpRequest& request) {
  auto text = fmt::format("{} {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nUser-Agent: natkeeper\r\n",
                          request.method, request.url.path, request.url.host, request.url.port);
  for (const auto& [name, value] : request.headers) text += fmt::format("{}: {}\r\n", name, value);
  if (request.method != "GET") text += fmt::format("Content-Length: {}\r\n", request.body.size());
  text += "\r\n";
  text += request.body;
  return text;
}

// The exchange without its deadline: http_exchange cancels it when that passes.
asio::awaitable<HttpAnswer> exchange(asio::ip::tcp::socket& socket, asio::ip::tcp::endpoint server, std::string request,
                                     HttpResponseLimits limits) {
  if (const auto [error] = co_await socket.async_connect(server, token); error) co_return failed(error, error.message());
  if (const auto [error, size] = co_await asio::async_write(socket, asio::buffer(request), token); error)
    co_return failed(error, error.message());
  HttpResponseReader reader(limits);
  std::array<char, 16 * 1024> buffer;
  bool answered = false;
  while (reader.state() == HttpResponseReader::State::need_more) {
    const auto [error, size] = co_await socket.async_read_some(asio::buffer(buffer), token);
    if (error == asio::error::eof && !answered) {
      // As good as a refused connection: nothing there serves.
      co_return failed(make_error_code(Errc::no_gateway_answer), "the connection closed without an answer");
    }
    if (error == asio::error::eof) {
      reader.finish();
    } else if (error) {
      co_return failed(error, error.message());
    } else {
      answered = true;
      reader.feed({buffer.data(), size});
    }
  }
  if (reader.state() == HttpResponseReader::State::failed)
    co_return failed(make_error_code(Errc::bad_http_answer), reader.error());
  co_return HttpAnswer{{}, {}, reader.status(), reader.body()};
}

}  // namespace

asio::awaitable<HttpAnswer> http_exchange(HttpRequest request, HttpOptions options) {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address_v4(request.url.host, ec);
  if (ec) co_return failed(make_error_code(Errc::bad_http_answer), "the URL's host is not an IPv4 address");

  const auto executor = co_await asio::this_coro::executor;
  asio::ip::tcp::socket socket(executor);
  asio::steady_timer deadline(executor, options.deadline);
  // Named before co_await: GCC 12 may destroy a temporary of a co_await expression twice.
  auto exchanging = exchange(socket, {address, request.url.port}, request_text(request), options.limits);
  auto outcome = co_await (std::move(exchanging) || deadline.async_wait(token));
  if (outcome.index() == 0) co_return std::move(std::get<0>(outcome));
  // The timer ends with an error only when the exchange as a whole was cancelled.
  if (const auto [error] = std::get<1>(outcome); error) co_return failed(error, error.message());
  co_return failed(make_error_code(Errc::timed_out),
                   fmt::format("no complete answer within {} ms", options.deadline.count()));
}

asio::awaitable<HttpAnswer> http_get(HttpUrl url, HttpOptions options) {
  HttpRequest request{"GET", std::move(url), {}, {}};
  auto answer = co_await http_exchange(std::move(request), options);
  if (answer.error || answer.status == 200) co_return answer;
  co_return failed(make_error_code(Errc::bad_http_answer),
                   answer.status / 100 == 3 ? fmt::format("HTTP status {} (redirects are not followed)", answer.status)
                                            : fmt::format("HTTP status {}", answer.status));
}

}  // namespace natkeeper::upnp
