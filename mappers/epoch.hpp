#pragma once
#include <chrono>
#include <cstdint>
#include <optional>

namespace natkeeper {

// Detects a gateway that lost its mapping state (rebooted, restarted its
// daemon) from the epoch every NAT-PMP and PCP response carries. The rule is
// RFC 6887 §8.5's, which refines RFC 6886 §3.6's: the epoch must not run
// backwards by more than a second, and must advance at the client's pace
// within 1/16 plus two seconds either way.
class EpochTracker {
 public:
  using Clock = std::chrono::steady_clock;

  // Feed every valid response; true when this epoch shows lost state. After a
  // loss the new epoch becomes the reference.
  bool lost_state(std::uint32_t server_epoch, Clock::time_point now);

 private:
  struct Sample {
    std::uint32_t server_epoch;
    Clock::time_point client_time;
  };
  std::optional<Sample> previous_;
};

}  // namespace natkeeper
