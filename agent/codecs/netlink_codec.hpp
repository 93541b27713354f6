#pragma once
// rtnetlink notifications (RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE)
// as a pure codec: one datagram from the kernel in, the IPv4 network changes
// in it out. No I/O; malformed input yields what was valid before it.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace natkeeper::netlink {

enum class ChangeKind { link_up, link_down, address_added, address_removed, route_added, route_removed };

struct Change {
  ChangeKind kind = ChangeKind::link_up;
  int interface_index = 0;
  std::string interface_name;  // links only (IFLA_IFNAME), when present
  std::uint32_t address = 0;   // addresses: IFA_LOCAL (or IFA_ADDRESS), host byte order
  bool default_route = false;  // routes: destination 0.0.0.0/0 in the main table
};

// At most this many changes are returned per datagram.
inline constexpr std::size_t kMaxChangesPerDatagram = 256;

std::vector<Change> parse_notifications(std::span<const std::uint8_t> datagram);

}  // namespace natkeeper::netlink
