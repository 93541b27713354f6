#pragma once
// What a gateway tells its LAN unasked, as a pure codec: NAT-PMP public
// address notices and PCP ANNOUNCE responses multicast to 224.0.0.1:5350
// (RFC 6886 §3.2.1, RFC 6887 §14.1.1), and SSDP NOTIFYs to 239.255.255.250:1900.
#include <boost/asio/ip/address_v4.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace natkeeper {

inline constexpr std::uint16_t kAnnouncePort = 5350;
inline constexpr std::uint16_t kSsdpNotifyPort = 1900;

struct GatewayNotice {
  enum class Kind {
    natpmp_address,  // NAT-PMP: "my external address is ... (epoch ...)"
    pcp_announce,    // PCP: "I restarted or changed: renew your mappings"
    ssdp_alive,      // UPnP device alive (at start, then periodically)
    ssdp_byebye,     // UPnP device leaving
  };
  Kind kind = Kind::natpmp_address;
  std::uint32_t epoch = 0;                                   // NAT-PMP and PCP
  std::optional<boost::asio::ip::address_v4> external_address;  // NAT-PMP
  std::string location;                                      // SSDP alive
  std::optional<std::uint32_t> boot_id;                      // SSDP, when sent
};

// Why a datagram is none of the notices above.
enum class GatewayNoticeError {
  unknown_port = 1,     // received on neither kAnnouncePort nor kSsdpNotifyPort
  not_an_announcement,  // neither a NAT-PMP public address reply nor a PCP ANNOUNCE response
  error_result,         // a NAT-PMP or PCP notice with a non-zero result code
  not_a_notify,         // not a well-formed SSDP NOTIFY
  not_a_gateway,        // the NOTIFY of a device or service that is not an IGD
};

// Use `*result` / `result->` after checking; `.value()` is not available for
// this error type.
using GatewayNoticeResult = boost::system::result<GatewayNotice, GatewayNoticeError>;

// A datagram received on `port` (kAnnouncePort or kSsdpNotifyPort), whoever
// sent it.
GatewayNoticeResult parse_gateway_notice(std::span<const std::uint8_t> datagram, std::uint16_t port);

}  // namespace natkeeper
