#include "agent/gateway/netinfo.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>

#include "mappers/errors.hpp"

namespace natkeeper {
namespace {

std::optional<std::uint32_t> parse_hex(std::string_view text) {
  std::uint32_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::optional<asio::ip::address_v4> parse_default_gateway(std::string_view proc_net_route) {
  // Columns: Iface Destination Gateway Flags RefCnt Use Metric Mask ...; the
  // addresses are hexadecimal in network byte order as read on little-endian.
  constexpr std::uint32_t kRouteUp = 0x1, kRouteGateway = 0x2;
  std::optional<asio::ip::address_v4> best;
  std::uint32_t best_metric = std::numeric_limits<std::uint32_t>::max();
  std::istringstream lines{std::string(proc_net_route)};
  std::string line;
  std::getline(lines, line);  // header
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string iface, destination, gateway, flags, refcnt, use, metric, mask;
    if (!(fields >> iface >> destination >> gateway >> flags >> refcnt >> use >> metric >> mask)) continue;
    const auto dst = parse_hex(destination), gw = parse_hex(gateway), fl = parse_hex(flags),
               mk = parse_hex(mask);
    std::uint32_t met = 0;
    const auto [end, ec] = std::from_chars(metric.data(), metric.data() + metric.size(), met);
    if (!dst || !gw || !fl || !mk || ec != std::errc{} || end != metric.data() + metric.size()) continue;
    if (*dst != 0 || *mk != 0 || (*fl & (kRouteUp | kRouteGateway)) != (kRouteUp | kRouteGateway)) continue;
    if (*gw == 0 || (best && met >= best_metric)) continue;
    best = asio::ip::address_v4(ntohl(*gw));
    best_metric = met;
  }
  return best;
}

Result<asio::ip::address_v4> find_default_gateway() {
  // (/proc/self/net/route: the same table, and still there under ProcSubset=pid)
  std::ifstream file("/proc/self/net/route");
  std::ostringstream text;
  text << file.rdbuf();
  if (auto gateway = parse_default_gateway(text.str())) return *gateway;
  return make_error_code(Errc::no_default_route);
}

Result<LocalInterface> find_interface_towards(const asio::ip::address_v4& gateway) {
  // connect() on a UDP socket sends nothing; it only asks the kernel for the
  // route and fixes the source address we then read back.
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::error_code(errno, std::generic_category());
  const std::unique_ptr<const int, void (*)(const int*)> closer(&fd, [](const int* f) { ::close(*f); });
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(9);
  remote.sin_addr.s_addr = htonl(gateway.to_uint());
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&remote), sizeof remote) != 0)
    return std::error_code(errno, std::generic_category());
  sockaddr_in local{};
  socklen_t length = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0)
    return std::error_code(errno, std::generic_category());

  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return std::error_code(errno, std::generic_category());
  const std::unique_ptr<ifaddrs, void (*)(ifaddrs*)> owner(list, ::freeifaddrs);
  for (const ifaddrs* entry = list; entry; entry = entry->ifa_next) {
    if (!entry->ifa_addr || entry->ifa_addr->sa_family != AF_INET || !entry->ifa_netmask) continue;
    const auto* address = reinterpret_cast<const sockaddr_in*>(entry->ifa_addr);
    if (address->sin_addr.s_addr != local.sin_addr.s_addr) continue;
    const auto* mask = reinterpret_cast<const sockaddr_in*>(entry->ifa_netmask);
    return LocalInterface{entry->ifa_name, asio::ip::address_v4(ntohl(address->sin_addr.s_addr)),
                          asio::ip::address_v4(ntohl(mask->sin_addr.s_addr))};
  }
  return make_error_code(Errc::no_default_route);
}

}  // namespace natkeeper
