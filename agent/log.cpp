#include "agent/log.hpp"

#include <cstdio>

namespace natkeeper::log {
namespace {

Level threshold = Level::notice;

std::string_view label(Level level) {
  switch (level) {
    case Level::error: return "error: ";
    case Level::warning: return "warning: ";
    default: return "";
  }
}

}  // namespace

void set_verbosity(int verbosity) {
  threshold = verbosity < 0    ? Level::error
              : verbosity == 0 ? Level::notice
              : verbosity == 1 ? Level::info
                               : Level::debug;
}

bool enabled(Level level) { return static_cast<int>(level) <= static_cast<int>(threshold); }

void write(Level level, std::string_view message) {
  if (!enabled(level)) return;
  fmt::print(stderr, "natkeeper: {}{}\n", label(level), message);
  std::fflush(stderr);
}

}  // namespace natkeeper::log
