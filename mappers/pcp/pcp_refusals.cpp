#include "mappers/pcp/pcp_refusals.hpp"

#include <algorithm>
#include <limits>

namespace natkeeper::pcp {

void Refusals::remember(const MapRequestKey& request, std::error_code error, std::chrono::seconds lifetime,
                        Clock::time_point now) {
  const auto honoured = honoured_error_lifetime(lifetime);
  if (honoured <= honoured.zero() || capacity_ == 0) return;
  if (!held_.contains(request)) make_room(now);
  held_.insert_or_assign(request, Held{error, now + honoured});
}

std::optional<Refusal> Refusals::holding(const MapRequestKey& request, Clock::time_point now) {
  const auto found = held_.find(request);
  if (found == held_.end()) return std::nullopt;
  if (now >= found->second.until) {
    held_.erase(found);
    return std::nullopt;
  }
  return Refusal{found->second.error, found->second.until - now};
}

void Refusals::forget_mapping(const MapRequestKey& request) {
  // The mapping's requests are adjacent in the key order, from its lowest
  // suggested port and lifetime to its highest.
  MapRequestKey first = request, last = request;
  first.suggested_external_port = 0;
  first.lifetime = 0;
  last.suggested_external_port = std::numeric_limits<std::uint16_t>::max();
  last.lifetime = std::numeric_limits<std::uint32_t>::max();
  held_.erase(held_.lower_bound(first), held_.upper_bound(last));
}

void Refusals::make_room(Clock::time_point now) {
  if (held_.size() < capacity_) return;
  std::erase_if(held_, [now](const auto& entry) { return now >= entry.second.until; });
  if (held_.size() < capacity_ || held_.empty()) return;
  held_.erase(std::min_element(held_.begin(), held_.end(), [](const auto& a, const auto& b) {
    return a.second.until < b.second.until;
  }));
}

}  // namespace natkeeper::pcp
