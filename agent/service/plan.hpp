#pragma once
// The service's plan: one entry per planned mapping, with what the gateway
// granted and when to ask again; and how a reloaded plan takes over the
// entries of the running one.
#include <chrono>
#include <optional>
#include <vector>

#include "agent/report/report.hpp"
#include "agent/service/service_policy.hpp"

namespace natkeeper {

struct PlannedMapping {
  MappingReport report;
  std::chrono::steady_clock::time_point renew_at{};      // renewal, or the next try after a failure
  std::chrono::steady_clock::time_point window_start{};  // renewals due near each other go together from here
  int failures = 0;
  std::optional<std::chrono::system_clock::time_point> verified_at;
};

// A planned mapping not asked for yet.
PlannedMapping unmapped(MapRequest request);

struct PlanMerge {
  // The new plan in its own order. A request planned before keeps its entry
  // (its mapping at the gateway, schedule and proof) and takes the new lease
  // and description, asked for at its next renewal.
  std::vector<PlannedMapping> entries;
  // What the gateway holds for requests no longer planned: to be removed.
  std::vector<Mapping> removed;
  policy::RequestDiff diff;
};
PlanMerge merge_plan(std::vector<PlannedMapping> current, const std::vector<MapRequest>& planned);

}  // namespace natkeeper
