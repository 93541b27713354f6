#pragma once
// What --once, --delete, --discover and the service share: finding the
// gateway and its protocol, and proving mappings from outside.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>
#include <variant>

#include "agent/discovery.hpp"
#include "agent/report.hpp"
#include "agent/request_window.hpp"
#include "agent/verifier.hpp"
#include "config/config.hpp"

namespace natkeeper {

// Requests in flight at once for one protocol.
std::size_t parallel_requests(Method method);
// The request window for bulk mapping with `method`; its maximum is
// parallel_requests(method).
WindowSettings request_window(Method method);
// Before a plan of more mappings than `config.warn_above`: how many, and what
// that can do to a home router.
void warn_about_large_plan(const config::Config& config, std::size_t planned);
// "PCP", "NAT-PMP", "UPnP-IGD": for people (to_string(Method) is for scripts).
std::string_view display_name(Method method);

// Verification probes in flight at once: each holds two or three sockets.
inline constexpr std::size_t kParallelProbes = 16;

std::optional<asio::ip::address> known_external_ip(const FoundProtocol& found);

struct Connection {
  GatewayPath path;
  FoundProtocol protocol;
};

// Finds the gateway and the best protocol it speaks; logs why not and returns
// nullopt. Blocking libminiupnpc calls run on `workers`.
asio::awaitable<std::optional<Connection>> connect(const config::Config& config, asio::any_io_executor workers);

GatewayReport gateway_report(const GatewayPath& path, const FoundProtocol& found,
                             std::optional<asio::ip::address> external_ip);

// The verification servers of the configuration, resolved; or why there are none.
asio::awaitable<std::variant<VerifyOptions, std::string>> verify_options(const config::Config& config);

// Proves each active mapping from outside and tells what kind of NAT this is;
// sets each mapping's state and note, and returns the NAT diagnosis with what
// the outside observer saw.
struct VerifyResult {
  NatKind nat = NatKind::unknown;
  std::optional<asio::ip::address> observed_public_ip;
};
asio::awaitable<VerifyResult> verify_mappings(const config::Config& config, const GatewayPath& path,
                                              std::vector<MappingReport>& mappings,
                                              const std::optional<asio::ip::address>& gateway_ip);

// What an outside observer (reflector or STUN server) sees of this host, if one is configured.
asio::awaitable<std::optional<Observer>> observe(const config::Config& config, const GatewayPath& path);

}  // namespace natkeeper
