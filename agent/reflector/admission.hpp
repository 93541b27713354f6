#pragma once
// The reflector's admission rules without I/O: a request, where it came from
// and the time in; what to answer and what to probe out. The server's sockets
// receive, ask decide(), and do what the decision says.
//
//   - over UDP nothing but a COOKIE goes to a source until it echoes a valid
//     cookie, which proves its address (over TCP the handshake proved it);
//   - a request that proves its source is charged to the proven budget, one
//     that does not to the unproven one, so forged requests cannot use up
//     what proven clients are allowed (see Budget);
//   - a request over its source's rate or the global rate gets RESULT
//     rate_limited (over UDP only with a valid cookie, otherwise nothing);
//   - with a pre-shared key, a request without the right tag gets auth_failed;
//   - a probe goes only to the request's own source address;
//   - a TCP probe needs a slot: the total and its source's /24 or /48 are capped;
//   - a handshake request (TCP only) gets its RESULT when the connection
//     attempt ends, saying how it ended;
//   - no reply is larger than the request.
#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "agent/reflector/protocol.hpp"
#include "agent/reflector/rate_limit.hpp"
#include "mappers/transport.hpp"

namespace natkeeper::reflector {

// A request as it arrived: a UDP datagram, or a TCP frame's contents.
struct Arrival {
  std::span<const std::uint8_t> bytes;
  boost::asio::ip::address address;  // its source, as the socket gave it
  std::uint16_t port = 0;
  Transport via = Transport::udp;
};

// The time on both clocks admission reads: the steady one for the rate
// buckets, the system one for the cookies' slots.
struct Now {
  Clock::time_point steady;
  std::chrono::system_clock::time_point system;
};

// A probe to send: a UDP datagram, or a TCP connection that writes `message`;
// for a handshake, a TCP connection that writes nothing.
struct ProbeOrder {
  Transport transport = Transport::udp;
  ProbeKind kind = ProbeKind::deliver;
  boost::asio::ip::address address;  // the request's source, as the socket gave it
  std::uint16_t port = 0;            // the request's target port
  ProbeBytes message{};
};

struct Decision {
  enum class Verdict {
    oversized,     // dropped: longer than request::kMaxSize
    malformed,     // dropped: not a request, or from port 0
    rate_limited,  // over the source's or the global rate
    cookie,        // over UDP without a valid cookie
    auth_failed,   // a key is required and the tag is missing or wrong
    bad_request,   // probe transport neither TCP nor UDP, unknown kind, a UDP handshake, or target port 0
    busy,          // a TCP probe, and as many in flight as allowed, in all or from the source's prefix
    probe,         // send `probe`, then the RESULT
    handshake,     // connect as `probe` says; the RESULT, once that ends, says how
  };
  Verdict verdict = Verdict::malformed;
  // A COOKIE or a RESULT for the request's source. When the probe cannot be
  // sent after all (the kernel refuses it), the RESULT says busy instead.
  // For a handshake, the RESULT to send when it ends, with its outcome as the
  // status.
  std::optional<Reply> reply;
  std::optional<ProbeOrder> probe;  // with Verdict::probe only
};

// The rate a request is charged to: a token from its source's bucket, then
// one from all sources' (so a source over its rate costs the others nothing).
// A proven request's source is its rate_key; an unproven one's its
// endpoint_key, as a forger may use any address but cannot receive there.
struct Budget {
  SourceLimiter per_source;
  TokenBucket global;
};

class Admission {
 public:
  // `key`: the pre-shared key, empty when none is required. `secret` makes
  // the cookies. `proven` takes requests over TCP and requests with a valid
  // cookie: their sources have shown they receive at their address, which no
  // forger can, so no forged request is charged to it. `unproven` takes the
  // others, which get at most a COOKIE.
  Admission(std::vector<std::uint8_t> key, const Secret& secret, Budget proven, Budget unproven);

  // `tcp_probes`: the TCP probes started and not yet ended.
  Decision decide(const Arrival& arrival, const Now& now, const SlotCounts& tcp_probes);

 private:
  std::vector<std::uint8_t> key_;
  Secret secret_;
  Budget proven_;
  Budget unproven_;
};

}  // namespace natkeeper::reflector
