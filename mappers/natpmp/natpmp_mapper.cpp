#include "mappers/natpmp/natpmp_mapper.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <limits>

#include "mappers/errors.hpp"
#include "mappers/lease_policy.hpp"
#include "mappers/natpmp/natpmp_codec.hpp"

namespace natkeeper::natpmp {
namespace {

using asio::ip::address_v4;
constexpr auto token = asio::as_tuple(asio::use_awaitable);

// RFC 6886 §3.1: retransmit after 250 ms, then after twice the previous wait,
// nine sends in all (the last answered or not 127.75 s after the first).
constexpr std::chrono::milliseconds kFirstRetransmission{250};
constexpr int kMaxSends = 9;

std::error_code aborted() { return make_error_code(std::errc::operation_canceled); }

struct Answer {
  Reply reply;
  TimePoint last_sent;  // the (re)transmission it answers, most likely
  TimePoint received;
};

// Result code 1 (§3.5): the gateway does not speak NAT-PMP version 0.
constexpr std::uint16_t kUnsupportedVersion = 1;

// Is the request being exchanged the discovery probe, or one to a gateway
// that discovery found speaking NAT-PMP?
enum class Stage { discovery, established };

// Sends `request` on `channel` and waits for its valid reply, retransmitting
// on RFC 6886's schedule, until `deadline`. Datagrams that are not the reply
// are discarded and counted in `dropped`. The channel may carry the next
// request only if this ended with its reply read.
asio::awaitable<Result<Answer>> exchange(Channel& channel, Timebase& time, address_v4 gateway, Stage stage,
                                         Request request, TimePoint deadline, std::uint64_t& dropped) {
  // Only what arrives after the request is sent may answer it: what queued
  // before (duplicates of a retransmitted earlier request, or replies forged
  // from the gateway's address) is stale, and dropped as it comes up. The
  // request goes out at once, however much is queued or keeps coming.
  channel.begin_request();
  const Expected expected{request.opcode, request.internal_port,
                          request.opcode != Opcode::public_address && request.lifetime == 0};
  auto last_sent = time.now();
  if (const auto error = channel.send(request)) co_return error;
  int sends = 1;
  auto wait = std::chrono::duration_cast<TimePoint::duration>(kFirstRetransmission);
  auto next_send = last_sent + wait;
  for (;;) {
    // Time first: a flood of datagrams does not hold off the deadline.
    const auto now = time.now();
    if (now >= deadline) co_return make_error_code(Errc::timed_out);
    if (now >= next_send) {
      if (sends == kMaxSends) co_return make_error_code(Errc::no_gateway_answer);
      if (const auto error = channel.send(request)) co_return error;
      ++sends;
      last_sent = now;
      wait *= 2;
      next_send += wait;
    }

    auto peeked = co_await channel.peek(std::min(next_send, deadline));
    if (!peeked) co_return peeked.error();
    if (!*peeked) continue;
    const Datagram& datagram = **peeked;
    const auto decoded = decode_reply(datagram.bytes, expected);
    // A gateway that answered discovery speaks version 0: an UNSUPP_VERSION
    // now has no nonce to prove it is the gateway's, and would fail requests
    // it can answer.
    const bool forged_refusal =
        decoded && stage == Stage::established && decoded->result_code == kUnsupportedVersion;
    if (datagram.stale || !is_from_server(datagram.source, datagram.source_port, gateway) || !decoded ||
        forged_refusal) {
      channel.discard();
      ++dropped;
      continue;
    }
    if (channel.accept()) co_return Answer{*decoded, last_sent, time.now()};
  }
}

}  // namespace

asio::awaitable<Result<PublicAddressProbe>> probe_public_address(address_v4 gateway,
                                                                 std::chrono::steady_clock::duration max_wait,
                                                                 std::shared_ptr<ChannelFactory> channels,
                                                                 Timebase& time) {
  if (!channels) channels = libnatpmp_channels(co_await asio::this_coro::executor, gateway, time);
  auto opened = channels->open();
  if (!opened) co_return opened.error();
  std::uint64_t dropped = 0;
  auto answer =
      co_await exchange(**opened, time, gateway, Stage::discovery, Request{}, time.now() + max_wait, dropped);
  if (!answer) co_return answer.error();
  const Reply& reply = answer->reply;
  if (reply.result_code != 0) co_return make_natpmp_error(reply.result_code);
  if (reply.external_address.is_unspecified()) co_return make_error_code(Errc::bad_reply);
  co_return PublicAddressProbe{reply.external_address, reply.epoch, answer->received - answer->last_sent,
                               answer->received, dropped};
}

// --- NatpmpMapper -------------------------------------------------------------

// A channel lent out of the pool; given back (or closed) when destroyed.
class NatpmpMapper::Lease {
 public:
  Lease(NatpmpMapper* owner, std::unique_ptr<Channel> channel) : owner_(owner), channel_(std::move(channel)) {}
  Lease(Lease&& other) noexcept = default;
  Lease& operator=(Lease&&) = delete;
  ~Lease() {
    if (channel_) owner_->release(std::move(channel_), reusable_);
  }
  Channel& channel() { return *channel_; }
  // Only after an exchange that ended with its reply read may the next
  // request use this channel; otherwise a late reply could be taken for the
  // next one.
  void set_reusable(bool reusable) { reusable_ = reusable; }

 private:
  NatpmpMapper* owner_;
  std::unique_ptr<Channel> channel_;
  bool reusable_ = false;
};

// Waits for a channel: handed over directly, or a free slot to open one in.
// Queued while it lives, so a coroutine destroyed while suspended leaves no
// dangling pointer behind, and gives back what it was handed and never used.
struct NatpmpMapper::PoolWaiter {
  explicit PoolWaiter(NatpmpMapper& owner) : mapper(owner), wake(owner.executor_, TimePoint::max()) {
    mapper.pool_waiters_.push_back(this);
  }
  ~PoolWaiter() {
    leave();
    if (channel) mapper.release(std::move(channel), true);
    if (slot) mapper.release_slot();
  }
  PoolWaiter(const PoolWaiter&) = delete;
  PoolWaiter& operator=(const PoolWaiter&) = delete;
  void leave() { std::erase(mapper.pool_waiters_, this); }

  NatpmpMapper& mapper;
  asio::steady_timer wake;
  std::unique_ptr<Channel> channel;
  bool slot = false;
};

// Waits for the address request another caller has in flight.
struct NatpmpMapper::AddressWaiter {
  explicit AddressWaiter(NatpmpMapper& owner) : mapper(owner), wake(owner.executor_, TimePoint::max()) {
    mapper.address_waiters_.push_back(this);
  }
  ~AddressWaiter() { std::erase(mapper.address_waiters_, this); }
  AddressWaiter(const AddressWaiter&) = delete;
  AddressWaiter& operator=(const AddressWaiter&) = delete;

  NatpmpMapper& mapper;
  asio::steady_timer wake;
  std::optional<Result<asio::ip::address>> result;
  bool retry = false;  // that request was cancelled: ask again
};

NatpmpMapper::NatpmpMapper(asio::any_io_executor executor, address_v4 gateway, NatpmpMapperOptions options,
                           std::shared_ptr<ChannelFactory> channels, Timebase& time)
    : executor_(std::move(executor)),
      gateway_(gateway),
      options_(options),
      time_(time),
      channels_(channels ? std::move(channels) : libnatpmp_channels(executor_, gateway_, time_)) {
  options_.max_parallel = std::max<std::size_t>(options_.max_parallel, 1);
}

NatpmpMapper::~NatpmpMapper() = default;

asio::awaitable<Result<NatpmpMapper::Lease>> NatpmpMapper::acquire() {
  if (!idle_.empty()) {
    auto channel = std::move(idle_.back());
    idle_.pop_back();
    co_return Lease(this, std::move(channel));
  }
  if (open_sessions_ < options_.max_parallel) {
    ++open_sessions_;
  } else {
    PoolWaiter waiter(*this);
    co_await waiter.wake.async_wait(token);
    waiter.leave();
    if (waiter.channel) co_return Lease(this, std::move(waiter.channel));
    if (!waiter.slot) co_return aborted();
    waiter.slot = false;  // this caller uses it
  }
  auto opened = channels_->open();
  if (!opened) {
    release_slot();
    co_return opened.error();
  }
  co_return Lease(this, std::move(*opened));
}

void NatpmpMapper::release(std::unique_ptr<Channel> channel, bool reusable) {
  if (!reusable) {
    channel.reset();
    release_slot();
    return;
  }
  if (!pool_waiters_.empty()) {
    auto* waiter = pool_waiters_.front();
    pool_waiters_.pop_front();
    waiter->channel = std::move(channel);
    waiter->wake.cancel();
    return;
  }
  idle_.push_back(std::move(channel));
}

void NatpmpMapper::release_slot() {
  if (!pool_waiters_.empty()) {
    auto* waiter = pool_waiters_.front();
    pool_waiters_.pop_front();
    waiter->slot = true;
    waiter->wake.cancel();
    return;
  }
  --open_sessions_;
}

asio::awaitable<Result<Reply>> NatpmpMapper::ask(Request request) {
  auto lease = co_await acquire();
  if (!lease) co_return lease.error();
  auto answer = co_await exchange(lease->channel(), time_, gateway_, Stage::established, request,
                                  time_.now() + options_.max_request_time, dropped_);
  if (!answer) co_return answer.error();
  lease->set_reusable(true);
  note_epoch(answer->reply.epoch, answer->received);
  co_return answer->reply;
}

void NatpmpMapper::note_epoch(std::uint32_t epoch, TimePoint when) {
  last_epoch_ = epoch;
  if (!epoch_.lost_state(epoch, when)) return;
  lost_state_ = true;
  ++lost_state_count_;
  // A gateway that restarted may well have another external address.
  external_ip_.reset();
}

bool NatpmpMapper::take_gateway_lost_state() { return std::exchange(lost_state_, false); }

void NatpmpMapper::adopt_probe(const PublicAddressProbe& probe) {
  note_epoch(probe.epoch, probe.received);
  if (!probe.external_address.is_unspecified()) external_ip_ = asio::ip::address(probe.external_address);
}

Result<asio::ip::address> NatpmpMapper::take_address(const Result<Reply>& reply) {
  if (!reply) return reply.error();
  if (reply->result_code != 0) return make_natpmp_error(reply->result_code);
  if (reply->external_address.is_unspecified()) return make_error_code(Errc::bad_reply);
  return *(external_ip_ = asio::ip::address(reply->external_address));
}

asio::awaitable<Result<GatewayCheck>> NatpmpMapper::check(const Mapping&) {
  const auto reply = co_await ask(Request{});
  const auto address = take_address(reply);
  if (!address) co_return address.error();
  co_return GatewayCheck{take_gateway_lost_state(), *address, std::chrono::seconds(reply->epoch)};
}

void NatpmpMapper::finish_address_request(Result<asio::ip::address> result) {
  address_in_flight_ = false;
  const bool cancelled = !result && result.error() == std::errc::operation_canceled;
  for (auto* waiter : address_waiters_) {
    if (cancelled)
      waiter->retry = true;
    else
      waiter->result = result;
    waiter->wake.cancel();
  }
}

asio::awaitable<Result<asio::ip::address>> NatpmpMapper::external_address() {
  while (!external_ip_ && address_in_flight_) {
    AddressWaiter waiter(*this);
    co_await waiter.wake.async_wait(token);
    if (waiter.result) co_return *waiter.result;
    if (!waiter.retry) co_return aborted();
  }
  if (external_ip_) co_return *external_ip_;

  // This caller asks; the others wait for its answer. The guard wakes them
  // however this coroutine ends (an exception, or destruction while suspended).
  address_in_flight_ = true;
  struct Finish {
    NatpmpMapper* mapper;
    bool done = false;
    ~Finish() {
      if (!done) mapper->finish_address_request(aborted());
    }
  } finish{this};

  const auto result = take_address(co_await ask(Request{}));
  finish.done = true;
  finish_address_request(result);
  co_return result;
}

asio::awaitable<Result<Mapping>> NatpmpMapper::map(MapRequest request) {
  // A NAT-PMP request has no field for another host: the gateway maps for
  // the datagram's source, always (RFC 6886 §3.3).
  if (for_other_device(request)) co_return make_error_code(Errc::third_party_unsupported);
  // Lifetime 0 would be a deletion (§3.4).
  request.lifetime = lease::expiring_lifetime(request.lifetime);
  const auto lifetime = static_cast<std::uint32_t>(
      std::min<std::chrono::seconds::rep>(request.lifetime.count(), std::numeric_limits<std::uint32_t>::max()));

  // The address first: a gateway that cannot say it is not left holding a
  // mapping nobody will use, and a batch shares one address request.
  auto external = co_await external_address();
  if (!external) co_return external.error();

  const Request wire_request{mapping_opcode(request.proto), request.internal_port, request.wanted_external_port,
                             lifetime};
  auto reply = co_await ask(wire_request);
  if (!reply) co_return reply.error();
  if (reply->result_code != 0) co_return make_natpmp_error(reply->result_code);
  const auto requested = std::chrono::seconds(lifetime);
  if (lease::needs_confirmation(requested, std::chrono::seconds(reply->lifetime))) {
    // Any LAN host can forge a reply from the gateway's address, and this
    // one claims far more than was asked: the gateway's answer to the same
    // request again is the one believed.
    reply = co_await ask(wire_request);
    if (!reply) co_return reply.error();
    if (reply->result_code != 0) co_return make_natpmp_error(reply->result_code);
  }
  co_return Mapping{std::move(request), *external, reply->external_port,
                    lease::scheduled_lease(requested, std::chrono::seconds(reply->lifetime)), false};
}

asio::awaitable<std::error_code> NatpmpMapper::unmap(Mapping mapping) {
  // Never made (see map): deleting it would delete this host's own mapping of that port.
  if (for_other_device(mapping.request)) co_return make_error_code(Errc::third_party_unsupported);
  // Lifetime 0 and suggested port 0 delete (§3.4).
  const auto reply = co_await ask({mapping_opcode(mapping.request.proto), mapping.request.internal_port, 0, 0});
  if (!reply) co_return reply.error();
  if (reply->result_code != 0) co_return make_natpmp_error(reply->result_code);
  co_return std::error_code{};
}

}  // namespace natkeeper::natpmp
