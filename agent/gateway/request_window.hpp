#pragma once
#include <chrono>
#include <cstddef>

namespace natkeeper {

struct WindowSettings {
  std::size_t maximum = 1;  // also where the window starts
  // Answers later than this mean requests are queueing at the gateway. Set it
  // well below the protocol's first retransmission, so that a queue never
  // grows long enough for requests to be sent twice.
  std::chrono::milliseconds target_latency{1000};
};

// How many mapping requests to keep in flight in bulk mapping (additive
// increase, multiplicative decrease). The gateway is the bottleneck: requests
// beyond what it answers promptly only queue in front of it, and one queued
// past its retransmission time is sent again, loading the gateway further.
// The window grows by one per window's worth of prompt answers, up to the
// maximum, and halves on a late answer or a timeout, at most once per
// window's worth of answers (the requests already in flight when it shrank
// are late for the same reason).
class RequestWindow {
 public:
  using Duration = std::chrono::steady_clock::duration;

  explicit RequestWindow(WindowSettings settings)
      : settings_(settings), size_(settings.maximum > 0 ? settings.maximum : 1) {}

  std::size_t size() const { return size_; }
  // A request was answered (successfully or with an error code) after `latency`.
  void on_answer(Duration latency);
  // A request got no answer in time.
  void on_timeout();

 private:
  void shrink();

  WindowSettings settings_;
  std::size_t size_;
  std::size_t prompt_answers_ = 0;  // since the last change of size
  std::size_t ignore_late_ = 0;     // answers still in flight from before a shrink
};

}  // namespace natkeeper
