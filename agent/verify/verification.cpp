#include "agent/verify/verification.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fstream>
#include <sstream>

#include "agent/base/log.hpp"
#include "agent/reflector/protocol.hpp"

namespace natkeeper {

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
