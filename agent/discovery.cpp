#include "agent/discovery.hpp"

#include <boost/asio/this_coro.hpp>
#include <fmt/format.h>

#include "agent/log.hpp"
#include "mappers/blocking_runner.hpp"
#include "mappers/errors.hpp"
#include "mappers/upnp/miniupnpc_igd.hpp"
#include "mappers/upnp/ssdp_search.hpp"
#include "mappers/upnp/upnp_mapper.hpp"

namespace natkeeper {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// How long SSDP answers are awaited: long enough for a device that spreads its
// answer over MX = 1 s plus a resent search, short enough for a prompt exit 69.
constexpr auto kSsdpDeadline = 2500ms;
// Bound on one description fetch or SOAP call.
constexpr auto kUpnpCallDeadline = 5000ms;
// How long an IGD answer from another host waits for the gateway's own.
constexpr auto kGatewayHeadStart = 300ms;

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

}  // namespace

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

asio::awaitable<Result<FoundProtocol>> discover_upnp(const GatewayPath& path, const config::Config& config,
                                                     asio::any_io_executor workers) {
  const auto started = Clock::now();
  const BlockingRunner runner(workers, kUpnpCallDeadline);
  auto open = [&](const std::string& location) -> asio::awaitable<Result<FoundProtocol>> {
    // The call is named, not a temporary: GCC 12 destroys a temporary lambda
    // inside a co_await expression twice.
    auto fetch_description = [location] { return upnp::open_igd(location); };
    auto igd = co_await runner.run(std::move(fetch_description));
    if (!igd) {
      log::info("UPnP: {}: {}", location, igd.error().message());
      co_return igd.error();
    }
    upnp::UpnpMapperOptions options;
    options.allow_other_external_port = config.allow_other_external_port;
    FoundProtocol found;
    found.mapper = std::make_unique<upnp::UpnpMapper>(igd->control, runner,
                                                      path.local.address.to_string(), options);
    found.detail = fmt::format("IGDv{} at {}", igd->description.version, location);
    found.answer_time = Clock::now() - started;
    found.external_ip = co_await found.mapper->external_address();
    co_return found;
  };

  if (!config.igd_url.empty()) co_return co_await open(config.igd_url);

  upnp::SsdpSearch search(co_await asio::this_coro::executor, path.local.address, path.local.netmask,
                          path.gateway);
  if (const auto ec = search.start()) co_return ec;
  const auto deadline = started + kSsdpDeadline;
  auto wait_until = deadline;
  std::vector<upnp::SsdpAnswer> others;
  while (auto answer = co_await search.next_answer(wait_until)) {
    log::debug("SSDP: {} answered after {} ms: {}", answer->responder.to_string(),
               std::chrono::duration_cast<std::chrono::milliseconds>(answer->elapsed).count(),
               answer->response.location);
    if (answer->responder != path.gateway) {
      // Another LAN device claims to be an IGD. The default gateway is the one
      // that forwards this host's traffic: give it a moment to answer first.
      if (others.empty()) wait_until = std::min(deadline, Clock::now() + kGatewayHeadStart);
      others.push_back(std::move(*answer));
      continue;
    }
    auto found = co_await open(answer->response.location);
    if (found) co_return found;
  }
  for (const auto& other : others) {
    auto found = co_await open(other.response.location);
    if (found) co_return found;
  }
  co_return make_error_code(Errc::no_gateway_answer);
}

}  // namespace natkeeper
