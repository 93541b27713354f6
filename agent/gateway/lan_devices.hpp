#pragma once
// The devices on this host's LAN, as --find-devices lists them.
#include <boost/asio/ip/address.hpp>

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "agent/codecs/netlink_codec.hpp"
#include "agent/gateway/oui_registry.hpp"
#include "config/mac_address.hpp"
#include "mappers/result.hpp"

namespace natkeeper {

struct LanDevice {
  boost::asio::ip::address address;
  MacAddress mac;
  std::optional<std::string> vendor;  // unknown without ieee-data, or for an unregistered block
  bool ring = false;                  // a block registered to Ring LLC
};

// One device per MAC at its current address (see current_ipv4_addresses),
// its vendor from `registry`; in address order. Pure.
std::vector<LanDevice> lan_devices(std::span<const netlink::Neighbour> table, const OuiRegistry& registry);

// The devices in the neighbour table of `interface_name` (the interface
// towards the gateway: GatewayPath::local.name).
Result<std::vector<LanDevice>> find_lan_devices(const std::string& interface_name, const OuiRegistry& registry);

}  // namespace natkeeper
