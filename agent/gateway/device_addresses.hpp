#pragma once
// Where each configured device is now: its configured address, or the
// address its MAC has in the neighbour table of the gateway's interface.
#include <span>
#include <string>
#include <vector>

#include "agent/codecs/netlink_codec.hpp"
#include "agent/codecs/state_codec.hpp"
#include "agent/gateway/netinfo.hpp"
#include "config/config.hpp"

namespace natkeeper {

struct DeviceLookup {
  config::DeviceAddresses addresses;  // one per config.devices entry
  // Why a device has no address to map for: not seen (and how to make it
  // seen), or not on the gateway's LAN. One message per such device.
  std::vector<std::string> problems;
};

// A device named by MAC takes its current address in `table`; one the table
// does not show keeps its address in `previous` (a quiet device drops out of
// the table, it has not moved). An address off the gateway's subnet, or this
// host's own, is no device the gateway can forward to.
DeviceLookup look_up_devices(const config::Config& config, const LocalInterface& lan,
                             std::span<const netlink::Neighbour> table, const config::DeviceAddresses& previous);
// The same, reading the table when a device is named by MAC.
DeviceLookup look_up_devices(const config::Config& config, const LocalInterface& lan,
                             const config::DeviceAddresses& previous);

// The addresses of `after`'s devices as far as `before` knew them (the same
// MAC); the configured address, or none, for the others.
config::DeviceAddresses carry_over(const config::Config& before, const config::DeviceAddresses& addresses,
                                   const config::Config& after);

// `addresses`, where a device named by MAC has none, completed with the
// address an earlier run recorded mappings for under the device's name: a
// device quiet at a restart has not moved.
config::DeviceAddresses recorded_addresses(const config::Config& config, config::DeviceAddresses addresses,
                                           const state::ServiceState& recorded);

// Whether any device is named by MAC: only then does the neighbour table matter.
bool follows_macs(const config::Config& config);

}  // namespace natkeeper
