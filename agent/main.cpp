#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <variant>

#include "agent/base/exit_codes.hpp"
#include "agent/base/log.hpp"
#include "agent/cli/cli.hpp"
#include "agent/cli/commands.hpp"
#include "agent/gateway/device_addresses.hpp"
#include "agent/service/service.hpp"
#include "config/config.hpp"

using namespace natkeeper;

namespace {

// The configuration file (or the built-in defaults when the default file does
// not exist) with the command line's flags over it; or what is wrong and the
// exit code that says so.
struct Unusable {
  int exit_code;
  std::string message;
};
std::variant<config::Config, Unusable> load_configuration(const CliOptions& options) {
  config::Config config;
  std::error_code ignored;
  const auto path = options.config_file.value_or(config::default_config_path());
  if (!options.config_file && !std::filesystem::exists(path, ignored)) {
    config.source = fmt::format("built-in defaults ({} does not exist)", path);
  } else {
    auto loaded = config::load_config_file(path);
    if (!loaded) return Unusable{kExitConfig, loaded.error().to_string()};
    config = std::move(*loaded);
  }
  if (auto usage = apply_cli(options, config)) return Unusable{kExitUsage, *usage};
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = parse_cli(argc, argv);
  if (!parsed.options) {
    fmt::print(stdout, "{}", parsed.out);
    fmt::print(stderr, "{}", parsed.err);
    return parsed.exit_code;
  }
  const auto& options = *parsed.options;
  log::set_verbosity(options.verbosity);
  if (options.mode == Mode::status) return status_command(options.json);

  auto loaded = load_configuration(options);
  if (auto* unusable = std::get_if<Unusable>(&loaded)) {
    log::error("{}", unusable->message);
    return unusable->exit_code;
  }
  auto& config = std::get<config::Config>(loaded);

  switch (options.mode) {
    case Mode::check_config:
      fmt::print("{}: OK, {} mappings planned{}\n", config.source, config::plan_requests(config).size(),
                 follows_macs(config) ? " (not counting devices named by MAC: they are looked up when mapping)" : "");
      return kExitOk;
    case Mode::service: {
      auto reload = [options]() -> std::variant<config::Config, std::string> {
        auto again = load_configuration(options);
        if (auto* unusable = std::get_if<Unusable>(&again)) return unusable->message;
        return std::get<config::Config>(std::move(again));
      };
      return run_service(std::move(config), reload);
    }
    default:
      return run_command(options.mode, config, options.json);
  }
}
