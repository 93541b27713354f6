#include "agent/gateway/lan_devices.hpp"

#include "agent/gateway/neighbours.hpp"

namespace natkeeper {

std::vector<LanDevice> lan_devices(std::span<const netlink::Neighbour> table, const OuiRegistry& registry) {
  std::vector<LanDevice> devices;
  for (const auto& [mac, address] : current_ipv4_addresses(table)) {
    const auto vendor = registry.vendor(mac);
    devices.push_back({address, mac, vendor ? std::optional<std::string>(*vendor) : std::nullopt,
                       registry.is_ring(mac)});
  }
  return devices;
}

Result<std::vector<LanDevice>> find_lan_devices(const std::string& interface_name, const OuiRegistry& registry) {
  auto table = read_neighbour_table({IpFamily::ipv4, interface_name});
  if (!table) return table.error();
  return lan_devices(*table, registry);
}

}  // namespace natkeeper
