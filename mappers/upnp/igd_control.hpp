#pragma once
// The seam between the UPnP mapper's policy and libminiupnpc: the SOAP actions
// natkeeper uses, as blocking calls with error codes in upnp_category().
// Tests replace it with a scripted gateway.
#include <chrono>
#include <cstdint>
#include <string>

#include "mappers/mapper.hpp"
#include "mappers/upnp/port_mappings.hpp"

namespace natkeeper::upnp {

class IgdControl {
 public:
  virtual ~IgdControl() = default;
  // True when the WAN connection service is IGDv2's, which has AddAnyPortMapping.
  virtual bool has_add_any_port_mapping() const = 0;
  virtual std::error_code add_port_mapping(const PortMappingArgs& args) = 0;
  // Returns the external port the gateway reserved (may differ from the one asked).
  virtual Result<std::uint16_t> add_any_port_mapping(const PortMappingArgs& args) = 0;
  virtual std::error_code delete_port_mapping(Transport proto, std::uint16_t external_port) = 0;
  virtual Result<PortMappingEntry> get_specific_port_mapping(Transport proto,
                                                             std::uint16_t external_port) = 0;
  // The table's entry at `index` (from 0); UPnP error 713 past its end.
  virtual Result<ListedPortMapping> get_generic_port_mapping(std::uint32_t index) = 0;
  virtual Result<std::string> get_external_ip_address() = 0;
};

}  // namespace natkeeper::upnp
