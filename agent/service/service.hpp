#pragma once
#include <functional>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "config/config.hpp"

namespace natkeeper {

// Reads the configuration again (SIGHUP): the new one, or why it is unusable.
using ConfigLoader = std::function<std::variant<config::Config, std::string>()>;

// The service: keeps the mappings alive until SIGTERM or SIGINT, removes them
// then, and exits 0. SIGHUP reloads through `load`; SIGUSR1 checks the way to
// the gateway and requests every mapping again. Talks to systemd
// (sd_notify) when run by it, and serves --status on the control socket.
int run_service(config::Config config, ConfigLoader load);

// --status: asks the running service; returns the exit code.
int status_command(bool json);

}  // namespace natkeeper
