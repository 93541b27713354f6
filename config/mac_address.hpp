#pragma once
// An Ethernet (EUI-48) address: how a device is named when its IP address
// may change.
#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace natkeeper {

struct MacAddress {
  std::array<std::uint8_t, 6> bytes{};
  auto operator<=>(const MacAddress&) const = default;
};

// "54:e0:19:aa:bb:cc" or "54-E0-19-AA-BB-CC": six two-digit hex groups, one
// separator throughout.
std::optional<MacAddress> parse_mac(std::string_view text);
// Lower case, colons: "54:e0:19:aa:bb:cc".
std::string to_string(const MacAddress& mac);

}  // namespace natkeeper
