#include <fmt/format.h>

#include <cstdio>
#include <filesystem>

#include "agent/cli.hpp"
#include "agent/commands.hpp"
#include "agent/exit_codes.hpp"
#include "agent/log.hpp"
#include "config/config.hpp"

using namespace natkeeper;

int main(int argc, char** argv) {
  auto parsed = parse_cli(argc, argv);
  if (!parsed.options) {
    fmt::print(stdout, "{}", parsed.out);
    fmt::print(stderr, "{}", parsed.err);
    return parsed.exit_code;
  }
  const auto& options = *parsed.options;
  log::set_verbosity(options.verbosity);

  config::Config config;
  std::error_code ignored;
  const auto path = options.config_file.value_or(config::default_config_path());
  if (!options.config_file && !std::filesystem::exists(path, ignored))
    config.source = fmt::format("built-in defaults ({} does not exist)", path);
  else {
    auto loaded = config::load_config_file(path);
    if (!loaded) {
      log::error("{}", loaded.error().to_string());
      return kExitConfig;
    }
    config = std::move(*loaded);
  }
  if (auto usage = apply_cli(options, config)) {
    log::error("{}", *usage);
    return kExitUsage;
  }

  switch (options.mode) {
    case Mode::check_config:
      fmt::print("{}: OK, {} mappings planned\n", config.source, config::plan_requests(config).size());
      return kExitOk;
    case Mode::service:
      log::error("service mode is not available in this version; use --once, --discover, --delete or "
                 "--check-config");
      return kExitUsage;
    default:
      return run_command(options.mode, config, options.json);
  }
}
