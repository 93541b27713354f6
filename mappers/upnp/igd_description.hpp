#pragma once
// IGD root descriptions (UPnP Device Architecture 1.1 §2.3) as a pure text
// codec, and which of their WAN connection services to use: no I/O.
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace natkeeper::upnp {

// A <service> of a description, as written.
struct DescribedService {
  std::string service_type;
  std::string control_url;
  std::string event_url;  // <eventSubURL>
};

struct RootDescription {
  std::string url_base;                    // <URLBase> (UDA 1.0), empty without one
  std::vector<DescribedService> services;  // of every device, in document order
};

// More <service> elements than a real IGD has (a dozen); those past it are dropped.
inline constexpr std::size_t kMaxDescribedServices = 64;

// Reads a description as leniently as libminiupnpc does: elements by their
// local name (prefixes dropped), nothing validated, entities decoded
// (decode_xml_text), comments skipped, CDATA as text. What is no XML yields a
// description without services.
RootDescription parse_root_description(std::string_view xml);

// The UPnP Forum's WANIPConnection and WANPPPConnection of any version, and the
// same services as TR-064 names them (urn:dslforum-org), which DSL routers
// offer with the same actions. The type is the whole value: nothing may
// follow the version number.
bool is_wan_connection_service(std::string_view service_type);

// A WAN connection service natkeeper's SOAP calls can drive.
struct IgdDescription {
  std::string location;      // the root description URL
  std::string service_type;  // e.g. urn:schemas-upnp-org:service:WANIPConnection:2
  std::string control_url;   // absolute
  int version = 1;           // 2: the UPnP Forum's WANIPConnection:2, which has AddAnyPortMapping
  std::string event_url;     // absolute; empty without one (no eventing)

  bool operator==(const IgdDescription&) const = default;
};

// A DSL router may list a WAN connection per line or PVC; more are not tried.
inline constexpr std::size_t kMaxConnectionServices = 8;

// The WAN connection services of the description fetched from `location`, in
// document order. A relative control or event URL is taken from the root of
// URLBase or else of `location`, as libminiupnpc does. Only services whose
// control URL is on `location`'s host are kept, and only an event URL there,
// so a description cannot aim natkeeper's requests elsewhere.
std::vector<IgdDescription> connection_services(const RootDescription& description, const std::string& location);

// What a WAN connection service says of itself: GetStatusInfo's
// NewConnectionStatus and GetExternalIPAddress's address, as sent; empty when
// the call failed.
struct ConnectionState {
  std::string status;
  std::string external_ip;
};

// Connected, with an external address other than 0.0.0.0: no connection ranks
// higher. Any IPv4 address counts, reserved ranges too: a gateway behind a
// carrier-grade NAT (or the lab's 203.0.113.1) still maps.
bool is_usable_connection(const ConnectionState& state);

// The one of a device's connections (`states` in document order, not empty) to
// map through: Connected before any other status, then one with an external
// address, then the first listed.
std::size_t best_connection(std::span<const ConnectionState> states);

}  // namespace natkeeper::upnp
