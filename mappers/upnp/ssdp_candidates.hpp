#pragma once
// Which SSDP answers to open, in which order: policy without I/O. The search
// feeds it every datagram with its source and the time since the search began.
#include <boost/asio/ip/address_v4.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "mappers/upnp/http_url.hpp"
#include "mappers/upnp/ssdp.hpp"

namespace natkeeper::upnp {

// Is `url` a place natkeeper may fetch an IGD description from? Only a literal
// address equal to the host that answered, on this host's subnet, and none of
// the addresses a LAN device could use to turn natkeeper against this host or
// a metadata service.
bool location_is_acceptable(const HttpUrl& url, const boost::asio::ip::address_v4& responder,
                            const boost::asio::ip::address_v4& local_address,
                            const boost::asio::ip::address_v4& netmask);

// Which search an answer came back to. The unicast search to the gateway
// leaves from a socket of its own, whose port only the gateway learns; the
// multicast search's port every LAN device sees, so any of them can answer it
// in the gateway's name.
enum class SearchKind { unicast_to_gateway, multicast };

struct SsdpAnswer {
  SearchResponse response;
  boost::asio::ip::address_v4 responder;
  SearchKind search = SearchKind::multicast;
  std::chrono::steady_clock::duration elapsed{};  // since the search started
};

class SsdpCandidates {
 public:
  using Duration = std::chrono::steady_clock::duration;

  // A gateway may announce several root devices (IGD:1 beside IGD:2); more
  // distinct LOCATIONs than these are forged. Counted per search kind, so
  // answers forged to the multicast search cannot crowd out the gateway's
  // answer to the unicast one. Only waiting LOCATIONs count towards the first
  // bound: once a forged one has been tried and given up, the gateway's own
  // later answer to the multicast search finds room. The second bounds what is
  // tried and remembered in all.
  static constexpr std::size_t kMaxWaitingGatewayLocations = 8;
  static constexpr std::size_t kMaxGatewayLocations = 32;
  // Other devices are never opened, only named in the log: one answer each,
  // from at most this many.
  static constexpr std::size_t kMaxOtherDevices = 10;
  // How long an answer to the multicast search waits for the gateway's answer
  // to the unicast search, which comes without MX's random delay.
  static constexpr auto kUnicastAnswerWait = std::chrono::milliseconds(150);

  SsdpCandidates(boost::asio::ip::address_v4 local_address, boost::asio::ip::address_v4 netmask,
                 boost::asio::ip::address_v4 gateway);

  // Keeps the datagram when it is an acceptable IGD answer with a LOCATION not
  // yet kept for its responder, within the bounds; true then. A repeat of a
  // kept LOCATION only raises its rank (an answer to the unicast search, IGD:2).
  bool add(std::string_view datagram, const boost::asio::ip::address_v4& responder, SearchKind search,
           Duration elapsed);

  // The best answer not handed out yet, first the gateway's, then answers to
  // the unicast search, then IGD:2, then by arrival. Until kUnicastAnswerWait
  // after the start, only the gateway's answer to the unicast search is handed
  // out: the others wait in case it comes.
  std::optional<SsdpAnswer> take(Duration elapsed);

  bool has_pending() const;

 private:
  struct Candidate {
    SsdpAnswer answer;
    std::size_t arrival = 0;
    bool handed_out = false;
  };
  bool ranks_before(const Candidate& a, const Candidate& b) const;
  bool within_bounds(const boost::asio::ip::address_v4& responder, SearchKind search) const;

  boost::asio::ip::address_v4 local_address_, netmask_, gateway_;
  std::vector<Candidate> candidates_;
};

}  // namespace natkeeper::upnp
