#pragma once
#include <system_error>

namespace natkeeper {

// Failures that are natkeeper's own (not a code some gateway sent).
enum class Errc {
  no_default_route = 1,
  no_gateway_answer,
  not_an_igd,
  bad_reply,
  timed_out,
  table_full_skipped,  // not attempted: the gateway already said its table is full
  external_port_moved, // gateway offered another external port, config forbids it
  bad_http_answer,     // malformed, over a size limit, or not 200 OK
  // The gateway refused a mapping for another device while no other client
  // holds the port: it forwards only to the host that asks.
  third_party_refused,
  // The protocol has no way to name another device (NAT-PMP).
  third_party_unsupported,
  // A PCP gateway answered a new mapping or renewal with SUCCESS and
  // lifetime 0: it holds no mapping.
  nothing_granted,
  // The gateway answered that it made a mapping, and then did not show it
  // as the one asked for (UPnP's GetSpecificPortMappingEntry).
  added_but_not_held,
  // The gateway refused a mapping with a code that does not say why, and
  // its table shows another client holding the external port.
  port_held_by_another,
};
const std::error_category& natkeeper_category();
std::error_code make_error_code(Errc e);

// UPnP-IGD: the value is the UPnP errorCode (718, 725, ...) of a SOAP fault.
const std::error_category& upnp_category();
std::error_code make_upnp_error(int code);

// PCP (RFC 6887 §7.4): the value is the server's result code (1..13).
const std::error_category& pcp_category();
std::error_code make_pcp_error(int result_code);

// NAT-PMP (RFC 6886 §3.5): the value is the server's result code (1..5).
const std::error_category& natpmp_category();
std::error_code make_natpmp_error(int result_code);

// What policy acts on, whichever protocol reported it. Each protocol category
// declares which of its codes are equivalent to these.
enum class MapFailure {
  table_full = 1,
  port_conflict,
  not_authorized,
  only_permanent_leases,
  // A mapping for another device refused as such (Errc::third_party_refused,
  // third_party_unsupported; PCP's refusals of a THIRD_PARTY request are
  // told apart by the caller, who knows the request named a device).
  third_party_refused,
  // No answer (timeouts, a connection closed before any answer) or a socket
  // error: the gateway is not there, or not the one we knew.
  gateway_unreachable,
};
const std::error_category& map_failure_category();
std::error_condition make_error_condition(MapFailure f);

}  // namespace natkeeper

template <>
struct std::is_error_code_enum<natkeeper::Errc> : std::true_type {};
template <>
struct std::is_error_condition_enum<natkeeper::MapFailure> : std::true_type {};
