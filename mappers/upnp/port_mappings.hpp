#pragma once
// What UPnP-IGD's port mapping actions take and tell (WANIPConnection:2
// section 2.2), as natkeeper uses them.
#include <chrono>
#include <cstdint>
#include <string>

#include "mappers/transport.hpp"

namespace natkeeper::upnp {

struct PortMappingArgs {
  Transport proto = Transport::udp;
  std::uint16_t external_port = 0;
  std::uint16_t internal_port = 0;
  std::string internal_client;  // dotted IPv4 of this host on the gateway's LAN
  std::string description;
  std::chrono::seconds lease{0};  // 0 = permanent
};

struct PortMappingEntry {
  std::string internal_client;
  std::uint16_t internal_port = 0;
  std::string description;
  std::chrono::seconds lease{0};
};

// One entry of the gateway's table, as GetGenericPortMappingEntry or
// GetListOfPortMappings tells it.
struct ListedPortMapping {
  Transport proto = Transport::udp;
  std::uint16_t external_port = 0;
  PortMappingEntry entry;
};

}  // namespace natkeeper::upnp
