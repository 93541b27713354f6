#pragma once
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <optional>
#include <set>
#include <string>

#include "mappers/upnp/http_url.hpp"
#include "mappers/upnp/ssdp.hpp"

namespace natkeeper::upnp {

namespace asio = boost::asio;

// Is `url` a place natkeeper may fetch an IGD description from? Only a literal
// address equal to the host that answered, on this host's subnet, and none of
// the addresses a LAN device could use to turn natkeeper against this host or
// a metadata service.
bool location_is_acceptable(const HttpUrl& url, const asio::ip::address_v4& responder,
                            const asio::ip::address_v4& local_address,
                            const asio::ip::address_v4& netmask);

struct SsdpAnswer {
  SearchResponse response;
  asio::ip::address_v4 responder;
  std::chrono::steady_clock::duration elapsed{};  // since the search started
};

// Searches for Internet Gateway Devices on the event loop: multicast out of the
// interface that reaches the gateway, and unicast to the gateway itself (UDA
// 1.1 lets a device answer a unicast search without the random MX delay), so
// the caller can act on the first answer instead of waiting out a fixed delay.
class SsdpSearch {
 public:
  SsdpSearch(asio::any_io_executor executor, asio::ip::address_v4 local_address,
             asio::ip::address_v4 netmask, asio::ip::address_v4 gateway);

  std::error_code start();
  // The next acceptable IGD answer (one per host, at most 10 hosts besides the
  // gateway); nullopt at `deadline`.
  // Searches are resent on a short schedule while waiting.
  asio::awaitable<std::optional<SsdpAnswer>> next_answer(std::chrono::steady_clock::time_point deadline);

 private:
  void send_searches();

  asio::ip::udp::socket socket_;
  asio::steady_timer timer_;
  asio::ip::address_v4 local_address_, netmask_, gateway_;
  std::chrono::steady_clock::time_point started_;
  int searches_sent_ = 0;
  std::set<asio::ip::address_v4> seen_hosts_;
  std::array<char, kMaxSsdpDatagram + 1> buffer_{};
};

}  // namespace natkeeper::upnp
