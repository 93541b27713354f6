// rtnetlink datagrams come from the kernel, but the codec must not trust
// their lengths: any bytes parse to a bounded list of changes, or of
// neighbour entries, never reading past the datagram (libFuzzer's buffer is
// exactly `size` long, so ASan sees any overread).
#include <linux/neighbour.h>
#include <linux/netlink.h>

#include <span>

#include "agent/codecs/netlink_codec.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(netlink) {
  namespace netlink = natkeeper::netlink;
  const std::span<const std::uint8_t> datagram(data, size);
  const auto changes = netlink::parse_notifications(datagram);
  if (changes.size() > netlink::kMaxChangesPerDatagram) __builtin_trap();
  for (const auto& change : changes) {
    const bool link = change.kind == netlink::ChangeKind::link_up || change.kind == netlink::ChangeKind::link_down;
    // IFNAMSIZ - 1 characters at most; only links have names.
    if (change.interface_name.size() > 15 || (!link && !change.interface_name.empty())) __builtin_trap();
  }

  const auto neighbours = netlink::parse_neighbours(datagram);
  if (neighbours.neighbours.size() > netlink::kMaxNeighboursPerDatagram) __builtin_trap();
  // Each entry took a message header, an ndmsg and an NDA_DST at least.
  constexpr std::size_t kSmallestEntry = sizeof(nlmsghdr) + sizeof(ndmsg) + 4 + 4;
  if (neighbours.neighbours.size() * kSmallestEntry > size) __builtin_trap();
  if (neighbours.error < 0 || neighbours.error > 4095 || (neighbours.error != 0 && !neighbours.dump_done))
    __builtin_trap();
  return 0;
}
