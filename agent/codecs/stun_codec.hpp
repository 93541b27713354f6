#pragma once
// STUN (RFC 5389) Binding messages with the RFC 5780 attributes natkeeper's
// verifier uses. A pure codec: bytes in, struct out, no I/O, never throws.
#include <boost/asio/ip/udp.hpp>
#include <boost/system/result.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace natkeeper::stun {

inline constexpr std::uint32_t kMagicCookie = 0x2112A442;
inline constexpr std::size_t kHeaderSize = 20;
inline constexpr std::size_t kTransactionIdSize = 12;
// A response natkeeper reads is small; anything past this is not one.
inline constexpr std::size_t kMaxMessageSize = 1024;

namespace header {  // offsets (RFC 5389 §6)
inline constexpr std::size_t kType = 0;
inline constexpr std::size_t kLength = 2;
inline constexpr std::size_t kCookie = 4;
inline constexpr std::size_t kTransactionId = 8;
}  // namespace header

enum class MessageType : std::uint16_t {
  binding_request = 0x0001,
  binding_success = 0x0101,
  binding_error = 0x0111,
};

enum class Attribute : std::uint16_t {
  mapped_address = 0x0001,
  change_request = 0x0003,      // RFC 5780 §7.2
  changed_address = 0x0005,     // RFC 3489 §11.2.3: OTHER-ADDRESS before RFC 5780
  error_code = 0x0009,
  unknown_attributes = 0x000a,  // RFC 5389 §15.9
  xor_mapped_address = 0x0020,
  padding = 0x0026,             // RFC 5780 §7.6
  response_port = 0x0027,       // RFC 5780 §7.5
  software = 0x8022,
  fingerprint = 0x8028,
  response_origin = 0x802b,     // RFC 5780 §7.3
  other_address = 0x802c,       // RFC 5780 §7.4
};

// "CHANGE-REQUEST", or the number in hex for an attribute not listed above.
std::string name(Attribute attribute);

// CHANGE-REQUEST flags (RFC 5780 §7.2).
inline constexpr std::uint32_t kChangeIp = 0x4;
inline constexpr std::uint32_t kChangePort = 0x2;

using TransactionId = std::array<std::uint8_t, kTransactionIdSize>;

struct BindingRequest {
  TransactionId transaction_id{};
  std::uint32_t change_flags = 0;              // CHANGE-REQUEST when non-zero
  std::optional<std::uint16_t> response_port;  // RESPONSE-PORT
};

std::vector<std::uint8_t> encode_binding_request(const BindingRequest& request);

struct BindingResponse {
  MessageType type = MessageType::binding_success;
  TransactionId transaction_id{};
  std::optional<boost::asio::ip::udp::endpoint> mapped;  // XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS
  std::optional<boost::asio::ip::udp::endpoint> response_origin;
  // OTHER-ADDRESS, else CHANGED-ADDRESS: where a CHANGE-REQUEST's answer
  // comes from; a server without a second address sends neither.
  std::optional<boost::asio::ip::udp::endpoint> other_address;
  std::optional<std::uint16_t> error_code;  // binding_error: class * 100 + number
  // UNKNOWN-ATTRIBUTES of a 420 error: the request's attributes the server
  // does not know.
  std::vector<Attribute> unknown_attributes;
};

enum class DecodeError {
  too_short,
  too_long,
  not_stun,          // top bits, magic cookie or length alignment
  not_a_response,
  bad_length,        // header length disagrees with the datagram
  bad_attribute,     // an attribute overruns the message or is malformed
};

boost::system::result<BindingResponse, DecodeError> decode_binding_response(
    std::span<const std::uint8_t> datagram);

}  // namespace natkeeper::stun
