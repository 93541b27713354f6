#include "agent/gateway/discovery.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <array>
#include <random>

#include "agent/base/log.hpp"
#include "agent/base/state_dir.hpp"
#include "mappers/errors.hpp"
#include "mappers/natpmp/natpmp_mapper.hpp"
#include "mappers/pcp/pcp_mapper.hpp"
#include "mappers/pcp/pcp_nonce.hpp"
#include "mappers/upnp/http_client.hpp"
#include "mappers/upnp/http_url.hpp"
#include "mappers/upnp/soap_igd.hpp"
#include "mappers/upnp/ssdp_search.hpp"
#include "mappers/upnp/upnp_mapper.hpp"

namespace natkeeper {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The whole race: SSDP's own wait plus a description fetch fit in it, and a
// gateway that answers nothing still gives a prompt exit 69.
constexpr auto kDiscoveryDeadline = 3000ms;
// After the first answer, how long a more preferred protocol may still win.
// PCP and NAT-PMP answer within one LAN round trip, and a NAT-PMP-only
// gateway refuses PCP at once (UNSUPP_VERSION), so this rarely runs out.
constexpr auto kPreferenceGrace = 20ms;
// SSDP: long enough for a device that spreads its answer over MX = 1 s plus a
// resent search.
constexpr auto kSsdpDeadline = 2500ms;
// Bound on one description fetch.
constexpr auto kDescriptionDeadline = 5000ms;
// PCP requests in normal operation give up after this (RFC 6887 would retry forever).
constexpr auto kPcpRequestDeadline = 10000ms;

constexpr std::array kAllMethods{Method::pcp, Method::natpmp, Method::upnp};

std::size_t index_of(Method method) { return static_cast<std::size_t>(method); }

// With --igd and no --gateway, the description's host is the gateway: no
// default route is needed then.
std::optional<asio::ip::address_v4> igd_host(const std::string& igd_url) {
  const auto url = upnp::parse_http_url(igd_url);
  if (!url) return std::nullopt;
  boost::system::error_code ec;
  const auto host = asio::ip::make_address_v4(url->host, ec);
  if (ec) return std::nullopt;
  return host;
}

std::vector<Method> methods_for(const config::Config& config) {
  switch (config.protocol) {
    case config::ProtocolChoice::pcp: return {Method::pcp};
    case config::ProtocolChoice::natpmp: return {Method::natpmp};
    case config::ProtocolChoice::upnp: return {Method::upnp};
    case config::ProtocolChoice::automatic: break;
  }
  return preference_order(config);
}

// Each probe owns copies of what it uses: a probe that loses the race may
// still be winding down after discover() returned.
struct ProbeContext {
  GatewayPath path;
  config::Config config;
  Clock::time_point started;
  DiscoveryGoal goal;
};

asio::awaitable<Result<FoundProtocol>> probe_upnp(ProbeContext context) {
  auto open = [&](const std::string& location) -> asio::awaitable<Result<FoundProtocol>> {
    const auto url = upnp::parse_http_url(location);
    if (!url) co_return make_error_code(Errc::not_an_igd);
    auto fetched = co_await upnp::http_get(*url, {kDescriptionDeadline, {}});
    if (fetched.error) {
      log::info("UPnP: {}: {}", location, fetched.detail);
      co_return fetched.error;
    }
    // When the description offers several WAN connections, they are asked about.
    auto igd = co_await upnp::open_igd(location, std::move(fetched.body));
    if (!igd) {
      log::info("UPnP: {}: {}", location, igd.error().message());
      co_return igd.error();
    }
    for (const auto& [service, state] : igd->asked) {
      log::info("UPnP: {}: {} at {}: status {}, external address {}{}", location, service.service_type,
                service.control_url, state.status.empty() ? "unknown" : state.status,
                state.external_ip.empty() ? "none" : state.external_ip,
                service == igd->description ? " (chosen)" : "");
    }
    upnp::UpnpMapperOptions options;
    options.allow_other_external_port = context.config.allow_other_external_port;
    FoundProtocol found;
    found.method = Method::upnp;
    found.mapper =
        std::make_unique<upnp::UpnpMapper>(igd->control, context.path.local.address.to_string(), options);
    found.detail = fmt::format("IGDv{} at {}", igd->description.version, location);
    found.event_url = igd->description.event_url;
    found.answer_time = Clock::now() - context.started;
    found.external_ip = co_await found.mapper->external_address();
    co_return found;
  };

  if (!context.config.igd_url.empty()) co_return co_await open(context.config.igd_url);

  const auto& path = context.path;
  upnp::SsdpSearch search(co_await asio::this_coro::executor, path.local.address, path.local.netmask,
                          path.gateway);
  if (const auto ec = search.start()) co_return ec;
  const auto deadline = context.started + kSsdpDeadline;
  // Named before co_await (GCC 12 destroys temporaries in a co_await expression twice).
  const NextSsdpAnswer next = [&search, deadline] { return search.next_answer(deadline); };
  const OpenIgd open_location = open;
  co_return co_await open_gateway_igd(path.gateway, next, open_location);
}

asio::awaitable<Result<FoundProtocol>> probe_pcp(ProbeContext context) {
  pcp::ClientOptions options;
  options.client_address = context.path.local.address;
  options.server_address = context.path.gateway;
  options.seed = std::random_device{}();
  options.max_request_duration = kPcpRequestDeadline;
  // --discover deletes its throwaway mapping itself: no nonce needs to last.
  if (context.goal == DiscoveryGoal::map_soon) {
    if (auto key = load_or_create_host_key(state_directory())) {
      options.nonce_for = [key = *key](const asio::ip::address_v4& internal_client, Transport proto,
                                       std::uint16_t port) {
        return pcp::derive_nonce(key, internal_client, proto, port);
      };
    } else {
      log::warning("cannot keep the PCP host key in {}: {}; a later run cannot renew or delete these "
                   "PCP mappings", state_directory().string(), key.error().message());
    }
  }
  auto mapper = std::make_unique<pcp::PcpMapper>(co_await asio::this_coro::executor, options);
  if (const auto ec = mapper->open()) co_return ec;
  auto answer = co_await mapper->announce();
  if (!answer) co_return answer.error();
  FoundProtocol found;
  found.method = Method::pcp;
  found.detail = fmt::format("PCP version 2, epoch {} s", answer->epoch);
  found.answer_time = Clock::now() - context.started;
  if (context.goal == DiscoveryGoal::list_all) found.external_ip = co_await mapper->external_address();
  found.mapper = std::move(mapper);
  co_return found;
}

asio::awaitable<Result<FoundProtocol>> probe_natpmp(ProbeContext context) {
  auto answer = co_await natpmp::probe_public_address(context.path.gateway, kDiscoveryDeadline);
  if (!answer) co_return answer.error();
  auto mapper = std::make_unique<natpmp::NatpmpMapper>(co_await asio::this_coro::executor,
                                                       context.path.gateway);
  mapper->adopt_probe(*answer);
  FoundProtocol found;
  found.method = Method::natpmp;
  found.detail = fmt::format("NAT-PMP, epoch {} s", answer->epoch);
  found.answer_time = answer->received - context.started;
  found.external_ip = asio::ip::address(answer->external_address);
  found.mapper = std::move(mapper);
  co_return found;
}

asio::awaitable<Result<FoundProtocol>> probe(Method method, ProbeContext context) {
  switch (method) {
    case Method::pcp: {
      auto found = co_await probe_pcp(context);
      // A gateway that speaks only NAT-PMP (or PCPv1) refuses version 2 with
      // UNSUPP_VERSION: RFC 6887 §9 says to fall back to NAT-PMP then.
      if (!found && found.error() == make_pcp_error(1) &&
          context.config.protocol == config::ProtocolChoice::pcp) {
        log::notice("the gateway does not speak PCP version 2; falling back to NAT-PMP");
        co_return co_await probe_natpmp(context);
      }
      co_return found;
    }
    case Method::natpmp: co_return co_await probe_natpmp(context);
    case Method::upnp: co_return co_await probe_upnp(context);
  }
  co_return make_error_code(Errc::no_gateway_answer);
}

struct Race {
  explicit Race(const asio::any_io_executor& executor) : changed(executor) {}
  asio::steady_timer changed;  // cancelled whenever a probe finishes
  std::array<std::optional<Result<FoundProtocol>>, kAllMethods.size()> results;
  std::array<asio::cancellation_signal, kAllMethods.size()> cancel;
  std::array<bool, kAllMethods.size()> running{};
  std::optional<Clock::time_point> first_answer;

  bool any_running() const { return std::find(running.begin(), running.end(), true) != running.end(); }

  // No running probe can beat the best answer so far.
  bool best_is_final(const std::vector<Method>& preference) const {
    for (const auto method : preference) {
      const auto i = index_of(method);
      if (results[i] && *results[i]) return true;
      if (running[i]) return false;
    }
    return false;
  }
};

}  // namespace

std::vector<Method> preference_order(const config::Config& config) {
  // NAT-PMP maps only for the host that asks: where devices are planned, a
  // gateway's UPnP-IGD can do what its NAT-PMP cannot.
  if (!config.devices.empty()) return {Method::pcp, Method::upnp, Method::natpmp};
  return {kAllMethods.begin(), kAllMethods.end()};
}

asio::awaitable<Result<FoundProtocol>> open_gateway_igd(const asio::ip::address_v4& gateway,
                                                        const NextSsdpAnswer& next, const OpenIgd& open) {
  std::optional<FoundProtocol> unanswering;  // opened, but its control URL did not answer
  while (auto answer = co_await next()) {
    log::debug("SSDP: {} answered the {} search after {} ms: {} ({})", answer->responder.to_string(),
               answer->search == upnp::SearchKind::unicast_to_gateway ? "unicast" : "multicast",
               std::chrono::duration_cast<std::chrono::milliseconds>(answer->elapsed).count(),
               answer->response.location, answer->response.search_target);
    if (answer->responder != gateway) {
      // Only the gateway forwards this host's traffic: another device's
      // mappings would lead nowhere, and any LAN device can claim to be an IGD.
      log::info("UPnP: ignoring the IGD answer of {}, which is not the gateway {} (--igd names a device)",
                answer->responder.to_string(), gateway.to_string());
      continue;
    }
    auto found = co_await open(answer->response.location);
    if (!found) continue;
    const auto& external_ip = found->external_ip;
    if (external_ip && !*external_ip && external_ip->error() == MapFailure::gateway_unreachable) {
      log::info("UPnP: {}: the control URL does not answer: {}", answer->response.location,
                external_ip->error().message());
      if (!unanswering) unanswering = std::move(*found);
      continue;
    }
    co_return found;
  }
  if (unanswering) co_return std::move(*unanswering);
  co_return make_error_code(Errc::no_gateway_answer);
}

Result<GatewayPath> locate_gateway(const config::Config& config) {
  GatewayPath path;
  if (config.gateway) {
    path.gateway = *config.gateway;
  } else if (auto host = igd_host(config.igd_url)) {
    path.gateway = *host;
  } else {
    auto gateway = find_default_gateway();
    if (!gateway) return gateway.error();
    path.gateway = *gateway;
  }
  auto local = find_interface_towards(path.gateway);
  if (!local) return local.error();
  path.local = std::move(*local);
  return path;
}

asio::awaitable<Discovery> discover(const GatewayPath& path, const config::Config& config, DiscoveryGoal goal) {
  const auto started = Clock::now();
  const auto executor = co_await asio::this_coro::executor;
  auto race = std::make_shared<Race>(executor);
  const auto methods = methods_for(config);
  for (const auto method : methods) {
    const auto i = index_of(method);
    race->running[i] = true;
    auto task = probe(method, ProbeContext{path, config, started, goal});
    auto finished = [race, i](std::exception_ptr error, Result<FoundProtocol> result) {
      // A probe cancelled after the race was decided ends with an exception.
      if (error) result = std::make_error_code(std::errc::operation_canceled);
      if (result && !race->first_answer) race->first_answer = Clock::now();
      race->results[i] = std::move(result);
      race->running[i] = false;
      race->changed.cancel();
    };
    asio::co_spawn(executor, std::move(task),
                   asio::bind_cancellation_slot(race->cancel[i].slot(), std::move(finished)));
  }

  const auto deadline = started + kDiscoveryDeadline;
  while (race->any_running()) {
    auto wake = deadline;
    if (goal == DiscoveryGoal::map_soon && race->first_answer) {
      if (race->best_is_final(methods)) break;
      wake = std::min(wake, *race->first_answer + kPreferenceGrace);
    }
    if (Clock::now() >= wake) break;
    race->changed.expires_at(wake);
    co_await race->changed.async_wait(asio::as_tuple(asio::use_awaitable));
  }

  // Stop the losers and let them unwind (each stops at its next wait). Past
  // the deadline they did not lose a race: they did not answer in time.
  const bool deadline_passed = Clock::now() >= deadline;
  std::array<bool, kAllMethods.size()> out_of_time{};
  for (std::size_t i = 0; i < race->running.size(); ++i) {
    if (!race->running[i]) continue;
    out_of_time[i] = deadline_passed;
    race->cancel[i].emit(asio::cancellation_type::terminal);
  }
  for (int waited = 0; race->any_running() && waited < 50; ++waited) {
    race->changed.expires_after(100ms);
    co_await race->changed.async_wait(asio::as_tuple(asio::use_awaitable));
  }

  Discovery discovery;
  for (const auto method : methods) {
    const auto i = index_of(method);
    auto& result = race->results[i];
    if (out_of_time[i]) discovery.failed.push_back({method, make_error_code(Errc::timed_out)});
    else if (result && *result) discovery.found.push_back(std::move(**result));
    else if (result && result->error() != std::errc::operation_canceled)  // cancelled: lost the race
      discovery.failed.push_back({method, result->error()});
  }
  co_return discovery;
}

}  // namespace natkeeper
