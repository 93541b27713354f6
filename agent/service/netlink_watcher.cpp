#include "agent/service/netlink_watcher.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstring>

namespace natkeeper {
namespace {

using asio::generic::raw_protocol;
// Larger than any notification the kernel sends (one page each).
constexpr std::size_t kDatagramBufferBytes = 64 * 1024;

bool sent_by_kernel(const raw_protocol::endpoint& sender) {
  sockaddr_nl address{};
  if (sender.size() < sizeof address) return false;
  std::memcpy(&address, sender.data(), sizeof address);
  return address.nl_family == AF_NETLINK && address.nl_pid == 0;
}

}  // namespace

NetlinkWatcher::NetlinkWatcher(asio::any_io_executor executor)
    : socket_(std::move(executor)), buffer_(kDatagramBufferBytes) {}

std::error_code NetlinkWatcher::open() {
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  local.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_NEIGH;
  boost::system::error_code ec;
  socket_.open(raw_protocol(AF_NETLINK, NETLINK_ROUTE), ec);
  if (!ec) socket_.bind(raw_protocol::endpoint(&local, sizeof local, NETLINK_ROUTE), ec);
  if (ec) close();
  return ec;
}

void NetlinkWatcher::close() {
  boost::system::error_code ignored;
  socket_.close(ignored);
}

asio::awaitable<Result<NetworkEvents>> NetlinkWatcher::next_events() {
  constexpr auto token = asio::as_tuple(asio::use_awaitable);
  for (;;) {
    raw_protocol::endpoint sender;
    const auto [ec, size] = co_await socket_.async_receive_from(asio::buffer(buffer_), sender, token);
    if (ec == asio::error::no_buffer_space) {
      netlink::Change unseen;
      unseen.kind = netlink::ChangeKind::link_up;
      unseen.interface_index = 0;
      co_return NetworkEvents{{unseen}, true};
    }
    if (ec) co_return std::error_code(ec);
    if (!sent_by_kernel(sender)) continue;
    const std::span<const std::uint8_t> datagram(buffer_.data(), size);
    NetworkEvents events{netlink::parse_notifications(datagram), false};
    const auto neighbours = netlink::parse_neighbours(datagram).neighbours;
    events.neighbours = std::any_of(neighbours.begin(), neighbours.end(),
                                    [](const auto& entry) { return entry.address.is_v4(); });
    if (!events.changes.empty() || events.neighbours) co_return events;
  }
}

}  // namespace natkeeper
