#include "agent/reflector/listen_address.hpp"

#include <string>

#include "agent/reflector/protocol.hpp"

namespace natkeeper::reflector {

namespace ip = boost::asio::ip;

std::optional<ip::udp::endpoint> parse_listen(std::string_view text) {
  std::string_view address = text, port;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    address = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.size() < 2 || rest[0] != ':') return std::nullopt;
      port = rest.substr(1);
    }
  } else if (const auto colon = text.find(':'); colon != std::string_view::npos && text.rfind(':') == colon) {
    address = text.substr(0, colon);  // one colon: IPv4:PORT (a bare IPv6 address has several)
    port = text.substr(colon + 1);
  }
  unsigned number = kDefaultPort;
  if (!port.empty() || text.ends_with(':')) {
    if (port.empty() || port.size() > 5) return std::nullopt;
    number = 0;
    for (const char c : port) {
      if (c < '0' || c > '9') return std::nullopt;
      number = number * 10 + static_cast<unsigned>(c - '0');
    }
    if (number == 0 || number > 65535) return std::nullopt;
  }
  boost::system::error_code ec;
  const auto parsed = ip::make_address(std::string(address), ec);
  if (ec) return std::nullopt;
  if (!text.starts_with('[') && parsed.is_v6() && !port.empty()) return std::nullopt;
  return ip::udp::endpoint(parsed, static_cast<std::uint16_t>(number));
}

}  // namespace natkeeper::reflector
