#include <catch2/catch.hpp>

#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "agent/gateway/neighbours.hpp"
#include "netlink_messages.hpp"
#include "result_printer.hpp"

using namespace natkeeper;
using namespace natkeeper::netlink;
using namespace natkeeper::test;
using boost::asio::ip::make_address;
using boost::asio::ip::make_address_v4;

namespace {

const MacAddress kDoorbell = *parse_mac("54:e0:19:aa:bb:cc");
const MacAddress kLaptop = *parse_mac("02:00:00:00:00:02");

ndmsg neighbour_header(std::uint8_t family, int interface_index, std::uint16_t state, std::uint8_t flags = 0) {
  ndmsg header{};
  header.ndm_family = family;
  header.ndm_ifindex = interface_index;
  header.ndm_state = state;
  header.ndm_flags = flags;
  header.ndm_type = RTN_UNICAST;
  return header;
}

Bytes destination(const char* address) {
  const auto ip = make_address(address);
  if (ip.is_v4()) {
    const auto bytes = ip.to_v4().to_bytes();
    return attribute(NDA_DST, Bytes(bytes.begin(), bytes.end()));
  }
  const auto bytes = ip.to_v6().to_bytes();
  return attribute(NDA_DST, Bytes(bytes.begin(), bytes.end()));
}

Bytes link_layer(const MacAddress& mac) { return attribute(NDA_LLADDR, Bytes(mac.bytes.begin(), mac.bytes.end())); }

Bytes cache_info(std::uint32_t updated_ticks_ago) {
  nda_cacheinfo info{};
  info.ndm_confirmed = 7;
  info.ndm_used = 8;
  info.ndm_updated = updated_ticks_ago;
  info.ndm_refcnt = 1;
  Bytes payload;
  append(payload, info);
  return attribute(NDA_CACHEINFO, payload);
}

// An IPv4 entry of interface 4 as a dump shows it.
Bytes ipv4_entry(const char* address, const MacAddress& mac, std::uint16_t state, std::uint32_t updated_ticks_ago) {
  return message(RTM_NEWNEIGH, neighbour_header(AF_INET, 4, state),
                 {destination(address), link_layer(mac), cache_info(updated_ticks_ago)});
}

Bytes done(int error = 0) {
  auto out = bare_message(NLMSG_DONE, sizeof(int));
  std::memcpy(out.data() + sizeof(nlmsghdr), &error, sizeof error);
  return out;
}

NeighbourMessages parse(const Bytes& datagram) { return parse_neighbours(datagram); }

// An entry as the policy sees it.
Neighbour entry(const char* address, const MacAddress& mac, std::uint16_t state, std::optional<std::uint32_t> age) {
  Neighbour neighbour;
  neighbour.interface_index = 4;
  neighbour.address = make_address(address);
  neighbour.link_address = mac;
  neighbour.state = state;
  neighbour.ticks_since_update = age;
  return neighbour;
}

}  // namespace

TEST_CASE("neighbours: an IPv4 entry with its MAC, state and age", "[neighbours]") {
  const auto parsed = parse(ipv4_entry("192.168.1.50", kDoorbell, NUD_REACHABLE, 1234));
  REQUIRE(parsed.neighbours.size() == 1);
  const auto& neighbour = parsed.neighbours[0];
  CHECK_FALSE(neighbour.removed);
  CHECK(neighbour.interface_index == 4);
  CHECK(neighbour.address == make_address("192.168.1.50"));
  CHECK(neighbour.link_address == kDoorbell);
  CHECK(neighbour.state == NUD_REACHABLE);
  CHECK(neighbour.ticks_since_update == 1234u);
  CHECK_FALSE(parsed.dump_done);
  CHECK(parsed.error == 0);
}

TEST_CASE("neighbours: IPv6 entries, removals, flags, and entries without a MAC", "[neighbours]") {
  const auto datagram = concat({
      message(RTM_NEWNEIGH, neighbour_header(AF_INET6, 4, NUD_STALE, NTF_ROUTER),
              {destination("fe80::1"), link_layer(kLaptop)}),
      message(RTM_DELNEIGH, neighbour_header(AF_INET, 5, NUD_FAILED), {destination("10.0.0.9")}),
      // An IP tunnel's link-layer address is 4 bytes: no MAC, the entry still counts.
      message(RTM_NEWNEIGH, neighbour_header(AF_INET, 6, NUD_NOARP),
              {destination("10.0.0.10"), attribute(NDA_LLADDR, Bytes{10, 0, 0, 1})}),
  });
  const auto parsed = parse(datagram);
  REQUIRE(parsed.neighbours.size() == 3);
  CHECK(parsed.neighbours[0].address == make_address("fe80::1"));
  CHECK(parsed.neighbours[0].link_address == kLaptop);
  CHECK(parsed.neighbours[0].flags == NTF_ROUTER);
  CHECK_FALSE(parsed.neighbours[0].ticks_since_update);
  CHECK(parsed.neighbours[1].removed);
  CHECK(parsed.neighbours[1].interface_index == 5);
  CHECK_FALSE(parsed.neighbours[1].link_address);
  CHECK(parsed.neighbours[2].address == make_address("10.0.0.10"));
  CHECK_FALSE(parsed.neighbours[2].link_address);
}

TEST_CASE("neighbours: bridge FDB entries, entries without an address and other messages are skipped",
          "[neighbours]") {
  const auto datagram = concat({
      message(RTM_NEWNEIGH, neighbour_header(AF_BRIDGE, 4, NUD_PERMANENT), {link_layer(kLaptop)}),
      message(RTM_NEWNEIGH, neighbour_header(AF_INET, 4, NUD_REACHABLE), {link_layer(kLaptop)}),
      bare_message(RTM_NEWLINK, sizeof(ifinfomsg)),
      bare_message(NLMSG_NOOP),
      ipv4_entry("192.168.1.50", kDoorbell, NUD_STALE, 5),
  });
  const auto parsed = parse(datagram);
  REQUIRE(parsed.neighbours.size() == 1);
  CHECK(parsed.neighbours[0].address == make_address("192.168.1.50"));
  // ...and the notification codec takes the link, no neighbour, for a change.
  CHECK(parse_notifications(datagram).size() == 1);
}

TEST_CASE("neighbours: the end of a dump, and why it failed", "[neighbours]") {
  auto parsed = parse(concat({ipv4_entry("192.168.1.50", kDoorbell, NUD_STALE, 5), done(),
                              ipv4_entry("192.168.1.51", kDoorbell, NUD_STALE, 5)}));
  CHECK(parsed.dump_done);
  CHECK(parsed.error == 0);
  CHECK(parsed.neighbours.size() == 1);  // nothing after NLMSG_DONE counts

  parsed = parse(done(-EINTR));
  CHECK(parsed.dump_done);
  CHECK(parsed.error == EINTR);

  nlmsgerr refusal{};
  refusal.error = -EPERM;
  parsed = parse(message(NLMSG_ERROR, refusal));
  CHECK(parsed.dump_done);
  CHECK(parsed.error == EPERM);

  parsed = parse(done(-100000));  // no errno
  CHECK(parsed.error == EPROTO);
}

TEST_CASE("neighbours: a malformed message ends the datagram, keeping what came before", "[neighbours]") {
  const auto first = ipv4_entry("192.168.1.50", kDoorbell, NUD_REACHABLE, 1);
  const auto after = ipv4_entry("192.168.1.51", kLaptop, NUD_REACHABLE, 1);

  SECTION("an address of the other family's size") {
    const auto bad = message(RTM_NEWNEIGH, neighbour_header(AF_INET, 4, NUD_STALE), {destination("fe80::1")});
    CHECK(parse(concat({first, bad, after})).neighbours.size() == 1);
  }
  SECTION("a cache info shorter than nda_cacheinfo") {
    const auto bad = message(RTM_NEWNEIGH, neighbour_header(AF_INET, 4, NUD_STALE),
                             {destination("10.0.0.1"), attribute(NDA_CACHEINFO, Bytes(12, 0))});
    CHECK(parse(concat({first, bad, after})).neighbours.size() == 1);
  }
  SECTION("a payload shorter than ndmsg") {
    CHECK(parse(concat({first, bare_message(RTM_NEWNEIGH, sizeof(ndmsg) - 4), after})).neighbours.size() == 1);
  }
  SECTION("an attribute beyond its message") {
    auto bad = ipv4_entry("10.0.0.1", kLaptop, NUD_STALE, 1);
    bad[sizeof(nlmsghdr) + sizeof(ndmsg)] = 200;  // NDA_DST's rta_len
    CHECK(parse(concat({first, bad, after})).neighbours.size() == 1);
  }
  SECTION("a datagram cut anywhere") {
    const auto whole = concat({first, after});
    REQUIRE(parse(whole).neighbours.size() == 2);
    for (std::size_t size = 0; size < whole.size(); ++size) {
      INFO("cut at " << size);
      CHECK(parse_neighbours(std::span(whole.data(), size)).neighbours.size() == (size < first.size() ? 0u : 1u));
    }
  }
}

TEST_CASE("neighbours: at most kMaxNeighboursPerDatagram entries", "[neighbours]") {
  std::vector<Bytes> messages(kMaxNeighboursPerDatagram + 10, ipv4_entry("10.0.0.1", kLaptop, NUD_STALE, 1));
  CHECK(parse(concat(messages)).neighbours.size() == kMaxNeighboursPerDatagram);
}

TEST_CASE("neighbours: a device's current address after a DHCP renumbering", "[neighbours]") {
  const auto choose = [](const std::vector<Neighbour>& table) { return current_ipv4_address(table, kDoorbell); };
  const auto old_address = make_address_v4("192.168.1.50"), new_address = make_address_v4("192.168.1.77");

  // The old address lingers as STALE, updated long ago.
  CHECK(choose({entry("192.168.1.50", kDoorbell, NUD_STALE, 90000), entry("192.168.1.77", kDoorbell, NUD_REACHABLE, 10)}) ==
        new_address);
  // A STALE entry loses to a fresher state even when it changed later.
  CHECK(choose({entry("192.168.1.50", kDoorbell, NUD_STALE, 5), entry("192.168.1.77", kDoorbell, NUD_DELAY, 300)}) ==
        new_address);
  CHECK(choose({entry("192.168.1.50", kDoorbell, NUD_PROBE, 300), entry("192.168.1.77", kDoorbell, NUD_REACHABLE, 900)}) ==
        new_address);
  CHECK(choose({entry("192.168.1.50", kDoorbell, NUD_PERMANENT, 300), entry("192.168.1.77", kDoorbell, NUD_STALE, 1)}) ==
        old_address);
  // Two STALE entries: the one updated last; one without an age counts as the oldest.
  CHECK(choose({entry("192.168.1.50", kDoorbell, NUD_STALE, 900), entry("192.168.1.77", kDoorbell, NUD_STALE, 30)}) ==
        new_address);
  CHECK(choose({entry("192.168.1.77", kDoorbell, NUD_STALE, 30), entry("192.168.1.50", kDoorbell, NUD_STALE, 900)}) ==
        new_address);
  CHECK(choose({entry("192.168.1.50", kDoorbell, NUD_STALE, std::nullopt), entry("192.168.1.77", kDoorbell, NUD_STALE, 90000)}) ==
        new_address);
}

TEST_CASE("neighbours: entries that prove nothing are never chosen", "[neighbours]") {
  const auto choose = [](const std::vector<Neighbour>& table) { return current_ipv4_address(table, kDoorbell); };
  const auto stale = entry("192.168.1.50", kDoorbell, NUD_STALE, 90000);
  const auto expected = make_address_v4("192.168.1.50");
  for (const std::uint16_t state : {NUD_FAILED, NUD_INCOMPLETE, NUD_NONE}) {
    INFO("state " << state);
    CHECK(choose({stale, entry("192.168.1.77", kDoorbell, state, 1)}) == expected);
  }
  auto without_mac = entry("192.168.1.77", kDoorbell, NUD_NOARP, 1);
  without_mac.link_address.reset();
  CHECK(choose({stale, without_mac}) == expected);
  auto removed = entry("192.168.1.77", kDoorbell, NUD_REACHABLE, 1);
  removed.removed = true;
  CHECK(choose({stale, removed}) == expected);
  // NOARP with a MAC stands with PERMANENT: above STALE.
  CHECK(choose({stale, entry("192.168.1.77", kDoorbell, NUD_NOARP, 1)}) == make_address_v4("192.168.1.77"));
  // Another device's entry, or an IPv6 one, is no answer.
  CHECK(choose({entry("192.168.1.77", kLaptop, NUD_REACHABLE, 1), entry("fe80::1", kDoorbell, NUD_REACHABLE, 1)}) ==
        std::nullopt);
  CHECK(choose({entry("192.168.1.77", kDoorbell, NUD_FAILED, 1)}) == std::nullopt);
}

TEST_CASE("neighbours: every device's current address, one per MAC, in address order", "[neighbours]") {
  const std::vector<Neighbour> table{
      entry("192.168.1.50", kDoorbell, NUD_STALE, 90000),
      entry("192.168.1.100", kLaptop, NUD_REACHABLE, 10),
      entry("192.168.1.9", kDoorbell, NUD_REACHABLE, 10),
      entry("224.0.0.251", *parse_mac("01:00:5e:00:00:fb"), NUD_NOARP, 10),  // multicast: no device
      entry("192.168.1.60", *parse_mac("02:00:00:00:00:03"), NUD_FAILED, 10),
      entry("0.0.0.0", MacAddress{}, NUD_NOARP, 10),  // the loopback's
      entry("0.0.0.0", *parse_mac("02:00:00:00:00:04"), NUD_REACHABLE, 10),
  };
  const auto devices = current_ipv4_addresses(table);
  REQUIRE(devices.size() == 2);
  CHECK(devices[0].mac == kDoorbell);
  CHECK(devices[0].address == make_address_v4("192.168.1.9"));
  CHECK(devices[1].mac == kLaptop);
  CHECK(devices[1].address == make_address_v4("192.168.1.100"));
}

TEST_CASE("neighbours: how to make a device that is not found visible", "[neighbours]") {
  const auto with_address = how_to_make_visible(kDoorbell, "eth0", make_address("192.168.1.50"));
  CHECK_THAT(with_address, Catch::Contains("54:e0:19:aa:bb:cc is not in the neighbour table of eth0"));
  CHECK_THAT(with_address, Catch::Contains("talked with this host recently"));
  CHECK_THAT(with_address, Catch::Contains("ping -c 3 192.168.1.50"));
  CHECK_THAT(with_address, Catch::Contains("--device ADDRESS"));
  const auto without = how_to_make_visible(kDoorbell, "eth0", std::nullopt);
  CHECK_THAT(without, Catch::Contains("Wake the device"));
  CHECK_THAT(without, !Catch::Contains("ping"));
}

TEST_CASE("neighbours: the kernel's own table, whole and for one interface", "[neighbours]") {
  const auto all = read_neighbour_table();
  if (!all) {
    WARN("no rtnetlink here (" << all.error().message() << "): skipped");
    return;
  }
  for (const auto& neighbour : *all) CHECK(neighbour.address.is_v4());

  const auto loopback = read_neighbour_table({IpFamily::ipv4, "lo"});
  REQUIRE(loopback);
  for (const auto& neighbour : *loopback) CHECK(neighbour.interface_index == static_cast<int>(if_nametoindex("lo")));
  const auto on_lo = std::count_if(all->begin(), all->end(), [](const Neighbour& n) {
    return n.interface_index == static_cast<int>(if_nametoindex("lo"));
  });
  CHECK(static_cast<std::size_t>(on_lo) == loopback->size());

  const auto ipv6 = read_neighbour_table({IpFamily::ipv6, ""});
  REQUIRE(ipv6);
  for (const auto& neighbour : *ipv6) CHECK(neighbour.address.is_v6());

  const auto unknown = read_neighbour_table({IpFamily::ipv4, "no-such-if0"});
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error() == std::errc::no_such_device);
}
