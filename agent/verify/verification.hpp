#pragma once
// Verification as the configuration asks for it: which servers prove the
// mappings from outside, and proving them.
#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "agent/gateway/discovery.hpp"
#include "agent/report/report.hpp"
#include "agent/verify/verifier.hpp"
#include "config/config.hpp"

namespace natkeeper {

// Verification probes in flight at once: each holds two or three sockets.
inline constexpr std::size_t kParallelProbes = 16;

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
