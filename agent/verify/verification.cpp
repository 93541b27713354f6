#include "agent/verify/verification.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <fstream>
#include <sstream>

#include "agent/base/bounded_concurrency.hpp"
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

namespace {

constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);
// A temporary canary mapping's lease: short, so that one left behind (its
// removal failed, or the run was killed) soon expires.
constexpr std::chrono::seconds kCanaryLease{120};
// How long removing the canary may take before the run goes on without it.
constexpr std::chrono::seconds kCanaryRemovalDeadline{2};

bool same_mapping(const Mapping& a, const Mapping& b) {
  return a.request.proto == b.request.proto && a.request.internal_port == b.request.internal_port &&
         a.request.internal_client == b.request.internal_client && a.external_port == b.external_port &&
         a.external_ip == b.external_ip;
}

void apply(MappingReport& report, const Verification& verification) {
  report.state = verification.state;
  report.verified_by = verification.method;
  report.note = verification.note;
  report.probe_round_trip = verification.round_trip;
}

bool device_udp(const MappingReport& report) {
  return report.mapping && for_other_device(report.request) && report.request.proto == Transport::udp;
}

}  // namespace

VerificationRun::VerificationRun() = default;
VerificationRun::~VerificationRun() = default;

asio::awaitable<void> VerificationRun::start(const config::Config& config, const GatewayPath& path) {
  local_address_ = path.local.address;
  auto options = co_await verify_options(config);
  if (auto* not_verified = std::get_if<std::string>(&options)) {
    not_verified_ = std::move(*not_verified);
    co_return;
  }
  verifier_ = std::make_unique<Verifier>(path.local.address, std::get<VerifyOptions>(options));
  co_await verifier_->prepare();
  wake_.emplace(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
}

void VerificationRun::granted(std::size_t index, const Mapping& mapping) {
  if (!verifier_) return;
  queue_.push_back({index, mapping, next_sequence_++});
  wake_->cancel();
}

void VerificationRun::close() {
  closed_ = true;
  wake_->cancel();
}

asio::awaitable<void> VerificationRun::work() {
  for (;;) {
    if (!queue_.empty()) {
      auto next = std::move(queue_.front());
      queue_.pop_front();
      auto verification = co_await verifier_->verify(next.mapping);
      auto& proven = proven_[next.index];
      if (next.sequence >= proven.sequence) proven = {std::move(next.mapping), std::move(verification), next.sequence};
      continue;
    }
    if (closed_) co_return;
    co_await wake_->async_wait(kAwait);
  }
}

asio::awaitable<std::vector<MapOutcome>> VerificationRun::alongside(asio::awaitable<std::vector<MapOutcome>> batch) {
  using namespace asio::experimental::awaitable_operators;
  if (!verifier_) co_return co_await std::move(batch);
  auto map_then_close = [this](asio::awaitable<std::vector<MapOutcome>> mapping)
      -> asio::awaitable<std::vector<MapOutcome>> {
    auto outcomes = co_await std::move(mapping);
    close();
    co_return outcomes;
  };
  auto workers = for_each_bounded(kParallelProbes, kParallelProbes, [this](std::size_t) { return work(); });
  co_return co_await (map_then_close(std::move(batch)) && std::move(workers));
}

asio::awaitable<VerifyResult> VerificationRun::finish(std::vector<MappingReport>& mappings,
                                                      const std::optional<asio::ip::address>& gateway_ip,
                                                      Mapper* canary_mapper) {
  if (!verifier_) {
    for (auto& mapping : mappings)
      if (mapping.mapping) mapping.note = not_verified_;
    co_return VerifyResult{diagnose_nat(gateway_ip, std::nullopt), std::nullopt};
  }
  auto verify_one = [&](std::size_t i) -> asio::awaitable<void> {
    auto& report = mappings[i];
    if (!report.mapping) co_return;
    const auto proven = proven_.find(i);
    if (proven != proven_.end() && same_mapping(proven->second.mapping, *report.mapping))
      apply(report, proven->second.verification);
    else
      apply(report, co_await verifier_->verify(*report.mapping));
  };
  co_await for_each_bounded(mappings.size(), kParallelProbes, verify_one);
  VerifyResult result;
  if (const auto observer = verifier_->observer()) result.observed_public_ip = observer->public_address;
  result.nat = diagnose_nat(gateway_ip, result.observed_public_ip);

  if (std::none_of(mappings.begin(), mappings.end(), device_udp)) co_return result;
  auto canary = canary_from_run(mappings);
  if (!canary && canary_mapper) canary = co_await temporary_canary(*canary_mapper);
  if (!canary) canary = Canary{Canary::Outcome::unknown, "no UDP mapping of this host to test the gateway with"};
  for (auto& report : mappings)
    if (device_udp(report)) apply(report, judge_device_udp(*canary, result.nat));
  co_return result;
}

asio::awaitable<Canary> VerificationRun::temporary_canary(Mapper& mapper) {
  const auto executor = co_await asio::this_coro::executor;
  // A port free on this host now, where the verifier can listen.
  std::uint16_t port = 0;
  {
    asio::ip::udp::socket socket(executor);
    boost::system::error_code ec;
    socket.open(asio::ip::udp::v4(), ec);
    if (!ec) socket.bind({local_address_, 0}, ec);
    if (ec) co_return Canary{Canary::Outcome::unknown, "no free UDP port for a canary: " + ec.message()};
    port = socket.local_endpoint().port();
  }
  const MapRequest request{Transport::udp, port, port, kCanaryLease, "natkeeper canary", std::nullopt, ""};
  const auto mapping = co_await mapper.map(request);
  if (!mapping)
    co_return Canary{Canary::Outcome::unknown, "the gateway refused a canary mapping: " + mapping.error().message()};

  Verification verification;
  std::exception_ptr failure;  // cancellation included: the canary is removed first
  try {
    verification = co_await verifier_->verify(*mapping);
  } catch (...) {
    failure = std::current_exception();
  }
  co_await asio::this_coro::reset_cancellation_state();
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer deadline(executor, kCanaryRemovalDeadline);
  const auto removal = co_await (mapper.unmap(*mapping) || deadline.async_wait(kAwait));
  if (removal.index() != 0 || std::get<0>(removal))
    log::warning("cannot remove the canary mapping udp {}: its lease ends within {} s", port, kCanaryLease.count());
  if (failure) std::rethrow_exception(failure);

  const auto what = fmt::format("udp {} of this host, mapped for this test and removed", port);
  switch (verification.state) {
    case MappingState::verified: co_return Canary{Canary::Outcome::verified, what};
    case MappingState::unreachable: co_return Canary{Canary::Outcome::unreachable, what};
    default: co_return Canary{Canary::Outcome::unknown, fmt::format("{}: {}", what, verification.note)};
  }
}

asio::awaitable<VerifyResult> verify_mappings(const config::Config& config, const GatewayPath& path,
                                              std::vector<MappingReport>& mappings,
                                              const std::optional<asio::ip::address>& gateway_ip,
                                              Mapper* canary_mapper) {
  VerificationRun run;
  co_await run.start(config, path);
  co_return co_await run.finish(mappings, gateway_ip, canary_mapper);
}

asio::awaitable<std::optional<Observer>> observe(const config::Config& config, const GatewayPath& path) {
  auto options = co_await verify_options(config);
  if (!std::holds_alternative<VerifyOptions>(options)) co_return std::nullopt;
  Verifier verifier(path.local.address, std::get<VerifyOptions>(options));
  co_await verifier.prepare();
  co_return verifier.observer();
}

}  // namespace natkeeper
