#pragma once
// The service's state file as a pure codec: what natkeeper holds at the
// gateway, so that a later run (after a crash or SIGKILL) or --delete can
// remove it. JSON text in, struct out; no I/O, never throws.
#include <boost/system/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mappers/transport.hpp"

namespace natkeeper::state {

// Bounds on what decode() accepts: a state file is written by natkeeper, so
// anything larger is damage, not data. kMaxLiveMappings (every port of both
// protocols), each for a device with the longest name, encodes to about 34 MB
// at most, within kMaxStateFileBytes.
inline constexpr std::size_t kMaxStateFileBytes = 48 * 1024 * 1024;
inline constexpr std::size_t kMaxLiveMappings = 2 * 65536;
inline constexpr std::size_t kMaxDeviceNameBytes = 64;

struct LiveMapping {
  Transport proto = Transport::udp;
  std::uint16_t internal_port = 0;
  std::uint16_t external_port = 0;
  std::string external_ip;      // dotted IPv4, or empty when the gateway did not say
  bool permanent = false;       // a lease without expiry: outlives natkeeper at the gateway
  std::int64_t expires_unix = 0;  // wall-clock expiry (seconds since 1970); 0 when permanent
  // The LAN device the mapping forwards to, dotted IPv4; empty: this host
  // (local_address). Optional in the file: files without it are this host's.
  std::string internal_client;
  std::string device;  // the device's name for people; at most kMaxDeviceNameBytes
  // False: requested, or being removed, and not confirmed by the gateway; it
  // may be at the gateway, so cleanup deletes it like a confirmed one.
  // Optional in the file: absent means true.
  bool confirmed = true;
  friend bool operator==(const LiveMapping&, const LiveMapping&) = default;
};

struct ServiceState {
  std::string gateway;        // dotted IPv4 of the gateway the mappings are on
  std::string method;         // "upnp", "natpmp" or "pcp"
  std::string local_address;  // this host's address the mappings point to
  std::vector<LiveMapping> mappings;
  friend bool operator==(const ServiceState&, const ServiceState&) = default;
};

// One line of compact JSON. decode(encode(state)) gives `state` back for any
// state decode() accepts.
std::string encode(const ServiceState& state);

// Why decode() refused the text, for a log line: where and what is wrong,
// e.g. "mappings[0].internal_port: not a port (0)".
struct DecodeError {
  std::string message;
};
// Use `*result` / `result->` after checking; `.value()` is not available for
// this error type.
using DecodeResult = boost::system::result<ServiceState, DecodeError>;
// Rejects (with a message) anything that is not a state file this version
// wrote: wrong version, missing or mistyped fields, bad addresses, ports
// outside 1..65535, unknown methods or protocols, a negative expiry, more
// than kMaxLiveMappings. Members it does not know are ignored.
DecodeResult decode(std::string_view text);

}  // namespace natkeeper::state
