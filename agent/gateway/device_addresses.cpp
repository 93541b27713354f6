#include "agent/gateway/device_addresses.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "agent/gateway/neighbours.hpp"

namespace natkeeper {
namespace {

bool on_subnet(const asio::ip::address_v4& address, const LocalInterface& lan) {
  const auto mask = lan.netmask.to_uint();
  return (address.to_uint() & mask) == (lan.address.to_uint() & mask);
}

}  // namespace

config::DeviceAddresses recorded_addresses(const config::Config& config, config::DeviceAddresses addresses,
                                           const state::ServiceState& recorded) {
  addresses.resize(config.devices.size());
  for (std::size_t i = 0; i < config.devices.size(); ++i) {
    const auto& device = config.devices[i];
    if (addresses[i] || !device.mac || device.name.empty()) continue;
    for (const auto& mapping : recorded.mappings) {
      boost::system::error_code bad;
      const auto address = asio::ip::make_address_v4(mapping.internal_client, bad);
      if (mapping.device == device.name && !bad) addresses[i] = address;
    }
  }
  return addresses;
}

bool follows_macs(const config::Config& config) {
  return std::any_of(config.devices.begin(), config.devices.end(), [](const auto& d) { return d.mac.has_value(); });
}

config::DeviceAddresses carry_over(const config::Config& before, const config::DeviceAddresses& addresses,
                                   const config::Config& after) {
  config::DeviceAddresses carried;
  for (const auto& device : after.devices) {
    auto address = device.address;
    for (std::size_t i = 0; i < before.devices.size() && i < addresses.size(); ++i) {
      const auto& old = before.devices[i];
      if (device.mac && device.mac == old.mac) address = addresses[i];
    }
    carried.push_back(address);
  }
  return carried;
}

DeviceLookup look_up_devices(const config::Config& config, const LocalInterface& lan,
                             std::span<const netlink::Neighbour> table, const config::DeviceAddresses& previous) {
  DeviceLookup lookup;
  for (std::size_t i = 0; i < config.devices.size(); ++i) {
    const auto& device = config.devices[i];
    const auto known = i < previous.size() ? previous[i] : std::nullopt;
    auto address = device.address;
    if (device.mac) address = current_ipv4_address(table, *device.mac);
    if (device.mac && !address) {
      address = known;
      if (!known)
        lookup.problems.push_back(fmt::format("device {}: {}", config::label(device),
                                              how_to_make_visible(*device.mac, lan.name, std::nullopt)));
    }
    if (address && (!on_subnet(*address, lan) || *address == lan.address)) {
      lookup.problems.push_back(fmt::format(
          "device {}: {} is {}: the gateway forwards ports only to other devices on {} ({}/{})", config::label(device),
          address->to_string(), *address == lan.address ? "this host's own address" : "not on the gateway's LAN",
          lan.name, lan.address.to_string(), lan.netmask.to_string()));
      address.reset();
    }
    lookup.addresses.push_back(address);
  }
  return lookup;
}

DeviceLookup look_up_devices(const config::Config& config, const LocalInterface& lan,
                             const config::DeviceAddresses& previous) {
  if (!follows_macs(config)) return look_up_devices(config, lan, std::span<const netlink::Neighbour>{}, previous);
  auto table = read_neighbour_table({IpFamily::ipv4, lan.name});
  if (!table) {
    auto lookup = look_up_devices(config, lan, std::span<const netlink::Neighbour>{}, previous);
    lookup.problems.insert(lookup.problems.begin(),
                           fmt::format("cannot read the neighbour table of {}: {}", lan.name, table.error().message()));
    return lookup;
  }
  return look_up_devices(config, lan, *table, previous);
}

}  // namespace natkeeper
