#include "agent/codecs/netlink_codec.hpp"

#include <linux/if.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "mappers/byte_order.hpp"

namespace natkeeper::netlink {
namespace {

using Bytes = std::span<const std::uint8_t>;

// NLMSG_ALIGN and RTA_ALIGN: messages and attributes start on 4-byte boundaries.
constexpr std::size_t align4(std::size_t size) { return (size + 3) & ~std::size_t{3}; }

// The kernel's structs as they are laid out in `bytes`, which the caller has
// checked to hold sizeof(T); copied, as the datagram need not be aligned for T.
template <class T>
T copy_out(Bytes bytes) {
  T value{};
  std::memcpy(&value, bytes.data(), sizeof value);
  return value;
}

// Calls visit(type, payload) for each attribute of `area`; false when an
// attribute's length is inconsistent or `visit` rejects its payload.
template <class Visit>
bool visit_attributes(Bytes area, Visit visit) {
  while (area.size() >= sizeof(rtattr)) {
    const auto attribute = copy_out<rtattr>(area);
    if (attribute.rta_len < sizeof(rtattr) || attribute.rta_len > area.size()) return false;
    const auto type = static_cast<std::uint16_t>(attribute.rta_type & NLA_TYPE_MASK);
    if (!visit(type, area.subspan(sizeof(rtattr), attribute.rta_len - sizeof(rtattr)))) return false;
    area = area.subspan(std::min(align4(attribute.rta_len), area.size()));
  }
  return area.empty();
}

// Calls parse(type, payload) for each message of `datagram` while it returns
// true; stops at the first message whose length is inconsistent.
template <class Parse>
void visit_messages(Bytes datagram, Parse parse) {
  while (datagram.size() >= sizeof(nlmsghdr)) {
    const auto header = copy_out<nlmsghdr>(datagram);
    if (header.nlmsg_len < sizeof(nlmsghdr) || header.nlmsg_len > datagram.size()) return;
    if (!parse(header.nlmsg_type, datagram.subspan(sizeof(nlmsghdr), header.nlmsg_len - sizeof(nlmsghdr)))) return;
    datagram = datagram.subspan(std::min(align4(header.nlmsg_len), datagram.size()));
  }
}

// The attributes following a message's family header.
template <class FamilyHeader>
Bytes attribute_area(Bytes payload) {
  return payload.subspan(std::min(align4(sizeof(FamilyHeader)), payload.size()));
}

// Each parser returns false for a malformed message and appends its change, if any.

bool parse_link(std::uint16_t type, Bytes payload, std::vector<Change>& changes) {
  if (payload.size() < sizeof(ifinfomsg)) return false;
  const auto header = copy_out<ifinfomsg>(payload);
  Change change;
  change.interface_index = header.ifi_index;
  // One flag at a time: glibc's <net/if.h> (through Asio) and <linux/if.h> name them in different enums.
  const auto flag = [&](unsigned bit) { return (header.ifi_flags & bit) != 0; };
  const bool up = flag(IFF_UP) && (flag(IFF_RUNNING) || flag(IFF_LOWER_UP));
  change.kind = type == RTM_NEWLINK && up ? ChangeKind::link_up : ChangeKind::link_down;
  const bool valid = visit_attributes(attribute_area<ifinfomsg>(payload), [&](std::uint16_t attribute, Bytes value) {
    if (attribute == IFLA_IFNAME) {
      const auto end = std::find(value.begin(), value.end(), std::uint8_t{0});
      const auto length = std::min<std::size_t>(static_cast<std::size_t>(end - value.begin()), IFNAMSIZ - 1);
      change.interface_name.assign(reinterpret_cast<const char*>(value.data()), length);
    }
    return true;
  });
  if (!valid) return false;
  changes.push_back(std::move(change));
  return true;
}

bool parse_address(std::uint16_t type, Bytes payload, std::vector<Change>& changes) {
  if (payload.size() < sizeof(ifaddrmsg)) return false;
  const auto header = copy_out<ifaddrmsg>(payload);
  if (header.ifa_family != AF_INET) return true;
  std::optional<std::uint32_t> local;
  std::optional<std::uint32_t> address;
  const bool valid = visit_attributes(attribute_area<ifaddrmsg>(payload), [&](std::uint16_t attribute, Bytes value) {
    if (attribute != IFA_LOCAL && attribute != IFA_ADDRESS) return true;
    if (value.size() != 4) return false;
    (attribute == IFA_LOCAL ? local : address) = wire::get32(value, 0);
    return true;
  });
  if (!valid) return false;
  if (!local && !address) return true;
  Change change;
  change.kind = type == RTM_NEWADDR ? ChangeKind::address_added : ChangeKind::address_removed;
  change.interface_index = static_cast<int>(header.ifa_index);
  change.address = local.value_or(address.value_or(0));
  changes.push_back(std::move(change));
  return true;
}

bool parse_route(std::uint16_t type, Bytes payload, std::vector<Change>& changes) {
  if (payload.size() < sizeof(rtmsg)) return false;
  const auto header = copy_out<rtmsg>(payload);
  if (header.rtm_family != AF_INET) return true;
  // RTA_TABLE carries table ids above 255, for which rtm_table says RT_TABLE_COMPAT.
  std::uint32_t table = header.rtm_table;
  int output_interface = 0;
  const bool valid = visit_attributes(attribute_area<rtmsg>(payload), [&](std::uint16_t attribute, Bytes value) {
    if (attribute != RTA_TABLE && attribute != RTA_OIF) return true;
    if (value.size() != 4) return false;
    if (attribute == RTA_TABLE) table = copy_out<std::uint32_t>(value);
    else output_interface = static_cast<int>(copy_out<std::uint32_t>(value));
    return true;
  });
  if (!valid) return false;
  if (table != RT_TABLE_MAIN) return true;
  Change change;
  change.kind = type == RTM_NEWROUTE ? ChangeKind::route_added : ChangeKind::route_removed;
  change.interface_index = output_interface;
  change.default_route = header.rtm_dst_len == 0;
  changes.push_back(std::move(change));
  return true;
}

bool parse_message(std::uint16_t type, Bytes payload, std::vector<Change>& changes) {
  switch (type) {
    case RTM_NEWLINK:
    case RTM_DELLINK:
      return parse_link(type, payload, changes);
    case RTM_NEWADDR:
    case RTM_DELADDR:
      return parse_address(type, payload, changes);
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
      return parse_route(type, payload, changes);
    default:
      return true;  // NLMSG_NOOP, NLMSG_DONE, NLMSG_ERROR, and what was not subscribed to
  }
}

// Returns false for a malformed message; appends the entry, if it is one of an IP family.
bool parse_neighbour(std::uint16_t type, Bytes payload, std::vector<Neighbour>& neighbours) {
  if (payload.size() < sizeof(ndmsg)) return false;
  const auto header = copy_out<ndmsg>(payload);
  if (header.ndm_family != AF_INET && header.ndm_family != AF_INET6) return true;
  const std::size_t address_size = header.ndm_family == AF_INET ? 4 : 16;
  Neighbour neighbour;
  neighbour.removed = type == RTM_DELNEIGH;
  neighbour.interface_index = header.ndm_ifindex;
  neighbour.state = header.ndm_state;
  neighbour.flags = header.ndm_flags;
  bool has_address = false;
  const bool valid = visit_attributes(attribute_area<ndmsg>(payload), [&](std::uint16_t attribute, Bytes value) {
    switch (attribute) {
      case NDA_DST:
        if (value.size() != address_size) return false;
        if (address_size == 4) {
          neighbour.address = boost::asio::ip::address_v4(wire::get32(value, 0));
        } else {
          boost::asio::ip::address_v6::bytes_type bytes;
          std::copy(value.begin(), value.end(), bytes.begin());
          neighbour.address = boost::asio::ip::address_v6(bytes);
        }
        has_address = true;
        return true;
      case NDA_LLADDR:
        if (value.size() == MacAddress{}.bytes.size()) {
          MacAddress mac;
          std::copy(value.begin(), value.end(), mac.bytes.begin());
          neighbour.link_address = mac;
        }
        return true;
      case NDA_CACHEINFO:
        if (value.size() < sizeof(nda_cacheinfo)) return false;
        neighbour.ticks_since_update = copy_out<nda_cacheinfo>(value).ndm_updated;
        return true;
      default:
        return true;
    }
  });
  if (!valid) return false;
  if (has_address) neighbours.push_back(std::move(neighbour));
  return true;
}

}  // namespace

std::vector<Change> parse_notifications(std::span<const std::uint8_t> datagram) {
  std::vector<Change> changes;
  visit_messages(datagram, [&](std::uint16_t type, Bytes payload) {
    return parse_message(type, payload, changes) && changes.size() < kMaxChangesPerDatagram;
  });
  return changes;
}

NeighbourMessages parse_neighbours(std::span<const std::uint8_t> datagram) {
  NeighbourMessages result;
  visit_messages(datagram, [&](std::uint16_t type, Bytes payload) {
    switch (type) {
      case RTM_NEWNEIGH:
      case RTM_DELNEIGH:
        return parse_neighbour(type, payload, result.neighbours) &&
               result.neighbours.size() < kMaxNeighboursPerDatagram;
      case NLMSG_DONE:
      case NLMSG_ERROR: {
        // Both begin with an int: 0, or the negative errno that ended the dump
        // (errnos end at 4095: a larger number names no reason).
        result.dump_done = true;
        const int code = payload.size() >= sizeof(int) ? copy_out<int>(payload) : 0;
        if (code < 0) result.error = code >= -4095 ? -code : EPROTO;
        return false;
      }
      default:
        return true;
    }
  });
  return result;
}

}  // namespace natkeeper::netlink
