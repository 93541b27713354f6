#pragma once
// The service's state file as a pure codec: what natkeeper holds at the
// gateway, so that a later run (after a crash or SIGKILL) or --delete can
// remove it. Text in, struct out; no I/O, never throws.
//
// The file is JSON Lines, each line one record ending in its own CRC-32:
// a header (version, gateway, method, local address, mapping count), one
// record per mapping, and the header again as the last line. A torn or
// corrupted line is detected and skipped, every intact record is kept, and
// either copy of the header places them.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "mappers/transport.hpp"

namespace natkeeper::state {

// Bounds on what decode() reads: a state file is written by natkeeper, so
// anything larger is damage, not data. kMaxLiveMappings (every port of both
// protocols), each for a device with the longest name, encodes to about 40 MB
// at most, within kMaxStateFileBytes.
inline constexpr std::size_t kMaxStateFileBytes = 48 * 1024 * 1024;
inline constexpr std::size_t kMaxLiveMappings = 2 * 65536;
inline constexpr std::size_t kMaxDeviceNameBytes = 64;
// Damaged lines described one by one; the rest are counted.
inline constexpr std::size_t kMaxDamageListed = 8;

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
  // False: requested or being removed, not confirmed by the gateway; it may be
  // at the gateway, so cleanup deletes it. In the file only when false.
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

// What `state` holds, whatever its expiry times: equal for states that record
// the same mappings at the same gateway, and (but for a 64-bit collision)
// different otherwise. The state file need not be written again for a state
// whose digest it holds (an expiry is recorded as "now + lease" at every
// recording, so it moves each time while nothing to delete changed); a digest
// is all a writer keeps of what it wrote.
std::uint64_t holdings_digest(const ServiceState& state);

// The file's text. decode(encode(state)) gives `state` back, intact, for any
// state decode() returns.
std::string encode(const ServiceState& state);
// The same text, line by line, to `write`: a state of a hundred thousand
// mappings need not be held twice, as records and as text. Stops at the first
// line `write` refuses (returns false).
bool encode(const ServiceState& state, const std::function<bool(std::string_view line)>& write);

// A line decode() could not use, for a log line.
struct Damage {
  std::size_t line = 0;  // 1-based; 0: the file as a whole
  std::string problem;   // e.g. "checksum mismatch", "internal_port: not a port (0)"
  friend bool operator==(const Damage&, const Damage&) = default;
};

struct Decoded {
  // Everything intact: the header and every intact mapping record. Without an
  // intact header (neither copy) the mappings cannot be placed and are empty.
  ServiceState state;
  std::vector<Damage> damage;     // the first kMaxDamageListed problems, in file order
  std::size_t damage_count = 0;  // all problems, listed or not
  // Mappings the file recorded that are not in `state` (when the header's count
  // is known, or the intact records an unplaceable header lost).
  std::size_t lost_mappings = 0;
  bool intact() const { return damage_count == 0; }
};

// Never throws; reads at most kMaxStateFileBytes of `text` and keeps at most
// kMaxLiveMappings mappings. Reads the earlier format too: one JSON object
// (version 1) with a "mappings" array, all or nothing, as it has no per-record
// checksums. Refuses (as damage) wrong versions, missing or mistyped fields,
// bad addresses, ports outside 1..65535, unknown methods or protocols, a
// negative expiry. Members it does not know are ignored.
Decoded decode(std::string_view text);

// One line for a log: what was damaged and what was lost; "" when intact.
std::string describe_damage(const Decoded& decoded);

}  // namespace natkeeper::state
