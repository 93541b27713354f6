#pragma once
// http URLs as natkeeper uses them (IGD description locations, --igd): a pure
// text codec, no I/O.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace natkeeper::upnp {

struct HttpUrl {
  std::string host;  // as written: a name or an IPv4 literal
  std::uint16_t port = 80;
  std::string path;  // starts with '/'
};
// Plain http URLs only: http://host[:port][/path]. No userinfo, no IPv6.
std::optional<HttpUrl> parse_http_url(std::string_view url);

}  // namespace natkeeper::upnp
