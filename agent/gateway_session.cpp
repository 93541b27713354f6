#include "agent/gateway_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "agent/log.hpp"
#include "agent/reflector/protocol.hpp"

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

asio::awaitable<std::optional<Connection>> connect(const config::Config& config, asio::any_io_executor workers) {
  auto path = locate_gateway(config);
  if (!path) {
    log::error("cannot find the gateway: {}", path.error().message());
    co_return std::nullopt;
  }
  log::info("gateway {} via {} ({})", path->gateway.to_string(), path->local.name,
            path->local.address.to_string());
  const auto started = std::chrono::steady_clock::now();
  auto discovery = co_await discover(*path, config, workers, DiscoveryGoal::map_soon);
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

namespace {

// Resolves HOST:PORT (a name or an address) to an IPv4 endpoint.
asio::awaitable<Result<asio::ip::udp::endpoint>> resolve(const std::string& host_and_port) {
  const auto colon = host_and_port.rfind(':');
  asio::ip::udp::resolver resolver(co_await asio::this_coro::executor);
  auto [ec, results] = co_await resolver.async_resolve(asio::ip::udp::v4(), host_and_port.substr(0, colon),
                                                       host_and_port.substr(colon + 1),
                                                       asio::as_tuple(asio::use_awaitable));
  if (ec || results.empty())
    co_return ec ? std::error_code(ec) : std::make_error_code(std::errc::address_not_available);
  co_return results.begin()->endpoint();
}

}  // namespace

asio::awaitable<std::variant<VerifyOptions, std::string>> verify_options(const config::Config& config) {
  if (!config.verify) co_return std::string("verification is off");
  if (config.reflector.empty() && config.stun.empty())
    co_return std::string("no reflector or STUN server configured (--reflector, --stun)");
  VerifyOptions options;
  for (auto [name, text, target] : {std::tuple{"reflector", &config.reflector, &options.reflector},
                                    std::tuple{"STUN server", &config.stun, &options.stun}}) {
    if (text->empty()) continue;
    auto endpoint = co_await resolve(*text);
    if (endpoint) *target = *endpoint;
    else log::warning("cannot resolve the {} {}: {}", name, *text, endpoint.error().message());
  }
  if (!options.reflector && !options.stun)
    co_return std::string("the reflector and STUN server names do not resolve");
  if (!config.reflector_key_file.empty()) {
    std::ifstream file(config.reflector_key_file, std::ios::binary);
    std::ostringstream text;
    text << file.rdbuf();
    auto key = file ? reflector::parse_key(text.str()) : std::nullopt;
    if (key) options.reflector_key = std::move(*key);
    else log::warning("cannot use the reflector key file {}: unreadable or not a key", config.reflector_key_file);
  }
  co_return options;
}

asio::awaitable<VerifyResult> verify_mappings(const config::Config& config, const GatewayPath& path,
                                              std::vector<MappingReport>& mappings,
                                              const std::optional<asio::ip::address>& gateway_ip) {
  auto options = co_await verify_options(config);
  if (const auto* not_verified = std::get_if<std::string>(&options)) {
    for (auto& mapping : mappings)
      if (mapping.mapping) mapping.note = *not_verified;
    co_return VerifyResult{diagnose_nat(gateway_ip, std::nullopt), std::nullopt};
  }
  Verifier verifier(path.local.address, std::get<VerifyOptions>(options));
  co_await verifier.prepare();
  co_await verify_all(verifier, mappings, kParallelProbes);
  VerifyResult result;
  if (const auto observer = verifier.observer()) result.observed_public_ip = observer->public_address;
  result.nat = diagnose_nat(gateway_ip, result.observed_public_ip);
  co_return result;
}

asio::awaitable<std::optional<Observer>> observe(const config::Config& config, const GatewayPath& path) {
  auto options = co_await verify_options(config);
  if (!std::holds_alternative<VerifyOptions>(options)) co_return std::nullopt;
  Verifier verifier(path.local.address, std::get<VerifyOptions>(options));
  co_await verifier.prepare();
  co_return verifier.observer();
}

}  // namespace natkeeper
