#pragma once
// NAT-PMP (RFC 6886) requests and replies as a pure codec: bytes in, struct
// out, no I/O, never throws. libnatpmp builds and sends the requests (the
// request codec is the reference its bytes are checked against, and what test
// gateways parse); it does not check the length, opcode or internal port of
// what comes back, so every datagram is checked here before libnatpmp is
// allowed to read it.
#include <boost/asio/ip/address_v4.hpp>
#include <boost/system/result.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "mappers/transport.hpp"

namespace natkeeper::natpmp {

inline constexpr std::uint16_t kServerPort = 5351;  // §3.1: the gateway listens here only

inline constexpr std::uint8_t kVersion = 0;
inline constexpr std::uint8_t kReplyBit = 128;  // reply opcode = request opcode + 128

// Why a datagram is not the reply to the pending request, or not a request.
enum class DecodeError : std::uint8_t {
  length,            // not exactly the size its opcode has (replies: 12 public address, 16 mapping)
  version,           // version byte not 0
  opcode,            // a reply: not request opcode + 128 (includes a UDP reply to a TCP request);
                     // a request: not a known opcode
  internal_port,     // a mapping reply for another internal port
  inconsistent,      // success reply whose lifetime/port contradict the request kind
  nonzero_reserved,  // a mapping request whose reserved field is set
};
std::string_view to_string(DecodeError error);

// Use `*result` / `result->` after checking; `.value()` is not available for
// this error type.
template <class T>
using DecodeResult = boost::system::result<T, DecodeError>;

enum class Opcode : std::uint8_t { public_address = 0, map_udp = 1, map_tcp = 2 };
Opcode mapping_opcode(Transport proto);

// A request (§3.2, §3.3). Public address requests carry the opcode only.
struct Request {
  Opcode opcode = Opcode::public_address;
  std::uint16_t internal_port = 0;
  std::uint16_t suggested_external_port = 0;  // 0: no preference; with lifetime 0 a deletion (§3.4)
  std::uint32_t lifetime = 0;                  // seconds; 0 deletes
  bool operator==(const Request&) const = default;
};

inline constexpr std::size_t kPublicAddressRequestSize = 2;
inline constexpr std::size_t kMappingRequestSize = 12;

std::vector<std::uint8_t> encode_request(const Request& request);
// Accepts exactly a request of a known opcode with a zero reserved field; a
// public address request's port and lifetime are 0.
DecodeResult<Request> decode_request(std::span<const std::uint8_t> datagram) noexcept;

// Exact sizes (§3.2, §3.3): a reply of any other length is not one.
inline constexpr std::size_t kPublicAddressReplySize = 12;
inline constexpr std::size_t kMappingReplySize = 16;
std::size_t reply_size(Opcode request);

// What the pending request makes acceptable as its reply.
struct Expected {
  Opcode opcode = Opcode::public_address;
  // Mapping requests only: the reply echoes the internal port (§3.3).
  std::uint16_t internal_port = 0;
  // Mapping requests only: true for a deletion (requested lifetime 0, §3.4).
  // A successful deletion reply carries lifetime 0, a successful creation a
  // non-zero lifetime and external port; the other kind is a stale reply to
  // an earlier request for the same port, not this one's.
  bool deletion = false;
};

struct Reply {
  Opcode opcode = Opcode::public_address;  // of the request it answers
  std::uint16_t result_code = 0;           // §3.5: 0 success, 1..5 errors, others unknown
  std::uint32_t epoch = 0;                 // seconds since start of epoch (§3.6)
  // Public address replies with result 0 (otherwise undefined, §3.2).
  boost::asio::ip::address_v4 external_address;
  // Mapping replies. External port and lifetime are meaningful for result 0.
  std::uint16_t internal_port = 0;
  std::uint16_t external_port = 0;
  std::uint32_t lifetime = 0;
};

DecodeResult<Reply> decode_reply(std::span<const std::uint8_t> datagram, const Expected& expected) noexcept;

// §3.1: only the gateway's port 5351 answers; anything else is dropped.
bool is_from_server(const boost::asio::ip::address_v4& source, std::uint16_t source_port,
                    const boost::asio::ip::address_v4& gateway) noexcept;

}  // namespace natkeeper::natpmp
