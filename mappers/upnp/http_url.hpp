#pragma once
// http URLs as natkeeper uses them (IGD description locations, --igd): a pure
// text codec, no I/O.
#include <boost/system/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace natkeeper::upnp {

struct HttpUrl {
  std::string host;  // as written: a name or an IPv4 literal
  std::uint16_t port = 80;
  std::string path;  // starts with '/'
};

enum class HttpUrlError {
  not_http = 1,   // the scheme is not http://
  bad_authority,  // no host, userinfo, or an IPv6 literal
  bad_port,       // not a number from 1 to 65535
  unprintable,    // spaces, control or non-ASCII characters
};

// Plain http URLs only: http://host[:port][/path]. No userinfo, no IPv6.
// Use `*result` / `result->` after checking; `.value()` is not available for
// this error type.
boost::system::result<HttpUrl, HttpUrlError> parse_http_url(std::string_view url);

}  // namespace natkeeper::upnp
