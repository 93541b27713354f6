#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "agent/gateway/discovery.hpp"
#include "agent/gateway/map_batch.hpp"
#include "agent/gateway/nat_diagnosis.hpp"

namespace natkeeper {

enum class MappingState { verified, mapped, unreachable, failed };
std::string_view to_string(MappingState state);

struct GatewayReport {
  std::string address;
  std::string local_address;
  std::string method;
  std::string detail;
  std::optional<std::string> external_ip;
};

struct MappingReport {
  MapRequest request;
  std::string method;
  std::optional<Mapping> mapping;
  std::error_code error;
  MappingState state = MappingState::failed;
  std::string verified_by;  // "reflector" or "stun" once verified
  std::string note;         // why only mapped, or what an unreachable probe tried
  std::optional<std::chrono::steady_clock::duration> probe_round_trip;
};

struct RunReport {
  GatewayReport gateway;
  NatKind nat = NatKind::unknown;
  std::optional<std::string> observed_public_ip;  // what the outside observer saw
  std::vector<MappingReport> mappings;
  std::size_t active() const;
};

RunReport make_report(GatewayReport gateway, NatKind nat, std::string_view method,
                      const std::vector<MapOutcome>& outcomes);

// The gateway as a report shows it.
GatewayReport gateway_report(const GatewayPath& path, const FoundProtocol& found,
                             std::optional<asio::ip::address> external_ip);

// The message a user reads for a failed mapping, with the protocol's own code.
// `gateway_external` is the gateway's external address, when known: a router
// refusing with a bare "Action Failed" while its own address cannot be
// reached from the internet is told so.
std::string describe_failure(const std::error_code& error, const MapRequest& request,
                             const std::optional<asio::ip::address>& gateway_external);
// "upnp:718"-style code for scripts.
std::string error_code_name(const std::error_code& error);
// "1h", "2h30m", "45s", "permanent".
std::string format_lease(const Mapping& mapping);

// Whom a mapping is for, as tables head its group: "this host 10.77.0.2"
// (`device` empty), "doorbell 10.77.0.50", or the address alone for a device
// known by it.
std::string client_label(std::string_view device, std::string_view client_address);

// One mapping as every JSON output shows it (--once, --status, --delete):
// protocol, ports, whom it is for (`this_host`: this host's address),
// external address, method, state, and why it failed (see describe_failure).
nlohmann::json mapping_json(const MappingReport& mapping, std::string_view this_host,
                            const std::optional<asio::ip::address>& gateway_external);
nlohmann::json gateway_json(const GatewayReport& gateway);
nlohmann::json to_json(const RunReport& report);
// A table one reads at a glance: consecutive ports with the same outcome share a row.
std::string to_text(const RunReport& report);

}  // namespace natkeeper
