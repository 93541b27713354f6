#pragma once
// The service's side of systemd's Type=notify protocol (sd_notify(3)). Every
// call is a no-op when natkeeper does not run under systemd.
#include <chrono>
#include <optional>
#include <string_view>

namespace natkeeper::systemd {

// One or more newline-separated assignments, e.g. "READY=1\nSTATUS=...".
void notify(std::string_view state);

// How often systemd wants WATCHDOG=1 (WatchdogSec=), when it does.
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace natkeeper::systemd
