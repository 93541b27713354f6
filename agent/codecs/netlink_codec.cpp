#include "agent/codecs/netlink_codec.hpp"

#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
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
  const bool up = (header.ifi_flags & IFF_UP) != 0 && (header.ifi_flags & (IFF_RUNNING | IFF_LOWER_UP)) != 0;
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

}  // namespace

std::vector<Change> parse_notifications(std::span<const std::uint8_t> datagram) {
  std::vector<Change> changes;
  Bytes rest = datagram;
  while (rest.size() >= sizeof(nlmsghdr) && changes.size() < kMaxChangesPerDatagram) {
    const auto header = copy_out<nlmsghdr>(rest);
    if (header.nlmsg_len < sizeof(nlmsghdr) || header.nlmsg_len > rest.size()) break;
    const auto payload = rest.subspan(sizeof(nlmsghdr), header.nlmsg_len - sizeof(nlmsghdr));
    if (!parse_message(header.nlmsg_type, payload, changes)) break;
    rest = rest.subspan(std::min(align4(header.nlmsg_len), rest.size()));
  }
  return changes;
}

}  // namespace natkeeper::netlink
