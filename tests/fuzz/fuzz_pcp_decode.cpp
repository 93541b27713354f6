// PCP responses arrive from the network: whatever the bytes, decode_response
// must neither crash nor read past them, and what it accepts must be sound.
#include <algorithm>
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
  // The THIRD_PARTY address is the data of the one 16-byte option with code 1.
  std::size_t at = response_header::kSize;
  if (response.opcode == Opcode::map) at += map_body::kSize;
  if (response.opcode == Opcode::peer) at += peer_body::kSize;
  std::size_t third_party_options = 0;
  while (at + option_header::kSize <= size) {
    const std::size_t length = (data[at + option_header::kLength] << 8) | data[at + option_header::kLength + 1];
    if (data[at + option_header::kCode] == kThirdPartyOptionCode) {
      ++third_party_options;
      if (length != kAddressSize || !response.third_party) __builtin_trap();
      const auto address = response.third_party->to_bytes();
      if (!std::equal(address.begin(), address.end(), data + at + option_header::kSize)) __builtin_trap();
    }
    at += option_header::kSize + (length + 3) / 4 * 4;
  }
  if (third_party_options != (response.third_party ? 1U : 0U)) __builtin_trap();
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
