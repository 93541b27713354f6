#include "agent/report/status.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace natkeeper {

nlohmann::json status_mapping_json(const MappingReport& mapping, std::string_view this_host,
                                   const std::optional<asio::ip::address>& gateway_external,
                                   std::chrono::seconds renew_in, std::optional<std::chrono::seconds> verified_ago) {
  using nlohmann::json;
  auto item = mapping_json(mapping, this_host, gateway_external);
  if (!mapping.mapping && !mapping.error) item["state"] = "pending";
  item["count"] = 1;
  item["lease"] = mapping.mapping ? format_lease(*mapping.mapping) : std::string();
  item["renew_in_s"] = renew_in.count();
  item["verified_by"] = mapping.verified_by;
  item["verified_ago_s"] = verified_ago ? json(verified_ago->count()) : json(nullptr);
  item["note"] = mapping.note;
  return item;
}

bool StatusRows::continues(const MappingReport& next, std::optional<std::chrono::seconds> verified_ago) const {
  const auto& first = *first_;
  const auto &a = first.request, &b = next.request;
  if (a.proto != b.proto || std::uint32_t{a.internal_port} + count_ != b.internal_port ||
      a.internal_client != b.internal_client || a.device != b.device || first.method != next.method ||
      first.state != next.state || first.error != next.error || first.verified_by != next.verified_by ||
      first.note != next.note || oldest_proof_.has_value() != verified_ago.has_value() ||
      first.mapping.has_value() != next.mapping.has_value())
    return false;
  if (!first.mapping) return true;
  const auto &granted = *first.mapping, &then = *next.mapping;
  return std::uint32_t{granted.external_port} + count_ == then.external_port && granted.external_ip == then.external_ip &&
         granted.lifetime == then.lifetime && granted.permanent == then.permanent;
}

std::optional<nlohmann::json> StatusRows::add(const MappingReport& mapping, std::chrono::seconds renew_in,
                                              std::optional<std::chrono::seconds> verified_ago) {
  if (first_ && continues(mapping, verified_ago)) {
    ++count_;
    soonest_renewal_ = std::min(soonest_renewal_, renew_in);
    if (verified_ago) oldest_proof_ = std::max(*oldest_proof_, *verified_ago);
    return std::nullopt;
  }
  auto ended = finish();
  first_ = mapping;
  count_ = 1;
  soonest_renewal_ = renew_in;
  oldest_proof_ = verified_ago;
  return ended;
}

std::optional<nlohmann::json> StatusRows::finish() {
  if (!first_) return std::nullopt;
  auto row = status_mapping_json(*first_, this_host_, gateway_external_, soonest_renewal_, oldest_proof_);
  row["count"] = count_;
  first_.reset();
  return row;
}

nlohmann::json whole_status(const StatusParts& parts) {
  auto document = parts().value_or(nlohmann::json::object());
  auto& mappings = document["mappings"] = nlohmann::json::array();
  while (auto row = parts()) mappings.push_back(std::move(*row));
  return document;
}

namespace {

// Replacing invalid UTF-8 keeps dump() from throwing.
std::string pretty(const nlohmann::json& value, int indent) {
  auto text = value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  // JSON strings hold no raw line break: each one starts a line to indent.
  std::string shifted;
  shifted.reserve(text.size());
  for (const char c : text) {
    shifted += c;
    if (c == '\n') shifted.append(static_cast<std::size_t>(indent), ' ');
  }
  return shifted;
}

}  // namespace

std::string StatusJsonPrinter::head(const nlohmann::json& head) {
  std::string out = "{\n";
  for (const auto& [key, value] : head.items()) {
    if (key == "mappings") continue;
    out += fmt::format("  {}: {},\n", nlohmann::json(key).dump(), pretty(value, 2));
  }
  return out + "  \"mappings\": [";
}

std::string StatusJsonPrinter::row(const nlohmann::json& row) {
  std::string out = any_row_ ? ",\n    " : "\n    ";
  any_row_ = true;
  return out + pretty(row, 4);
}

std::string StatusJsonPrinter::finish() const { return any_row_ ? "\n  ]\n}\n" : "]\n}\n"; }

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

// A member, null when absent.
nlohmann::json member(const nlohmann::json& object, const char* key) {
  return object.is_object() ? object.value(key, nlohmann::json()) : nlohmann::json();
}

// A string member, empty when absent or null.
std::string string_of(const nlohmann::json& object, const char* key) {
  const auto value = member(object, key);
  return value.is_string() ? value.get<std::string>() : std::string();
}

std::uint16_t port_of(const nlohmann::json& value) {
  const auto port = number_of(value);
  return port >= 0 && port <= 65535 ? static_cast<std::uint16_t>(port) : 0;
}

}  // namespace

std::string StatusTextPrinter::head(const nlohmann::json& head) {
  summary_ = member(head, "summary");
  std::string out = fmt::format("natkeeper (pid {}): {}\n", text_of(member(head, "pid")),
                                member(head, "status").is_string() ? string_of(head, "status") : "?");
  const auto gateway = member(head, "gateway");
  if (gateway.is_object())
    out += fmt::format("Gateway {} via {} ({}); this host {} on {}\n", text_of(member(gateway, "address")),
                       text_of(member(gateway, "method")), text_of(member(gateway, "detail")),
                       text_of(member(gateway, "local_address")), text_of(member(gateway, "interface")));
  out += fmt::format("NAT: {}: {}\n", text_of(member(head, "nat")), text_of(member(head, "nat_explanation")));
  if (const auto changes = number_of(member(head, "external_ip_changes")); changes > 0)
    out += fmt::format("The external address changed {} times since the start.\n", changes);
  return out + "\n";
}

void StatusTextPrinter::row(const nlohmann::json& mapping) {
  const auto error = string_of(mapping, "error");
  // The service's JSON names whom each mapping is for; the heading says it as a --once table does.
  const auto device = string_of(mapping, "device");
  any_device_ = any_device_ || member(mapping, "device").is_string();
  const auto count = std::clamp<long long>(number_of(member(mapping, "count")), 1, 65535);
  TableLine line{.proto = text_of(member(mapping, "proto")),
                 .internal_port = port_of(member(mapping, "internal_port")),
                 .count = static_cast<std::uint16_t>(count),
                 .external = std::nullopt,
                 .alike = {},
                 .cells = {},
                 .least = std::nullopt,
                 .group = client_label(device, string_of(mapping, "internal_client"))};
  if (!member(mapping, "external_port").is_null())
    line.external = {text_of(member(mapping, "external_ip")), port_of(member(mapping, "external_port"))};
  std::string detail = error;
  if (detail.empty() && !string_of(mapping, "verified_by").empty())
    detail = fmt::format("verified by {} {} ago", string_of(mapping, "verified_by"),
                         duration_of(number_of(member(mapping, "verified_ago_s"))));
  if (detail.empty()) detail = string_of(mapping, "note");
  const auto renew_in = number_of(member(mapping, "renew_in_s"));
  const auto lease = string_of(mapping, "lease");
  const auto state = text_of(member(mapping, "state"));
  line.alike = TableLine::key(
      {state, text_of(member(mapping, "method")), string_of(mapping, "note"), string_of(mapping, "verified_by"), lease, error});
  line.cells = {state, lease.empty() ? "-" : lease,
                line.external || !error.empty() ? duration_of(renew_in) : std::string("-"), detail};
  // Each mapping has its own random renewal point: a run shows its earliest.
  line.least = TableLine::Least{2, renew_in};
  lines_.push_back(std::move(line));
}

std::string StatusTextPrinter::finish() {
  // Headings for whom mappings are for, only where some are for another device.
  if (!any_device_)
    for (auto& line : lines_) line.group.clear();
  auto out = render_table({{"STATE", 10}, {"LEASE", 7}, {"RENEW IN", 9}, {"DETAIL", 0}}, lines_);
  out += fmt::format("\n{} of {} mappings active, {} verified from outside.\n", text_of(member(summary_, "active")),
                     text_of(member(summary_, "planned")), text_of(member(summary_, "verified")));
  return out;
}

std::string status_to_text(const nlohmann::json& status) {
  StatusTextPrinter printer;
  auto out = printer.head(status);
  const auto mappings = member(status, "mappings");
  if (mappings.is_array())
    for (const auto& mapping : mappings) printer.row(mapping);
  return out + printer.finish();
}

}  // namespace natkeeper
