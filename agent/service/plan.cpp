#include "agent/service/plan.hpp"

#include <map>

namespace natkeeper {
PlannedMapping unmapped(MapRequest request) {
  PlannedMapping entry;
  entry.report.request = std::move(request);
  entry.report.note = "not mapped yet";
  return entry;
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
    if (entry.report.mapping) merge.removed.push_back(*entry.report.mapping);
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

}  // namespace natkeeper
