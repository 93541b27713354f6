#pragma once
// What is asked of a gateway, and what it granted.
#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstdint>
#include <string>

#include "mappers/transport.hpp"

namespace natkeeper {

struct MapRequest {
  Transport proto = Transport::udp;
  std::uint16_t internal_port = 0;
  std::uint16_t wanted_external_port = 0;
  std::chrono::seconds lifetime{3600};
  std::string description;
};

struct Mapping {
  MapRequest request;
  boost::asio::ip::address external_ip;
  std::uint16_t external_port = 0;
  // Granted lifetime; zero with `permanent` set when the gateway only grants
  // leases without expiry.
  std::chrono::seconds lifetime{0};
  // A permanent lease outlives natkeeper: it must be deleted explicitly.
  bool permanent = false;
};

}  // namespace natkeeper
