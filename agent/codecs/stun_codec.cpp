#include "agent/codecs/stun_codec.hpp"

#include <fmt/format.h>

#include "mappers/byte_order.hpp"

namespace natkeeper::stun {
namespace {

using Bytes = std::span<const std::uint8_t>;

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

void put32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  put16(out, static_cast<std::uint16_t>(v >> 16));
  put16(out, static_cast<std::uint16_t>(v));
}

constexpr std::uint8_t kFamilyIpv4 = 0x01;
constexpr std::uint8_t kFamilyIpv6 = 0x02;

// (XOR-)MAPPED-ADDRESS and the RFC 5780 address attributes share one layout:
// reserved (1), family (1), port (2), address (4 or 16) (RFC 5389 §15.1-2).
std::optional<boost::asio::ip::udp::endpoint> read_address(Bytes value, bool xored, const TransactionId& id) {
  if (value.size() < 4) return std::nullopt;
  const auto family = value[1];
  std::uint16_t port = wire::get16(value, 2);
  if (xored) port ^= static_cast<std::uint16_t>(kMagicCookie >> 16);
  if (family == kFamilyIpv4 && value.size() == 8) {
    std::uint32_t address = wire::get32(value, 4);
    if (xored) address ^= kMagicCookie;
    return boost::asio::ip::udp::endpoint(boost::asio::ip::address_v4(address), port);
  }
  if (family == kFamilyIpv6 && value.size() == 20) {
    boost::asio::ip::address_v6::bytes_type address{};
    std::array<std::uint8_t, 16> mask{};
    for (std::size_t i = 0; i < 4; ++i) mask[i] = static_cast<std::uint8_t>(kMagicCookie >> (24 - 8 * i));
    std::copy(id.begin(), id.end(), mask.begin() + 4);
    for (std::size_t i = 0; i < 16; ++i) address[i] = static_cast<std::uint8_t>(value[4 + i] ^ (xored ? mask[i] : 0));
    return boost::asio::ip::udp::endpoint(boost::asio::ip::address_v6(address), port);
  }
  return std::nullopt;
}

}  // namespace

std::string name(Attribute attribute) {
  switch (attribute) {
    case Attribute::mapped_address: return "MAPPED-ADDRESS";
    case Attribute::change_request: return "CHANGE-REQUEST";
    case Attribute::changed_address: return "CHANGED-ADDRESS";
    case Attribute::error_code: return "ERROR-CODE";
    case Attribute::unknown_attributes: return "UNKNOWN-ATTRIBUTES";
    case Attribute::xor_mapped_address: return "XOR-MAPPED-ADDRESS";
    case Attribute::padding: return "PADDING";
    case Attribute::response_port: return "RESPONSE-PORT";
    case Attribute::software: return "SOFTWARE";
    case Attribute::fingerprint: return "FINGERPRINT";
    case Attribute::response_origin: return "RESPONSE-ORIGIN";
    case Attribute::other_address: return "OTHER-ADDRESS";
  }
  return fmt::format("0x{:04x}", static_cast<std::uint16_t>(attribute));
}

std::vector<std::uint8_t> encode_binding_request(const BindingRequest& request) {
  std::vector<std::uint8_t> out;
  out.reserve(kHeaderSize + 16);
  put16(out, static_cast<std::uint16_t>(MessageType::binding_request));
  put16(out, 0);  // length, set below
  put32(out, kMagicCookie);
  out.insert(out.end(), request.transaction_id.begin(), request.transaction_id.end());
  if (request.change_flags != 0) {
    put16(out, static_cast<std::uint16_t>(Attribute::change_request));
    put16(out, 4);
    put32(out, request.change_flags);
  }
  if (request.response_port) {
    put16(out, static_cast<std::uint16_t>(Attribute::response_port));
    put16(out, 4);  // a 16-bit port and 2 bytes of padding (RFC 5780 §7.5)
    put16(out, *request.response_port);
    put16(out, 0);
  }
  const auto length = static_cast<std::uint16_t>(out.size() - kHeaderSize);
  out[header::kLength] = static_cast<std::uint8_t>(length >> 8);
  out[header::kLength + 1] = static_cast<std::uint8_t>(length);
  return out;
}

boost::system::result<BindingResponse, DecodeError> decode_binding_response(Bytes datagram) {
  if (datagram.size() < kHeaderSize) return DecodeError::too_short;
  if (datagram.size() > kMaxMessageSize) return DecodeError::too_long;
  // The two top bits of every STUN message are zero, and the cookie is fixed.
  if ((datagram[0] & 0xc0) != 0 || wire::get32(datagram, header::kCookie) != kMagicCookie) return DecodeError::not_stun;
  const auto length = wire::get16(datagram, header::kLength);
  if (length % 4 != 0) return DecodeError::not_stun;
  if (length != datagram.size() - kHeaderSize) return DecodeError::bad_length;
  BindingResponse response;
  const auto type = wire::get16(datagram, header::kType);
  if (type == static_cast<std::uint16_t>(MessageType::binding_success)) response.type = MessageType::binding_success;
  else if (type == static_cast<std::uint16_t>(MessageType::binding_error)) response.type = MessageType::binding_error;
  else return DecodeError::not_a_response;
  std::copy_n(datagram.begin() + header::kTransactionId, kTransactionIdSize, response.transaction_id.begin());

  std::optional<boost::asio::ip::udp::endpoint> plain_mapped, changed_address;
  std::size_t at = kHeaderSize;
  while (at < datagram.size()) {
    if (datagram.size() - at < 4) return DecodeError::bad_attribute;
    const auto attribute = wire::get16(datagram, at);
    const auto value_length = wire::get16(datagram, at + 2);
    const auto padded = (static_cast<std::size_t>(value_length) + 3) & ~std::size_t{3};
    if (datagram.size() - at - 4 < padded) return DecodeError::bad_attribute;
    const auto value = datagram.subspan(at + 4, value_length);
    switch (static_cast<Attribute>(attribute)) {
      case Attribute::xor_mapped_address:
        response.mapped = read_address(value, true, response.transaction_id);
        if (!response.mapped) return DecodeError::bad_attribute;
        break;
      case Attribute::mapped_address:
        plain_mapped = read_address(value, false, response.transaction_id);
        if (!plain_mapped) return DecodeError::bad_attribute;
        break;
      case Attribute::response_origin:
        response.response_origin = read_address(value, false, response.transaction_id);
        break;
      case Attribute::other_address:
        response.other_address = read_address(value, false, response.transaction_id);
        break;
      case Attribute::changed_address:
        changed_address = read_address(value, false, response.transaction_id);
        break;
      case Attribute::error_code: {
        // reserved (21 bits), class (3 bits: 3 to 6), number (8 bits: 0 to 99), reason
        if (value.size() < 4) return DecodeError::bad_attribute;
        const int error_class = value[2] & 0x07;
        if (error_class < 3 || error_class > 6 || value[3] > 99) return DecodeError::bad_attribute;
        response.error_code = static_cast<std::uint16_t>(error_class * 100 + value[3]);
        break;
      }
      case Attribute::unknown_attributes:
        // 16-bit attribute types (RFC 5389 §15.9)
        if (value.size() % 2 != 0) return DecodeError::bad_attribute;
        for (std::size_t i = 0; i < value.size(); i += 2)
          response.unknown_attributes.push_back(static_cast<Attribute>(wire::get16(value, i)));
        break;
      default:
        break;  // comprehension-optional or unneeded: skipped
    }
    at += 4 + padded;
  }
  if (!response.mapped) response.mapped = plain_mapped;
  if (!response.other_address) response.other_address = changed_address;
  return response;
}

}  // namespace natkeeper::stun
