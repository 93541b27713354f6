#pragma once
// What --find-devices prints, and the hint that a Ring device is on the LAN.
#include <nlohmann/json.hpp>

#include <optional>
#include <span>
#include <string>

#include "agent/gateway/lan_devices.hpp"

namespace natkeeper {

// {"devices": [{"address", "mac", "vendor" (or null), "ring"}]}, in the
// devices' order (find_lan_devices: by address).
nlohmann::json devices_json(std::span<const LanDevice> devices);
// A table: ADDRESS, MAC, RING, VENDOR.
std::string devices_text(std::span<const LanDevice> devices);

// One line when `devices` include Ring's: which they are, and the command
// that maps the Ring ports for them rather than for this host. For the caller
// to print when it mapped the Ring profile for this host.
std::optional<std::string> ring_hint(std::span<const LanDevice> devices);

}  // namespace natkeeper
