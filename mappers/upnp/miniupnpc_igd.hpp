#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "mappers/upnp/igd_control.hpp"

namespace natkeeper::upnp {

struct IgdDescription {
  std::string location;      // the root description URL
  std::string service_type;  // e.g. urn:schemas-upnp-org:service:WANIPConnection:2
  std::string control_url;
  int version = 1;           // of the WAN connection service
};

struct OpenedIgd {
  std::shared_ptr<IgdControl> control;
  IgdDescription description;
};

// Reads the root description fetched from `location` and returns the IGD's WAN
// connection service, or Errc::not_an_igd. Only libminiupnpc's XML parser sees
// the bytes (natkeeper fetches them itself, within limits). The control URL must
// be on the description's host, so a description cannot aim natkeeper's SOAP
// calls elsewhere. It deliberately does not ask whether the IGD calls itself
// "connected": gateways whose external address is in a reserved range say no and
// still map.
Result<OpenedIgd> open_igd(const std::string& location, std::string_view description);

}  // namespace natkeeper::upnp
