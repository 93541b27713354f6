#pragma once
// PCP (RFC 6887) client logic without I/O: the caller feeds it datagrams and
// the time, and sends what it asks to send. One instance talks to one server.
// Deterministic for a given seed, so tests drive it with virtual time.
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/address_v6.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "mappers/epoch.hpp"
#include "mappers/pcp/pcp_codec.hpp"
#include "mappers/pcp/pcp_refusals.hpp"
#include "mappers/transport.hpp"

namespace natkeeper::pcp {

using Clock = std::chrono::steady_clock;

struct ClientOptions {
  boost::asio::ip::address_v4 client_address;  // this host, sent IPv4-mapped
  boost::asio::ip::address_v4 server_address;   // the gateway
  std::uint32_t seed = 0;                        // nonces and retransmission jitter
  // RFC 6887 §8.1.1 retransmits forever (MRC = MRD = 0); a caller that must
  // finish bounds each request's total time here.
  std::chrono::milliseconds max_request_duration{10'000};
  // The nonce of an (internal client, proto, internal port) mapping; the
  // internal client is `client_address` unless a third party is named.
  // Unset: random from `seed`, which only this Client instance can renew or
  // delete. A caller whose mappings must outlive the process derives stable,
  // secret nonces instead.
  std::function<Nonce(const boost::asio::ip::address_v4& internal_client, Transport, std::uint16_t)> nonce_for;
};

using RequestId = std::uint64_t;

struct MapResult {
  Transport proto = Transport::udp;
  std::uint16_t internal_port = 0;
  std::uint16_t external_port = 0;
  boost::asio::ip::address external_address;  // IPv4 when the server sent a mapped address
  std::chrono::seconds lifetime{0};
};

// What happened to a request.
struct Completion {
  RequestId id = 0;
  // Success: `map` holds the granted mapping (for ANNOUNCE: nullopt).
  // Failure: a pcp_category() code (the server's result code; its
  // `error_lifetime` says how long the error holds), Errc::timed_out,
  // Errc::nothing_granted (SUCCESS with lifetime 0 to a MAP that asked for
  // more), or, for ANNOUNCE only, unsupported_version when the server speaks
  // only NAT-PMP or PCPv1.
  std::error_code error;
  std::optional<MapResult> map;
  std::chrono::seconds error_lifetime{0};
  std::uint32_t epoch = 0;
};

enum class DropReason { wrong_source, malformed, unexpected, nonce_mismatch };

class Client {
 public:
  explicit Client(ClientOptions options);

  // Starts a MAP request: new, renewal, or deletion (lifetime 0), for this
  // host or, with `third_party`, for that other device (RFC 6887 §13.1: the
  // request carries a THIRD_PARTY option; none when `third_party` is this
  // host's own address). The same (internal client, proto, internal port)
  // keeps its nonce (options.nonce_for, or random) for the life of this
  // client, as renewals and deletes must use the nonce of the mapping they
  // refer to. A request the server refused with an error lifetime that has
  // not passed yet (see Refusals) is not sent: it completes at once with that
  // error and what is left of the lifetime.
  RequestId map(Transport proto, std::uint16_t internal_port, std::uint16_t suggested_external_port,
                std::chrono::seconds lifetime, Clock::time_point now,
                std::optional<boost::asio::ip::address_v4> third_party = std::nullopt);
  // Starts an ANNOUNCE request (discovery: does the gateway speak PCP?).
  RequestId announce(Clock::time_point now);
  // Stops retransmitting a request; no completion is reported for it.
  void cancel(RequestId id);

  // A datagram arrived from `source` (address and port) on the client socket.
  void on_datagram(std::span<const std::uint8_t> bytes, const boost::asio::ip::address& source,
                   std::uint16_t source_port, Clock::time_point now);
  // Time has reached `now`: retransmit or give up what is due.
  void on_time(Clock::time_point now);

  // Datagrams to send to the server's port 5351, oldest first.
  std::vector<std::vector<std::uint8_t>> take_outgoing();
  std::vector<Completion> take_completions();
  // When on_time must next be called; nullopt when nothing is pending.
  std::optional<Clock::time_point> next_wakeup() const;
  // True once since the last call when a valid response's epoch showed the
  // server lost its state (RFC 6887 §8.5): every mapping must be re-requested.
  bool take_server_lost_state();

  std::uint64_t dropped(DropReason reason) const;
  std::uint64_t dropped_total() const;
  std::size_t pending() const;

 private:
  struct Pending {
    Opcode opcode = Opcode::map;
    std::vector<std::uint8_t> datagram;  // sent as is on every retransmission
    // MAP only: what a response must echo (RFC 6887 §11.4) with the nonce,
    // and what a refusal is remembered by.
    Nonce nonce{};
    MapRequestKey key;
    bool deletion() const { return key.lifetime == 0; }
    Clock::time_point next_send;
    Clock::time_point deadline;  // Clock::time_point::max(): unbounded
    double rt_seconds = 0;       // RT of the last transmission (§8.1.1)
  };

  RequestId start(Pending request, Clock::time_point now);
  double next_rand();  // RAND of §8.1.1: uniform in [-0.1, +0.1]
  Nonce new_nonce();
  void complete(RequestId id, const Pending& request, const Response& response, Clock::time_point now);
  void note_epoch(const Response& response, Clock::time_point now);
  void drop(DropReason reason);

  ClientOptions options_;
  std::mt19937 random_;
  EpochTracker epochs_;
  std::map<std::tuple<boost::asio::ip::address_v4, Transport, std::uint16_t>, Nonce> nonces_;
  std::map<RequestId, Pending> pending_;  // in start order
  Refusals refusals_;
  RequestId next_id_ = 1;
  std::deque<std::vector<std::uint8_t>> outgoing_;
  std::vector<Completion> completions_;
  bool server_lost_state_ = false;
  std::array<std::uint64_t, 4> dropped_{};  // by DropReason
};

}  // namespace natkeeper::pcp
