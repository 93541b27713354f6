#include "agent/service/service_policy.hpp"

#include <algorithm>

namespace natkeeper::policy {
namespace {

std::chrono::duration<double> scaled(std::chrono::seconds span, double factor) {
  return std::chrono::duration<double>(span) * factor;
}

Duration to_duration(std::chrono::duration<double> span) { return std::chrono::duration_cast<Duration>(span); }

double clamp_unit(double unit) { return std::clamp(unit, 0.0, 1.0); }

}  // namespace

Duration renewal_delay(std::chrono::seconds lifetime, double unit) {
  return to_duration(scaled(lifetime, 0.5 + 0.125 * clamp_unit(unit)));
}

Duration renewal_window_start(std::chrono::seconds lifetime) { return to_duration(scaled(lifetime, 0.5)); }

Duration retry_delay(int failures, double unit) {
  constexpr std::chrono::seconds first{5}, longest{600};
  std::chrono::duration<double> delay = first;
  for (int i = 1; i < failures && delay < longest; ++i) delay *= 2;
  delay = std::min<std::chrono::duration<double>>(delay, longest);
  return to_duration(delay * (0.75 + 0.5 * clamp_unit(unit)));
}

Duration remap_delay_after_loss(int losses, double unit) {
  constexpr int kImmediateRemaps = 3;
  return losses <= kImmediateRemaps ? Duration::zero() : retry_delay(losses - kImmediateRemaps, unit);
}

Duration announcement_delay(double unit) {
  return to_duration(std::chrono::duration<double>(0.5 * clamp_unit(unit)));
}

std::size_t held_check_slice(std::size_t per_request) { return per_request * kHeldCheckSliceRequests; }

Duration held_check_delay(Duration pass_age, bool pass_done) {
  const auto spacing = held_check_spacing();
  return pass_done ? std::max(spacing, Duration(kHeldCheckPeriod) - pass_age) : spacing;
}

Duration held_check_spacing() {
  return to_duration(std::chrono::duration<double>(kHeldCheckSliceRequests / kHeldCheckRequestsPerSecond));
}

Duration subscription_renewal_delay(std::chrono::seconds granted) {
  constexpr std::chrono::seconds shortest{60}, longest{300};
  return std::clamp<Duration>(granted / 2, shortest, longest);
}

bool gateway_settings_differ(const config::Config& before, const config::Config& after) {
  return before.protocol != after.protocol || before.gateway != after.gateway || before.igd_url != after.igd_url;
}

bool verification_settings_differ(const config::Config& before, const config::Config& after) {
  return before.verify != after.verify || before.reflector != after.reflector || before.stun != after.stun ||
         before.reflector_key_file != after.reflector_key_file || before.verify_interval != after.verify_interval;
}

}  // namespace natkeeper::policy
