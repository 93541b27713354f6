#pragma once
// natkeeper's own HTTP client for UPnP (description fetches and SOAP calls):
// one exchange per connection, bounded in time and bytes, cancellable through
// Asio's per-operation cancellation.
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "mappers/upnp/http_response.hpp"
#include "mappers/upnp/http_url.hpp"

namespace natkeeper::upnp {

struct HttpOptions {
  // For the whole exchange, connect to last byte: a device that trickles or
  // never answers costs this much and no more.
  std::chrono::milliseconds deadline{5000};
  HttpResponseLimits limits;
};

struct HttpRequest {
  std::string method;  // "GET", "POST"
  HttpUrl url;
  // Besides Host, Connection, User-Agent and (with a body) Content-Length.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct HttpAnswer {
  // None: `status` and `body` are the complete answer's. Errc::timed_out past
  // the deadline; Errc::no_gateway_answer for a connection closed before a
  // byte of answer; Errc::bad_http_answer for one that is malformed or over
  // the limits; the socket's error otherwise.
  std::error_code error;
  std::string detail;  // why it failed, for the log
  int status = 0;
  std::string body;
};

// `request` over one connection. The host must be an IPv4 literal: a name
// could resolve anywhere, and the LAN gateway has none.
boost::asio::awaitable<HttpAnswer> http_exchange(HttpRequest request, HttpOptions options);

// GET `url`: an answer other than 200 is Errc::bad_http_answer (redirects are
// not followed).
boost::asio::awaitable<HttpAnswer> http_get(HttpUrl url, HttpOptions options);

}  // namespace natkeeper::upnp
