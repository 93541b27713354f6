#pragma once
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <string>
#include <system_error>

#include "mappers/upnp/http_response.hpp"
#include "mappers/upnp/http_url.hpp"

namespace natkeeper::upnp {

struct HttpGetOptions {
  // For the whole exchange, connect to last byte: a device that trickles or
  // never answers costs this much and no more.
  std::chrono::milliseconds deadline{5000};
  HttpResponseLimits limits;
};

struct HttpGetResult {
  std::error_code error;  // none: `body` is a 200 answer's
  std::string detail;     // why it failed, for the log
  std::string body;
};

// GET `url` over one connection, redirects not followed. The host must be an
// IPv4 literal: a name could resolve anywhere, and the LAN gateway has none.
boost::asio::awaitable<HttpGetResult> http_get(const HttpUrl& url, HttpGetOptions options);

}  // namespace natkeeper::upnp
