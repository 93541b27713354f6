#pragma once
// rtnetlink as a pure codec: one datagram from the kernel in, what it says
// out: the IPv4 network changes of a notification (RTMGRP_LINK,
// RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE), or the neighbour table's entries of
// a dump or an RTNLGRP_NEIGH notification. No I/O; malformed input yields what
// was valid before it.
#include <boost/asio/ip/address.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "config/mac_address.hpp"

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

// An entry of the kernel's neighbour table (ARP for IPv4, NDP for IPv6), from
// RTM_NEWNEIGH or RTM_DELNEIGH.
struct Neighbour {
  bool removed = false;  // RTM_DELNEIGH
  int interface_index = 0;
  boost::asio::ip::address address;  // NDA_DST; its family is the entry's
  // NDA_LLADDR when it is an Ethernet address; the kernel sends it only for
  // entries in a NUD_VALID state, and other links' addresses have other sizes.
  std::optional<MacAddress> link_address;
  std::uint16_t state = 0;  // NUD_* bits
  std::uint8_t flags = 0;   // NTF_* bits
  // NDA_CACHEINFO's ndm_updated: how long ago the entry last changed, in
  // clock ticks (USER_HZ, sysconf(_SC_CLK_TCK)), when the kernel sent it.
  std::optional<std::uint32_t> ticks_since_update;
};

struct NeighbourMessages {
  std::vector<Neighbour> neighbours;  // IPv4 and IPv6 entries; others (bridge FDB) are skipped
  bool dump_done = false;  // NLMSG_DONE or NLMSG_ERROR: nothing follows
  int error = 0;           // the errno that ended the dump, or 0
};

// Each datagram holds fewer entries than this (a neighbour message takes at
// least 36 bytes and the kernel's datagrams at most 32 KiB).
inline constexpr std::size_t kMaxNeighboursPerDatagram = 2048;

NeighbourMessages parse_neighbours(std::span<const std::uint8_t> datagram);

}  // namespace natkeeper::netlink
