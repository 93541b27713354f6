#include "agent/base/log.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>

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

// Is stderr the journal (systemd sets JOURNAL_STREAM to its device:inode)?
// Then each line starts with its priority, "<4>" (sd-daemon(3)), which
// journald takes as the line's priority; the name it already knows.
bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  struct stat status {};
  if (stream == nullptr || fstat(fileno(stderr), &status) != 0) return false;
  return std::string(stream) == std::to_string(status.st_dev) + ":" + std::to_string(status.st_ino);
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
  static const bool journal = stderr_is_journal();
  if (journal) fmt::print(stderr, "<{}>{}{}\n", static_cast<int>(level), label(level), message);
  else fmt::print(stderr, "natkeeper: {}{}\n", label(level), message);
  std::fflush(stderr);
}

}  // namespace natkeeper::log
