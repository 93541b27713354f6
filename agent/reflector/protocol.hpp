#pragma once
// natkeeper-reflector wire protocol, version 1: a pure codec shared by the
// reflector (agent/reflector/server.*) and natkeeper's verifier. Bytes in,
// structs out; no I/O, no exceptions (parse_key allocates and may throw
// std::bad_alloc, nothing else does).
//
// Every message starts with the same 24-byte header; integers are big-endian.
// The exchange, over UDP:
//
//   client                                    reflector
//   REQUEST (cookie all zero)         ---->
//                                     <----   COOKIE (observed source, cookie)
//   REQUEST (cookie echoed)           ---->
//                                     <----   RESULT (status, observed source)
//   client's public address:target    <----   PROBE (token), from another port
//
// Over TCP each message is preceded by a 2-byte length; one REQUEST (its
// cookie is ignored: the handshake proved the source) gets one RESULT on the
// same connection, which the reflector then closes. man natkeeper-reflector(8)
// documents the protocol for other clients.
//
// A client (the verifier):
//   1. encode_request({token, transport, port}, key) and send it;
//   2. decode_reply(): COOKIE → encode_request again with reply.cookie;
//      RESULT → reply.status (Status::sent: expect the probe);
//   3. on the mapped internal port, decode_probe() and compare the token.
// A handshake request (ProbeKind::handshake, TCP only) instead asks the
// reflector to connect to <source IP>:target and to say in its RESULT, sent
// when the attempt ends, whether the handshake completed: the way to prove a
// mapping for another LAN device, whose probes this host never sees.
#include <boost/asio/ip/address.hpp>
#include <boost/system/result.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "mappers/transport.hpp"

namespace natkeeper::reflector {

// --- Protocol constants -----------------------------------------------------

inline constexpr std::array<std::uint8_t, 4> kMagic{'N', 'K', 'R', 'F'};
inline constexpr std::uint8_t kProtocolVersion = 1;
inline constexpr std::uint16_t kDefaultPort = 7000;  // unprivileged: the reflector needs no capability

inline constexpr std::size_t kTokenSize = 16;
inline constexpr std::size_t kCookieSize = 32;    // HMAC-SHA256, whole
inline constexpr std::size_t kAuthTagSize = 16;   // HMAC-SHA256, first 16 bytes
inline constexpr std::size_t kAddressSize = 16;   // IPv6, or IPv4-mapped IPv6 (::ffff:a.b.c.d)
inline constexpr std::size_t kSecretSize = 32;    // the reflector's cookie secret

// A cookie is valid in the 30-second slot it was made in and the next one.
inline constexpr std::chrono::seconds kCookieSlot{30};

// A pre-shared key is 16 to 1024 bytes (the key file's text, trimmed).
inline constexpr std::size_t kMinKeySize = 16;
inline constexpr std::size_t kMaxKeySize = 1024;

enum class MessageType : std::uint8_t { request = 1, cookie = 2, result = 3, probe = 4 };

// What a request asks for (request byte 25; reserved, hence zero, before
// handshakes were added: a reflector that predates them drops a handshake
// request without a reply).
enum class ProbeKind : std::uint8_t {
  deliver = 0,    // send the probe; the client sees it arrive (or not)
  handshake = 1,  // TCP only: connect, write nothing, report the outcome in the RESULT
};

// RESULT status. The underlying byte can hold any value a newer reflector
// sends; a client treats an unknown status as a failure.
enum class Status : std::uint8_t {
  sent = 0,          // the probe was sent (for TCP: a connect was started; nothing more is said)
  rate_limited = 1,  // this source, or the reflector as a whole, is over its rate
  auth_failed = 2,   // the reflector wants a pre-shared key and the tag is missing or wrong
  bad_request = 3,   // probe transport neither 6 nor 17, or target port 0
  busy = 4,          // too many TCP probes in flight; try again later
  // The outcome of a handshake request, never of a delivered probe:
  connected = 5,     // the TCP handshake completed
  refused = 6,       // answered with a reset (by the target, or by any router on the way)
  no_answer = 7,     // no answer within the probe's time, or unreachable
};
std::string_view to_string(Status status) noexcept;

// --- Field offsets and sizes (from the start of the message) ----------------

namespace header {
inline constexpr std::size_t kMagic = 0;     // 4 bytes "NKRF"
inline constexpr std::size_t kVersion = 4;   // 1
inline constexpr std::size_t kType = 5;      // MessageType
inline constexpr std::size_t kReserved = 6;  // 16 bits, zero
inline constexpr std::size_t kToken = 8;     // 16 bytes, chosen by the client, echoed
inline constexpr std::size_t kSize = 24;
}  // namespace header

namespace request {
inline constexpr std::size_t kTransport = 24;   // 6 TCP or 17 UDP: how to probe
inline constexpr std::size_t kKind = 25;        // ProbeKind
inline constexpr std::size_t kTargetPort = 26;  // 16 bits: the probe goes to <source IP>:this
inline constexpr std::size_t kCookie = 28;      // 32 bytes; zero when the client has none
inline constexpr std::size_t kAuthTag = 60;     // 16 bytes; zero when there is no key
inline constexpr std::size_t kAuthenticatedSize = 60;  // the tag covers bytes [0, 60)
inline constexpr std::size_t kSize = 76;
// A client may pad a request with zero bytes up to this size.
inline constexpr std::size_t kMaxSize = 512;
}  // namespace request

namespace cookie_reply {
inline constexpr std::size_t kObservedAddress = 24;  // 16 bytes
inline constexpr std::size_t kObservedPort = 40;     // 16 bits
inline constexpr std::size_t kReserved = 42;         // 16 bits, zero
inline constexpr std::size_t kCookie = 44;           // 32 bytes
inline constexpr std::size_t kSize = 76;
}  // namespace cookie_reply

namespace result_reply {
inline constexpr std::size_t kStatus = 24;           // Status
inline constexpr std::size_t kReserved = 25;         // zero
inline constexpr std::size_t kObservedAddress = 26;  // 16 bytes
inline constexpr std::size_t kObservedPort = 42;     // 16 bits
inline constexpr std::size_t kReserved2 = 44;        // 16 bits, zero
inline constexpr std::size_t kSize = 46;
}  // namespace result_reply

namespace probe {
inline constexpr std::size_t kSize = header::kSize;  // the header alone, type 4
}

// TCP: every message is preceded by its length, 16 bits.
inline constexpr std::size_t kFrameLengthSize = 2;

// No reply is larger than the smallest request: over UDP the reflector
// cannot amplify.
static_assert(cookie_reply::kSize <= request::kSize);
static_assert(result_reply::kSize <= request::kSize);
static_assert(probe::kSize <= request::kSize);

// --- Types ------------------------------------------------------------------

using Token = std::array<std::uint8_t, kTokenSize>;
using Cookie = std::array<std::uint8_t, kCookieSize>;
using AuthTag = std::array<std::uint8_t, kAuthTagSize>;
using Secret = std::array<std::uint8_t, kSecretSize>;

// An address and port as the reflector saw them. IPv4 travels IPv4-mapped
// and is decoded back to an address_v4.
struct Source {
  boost::asio::ip::address address;
  std::uint16_t port = 0;
  friend bool operator==(const Source&, const Source&) = default;
};

enum class DecodeError {
  too_short = 1,     // shorter than the message type's size
  too_long,          // a request over request::kMaxSize, or a reply/probe longer than its size
  bad_magic,         // not "NKRF"
  bad_version,       // not version 1
  wrong_type,        // not the type(s) this decoder accepts
  nonzero_reserved,  // a request with its header's reserved field set
  nonzero_padding,   // a request padded with something other than zero bytes
};
std::string_view to_string(DecodeError error) noexcept;

// --- Client side: requests out, replies and probes in -------------------------

struct RequestFields {
  Token token{};
  Transport transport = Transport::udp;
  std::uint16_t target_port = 0;  // the mapping's external port
  Cookie cookie{};                // zero on the first try; then the COOKIE reply's
  ProbeKind kind = ProbeKind::deliver;
};

using RequestBytes = std::array<std::uint8_t, request::kSize>;
using TcpRequestBytes = std::array<std::uint8_t, kFrameLengthSize + request::kSize>;

// A 76-byte REQUEST. With a non-empty `key` the auth tag is filled in;
// without one it stays zero.
RequestBytes encode_request(const RequestFields& fields, std::span<const std::uint8_t> key = {}) noexcept;
// The same, framed for TCP: 2-byte length 76, then the request.
TcpRequestBytes encode_tcp_request(const RequestFields& fields, std::span<const std::uint8_t> key = {}) noexcept;

// A COOKIE or RESULT reply.
struct Reply {
  MessageType type = MessageType::result;  // cookie or result
  Token token{};
  Source observed;                          // the request's source as the reflector saw it
  Cookie cookie{};                          // COOKIE: echo this in the next request
  Status status = Status::sent;             // RESULT
};
using ReplyResult = boost::system::result<Reply, DecodeError>;
// Accepts exactly a 76-byte COOKIE or a 46-byte RESULT (over TCP: the frame's
// contents, without the length). Reserved fields are ignored. The caller
// compares reply->token with its own.
ReplyResult decode_reply(std::span<const std::uint8_t> message) noexcept;

using ProbeResult = boost::system::result<Token, DecodeError>;
// Accepts exactly a 24-byte PROBE (a UDP datagram, or the 24 bytes a TCP
// probe writes); gives its token.
ProbeResult decode_probe(std::span<const std::uint8_t> message) noexcept;

// --- Reflector side: requests in, replies and probes out -----------------------

struct Request {
  Token token{};
  std::uint8_t transport = 0;  // as sent; see probe_transport()
  std::uint8_t kind = 0;       // as sent; see probe_kind()
  std::uint16_t target_port = 0;
  Cookie cookie{};
  AuthTag auth_tag{};
  std::size_t size = 0;        // with padding
};
using RequestResult = boost::system::result<Request, DecodeError>;
// Accepts a REQUEST of 76 to 512 bytes: magic, version 1, type 1, reserved
// field and padding zero. The transport, kind and port are not judged here.
RequestResult decode_request(std::span<const std::uint8_t> message) noexcept;
// TCP or UDP when the request names one of them, nothing otherwise.
std::optional<Transport> probe_transport(const Request& request) noexcept;
// A kind this codec knows, nothing otherwise.
std::optional<ProbeKind> probe_kind(const Request& request) noexcept;

using CookieBytes = std::array<std::uint8_t, cookie_reply::kSize>;
using ResultBytes = std::array<std::uint8_t, result_reply::kSize>;
using TcpResultBytes = std::array<std::uint8_t, kFrameLengthSize + result_reply::kSize>;
using ProbeBytes = std::array<std::uint8_t, probe::kSize>;

CookieBytes encode_cookie(const Token& token, const Source& observed, const Cookie& cookie) noexcept;
ResultBytes encode_result(const Token& token, Status status, const Source& observed) noexcept;
TcpResultBytes encode_tcp_result(const Token& token, Status status, const Source& observed) noexcept;
ProbeBytes encode_probe(const Token& token) noexcept;

// --- TCP framing --------------------------------------------------------------

std::array<std::uint8_t, kFrameLengthSize> encode_frame_length(std::uint16_t length) noexcept;
std::uint16_t decode_frame_length(std::span<const std::uint8_t, kFrameLengthSize> bytes) noexcept;

// --- Authentication (pre-shared key) --------------------------------------------

// HMAC-SHA256 under `key` of the request's first 60 bytes, cut to 16 bytes.
// `request` must hold at least 60 bytes (an all-zero tag otherwise).
AuthTag compute_auth_tag(std::span<const std::uint8_t> key, std::span<const std::uint8_t> request) noexcept;
// The tag at request::kAuthTag is the one `key` gives; compared in constant
// time. False when `request` is shorter than request::kSize.
bool auth_tag_valid(std::span<const std::uint8_t> request, std::span<const std::uint8_t> key) noexcept;

// A key file's contents → the key: leading and trailing whitespace removed,
// kMinKeySize..kMaxKeySize bytes left, used as they are (not hex-decoded).
std::optional<std::vector<std::uint8_t>> parse_key(std::string_view text);

// --- Cookies (stateless, reflector only) ----------------------------------------

// The 30-second slot `now` falls in: seconds since the Unix epoch / 30.
std::uint64_t cookie_slot(std::chrono::system_clock::time_point now) noexcept;
// HMAC-SHA256 under `secret` of: slot (64 bits) | source address (16 bytes,
// IPv4-mapped for IPv4) | source port (16 bits).
Cookie make_cookie(const Secret& secret, const Source& source, std::uint64_t slot) noexcept;
// `cookie` was made for `source` in slot `current_slot` or the one before;
// compared in constant time.
bool cookie_valid(const Secret& secret, const Source& source, const Cookie& cookie,
                  std::uint64_t current_slot) noexcept;

// --- Addresses ------------------------------------------------------------------

// An IPv4-mapped IPv6 address (from a dual-stack socket) as IPv4; others as they are.
boost::asio::ip::address normalized(const boost::asio::ip::address& address) noexcept;

}  // namespace natkeeper::reflector
