#pragma once
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

namespace natkeeper {

// "mapping [#######.............] 412/1000  98/s  ETA 6 s": the rate is the
// average since the start, and the ETA is shown once the rate is known.
std::string format_progress(std::string_view what, std::size_t done, std::size_t total,
                            std::chrono::duration<double> elapsed, std::size_t bar_width = 20);

// Batches larger than this get a progress bar (on a terminal, unless -q).
inline constexpr std::size_t kProgressBarThreshold = 100;

// One line on a terminal, redrawn in place at most ten times a second, and
// erased when done (the report follows it).
class ProgressBar {
 public:
  using Clock = std::chrono::steady_clock;
  ProgressBar(std::FILE* terminal, std::string what);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(std::size_t done, std::size_t total);

 private:
  std::FILE* terminal_;
  std::string what_;
  Clock::time_point started_ = Clock::now();
  Clock::time_point last_drawn_{};
  bool drawn_ = false;
};

// Whether stderr is a terminal that may show a progress bar.
bool stderr_shows_progress();

}  // namespace natkeeper
