#pragma once
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/address_v4.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "mappers/epoch.hpp"
#include "mappers/mapper.hpp"
#include "mappers/natpmp/natpmp_channel.hpp"

namespace natkeeper::natpmp {

struct NatpmpMapperOptions {
  // How many requests may be in flight at once; each has its own channel
  // (natpmp_t and socket), which carries one request at a time. Further map()
  // and unmap() calls wait for a free one, first come first served.
  std::size_t max_parallel = 8;
  // Bound on one request, retransmissions included, reported as
  // Errc::timed_out. RFC 6886 §3.1's schedule (250 ms doubling, 9 tries)
  // gives up after 127.75 s with Errc::no_gateway_answer.
  std::chrono::milliseconds max_request_time{130'000};
};

// What the gateway said to one public address request (discovery).
struct PublicAddressProbe {
  asio::ip::address_v4 external_address;
  std::uint32_t epoch = 0;
  std::chrono::steady_clock::duration round_trip{};  // from the first send to the reply
  std::chrono::steady_clock::time_point received{};  // when the reply was read
  std::uint64_t dropped = 0;                          // invalid datagrams discarded meanwhile
};

// Asks `gateway` for its external address once (RFC 6886 §3.2), on the
// calling coroutine's executor; gives up after `max_wait` with
// Errc::timed_out, or earlier with Errc::no_gateway_answer (ICMP port
// unreachable, or nine tries unanswered). A non-zero result code is returned
// as make_natpmp_error(code). Cancellable. Unset, `channels` are libnatpmp's
// and `time` the system's.
asio::awaitable<Result<PublicAddressProbe>> probe_public_address(
    asio::ip::address_v4 gateway,
    std::chrono::steady_clock::duration max_wait = std::chrono::milliseconds(130'000),
    std::shared_ptr<ChannelFactory> channels = {}, Timebase& time = system_timebase());

// NAT-PMP (RFC 6886), by default through libnatpmp. Every reply is validated
// by the codec (natpmp_codec.hpp) before it is read; invalid datagrams are
// discarded and counted. The mapper must outlive its operations; like the rest
// of the agent it runs on one single-threaded executor. Unset, `channels` are
// libnatpmp's and `time` the system's.
class NatpmpMapper final : public Mapper {
 public:
  NatpmpMapper(asio::any_io_executor executor, asio::ip::address_v4 gateway,
               NatpmpMapperOptions options = {}, std::shared_ptr<ChannelFactory> channels = {},
               Timebase& time = system_timebase());
  ~NatpmpMapper() override;
  NatpmpMapper(const NatpmpMapper&) = delete;
  NatpmpMapper& operator=(const NatpmpMapper&) = delete;

  Method method() const override { return Method::natpmp; }
  // Asked once (opcode 0) and cached; concurrent callers share one request.
  // A gateway that lost its state (epoch) is asked again.
  asio::awaitable<Result<asio::ip::address>> external_address() override;
  // Mapping request with suggested external port = wanted port and requested
  // lifetime = request.lifetime (must be positive: 0 would delete). Result
  // codes come back as make_natpmp_error(code): 2 is MapFailure::not_authorized,
  // 4 MapFailure::table_full.
  asio::awaitable<Result<Mapping>> map(MapRequest request) override;
  // Lifetime 0 for the internal port (§3.4). NAT-PMP has no "no such mapping"
  // code: a gateway answers success for a mapping it does not have, and it
  // deletes only the requesting host's mappings.
  asio::awaitable<std::error_code> unmap(Mapping mapping) override;

  // Takes over a discovery probe's answer: caches its address, feeds its epoch.
  void adopt_probe(const PublicAddressProbe& probe);
  // One public address request (opcode 0): its epoch shows a restart, and
  // its address replaces the cached one (RFC 6886 §3.2.1: what a notice on
  // 224.0.0.1:5350 claims, asked of the gateway itself).
  asio::awaitable<Result<GatewayCheck>> check(const Mapping& sample) override;

  // Datagrams that reached a channel and were discarded: wrong length,
  // version, opcode, port or source, or stale replies to an earlier request.
  // (With libnatpmp datagrams from anywhere but gateway:5351 never arrive:
  // its sockets are connected.)
  std::uint64_t dropped() const override { return dropped_; }
  // True once after a reply's epoch showed the gateway lost its mappings
  // (RFC 6886 §3.6): every mapping must be requested again.
  bool take_gateway_lost_state() override;
  std::uint64_t gateway_lost_state_count() const { return lost_state_count_; }
  std::optional<std::uint32_t> last_epoch() const { return last_epoch_; }
  // Channels (natpmp_t and socket) open now, idle or busy.
  std::size_t open_sessions() const { return open_sessions_; }

 private:
  class Lease;
  struct PoolWaiter;
  struct AddressWaiter;

  asio::awaitable<Result<Lease>> acquire();
  // One request on a channel of the pool; the reply's epoch is noted.
  asio::awaitable<Result<Reply>> ask(Request request);
  void release(std::unique_ptr<Channel> channel, bool reusable);
  void release_slot();
  void note_epoch(std::uint32_t epoch, TimePoint when);
  void finish_address_request(Result<asio::ip::address> result);
  // A public address reply's address, cached; or why it has none.
  Result<asio::ip::address> take_address(const Result<Reply>& reply);

  asio::any_io_executor executor_;
  asio::ip::address_v4 gateway_;
  NatpmpMapperOptions options_;
  Timebase& time_;
  std::shared_ptr<ChannelFactory> channels_;

  std::vector<std::unique_ptr<Channel>> idle_;
  std::size_t open_sessions_ = 0;  // idle, lent out, or promised to a waiter
  std::deque<PoolWaiter*> pool_waiters_;

  std::optional<asio::ip::address> external_ip_;
  bool address_in_flight_ = false;
  std::deque<AddressWaiter*> address_waiters_;

  EpochTracker epoch_;
  std::optional<std::uint32_t> last_epoch_;
  bool lost_state_ = false;
  std::uint64_t lost_state_count_ = 0;
  std::uint64_t dropped_ = 0;
};

}  // namespace natkeeper::natpmp
