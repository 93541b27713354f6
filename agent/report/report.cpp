#include "agent/report/report.hpp"

#include <fmt/format.h>

#include "mappers/errors.hpp"

namespace natkeeper {
namespace {

std::string port_span(std::uint16_t first, std::uint16_t last) {
  return first == last ? std::to_string(first) : fmt::format("{}-{}", first, last);
}

// A row of the text table: a run of mappings that differ only in their port.
struct Row {
  const MappingReport* first;
  const MappingReport* last;
};

bool continues(const MappingReport& previous, const MappingReport& next) {
  if (previous.request.proto != next.request.proto || previous.state != next.state ||
      previous.method != next.method || next.request.internal_port != previous.request.internal_port + 1)
    return false;
  if (previous.mapping.has_value() != next.mapping.has_value() || previous.note != next.note ||
      previous.verified_by != next.verified_by)
    return false;
  // A conflict names its port, so each gets its own row.
  if (!previous.mapping) return previous.error == next.error && previous.error != MapFailure::port_conflict;
  const auto& a = *previous.mapping;
  const auto& b = *next.mapping;
  return a.external_ip == b.external_ip && b.external_port == a.external_port + 1 &&
         a.lifetime == b.lifetime && a.permanent == b.permanent;
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

nlohmann::json to_json(const RunReport& report) {
  using nlohmann::json;
  json gateway = {{"address", report.gateway.address},
                  {"local_address", report.gateway.local_address},
                  {"method", report.gateway.method},
                  {"detail", report.gateway.detail},
                  {"external_ip", report.gateway.external_ip ? json(*report.gateway.external_ip) : json(nullptr)}};
  json mappings = json::array();
  for (const auto& m : report.mappings) {
    json entry = {{"proto", to_string(m.request.proto)},
                  {"internal_port", m.request.internal_port},
                  {"external_port", nullptr},
                  {"external_ip", nullptr},
                  {"method", m.method},
                  {"lifetime", nullptr},
                  {"permanent", false},
                  {"description", m.request.description},
                  {"state", to_string(m.state)},
                  {"error", nullptr},
                  {"error_code", nullptr}};
    if (m.mapping) {
      entry["external_port"] = m.mapping->external_port;
      entry["external_ip"] = m.mapping->external_ip.to_string();
      entry["lifetime"] = m.mapping->lifetime.count();
      entry["permanent"] = m.mapping->permanent;
    }
    if (m.error) {
      entry["error"] = describe_failure(m.error, m.request);
      entry["error_code"] = error_code_name(m.error);
    }
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
  return {{"gateway", std::move(gateway)},
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

  std::vector<Row> rows;
  for (const auto& m : report.mappings) {
    if (!rows.empty() && continues(*rows.back().last, m)) rows.back().last = &m;
    else rows.push_back({&m, &m});
  }
  constexpr auto kLayout = "{:<6} {:<12} {:<28} {:<7} {:<10} {}\n";
  out += fmt::format(kLayout, "PROTO", "INTERNAL", "EXTERNAL", "METHOD", "LEASE", "STATE");
  for (const auto& [first, last] : rows) {
    const auto internal = port_span(first->request.internal_port, last->request.internal_port);
    std::string external = "-", lease = "-", state(to_string(first->state));
    if (first->mapping) {
      external = fmt::format("{}:{}", first->mapping->external_ip.to_string(),
                             port_span(first->mapping->external_port, last->mapping->external_port));
      lease = format_lease(*first->mapping);
      if (!first->verified_by.empty()) state += " (" + first->verified_by + ")";
      else if (first->state == MappingState::unreachable) state += ": " + first->note;
    } else {
      state += ": " + describe_failure(first->error, first->request);
    }
    out += fmt::format(kLayout, to_string(first->request.proto), internal, external, first->method, lease, state);
  }
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
