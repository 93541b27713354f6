#pragma once
// The seam between the UPnP mapper's policy and the gateway: the SOAP actions
// natkeeper uses, each bounded in time and bytes and cancellable through
// Asio's per-operation cancellation. A refusal is the UPnP errorCode in
// upnp_category(); an answer that came but cannot be read, Errc::bad_reply;
// no answer, an error equivalent to MapFailure::gateway_unreachable.
// Tests replace it with a scripted gateway.
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

#include "mappers/result.hpp"
#include "mappers/transport.hpp"
#include "mappers/upnp/port_mappings.hpp"

namespace natkeeper::upnp {

class IgdControl {
 public:
  virtual ~IgdControl() = default;
  // True when the WAN connection service is IGDv2's, which has AddAnyPortMapping.
  virtual bool has_add_any_port_mapping() const = 0;
  virtual boost::asio::awaitable<std::error_code> add_port_mapping(PortMappingArgs args) = 0;
  // Returns the external port the gateway reserved (may differ from the one asked).
  virtual boost::asio::awaitable<Result<std::uint16_t>> add_any_port_mapping(PortMappingArgs args) = 0;
  virtual boost::asio::awaitable<std::error_code> delete_port_mapping(Transport proto, std::uint16_t external_port) = 0;
  virtual boost::asio::awaitable<Result<PortMappingEntry>> get_specific_port_mapping(Transport proto,
                                                                                     std::uint16_t external_port) = 0;
  // The table's entry at `index` (from 0); UPnP error 713 past its end.
  virtual boost::asio::awaitable<Result<ListedPortMapping>> get_generic_port_mapping(std::uint32_t index) = 0;
  // GetListOfPortMappings (IGDv2 only): the entries for `proto` with external ports in
  // [first_port, last_port], at most `at_most` of them, in the gateway's order.
  virtual boost::asio::awaitable<Result<std::vector<ListedPortMapping>>> get_list_of_port_mappings(
      Transport proto, std::uint16_t first_port, std::uint16_t last_port, std::uint16_t at_most) = 0;
  virtual boost::asio::awaitable<Result<std::string>> get_external_ip_address() = 0;
};

}  // namespace natkeeper::upnp
