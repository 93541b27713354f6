#pragma once
// What is asked of a gateway, and what it granted.
#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "mappers/transport.hpp"

namespace natkeeper {

struct MapRequest {
  Transport proto = Transport::udp;
  std::uint16_t internal_port = 0;
  std::uint16_t wanted_external_port = 0;
  std::chrono::seconds lifetime{3600};
  std::string description;
  // The LAN device the gateway is to forward to ("third-party" mapping);
  // unset: the host that asks.
  std::optional<boost::asio::ip::address> internal_client;
  // That device's configured name; empty for the host that asks and for a
  // device without a name (reports then show its address).
  std::string device;
};

// Is the mapping for another device than the host that asks?
inline bool for_other_device(const MapRequest& request) { return request.internal_client.has_value(); }

struct Mapping {
  MapRequest request;
  boost::asio::ip::address external_ip;
  std::uint16_t external_port = 0;
  // Granted lifetime, as far as renewals may rely on it: PCP and NAT-PMP
  // bound it by the request and a cap (lease_policy.hpp). Zero with
  // `permanent` set when the gateway only grants leases without expiry.
  std::chrono::seconds lifetime{0};
  // A permanent lease outlives natkeeper: it must be deleted explicitly.
  bool permanent = false;
};

}  // namespace natkeeper
