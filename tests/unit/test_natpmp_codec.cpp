#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "mappers/natpmp/natpmp_codec.hpp"
#include "natpmp_replies.hpp"
#include "result_printer.hpp"

using namespace natkeeper;
using namespace natkeeper::natpmp;

namespace {

using namespace natpmp_replies;

constexpr Expected kAddress{Opcode::public_address, 0, false};
constexpr Expected kUdp7076{Opcode::map_udp, 7076, false};
constexpr Expected kTcp15063{Opcode::map_tcp, 15063, false};

}  // namespace

TEST_CASE("natpmp codec: a public address reply", "[natpmp]") {
  const auto bytes = address_reply(0, 1234, 0xCB007101);  // 203.0.113.1
  const auto decoded = decode_reply(bytes, kAddress);
  REQUIRE(decoded);
  CHECK(decoded->opcode == Opcode::public_address);
  CHECK(decoded->result_code == 0);
  CHECK(decoded->epoch == 1234);
  CHECK(decoded->external_address.to_string() == "203.0.113.1");
}

TEST_CASE("natpmp codec: UDP and TCP mapping replies", "[natpmp]") {
  const auto udp = decode_reply(mapping_reply(129, 0, 77, 7076, 7076, 3600), kUdp7076);
  REQUIRE(udp);
  CHECK(udp->opcode == Opcode::map_udp);
  CHECK(udp->epoch == 77);
  CHECK(udp->internal_port == 7076);
  CHECK(udp->external_port == 7076);
  CHECK(udp->lifetime == 3600);

  const auto tcp = decode_reply(mapping_reply(130, 0, 0xFFFFFFFF, 15063, 40000, 7200), kTcp15063);
  REQUIRE(tcp);
  CHECK(tcp->opcode == Opcode::map_tcp);
  CHECK(tcp->epoch == 0xFFFFFFFF);
  CHECK(tcp->external_port == 40000);
  CHECK(tcp->lifetime == 7200);
}

TEST_CASE("natpmp codec: every length but the exact one is rejected", "[natpmp]") {
  const auto address = address_reply(0, 1, 0x01020304);
  const auto mapping = mapping_reply(129, 0, 1, 7076, 7076, 60);
  for (std::size_t length = 0; length <= 20; ++length) {
    INFO("length " << length);
    Bytes a = address, m = mapping;
    a.resize(length, 0);
    m.resize(length, 0);
    const auto da = decode_reply(a, kAddress);
    const auto dm = decode_reply(m, kUdp7076);
    CHECK(bool(da) == (length == kPublicAddressReplySize));
    CHECK(bool(dm) == (length == kMappingReplySize));
    if (!da) CHECK(da.error() == DecodeError::length);
    if (!dm) CHECK(dm.error() == DecodeError::length);
  }
  // 17: one trailing byte too many on a mapping reply.
  Bytes m = mapping;
  m.push_back(0);
  REQUIRE(m.size() == 17);
  CHECK(decode_reply(m, kUdp7076).error() == DecodeError::length);
  CHECK_FALSE(decode_reply(m, kUdp7076));
  // A public address reply is not a mapping reply, nor the other way round.
  CHECK(decode_reply(address, kUdp7076).error() == DecodeError::length);
  CHECK(decode_reply(mapping, kAddress).error() == DecodeError::length);
}

TEST_CASE("natpmp codec: a version other than 0 is rejected", "[natpmp]") {
  for (std::uint8_t version : {1, 2, 255}) {
    auto a = address_reply(0, 1, 0x01020304);
    auto m = mapping_reply(129, 0, 1, 7076, 7076, 60);
    a[0] = m[0] = version;
    CHECK(decode_reply(a, kAddress).error() == DecodeError::version);
    CHECK(decode_reply(m, kUdp7076).error() == DecodeError::version);
  }
}

TEST_CASE("natpmp codec: the opcode must be the request's plus 128", "[natpmp]") {
  for (int opcode = 0; opcode < 256; ++opcode) {
    INFO("opcode " << opcode);
    auto a = address_reply(0, 1, 0x01020304);
    auto m = mapping_reply(129, 0, 1, 7076, 7076, 60);
    a[1] = m[1] = static_cast<std::uint8_t>(opcode);
    const auto da = decode_reply(a, kAddress);
    const auto dm = decode_reply(m, kUdp7076);
    CHECK(bool(da) == (opcode == 128));
    CHECK(bool(dm) == (opcode == 129));
    if (!da) CHECK(da.error() == DecodeError::opcode);
    if (!dm) CHECK(dm.error() == DecodeError::opcode);
  }
}

TEST_CASE("natpmp codec: a UDP reply does not answer a TCP request", "[natpmp]") {
  const auto udp_reply = mapping_reply(129, 0, 1, 15063, 15063, 60);
  CHECK(decode_reply(udp_reply, kTcp15063).error() == DecodeError::opcode);
  const auto tcp_reply = mapping_reply(130, 0, 1, 7076, 7076, 60);
  CHECK(decode_reply(tcp_reply, kUdp7076).error() == DecodeError::opcode);
}

TEST_CASE("natpmp codec: a reply for another internal port is rejected", "[natpmp]") {
  for (std::uint16_t port : {0, 7075, 7077, 65535}) {
    const auto m = mapping_reply(129, 0, 1, port, 7076, 60);
    CHECK(decode_reply(m, kUdp7076).error() == DecodeError::internal_port);
  }
  // Error replies echo the internal port too.
  CHECK(decode_reply(mapping_reply(129, 2, 1, 7077, 0, 0), kUdp7076).error() == DecodeError::internal_port);
}

TEST_CASE("natpmp codec: result codes are reported, not rejected", "[natpmp]") {
  for (std::uint16_t code : {1, 2, 3, 4, 5, 6, 0xFFFF}) {
    INFO("code " << code);
    const auto a = decode_reply(address_reply(code, 9, 0), kAddress);
    REQUIRE(a);
    CHECK(a->result_code == code);
    CHECK(a->epoch == 9);
    CHECK(a->external_address.is_unspecified());
    // Error replies' external port and lifetime are undefined: zero is fine.
    const auto m = decode_reply(mapping_reply(129, code, 9, 7076, 0, 0), kUdp7076);
    REQUIRE(m);
    CHECK(m->result_code == code);
  }
}

TEST_CASE("natpmp codec: success replies must fit the kind of request", "[natpmp]") {
  const Expected deletion{Opcode::map_udp, 7076, true};
  // A deletion is answered with lifetime 0 (§3.4); the external port is ignored.
  CHECK(decode_reply(mapping_reply(129, 0, 1, 7076, 0, 0), deletion));
  CHECK(decode_reply(mapping_reply(129, 0, 1, 7076, 7076, 0), deletion));
  // A creation's reply taken for a deletion, or the other way round, is stale.
  CHECK(decode_reply(mapping_reply(129, 0, 1, 7076, 7076, 3600), deletion).error() == DecodeError::inconsistent);
  CHECK(decode_reply(mapping_reply(129, 0, 1, 7076, 0, 0), kUdp7076).error() == DecodeError::inconsistent);
  CHECK(decode_reply(mapping_reply(129, 0, 1, 7076, 0, 3600), kUdp7076).error() == DecodeError::inconsistent);
  CHECK(decode_reply(mapping_reply(129, 0, 1, 7076, 7076, 0), kUdp7076).error() == DecodeError::inconsistent);
}

TEST_CASE("natpmp codec: only the gateway's port 5351 is a server", "[natpmp]") {
  const auto gw = boost::asio::ip::make_address_v4("10.77.0.1");
  CHECK(is_from_server(gw, 5351, gw));
  CHECK_FALSE(is_from_server(gw, 5350, gw));
  CHECK_FALSE(is_from_server(gw, 40000, gw));
  CHECK_FALSE(is_from_server(boost::asio::ip::make_address_v4("10.77.0.9"), 5351, gw));
}

TEST_CASE("natpmp codec: helpers", "[natpmp]") {
  CHECK(mapping_opcode(Transport::udp) == Opcode::map_udp);
  CHECK(mapping_opcode(Transport::tcp) == Opcode::map_tcp);
  CHECK(reply_size(Opcode::public_address) == 12);
  CHECK(reply_size(Opcode::map_tcp) == 16);
  CHECK(to_string(DecodeError::internal_port) == "wrong internal port");
  CHECK(to_string(DecodeError::nonzero_reserved) == "reserved field not zero");
}

TEST_CASE("natpmp codec: a public address request is version 0, opcode 0 and nothing else", "[natpmp]") {
  const Request request;  // RFC 6886 §3.2
  const auto bytes = encode_request(request);
  CHECK(bytes == Bytes{0, 0});
  CHECK(decode_request(bytes) == request);
}

TEST_CASE("natpmp codec: mapping requests follow the byte layout of RFC 6886 §3.3", "[natpmp]") {
  const Request udp{Opcode::map_udp, 7076, 40000, 3600};
  // version, opcode, reserved (2), internal port, suggested external port, lifetime
  CHECK(encode_request(udp) == Bytes{0, 1, 0, 0, 0x1B, 0xA4, 0x9C, 0x40, 0, 0, 0x0E, 0x10});
  CHECK(decode_request(encode_request(udp)) == udp);

  const Request tcp{Opcode::map_tcp, 0xFFFF, 0x0102, 0xFFFFFFFE};
  CHECK(encode_request(tcp) == Bytes{0, 2, 0, 0, 0xFF, 0xFF, 0x01, 0x02, 0xFF, 0xFF, 0xFF, 0xFE});
  CHECK(decode_request(encode_request(tcp)) == tcp);

  const Request deletion{Opcode::map_tcp, 15063, 0, 0};  // §3.4
  CHECK(encode_request(deletion) == Bytes{0, 2, 0, 0, 0x3A, 0xD7, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("natpmp codec: what is no request does not decode as one", "[natpmp]") {
  const auto mapping = encode_request({Opcode::map_udp, 7076, 7076, 3600});
  CHECK(decode_request(Bytes{}) == DecodeError::length);
  CHECK(decode_request(Bytes{0}) == DecodeError::length);
  CHECK(decode_request(Bytes{0, 0, 0}) == DecodeError::length);         // public address request, too long
  CHECK(decode_request(Bytes{1, 0}) == DecodeError::version);           // version 1
  CHECK(decode_request(Bytes{0, 3}) == DecodeError::opcode);            // unknown opcode
  CHECK(decode_request(address_reply(0, 1)) == DecodeError::opcode);    // a reply
  CHECK(decode_request(Bytes(mapping.begin(), mapping.end() - 1)) == DecodeError::length);
  auto longer = mapping;
  longer.push_back(0);
  CHECK(decode_request(longer) == DecodeError::length);
  auto reserved = mapping;
  reserved[3] = 1;
  CHECK(decode_request(reserved) == DecodeError::nonzero_reserved);
  auto opcode_only = mapping;
  opcode_only.resize(2);
  CHECK(decode_request(opcode_only) == DecodeError::length);            // a mapping opcode needs its fields
}
