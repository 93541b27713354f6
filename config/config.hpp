#pragma once
#include <boost/asio/ip/address_v4.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/mac_address.hpp"
#include "config/map_spec.hpp"
#include "mappers/mapping.hpp"

namespace natkeeper::config {

enum class ProtocolChoice { automatic, pcp, natpmp, upnp };
std::string_view to_string(ProtocolChoice choice);
std::optional<ProtocolChoice> parse_protocol_choice(std::string_view text);
// The names --protocol and gateway.protocol accept, for messages and help.
inline constexpr std::string_view kProtocolChoices = "auto, pcp, natpmp, upnp";

inline constexpr std::chrono::seconds kMinLease{60};
inline constexpr std::chrono::seconds kMaxLease{604800};  // IGDv2's upper bound
// Lease 0: a permanent mapping where the gateway has them (UPnP), for routers
// that end finite leases early; natkeeper deletes it when it lets go.
inline constexpr std::chrono::seconds kPermanentLease{0};
// Why `seconds` is no lease to ask for (for --lease and mapping.lease), or nullopt.
std::optional<std::string> lease_problem(std::int64_t seconds);
inline constexpr std::chrono::seconds kMinVerifyInterval{60};
// Every port of both transports.
inline constexpr std::int64_t kMaxPlannedMappings = 2 * 65535;

// A LAN device the mappings are for, instead of this host (a doorbell, a
// camera): the gateway forwards its ports to the device's address.
struct Device {
  std::string name;  // for people; empty: shown by its address or MAC
  // Exactly one of these names the device. A MAC is followed: its address
  // comes from the neighbour table and may change (DHCP).
  std::optional<boost::asio::ip::address_v4> address;
  std::optional<MacAddress> mac;
  bool ring_profile = true;
  std::vector<PortRange> ports;  // mapped in addition to the profile
};
// The device's name, else its address or MAC as configured.
std::string label(const Device& device);

struct Config {
  std::string source = "built-in defaults";
  ProtocolChoice protocol = ProtocolChoice::automatic;
  std::optional<boost::asio::ip::address_v4> gateway;
  std::string igd_url;
  bool ring_profile = true;
  PortRange ring_rtp_window = {Transport::udp, 16500, 16599};
  // For this host, in addition to the profile; the profile is this host's
  // only while no device is configured.
  std::vector<PortRange> ports;
  // [[device]] tables, or --device: the mappings are for these.
  std::vector<Device> devices;
  std::chrono::seconds lease{3600};
  std::string description = "natkeeper";
  bool allow_other_external_port = false;
  // Plans of more mappings than this get a warning first (0: never).
  std::size_t warn_above = 128;
  bool verify = true;
  std::string reflector;           // HOST:PORT of a natkeeper-reflector; empty: none
  std::string stun;                // HOST:PORT of an RFC 5780 STUN server; empty: none
  std::string reflector_key_file;  // pre-shared key of a private reflector
  // The service proves its mappings again this often (and after every change
  // of them); zero: only after changes.
  std::chrono::seconds verify_interval{3600};
};

// "host:port" with a port 1-65535 (the host may be a name or an IPv4 address).
bool is_host_and_port(std::string_view text);

// "http://192.168.1.1:5000/rootDesc.xml": an http URL whose host is an IPv4
// address (natkeeper fetches descriptions only from literal addresses).
bool is_igd_url(std::string_view text);
inline constexpr std::string_view kIgdUrlSyntax =
    "the http:// URL of the gateway's IGD description, with an IPv4 address as its host";

struct ConfigError {
  std::string file;
  std::size_t line = 0;  // 0 when the error has no position
  std::string key;       // dotted path, e.g. "mapping.lease"; may be empty
  std::string message;
  // "file:line: key: message", the form editors and users recognise.
  std::string to_string() const;
};

using ConfigResult = boost::system::result<Config, ConfigError>;

// Parses TOML text; `source_name` is the file name used in errors.
ConfigResult parse_config(std::string_view toml_text, std::string_view source_name);
ConfigResult load_config_file(const std::string& path);

// The file natkeeper reads when -c is not given, if it exists.
std::string default_config_path();

// Whether the profile is mapped for this host: only while no device is configured.
bool profile_for_this_host(const Config& config);
// Whether the configuration asks for any mapping at all, for this host or a device.
bool plans_anything(const Config& config);

// A device's current address, or nullopt when it cannot be found (a MAC not
// in the neighbour table); one per config.devices entry, in order.
using DeviceAddresses = std::vector<std::optional<boost::asio::ip::address_v4>>;
// The configured addresses: enough where no device is named by MAC.
DeviceAddresses configured_addresses(const Config& config);

// Every mapping the configuration asks for, one per device, transport and
// port, in priority order (this host's first, then each device's; profile
// before extra ports), without duplicates. Devices without an address are
// left out. A device that wants an external port planned for another keeps
// asking for it: the gateway then refuses it, or grants another one where
// mapping.allow_other_external_port allows it.
std::vector<MapRequest> plan_requests(const Config& config, const DeviceAddresses& addresses);
std::vector<MapRequest> plan_requests(const Config& config);  // with configured_addresses()

// The same plan in runs: `count` requests for consecutive ports from
// `first`'s (internal and wanted external port alike), the same in all else.
// As large as the configuration, not as the ports it names.
struct RequestRun {
  MapRequest first;
  std::uint32_t count = 0;
};
std::vector<RequestRun> plan_runs(const Config& config, const DeviceAddresses& addresses);

}  // namespace natkeeper::config
