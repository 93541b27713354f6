#include "agent/report/status.hpp"

#include <fmt/format.h>

#include "agent/report/table.hpp"

namespace natkeeper {

nlohmann::json status_mapping_json(const MappingReport& mapping, std::string_view this_host,
                                   std::chrono::seconds renew_in, std::optional<std::chrono::seconds> verified_ago) {
  using nlohmann::json;
  auto item = mapping_json(mapping, this_host);
  if (!mapping.mapping && !mapping.error) item["state"] = "pending";
  item["lease"] = mapping.mapping ? format_lease(*mapping.mapping) : std::string();
  item["renew_in_s"] = renew_in.count();
  item["verified_by"] = mapping.verified_by;
  item["verified_ago_s"] = verified_ago ? json(verified_ago->count()) : json(nullptr);
  item["note"] = mapping.note;
  return item;
}

namespace {

std::string text_of(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_integer()) return std::to_string(value.get<long long>());
  return "-";
}

long long number_of(const nlohmann::json& value) { return value.is_number_integer() ? value.get<long long>() : -1; }

std::string duration_of(long long seconds) {
  if (seconds < 0) return "-";
  if (seconds < 120) return fmt::format("{}s", seconds);
  if (seconds < 7200) return fmt::format("{}m", seconds / 60);
  return fmt::format("{}h{:02}m", seconds / 3600, seconds / 60 % 60);
}

// A string field, empty when absent or null.
std::string string_of(const nlohmann::json& object, const char* key) {
  const auto value = object.value(key, nlohmann::json());
  return value.is_string() ? value.get<std::string>() : std::string();
}

}  // namespace

std::string status_to_text(const nlohmann::json& status) {
  std::string out = fmt::format("natkeeper (pid {}): {}\n", text_of(status.value("pid", nlohmann::json())),
                                status.value("status", std::string("?")));
  const auto& gateway = status.value("gateway", nlohmann::json());
  if (gateway.is_object())
    out += fmt::format("Gateway {} via {} ({}); this host {} on {}\n", text_of(gateway["address"]),
                       text_of(gateway["method"]), text_of(gateway["detail"]), text_of(gateway["local_address"]),
                       text_of(gateway["interface"]));
  out += fmt::format("NAT: {}: {}\n", text_of(status.value("nat", nlohmann::json())),
                     text_of(status.value("nat_explanation", nlohmann::json())));
  if (const auto changes = number_of(status.value("external_ip_changes", nlohmann::json())); changes > 0)
    out += fmt::format("The external address changed {} times since the start.\n", changes);
  out += "\n";
  std::vector<TableLine> lines;
  const auto mappings = status.value("mappings", nlohmann::json::array());
  const bool any_device = std::any_of(mappings.begin(), mappings.end(),
                                      [](const auto& mapping) { return mapping.contains("device"); });
  for (const auto& mapping : mappings) {
    const auto error = string_of(mapping, "error");
    // The service's JSON names whom each mapping is for; the heading says it as a --once table does.
    const auto client = string_of(mapping, "internal_client"), device = string_of(mapping, "device");
    TableLine line{text_of(mapping["proto"]), static_cast<std::uint16_t>(number_of(mapping["internal_port"])),
                   std::nullopt, {}, {}, std::nullopt, any_device ? client_label(device, client) : std::string()};
    if (!mapping["external_port"].is_null())
      line.external = {text_of(mapping["external_ip"]), static_cast<std::uint16_t>(number_of(mapping["external_port"]))};
    std::string detail = error;
    if (detail.empty() && !string_of(mapping, "verified_by").empty())
      detail = fmt::format("verified by {} {} ago", string_of(mapping, "verified_by"),
                           duration_of(number_of(mapping["verified_ago_s"])));
    if (detail.empty()) detail = string_of(mapping, "note");
    const auto renew_in = number_of(mapping["renew_in_s"]);
    const auto lease = string_of(mapping, "lease");
    line.alike = TableLine::key({text_of(mapping["state"]), text_of(mapping["method"]), string_of(mapping, "note"),
                                 string_of(mapping, "verified_by"), lease, error});
    line.cells = {text_of(mapping["state"]), lease.empty() ? "-" : lease,
                  mapping["external_port"].is_null() && error.empty() ? std::string("-") : duration_of(renew_in),
                  detail};
    // Each mapping has its own random renewal point: a run shows its earliest.
    line.least = TableLine::Least{2, renew_in};
    lines.push_back(std::move(line));
  }
  out += render_table({{"STATE", 10}, {"LEASE", 7}, {"RENEW IN", 9}, {"DETAIL", 0}}, lines);
  const auto& summary = status.value("summary", nlohmann::json::object());
  out += fmt::format("\n{} of {} mappings active, {} verified from outside.\n", text_of(summary.value("active", nlohmann::json())),
                     text_of(summary.value("planned", nlohmann::json())), text_of(summary.value("verified", nlohmann::json())));
  return out;
}

}  // namespace natkeeper
