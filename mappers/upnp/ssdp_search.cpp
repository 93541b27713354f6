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
// Each round is one unicast and one multicast datagram per search target, sent
// at once (2 x 5 x 3 = 30 datagrams at most).
constexpr std::array kSearchSchedule{0ms, 250ms, 1000ms};
constexpr int kMulticastMx = 1;
// Datagrams read per socket each time it wakes the search: a flood is read in
// slices, and the resend schedule and deadline still get their turn.
constexpr int kDatagramsPerWake = 64;

}  // namespace

SsdpSearch::SsdpSearch(asio::any_io_executor executor, address_v4 local_address, address_v4 netmask,
                       address_v4 gateway)
    : unicast_socket_(executor),
      multicast_socket_(executor),
      timer_(executor),
      local_address_(local_address),
      gateway_(gateway),
      candidates_(local_address, netmask, gateway) {}

std::error_code SsdpSearch::start() {
  boost::system::error_code ec;
  for (auto* socket : {&unicast_socket_, &multicast_socket_}) {
    if (!ec) socket->open(asio::ip::udp::v4(), ec);
    if (!ec) socket->bind({local_address_, 0}, ec);
    if (!ec) socket->non_blocking(true, ec);
  }
  // Explicit interface: without it the kernel picks one by route, and a host
  // with no route for 239.255.255.250 cannot send the search at all.
  if (!ec) multicast_socket_.set_option(asio::ip::multicast::outbound_interface(local_address_), ec);
  if (!ec) multicast_socket_.set_option(asio::ip::multicast::hops(2), ec);
  if (ec) return ec;
  started_ = std::chrono::steady_clock::now();
  send_searches();
  return {};
}

void SsdpSearch::send_searches() {
  const asio::ip::udp::endpoint multicast{asio::ip::make_address_v4(kSsdpMulticastAddress), kSsdpPort};
  const asio::ip::udp::endpoint unicast{gateway_, kSsdpPort};
  const auto unicast_host = fmt::format("{}:{}", gateway_.to_string(), kSsdpPort);
  for (const auto target : kIgdSearchTargets) {
    boost::system::error_code ignored;  // a lost search is covered by the resend
    unicast_socket_.send_to(asio::buffer(make_unicast_search(target, unicast_host)), unicast, 0, ignored);
    multicast_socket_.send_to(asio::buffer(make_multicast_search(target, kMulticastMx)), multicast, 0, ignored);
  }
  ++searches_sent_;
}

void SsdpSearch::receive_waiting(asio::ip::udp::socket& socket, SearchKind search) {
  for (int i = 0; i < kDatagramsPerWake; ++i) {
    asio::ip::udp::endpoint sender;
    boost::system::error_code ec;
    const auto size = socket.receive_from(asio::buffer(buffer_), sender, 0, ec);
    if (ec == asio::error::would_block) return;
    if (ec || size > kMaxSsdpDatagram || !sender.address().is_v4()) continue;
    candidates_.add({buffer_.data(), size}, sender.address().to_v4(), search,
                    std::chrono::steady_clock::now() - started_);
  }
}

asio::awaitable<std::optional<SsdpAnswer>> SsdpSearch::next_answer(
    std::chrono::steady_clock::time_point deadline) {
  using namespace asio::experimental::awaitable_operators;
  constexpr auto token = asio::as_tuple(asio::use_awaitable);
  while (true) {
    receive_waiting(unicast_socket_, SearchKind::unicast_to_gateway);
    receive_waiting(multicast_socket_, SearchKind::multicast);
    const auto now = std::chrono::steady_clock::now();
    if (auto best = candidates_.take(now - started_)) co_return best;
    if (now >= deadline) co_return std::nullopt;

    const bool resend_due = searches_sent_ < static_cast<int>(kSearchSchedule.size()) &&
                            now >= started_ + kSearchSchedule[searches_sent_];
    if (resend_due) send_searches();
    auto wake = deadline;
    if (searches_sent_ < static_cast<int>(kSearchSchedule.size()))
      wake = std::min(wake, started_ + kSearchSchedule[searches_sent_]);
    if (candidates_.has_pending()) wake = std::min(wake, started_ + SsdpCandidates::kUnicastAnswerWait);
    timer_.expires_at(wake);
    co_await (unicast_socket_.async_wait(asio::socket_base::wait_read, token) ||
              multicast_socket_.async_wait(asio::socket_base::wait_read, token) || timer_.async_wait(token));
  }
}

}  // namespace natkeeper::upnp
