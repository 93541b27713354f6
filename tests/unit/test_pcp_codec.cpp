#include <catch2/catch.hpp>

#include "result_printer.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "mappers/pcp/pcp_codec.hpp"

using namespace natkeeper;
using namespace natkeeper::pcp;
namespace ip = boost::asio::ip;

namespace {

using Bytes = std::vector<std::uint8_t>;

const Nonce kNonce = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

MapRequestFields sample_request() {
  MapRequestFields request;
  request.client_address = ip::make_address_v4("10.77.0.2");
  request.nonce = kNonce;
  request.proto = Transport::udp;
  request.internal_port = 7076;
  request.suggested_external_port = 7076;
  request.lifetime = 3600;
  return request;
}

// A successful MAP response, written out by hand from RFC 6887 §7.2 and §11.2.
const Bytes kMapSuccess = {
    0x02, 0x81, 0x00, 0x00,  // version 2, R + MAP, reserved, SUCCESS
    0x00, 0x00, 0x00, 0x78,  // lifetime 120
    0x00, 0x00, 0x13, 0x88,  // epoch 5000
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // reserved
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,  // nonce
    0x11, 0x00, 0x00, 0x00,  // UDP, reserved
    0x1b, 0xa4, 0x1b, 0xa8,  // internal port 7076, assigned external port 7080
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 1,  // ::ffff:203.0.113.1
};

const Bytes kAnnounceSuccess = {
    0x02, 0x80, 0x00, 0x00,  // version 2, R + ANNOUNCE, SUCCESS
    0x00, 0x00, 0x00, 0x00,  // lifetime 0
    0x00, 0x00, 0x00, 0x07,  // epoch 7
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

Bytes with_option(Bytes message, std::uint8_t code, const Bytes& data) {
  message.push_back(code);
  message.push_back(0);
  message.push_back(static_cast<std::uint8_t>(data.size() >> 8));
  message.push_back(static_cast<std::uint8_t>(data.size()));
  message.insert(message.end(), data.begin(), data.end());
  while (message.size() % 4 != 0) message.push_back(0);
  return message;
}

std::uint32_t read32(const Bytes& bytes, std::size_t at) {
  return std::uint32_t{bytes[at]} << 24 | std::uint32_t{bytes[at + 1]} << 16 |
         std::uint32_t{bytes[at + 2]} << 8 | bytes[at + 3];
}

}  // namespace

TEST_CASE("PCP constants are RFC 6887's") {
  CHECK(kProtocolVersion == 2);
  CHECK(kServerPort == 5351);
  CHECK(kClientAnnouncePort == 5350);
  CHECK(kMaxMessageSize == 1100);
  CHECK(request_header::kSize == 24);
  CHECK(response_header::kSize == 24);
  CHECK(map_body::kSize == 36);
  CHECK(kMapRequestSize == 60);
  CHECK(kThirdPartyMapRequestSize == 80);
  CHECK(kThirdPartyOptionCode == 1);
  CHECK(kAnnounceRequestSize == 24);
  CHECK(static_cast<int>(Opcode::announce) == 0);
  CHECK(static_cast<int>(Opcode::map) == 1);
  CHECK(static_cast<int>(Opcode::peer) == 2);
  CHECK(static_cast<int>(ResultCode::excessive_remote_peers) == 13);
}

TEST_CASE("encode_map writes a 60-byte MAP request byte by byte") {
  const Bytes expected = {
      0x02, 0x01, 0x00, 0x00,  // version 2, R clear + MAP, reserved
      0x00, 0x00, 0x0e, 0x10,  // requested lifetime 3600
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 2,  // client ::ffff:10.77.0.2
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,  // mapping nonce
      0x11, 0x00, 0x00, 0x00,  // protocol UDP, reserved
      0x1b, 0xa4, 0x1b, 0xa4,  // internal port 7076, suggested external port 7076
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0,  // ::ffff:0.0.0.0, any IPv4
  };
  const auto bytes = encode_map(sample_request());
  CHECK(Bytes(bytes.begin(), bytes.end()) == expected);

  // The same fields through the named offsets.
  constexpr auto body = request_header::kSize;
  CHECK(bytes[request_header::kVersion] == 2);
  CHECK(bytes[request_header::kROpcode] == 1);
  CHECK(read32(expected, request_header::kLifetime) == 3600);
  CHECK(bytes[request_header::kClientAddress + 10] == 0xff);
  CHECK(bytes[request_header::kClientAddress + 12] == 10);
  CHECK(bytes[body + map_body::kNonce] == 1);
  CHECK(bytes[body + map_body::kNonce + kNonceSize - 1] == 12);
  CHECK(bytes[body + map_body::kProtocol] == 17);
  CHECK(bytes[body + map_body::kInternalPort] == 0x1b);
  CHECK(bytes[body + map_body::kInternalPort + 1] == 0xa4);
  CHECK(bytes[body + map_body::kExternalPort + 1] == 0xa4);
  CHECK(bytes[body + map_body::kExternalAddress + 11] == 0xff);
}

TEST_CASE("encode_map with a third party appends a THIRD_PARTY option: 80 bytes") {
  auto request = sample_request();
  request.third_party = ip::make_address_v4("10.77.0.50");
  const Bytes expected = {
      0x02, 0x01, 0x00, 0x00,  // version 2, R clear + MAP, reserved
      0x00, 0x00, 0x0e, 0x10,  // requested lifetime 3600
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 2,  // client: the host that asks
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,  // mapping nonce
      0x11, 0x00, 0x00, 0x00,  // protocol UDP, reserved
      0x1b, 0xa4, 0x1b, 0xa4,  // internal port 7076, suggested external port 7076
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0,  // ::ffff:0.0.0.0, any IPv4
      0x01, 0x00, 0x00, 0x10,  // option THIRD_PARTY, reserved, length 16
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 50,  // internal address ::ffff:10.77.0.50
  };
  const auto bytes = encode_map(request);
  CHECK(bytes.size() == 80);
  CHECK(Bytes(bytes.begin(), bytes.end()) == expected);

  // The same with a delete: lifetime 0, the option stays.
  request.lifetime = 0;
  const auto deletion = encode_map(request);
  CHECK(Bytes(deletion.begin() + 60, deletion.end()) == Bytes(expected.begin() + 60, expected.end()));
  CHECK(read32(Bytes(deletion.begin(), deletion.end()), request_header::kLifetime) == 0);
  // Without one, the request is the plain 60 bytes.
  CHECK(encode_map(sample_request()).size() == 60);
}

TEST_CASE("encode_map: TCP, a suggested address, and a delete") {
  auto request = sample_request();
  request.proto = Transport::tcp;
  request.internal_port = 15063;  // 0x3ad7
  request.suggested_external_port = 0;
  request.suggested_external_address = ip::make_address_v4("203.0.113.9");
  request.lifetime = 0;
  const auto bytes = encode_map(request);
  constexpr auto body = request_header::kSize;
  CHECK(bytes[body + map_body::kProtocol] == 6);
  CHECK(bytes[body + map_body::kInternalPort] == 0x3a);
  CHECK(bytes[body + map_body::kInternalPort + 1] == 0xd7);
  CHECK(bytes[body + map_body::kExternalPort] == 0);
  CHECK(bytes[body + map_body::kExternalPort + 1] == 0);
  CHECK(bytes[body + map_body::kExternalAddress + 12] == 203);
  CHECK(bytes[body + map_body::kExternalAddress + 15] == 9);
  for (std::size_t i = 0; i < 4; ++i) CHECK(bytes[request_header::kLifetime + i] == 0);
}

TEST_CASE("encode_announce writes a 24-byte ANNOUNCE request") {
  const Bytes expected = {
      0x02, 0x00, 0x00, 0x00,  // version 2, ANNOUNCE
      0x00, 0x00, 0x00, 0x00,  // lifetime 0
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 2,
  };
  const auto bytes = encode_announce(ip::make_address_v4("10.77.0.2"));
  CHECK(Bytes(bytes.begin(), bytes.end()) == expected);
}

TEST_CASE("decode a successful MAP response") {
  const auto response = decode_response(kMapSuccess);
  REQUIRE(response);
  CHECK(response->version == 2);
  CHECK(response->opcode == Opcode::map);
  CHECK(response->result_code == ResultCode::success);
  CHECK(response->lifetime == 120);
  CHECK(response->epoch == 5000);
  CHECK_FALSE(response->unsupported_version);
  CHECK(response->option_count == 0);
  REQUIRE(response->map);
  CHECK(response->map->nonce == kNonce);
  CHECK(response->map->protocol == 17);
  CHECK(response->map->internal_port == 7076);
  CHECK(response->map->external_port == 7080);
  CHECK(response->map->external_address.to_string() == "::ffff:203.0.113.1");
  CHECK(v4_mapped(response->map->external_address) == ip::make_address_v4("203.0.113.1"));
  const auto external = unmapped(response->map->external_address);
  CHECK(external.is_v4());
  CHECK(external.to_string() == "203.0.113.1");
}

TEST_CASE("decode an error MAP response with its error lifetime") {
  auto bytes = kMapSuccess;
  bytes[response_header::kResultCode] = 8;  // NO_RESOURCES
  bytes[response_header::kLifetime + 3] = 30;
  const auto response = decode_response(bytes);
  REQUIRE(response);
  CHECK(response->result_code == ResultCode::no_resources);
  CHECK(response->lifetime == 30);
  REQUIRE(response->map);
  CHECK(response->map->nonce == kNonce);
}

TEST_CASE("decode an ANNOUNCE response") {
  const auto response = decode_response(kAnnounceSuccess);
  REQUIRE(response);
  CHECK(response->opcode == Opcode::announce);
  CHECK(response->result_code == ResultCode::success);
  CHECK(response->epoch == 7);
  CHECK_FALSE(response->map);
  CHECK(response->option_count == 0);

  const auto with_one = decode_response(with_option(kAnnounceSuccess, 0x80, {1, 2, 3}));
  REQUIRE(with_one);
  CHECK(with_one->option_count == 1);
}

TEST_CASE("options after the MAP body are walked and skipped") {
  // PREFER_FAILURE (no data), then an option with 5 data bytes padded to 8.
  const auto bytes = with_option(with_option(kMapSuccess, 2, {}), 0x81, {1, 2, 3, 4, 5});
  CHECK(bytes.size() == 60 + 4 + 4 + 8);
  const auto response = decode_response(bytes);
  REQUIRE(response);
  CHECK(response->option_count == 2);
  REQUIRE(response->map);
  CHECK(response->map->external_port == 7080);
}

TEST_CASE("an echoed THIRD_PARTY option names the device the response is about") {
  const Bytes doorbell = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 50};
  // As miniupnpd answers: the request echoed, options included.
  const auto echoed = with_option(kMapSuccess, 1, doorbell);
  REQUIRE(echoed.size() == 80);
  auto response = decode_response(echoed);
  REQUIRE(response);
  CHECK(response->option_count == 1);
  REQUIRE(response->third_party);
  CHECK(response->third_party->to_string() == "::ffff:10.77.0.50");
  CHECK(unmapped(*response->third_party).to_string() == "10.77.0.50");

  // After other options, and in an error response (miniupnpd's refusal).
  auto refused = with_option(with_option(kMapSuccess, 0x81, {9, 9, 9}), 1, doorbell);
  refused[response_header::kResultCode] = 5;  // UNSUPP_OPTION
  response = decode_response(refused);
  REQUIRE(response);
  CHECK(response->result_code == ResultCode::unsupp_option);
  CHECK(response->option_count == 2);
  REQUIRE(response->third_party);
  CHECK(unmapped(*response->third_party).to_string() == "10.77.0.50");

  // An IPv6 internal address is read as sent.
  const Bytes v6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x50};
  response = decode_response(with_option(kMapSuccess, 1, v6));
  REQUIRE(response);
  REQUIRE(response->third_party);
  CHECK(response->third_party->to_string() == "2001:db8::50");

  // Without the option: none.
  response = decode_response(with_option(kMapSuccess, 0x81, doorbell));
  REQUIRE(response);
  CHECK_FALSE(response->third_party);
}

TEST_CASE("a THIRD_PARTY option of the wrong length, or two of them, is rejected") {
  const Bytes doorbell = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 50};
  const Bytes camera = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 51};
  for (const std::size_t length : {0, 4, 15, 17, 20}) {
    INFO("length " << length);
    CHECK(decode_response(with_option(kMapSuccess, 1, Bytes(length, 0))).error() == DecodeError::bad_third_party);
  }
  CHECK(decode_response(with_option(with_option(kMapSuccess, 1, doorbell), 1, camera)).error() ==
        DecodeError::bad_third_party);
  CHECK(decode_response(with_option(with_option(kMapSuccess, 1, doorbell), 1, doorbell)).error() ==
        DecodeError::bad_third_party);

  // Cut short, it is an overrun like any other option: nothing past the end is read.
  const auto whole = with_option(kMapSuccess, 1, doorbell);
  for (std::size_t cut = 4; cut < 20; cut += 4) {
    INFO("cut " << cut);
    CHECK(decode_response(std::span(whole).first(whole.size() - cut)).error() == DecodeError::bad_option);
  }
}

TEST_CASE("a 1100-byte message is the largest accepted") {
  const auto largest = with_option(kMapSuccess, 0x80, Bytes(1100 - 60 - 4, 0xaa));
  REQUIRE(largest.size() == 1100);
  const auto response = decode_response(largest);
  REQUIRE(response);
  CHECK(response->option_count == 1);

  const auto oversized = with_option(kMapSuccess, 0x80, Bytes(1104 - 60 - 4, 0xaa));
  REQUIRE(oversized.size() == 1104);
  CHECK(decode_response(oversized).error() == DecodeError::too_long);
}

TEST_CASE("a NAT-PMP-only server's UNSUPP_VERSION reply (version 0) means fall back") {
  // RFC 6886 §3.5: version 0, opcode 128 + the request's opcode, 16-bit
  // result code 1, epoch. 8 bytes, shorter than any PCP message.
  const Bytes natpmp = {0x00, 0x81, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00};
  const auto response = decode_response(natpmp);
  REQUIRE(response);
  CHECK(response->unsupported_version);
  CHECK(response->version == 0);
  CHECK(response->result_code == ResultCode::unsupp_version);
  CHECK(response->opcode == Opcode::map);
  CHECK(response->epoch == 256);
  CHECK_FALSE(response->map);

  // Only the first four bytes are needed; nothing past the datagram is read.
  const auto first_four = decode_response(std::span(natpmp).first(4));
  REQUIRE(first_four);
  CHECK(first_four->unsupported_version);
  CHECK(first_four->epoch == 0);

  // The high byte of NAT-PMP's 16-bit result code counts: 0x0101 is not 1.
  const Bytes not_one = {0x00, 0x81, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00};
  CHECK(decode_response(not_one).error() == DecodeError::wrong_version);
  // Any other NAT-PMP reply, e.g. the public address answer, is not PCP.
  const Bytes address_reply = {0x00, 0x80, 0x00, 0x00, 0, 0, 0, 9, 203, 0, 113, 1};
  CHECK(decode_response(address_reply).error() == DecodeError::wrong_version);
}

TEST_CASE("a PCPv1 server's UNSUPP_VERSION reply means fall back") {
  Bytes v1(24, 0);
  v1[response_header::kVersion] = 1;
  v1[response_header::kROpcode] = 0x81;
  v1[response_header::kResultCode] = 1;
  v1[response_header::kLifetime + 2] = 0x0e;  // 3600 s
  v1[response_header::kLifetime + 3] = 0x10;
  v1[response_header::kEpoch + 3] = 42;
  const auto response = decode_response(v1);
  REQUIRE(response);
  CHECK(response->unsupported_version);
  CHECK(response->version == 1);
  CHECK(response->result_code == ResultCode::unsupp_version);
  CHECK(response->lifetime == 3600);
  CHECK(response->epoch == 42);

  v1[response_header::kResultCode] = 0;  // a PCPv1 success is not ours to read
  CHECK(decode_response(v1).error() == DecodeError::wrong_version);
  auto v3 = kMapSuccess;
  v3[response_header::kVersion] = 3;
  CHECK(decode_response(v3).error() == DecodeError::wrong_version);
}

TEST_CASE("truncated responses are rejected") {
  for (std::size_t length = 0; length < 24; ++length) {
    INFO("length " << length);
    CHECK(decode_response(std::span(kMapSuccess).first(length)).error() == DecodeError::too_short);
    CHECK(decode_response(std::span(kAnnounceSuccess).first(length)).error() == DecodeError::too_short);
  }
  CHECK(decode_response(std::span(kMapSuccess).first(59)).error() == DecodeError::not_multiple_of_4);
  for (std::size_t length = 24; length < 60; length += 4) {
    INFO("length " << length);
    CHECK(decode_response(std::span(kMapSuccess).first(length)).error() ==
          DecodeError::bad_length_for_opcode);
  }
}

TEST_CASE("lengths that are not a multiple of 4 are rejected") {
  for (std::size_t extra = 1; extra < 4; ++extra) {
    auto bytes = kMapSuccess;
    bytes.resize(bytes.size() + extra);
    CHECK(decode_response(bytes).error() == DecodeError::not_multiple_of_4);
  }
}

TEST_CASE("a request (R bit clear) is not a response") {
  const auto request = encode_map(sample_request());
  CHECK(decode_response(request).error() == DecodeError::not_a_response);
  const auto announce = encode_announce(ip::make_address_v4("10.77.0.2"));
  CHECK(decode_response(announce).error() == DecodeError::not_a_response);
}

TEST_CASE("unknown opcodes are rejected; PEER responses need their 56-byte body") {
  for (const std::uint8_t opcode : {3, 4, 98, 127}) {
    auto bytes = kMapSuccess;
    bytes[response_header::kROpcode] = static_cast<std::uint8_t>(0x80 | opcode);
    CHECK(decode_response(bytes).error() == DecodeError::unknown_opcode);
  }
  auto peer = kMapSuccess;
  peer[response_header::kROpcode] = 0x82;
  CHECK(decode_response(peer).error() == DecodeError::bad_length_for_opcode);
  peer.resize(80);
  const auto response = decode_response(peer);
  REQUIRE(response);
  CHECK(response->opcode == Opcode::peer);
  REQUIRE(response->map);
  CHECK(response->map->internal_port == 7076);
}

TEST_CASE("an option that overruns the message is rejected") {
  auto bytes = with_option(kMapSuccess, 0x80, {1, 2, 3, 4});
  bytes[60 + option_header::kLength + 1] = 8;  // claims 8 bytes, has 4
  CHECK(decode_response(bytes).error() == DecodeError::bad_option);
  bytes[60 + option_header::kLength + 1] = 5;  // 5 pads to 8: still too long
  CHECK(decode_response(bytes).error() == DecodeError::bad_option);
  bytes[60 + option_header::kLength] = 0xff;  // 65285: far too long
  CHECK(decode_response(bytes).error() == DecodeError::bad_option);
  bytes[60 + option_header::kLength] = 0;
  bytes[60 + option_header::kLength + 1] = 3;  // 3 pads to 4: fits exactly
  CHECK(decode_response(bytes));
  for (const auto error : {DecodeError::too_short, DecodeError::too_long, DecodeError::not_multiple_of_4,
                           DecodeError::not_a_response, DecodeError::wrong_version,
                           DecodeError::unknown_opcode, DecodeError::bad_length_for_opcode,
                           DecodeError::bad_option, DecodeError::bad_third_party})
    CHECK_FALSE(to_string(error).empty());
}

TEST_CASE("round trip: a response built from a request decodes to the request's fields") {
  auto fields = sample_request();
  fields.proto = Transport::tcp;
  fields.internal_port = 40000;
  fields.nonce = {0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 0xfe, 0xff, 0x80, 0x7f};
  const auto request = encode_map(fields);

  // What a server does (§8.3): set R, fill the result code, lifetime and
  // epoch, clear the reserved fields, and assign the external port/address.
  Bytes reply(request.begin(), request.end());
  reply[response_header::kROpcode] |= kResponseBit;
  reply[response_header::kReserved] = 0;
  reply[response_header::kResultCode] = 0;
  reply[response_header::kEpoch + 3] = 99;
  std::fill_n(reply.begin() + response_header::kReserved2, response_header::kReserved2Size, 0);
  reply[request_header::kSize + map_body::kExternalPort] = 0x9c;  // 40001
  reply[request_header::kSize + map_body::kExternalPort + 1] = 0x41;
  const auto external = to_v4_mapped(ip::make_address_v4("203.0.113.1")).to_bytes();
  const auto body = reply.begin() + request_header::kSize;
  std::copy(external.begin(), external.end(), body + map_body::kExternalAddress);

  const auto response = decode_response(reply);
  REQUIRE(response);
  CHECK(response->opcode == Opcode::map);
  CHECK(response->lifetime == fields.lifetime);
  CHECK(response->epoch == 99);
  REQUIRE(response->map);
  CHECK(response->map->nonce == fields.nonce);
  CHECK(response->map->protocol == 6);
  CHECK(response->map->internal_port == 40000);
  CHECK(response->map->external_port == 40001);
  CHECK(unmapped(response->map->external_address).to_string() == "203.0.113.1");
}

TEST_CASE("IPv4-mapped address helpers") {
  const auto v4 = ip::make_address_v4("10.77.0.2");
  CHECK(to_v4_mapped(v4).to_string() == "::ffff:10.77.0.2");
  CHECK(v4_mapped(to_v4_mapped(v4)) == v4);
  CHECK(to_v4_mapped(ip::address_v4::any()).to_string() == "::ffff:0.0.0.0");
  const auto v6 = ip::make_address_v6("2001:db8::1");
  CHECK_FALSE(v4_mapped(v6));
  CHECK(unmapped(v6) == ip::address(v6));
  CHECK(unmapped(to_v4_mapped(v4)) == ip::address(v4));
}
