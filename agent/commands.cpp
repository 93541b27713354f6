#include "agent/commands.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agent/discovery.hpp"
#include "agent/exit_codes.hpp"
#include "agent/log.hpp"
#include "agent/map_batch.hpp"
#include "agent/report.hpp"
#include "mappers/errors.hpp"

namespace natkeeper {
namespace {

// miniupnpd's HTTP server has a listen backlog of 5: more parallel calls stall it.
constexpr std::size_t kUpnpParallelCalls = 4;

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

long long milliseconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// Finds the gateway and a protocol it speaks; logs why not and returns nullopt.
asio::awaitable<std::optional<std::pair<GatewayPath, FoundProtocol>>> connect(const Session& session) {
  auto path = locate_gateway(session.config);
  if (!path) {
    log::error("cannot find the gateway: {}", path.error().message());
    co_return std::nullopt;
  }
  log::info("gateway {} via {} ({})", path->gateway.to_string(), path->local.name,
            path->local.address.to_string());
  auto found = co_await discover_upnp(*path, session.config, session.workers);
  if (!found) {
    if (found.error() == Errc::no_gateway_answer)
      log::error("no UPnP-IGD gateway answered at {}. Is UPnP enabled on the router?",
                 path->gateway.to_string());
    else
      log::error("the UPnP-IGD gateway at {} is not usable: {}", path->gateway.to_string(),
                 found.error().message());
    co_return std::nullopt;
  }
  if (!found->external_ip)
    log::warning("the gateway does not tell its external address: {}", found->external_ip.error().message());
  co_return std::pair{std::move(*path), std::move(*found)};
}

GatewayReport gateway_report(const GatewayPath& path, const FoundProtocol& found) {
  return {path.gateway.to_string(), path.local.address.to_string(), std::string(found.mapper->method()),
          found.detail,
          found.external_ip ? std::optional(found.external_ip->to_string()) : std::nullopt};
}

NatKind nat_of(const FoundProtocol& found) {
  return found.external_ip ? classify_external_address(*found.external_ip) : NatKind::unknown;
}

asio::awaitable<int> once(const Session& session) {
  auto requests = config::plan_requests(session.config);
  if (requests.empty()) {
    log::error("nothing to map: the profile is off and no ports are given (--map or mapping.ports)");
    co_return kExitUsage;
  }
  auto connected = co_await connect(session);
  if (!connected) co_return kExitUnavailable;
  auto& [path, found] = *connected;
  log::info("mapping {} ports via {}", requests.size(), found.mapper->method());
  const auto outcomes = co_await map_all(*found.mapper, std::move(requests), kUpnpParallelCalls);
  const auto report = make_report(gateway_report(path, found), nat_of(found), found.mapper->method(), outcomes);
  if (session.json) fmt::print("{}\n", to_json(report).dump(2));
  else fmt::print("{}", to_text(report));
  const auto failed = report.mappings.size() - report.active();
  if (failed > 0)
    log::warning("{} of {} mappings failed; the first: {} {}: {}", failed, report.mappings.size(),
                 to_string(first_failure(report).request.proto), first_failure(report).request.internal_port,
                 describe_failure(first_failure(report).error, first_failure(report).request));
  co_return failed == 0 ? kExitOk : kExitSomeFailed;
}

asio::awaitable<int> remove(const Session& session) {
  auto requests = config::plan_requests(session.config);
  auto connected = co_await connect(session);
  if (!connected) co_return kExitUnavailable;
  auto& [path, found] = *connected;
  std::vector<Mapping> mappings;
  for (auto& request : requests) {
    const auto port = request.wanted_external_port;
    mappings.push_back(Mapping{std::move(request), {}, port, {}, false});
  }
  const auto errors = co_await unmap_all(*found.mapper, mappings, kUpnpParallelCalls);
  nlohmann::json failures = nlohmann::json::array();
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (!errors[i]) continue;
    const auto& request = mappings[i].request;
    failures.push_back({{"proto", to_string(request.proto)},
                        {"external_port", mappings[i].external_port},
                        {"error", describe_failure(errors[i], request)},
                        {"error_code", error_code_name(errors[i])}});
  }
  if (session.json) {
    nlohmann::json out = {{"gateway", to_json(RunReport{gateway_report(path, found), NatKind::unknown, {}})["gateway"]},
                          {"checked", mappings.size()},
                          {"failed", failures}};
    fmt::print("{}\n", out.dump(2));
  } else {
    fmt::print("Checked {} planned mappings on gateway {}: this host's are removed, other hosts' left "
               "alone; {} failed.\n",
               mappings.size(), path.gateway.to_string(), failures.size());
    for (const auto& failure : failures)
      fmt::print("  {} {}: {}\n", failure["proto"].get<std::string>(), failure["external_port"].get<int>(),
                 failure["error"].get<std::string>());
  }
  co_return failures.empty() ? kExitOk : kExitSomeFailed;
}

asio::awaitable<int> discover(const Session& session) {
  auto connected = co_await connect(session);
  if (!connected) co_return kExitUnavailable;
  auto& [path, found] = *connected;
  const auto nat = nat_of(found);
  if (session.json) {
    nlohmann::json protocol = {
        {"method", found.mapper->method()},
        {"detail", found.detail},
        {"external_ip", found.external_ip ? nlohmann::json(found.external_ip->to_string()) : nlohmann::json(nullptr)},
        {"answer_ms", milliseconds(found.answer_time)}};
    nlohmann::json out = {{"gateway",
                           {{"address", path.gateway.to_string()},
                            {"interface", path.local.name},
                            {"local_address", path.local.address.to_string()}}},
                          {"protocols", nlohmann::json::array({protocol})},
                          {"nat", to_string(nat)},
                          {"nat_explanation", explain(nat)}};
    fmt::print("{}\n", out.dump(2));
  } else {
    fmt::print("Gateway {} (this host: {} on {})\n", path.gateway.to_string(), path.local.address.to_string(),
               path.local.name);
    fmt::print("  {:<7} {}, external address {}, answered in {} ms\n", found.mapper->method(), found.detail,
               found.external_ip ? found.external_ip->to_string() : "unknown", milliseconds(found.answer_time));
    fmt::print("NAT: {}: {}\n", to_string(nat), explain(nat));
  }
  co_return kExitOk;
}

}  // namespace

int run_command(Mode mode, const config::Config& config, bool json) {
  // Declared after the loop so it is joined first: its threads post results to the loop.
  asio::io_context loop;
  asio::thread_pool workers(kUpnpParallelCalls);
  const Session session{config, json, workers.get_executor()};
  int exit_code = kExitUnavailable;
  auto body = [&]() -> asio::awaitable<int> {
    switch (mode) {
      case Mode::once: co_return co_await once(session);
      case Mode::remove: co_return co_await remove(session);
      case Mode::discover: co_return co_await discover(session);
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
