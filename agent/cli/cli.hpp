#pragma once
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace natkeeper {

enum class Mode { service, once, discover, remove, check_config, status, find_devices };

struct CliOptions {
  Mode mode = Mode::service;
  std::optional<std::string> config_file;
  bool json = false;
  std::optional<std::string> protocol;
  std::optional<std::string> gateway;
  std::optional<std::string> igd_url;
  std::vector<std::string> maps;
  std::vector<std::string> devices;  // --device ADDR|MAC
  bool no_default_profile = false;
  std::optional<long long> lease_seconds;
  bool no_verify = false;
  std::optional<std::string> reflector;
  std::optional<std::string> stun;
  std::optional<std::string> reflector_key_file;
  int verbosity = 0;  // -1 quiet, 0 normal, >0 verbose
};

// Either options to run with, or an exit code with text to print (help,
// version, or a usage error).
struct CliParse {
  std::optional<CliOptions> options;
  int exit_code = 0;
  std::string out;  // for stdout
  std::string err;  // for stderr
};

CliParse parse_cli(int argc, const char* const* argv);

// Applies the flags over the configuration. Returns a usage error message
// (exit 64) when a flag's value is invalid.
std::optional<std::string> apply_cli(const CliOptions& options, config::Config& config);

}  // namespace natkeeper
