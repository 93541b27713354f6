#include "agent/report/report.hpp"

#include <fmt/format.h>

#include "agent/report/table.hpp"
#include "mappers/errors.hpp"

namespace natkeeper {

namespace {

std::optional<asio::ip::address> external_address(const GatewayReport& gateway) {
  if (!gateway.external_ip) return std::nullopt;
  boost::system::error_code not_an_address;
  const auto address = asio::ip::make_address(*gateway.external_ip, not_an_address);
  if (not_an_address) return std::nullopt;
  return address;
}

}  // namespace

std::string_view to_string(MappingState state) {
  switch (state) {
    case MappingState::verified: return "verified";
    case MappingState::mapped: return "mapped";
    case MappingState::unreachable: return "unreachable";
    case MappingState::failed: return "failed";
  }
  return "failed";
}

std::size_t RunReport::active() const {
  return static_cast<std::size_t>(std::count_if(mappings.begin(), mappings.end(), [](const auto& m) {
    return m.state == MappingState::mapped || m.state == MappingState::verified;
  }));
}

RunReport make_report(GatewayReport gateway, NatKind nat, std::string_view method,
                      const std::vector<MapOutcome>& outcomes) {
  RunReport report{std::move(gateway), nat, std::nullopt, {}};
  report.mappings.reserve(outcomes.size());
  for (const auto& outcome : outcomes) {
    MappingReport entry;
    entry.request = outcome.request;
    entry.method = method;
    entry.mapping = outcome.mapping;
    entry.error = outcome.error;
    entry.state = outcome.mapping ? MappingState::mapped : MappingState::failed;
    report.mappings.push_back(std::move(entry));
  }
  return report;
}

GatewayReport gateway_report(const GatewayPath& path, const FoundProtocol& found,
                             std::optional<asio::ip::address> external_ip) {
  return {path.gateway.to_string(), path.local.address.to_string(), std::string(to_string(found.method)),
          found.detail, external_ip ? std::optional(external_ip->to_string()) : std::nullopt};
}

namespace {

// A gateway's refusal of a mapping for another device, whichever protocol
// said it: UPnP's (checked by the mapper), PCP's answers to THIRD_PARTY, and
// NAT-PMP, which cannot ask.
bool refuses_other_device(const std::error_code& error, const MapRequest& request) {
  if (!for_other_device(request)) return false;
  if (error == MapFailure::third_party_refused) return true;
  return error == make_pcp_error(2) || error == make_pcp_error(5) || error == make_pcp_error(12);
}

// What the user can change for a device the router refuses to map for.
std::string third_party_advice(const std::error_code& error, const MapRequest& request) {
  const auto address = request.internal_client->to_string();
  const auto manual = fmt::format("otherwise forward the ports to {} by hand in the router", address);
  if (error == Errc::third_party_unsupported)
    return fmt::format("the gateway speaks no protocol that can: enable UPnP or PCP on it, or forward the ports to "
                       "{} by hand",
                       address);
  if (error.category() == pcp_category())
    return fmt::format("on miniupnpd (OpenWrt, pfSense, OPNsense) set pcp_allow_thirdparty=yes; {}", manual);
  return fmt::format("on miniupnpd (OpenWrt, pfSense, OPNsense, most Linux routers) set secure_mode=no; on a "
                     "FRITZ!Box permit independent port sharing for {}; {}",
                     address, manual);
}

}  // namespace

std::string describe_failure(const std::error_code& error, const MapRequest& request,
                             const std::optional<asio::ip::address>& gateway_external) {
  // OpenWrt's miniupnpd answers so whenever its own WAN address is private.
  if (error == make_upnp_error(501) && gateway_external) {
    if (const auto why = unreachable_wan(*gateway_external)) return fmt::format("{} ({})", *why, error.message());
  }
  if (refuses_other_device(error, request)) {
    // natkeeper's own codes say it in words; a protocol's code is shown with them.
    const auto what = error.category() == natkeeper_category()
                          ? error.message()
                          : fmt::format("{} ({})", make_error_code(Errc::third_party_refused).message(), error.message());
    return fmt::format("{}: {}", what, third_party_advice(error, request));
  }
  if (error == Errc::table_full_skipped || error.category() == natkeeper_category()) return error.message();
  std::string meaning;
  if (error == MapFailure::port_conflict)
    meaning = fmt::format("conflict: external port {} is held by another client", request.wanted_external_port);
  else if (error == MapFailure::table_full)
    meaning = "gateway mapping table full";
  else if (error == MapFailure::not_authorized)
    meaning = "not authorized: the gateway refuses mappings for this host";
  if (meaning.empty()) return error.message();
  return fmt::format("{} ({})", meaning, error.message());
}

std::string error_code_name(const std::error_code& error) {
  return fmt::format("{}:{}", error.category().name(), error.value());
}

std::string format_lease(const Mapping& mapping) {
  if (mapping.permanent || mapping.lifetime.count() == 0) return "permanent";
  const auto total = mapping.lifetime.count();
  const auto hours = total / 3600, minutes = total % 3600 / 60, seconds = total % 60;
  std::string text;
  if (hours) text += fmt::format("{}h", hours);
  if (minutes) text += fmt::format("{}m", minutes);
  if (seconds || text.empty()) text += fmt::format("{}s", seconds);
  return text;
}

std::string client_label(std::string_view device, std::string_view client_address) {
  if (device.empty()) return fmt::format("this host {}", client_address);
  return device == client_address ? std::string(client_address) : fmt::format("{} {}", device, client_address);
}

namespace {

// The device's name in reports: its label, else its address; empty for this host.
std::string device_name(const MapRequest& request) {
  if (!for_other_device(request)) return {};
  return request.device.empty() ? request.internal_client->to_string() : request.device;
}

std::string client_address(const MapRequest& request, std::string_view this_host) {
  return for_other_device(request) ? request.internal_client->to_string() : std::string(this_host);
}

}  // namespace

nlohmann::json mapping_json(const MappingReport& m, std::string_view this_host,
                            const std::optional<asio::ip::address>& gateway_external) {
  using nlohmann::json;
  const bool known_ip = m.mapping && !m.mapping->external_ip.is_unspecified();
  const auto& request = m.request;
  json out = {{"proto", to_string(m.request.proto)},
          {"internal_port", m.request.internal_port},
          {"internal_client", client_address(request, this_host)},
          {"external_port", m.mapping ? json(m.mapping->external_port) : json(nullptr)},
          {"external_ip", known_ip ? json(m.mapping->external_ip.to_string()) : json(nullptr)},
          {"method", m.method},
          {"state", to_string(m.state)},
          {"error", m.error ? json(describe_failure(m.error, m.request, gateway_external)) : json(nullptr)},
          {"error_code", m.error ? json(error_code_name(m.error)) : json(nullptr)}};
  if (for_other_device(request)) out["device"] = device_name(request);
  return out;
}

nlohmann::json gateway_json(const GatewayReport& gateway) {
  using nlohmann::json;
  return {{"address", gateway.address},
          {"local_address", gateway.local_address},
          {"method", gateway.method},
          {"detail", gateway.detail},
          {"external_ip", gateway.external_ip ? json(*gateway.external_ip) : json(nullptr)}};
}

nlohmann::json to_json(const RunReport& report) {
  using nlohmann::json;
  json mappings = json::array();
  for (const auto& m : report.mappings) {
    auto entry = mapping_json(m, report.gateway.local_address, external_address(report.gateway));
    entry["lifetime"] = m.mapping ? json(m.mapping->lifetime.count()) : json(nullptr);
    entry["permanent"] = m.mapping && m.mapping->permanent;
    entry["description"] = m.request.description;
    if (m.mapping) {
      entry["verification"] = {
          {"method", m.verified_by.empty() ? json(nullptr) : json(m.verified_by)},
          {"note", m.note.empty() ? json(nullptr) : json(m.note)},
          {"round_trip_ms", m.probe_round_trip
                                ? json(std::chrono::duration<double, std::milli>(*m.probe_round_trip).count())
                                : json(nullptr)}};
    }
    mappings.push_back(std::move(entry));
  }
  return {{"gateway", gateway_json(report.gateway)},
          {"observed_public_ip", report.observed_public_ip ? json(*report.observed_public_ip) : json(nullptr)},
          {"nat", to_string(report.nat)},
          {"nat_explanation", explain(report.nat)},
          {"mappings", std::move(mappings)},
          {"summary",
           {{"requested", report.mappings.size()},
            {"active", report.active()},
            {"failed", report.mappings.size() - report.active()}}}};
}

std::string to_text(const RunReport& report) {
  std::string out = fmt::format("Gateway {} via {} ({}), external address {}\n", report.gateway.address,
                                report.gateway.method, report.gateway.detail,
                                report.gateway.external_ip.value_or("unknown"));
  out += fmt::format("NAT: {}: {}\n\n", to_string(report.nat), explain(report.nat));

  std::vector<TableLine> lines;
  const bool any_device = std::any_of(report.mappings.begin(), report.mappings.end(),
                                      [](const auto& m) { return for_other_device(m.request); });
  for (const auto& m : report.mappings) {
    TableLine line{.proto = std::string(to_string(m.request.proto)),
                   .internal_port = m.request.internal_port,
                   .count = 1,
                   .external = std::nullopt,
                   .alike = {},
                   .cells = {},
                   .least = std::nullopt,
                   .group = any_device ? client_label(device_name(m.request),
                                                      client_address(m.request, report.gateway.local_address))
                                       : std::string()};
    std::string lease = "-", state(to_string(m.state)), outcome;
    if (m.mapping) {
      line.external = {m.mapping->external_ip.to_string(), m.mapping->external_port};
      lease = format_lease(*m.mapping);
      if (!m.verified_by.empty()) state += " (" + m.verified_by + ")";
      else if (m.state == MappingState::unreachable) state += ": " + m.note;
      // Whoever connects from outside must be told the other port (EXTERNAL shows it).
      if (m.mapping->external_port != m.request.wanted_external_port)
        state += "; on another external port: the wanted one was taken";
      outcome = fmt::format("{}/{}", m.mapping->lifetime.count(), m.mapping->permanent);
    } else {
      outcome = describe_failure(m.error, m.request, external_address(report.gateway));
      state += ": " + outcome;
    }
    // A failure's description names a conflict's port: each conflict keeps its own row.
    line.alike = TableLine::key({to_string(m.state), m.method, m.note, m.verified_by, outcome});
    line.cells = {m.method, lease, state};
    lines.push_back(std::move(line));
  }
  out += render_table({{"METHOD", 7}, {"LEASE", 10}, {"STATE", 0}}, lines);
  out += fmt::format("\n{} of {} mappings active", report.active(), report.mappings.size());
  const auto verified = std::count_if(report.mappings.begin(), report.mappings.end(),
                                      [](const auto& m) { return m.state == MappingState::verified; });
  const auto unverified = std::find_if(report.mappings.begin(), report.mappings.end(), [](const auto& m) {
    return m.state == MappingState::mapped && !m.note.empty();
  });
  if (verified > 0) out += fmt::format(", {} verified from outside", verified);
  out += ".\n";
  if (unverified != report.mappings.end()) out += fmt::format("Not verified: {}.\n", unverified->note);
  if (std::any_of(report.mappings.begin(), report.mappings.end(),
                  [](const auto& m) { return m.mapping && m.mapping->permanent; }))
    out += "Some leases are permanent (the gateway grants no others): remove them with natkeeper --delete.\n";
  return out;
}

}  // namespace natkeeper
