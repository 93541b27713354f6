#include "mappers/upnp/ssdp_search.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

namespace natkeeper::upnp {
namespace {

using namespace std::chrono_literals;
using asio::ip::address_v4;

// Resend times after the start: a lost datagram costs one step, not the search.
constexpr std::array kSearchSchedule{0ms, 250ms, 1000ms};
constexpr int kMulticastMx = 1;
// A LAN holds few gateways; more distinct answers than this are noise or an attack.
constexpr std::size_t kMaxDevices = 10;

bool in_network(const address_v4& a, const address_v4& b, const address_v4& mask) {
  return (a.to_uint() & mask.to_uint()) == (b.to_uint() & mask.to_uint());
}

}  // namespace

bool location_is_acceptable(const HttpUrl& url, const address_v4& responder,
                            const address_v4& local_address, const address_v4& netmask) {
  boost::system::error_code ec;
  const auto host = asio::ip::make_address_v4(url.host, ec);
  if (ec || host != responder) return false;
  if (host.is_loopback() || host.is_multicast() || host.is_unspecified() || host == local_address)
    return false;
  if (in_network(host, address_v4({169, 254, 0, 0}), address_v4({255, 255, 0, 0}))) return false;
  return in_network(host, local_address, netmask);
}

SsdpSearch::SsdpSearch(asio::any_io_executor executor, address_v4 local_address,
                       address_v4 netmask, address_v4 gateway)
    : socket_(executor),
      timer_(executor),
      local_address_(local_address),
      netmask_(netmask),
      gateway_(gateway) {}

std::error_code SsdpSearch::start() {
  boost::system::error_code ec;
  socket_.open(asio::ip::udp::v4(), ec);
  if (!ec) socket_.bind({local_address_, 0}, ec);
  // Explicit interface: without it the kernel picks one by route, and a host
  // with no route for 239.255.255.250 cannot send the search at all.
  if (!ec) socket_.set_option(asio::ip::multicast::outbound_interface(local_address_), ec);
  if (!ec) socket_.set_option(asio::ip::multicast::hops(2), ec);
  if (ec) return ec;
  started_ = std::chrono::steady_clock::now();
  send_searches();
  return {};
}

void SsdpSearch::send_searches() {
  const asio::ip::udp::endpoint multicast{asio::ip::make_address_v4(kSsdpMulticastAddress), kSsdpPort};
  const asio::ip::udp::endpoint unicast{gateway_, kSsdpPort};
  const auto unicast_host = fmt::format("{}:{}", gateway_.to_string(), kSsdpPort);
  for (auto target : {kIgdV1, kIgdV2}) {
    boost::system::error_code ignored;  // a lost search is covered by the resend
    socket_.send_to(asio::buffer(make_unicast_search(target, unicast_host)), unicast, 0, ignored);
    socket_.send_to(asio::buffer(make_multicast_search(target, kMulticastMx)), multicast, 0, ignored);
  }
  ++searches_sent_;
}

asio::awaitable<std::optional<SsdpAnswer>> SsdpSearch::next_answer(
    std::chrono::steady_clock::time_point deadline) {
  using namespace asio::experimental::awaitable_operators;
  constexpr auto token = asio::as_tuple(asio::use_awaitable);
  while (std::chrono::steady_clock::now() < deadline) {
    auto wake = deadline;
    if (searches_sent_ < static_cast<int>(kSearchSchedule.size()))
      wake = std::min(wake, started_ + kSearchSchedule[searches_sent_]);
    timer_.expires_at(wake);
    asio::ip::udp::endpoint sender;
    auto outcome = co_await (socket_.async_receive_from(asio::buffer(buffer_), sender, token) ||
                             timer_.async_wait(token));
    if (outcome.index() == 1) {
      if (searches_sent_ < static_cast<int>(kSearchSchedule.size()) &&
          std::chrono::steady_clock::now() >= started_ + kSearchSchedule[searches_sent_])
        send_searches();
      continue;
    }
    const auto [ec, size] = std::get<0>(outcome);
    if (ec || size > kMaxSsdpDatagram || !sender.address().is_v4()) continue;
    auto response = parse_search_response({buffer_.data(), size});
    if (!response || !is_igd_search_target(response->search_target)) continue;
    const auto url = parse_http_url(response->location);
    const auto responder = sender.address().to_v4();
    if (!url || !location_is_acceptable(*url, responder, local_address_, netmask_)) continue;
    // The gateway is never crowded out by other devices.
    if (seen_hosts_.contains(responder) || (seen_hosts_.size() >= kMaxDevices && responder != gateway_)) continue;
    seen_hosts_.insert(responder);
    co_return SsdpAnswer{std::move(*response), responder, std::chrono::steady_clock::now() - started_};
  }
  co_return std::nullopt;
}

}  // namespace natkeeper::upnp
