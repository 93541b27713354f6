#pragma once
// For the unit tests' loopback HTTP servers: one request as it arrived.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <optional>
#include <string>

namespace natkeeper::testing {

// The head and the Content-Length bytes of body that follow it (fewer if the
// peer closes first); nullopt when no whole head arrives.
inline boost::asio::awaitable<std::optional<std::string>> read_http_request(boost::asio::ip::tcp::socket& socket) {
  namespace asio = boost::asio;
  constexpr auto token = asio::as_tuple(asio::use_awaitable);
  std::string request;
  auto [read_error, head_size] = co_await asio::async_read_until(socket, asio::dynamic_buffer(request), "\r\n\r\n", token);
  if (read_error) co_return std::nullopt;
  const auto length_at = request.find("Content-Length: ");
  const auto body_size = length_at == std::string::npos ? 0 : std::stoul(request.substr(length_at + 16));
  while (request.size() < head_size + body_size) {
    char chunk[1024];
    auto [body_error, got] = co_await socket.async_read_some(asio::buffer(chunk), token);
    if (body_error) break;
    request.append(chunk, got);
  }
  co_return request;
}

}  // namespace natkeeper::testing
