#include "config/mac_address.hpp"

#include <fmt/format.h>

namespace natkeeper {
namespace {

std::optional<std::uint8_t> hex_digit(char c) {
  if (c >= '0' && c <= '9') return static_cast<std::uint8_t>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<std::uint8_t>(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return static_cast<std::uint8_t>(c - 'A' + 10);
  return std::nullopt;
}

}  // namespace

std::optional<MacAddress> parse_mac(std::string_view text) {
  constexpr std::size_t kLength = 17;  // 6 groups of 2 digits, 5 separators
  if (text.size() != kLength) return std::nullopt;
  const char separator = text[2];
  if (separator != ':' && separator != '-') return std::nullopt;
  MacAddress mac;
  for (std::size_t group = 0; group < mac.bytes.size(); ++group) {
    const auto at = group * 3;
    const auto high = hex_digit(text[at]), low = hex_digit(text[at + 1]);
    if (!high || !low) return std::nullopt;
    if (group + 1 < mac.bytes.size() && text[at + 2] != separator) return std::nullopt;
    mac.bytes[group] = static_cast<std::uint8_t>(*high << 4 | *low);
  }
  return mac;
}

std::string to_string(const MacAddress& mac) {
  const auto& b = mac.bytes;
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5]);
}

}  // namespace natkeeper
