#include "mappers/pcp/pcp_mapper.hpp"

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>

#include "mappers/errors.hpp"
#include "mappers/lease_policy.hpp"

namespace natkeeper::pcp {
namespace {

using namespace std::chrono_literals;
// The lifetime of the throwaway mapping that tells the external address; the
// lab's miniupnpd clamps anything shorter to 120 s anyway.
constexpr std::chrono::seconds kProbeLifetime{120};

// The device a request names, as this IPv4 client's THIRD_PARTY option names
// it. PCP over IPv4 maps IPv4 internal addresses: an IPv6 device is not ours.
Result<std::optional<asio::ip::address_v4>> third_party_of(const MapRequest& request) {
  using ThirdParty = std::optional<asio::ip::address_v4>;
  if (!request.internal_client) return ThirdParty{};
  const auto& device = *request.internal_client;
  if (device.is_v4()) return ThirdParty{device.to_v4()};
  if (const auto v4 = v4_mapped(device.to_v6())) return ThirdParty{*v4};
  return std::make_error_code(std::errc::address_family_not_supported);
}

}  // namespace

// A map()/unmap()/announce() call waiting for its request's completion.
struct PcpMapper::Waiter {
  explicit Waiter(const asio::any_io_executor& executor) : done(executor, asio::steady_timer::time_point::max()) {}
  asio::steady_timer done;
  std::optional<Completion> completion;
};

PcpMapper::PcpMapper(asio::any_io_executor executor, ClientOptions options)
    : executor_(executor), socket_(executor), wakeup_(executor), client_(options), options_(options) {}

PcpMapper::~PcpMapper() { *alive_ = false; }

std::error_code PcpMapper::open() {
  boost::system::error_code ec;
  socket_.open(asio::ip::udp::v4(), ec);
  if (!ec) socket_.bind({options_.client_address, 0}, ec);
  if (!ec) socket_.connect({options_.server_address, kServerPort}, ec);
  return ec;
}

asio::awaitable<Completion> PcpMapper::await_completion(RequestId id) {
  Waiter waiter(executor_);
  waiters_[id] = &waiter;
  // Nothing reads the socket while no request is pending: what queued
  // meanwhile came before this request was sent and cannot answer it, but a
  // forged response without a nonce (ANNOUNCE, UNSUPP_VERSION) would be taken
  // for its answer.
  if (!driving_) discard_queued();
  flush_outgoing();
  // A request the gateway refused a moment ago completes at once, unsent.
  deliver_completions();
  if (!waiter.completion) {
    start_driver();
    // Woken by the driver (completion set) or by our caller's cancellation.
    co_await waiter.done.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  waiters_.erase(id);
  if (waiter.completion) co_return std::move(*waiter.completion);
  // Cancelled by our caller: stop retransmitting for it.
  client_.cancel(id);
  Completion cancelled;
  cancelled.id = id;
  cancelled.error = std::make_error_code(std::errc::operation_canceled);
  co_return cancelled;
}

void PcpMapper::start_driver() {
  if (driving_) {
    // A new request may be due earlier than what the driver sleeps for.
    wakeup_.cancel();
    return;
  }
  driving_ = true;
  asio::co_spawn(executor_, drive(), asio::detached);
}

asio::awaitable<void> PcpMapper::drive() {
  using namespace asio::experimental::awaitable_operators;
  constexpr auto token = asio::as_tuple(asio::use_awaitable);
  const auto alive = alive_;
  while (*alive && client_.pending() > 0) {
    flush_outgoing();
    wakeup_.expires_at(client_.next_wakeup().value_or(Clock::now() + 1s));
    auto outcome = co_await (socket_.async_receive(asio::buffer(buffer_), token) || wakeup_.async_wait(token));
    if (!*alive) co_return;
    const auto now = Clock::now();
    if (outcome.index() == 0) {
      const auto [ec, size] = std::get<0>(outcome);
      if (ec == asio::error::connection_refused) {
        // ICMP port unreachable: nothing listens on the gateway's port 5351.
        fail_all(make_error_code(Errc::no_gateway_answer));
      } else if (ec) {
        fail_all(ec);
      } else {
        client_.on_datagram({buffer_.data(), size}, options_.server_address, kServerPort, now);
      }
    } else {
      client_.on_time(now);
    }
    deliver_completions();
  }
  if (*alive) driving_ = false;
}

void PcpMapper::discard_queued() {
  if (!socket_.is_open()) return;
  // More than a default receive buffer holds, so the bound only matters
  // under a flood, which the requests' nonces then have to withstand.
  constexpr int kMaxDiscards = 1024;
  for (int i = 0; i < kMaxDiscards; ++i) {
    const auto n = ::recv(socket_.native_handle(), buffer_.data(), buffer_.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    // Any other error was a stale ICMP report, now cleared: carry on.
    if (n >= 0) ++discarded_;
  }
}

void PcpMapper::flush_outgoing() {
  for (const auto& datagram : client_.take_outgoing()) {
    boost::system::error_code ignored;  // a lost datagram is what retransmission is for
    socket_.send(asio::buffer(datagram), 0, ignored);
  }
}

void PcpMapper::deliver_completions() {
  for (auto& completion : client_.take_completions()) {
    const auto waiter = waiters_.find(completion.id);
    if (waiter == waiters_.end()) continue;
    waiter->second->completion = std::move(completion);
    waiter->second->done.cancel();
  }
}

void PcpMapper::fail_all(std::error_code error) {
  for (auto& [id, waiter] : waiters_) {
    client_.cancel(id);
    Completion failed;
    failed.id = id;
    failed.error = error;
    waiter->completion = std::move(failed);
    waiter->done.cancel();
  }
}

asio::awaitable<Result<GatewayCheck>> PcpMapper::check(const Mapping& sample) {
  const auto renewed = co_await map(sample.request);
  if (!renewed) co_return renewed.error();
  co_return GatewayCheck{take_gateway_lost_state(), renewed->external_ip, last_epoch_};
}

asio::awaitable<Result<AnnounceAnswer>> PcpMapper::announce() {
  const auto started = Clock::now();
  const auto id = client_.announce(started);
  auto completion = co_await await_completion(id);
  if (completion.error) co_return completion.error;
  co_return AnnounceAnswer{completion.epoch, Clock::now() - started};
}

asio::awaitable<Result<Mapping>> PcpMapper::map(MapRequest request) {
  const auto third_party = third_party_of(request);
  if (!third_party) co_return third_party.error();
  // Lifetime 0 would be a deletion (RFC 6887 §15).
  request.lifetime = lease::expiring_lifetime(request.lifetime);
  const auto id = client_.map(request.proto, request.internal_port, request.wanted_external_port,
                              request.lifetime, Clock::now(), *third_party);
  // A refusal (for another device: NOT_AUTHORIZED, UNSUPP_OPTION when the
  // gateway does not allow third-party mappings, ADDRESS_MISMATCH) is the
  // server's result code as is, and final: retrying is the caller's policy.
  auto completion = co_await await_completion(id);
  if (completion.error) co_return completion.error;
  if (!completion.map) co_return make_error_code(Errc::bad_reply);
  if (lease::needs_confirmation(request.lifetime, completion.map->lifetime)) {
    // Far more than was asked: believed only as the answer to the same
    // request (a renewal, same nonce) asked again.
    completion = co_await await_completion(client_.map(request.proto, request.internal_port,
                                                       request.wanted_external_port, request.lifetime,
                                                       Clock::now(), *third_party));
    if (completion.error) co_return completion.error;
    if (!completion.map) co_return make_error_code(Errc::bad_reply);
  }
  const auto& granted = *completion.map;
  external_ip_ = granted.external_address;
  last_epoch_ = std::chrono::seconds(completion.epoch);
  co_return Mapping{std::move(request), granted.external_address, granted.external_port,
                    lease::scheduled_lease(request.lifetime, granted.lifetime), false};
}

asio::awaitable<std::error_code> PcpMapper::unmap(Mapping mapping) {
  // Lifetime 0 deletes (RFC 6887 §15); the client reuses the mapping's nonce,
  // and a third party's mapping is deleted with its THIRD_PARTY option.
  const auto third_party = third_party_of(mapping.request);
  if (!third_party) co_return third_party.error();
  const auto id = client_.map(mapping.request.proto, mapping.request.internal_port, 0, 0s, Clock::now(),
                              *third_party);
  auto completion = co_await await_completion(id);
  // A deletion needs no resources: NO_RESOURCES is how miniupnpd answers one
  // for a mapping it does not hold (RFC 6887 §15 would say SUCCESS).
  if (completion.error == make_pcp_error(static_cast<int>(ResultCode::no_resources))) co_return std::error_code{};
  co_return completion.error;
}

asio::awaitable<Result<asio::ip::address>> PcpMapper::external_address() {
  if (external_ip_) co_return *external_ip_;
  boost::system::error_code ignored;
  const auto local_port = socket_.local_endpoint(ignored).port();
  MapRequest probe{Transport::udp, local_port, local_port, kProbeLifetime, "natkeeper probe", {}, {}};
  auto mapping = co_await map(std::move(probe));
  if (!mapping) co_return mapping.error();
  co_await unmap(*mapping);
  co_return mapping->external_ip;
}

}  // namespace natkeeper::pcp
