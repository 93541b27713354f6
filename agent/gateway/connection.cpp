#include "agent/gateway/connection.hpp"

#include <fmt/format.h>


#include "agent/base/log.hpp"

namespace natkeeper {

// miniupnpd's HTTP server has a listen backlog of 5: more parallel SOAP calls
// stall it. PCP and NAT-PMP requests are single datagrams matched by nonce or port.
std::size_t parallel_requests(Method method) {
  switch (method) {
    case Method::pcp: return 16;
    case Method::natpmp: return 8;
    case Method::upnp: return 4;
  }
  return 1;
}

WindowSettings request_window(Method method) {
  using std::chrono::milliseconds;
  // Well below each protocol's first retransmission: PCP after 3 s or more
  // (RFC 6887 §8.1.1), NAT-PMP after 250 ms (RFC 6886 §3.1). A SOAP call is not
  // retransmitted, but miniupnpd serves one at a time.
  switch (method) {
    case Method::pcp: return {parallel_requests(method), milliseconds(1000)};
    case Method::natpmp: return {parallel_requests(method), milliseconds(125)};
    case Method::upnp: return {parallel_requests(method), milliseconds(1000)};
  }
  return {1, milliseconds(1000)};
}

void warn_about_large_plan(const config::Config& config, std::size_t planned) {
  if (config.warn_above == 0 || planned <= config.warn_above) return;
  log::warning("about to ask the gateway for {} mappings. Many home routers hold only a few dozen, and a full "
               "table refuses other devices' mappings too; the most important ports go first. (This warning "
               "comes above mapping.warn_above = {}.)",
               planned, config.warn_above);
}

std::string_view display_name(Method method) {
  switch (method) {
    case Method::pcp: return "PCP";
    case Method::natpmp: return "NAT-PMP";
    case Method::upnp: return "UPnP-IGD";
  }
  return "?";
}

std::optional<asio::ip::address> known_external_ip(const FoundProtocol& found) {
  if (found.external_ip && *found.external_ip) return **found.external_ip;
  return std::nullopt;
}

asio::awaitable<std::optional<Connection>> connect(const config::Config& config) {
  auto path = locate_gateway(config);
  if (!path) {
    log::error("cannot find the gateway: {}", path.error().message());
    co_return std::nullopt;
  }
  log::info("gateway {} via {} ({})", path->gateway.to_string(), path->local.name,
            path->local.address.to_string());
  const auto started = std::chrono::steady_clock::now();
  auto discovery = co_await discover(*path, config, DiscoveryGoal::map_soon);
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

}  // namespace natkeeper
