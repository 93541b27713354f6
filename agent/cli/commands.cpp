#include "agent/cli/commands.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <future>
#include <set>

#include "agent/base/exit_codes.hpp"
#include "agent/base/log.hpp"
#include "agent/base/state_file.hpp"
#include "agent/cli/progress.hpp"
#include "agent/gateway/connection.hpp"
#include "agent/gateway/device_addresses.hpp"
#include "agent/gateway/lan_devices.hpp"
#include "agent/gateway/map_batch.hpp"
#include "agent/gateway/recorded_mappings.hpp"
#include "agent/report/devices.hpp"
#include "agent/report/report.hpp"
#include "agent/verify/verification.hpp"
#include "mappers/errors.hpp"

namespace natkeeper {
namespace {

struct Session {
  const config::Config& config;
  bool json;
};

const MappingReport& first_failure(const RunReport& report) {
  return *std::find_if(report.mappings.begin(), report.mappings.end(),
                       [](const auto& m) {
                         return m.state != MappingState::mapped && m.state != MappingState::verified;
                       });
}

// The plan with each device where the neighbour table shows it now; logs
// the devices that cannot be mapped for, and returns how many.
std::pair<std::vector<MapRequest>, std::size_t> plan_with_devices(const config::Config& config, const GatewayPath& path) {
  const auto devices = look_up_devices(config, path.local, config::configured_addresses(config));
  for (const auto& problem : devices.problems) log::error("{}", problem);
  const auto missing = static_cast<std::size_t>(
      std::count(devices.addresses.begin(), devices.addresses.end(), std::nullopt));
  return {config::plan_requests(config, devices.addresses), missing};
}

// When the Ring profile goes to this host while a Ring device is on the LAN:
// the one line that says how to map for the device instead. Looked for on a
// thread of its own while the mappings are made: reading the vendor registry
// takes tens of milliseconds.
std::future<std::optional<std::string>> look_for_ring_devices(const config::Config& config, const GatewayPath& path) {
  const bool for_this_host = config::profile_for_this_host(config);
  return std::async(std::launch::async, [for_this_host, interface = path.local.name]() -> std::optional<std::string> {
    if (!for_this_host) return std::nullopt;
    const auto devices = find_lan_devices(interface, OuiRegistry::load());
    return devices ? ring_hint(*devices) : std::nullopt;
  });
}

asio::awaitable<int> once(const Session& session) {
  if (!config::plans_anything(session.config)) {
    log::error("nothing to map: the profile is off and no ports are given (--map or mapping.ports)");
    co_return kExitUsage;
  }
  auto connection = co_await connect(session.config);
  if (!connection) co_return kExitUnavailable;
  auto& [path, found] = *connection;
  auto [requests, missing_devices] = plan_with_devices(session.config, path);
  auto ring_devices_hint = look_for_ring_devices(session.config, path);
  log::info("mapping {} ports via {}", requests.size(), display_name(found.method));
  warn_about_large_plan(session.config, requests.size());
  BatchPolicy policy{request_window(found.method), session.config.allow_other_external_port, {}};
  // Each mapping is proven as soon as it is granted, while the rest are made.
  VerificationRun verification;
  co_await verification.start(session.config, path);
  policy.on_granted = [&verification](std::size_t i, const Mapping& m) { verification.granted(i, m); };
  std::optional<ProgressBar> progress;
  if (requests.size() > kProgressBarThreshold && stderr_shows_progress()) {
    progress.emplace(stderr, fmt::format("mapping via {}", display_name(found.method)));
    policy.on_progress = [&progress](std::size_t done, std::size_t total) { progress->update(done, total); };
  }
  const auto outcomes =
      co_await verification.alongside(map_all_until_stable(*found.mapper, std::move(requests), policy));
  progress.reset();
  if (const auto full = table_full_summary(outcomes))
    log::warning("{}. Free entries on the router or map fewer ports (for example a smaller profile.rtp window); "
                 "the most important ports were mapped first.",
                 *full);
  // PCP tells the external address only with a mapping.
  auto external_ip = known_external_ip(found);
  for (const auto& outcome : outcomes)
    if (!external_ip && outcome.mapping) external_ip = outcome.mapping->external_ip;
  auto report = make_report(gateway_report(path, found, external_ip), diagnose_nat(external_ip, std::nullopt),
                            to_string(found.method), outcomes);
  const auto verified = co_await verification.finish(report.mappings, external_ip, found.mapper.get());
  report.nat = verified.nat;
  if (verified.observed_public_ip) report.observed_public_ip = verified.observed_public_ip->to_string();
  if (const auto dropped = found.mapper->dropped(); dropped > 0)
    log::info("{} datagrams that were no valid answer from the gateway were dropped", dropped);
  if (session.json) fmt::print("{}\n", to_json(report).dump(2));
  else fmt::print("{}", to_text(report));
  if (const auto hint = ring_devices_hint.get()) log::notice("{}", *hint);
  const auto failed = report.mappings.size() - report.active();
  if (missing_devices > 0)
    log::warning("{} of {} devices not mapped for: not found (see above)", missing_devices, session.config.devices.size());
  if (failed > 0) {
    const auto& first = first_failure(report);
    log::warning("{} of {} mappings failed or are unreachable; the first: {} {}: {}", failed,
                 report.mappings.size(), to_string(first.request.proto), first.request.internal_port,
                 first.error ? describe_failure(first.error, first.request, external_ip)
                             : fmt::format("{}: {}", to_string(first.state), first.note));
  }
  co_return failed == 0 && missing_devices == 0 ? kExitOk : kExitSomeFailed;
}

asio::awaitable<int> remove(const Session& session) {
  auto connection = co_await connect(session.config);
  if (!connection) co_return kExitUnavailable;
  auto& [path, found] = *connection;
  auto requests = plan_with_devices(session.config, path).first;
  std::vector<Mapping> mappings;
  // Each device's mappings are its own: the same port of another client is not checked twice.
  std::set<std::tuple<std::optional<asio::ip::address>, Transport, std::uint16_t>> external_ports;
  for (auto& request : requests) {
    const auto port = request.wanted_external_port;
    external_ports.emplace(request.internal_client, request.proto, port);
    mappings.push_back(Mapping{std::move(request), {}, port, {}, false});
  }
  // What the service recorded: mappings on other external ports, or left by a crash.
  const auto recorded = read_state_file(state_file_path());
  if (!recorded.error.empty()) log::warning("{}", recorded.error);
  std::size_t recorded_left = 0;
  if (recorded_through(recorded.state, *connection)) {
    for (auto& mapping : recorded_mappings(recorded.state))
      if (external_ports.emplace(mapping.request.internal_client, mapping.request.proto, mapping.external_port).second)
        mappings.push_back(std::move(mapping));
  } else if (!recorded.state.mappings.empty()) {
    recorded_left = (co_await remove_recorded(recorded.state, session.config)).size();
  }
  const auto errors = co_await unmap_all(*found.mapper, mappings, parallel_requests(found.method));
  nlohmann::json failures = nlohmann::json::array();
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (!errors[i]) continue;
    MappingReport failure;
    failure.request = mappings[i].request;
    failure.method = to_string(found.method);
    failure.error = errors[i];
    // A removal's failure is no refusal to forward: no diagnosis of the WAN.
    failures.push_back(mapping_json(failure, path.local.address.to_string(), std::nullopt));
  }
  if (session.json) {
    const auto gateway = gateway_json(gateway_report(path, found, known_external_ip(found)));
    nlohmann::json out = {{"gateway", gateway}, {"checked", mappings.size()}, {"failed", failures}};
    fmt::print("{}\n", out.dump(2));
  } else {
    fmt::print("Checked {} planned and recorded mappings on gateway {} via {}: this host's and its devices' are "
               "removed, other hosts' left alone; {} failed.\n",
               mappings.size(), path.gateway.to_string(), display_name(found.method), failures.size());
    constexpr std::size_t kShown = 5;  // the rest usually fail the same way
    for (std::size_t i = 0; i < std::min(kShown, failures.size()); ++i)
      fmt::print("  {} {}: {}\n", failures[i]["proto"].get<std::string>(), failures[i]["internal_port"].get<int>(),
                 failures[i]["error"].get<std::string>());
    if (failures.size() > kShown) fmt::print("  ... and {} more (--json lists them all)\n", failures.size() - kShown);
  }
  if (recorded_left > 0)
    log::warning("{} mappings an earlier run recorded at {} via {} could not be removed", recorded_left,
                 recorded.state.gateway, recorded.state.method);
  if (failures.empty() && recorded_left == 0) {
    if (const auto error = remove_state_file(state_file_path()))
      log::warning("cannot remove {}: {}", state_file_path().string(), error.message());
  }
  co_return failures.empty() && recorded_left == 0 ? kExitOk : kExitSomeFailed;
}

asio::awaitable<int> discover_command(const Session& session) {
  auto path = locate_gateway(session.config);
  if (!path) {
    log::error("cannot find the gateway: {}", path.error().message());
    co_return kExitUnavailable;
  }
  auto discovery = co_await discover(*path, session.config, DiscoveryGoal::list_all);
  const auto chosen_ip = discovery.found.empty() ? std::nullopt : known_external_ip(discovery.found.front());
  const auto observer = co_await observe(session.config, *path);
  const auto observed = observer ? std::optional(observer->public_address) : std::nullopt;
  const auto nat = diagnose_nat(chosen_ip, observed);
  if (session.json) {
    nlohmann::json protocols = nlohmann::json::array(), unavailable = nlohmann::json::array();
    for (const auto& found : discovery.found) {
      const auto ip = known_external_ip(found);
      protocols.push_back({{"method", to_string(found.method)},
                           {"detail", found.detail},
                           {"external_ip", ip ? nlohmann::json(ip->to_string()) : nlohmann::json(nullptr)},
                           {"external_ip_kind", to_string(diagnose_nat(ip, std::nullopt))},
                           {"answer_ms", std::chrono::duration<double, std::milli>(found.answer_time).count()}});
    }
    for (const auto& failure : discovery.failed)
      unavailable.push_back({{"method", to_string(failure.method)},
                             {"error", failure.error.message()},
                             {"error_code", error_code_name(failure.error)}});
    nlohmann::json out = {{"gateway",
                           {{"address", path->gateway.to_string()},
                            {"interface", path->local.name},
                            {"local_address", path->local.address.to_string()}}},
                          {"protocols", protocols},
                          {"unavailable", unavailable},
                          {"observed_public_ip", observed ? nlohmann::json(observed->to_string()) : nlohmann::json(nullptr)},
                          {"nat", to_string(nat)},
                          {"nat_explanation", explain(nat)}};
    fmt::print("{}\n", out.dump(2));
  } else {
    fmt::print("Gateway {} (this host: {} on {})\n", path->gateway.to_string(), path->local.address.to_string(),
               path->local.name);
    for (const auto& found : discovery.found) {
      const auto ip = known_external_ip(found);
      std::string address = ip ? ip->to_string() : "unknown";
      if (const auto kind = diagnose_nat(ip, std::nullopt); kind == NatKind::double_nat) address += " (private: double NAT)";
      else if (kind == NatKind::cgnat) address += " (100.64.0.0/10: carrier-grade NAT)";
      fmt::print("  {:<9} answered in {:>7.2f} ms, external address {}, {}\n", display_name(found.method),
                 std::chrono::duration<double, std::milli>(found.answer_time).count(), address, found.detail);
    }
    for (const auto& failure : discovery.failed)
      fmt::print("  {:<9} no: {}\n", display_name(failure.method), failure.error.message());
    if (observer)
      fmt::print("Seen from outside ({}): {}\n", observer->method, observer->public_address.to_string());
    fmt::print("NAT: {}: {}\n", to_string(nat), explain(nat));
  }
  co_return discovery.found.empty() ? kExitUnavailable : kExitOk;
}

asio::awaitable<int> find_devices_command(const Session& session) {
  auto path = locate_gateway(session.config);
  if (!path) {
    log::error("cannot find the gateway: {}", path.error().message());
    co_return kExitUnavailable;
  }
  const auto registry = OuiRegistry::load();
  if (registry.empty())
    log::notice("no IEEE OUI registry (Debian package ieee-data) is installed: vendors are unknown");
  const auto devices = find_lan_devices(path->local.name, registry);
  if (!devices) {
    log::error("cannot read the neighbour table of {}: {}", path->local.name, devices.error().message());
    co_return kExitUnavailable;
  }
  if (session.json) fmt::print("{}\n", devices_json(*devices).dump(2));
  else fmt::print("{}", devices_text(*devices));
  co_return kExitOk;
}

}  // namespace

int run_command(Mode mode, const config::Config& config, bool json) {
  asio::io_context loop;
  const Session session{config, json};
  int exit_code = kExitUnavailable;
  auto body = [&]() -> asio::awaitable<int> {
    switch (mode) {
      case Mode::once: co_return co_await once(session);
      case Mode::remove: co_return co_await remove(session);
      case Mode::discover: co_return co_await discover_command(session);
      case Mode::find_devices: co_return co_await find_devices_command(session);
      default: co_return kExitUsage;
    }
  };
  asio::co_spawn(loop, body(), [&](std::exception_ptr error, int code) {
    if (error) std::rethrow_exception(error);
    exit_code = code;
  });
  loop.run();
  return exit_code;
}

}  // namespace natkeeper
