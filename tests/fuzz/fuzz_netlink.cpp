// rtnetlink datagrams come from the kernel, but the codec must not trust
// their lengths: any bytes parse to a bounded list of changes, never reading
// past the datagram (libFuzzer's buffer is exactly `size` long, so ASan sees
// any overread).
#include <span>

#include "agent/codecs/netlink_codec.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(netlink) {
  namespace netlink = natkeeper::netlink;
  const auto changes = netlink::parse_notifications(std::span<const std::uint8_t>(data, size));
  if (changes.size() > netlink::kMaxChangesPerDatagram) __builtin_trap();
  for (const auto& change : changes) {
    const bool link = change.kind == netlink::ChangeKind::link_up || change.kind == netlink::ChangeKind::link_down;
    // IFNAMSIZ - 1 characters at most; only links have names.
    if (change.interface_name.size() > 15 || (!link && !change.interface_name.empty())) __builtin_trap();
  }
  return 0;
}
