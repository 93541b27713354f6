#include "agent/commands.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <variant>

#include "agent/discovery.hpp"
#include "agent/exit_codes.hpp"
#include "agent/log.hpp"
#include "agent/map_batch.hpp"
#include "agent/reflector/protocol.hpp"
#include "agent/report.hpp"
#include "agent/verifier.hpp"
#include "mappers/errors.hpp"

namespace natkeeper {
namespace {

// Requests in flight at once, per protocol. miniupnpd's HTTP server has a
// listen backlog of 5: more parallel SOAP calls stall it. PCP and NAT-PMP
// requests are single datagrams matched by nonce or port.
std::size_t parallel_requests(Method method) {
  switch (method) {
    case Method::pcp: return 16;
    case Method::natpmp: return 8;
    case Method::upnp: return 4;
  }
  return 1;
}

std::string_view display_name(Method method) {
  switch (method) {
    case Method::pcp: return "PCP";
    case Method::natpmp: return "NAT-PMP";
    case Method::upnp: return "UPnP-IGD";
  }
  return "?";
}

// Verification probes in flight at once: each holds two or three sockets.
constexpr std::size_t kParallelProbes = 16;

struct Session {
  const config::Config& config;
  bool json;
  asio::any_io_executor workers;
};

const MappingReport& first_failure(const RunReport& report) {
  return *std::find_if(report.mappings.begin(), report.mappings.end(),
                       [](const auto& m) {
                         return m.state != MappingState::mapped && m.state != MappingState::verified;
                       });
}

std::optional<asio::ip::address> known_external_ip(const FoundProtocol& found) {
  if (found.external_ip && *found.external_ip) return **found.external_ip;
  return std::nullopt;
}

struct Connection {
  GatewayPath path;
  FoundProtocol protocol;
};

// Finds the gateway and the best protocol it speaks; logs why not and returns nullopt.
asio::awaitable<std::optional<Connection>> connect(const Session& session) {
  auto path = locate_gateway(session.config);
  if (!path) {
    log::error("cannot find the gateway: {}", path.error().message());
    co_return std::nullopt;
  }
  log::info("gateway {} via {} ({})", path->gateway.to_string(), path->local.name,
            path->local.address.to_string());
  const auto started = std::chrono::steady_clock::now();
  auto discovery = co_await discover(*path, session.config, session.workers, DiscoveryGoal::map_soon);
  const std::chrono::duration<double, std::milli> decided = std::chrono::steady_clock::now() - started;
  if (discovery.found.empty()) {
    std::string reasons;
    for (const auto& failure : discovery.failed)
      reasons += fmt::format("{}{}: {}", reasons.empty() ? "" : "; ", display_name(failure.method),
                             failure.error.message());
    log::error("no port-mapping protocol answered at {} ({}). Is UPnP, NAT-PMP or PCP enabled on the router?",
               path->gateway.to_string(), reasons);
    co_return std::nullopt;
  }
  auto& chosen = discovery.found.front();
  // The first mapping request leaves right after this decision.
  log::info("discovery decided in {:.2f} ms: {} ({}) answered in {:.2f} ms", decided.count(),
            display_name(chosen.method), chosen.detail,
            std::chrono::duration<double, std::milli>(chosen.answer_time).count());
  if (chosen.external_ip && !*chosen.external_ip)
    log::warning("the gateway does not tell its external address: {}", chosen.external_ip->error().message());
  co_return Connection{std::move(*path), std::move(chosen)};
}

GatewayReport gateway_report(const GatewayPath& path, const FoundProtocol& found,
                             std::optional<asio::ip::address> external_ip) {
  return {path.gateway.to_string(), path.local.address.to_string(), std::string(to_string(found.method)),
          found.detail, external_ip ? std::optional(external_ip->to_string()) : std::nullopt};
}

// Resolves HOST:PORT (a name or an address) to an IPv4 endpoint.
Result<asio::ip::udp::endpoint> resolve(const std::string& host_and_port) {
  const auto colon = host_and_port.rfind(':');
  asio::io_context resolving;
  asio::ip::udp::resolver resolver(resolving);
  boost::system::error_code ec;
  const auto results = resolver.resolve(asio::ip::udp::v4(), host_and_port.substr(0, colon),
                                        host_and_port.substr(colon + 1), ec);
  if (ec || results.empty()) return ec ? std::error_code(ec) : std::make_error_code(std::errc::address_not_available);
  return results.begin()->endpoint();
}

// The verification servers of the configuration, resolved; or why there are none.
std::variant<VerifyOptions, std::string> verify_options(const config::Config& config) {
  if (!config.verify) return std::string("verification is off");
  if (config.reflector.empty() && config.stun.empty())
    return std::string("no reflector or STUN server configured (--reflector, --stun)");
  VerifyOptions options;
  for (auto [name, text, target] : {std::tuple{"reflector", &config.reflector, &options.reflector},
                                    std::tuple{"STUN server", &config.stun, &options.stun}}) {
    if (text->empty()) continue;
    auto endpoint = resolve(*text);
    if (endpoint) *target = *endpoint;
    else log::warning("cannot resolve the {} {}: {}", name, *text, endpoint.error().message());
  }
  if (!options.reflector && !options.stun) return std::string("the reflector and STUN server names do not resolve");
  if (!config.reflector_key_file.empty()) {
    std::ifstream file(config.reflector_key_file, std::ios::binary);
    std::ostringstream text;
    text << file.rdbuf();
    auto key = file ? reflector::parse_key(text.str()) : std::nullopt;
    if (key) options.reflector_key = std::move(*key);
    else log::warning("cannot use the reflector key file {}: unreadable or not a key", config.reflector_key_file);
  }
  return options;
}

// Proves each mapping from outside and tells what kind of NAT this is; sets
// each mapping's state and note, and the report's NAT diagnosis.
asio::awaitable<void> verify_report(const Session& session, const GatewayPath& path, RunReport& report,
                                    const std::optional<asio::ip::address>& gateway_ip) {
  auto options = verify_options(session.config);
  if (const auto* not_verified = std::get_if<std::string>(&options)) {
    for (auto& mapping : report.mappings)
      if (mapping.mapping) mapping.note = *not_verified;
    co_return;
  }
  Verifier verifier(path.local.address, std::get<VerifyOptions>(options));
  co_await verifier.prepare();
  co_await verify_all(verifier, report.mappings, kParallelProbes);
  std::optional<asio::ip::address> observed;
  if (const auto observer = verifier.observer()) {
    observed = observer->public_address;
    report.observed_public_ip = observed->to_string();
  }
  report.nat = diagnose_nat(gateway_ip, observed);
}

// What an outside observer (reflector or STUN server) sees of this host, if one is configured.
asio::awaitable<std::optional<Observer>> observe(const Session& session, const GatewayPath& path) {
  auto options = verify_options(session.config);
  if (!std::holds_alternative<VerifyOptions>(options)) co_return std::nullopt;
  Verifier verifier(path.local.address, std::get<VerifyOptions>(options));
  co_await verifier.prepare();
  co_return verifier.observer();
}

asio::awaitable<int> once(const Session& session) {
  auto requests = config::plan_requests(session.config);
  if (requests.empty()) {
    log::error("nothing to map: the profile is off and no ports are given (--map or mapping.ports)");
    co_return kExitUsage;
  }
  auto connection = co_await connect(session);
  if (!connection) co_return kExitUnavailable;
  auto& [path, found] = *connection;
  log::info("mapping {} ports via {}", requests.size(), display_name(found.method));
  const auto outcomes =
      co_await map_all_until_stable(*found.mapper, std::move(requests),
                                    {parallel_requests(found.method), session.config.allow_other_external_port});
  // PCP tells the external address only with a mapping.
  auto external_ip = known_external_ip(found);
  for (const auto& outcome : outcomes)
    if (!external_ip && outcome.mapping) external_ip = outcome.mapping->external_ip;
  auto report = make_report(gateway_report(path, found, external_ip), diagnose_nat(external_ip, std::nullopt),
                            to_string(found.method), outcomes);
  co_await verify_report(session, path, report, external_ip);
  if (const auto dropped = found.mapper->dropped(); dropped > 0)
    log::info("{} datagrams that were no valid answer from the gateway were dropped", dropped);
  if (session.json) fmt::print("{}\n", to_json(report).dump(2));
  else fmt::print("{}", to_text(report));
  const auto failed = report.mappings.size() - report.active();
  if (failed > 0) {
    const auto& first = first_failure(report);
    log::warning("{} of {} mappings failed or are unreachable; the first: {} {}: {}", failed,
                 report.mappings.size(), to_string(first.request.proto), first.request.internal_port,
                 first.error ? describe_failure(first.error, first.request)
                             : fmt::format("{}: {}", to_string(first.state), first.note));
  }
  co_return failed == 0 ? kExitOk : kExitSomeFailed;
}

asio::awaitable<int> remove(const Session& session) {
  auto requests = config::plan_requests(session.config);
  auto connection = co_await connect(session);
  if (!connection) co_return kExitUnavailable;
  auto& [path, found] = *connection;
  std::vector<Mapping> mappings;
  for (auto& request : requests) {
    const auto port = request.wanted_external_port;
    mappings.push_back(Mapping{std::move(request), {}, port, {}, false});
  }
  const auto errors = co_await unmap_all(*found.mapper, mappings, parallel_requests(found.method));
  nlohmann::json failures = nlohmann::json::array();
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (!errors[i]) continue;
    const auto& request = mappings[i].request;
    failures.push_back({{"proto", to_string(request.proto)},
                        {"internal_port", request.internal_port},
                        {"error", describe_failure(errors[i], request)},
                        {"error_code", error_code_name(errors[i])}});
  }
  if (session.json) {
    const auto gateway = to_json(RunReport{gateway_report(path, found, known_external_ip(found)), {}, {}, {}});
    nlohmann::json out = {{"gateway", gateway["gateway"]}, {"checked", mappings.size()}, {"failed", failures}};
    fmt::print("{}\n", out.dump(2));
  } else {
    fmt::print("Checked {} planned mappings on gateway {} via {}: this host's are removed, other hosts' "
               "left alone; {} failed.\n",
               mappings.size(), path.gateway.to_string(), display_name(found.method), failures.size());
    constexpr std::size_t kShown = 5;  // the rest usually fail the same way
    for (std::size_t i = 0; i < std::min(kShown, failures.size()); ++i)
      fmt::print("  {} {}: {}\n", failures[i]["proto"].get<std::string>(), failures[i]["internal_port"].get<int>(),
                 failures[i]["error"].get<std::string>());
    if (failures.size() > kShown) fmt::print("  ... and {} more (--json lists them all)\n", failures.size() - kShown);
  }
  co_return failures.empty() ? kExitOk : kExitSomeFailed;
}

asio::awaitable<int> discover_command(const Session& session) {
  auto path = locate_gateway(session.config);
  if (!path) {
    log::error("cannot find the gateway: {}", path.error().message());
    co_return kExitUnavailable;
  }
  auto discovery = co_await discover(*path, session.config, session.workers, DiscoveryGoal::list_all);
  const auto chosen_ip = discovery.found.empty() ? std::nullopt : known_external_ip(discovery.found.front());
  const auto observer = co_await observe(session, *path);
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

}  // namespace

int run_command(Mode mode, const config::Config& config, bool json) {
  // Declared after the loop so it is joined first: its threads post results to the loop.
  asio::io_context loop;
  asio::thread_pool workers(parallel_requests(Method::upnp));
  const Session session{config, json, workers.get_executor()};
  int exit_code = kExitUnavailable;
  auto body = [&]() -> asio::awaitable<int> {
    switch (mode) {
      case Mode::once: co_return co_await once(session);
      case Mode::remove: co_return co_await remove(session);
      case Mode::discover: co_return co_await discover_command(session);
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
