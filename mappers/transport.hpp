#pragma once
#include <cstdint>
#include <optional>
#include <string_view>

namespace natkeeper {

// Values are the IANA protocol numbers, which PCP puts on the wire as they are.
enum class Transport : std::uint8_t { tcp = 6, udp = 17 };

// "tcp" / "udp", as used in the CLI, the config and the JSON output.
std::string_view to_string(Transport proto);
// "TCP" / "UDP", as UPnP-IGD's NewProtocol argument wants it.
std::string_view to_upper_string(Transport proto);
std::optional<Transport> parse_transport(std::string_view text);

}  // namespace natkeeper
