#include "mappers/natpmp/natpmp_codec.hpp"

#include "mappers/byte_order.hpp"

namespace natkeeper::natpmp {
namespace {

// Offsets (RFC 6886 §3.2, §3.3): all fields are in network byte order.
constexpr std::size_t kVersionOffset = 0;
constexpr std::size_t kOpcodeOffset = 1;
// Mapping requests.
constexpr std::size_t kReservedOffset = 2;             // 16 bits, must be 0
constexpr std::size_t kRequestInternalPortOffset = 4;  // 16 bits
constexpr std::size_t kRequestExternalPortOffset = 6;  // 16 bits, suggested
constexpr std::size_t kRequestLifetimeOffset = 8;      // 32 bits
// Replies.
constexpr std::size_t kResultOffset = 2;         // 16 bits
constexpr std::size_t kEpochOffset = 4;          // 32 bits
constexpr std::size_t kAddressOffset = 8;        // 32 bits, public address replies
constexpr std::size_t kInternalPortOffset = 8;   // 16 bits, mapping replies
constexpr std::size_t kExternalPortOffset = 10;  // 16 bits
constexpr std::size_t kLifetimeOffset = 12;      // 32 bits

}  // namespace

Opcode mapping_opcode(Transport proto) {
  return proto == Transport::tcp ? Opcode::map_tcp : Opcode::map_udp;
}

std::vector<std::uint8_t> encode_request(const Request& request) {
  if (request.opcode == Opcode::public_address) return {kVersion, static_cast<std::uint8_t>(request.opcode)};
  std::vector<std::uint8_t> bytes(kMappingRequestSize, 0);
  bytes[kVersionOffset] = kVersion;
  bytes[kOpcodeOffset] = static_cast<std::uint8_t>(request.opcode);
  wire::put16(bytes, kRequestInternalPortOffset, request.internal_port);
  wire::put16(bytes, kRequestExternalPortOffset, request.suggested_external_port);
  wire::put32(bytes, kRequestLifetimeOffset, request.lifetime);
  return bytes;
}

DecodeResult<Request> decode_request(std::span<const std::uint8_t> datagram) noexcept {
  if (datagram.size() < kPublicAddressRequestSize) return DecodeError::length;
  if (datagram[kVersionOffset] != kVersion) return DecodeError::version;
  Request request;
  switch (datagram[kOpcodeOffset]) {
    case static_cast<std::uint8_t>(Opcode::public_address):
      if (datagram.size() != kPublicAddressRequestSize) return DecodeError::length;
      return request;
    case static_cast<std::uint8_t>(Opcode::map_udp):
    case static_cast<std::uint8_t>(Opcode::map_tcp):
      if (datagram.size() != kMappingRequestSize) return DecodeError::length;
      if (wire::get16(datagram, kReservedOffset) != 0) return DecodeError::nonzero_reserved;
      request.opcode = static_cast<Opcode>(datagram[kOpcodeOffset]);
      request.internal_port = wire::get16(datagram, kRequestInternalPortOffset);
      request.suggested_external_port = wire::get16(datagram, kRequestExternalPortOffset);
      request.lifetime = wire::get32(datagram, kRequestLifetimeOffset);
      return request;
    default:
      return DecodeError::opcode;
  }
}

std::size_t reply_size(Opcode request) {
  return request == Opcode::public_address ? kPublicAddressReplySize : kMappingReplySize;
}

std::string_view to_string(DecodeError error) {
  switch (error) {
    case DecodeError::length: return "wrong length";
    case DecodeError::version: return "wrong version";
    case DecodeError::opcode: return "wrong opcode";
    case DecodeError::internal_port: return "wrong internal port";
    case DecodeError::inconsistent: return "inconsistent with the request";
    case DecodeError::nonzero_reserved: return "reserved field not zero";
  }
  return "invalid";
}

DecodeResult<Reply> decode_reply(std::span<const std::uint8_t> datagram, const Expected& expected) noexcept {
  if (datagram.size() != reply_size(expected.opcode)) return DecodeError::length;
  if (datagram[kVersionOffset] != kVersion) return DecodeError::version;
  if (datagram[kOpcodeOffset] != kReplyBit + static_cast<std::uint8_t>(expected.opcode)) return DecodeError::opcode;

  Reply reply;
  reply.opcode = expected.opcode;
  reply.result_code = wire::get16(datagram, kResultOffset);
  reply.epoch = wire::get32(datagram, kEpochOffset);
  if (expected.opcode == Opcode::public_address) {
    if (reply.result_code == 0)
      reply.external_address = boost::asio::ip::address_v4(wire::get32(datagram, kAddressOffset));
    return reply;
  }

  reply.internal_port = wire::get16(datagram, kInternalPortOffset);
  if (reply.internal_port != expected.internal_port) return DecodeError::internal_port;
  reply.external_port = wire::get16(datagram, kExternalPortOffset);
  reply.lifetime = wire::get32(datagram, kLifetimeOffset);
  if (reply.result_code == 0) {
    const bool creation_ok = reply.lifetime != 0 && reply.external_port != 0;
    if (expected.deletion ? reply.lifetime != 0 : !creation_ok) return DecodeError::inconsistent;
  }
  return reply;
}

bool is_from_server(const boost::asio::ip::address_v4& source, std::uint16_t source_port,
                    const boost::asio::ip::address_v4& gateway) noexcept {
  return source == gateway && source_port == kServerPort;
}

}  // namespace natkeeper::natpmp
