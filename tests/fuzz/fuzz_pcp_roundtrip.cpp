// A MAP request built from the input, answered the way a server answers it
// (RFC 6887 §8.3: the request with R set and the result filled in), must
// decode to the request's fields: encode and decode agree on every offset.
#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <span>

#include "mappers/pcp/pcp_codec.hpp"
#include "tests/fuzz/fuzz_input.hpp"
#include "tests/fuzz/fuzz_target.hpp"

namespace {

void put16(std::uint8_t* at, std::uint16_t value) {
  at[0] = static_cast<std::uint8_t>(value >> 8);
  at[1] = static_cast<std::uint8_t>(value);
}

void put32(std::uint8_t* at, std::uint32_t value) {
  put16(at, static_cast<std::uint16_t>(value >> 16));
  put16(at + 2, static_cast<std::uint16_t>(value));
}

}  // namespace

NATKEEPER_FUZZ_TARGET(pcp_roundtrip) {
  using namespace natkeeper::pcp;
  namespace ip = boost::asio::ip;
  natkeeper::fuzz::Input in(data, size);

  MapRequestFields request;
  request.client_address = ip::address_v4(in.u32());
  for (auto& byte : request.nonce) byte = in.u8();
  request.proto = (in.u8() & 1) ? natkeeper::Transport::tcp : natkeeper::Transport::udp;
  request.internal_port = in.u16();
  request.suggested_external_port = in.u16();
  request.suggested_external_address = ip::address_v4(in.u32());
  request.lifetime = in.u32();
  const std::uint8_t result = in.u8() % (kMaxKnownResultCode + 1);
  const std::uint32_t epoch = in.u32();
  const std::uint16_t assigned_port = in.u16();
  const ip::address_v4 assigned_address(in.u32());
  if (in.u8() & 1) request.third_party = ip::address_v4(in.u32());

  const auto encoded = encode_map(request);
  // Whatever input is left becomes options, each at most 255 bytes of data.
  const std::size_t option_bytes_wanted = std::min<std::size_t>(in.left(), kMaxMessageSize - encoded.size());
  // The request's own invariants.
  if (encoded.size() != (request.third_party ? kThirdPartyMapRequestSize : kMapRequestSize)) __builtin_trap();
  if (encoded[request_header::kVersion] != kProtocolVersion) __builtin_trap();
  if (encoded[request_header::kROpcode] != static_cast<std::uint8_t>(Opcode::map)) __builtin_trap();
  if (decode_response(encoded).error() != DecodeError::not_a_response) __builtin_trap();

  std::array<std::uint8_t, kMaxMessageSize> reply{};
  std::copy(encoded.begin(), encoded.end(), reply.begin());
  std::size_t length = encoded.size();
  reply[response_header::kROpcode] |= kResponseBit;
  reply[response_header::kReserved] = 0;
  reply[response_header::kResultCode] = result;
  std::fill_n(reply.begin() + response_header::kReserved2, response_header::kReserved2Size, 0);
  put32(&reply[response_header::kEpoch], epoch);
  std::uint8_t* body = &reply[response_header::kSize];
  put16(body + map_body::kExternalPort, assigned_port);
  const auto mapped = to_v4_mapped(assigned_address).to_bytes();
  std::memcpy(body + map_body::kExternalAddress, mapped.data(), mapped.size());

  // The request's THIRD_PARTY option comes back like any option a server echoes.
  std::size_t options = request.third_party ? 1 : 0;
  std::optional<ip::address_v6> third_party;
  if (request.third_party) third_party = to_v4_mapped(*request.third_party);
  bool bad_third_party = false;  // one of the wrong length, or a second one
  while (length + option_header::kSize <= encoded.size() + option_bytes_wanted) {
    const std::uint8_t code = in.u8();
    const std::size_t room = kMaxMessageSize - length - option_header::kSize;
    const std::size_t data_length = std::min<std::size_t>(in.u8(), room);
    reply[length + option_header::kCode] = code;
    put16(&reply[length + option_header::kLength], static_cast<std::uint16_t>(data_length));
    length += option_header::kSize;
    for (std::size_t i = 0; i < data_length; ++i) reply[length + i] = in.u8();
    if (code == kThirdPartyOptionCode) {
      if (data_length != kAddressSize || third_party) {
        bad_third_party = true;
      } else {
        ip::address_v6::bytes_type address{};
        std::copy_n(&reply[length], kAddressSize, address.begin());
        third_party = ip::address_v6(address);
      }
    }
    length += (data_length + 3) / 4 * 4;
    ++options;
    if (length > kMaxMessageSize) __builtin_trap();
  }

  const auto decoded = decode_response(std::span<const std::uint8_t>(reply.data(), length));
  if (bad_third_party) {
    if (decoded || decoded.error() != DecodeError::bad_third_party) __builtin_trap();
    return 0;
  }
  if (!decoded) __builtin_trap();
  const Response& response = *decoded;
  if (response.unsupported_version || response.version != kProtocolVersion) __builtin_trap();
  if (response.opcode != Opcode::map) __builtin_trap();
  if (static_cast<std::uint8_t>(response.result_code) != result) __builtin_trap();
  if (response.lifetime != request.lifetime || response.epoch != epoch) __builtin_trap();
  if (response.option_count != options) __builtin_trap();
  if (response.third_party != third_party) __builtin_trap();
  if (!response.map) __builtin_trap();
  const MapBody& map = *response.map;
  if (map.nonce != request.nonce) __builtin_trap();
  if (map.protocol != static_cast<std::uint8_t>(request.proto)) __builtin_trap();
  if (map.internal_port != request.internal_port) __builtin_trap();
  if (map.external_port != assigned_port) __builtin_trap();
  if (v4_mapped(map.external_address) != assigned_address) __builtin_trap();
  if (unmapped(map.external_address) != ip::address(assigned_address)) __builtin_trap();

  // Cut short of its body, it is never a MAP response.
  if (decode_response(std::span<const std::uint8_t>(reply.data(), kMinMapResponseSize - 4)))
    __builtin_trap();
  return 0;
}
