#pragma once
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <optional>

#include "mappers/upnp/ssdp.hpp"
#include "mappers/upnp/ssdp_candidates.hpp"

namespace natkeeper::upnp {

namespace asio = boost::asio;

// Searches for Internet Gateway Devices on the event loop: multicast out of the
// interface that reaches the gateway, and unicast to the gateway itself from a
// second socket (UDA 1.1 lets a device answer a unicast search without the
// random MX delay), so the caller can act on the gateway's own answer at once
// instead of waiting out a fixed delay.
class SsdpSearch {
 public:
  SsdpSearch(asio::any_io_executor executor, asio::ip::address_v4 local_address,
             asio::ip::address_v4 netmask, asio::ip::address_v4 gateway);

  std::error_code start();
  // The next IGD answer to try, best first (see SsdpCandidates); nullopt at
  // `deadline`. Searches are resent on a short schedule while waiting.
  asio::awaitable<std::optional<SsdpAnswer>> next_answer(std::chrono::steady_clock::time_point deadline);

 private:
  void send_searches();
  void receive_waiting(asio::ip::udp::socket& socket, SearchKind search);

  asio::ip::udp::socket unicast_socket_, multicast_socket_;
  asio::steady_timer timer_;
  asio::ip::address_v4 local_address_, gateway_;
  std::chrono::steady_clock::time_point started_;
  int searches_sent_ = 0;
  SsdpCandidates candidates_;
  std::array<char, kMaxSsdpDatagram + 1> buffer_{};
};

}  // namespace natkeeper::upnp
