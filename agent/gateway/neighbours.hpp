#pragma once
// The kernel's neighbour table: which LAN device (by MAC) has which address
// now, for mapping ports to a device named by its MAC.
#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/codecs/netlink_codec.hpp"
#include "config/mac_address.hpp"
#include "mappers/result.hpp"

namespace natkeeper {

namespace asio = boost::asio;

enum class IpFamily { ipv4, ipv6 };

struct NeighbourQuery {
  IpFamily family = IpFamily::ipv4;
  std::string interface_name;  // empty: every interface
};

// The table as a netlink dump (RTM_GETNEIGH) returns it, within
// kNeighbourDumpTimeout and kMaxNeighbourDumpBytes (Errc::timed_out,
// std::errc::message_size beyond them); an unknown interface is ENODEV.
Result<std::vector<netlink::Neighbour>> read_neighbour_table(const NeighbourQuery& query = {});

// Enough for the kernel's default table size (gc_thresh3, 1024 entries) many times over.
inline constexpr std::size_t kMaxNeighbourDumpBytes = 4 * 1024 * 1024;
inline constexpr std::chrono::milliseconds kNeighbourDumpTimeout{2000};

struct DeviceAddress {
  MacAddress mac;
  asio::ip::address_v4 address;
};

// The IPv4 address `mac` has now. After a DHCP renumbering the table can
// hold the old and the new address: entries that prove nothing (FAILED,
// INCOMPLETE, without a link-layer address) are skipped; REACHABLE wins over
// DELAY, PROBE, PERMANENT and NOARP, which win over STALE; among equals, the
// entry updated last.
std::optional<asio::ip::address_v4> current_ipv4_address(std::span<const netlink::Neighbour> table,
                                                         const MacAddress& mac);
// Every device's current IPv4 address by the same rule, one per MAC, in
// address order; group (multicast) MACs and the loopback's 0.0.0.0 entry
// (MAC 00:00:00:00:00:00) are no device.
std::vector<DeviceAddress> current_ipv4_addresses(std::span<const netlink::Neighbour> table);

// What the user can do when `mac` is not in `interface_name`'s table: the
// kernel lists only devices that talked with this host recently.
std::string how_to_make_visible(const MacAddress& mac, std::string_view interface_name,
                                std::optional<asio::ip::address> last_address);

}  // namespace natkeeper
