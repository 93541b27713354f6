#pragma once
// What a PCP gateway refused, for as long as it said the refusal holds:
// RFC 6887 §7.2 makes the Lifetime of an error response how long the client
// is to expect the same error if it repeats the same request, so the request
// is not repeated before then. Time is passed in.
#include <boost/asio/ip/address_v4.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <system_error>
#include <tuple>

#include "mappers/transport.hpp"

namespace natkeeper::pcp {

// A gateway's error lifetime is honoured up to this. §7.4 recommends 30
// minutes for long-lifetime errors (NOT_AUTHORIZED, UNSUPP_*, MALFORMED_*...),
// so a gateway that says more (up to 2^32-1 s, 136 years) is not to be taken
// at its word: a refusal fixed at the router is then tried again within half
// an hour, as it would be with a gateway that follows the recommendation.
inline constexpr std::chrono::seconds kMaxHonouredErrorLifetime = std::chrono::minutes(30);

// How long a refusal is held, for the Lifetime a gateway sent with it.
constexpr std::chrono::seconds honoured_error_lifetime(std::chrono::seconds sent) {
  return sent < kMaxHonouredErrorLifetime ? sent : kMaxHonouredErrorLifetime;
}

// What makes two MAP requests the same request: every field but the nonce,
// which follows from the first three (and the client's own address, the same
// for every request of one client).
struct MapRequestKey {
  boost::asio::ip::address_v4 internal_client;  // this host, or the third party
  Transport proto = Transport::udp;
  std::uint16_t internal_port = 0;
  std::uint16_t suggested_external_port = 0;
  std::uint32_t lifetime = 0;  // requested; 0 deletes
  friend bool operator<(const MapRequestKey& a, const MapRequestKey& b) {
    return std::tie(a.internal_client, a.proto, a.internal_port, a.suggested_external_port, a.lifetime) <
           std::tie(b.internal_client, b.proto, b.internal_port, b.suggested_external_port, b.lifetime);
  }
};

// A refusal that still holds: the error, and how much longer.
struct Refusal {
  std::error_code error;
  std::chrono::steady_clock::duration remaining{};
};

// The refusals that hold, per request, at most `capacity` of them. More than a
// plan asks for unless it maps thousands of ports; beyond it the refusal
// that ends soonest is forgotten, and its request may be sent again early.
class Refusals {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kDefaultCapacity = 1024;

  explicit Refusals(std::size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  // The gateway answered `request` at `now` with `error` and `lifetime`.
  void remember(const MapRequestKey& request, std::error_code error, std::chrono::seconds lifetime,
                Clock::time_point now);
  // The refusal of `request` that holds at `now`, if any.
  std::optional<Refusal> holding(const MapRequestKey& request, Clock::time_point now);
  // The gateway granted or deleted the mapping of (internal client, proto,
  // internal port): it changed what it holds, so what it answered to other
  // requests for that mapping may no longer be what it would answer now
  // (miniupnpd answers the delete of a mapping it lacks NO_RESOURCES).
  void forget_mapping(const MapRequestKey& request);
  // The gateway lost its state (RFC 6887 §8.5): it decides everything afresh.
  void clear() { held_.clear(); }
  std::size_t size() const { return held_.size(); }

 private:
  struct Held {
    std::error_code error;
    Clock::time_point until;
  };
  void make_room(Clock::time_point now);

  std::map<MapRequestKey, Held> held_;
  std::size_t capacity_;
};

}  // namespace natkeeper::pcp
