#include "mappers/pcp/pcp_codec.hpp"

#include "mappers/byte_order.hpp"

#include <algorithm>

namespace natkeeper::pcp {
namespace {

namespace ip = boost::asio::ip;
using wire::get16;
using wire::get32;
using wire::put16;
using wire::put32;

void put_address(std::span<std::uint8_t> out, std::size_t at, const ip::address_v4& address) noexcept {
  const auto bytes = to_v4_mapped(address).to_bytes();
  std::copy(bytes.begin(), bytes.end(), out.begin() + static_cast<std::ptrdiff_t>(at));
}

ip::address_v6 get_address(std::span<const std::uint8_t> in, std::size_t at) noexcept {
  ip::address_v6::bytes_type bytes{};
  std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(at), kAddressSize, bytes.begin());
  return ip::address_v6(bytes);
}

void put_request_header(std::span<std::uint8_t> out, Opcode opcode, std::uint32_t lifetime,
                        const ip::address_v4& client) noexcept {
  out[request_header::kVersion] = kProtocolVersion;
  out[request_header::kROpcode] = static_cast<std::uint8_t>(opcode) & kOpcodeMask;  // R = 0
  put16(out, request_header::kReserved, 0);
  put32(out, request_header::kLifetime, lifetime);
  put_address(out, request_header::kClientAddress, client);
}

// RFC 6887 §9: a server that does not speak version 2 answers with its own
// version and UNSUPP_VERSION. Two layouts reach us:
//   - NAT-PMP (version 0, RFC 6886 §3.5): 16-bit result code at offset 2,
//     epoch at offset 4; the reply is 8 bytes.
//   - PCP of another version (e.g. the drafts' version 1): the PCP header,
//     8-bit result code at offset 3.
// Only the first four bytes are required; later fields are read when present.
std::optional<Response> decode_unsupported_version(std::span<const std::uint8_t> in) noexcept {
  const std::uint8_t version = in[response_header::kVersion];
  Response response;
  response.version = version;
  response.opcode = static_cast<Opcode>(in[response_header::kROpcode] & kOpcodeMask);
  response.result_code = ResultCode::unsupp_version;
  response.unsupported_version = true;
  if (version == kNatPmpVersion) {
    if (get16(in, natpmp_header::kResultCode) != static_cast<std::uint16_t>(ResultCode::unsupp_version))
      return std::nullopt;
    if (in.size() >= natpmp_header::kEpoch + 4) response.epoch = get32(in, natpmp_header::kEpoch);
  } else {
    if (in[response_header::kResultCode] != static_cast<std::uint8_t>(ResultCode::unsupp_version))
      return std::nullopt;
    if (in.size() >= response_header::kLifetime + 4)
      response.lifetime = get32(in, response_header::kLifetime);
    if (in.size() >= response_header::kEpoch + 4) response.epoch = get32(in, response_header::kEpoch);
  }
  return response;
}

}  // namespace

MapRequestBytes encode_map(const MapRequestFields& request) noexcept {
  MapRequestBytes encoded;  // every reserved field stays zero
  const std::span<std::uint8_t> out(encoded.bytes_);
  put_request_header(out, Opcode::map, request.lifetime, request.client_address);
  const auto body = out.subspan(request_header::kSize);
  std::copy(request.nonce.begin(), request.nonce.end(), body.begin() + map_body::kNonce);
  body[map_body::kProtocol] = static_cast<std::uint8_t>(request.proto);
  put16(body, map_body::kInternalPort, request.internal_port);
  put16(body, map_body::kExternalPort, request.suggested_external_port);
  put_address(body, map_body::kExternalAddress, request.suggested_external_address);
  if (request.third_party) {
    const auto option = out.subspan(kMapRequestSize, kThirdPartyOptionSize);
    option[option_header::kCode] = kThirdPartyOptionCode;
    put16(option, option_header::kLength, static_cast<std::uint16_t>(kAddressSize));
    put_address(option, option_header::kSize, *request.third_party);
    encoded.size_ = kThirdPartyMapRequestSize;
  }
  return encoded;
}

AnnounceRequestBytes encode_announce(const ip::address_v4& client_address) noexcept {
  AnnounceRequestBytes bytes{};
  put_request_header(bytes, Opcode::announce, 0, client_address);
  return bytes;
}

std::string_view to_string(DecodeError error) noexcept {
  switch (error) {
    case DecodeError::too_short: return "shorter than a PCP header";
    case DecodeError::too_long: return "longer than 1100 bytes";
    case DecodeError::not_multiple_of_4: return "length not a multiple of 4";
    case DecodeError::not_a_response: return "not a response (R bit clear)";
    case DecodeError::wrong_version: return "not PCP version 2";
    case DecodeError::unknown_opcode: return "unknown opcode";
    case DecodeError::bad_length_for_opcode: return "too short for its opcode";
    case DecodeError::bad_option: return "option runs past the end";
    case DecodeError::bad_third_party: return "THIRD_PARTY option not 16 bytes, or repeated";
  }
  return "unknown decode error";
}

DecodeResult decode_response(std::span<const std::uint8_t> in) noexcept {
  // Enough to read version, R bit, opcode and result code, in either layout.
  if (in.size() < 4) return DecodeError::too_short;
  if (in.size() > kMaxMessageSize) return DecodeError::too_long;
  if ((in[response_header::kROpcode] & kResponseBit) == 0) return DecodeError::not_a_response;
  if (in[response_header::kVersion] != kProtocolVersion) {
    if (auto response = decode_unsupported_version(in)) return *response;
    return DecodeError::wrong_version;
  }
  if (in.size() < kMinResponseSize) return DecodeError::too_short;
  if (in.size() % kMessageAlignment != 0) return DecodeError::not_multiple_of_4;

  Response response;
  response.version = kProtocolVersion;
  response.result_code = static_cast<ResultCode>(in[response_header::kResultCode]);
  response.lifetime = get32(in, response_header::kLifetime);
  response.epoch = get32(in, response_header::kEpoch);

  std::size_t body_size = 0;
  switch (const auto opcode = in[response_header::kROpcode] & kOpcodeMask) {
    case static_cast<std::uint8_t>(Opcode::announce):
      response.opcode = Opcode::announce;
      break;
    case static_cast<std::uint8_t>(Opcode::map):
    case static_cast<std::uint8_t>(Opcode::peer):
      response.opcode = static_cast<Opcode>(opcode);
      body_size = response.opcode == Opcode::map ? map_body::kSize : peer_body::kSize;
      break;
    default:
      return DecodeError::unknown_opcode;
  }
  if (in.size() < response_header::kSize + body_size) return DecodeError::bad_length_for_opcode;

  if (body_size != 0) {
    const auto body = in.subspan(response_header::kSize, body_size);
    MapBody map;
    std::copy_n(body.begin() + map_body::kNonce, kNonceSize, map.nonce.begin());
    map.protocol = body[map_body::kProtocol];
    map.internal_port = get16(body, map_body::kInternalPort);
    map.external_port = get16(body, map_body::kExternalPort);
    map.external_address = get_address(body, map_body::kExternalAddress);
    response.map = map;
  }

  // §7.3: each option is a 4-byte header and its data padded to 4 bytes.
  std::size_t at = response_header::kSize + body_size;
  while (at < in.size()) {
    const std::size_t left = in.size() - at;
    if (left < option_header::kSize) return DecodeError::bad_option;
    const std::size_t length = get16(in, at + option_header::kLength);
    const std::size_t padded = (length + kMessageAlignment - 1) / kMessageAlignment * kMessageAlignment;
    if (padded > left - option_header::kSize) return DecodeError::bad_option;
    if (in[at + option_header::kCode] == kThirdPartyOptionCode) {
      // Which device the response is about must be unambiguous.
      if (length != kAddressSize || response.third_party) return DecodeError::bad_third_party;
      response.third_party = get_address(in, at + option_header::kSize);
    }
    at += option_header::kSize + padded;
    ++response.option_count;
  }
  return response;
}

ip::address_v6 to_v4_mapped(const ip::address_v4& address) noexcept {
  ip::address_v6::bytes_type bytes{};
  bytes[10] = 0xff;
  bytes[11] = 0xff;
  const auto v4 = address.to_bytes();
  std::copy(v4.begin(), v4.end(), bytes.begin() + 12);
  return ip::address_v6(bytes);
}

std::optional<ip::address_v4> v4_mapped(const ip::address_v6& address) noexcept {
  if (!address.is_v4_mapped()) return std::nullopt;
  const auto bytes = address.to_bytes();
  return ip::address_v4(ip::address_v4::bytes_type{bytes[12], bytes[13], bytes[14], bytes[15]});
}

ip::address unmapped(const ip::address_v6& address) noexcept {
  if (const auto v4 = v4_mapped(address)) return *v4;
  return address;
}

}  // namespace natkeeper::pcp
