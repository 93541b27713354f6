#include "agent/report/report.hpp"

#include <fmt/format.h>

#include "agent/report/table.hpp"
#include "mappers/errors.hpp"

namespace natkeeper {

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

std::string describe_failure(const std::error_code& error, const MapRequest& request) {
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

nlohmann::json mapping_json(const MappingReport& m) {
  using nlohmann::json;
  const bool known_ip = m.mapping && !m.mapping->external_ip.is_unspecified();
  return {{"proto", to_string(m.request.proto)},
          {"internal_port", m.request.internal_port},
          {"external_port", m.mapping ? json(m.mapping->external_port) : json(nullptr)},
          {"external_ip", known_ip ? json(m.mapping->external_ip.to_string()) : json(nullptr)},
          {"method", m.method},
          {"state", to_string(m.state)},
          {"error", m.error ? json(describe_failure(m.error, m.request)) : json(nullptr)},
          {"error_code", m.error ? json(error_code_name(m.error)) : json(nullptr)}};
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
    auto entry = mapping_json(m);
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
  for (const auto& m : report.mappings) {
    TableLine line{std::string(to_string(m.request.proto)), m.request.internal_port, std::nullopt, {}, {}, std::nullopt};
    std::string lease = "-", state(to_string(m.state)), outcome;
    if (m.mapping) {
      line.external = {m.mapping->external_ip.to_string(), m.mapping->external_port};
      lease = format_lease(*m.mapping);
      if (!m.verified_by.empty()) state += " (" + m.verified_by + ")";
      else if (m.state == MappingState::unreachable) state += ": " + m.note;
      outcome = fmt::format("{}/{}", m.mapping->lifetime.count(), m.mapping->permanent);
    } else {
      outcome = describe_failure(m.error, m.request);
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
