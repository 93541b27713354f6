#include <catch2/catch.hpp>

// glibc's <net/if.h> (which Asio includes) first: <linux/if.h> then adds only IFF_LOWER_UP.
#include <net/if.h>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "agent/service/netlink_watcher.hpp"
#include "netlink_messages.hpp"
#include "run_loop.hpp"

using namespace natkeeper;
using namespace natkeeper::netlink;
using namespace natkeeper::test;
using namespace std::chrono_literals;

namespace {

// Plain numbers: the flags come from two headers' different enums.
constexpr unsigned kUp = IFF_UP;
constexpr unsigned kRunning = IFF_RUNNING;
constexpr unsigned kLowerUp = IFF_LOWER_UP;

Bytes u32_attribute(std::uint16_t type, std::uint32_t value) {
  Bytes payload;
  append(payload, value);
  return attribute(type, payload);
}

Bytes ipv4_attribute(std::uint16_t type, std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return attribute(type, Bytes{a, b, c, d});
}

Bytes name_attribute(const std::string& name) {
  Bytes payload(name.begin(), name.end());
  payload.push_back(0);
  return attribute(IFLA_IFNAME, payload);
}

ifinfomsg link(int index, unsigned flags) {
  ifinfomsg header{};
  header.ifi_family = AF_UNSPEC;
  header.ifi_index = index;
  header.ifi_flags = flags;
  return header;
}

ifaddrmsg address(std::uint8_t family, std::uint32_t index) {
  ifaddrmsg header{};
  header.ifa_family = family;
  header.ifa_prefixlen = 24;
  header.ifa_index = index;
  return header;
}

rtmsg route(std::uint8_t family, std::uint8_t dst_len, std::uint8_t table) {
  rtmsg header{};
  header.rtm_family = family;
  header.rtm_dst_len = dst_len;
  header.rtm_table = table;
  header.rtm_type = RTN_UNICAST;
  return header;
}

std::vector<Change> parse(const Bytes& datagram) { return parse_notifications(datagram); }

Bytes eth0_up() { return message(RTM_NEWLINK, link(2, kUp | kRunning), {name_attribute("eth0")}); }

Bytes default_route_via(int interface) {
  return message(RTM_NEWROUTE, route(AF_INET, 0, RT_TABLE_MAIN),
                 {ipv4_attribute(RTA_GATEWAY, 10, 77, 0, 1),
                  u32_attribute(RTA_OIF, static_cast<std::uint32_t>(interface))});
}

}  // namespace

TEST_CASE("netlink: links up and down", "[netlink]") {
  auto changes = parse(eth0_up());
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].kind == ChangeKind::link_up);
  CHECK(changes[0].interface_index == 2);
  CHECK(changes[0].interface_name == "eth0");

  CHECK(parse(message(RTM_NEWLINK, link(3, kUp | kLowerUp)))[0].kind == ChangeKind::link_up);
  // Administratively up without a carrier, or a carrier while down: not usable.
  CHECK(parse(message(RTM_NEWLINK, link(3, kUp)))[0].kind == ChangeKind::link_down);
  CHECK(parse(message(RTM_NEWLINK, link(3, kRunning | kLowerUp)))[0].kind == ChangeKind::link_down);

  changes = parse(message(RTM_DELLINK, link(4, kUp | kRunning), {name_attribute("wg0")}));
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].kind == ChangeKind::link_down);
  CHECK(changes[0].interface_index == 4);
  CHECK(changes[0].interface_name == "wg0");

  // A name without its NUL, longer than the kernel allows, is cut to IFNAMSIZ - 1.
  const std::string long_name(40, 'n');
  changes = parse(message(RTM_NEWLINK, link(5, kUp | kRunning),
                          {attribute(IFLA_IFNAME, Bytes(long_name.begin(), long_name.end()))}));
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].interface_name == std::string(IFNAMSIZ - 1, 'n'));
}

TEST_CASE("netlink: IPv4 addresses added and removed", "[netlink]") {
  // On a point-to-point link IFA_ADDRESS is the peer: IFA_LOCAL is ours.
  auto changes = parse(message(RTM_NEWADDR, address(AF_INET, 2),
                               {ipv4_attribute(IFA_ADDRESS, 10, 0, 0, 1), ipv4_attribute(IFA_LOCAL, 10, 0, 0, 2),
                                name_attribute("eth0")}));
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].kind == ChangeKind::address_added);
  CHECK(changes[0].interface_index == 2);
  CHECK(changes[0].address == 0x0A000002);

  changes = parse(message(RTM_DELADDR, address(AF_INET, 7), {ipv4_attribute(IFA_ADDRESS, 192, 168, 1, 20)}));
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].kind == ChangeKind::address_removed);
  CHECK(changes[0].interface_index == 7);
  CHECK(changes[0].address == 0xC0A80114);

  const Bytes ipv6(16, 0xfe);
  CHECK(parse(message(RTM_NEWADDR, address(AF_INET6, 2), {attribute(IFA_ADDRESS, ipv6)})).empty());
  CHECK(parse(message(RTM_NEWADDR, address(AF_INET, 2), {name_attribute("eth0")})).empty());
}

TEST_CASE("netlink: IPv4 routes of the main table", "[netlink]") {
  auto changes = parse(default_route_via(3));
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].kind == ChangeKind::route_added);
  CHECK(changes[0].default_route);
  CHECK(changes[0].interface_index == 3);

  changes = parse(message(RTM_DELROUTE, route(AF_INET, 24, RT_TABLE_MAIN), {ipv4_attribute(RTA_DST, 10, 77, 0, 0)}));
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].kind == ChangeKind::route_removed);
  CHECK_FALSE(changes[0].default_route);
  CHECK(changes[0].interface_index == 0);

  // Table ids above 255 come as RTA_TABLE, with rtm_table RT_TABLE_COMPAT.
  CHECK(parse(message(RTM_NEWROUTE, route(AF_INET, 0, RT_TABLE_COMPAT), {u32_attribute(RTA_TABLE, RT_TABLE_MAIN)}))
            .size() == 1);
  CHECK(parse(message(RTM_NEWROUTE, route(AF_INET, 0, RT_TABLE_COMPAT), {u32_attribute(RTA_TABLE, 1000)})).empty());
  CHECK(parse(message(RTM_NEWROUTE, route(AF_INET, 0, RT_TABLE_MAIN), {u32_attribute(RTA_TABLE, 100)})).empty());
  CHECK(parse(message(RTM_NEWROUTE, route(AF_INET, 32, RT_TABLE_LOCAL))).empty());
  CHECK(parse(message(RTM_NEWROUTE, route(AF_INET6, 0, RT_TABLE_MAIN))).empty());
}

TEST_CASE("netlink: several messages in one datagram, others skipped", "[netlink]") {
  const auto datagram = concat({bare_message(NLMSG_NOOP), eth0_up(), bare_message(NLMSG_ERROR, 20),
                                message(RTM_NEWNEIGH, link(2, 0)), default_route_via(2), bare_message(NLMSG_DONE, 4)});
  const auto changes = parse(datagram);
  REQUIRE(changes.size() == 2);
  CHECK(changes[0].kind == ChangeKind::link_up);
  CHECK(changes[1].kind == ChangeKind::route_added);
}

TEST_CASE("netlink: a malformed message ends the datagram, keeping what came before", "[netlink]") {
  const auto first = eth0_up();

  SECTION("nlmsg_len shorter than the header") {
    auto bad = bare_message(RTM_NEWLINK, 16);
    bad[0] = 8;
    bad[1] = bad[2] = bad[3] = 0;
    CHECK(parse(concat({first, bad, eth0_up()})).size() == 1);
  }
  SECTION("nlmsg_len beyond the datagram") {
    auto bad = default_route_via(2);
    bad[0] = static_cast<std::uint8_t>(bad.size() + 4);
    CHECK(parse(concat({first, bad})).size() == 1);
  }
  SECTION("a datagram cut anywhere") {
    const auto whole = concat({first, default_route_via(2), eth0_up()});
    REQUIRE(parse(whole).size() == 3);
    for (std::size_t size = 0; size < whole.size(); ++size) {
      INFO("cut at " << size);
      const auto changes = parse_notifications(std::span(whole.data(), size));
      CHECK(changes.size() == (size < first.size() ? 0u : size < first.size() + default_route_via(2).size() ? 1u : 2u));
    }
  }
  SECTION("a payload shorter than its family header") {
    CHECK(parse(concat({first, bare_message(RTM_NEWROUTE, sizeof(rtmsg) - 1), eth0_up()})).size() == 1);
    CHECK(parse(concat({first, bare_message(RTM_NEWLINK, sizeof(ifinfomsg) - 4), eth0_up()})).size() == 1);
    CHECK(parse(concat({first, bare_message(RTM_NEWADDR, 0), eth0_up()})).size() == 1);
  }
  SECTION("rta_len shorter than the attribute header") {
    auto bad = attribute(RTA_OIF, Bytes{1, 0, 0, 0});
    bad[0] = 2;
    CHECK(parse(concat({first, message(RTM_NEWROUTE, route(AF_INET, 0, RT_TABLE_MAIN), {bad}), eth0_up()})).size() ==
          1);
  }
  SECTION("rta_len beyond the message") {
    auto bad = name_attribute("eth1");
    bad[0] = 40;
    CHECK(parse(concat({first, message(RTM_NEWLINK, link(3, kUp), {bad}), eth0_up()})).size() == 1);
  }
  SECTION("an address attribute of the wrong size") {
    const auto bad = message(RTM_NEWADDR, address(AF_INET, 2), {attribute(IFA_LOCAL, Bytes{10, 0, 0})});
    CHECK(parse(concat({first, bad, eth0_up()})).size() == 1);
  }
  SECTION("bytes after the last attribute that are not an attribute") {
    auto bad = message(RTM_NEWROUTE, route(AF_INET, 0, RT_TABLE_MAIN));
    bad.insert(bad.end(), {0, 0, 0, 0});
    bad[0] = static_cast<std::uint8_t>(bad[0] + 2);  // two stray bytes in the message
    CHECK(parse(concat({first, bad})).size() == 1);
  }
}

TEST_CASE("netlink: unaligned datagrams parse the same", "[netlink]") {
  const auto datagram = concat({eth0_up(), default_route_via(2)});
  Bytes shifted(datagram.size() + 1);
  std::memcpy(shifted.data() + 1, datagram.data(), datagram.size());
  const auto changes = parse_notifications(std::span(shifted.data() + 1, datagram.size()));
  REQUIRE(changes.size() == 2);
  CHECK(changes[0].interface_name == "eth0");
  CHECK(changes[1].interface_index == 2);
}

TEST_CASE("netlink: at most kMaxChangesPerDatagram changes", "[netlink]") {
  std::vector<Bytes> messages(kMaxChangesPerDatagram + 50, eth0_up());
  CHECK(parse(concat(messages)).size() == kMaxChangesPerDatagram);
}

namespace {

// The kernel's own answer to a dump request on a netlink socket of the test's.
Bytes kernel_dump(std::uint16_t request_type) {
  const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return {};
  struct {
    nlmsghdr header;
    rtgenmsg body;
  } request{};
  request.header.nlmsg_len = sizeof request;
  request.header.nlmsg_type = request_type;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  request.body.rtgen_family = AF_INET;
  Bytes reply(64 * 1024);
  const timeval timeout{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ssize_t size = -1;
  if (::send(fd, &request, sizeof request, 0) == static_cast<ssize_t>(sizeof request))
    size = ::recv(fd, reply.data(), reply.size(), 0);
  ::close(fd);
  reply.resize(size > 0 ? static_cast<std::size_t>(size) : 0);
  return reply;
}

}  // namespace

TEST_CASE("netlink: the kernel's own messages about the loopback interface", "[netlink]") {
  const auto links = kernel_dump(RTM_GETLINK);
  if (links.empty()) {
    WARN("no rtnetlink here: skipped");
    return;
  }
  const auto link_changes = parse(links);
  const auto loopback = std::find_if(link_changes.begin(), link_changes.end(),
                                     [](const Change& change) { return change.interface_name == "lo"; });
  REQUIRE(loopback != link_changes.end());
  CHECK(loopback->interface_index == 1);

  const auto address_changes = parse(kernel_dump(RTM_GETADDR));
  const auto loopback_address = std::find_if(address_changes.begin(), address_changes.end(),
                                             [](const Change& change) { return change.address == 0x7F000001; });
  REQUIRE(loopback_address != address_changes.end());
  CHECK(loopback_address->kind == ChangeKind::address_added);
  CHECK(loopback_address->interface_index == loopback->interface_index);
}

// [realtime]: the kernel's netlink socket, which no virtual time can drive.
TEST_CASE("netlink: the watcher opens, and closing or cancelling ends its wait", "[netlink][realtime]") {
  using namespace boost::asio::experimental::awaitable_operators;
  asio::io_context io;
  NetlinkWatcher watcher(io.get_executor());
  if (const auto ec = watcher.open()) {
    WARN("cannot open a netlink socket here (" << ec.message() << "): skipped");
    return;
  }
  const auto cancelled = run_loop(io, [&]() -> asio::awaitable<bool> {
    asio::steady_timer timer(io, 50ms);
    auto changes = watcher.next_events();
    auto timeout = timer.async_wait(asio::as_tuple(asio::use_awaitable));
    const auto outcome = co_await (std::move(changes) || std::move(timeout));
    // A real change on this host may win the race: that is fine too.
    co_return outcome.index() == 1 || std::get<0>(outcome).has_value();
  }());
  CHECK(cancelled);

  const auto closed = run_loop(io, [&]() -> asio::awaitable<Result<NetworkEvents>> {
    asio::steady_timer timer(io, 50ms);
    timer.async_wait([&](boost::system::error_code) { watcher.close(); });
    co_return co_await watcher.next_events();
  }());
  if (!closed) CHECK(closed.error() == std::errc::operation_canceled);
}
