#include "agent/cli/progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>

#include "agent/base/log.hpp"

namespace natkeeper {
namespace {

std::string format_duration(double seconds) {
  const auto whole = static_cast<long long>(std::ceil(seconds));
  if (whole < 60) return fmt::format("{} s", whole);
  if (whole < 3600) return fmt::format("{} min {} s", whole / 60, whole % 60);
  return fmt::format("{} h {} min", whole / 3600, whole % 3600 / 60);
}

}  // namespace

std::string format_progress(std::string_view what, std::size_t done, std::size_t total,
                            std::chrono::duration<double> elapsed, std::size_t bar_width) {
  const double fraction = total == 0 ? 1.0 : std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
  const auto filled = static_cast<std::size_t>(fraction * static_cast<double>(bar_width));
  auto line = fmt::format("{} [{}{}] {}/{}", what, std::string(filled, '#'), std::string(bar_width - filled, '.'),
                          done, total);
  if (done > 0 && elapsed.count() > 0) {
    const double rate = static_cast<double>(done) / elapsed.count();
    line += fmt::format("  {:.0f}/s", rate);
    if (done < total) line += "  ETA " + format_duration(static_cast<double>(total - done) / rate);
  }
  return line;
}

ProgressBar::ProgressBar(std::FILE* terminal, std::string what) : terminal_(terminal), what_(std::move(what)) {}

ProgressBar::~ProgressBar() {
  if (drawn_) {
    std::fputs("\r\033[K", terminal_);  // erase the line
    std::fflush(terminal_);
  }
}

void ProgressBar::update(std::size_t done, std::size_t total) {
  const auto now = Clock::now();
  if (drawn_ && done < total && now - last_drawn_ < std::chrono::milliseconds(100)) return;
  last_drawn_ = now;
  drawn_ = true;
  fmt::print(terminal_, "\r{}\033[K", format_progress(what_, done, total, now - started_));
  std::fflush(terminal_);
}

bool stderr_shows_progress() { return ::isatty(STDERR_FILENO) == 1 && log::enabled(log::Level::notice); }

}  // namespace natkeeper
