#include "agent/service/plan.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "mappers/errors.hpp"

namespace natkeeper {
PlannedMapping unmapped(MapRequest request) {
  PlannedMapping entry;
  entry.report.request = std::move(request);
  entry.report.note = "not mapped yet";
  return entry;
}

Mapping as_requested(const MapRequest& request) {
  return Mapping{request, {}, request.wanted_external_port, request.lifetime, request.lifetime.count() == 0};
}

std::optional<Mapping> possibly_held(const PlannedMapping& entry) {
  if (entry.report.mapping) return entry.report.mapping;
  if (entry.granted) return entry.granted;
  if (entry.request != PlannedMapping::Request::sent) return std::nullopt;
  return as_requested(entry.report.request);
}

PendingRemoval pending_removal(Mapping mapping, std::chrono::steady_clock::time_point now, double unit) {
  const auto lease_end = mapping.permanent ? std::chrono::steady_clock::time_point::max() : now + mapping.lifetime;
  PendingRemoval removal{std::move(mapping), lease_end};
  retry_later(removal, now, unit);
  return removal;
}

bool retry_later(PendingRemoval& removal, std::chrono::steady_clock::time_point now, double unit) {
  ++removal.failures;
  removal.retry_at = now + policy::retry_delay(removal.failures, unit);
  return now < removal.lease_end;
}

std::vector<Mapping> stray_mappings(std::vector<Mapping> listed, const std::vector<PlannedMapping>& entries,
                                    const std::string& description,
                                    const std::vector<boost::asio::ip::address>& clients) {
  std::set<std::pair<Transport, std::uint16_t>> wanted;
  for (const auto& entry : entries) {
    wanted.emplace(entry.report.request.proto, entry.report.request.wanted_external_port);
    if (const auto held = possibly_held(entry)) wanted.emplace(held->request.proto, held->external_port);
  }
  std::vector<Mapping> strays;
  for (auto& mapping : listed) {
    const auto& request = mapping.request;
    const bool ours = request.description == description || request.description.starts_with(description + " ");
    const bool for_us = request.internal_client &&
                        std::find(clients.begin(), clients.end(), *request.internal_client) != clients.end();
    if (ours && for_us && !wanted.count({request.proto, mapping.external_port})) strays.push_back(std::move(mapping));
  }
  return strays;
}

PlanMerge merge_plan(std::vector<PlannedMapping> current, const std::vector<MapRequest>& planned) {
  PlanMerge merge;
  std::vector<MapRequest> before;
  for (const auto& entry : current) before.push_back(entry.report.request);
  merge.diff = policy::diff_requests(before, planned);
  std::map<decltype(policy::request_key(MapRequest{})), PlannedMapping> old_entries;
  for (auto& entry : current) old_entries.emplace(policy::request_key(entry.report.request), std::move(entry));
  for (const auto& request : merge.diff.removed) {
    const auto& entry = old_entries.at(policy::request_key(request));
    if (auto held = possibly_held(entry)) merge.removed.push_back(std::move(*held));
  }
  for (const auto& request : planned) {
    const auto old = old_entries.find(policy::request_key(request));
    if (old == old_entries.end()) {
      merge.entries.push_back(unmapped(request));
      continue;
    }
    old->second.report.request.lifetime = request.lifetime;
    old->second.report.request.description = request.description;
    merge.entries.push_back(std::move(old->second));
  }
  return merge;
}

std::vector<std::size_t> due_for_renewal(const std::vector<PlannedMapping>& entries,
                                         std::chrono::steady_clock::time_point now, bool everything) {
  const bool any_due =
      std::any_of(entries.begin(), entries.end(), [&](const PlannedMapping& e) { return e.renew_at <= now; });
  std::vector<std::size_t> due;
  for (std::size_t i = 0; i < entries.size(); ++i)
    if (everything || (any_due && entries[i].window_start <= now)) due.push_back(i);
  return due;
}

std::vector<MapRequest> renewal_requests(const std::vector<PlannedMapping>& entries,
                                         const std::vector<std::size_t>& indices) {
  std::vector<MapRequest> requests;
  for (const auto i : indices) {
    auto request = entries[i].report.request;
    if (entries[i].report.mapping) request.wanted_external_port = entries[i].report.mapping->external_port;
    requests.push_back(std::move(request));
  }
  return requests;
}

bool record_outcome(PlannedMapping& entry, const MapOutcome& outcome, std::string_view method,
                    std::chrono::steady_clock::time_point now, double unit) {
  auto& report = entry.report;
  report.method = std::string(method);
  entry.granted.reset();
  if (outcome.mapping || outcome.error != MapFailure::gateway_unreachable) entry.request = PlannedMapping::Request::none;
  if (outcome.mapping) {
    const bool unchanged = report.mapping && report.state != MappingState::failed &&
                           report.mapping->external_port == outcome.mapping->external_port &&
                           report.mapping->external_ip == outcome.mapping->external_ip;
    if (!unchanged) {
      report.state = MappingState::mapped;
      report.verified_by.clear();
      report.note.clear();
      report.probe_round_trip.reset();
      entry.verified_at.reset();
    }
    report.mapping = outcome.mapping;
    report.error = {};
    entry.failures = 0;
    const auto lease = std::max(outcome.mapping->permanent ? report.request.lifetime : outcome.mapping->lifetime,
                                policy::kShortestScheduledLease);
    entry.renew_at = now + policy::renewal_delay(lease, unit);
    entry.window_start = now + policy::renewal_window_start(lease);
    return !unchanged;
  }
  // The mapping it had, if any, stays recorded: it may still exist at the gateway.
  report.error = outcome.error;
  report.state = MappingState::failed;
  report.verified_by.clear();
  report.note.clear();
  ++entry.failures;
  entry.renew_at = entry.window_start = now + policy::retry_delay(entry.failures, unit);
  return false;
}

void record_verification(PlannedMapping& entry, const MappingReport& verified,
                         std::chrono::system_clock::time_point when) {
  entry.report.state = verified.state;
  entry.report.verified_by = verified.verified_by;
  entry.report.note = verified.note;
  entry.report.probe_round_trip = verified.probe_round_trip;
  if (verified.state == MappingState::verified) entry.verified_at = when;
}

std::vector<Mapping> adopt_recorded(std::vector<PlannedMapping>& entries, std::vector<Mapping> recorded,
                                    bool allow_other_external_port) {
  std::vector<Mapping> unwanted;
  for (auto& mapping : recorded) {
    const auto planned = std::find_if(entries.begin(), entries.end(), [&](const PlannedMapping& entry) {
      const auto& request = entry.report.request;
      return !entry.report.mapping && request.internal_client == mapping.request.internal_client &&
             request.proto == mapping.request.proto &&
             request.internal_port == mapping.request.internal_port &&
             (allow_other_external_port || request.wanted_external_port == mapping.external_port);
    });
    if (planned == entries.end()) {
      unwanted.push_back(std::move(mapping));
      continue;
    }
    mapping.request = planned->report.request;
    planned->report.mapping = std::move(mapping);
  }
  return unwanted;
}

std::optional<boost::asio::ip::address> external_address_of(const std::vector<PlannedMapping>& entries) {
  for (const auto& entry : entries)
    if (active(entry) && !entry.report.mapping->external_ip.is_unspecified())
      return entry.report.mapping->external_ip;
  return std::nullopt;
}

PlanCounts count(const std::vector<PlannedMapping>& entries) {
  PlanCounts counts;
  for (const auto& entry : entries) {
    if (active(entry)) ++counts.active;
    else ++counts.failed;
    if (entry.report.state == MappingState::verified) ++counts.verified;
    if (entry.report.state == MappingState::unreachable) ++counts.unreachable;
  }
  return counts;
}

}  // namespace natkeeper
