#pragma once
// Verification as the configuration asks for it: which servers prove the
// mappings from outside, and proving them.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "agent/gateway/discovery.hpp"
#include "agent/gateway/map_batch.hpp"
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
// Another device's UDP rows are judged by this host's UDP rows among
// `mappings`, or by a temporary canary mapping made through `canary_mapper`
// (when given) where there are none (see VerificationRun::finish).
asio::awaitable<VerifyResult> verify_mappings(const config::Config& config, const GatewayPath& path,
                                              std::vector<MappingReport>& mappings,
                                              const std::optional<asio::ip::address>& gateway_ip,
                                              Mapper* canary_mapper);

// The verification of one batch of mappings, run alongside it: each mapping
// is proven as soon as the gateway grants it, so that proving costs little
// more time than mapping.
//
//   VerificationRun verification;
//   co_await verification.start(config, path);
//   policy.on_granted = [&](std::size_t i, const Mapping& m) { verification.granted(i, m); };
//   auto outcomes = co_await verification.alongside(map_all_until_stable(mapper, requests, policy));
//   ... make_report(..., outcomes) ...
//   auto result = co_await verification.finish(report.mappings, external_ip, &mapper);
class VerificationRun {
 public:
  VerificationRun();
  ~VerificationRun();
  VerificationRun(const VerificationRun&) = delete;
  VerificationRun& operator=(const VerificationRun&) = delete;

  // Resolves the configured servers and asks them once (Verifier::prepare).
  asio::awaitable<void> start(const config::Config& config, const GatewayPath& path);
  // For BatchPolicy::on_granted: proves request `index`'s mapping once a
  // worker of alongside() is free.
  void granted(std::size_t index, const Mapping& mapping);
  // Awaits `batch` while proving what it grants; returns its outcomes once
  // every mapping granted meanwhile has been tried.
  asio::awaitable<std::vector<MapOutcome>> alongside(asio::awaitable<std::vector<MapOutcome>> batch);
  // Sets each report's state and note, row i being request i of the batch:
  // what was proven alongside, the rest now. Another device's UDP rows are
  // judged by a canary: this run's own UDP rows, else a temporary UDP mapping
  // of this host through `canary_mapper` (when given), proven and removed.
  asio::awaitable<VerifyResult> finish(std::vector<MappingReport>& mappings,
                                       const std::optional<asio::ip::address>& gateway_ip, Mapper* canary_mapper);

 private:
  struct Granted {
    std::size_t index = 0;
    Mapping mapping;
    std::uint64_t sequence = 0;  // a later round of the batch wins
  };
  struct Proven {
    Mapping mapping;
    Verification verification;
    std::uint64_t sequence = 0;
  };
  asio::awaitable<void> work();
  void close();
  asio::awaitable<Canary> temporary_canary(Mapper& mapper);

  std::unique_ptr<Verifier> verifier_;
  std::string not_verified_;  // why there is no verifier
  asio::ip::address_v4 local_address_;
  std::deque<Granted> queue_;
  bool closed_ = false;
  std::optional<asio::steady_timer> wake_;  // never expires: cancelled when the queue changes
  std::uint64_t next_sequence_ = 0;
  std::map<std::size_t, Proven> proven_;
};

// What an outside observer (reflector or STUN server) sees of this host, if one is configured.
asio::awaitable<std::optional<Observer>> observe(const config::Config& config, const GatewayPath& path);

}  // namespace natkeeper
