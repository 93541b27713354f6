#include "mappers/upnp/http_url.hpp"

#include <algorithm>
#include <charconv>

#include "mappers/upnp/ascii.hpp"

namespace natkeeper::upnp {

boost::system::result<HttpUrl, HttpUrlError> parse_http_url(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (!starts_with_ci(url, scheme)) return HttpUrlError::not_http;
  url.remove_prefix(scheme.size());
  const auto slash = url.find('/');
  const auto authority = url.substr(0, slash);
  HttpUrl parsed;
  parsed.path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  if (authority.empty() || authority.find('@') != std::string_view::npos ||
      authority.front() == '[')
    return HttpUrlError::bad_authority;
  const auto colon = authority.find(':');
  parsed.host = authority.substr(0, colon);
  if (parsed.host.empty()) return HttpUrlError::bad_authority;
  if (colon != std::string_view::npos) {
    const auto port_text = authority.substr(colon + 1);
    unsigned port = 0;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
      return HttpUrlError::bad_port;
    parsed.port = static_cast<std::uint16_t>(port);
  }
  const bool printable = std::all_of(url.begin(), url.end(), [](char c) {
    return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
  });
  if (!printable) return HttpUrlError::unprintable;
  return parsed;
}

}  // namespace natkeeper::upnp
