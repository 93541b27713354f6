#include "agent/service/plan.hpp"

#include <algorithm>
#include <set>
#include <tuple>
#include <utility>

#include "mappers/errors.hpp"
#include "mappers/lease_policy.hpp"

namespace natkeeper {
namespace {

// Entries are the same planned mapping when device, protocol and internal
// port agree (a plan asks for each on its own external port).
using EntryKey = std::tuple<const std::optional<boost::asio::ip::address>&, Transport, std::uint16_t>;
EntryKey entry_key(const PlannedMapping& entry) {
  return {entry.run->internal_client, entry.run->proto, entry.internal_port};
}

// Finds entries by key: their indices in key order, not a copy of the plan.
class EntryIndex {
 public:
  explicit EntryIndex(const std::vector<PlannedMapping>& entries) : entries_(entries), order_(entries.size()) {
    for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = i;
    std::sort(order_.begin(), order_.end(),
              [this](std::size_t a, std::size_t b) { return entry_key(entries_[a]) < entry_key(entries_[b]); });
  }
  // The index of the entry with `key`, if any.
  std::optional<std::size_t> find(const EntryKey& key) const {
    const auto found = std::lower_bound(order_.begin(), order_.end(), key,
                                        [this](std::size_t i, const EntryKey& k) { return entry_key(entries_[i]) < k; });
    if (found == order_.end() || entry_key(entries_[*found]) != key) return std::nullopt;
    return *found;
  }

 private:
  const std::vector<PlannedMapping>& entries_;
  std::vector<std::size_t> order_;
};

PlannedMapping unmapped_entry(std::shared_ptr<const MapRequest> run, std::uint16_t port) {
  PlannedMapping entry;
  entry.run = std::move(run);
  entry.internal_port = entry.wanted_external_port = port;
  entry.note = "not mapped yet";
  return entry;
}

}  // namespace

Grant grant_of(const Mapping& mapping) {
  return {mapping.external_ip, mapping.external_port, mapping.permanent, mapping.lifetime};
}

MapRequest request_of(const PlannedMapping& entry) {
  auto request = *entry.run;
  request.internal_port = entry.internal_port;
  request.wanted_external_port = entry.wanted_external_port;
  return request;
}

Mapping mapping_of(const PlannedMapping& entry, const Grant& grant) {
  return {request_of(entry), grant.external_ip, grant.external_port, grant.lifetime, grant.permanent};
}

MappingReport report_of(const PlannedMapping& entry) {
  MappingReport report;
  report.request = request_of(entry);
  if (entry.method) report.method = std::string(to_string(*entry.method));
  if (entry.mapping) report.mapping = mapping_of(entry, *entry.mapping);
  report.error = entry.error;
  report.state = entry.state;
  report.verified_by = entry.verified_by;
  report.note = entry.note;
  report.probe_round_trip = entry.probe_round_trip;
  return report;
}

std::vector<PlannedMapping> unmapped(const std::vector<config::RequestRun>& runs) {
  std::size_t total = 0;
  for (const auto& run : runs) total += run.count;
  std::vector<PlannedMapping> entries;
  entries.reserve(total);
  for (const auto& run : runs) {
    const auto shared = std::make_shared<const MapRequest>(run.first);
    for (std::uint32_t i = 0; i < run.count; ++i)
      entries.push_back(unmapped_entry(shared, static_cast<std::uint16_t>(run.first.internal_port + i)));
  }
  return entries;
}

Mapping as_requested(const MapRequest& request) {
  return Mapping{request, {}, request.wanted_external_port, request.lifetime, request.lifetime.count() == 0};
}

std::optional<Mapping> possibly_held(const PlannedMapping& entry) {
  if (entry.mapping) return mapping_of(entry, *entry.mapping);
  if (entry.granted) return mapping_of(entry, *entry.granted);
  if (entry.request != PlannedMapping::Request::sent && entry.request != PlannedMapping::Request::removing)
    return std::nullopt;
  return as_requested(request_of(entry));
}

std::optional<RecordedMapping> to_record(const PlannedMapping& entry) {
  const bool confirmed = !unconfirmed(entry) && entry.request != PlannedMapping::Request::removing;
  if (auto held = possibly_held(entry)) return RecordedMapping{std::move(*held), confirmed};
  if (entry.request == PlannedMapping::Request::intended) return RecordedMapping{as_requested(request_of(entry)), false};
  return std::nullopt;
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
    wanted.emplace(entry.run->proto, entry.wanted_external_port);
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

PlanMerge merge_plan(std::vector<PlannedMapping> current, const std::vector<config::RequestRun>& planned) {
  PlanMerge merge;
  merge.entries = unmapped(planned);
  const EntryIndex index(current);
  std::vector<bool> taken(current.size(), false);
  for (auto& entry : merge.entries) {
    const auto found = index.find(entry_key(entry));
    if (!found || taken[*found]) {
      ++merge.added;
      continue;
    }
    // The new run's request (lease, description) with the old entry's
    // standing; the old request stays behind, as the search still reads its key.
    auto run = std::move(entry.run);
    entry = std::move(current[*found]);
    current[*found].run = std::exchange(entry.run, std::move(run));
    taken[*found] = true;
    ++merge.kept;
  }
  for (std::size_t i = 0; i < current.size(); ++i) {
    if (taken[i]) continue;
    ++merge.dropped;
    if (auto held = possibly_held(current[i])) merge.removed.push_back(std::move(*held));
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
                                         std::span<const std::size_t> indices) {
  std::vector<MapRequest> requests;
  requests.reserve(indices.size());
  for (const auto i : indices) {
    auto request = request_of(entries[i]);
    if (entries[i].mapping) request.wanted_external_port = entries[i].mapping->external_port;
    requests.push_back(std::move(request));
  }
  return requests;
}

bool record_outcome(PlannedMapping& entry, const MapOutcome& outcome, Method method,
                    std::chrono::steady_clock::time_point now, double unit) {
  entry.method = method;
  entry.granted.reset();
  if (outcome.mapping || outcome.error != MapFailure::gateway_unreachable) entry.request = PlannedMapping::Request::none;
  if (outcome.mapping) {
    const bool unchanged = entry.mapping && entry.state != MappingState::failed &&
                           entry.mapping->external_port == outcome.mapping->external_port &&
                           entry.mapping->external_ip == outcome.mapping->external_ip;
    if (!unchanged) {
      entry.state = MappingState::mapped;
      entry.verified_by.clear();
      entry.note.clear();
      entry.probe_round_trip.reset();
      entry.verified_at.reset();
    }
    entry.mapping = grant_of(*outcome.mapping);
    entry.error = {};
    entry.failures = 0;
    const auto lease = std::max(outcome.mapping->permanent ? lease::permanent_lease_span(entry.run->lifetime)
                                                           : outcome.mapping->lifetime,
                                policy::kShortestScheduledLease);
    entry.renew_at = now + policy::renewal_delay(lease, unit);
    entry.window_start = now + policy::renewal_window_start(lease);
    return !unchanged;
  }
  // The mapping it had, if any, stays recorded: it may still exist at the gateway.
  entry.error = outcome.error;
  entry.state = MappingState::failed;
  entry.verified_by.clear();
  entry.note.clear();
  ++entry.failures;
  entry.renew_at = entry.window_start = now + policy::retry_delay(entry.failures, unit);
  return false;
}

void record_verification(PlannedMapping& entry, const MappingReport& verified,
                         std::chrono::system_clock::time_point when) {
  entry.state = verified.state;
  entry.verified_by = verified.verified_by;
  entry.note = verified.note;
  entry.probe_round_trip = verified.probe_round_trip;
  if (verified.state == MappingState::verified) entry.verified_at = when;
}

std::vector<Mapping> adopt_recorded(std::vector<PlannedMapping>& entries, std::vector<Mapping> recorded,
                                    bool allow_other_external_port) {
  std::vector<Mapping> unwanted;
  const EntryIndex index(entries);
  for (auto& mapping : recorded) {
    const auto& request = mapping.request;
    const auto found = index.find({request.internal_client, request.proto, request.internal_port});
    auto* planned = found ? &entries[*found] : nullptr;
    if (!planned || planned->mapping ||
        (!allow_other_external_port && planned->wanted_external_port != mapping.external_port)) {
      unwanted.push_back(std::move(mapping));
      continue;
    }
    planned->mapping = grant_of(mapping);
  }
  return unwanted;
}

std::optional<boost::asio::ip::address> external_address_of(const std::vector<PlannedMapping>& entries) {
  for (const auto& entry : entries)
    if (active(entry) && !entry.mapping->external_ip.is_unspecified()) return entry.mapping->external_ip;
  return std::nullopt;
}

PlanCounts count(const std::vector<PlannedMapping>& entries) {
  PlanCounts counts;
  for (const auto& entry : entries) {
    if (active(entry)) ++counts.active;
    else ++counts.failed;
    if (entry.state == MappingState::verified) ++counts.verified;
    if (entry.state == MappingState::unreachable) ++counts.unreachable;
  }
  return counts;
}

}  // namespace natkeeper
