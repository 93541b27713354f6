#pragma once
// SSDP (UPnP Device Architecture 1.1, section 1.3) as pure text codecs: no I/O.
#include <boost/system/result.hpp>

#include <array>
#include <cstdint>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace natkeeper::upnp {

inline constexpr std::string_view kSsdpMulticastAddress = "239.255.255.250";
inline constexpr std::uint16_t kSsdpPort = 1900;
// An SSDP answer that does not fit this is not one we want to parse.
inline constexpr std::size_t kMaxSsdpDatagram = 2048;

inline constexpr std::string_view kIgdV1 = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
inline constexpr std::string_view kIgdV2 = "urn:schemas-upnp-org:device:InternetGatewayDevice:2";
inline constexpr std::string_view kWanIpConnectionV1 = "urn:schemas-upnp-org:service:WANIPConnection:1";
inline constexpr std::string_view kWanIpConnectionV2 = "urn:schemas-upnp-org:service:WANIPConnection:2";
inline constexpr std::string_view kWanPppConnectionV1 = "urn:schemas-upnp-org:service:WANPPPConnection:1";

// What an IGD search asks for: the device types, and the WAN connection
// services, since some routers answer only a search for a service. A device
// answers a search for a lower version of its type too, naming the version
// asked for: only a search for version 2 tells a version 2 device.
inline constexpr std::array kIgdSearchTargets{kIgdV2, kIgdV1, kWanIpConnectionV2, kWanIpConnectionV1,
                                              kWanPppConnectionV1};

// A multicast search carries MX (devices spread answers over 0..MX s); a
// unicast search has no MX, and the device answers at once (UDA 1.1 §1.3.3).
std::string make_multicast_search(std::string_view search_target, int mx_seconds);
std::string make_unicast_search(std::string_view search_target, std::string_view host_and_port);

// Why a datagram is not the SSDP message a parser wants.
enum class SsdpError {
  too_long = 1,                  // over kMaxSsdpDatagram
  wrong_start_line,              // empty, or another kind of message
  missing_header,                // a header the message must carry is absent or empty
  unknown_notification_subtype,  // a NOTIFY whose NTS is not alive, byebye or update
};

// Use `*result` / `result->` after checking; `.value()` is not available for
// this error type.
template <class T>
using SsdpResult = boost::system::result<T, SsdpError>;

struct SearchResponse {
  std::string location;
  std::string search_target;
  std::string usn;
};

// Accepts "HTTP/1.1 200 OK" answers with LOCATION and ST; header names are
// case-insensitive and lines may end in CRLF or LF.
SsdpResult<SearchResponse> parse_search_response(std::string_view datagram);

// A device's NOTIFY (UDA 1.1 §1.2): sent to the SSDP group when it comes up
// (alive, repeated while it lives), changes (update) or goes away (byebye).
struct Notify {
  enum class Kind { alive, byebye, update };
  Kind kind = Kind::alive;
  std::string notification_type;  // NT
  std::string location;           // empty for byebye
  std::string usn;
  // BOOTID.UPNP.ORG: changes whenever the device restarts (UDA 1.1; IGDs of
  // UDA 1.0 may leave it out).
  std::optional<std::uint32_t> boot_id;
};
// Accepts NOTIFYs with NT and a known NTS; alive and update need LOCATION.
SsdpResult<Notify> parse_notify(std::string_view datagram);

// True for the search targets above, which an IGD's answer repeats.
bool is_igd_search_target(std::string_view st);

}  // namespace natkeeper::upnp
