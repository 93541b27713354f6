// PCP responses arrive from the network: whatever the bytes, decode_response
// must neither crash nor read past them, and what it accepts must be sound.
#include <span>

#include "mappers/pcp/pcp_codec.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(pcp_decode) {
  using namespace natkeeper::pcp;
  const std::span<const std::uint8_t> datagram(data, size);
  const auto decoded = decode_response(datagram);
  if (!decoded) {
    (void)to_string(decoded.error());
    return 0;
  }
  const Response& response = *decoded;
  if (size < 4 || size > kMaxMessageSize) __builtin_trap();
  if ((data[1] & kResponseBit) == 0) __builtin_trap();
  if (response.unsupported_version) {
    // Another version's UNSUPP_VERSION: never ours, never with a body.
    if (response.version == kProtocolVersion || response.version != data[0]) __builtin_trap();
    if (response.result_code != ResultCode::unsupp_version || response.map) __builtin_trap();
    return 0;
  }
  if (response.version != kProtocolVersion || size < kMinResponseSize || size % 4 != 0) __builtin_trap();
  if (static_cast<std::uint8_t>(response.result_code) != data[response_header::kResultCode]) __builtin_trap();
  switch (response.opcode) {
    case Opcode::announce:
      if (response.map) __builtin_trap();
      break;
    case Opcode::map:
      if (!response.map || size < kMinMapResponseSize) __builtin_trap();
      break;
    case Opcode::peer:
      if (!response.map || size < kMinPeerResponseSize) __builtin_trap();
      break;
    default:
      __builtin_trap();
  }
  // Each option takes at least its 4-byte header.
  if (response.option_count > (size - kMinResponseSize) / option_header::kSize) __builtin_trap();
  if (response.map) {
    const auto& body = *response.map;
    const auto* raw = data + response_header::kSize;
    if (body.protocol != raw[map_body::kProtocol]) __builtin_trap();
    if (body.internal_port != ((raw[map_body::kInternalPort] << 8) | raw[map_body::kInternalPort + 1]))
      __builtin_trap();
    for (std::size_t i = 0; i < kNonceSize; ++i)
      if (body.nonce[i] != raw[map_body::kNonce + i]) __builtin_trap();
    // The helpers agree with each other.
    const auto v4 = v4_mapped(body.external_address);
    if (v4.has_value() != unmapped(body.external_address).is_v4()) __builtin_trap();
    if (v4 && to_v4_mapped(*v4) != body.external_address) __builtin_trap();
  }
  return 0;
}
