#pragma once
#include <fmt/format.h>

#include <string_view>

namespace natkeeper::log {

// syslog(3) priorities, so journald can take them as they are.
enum class Level { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

// -q → error, default → notice, -v → info, -vv → debug.
void set_verbosity(int verbosity);
bool enabled(Level level);
void write(Level level, std::string_view message);

template <class... Args>
void error(fmt::format_string<Args...> format, Args&&... args) {
  write(Level::error, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void warning(fmt::format_string<Args...> format, Args&&... args) {
  write(Level::warning, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void notice(fmt::format_string<Args...> format, Args&&... args) {
  write(Level::notice, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(Level::info)) write(Level::info, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(Level::debug)) write(Level::debug, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace natkeeper::log
