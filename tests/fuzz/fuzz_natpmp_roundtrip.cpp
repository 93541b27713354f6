// A NAT-PMP request built from the input must decode to itself, and the reply
// a gateway builds for it (RFC 6886 §3.2, §3.3) must be accepted as its reply
// with the same fields: the encoders and decoders agree on every offset.
#include <array>
#include <span>

#include "mappers/byte_order.hpp"
#include "mappers/natpmp/natpmp_codec.hpp"
#include "tests/fuzz/fuzz_input.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(natpmp_roundtrip) {
  using namespace natkeeper::natpmp;
  namespace wire = natkeeper::wire;
  natkeeper::fuzz::Input in(data, size);

  Request request;
  request.opcode = static_cast<Opcode>(in.u8() % 3);
  if (request.opcode != Opcode::public_address) {
    request.internal_port = in.u16();
    request.suggested_external_port = in.u16();
    request.lifetime = in.u32();
  }
  const std::uint16_t result = in.u16();
  const std::uint32_t epoch = in.u32();
  const std::uint32_t external_address = in.u32();
  const std::uint16_t external_port = in.u16();
  const std::uint32_t granted_lifetime = in.u32();

  const auto encoded = encode_request(request);
  if (encoded.size() != (request.opcode == Opcode::public_address ? kPublicAddressRequestSize : kMappingRequestSize))
    __builtin_trap();
  if (decode_request(encoded) != request) __builtin_trap();
  // A request is never a reply, and vice versa.
  const Expected expected{request.opcode, request.internal_port, request.lifetime == 0};
  if (decode_reply(encoded, expected)) __builtin_trap();

  std::array<std::uint8_t, kMappingReplySize> reply{};
  const std::span<std::uint8_t> bytes(reply.data(), reply_size(request.opcode));
  bytes[0] = kVersion;
  bytes[1] = static_cast<std::uint8_t>(kReplyBit + static_cast<std::uint8_t>(request.opcode));
  wire::put16(bytes, 2, result);
  wire::put32(bytes, 4, epoch);
  if (request.opcode == Opcode::public_address) {
    wire::put32(bytes, 8, external_address);
  } else {
    wire::put16(bytes, 8, request.internal_port);
    wire::put16(bytes, 10, external_port);
    wire::put32(bytes, 12, granted_lifetime);
  }
  if (decode_request(bytes)) __builtin_trap();

  const auto decoded = decode_reply(bytes, expected);
  // Only a success inconsistent with the kind of request is refused (§3.4).
  const bool consistent = request.opcode == Opcode::public_address || result != 0 ||
                          (expected.deletion ? granted_lifetime == 0 : granted_lifetime != 0 && external_port != 0);
  if (static_cast<bool>(decoded) != consistent) __builtin_trap();
  if (!decoded) return 0;
  const Reply& r = *decoded;
  if (r.opcode != request.opcode || r.result_code != result || r.epoch != epoch) __builtin_trap();
  if (request.opcode == Opcode::public_address) {
    if (r.external_address.to_uint() != (result == 0 ? external_address : 0)) __builtin_trap();
  } else if (r.internal_port != request.internal_port || r.external_port != external_port ||
             r.lifetime != granted_lifetime) {
    __builtin_trap();
  }
  return 0;
}
