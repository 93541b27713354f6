#include "config/map_spec.hpp"

#include <fmt/format.h>

#include <charconv>

namespace natkeeper::config {
namespace {

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value == 0 ||
      value > 65535)
    return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

}  // namespace

boost::system::result<std::pair<std::uint16_t, std::uint16_t>, std::string> parse_port_range(
    std::string_view text) {
  const auto dash = text.find('-');
  const auto first = parse_port(text.substr(0, dash));
  const auto last = dash == std::string_view::npos ? first : parse_port(text.substr(dash + 1));
  if (!first || !last) return fmt::format("'{}' is not a port (1-65535) or a range like 16500-16599", text);
  if (*last < *first) return fmt::format("range '{}' ends before it starts", text);
  return std::pair{*first, *last};
}

boost::system::result<std::vector<PortRange>, std::string> parse_map_spec(std::string_view spec) {
  const auto colon = spec.find(':');
  if (colon == std::string_view::npos)
    return fmt::format("'{}': missing ':'; expected {}", spec, kMapSpecSyntax);
  const auto protocols = spec.substr(0, colon);
  std::vector<Transport> transports;
  if (protocols == "tcp+udp" || protocols == "udp+tcp") transports = {Transport::tcp, Transport::udp};
  else if (auto one = parse_transport(protocols)) transports = {*one};
  else return fmt::format("'{}': unknown protocol '{}'; expected {}", spec, protocols, kMapSpecSyntax);

  const auto range = parse_port_range(spec.substr(colon + 1));
  if (!range) return fmt::format("'{}': {}; expected {}", spec, range.error(), kMapSpecSyntax);
  std::vector<PortRange> ranges;
  for (auto proto : transports) ranges.push_back({proto, range->first, range->second});
  return ranges;
}

}  // namespace natkeeper::config
