#include "agent/gateway/neighbours.hpp"

#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <limits>
#include <map>
#include <memory>

#include "mappers/errors.hpp"

namespace natkeeper {
namespace {

std::error_code last_error() { return {errno, std::generic_category()}; }

// How strongly an entry says its address is the device's now; 0: not at all.
int standing(const netlink::Neighbour& entry) {
  if (entry.removed || !entry.link_address) return 0;
  if (entry.state & NUD_REACHABLE) return 3;
  if (entry.state & (NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP)) return 2;
  if (entry.state & NUD_STALE) return 1;
  return 0;  // NUD_NONE, NUD_INCOMPLETE, NUD_FAILED
}

// Whether `a` tells the device's address now more surely than `b`.
bool fresher(const netlink::Neighbour& a, const netlink::Neighbour& b) {
  // An entry without NDA_CACHEINFO counts as the oldest.
  const auto age = [](const netlink::Neighbour& entry) {
    return entry.ticks_since_update ? std::uint64_t{*entry.ticks_since_update} : std::numeric_limits<std::uint64_t>::max();
  };
  if (standing(a) != standing(b)) return standing(a) > standing(b);
  return age(a) < age(b);
}

bool usable_ipv4(const netlink::Neighbour& entry) {
  return entry.address.is_v4() && !entry.address.is_unspecified() && standing(entry) > 0;
}

// Not a group (multicast) address, nor the zeros of the loopback's NOARP entry.
bool names_a_device(const MacAddress& mac) { return (mac.bytes[0] & 0x01) == 0 && mac != MacAddress{}; }

}  // namespace

Result<std::vector<netlink::Neighbour>> read_neighbour_table(const NeighbourQuery& query) {
  int interface_index = 0;
  if (!query.interface_name.empty()) {
    interface_index = static_cast<int>(::if_nametoindex(query.interface_name.c_str()));
    if (interface_index == 0) return last_error();
  }
  const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return last_error();
  const std::unique_ptr<const int, void (*)(const int*)> closer(&fd, [](const int* f) { ::close(*f); });

  struct {
    nlmsghdr header;
    ndmsg body;
  } request{};
  request.header.nlmsg_len = sizeof request;
  request.header.nlmsg_type = RTM_GETNEIGH;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  request.body.ndm_family = query.family == IpFamily::ipv4 ? AF_INET : AF_INET6;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd, &request, sizeof request, 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) < 0)
    return last_error();

  // The kernel's dump datagrams are at most 32 KiB; a larger one is reported, not cut.
  std::vector<std::uint8_t> buffer(64 * 1024);
  std::vector<netlink::Neighbour> table;
  std::size_t received = 0;
  const auto deadline = std::chrono::steady_clock::now() + kNeighbourDumpTimeout;
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return make_error_code(Errc::timed_out);
    pollfd readable{fd, POLLIN, 0};
    const int ready = ::poll(&readable, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) return last_error();
    if (ready <= 0) continue;
    sockaddr_nl sender{};
    socklen_t sender_size = sizeof sender;
    const auto size = ::recvfrom(fd, buffer.data(), buffer.size(), MSG_TRUNC | MSG_DONTWAIT,
                                 reinterpret_cast<sockaddr*>(&sender), &sender_size);
    if (size < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return last_error();
    }
    if (static_cast<std::size_t>(size) > buffer.size()) return make_error_code(std::errc::message_size);
    if (sender.nl_pid != 0) continue;  // only the kernel answers a dump
    received += static_cast<std::size_t>(size);
    if (received > kMaxNeighbourDumpBytes) return make_error_code(std::errc::message_size);
    auto part = netlink::parse_neighbours({buffer.data(), static_cast<std::size_t>(size)});
    // The dump holds every interface's entries.
    std::copy_if(part.neighbours.begin(), part.neighbours.end(), std::back_inserter(table),
                 [&](const netlink::Neighbour& entry) {
                   return interface_index == 0 || entry.interface_index == interface_index;
                 });
    if (part.error != 0) return std::error_code(part.error, std::generic_category());
    if (part.dump_done) return table;
  }
}

std::optional<asio::ip::address_v4> current_ipv4_address(std::span<const netlink::Neighbour> table,
                                                         const MacAddress& mac) {
  for (const auto& device : current_ipv4_addresses(table))
    if (device.mac == mac) return device.address;
  return std::nullopt;
}

std::vector<DeviceAddress> current_ipv4_addresses(std::span<const netlink::Neighbour> table) {
  std::map<MacAddress, const netlink::Neighbour*> best;
  for (const auto& entry : table) {
    if (!usable_ipv4(entry) || !names_a_device(*entry.link_address)) continue;
    auto& chosen = best[*entry.link_address];
    if (!chosen || fresher(entry, *chosen)) chosen = &entry;
  }
  std::vector<DeviceAddress> devices;
  devices.reserve(best.size());
  for (const auto& [mac, entry] : best) devices.push_back({mac, entry->address.to_v4()});
  std::sort(devices.begin(), devices.end(),
            [](const DeviceAddress& a, const DeviceAddress& b) { return a.address < b.address; });
  return devices;
}

std::string how_to_make_visible(const MacAddress& mac, std::string_view interface_name,
                                std::optional<asio::ip::address> last_address) {
  auto advice = fmt::format(
      "{} is not in the neighbour table of {}: the kernel lists only devices that talked with this host "
      "recently. ",
      to_string(mac), interface_name);
  if (last_address)
    advice += fmt::format("Wake the device (a doorbell: press its button or open its live view) or ping its "
                          "last address, `ping -c 3 {}`, then try again",
                          last_address->to_string());
  else
    advice += "Wake the device (a doorbell: press its button or open its live view), then try again";
  return advice + "; or find its address among the router's DHCP clients and name it with --device ADDRESS.";
}

}  // namespace natkeeper
