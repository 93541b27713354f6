#include "agent/cli/cli.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <sstream>

#include "agent/base/exit_codes.hpp"
#include "config/map_spec.hpp"

namespace natkeeper {

CliParse parse_cli(int argc, const char* const* argv) {
  CLI::App app{"natkeeper: keeps the port mappings a device needs open on the home NAT gateway",
               "natkeeper"};
  app.footer("Without a mode flag natkeeper runs as a service in the foreground: it keeps the mappings "
             "until SIGTERM, reloads on SIGHUP. Exit status: 0 all mappings active, 1 some failed, 64 usage, "
             "69 no gateway or no supported protocol (--status: no service), 70 internal error, 78 bad "
             "configuration. See natkeeper(8).");
  app.set_version_flag("--version", std::string("natkeeper ") + NATKEEPER_VERSION);

  CliOptions options;
  bool once = false, discover = false, remove = false, check_config = false, status = false, find_devices = false;
  auto* once_flag = app.add_flag("--once", once, "Map, report and exit (for setup scripts)");
  auto* discover_flag = app.add_flag("--discover", discover,
                                     "Show the gateway, the protocols it speaks and its external address; exit");
  auto* delete_flag = app.add_flag("--delete", remove, "Remove this host's mappings; exit");
  auto* check_flag = app.add_flag("--check-config", check_config, "Validate the configuration and exit");
  auto* status_flag = app.add_flag("--status", status, "Ask the running service for its mappings and their state");
  auto* find_flag = app.add_flag("--find-devices", find_devices,
                                 "List the LAN's devices (address, MAC, vendor, Ring or not); exit");
  const auto modes = {once_flag, discover_flag, delete_flag, check_flag, status_flag, find_flag};
  for (auto* a : modes)
    for (auto* b : modes)
      if (a != b) a->excludes(b);

  app.add_option("-c,--config", options.config_file, "Configuration file (TOML); the service rereads it on SIGHUP");
  app.add_flag("--json", options.json, "Print the result as one JSON object");
  app.add_option("--protocol", options.protocol,
                 fmt::format("Port-mapping protocol: {} (default: auto)", config::kProtocolChoices));
  app.add_option("--gateway", options.gateway, "Gateway IPv4 address (default: the default route's)");
  app.add_option("--igd", options.igd_url, "UPnP IGD description URL; skips SSDP discovery");
  app.add_option("--map", options.maps, std::string("Map these ports too (repeatable): ") +
                                            std::string(config::kMapSpecSyntax))
      ->allow_extra_args(false);  // one SPEC per --map: a stray word is an error, not a port
  app.add_option("--device", options.devices,
                 "Map for this LAN device (repeatable), by IPv4 address or MAC, instead of this host")
      ->allow_extra_args(false);
  app.add_flag("--no-default-profile", options.no_default_profile, "Do not map the built-in Ring profile");
  app.add_option("--lease", options.lease_seconds, "Requested mapping lifetime in seconds (default 3600; 0: permanent where the gateway has it)");
  app.add_flag("--no-verify", options.no_verify, "Do not verify mappings from outside");
  app.add_option("--reflector", options.reflector,
                 "natkeeper-reflector HOST:PORT that probes each mapping from outside (UDP and TCP)");
  app.add_option("--stun", options.stun, "RFC 5780 STUN server HOST:PORT that probes UDP mappings");
  app.add_option("--reflector-key-file", options.reflector_key_file, "Pre-shared key of a private reflector");
  int verbose = 0;
  bool quiet = false;
  app.add_flag("-v,--verbose", verbose, "More detail on stderr (repeatable)");
  app.add_flag("-q,--quiet", quiet, "Only errors on stderr");

  CliParse result;
  std::ostringstream out, err;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e, out, err);
    result.out = out.str();
    result.err = err.str();
    // Help and --version are successes; every real parse error is EX_USAGE.
    result.exit_code = code == static_cast<int>(CLI::ExitCodes::Success) ? kExitOk : kExitUsage;
    return result;
  }
  options.verbosity = quiet ? -1 : verbose;
  if (once) options.mode = Mode::once;
  if (discover) options.mode = Mode::discover;
  if (remove) options.mode = Mode::remove;
  if (check_config) options.mode = Mode::check_config;
  if (status) options.mode = Mode::status;
  if (find_devices) options.mode = Mode::find_devices;
  result.options = std::move(options);
  return result;
}

std::optional<std::string> apply_cli(const CliOptions& options, config::Config& config) {
  if (options.protocol) {
    auto choice = config::parse_protocol_choice(*options.protocol);
    if (!choice)
      return fmt::format("--protocol '{}': expected one of: {}", *options.protocol, config::kProtocolChoices);
    config.protocol = *choice;
  }
  if (options.gateway) {
    boost::system::error_code ec;
    config.gateway = boost::asio::ip::make_address_v4(*options.gateway, ec);
    if (ec) return fmt::format("--gateway '{}': expected an IPv4 address, e.g. 192.168.1.1", *options.gateway);
  }
  if (options.igd_url) {
    if (!config::is_igd_url(*options.igd_url))
      return fmt::format("--igd '{}': expected {}", *options.igd_url, config::kIgdUrlSyntax);
    config.igd_url = *options.igd_url;
  }
  for (const auto& spec : options.maps) {
    auto ranges = config::parse_map_spec(spec);
    if (!ranges) return fmt::format("--map {}", ranges.error());
    config.ports.insert(config.ports.end(), ranges->begin(), ranges->end());
  }
  if (options.no_default_profile) config.ring_profile = false;
  if (options.lease_seconds) {
    const auto lease = *options.lease_seconds;
    if (auto problem = config::lease_problem(lease)) return fmt::format("--lease: {}", *problem);
    config.lease = std::chrono::seconds(lease);
  }
  if (options.no_verify) config.verify = false;
  for (auto [flag, value, target] : {std::tuple{"--reflector", &options.reflector, &config.reflector},
                                     std::tuple{"--stun", &options.stun, &config.stun}}) {
    if (!*value) continue;
    if (!config::is_host_and_port(**value))
      return fmt::format("{} '{}': expected HOST:PORT, e.g. 203.0.113.2:7000", flag, **value);
    *target = **value;
  }
  if (options.reflector_key_file) config.reflector_key_file = *options.reflector_key_file;
  if (!options.devices.empty()) {
    // What would be mapped for this host is mapped for each device instead;
    // the devices of the configuration give way.
    config.devices.clear();
    for (const auto& text : options.devices) {
      config::Device device{{}, std::nullopt, parse_mac(text), config.ring_profile, config.ports};
      boost::system::error_code ec;
      if (!device.mac) device.address = boost::asio::ip::make_address_v4(text, ec);
      if (!device.mac && ec)
        return fmt::format("--device '{}': expected an IPv4 address (192.168.1.50) or a MAC (54:e0:19:aa:bb:cc)",
                           text);
      config.devices.push_back(std::move(device));
    }
    config.ports.clear();
  }
  return std::nullopt;
}

}  // namespace natkeeper
