#include "mappers/epoch.hpp"

namespace natkeeper {

bool EpochTracker::lost_state(std::uint32_t server_epoch, Clock::time_point now) {
  bool lost = false;
  if (previous_) {
    const auto previous_epoch = static_cast<std::int64_t>(previous_->server_epoch);
    const auto current_epoch = static_cast<std::int64_t>(server_epoch);
    if (current_epoch + 1 < previous_epoch) {
      lost = true;
    } else {
      const std::int64_t client_delta =
          std::chrono::duration_cast<std::chrono::seconds>(now - previous_->client_time).count();
      const std::int64_t server_delta = current_epoch - previous_epoch;
      lost = client_delta + 2 < server_delta - server_delta / 16 ||
             server_delta + 2 < client_delta - client_delta / 16;
    }
  }
  previous_ = Sample{server_epoch, now};
  return lost;
}

}  // namespace natkeeper
