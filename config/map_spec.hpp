#pragma once
#include <boost/system/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mappers/transport.hpp"

namespace natkeeper::config {

struct PortRange {
  Transport proto = Transport::udp;
  std::uint16_t first = 0;
  std::uint16_t last = 0;  // inclusive
  std::size_t size() const { return static_cast<std::size_t>(last) - first + 1; }
  bool operator==(const PortRange&) const = default;
};

inline constexpr std::string_view kMapSpecSyntax =
    "PROTO:PORT[-PORT] with PROTO tcp, udp or tcp+udp and ports 1-65535, "
    "e.g. udp:7076-7077 or tcp+udp:15063";

// "udp:7076-7077", "tcp+udp:15063" -> one range per transport (tcp first).
// The error text says what was wrong and what is expected.
boost::system::result<std::vector<PortRange>, std::string> parse_map_spec(std::string_view spec);

// "16500-16599" or "16500": a port or an inclusive range, 1-65535.
boost::system::result<std::pair<std::uint16_t, std::uint16_t>, std::string> parse_port_range(
    std::string_view text);

}  // namespace natkeeper::config
