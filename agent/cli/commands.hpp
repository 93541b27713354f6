#pragma once
#include "agent/cli/cli.hpp"
#include "config/config.hpp"

namespace natkeeper {

// Runs --once, --discover or --delete on a fresh event loop; returns the exit code.
int run_command(Mode mode, const config::Config& config, bool json);

}  // namespace natkeeper
