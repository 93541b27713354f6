#pragma once
// PCP (RFC 6887) wire format for IPv4 mappings: a pure codec. Bytes in,
// structs out; no I/O, no exceptions, no heap allocation.
//
// Every message starts with a 24-byte common header (§7.1 requests, §7.2
// responses), followed by the opcode-specific body (§11.1 MAP) and then
// options (§7.3). Multi-byte fields are in network byte order; addresses are
// always 128 bits, an IPv4 address travelling IPv4-mapped (::ffff:a.b.c.d).
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/address_v6.hpp>
#include <boost/system/result.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "mappers/transport.hpp"

namespace natkeeper::pcp {

// --- Protocol constants -----------------------------------------------------

inline constexpr std::uint8_t kProtocolVersion = 2;  // §7: this document is version 2
inline constexpr std::uint8_t kNatPmpVersion = 0;    // RFC 6886: what a NAT-PMP-only server speaks
inline constexpr std::uint16_t kServerPort = 5351;         // §19.1: requests go here
inline constexpr std::uint16_t kClientAnnouncePort = 5350;  // §14.1.1: unsolicited ANNOUNCE
inline constexpr std::size_t kMaxMessageSize = 1100;      // §7: no message is longer
inline constexpr std::size_t kMessageAlignment = 4;        // §7: lengths are multiples of 4

// The second byte of every message: R bit (response) and 7-bit opcode.
inline constexpr std::uint8_t kResponseBit = 0x80;
inline constexpr std::uint8_t kOpcodeMask = 0x7f;

inline constexpr std::size_t kNonceSize = 12;    // §11.1 Mapping Nonce: 96 bits
inline constexpr std::size_t kAddressSize = 16;  // every address field: 128 bits

enum class Opcode : std::uint8_t { announce = 0, map = 1, peer = 2 };

// §7.4. The underlying byte can hold any value a server sends.
enum class ResultCode : std::uint8_t {
  success = 0,
  unsupp_version = 1,
  not_authorized = 2,
  malformed_request = 3,
  unsupp_opcode = 4,
  unsupp_option = 5,
  malformed_option = 6,
  network_failure = 7,
  no_resources = 8,
  unsupp_protocol = 9,
  user_ex_quota = 10,
  cannot_provide_external = 11,
  address_mismatch = 12,
  excessive_remote_peers = 13,
};
inline constexpr std::uint8_t kMaxKnownResultCode = 13;

// --- Field offsets and sizes ------------------------------------------------
// Header offsets are from the start of the message; body offsets are from the
// start of the body, which begins at request_header::kSize (== response_header::kSize).

namespace request_header {  // §7.1
inline constexpr std::size_t kVersion = 0;
inline constexpr std::size_t kROpcode = 1;
inline constexpr std::size_t kReserved = 2;  // 16 bits, zero
inline constexpr std::size_t kReservedSize = 2;
inline constexpr std::size_t kLifetime = 4;  // 32 bits, requested lifetime in seconds
inline constexpr std::size_t kClientAddress = 8;  // 128 bits
inline constexpr std::size_t kSize = 24;
}  // namespace request_header

namespace response_header {  // §7.2
inline constexpr std::size_t kVersion = 0;
inline constexpr std::size_t kROpcode = 1;
inline constexpr std::size_t kReserved = 2;  // 8 bits
inline constexpr std::size_t kResultCode = 3;  // 8 bits
inline constexpr std::size_t kLifetime = 4;  // 32 bits: granted lifetime, or how long an error holds
inline constexpr std::size_t kEpoch = 8;  // 32 bits: server's Epoch Time (§8.5)
inline constexpr std::size_t kReserved2 = 12;  // 96 bits, zero
inline constexpr std::size_t kReserved2Size = 12;
inline constexpr std::size_t kSize = 24;
}  // namespace response_header

namespace map_body {  // §11.1 (request) and §11.2 (response) share one layout
inline constexpr std::size_t kNonce = 0;  // 96 bits
inline constexpr std::size_t kProtocol = 12;  // IANA protocol number
inline constexpr std::size_t kReserved = 13;  // 24 bits, zero
inline constexpr std::size_t kReservedSize = 3;
inline constexpr std::size_t kInternalPort = 16;
inline constexpr std::size_t kExternalPort = 18;  // suggested (request) / assigned (response)
inline constexpr std::size_t kExternalAddress = 20;  // 128 bits, suggested / assigned
inline constexpr std::size_t kSize = 36;
}  // namespace map_body

namespace peer_body {  // §12.1: the MAP layout followed by the remote peer
inline constexpr std::size_t kRemotePeerPort = 36;
inline constexpr std::size_t kReserved = 38;  // 16 bits
inline constexpr std::size_t kRemotePeerAddress = 40;  // 128 bits
inline constexpr std::size_t kSize = 56;
}  // namespace peer_body

namespace option_header {  // §7.3
inline constexpr std::size_t kCode = 0;
inline constexpr std::size_t kReserved = 1;
inline constexpr std::size_t kLength = 2;  // 16 bits: data length, not counting header or padding
inline constexpr std::size_t kSize = 4;
}  // namespace option_header

// §13.1 THIRD_PARTY: the mapping is for this internal address, not the
// client's own. Its code is below 128, so a server that does not support it
// must refuse the request (UNSUPP_OPTION) rather than map the client instead.
inline constexpr std::uint8_t kThirdPartyOptionCode = 1;
inline constexpr std::size_t kThirdPartyOptionSize = option_header::kSize + kAddressSize;  // 20

// A NAT-PMP (RFC 6886 §3.5) reply, as sent by a server that does not speak
// PCP: the result code is 16 bits at offset 2 and the epoch follows at 4.
namespace natpmp_header {
inline constexpr std::size_t kResultCode = 2;  // 16 bits
inline constexpr std::size_t kEpoch = 4;
inline constexpr std::size_t kSize = 8;
}  // namespace natpmp_header

inline constexpr std::size_t kAnnounceRequestSize = request_header::kSize;
inline constexpr std::size_t kMapRequestSize = request_header::kSize + map_body::kSize;  // 60
inline constexpr std::size_t kThirdPartyMapRequestSize = kMapRequestSize + kThirdPartyOptionSize;  // 80
inline constexpr std::size_t kMinResponseSize = response_header::kSize;
inline constexpr std::size_t kMinMapResponseSize = response_header::kSize + map_body::kSize;
inline constexpr std::size_t kMinPeerResponseSize = response_header::kSize + peer_body::kSize;

// --- Encoding ---------------------------------------------------------------

using Nonce = std::array<std::uint8_t, kNonceSize>;

struct MapRequestFields {
  boost::asio::ip::address_v4 client_address;  // sent IPv4-mapped
  Nonce nonce{};
  Transport proto = Transport::udp;
  std::uint16_t internal_port = 0;
  std::uint16_t suggested_external_port = 0;  // 0: no preference
  // 0.0.0.0 (sent as ::ffff:0.0.0.0): any IPv4 address.
  boost::asio::ip::address_v4 suggested_external_address;
  std::uint32_t lifetime = 0;  // seconds; 0 deletes the mapping (§15)
  // The other device the mapping is for, sent as a THIRD_PARTY option
  // (IPv4-mapped). Unset: the client itself; §13.1 forbids naming the
  // client's own address here.
  std::optional<boost::asio::ip::address_v4> third_party;
};

// A MAP request: 60 bytes, 80 with a THIRD_PARTY option. A contiguous range
// of its bytes.
class MapRequestBytes {
 public:
  const std::uint8_t* data() const noexcept { return bytes_.data(); }
  std::size_t size() const noexcept { return size_; }
  const std::uint8_t* begin() const noexcept { return data(); }
  const std::uint8_t* end() const noexcept { return data() + size_; }
  std::uint8_t operator[](std::size_t at) const noexcept { return bytes_[at]; }

 private:
  friend MapRequestBytes encode_map(const MapRequestFields& request) noexcept;
  std::array<std::uint8_t, kThirdPartyMapRequestSize> bytes_{};
  std::size_t size_ = kMapRequestSize;
};
using AnnounceRequestBytes = std::array<std::uint8_t, kAnnounceRequestSize>;

// A MAP request: version 2, opcode MAP, all reserved bits zero, and a
// THIRD_PARTY option when `request.third_party` is set.
MapRequestBytes encode_map(const MapRequestFields& request) noexcept;
// An ANNOUNCE request (§14.1): requested lifetime 0, no body.
AnnounceRequestBytes encode_announce(const boost::asio::ip::address_v4& client_address) noexcept;

// --- Decoding ---------------------------------------------------------------

// The opcode-specific fields MAP and PEER responses share (§11.2, §12.2).
struct MapBody {
  Nonce nonce{};
  std::uint8_t protocol = 0;  // as sent: 6 TCP, 17 UDP, 0 all
  std::uint16_t internal_port = 0;
  std::uint16_t external_port = 0;  // assigned
  boost::asio::ip::address_v6 external_address;  // assigned; see unmapped()
};

struct Response {
  std::uint8_t version = kProtocolVersion;
  Opcode opcode = Opcode::announce;
  ResultCode result_code = ResultCode::success;
  // Success: the granted lifetime. Error: how long the error is expected to
  // last (§7.4 long- vs short-lifetime errors). Seconds.
  std::uint32_t lifetime = 0;
  std::uint32_t epoch = 0;
  // The server speaks another version: a NAT-PMP-only server (version 0,
  // whose reply is an 8-byte NAT-PMP header) or a PCPv1 server. Only
  // `version`, `opcode` (request opcode echoed), `result_code`
  // (UNSUPP_VERSION) and, where the reply carries them, `lifetime` and
  // `epoch` are meaningful. The client should fall back to NAT-PMP.
  bool unsupported_version = false;
  // Present for MAP and PEER responses.
  std::optional<MapBody> map;
  // Options following the body, bounds-checked and counted (§7.3); only
  // THIRD_PARTY is read.
  std::size_t option_count = 0;
  // The THIRD_PARTY option's address (§13.1) when the response carries one:
  // servers echo the request's options, so this names the device the
  // response is about.
  std::optional<boost::asio::ip::address_v6> third_party;
};

enum class DecodeError {
  too_short = 1,          // < 24 bytes (< 4 for anything at all)
  too_long,               // > 1100 bytes
  not_multiple_of_4,
  not_a_response,         // R bit clear
  wrong_version,          // not version 2, and not an UNSUPP_VERSION reply
  unknown_opcode,         // not ANNOUNCE, MAP or PEER
  bad_length_for_opcode,  // shorter than the opcode's body
  bad_option,             // an option header or its data runs past the end
  bad_third_party,        // a THIRD_PARTY option not 16 bytes long, or more than one
};
std::string_view to_string(DecodeError error) noexcept;

// Use `*result` / `result->` after checking; `.value()` is not available for
// this error type.
using DecodeResult = boost::system::result<Response, DecodeError>;

// Validates and decodes one datagram received from a PCP server. Never reads
// outside `datagram`.
DecodeResult decode_response(std::span<const std::uint8_t> datagram) noexcept;

// --- Addresses --------------------------------------------------------------

// ::ffff:a.b.c.d
boost::asio::ip::address_v6 to_v4_mapped(const boost::asio::ip::address_v4& address) noexcept;
// a.b.c.d when `address` is ::ffff:a.b.c.d.
std::optional<boost::asio::ip::address_v4> v4_mapped(const boost::asio::ip::address_v6& address) noexcept;
// The IPv4 address when `address` is IPv4-mapped, `address` itself otherwise.
boost::asio::ip::address unmapped(const boost::asio::ip::address_v6& address) noexcept;

}  // namespace natkeeper::pcp
