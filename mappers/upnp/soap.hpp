#pragma once
// UPnP control messages (UPnP Device Architecture 1.1 section 3.2, SOAP 1.1)
// as a pure codec: the request natkeeper POSTs for an action, and what the
// gateway's answer says. Answers are read by libminiupnpc's parsers
// (ParseNameValue, ParsePortListing), on bytes natkeeper received itself
// within limits.
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mappers/result.hpp"
#include "mappers/transport.hpp"
#include "mappers/upnp/port_mappings.hpp"

namespace natkeeper::upnp {

struct SoapArgument {
  std::string_view name;
  std::string value;  // as meant: escaped by the codec
};

// The envelope calling `action` of the service of type `service_type`.
std::string soap_request_body(std::string_view service_type, std::string_view action,
                              std::span<const SoapArgument> arguments);
// The SOAPACTION header's value: "service-type#action", quoted.
std::string soap_action_header(std::string_view service_type, std::string_view action);

// An answer's output arguments by name, entities decoded; NewPortListing as
// sent, for it is a document of its own (read_port_listing).
using SoapOutputs = std::map<std::string, std::string, std::less<>>;

// The answer to `action`, its HTTP status and body: the values of those of
// `outputs` it holds, or a fault's UPnP errorCode as make_upnp_error(code).
// Neither a fault nor `action`'s whole response element in a 200 answer is
// Errc::bad_reply.
Result<SoapOutputs> read_soap_answer(std::string_view action, int http_status, std::string_view body,
                                     std::span<const std::string_view> outputs);

// The entries of a GetListOfPortMappings answer's NewPortListing, a
// PortMappingList document sent in CDATA (miniupnpd) or escaped, in document
// order: those for `proto` with external ports in [first_port, last_port],
// at most `at_most` of them (a gateway may ignore the arguments). An entry
// without its ports is Errc::bad_reply; an empty listing has no entries.
Result<std::vector<ListedPortMapping>> read_port_listing(std::string_view listing, Transport proto,
                                                         std::uint16_t first_port, std::uint16_t last_port,
                                                         std::uint16_t at_most);

}  // namespace natkeeper::upnp
