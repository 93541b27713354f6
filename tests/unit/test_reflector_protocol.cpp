#include <catch2/catch.hpp>

#include "result_printer.hpp"


#include <algorithm>
#include <vector>

#include "agent/reflector/protocol.hpp"
#include "mappers/hmac.hpp"

using namespace natkeeper;
using namespace natkeeper::reflector;
namespace ip = boost::asio::ip;

namespace {

Token token_of(std::uint8_t first) {
  Token token{};
  for (std::size_t i = 0; i < token.size(); ++i) token[i] = static_cast<std::uint8_t>(first + i);
  return token;
}

Cookie cookie_of(std::uint8_t first) {
  Cookie cookie{};
  for (std::size_t i = 0; i < cookie.size(); ++i) cookie[i] = static_cast<std::uint8_t>(first + 3 * i);
  return cookie;
}

template <class Bytes>
std::vector<std::uint8_t> slice(const Bytes& bytes, std::size_t at, std::size_t size) {
  return {bytes.begin() + static_cast<std::ptrdiff_t>(at), bytes.begin() + static_cast<std::ptrdiff_t>(at + size)};
}

template <std::size_t N>
std::vector<std::uint8_t> vec(const std::array<std::uint8_t, N>& bytes) {
  return {bytes.begin(), bytes.end()};
}

std::vector<std::uint8_t> key_bytes(std::string_view text) { return {text.begin(), text.end()}; }

const std::vector<std::uint8_t> kMagicBytes{'N', 'K', 'R', 'F'};

void check_header(std::span<const std::uint8_t> bytes, MessageType type, const Token& token) {
  CHECK(slice(bytes, header::kMagic, 4) == kMagicBytes);
  CHECK(bytes[header::kVersion] == 1);
  CHECK(bytes[header::kType] == static_cast<std::uint8_t>(type));
  CHECK(bytes[header::kReserved] == 0);
  CHECK(bytes[header::kReserved + 1] == 0);
  CHECK(slice(bytes, header::kToken, 16) == vec(token));
}

}  // namespace

TEST_CASE("reflector request: byte layout at the documented offsets", "[reflector][protocol]") {
  const RequestFields fields{token_of(0x10), Transport::tcp, 0xBEEF, cookie_of(0x40)};
  const auto bytes = encode_request(fields);
  REQUIRE(bytes.size() == 76);
  check_header(bytes, MessageType::request, fields.token);
  CHECK(bytes[24] == 6);
  CHECK(bytes[25] == 0);
  CHECK(bytes[26] == 0xBE);
  CHECK(bytes[27] == 0xEF);
  CHECK(slice(bytes, 28, 32) == vec(fields.cookie));
  CHECK(slice(bytes, 60, 16) == std::vector<std::uint8_t>(16, 0));  // no key: zero tag
  CHECK(encode_request({token_of(0), Transport::udp, 1, {}})[request::kTransport] == 17);
}

TEST_CASE("reflector request: the auth tag is HMAC-SHA256 of bytes 0-59, cut to 16", "[reflector][protocol]") {
  const auto key = key_bytes("correct horse battery staple");
  const RequestFields fields{token_of(1), Transport::udp, 20000, cookie_of(7)};
  const auto bytes = encode_request(fields, key);
  const auto digest = natkeeper::hmac_sha256(key, std::span(bytes).first(60));
  CHECK(slice(bytes, 60, 16) == slice(digest, 0, 16));
  CHECK(vec(compute_auth_tag(key, bytes)) == slice(digest, 0, 16));

  CHECK(auth_tag_valid(bytes, key));
  CHECK_FALSE(auth_tag_valid(bytes, key_bytes("correct horse battery stapler")));
  CHECK_FALSE(auth_tag_valid(encode_request(fields), key));  // untagged
  for (std::size_t at : {std::size_t{0}, header::kToken, request::kTargetPort, request::kCookie + 31,
                         request::kAuthTag, request::kAuthTag + 15}) {
    auto tampered = bytes;
    tampered[at] ^= 0x01;
    INFO("byte " << at);
    CHECK_FALSE(auth_tag_valid(tampered, key));
  }
  CHECK_FALSE(auth_tag_valid(std::span(bytes).first(75), key));
  // Padding is not covered, but the tag still checks out on a padded request.
  std::vector<std::uint8_t> padded(bytes.begin(), bytes.end());
  padded.resize(200, 0);
  CHECK(auth_tag_valid(padded, key));
}

TEST_CASE("reflector request: decode round trip, with and without padding", "[reflector][protocol]") {
  const RequestFields fields{token_of(0xA0), Transport::udp, 7076, cookie_of(0x11)};
  const auto bytes = encode_request(fields, key_bytes("0123456789abcdef"));
  auto request = decode_request(bytes);
  REQUIRE(request);
  CHECK(request->token == fields.token);
  CHECK(request->transport == 17);
  CHECK(probe_transport(*request) == Transport::udp);
  CHECK(request->target_port == 7076);
  CHECK(request->cookie == fields.cookie);
  CHECK(vec(request->auth_tag) == slice(bytes, 60, 16));
  CHECK(request->size == 76);

  std::vector<std::uint8_t> padded(bytes.begin(), bytes.end());
  padded.resize(request::kMaxSize, 0);
  request = decode_request(padded);
  REQUIRE(request);
  CHECK(request->size == 512);
  CHECK(request->target_port == 7076);
}

TEST_CASE("reflector request: rejected when truncated, oversized or not a v1 request", "[reflector][protocol]") {
  const auto good = encode_request({token_of(3), Transport::tcp, 443, {}});
  std::vector<std::uint8_t> bytes(good.begin(), good.end());
  auto error_of = [](std::span<const std::uint8_t> in) {
    auto result = decode_request(in);
    REQUIRE_FALSE(result);
    return result.error();
  };
  CHECK(error_of({}) == DecodeError::too_short);
  CHECK(error_of(std::span(bytes).first(23)) == DecodeError::too_short);
  CHECK(error_of(std::span(bytes).first(24)) == DecodeError::too_short);
  CHECK(error_of(std::span(bytes).first(75)) == DecodeError::too_short);

  auto oversized = bytes;
  oversized.resize(request::kMaxSize + 1, 0);
  CHECK(error_of(oversized) == DecodeError::too_long);
  auto big = bytes;
  big.resize(65536, 0);
  CHECK(error_of(big) == DecodeError::too_long);

  auto mutate = [&](std::size_t at, std::uint8_t value) {
    auto copy = bytes;
    copy[at] = value;
    return copy;
  };
  CHECK(error_of(mutate(0, 'X')) == DecodeError::bad_magic);
  CHECK(error_of(mutate(3, 'f')) == DecodeError::bad_magic);
  CHECK(error_of(mutate(header::kVersion, 2)) == DecodeError::bad_version);
  CHECK(error_of(mutate(header::kVersion, 0)) == DecodeError::bad_version);
  for (std::uint8_t type : {0, 2, 3, 4, 5, 255}) CHECK(error_of(mutate(header::kType, type)) == DecodeError::wrong_type);
  CHECK(error_of(mutate(header::kReserved, 1)) == DecodeError::nonzero_reserved);
  CHECK(error_of(mutate(header::kReserved + 1, 0x80)) == DecodeError::nonzero_reserved);
  // Byte 25 was reserved before handshakes: it is the kind now, judged by the server.
  CHECK(decode_request(mutate(request::kKind, 9)));

  auto padded = bytes;
  padded.resize(100, 0);
  padded[99] = 1;
  CHECK(error_of(padded) == DecodeError::nonzero_padding);
}

TEST_CASE("reflector request: transport and port are decoded as sent, judged by the server", "[reflector][protocol]") {
  auto bytes = encode_request({token_of(3), Transport::tcp, 0, {}});
  bytes[request::kTransport] = 99;
  const auto request = decode_request(bytes);
  REQUIRE(request);
  CHECK(request->transport == 99);
  CHECK_FALSE(probe_transport(*request));
  CHECK(request->target_port == 0);
}

TEST_CASE("reflector request: the kind is byte 25, covered by the tag; unknown kinds decode as sent",
          "[reflector][protocol]") {
  const auto key = key_bytes("0123456789abcdef");
  const RequestFields deliver{token_of(4), Transport::tcp, 15063, cookie_of(1), ProbeKind::deliver};
  auto handshake = deliver;
  handshake.kind = ProbeKind::handshake;
  const auto deliver_bytes = encode_request(deliver, key);
  const auto handshake_bytes = encode_request(handshake, key);
  CHECK(deliver_bytes[25] == 0);  // what a client that predates handshakes sends
  CHECK(handshake_bytes[25] == 1);
  CHECK(slice(deliver_bytes, 60, 16) != slice(handshake_bytes, 60, 16));
  CHECK(auth_tag_valid(handshake_bytes, key));
  auto forged = deliver_bytes;  // a deliver request turned into a handshake without the key
  forged[request::kKind] = 1;
  CHECK_FALSE(auth_tag_valid(forged, key));

  const auto decoded = decode_request(handshake_bytes);
  REQUIRE(decoded);
  CHECK(decoded->kind == 1);
  CHECK(probe_kind(*decoded) == ProbeKind::handshake);
  CHECK(probe_kind(*decode_request(deliver_bytes)) == ProbeKind::deliver);
  auto unknown = handshake_bytes;
  unknown[request::kKind] = 2;
  const auto future = decode_request(unknown);
  REQUIRE(future);
  CHECK(future->kind == 2);
  CHECK_FALSE(probe_kind(*future));
}

TEST_CASE("reflector cookie reply: layout and round trip, IPv4 and IPv6", "[reflector][protocol]") {
  const Token token = token_of(0x55);
  const Cookie cookie = cookie_of(0x99);
  SECTION("IPv4 travels IPv4-mapped") {
    const Source observed{ip::make_address("203.0.113.1"), 40001};
    const auto bytes = encode_cookie(token, observed, cookie);
    REQUIRE(bytes.size() == 76);
    check_header(bytes, MessageType::cookie, token);
    CHECK(slice(bytes, 24, 16) ==
          std::vector<std::uint8_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 1});
    CHECK(bytes[40] == 0x9C);  // 40001 = 0x9C41
    CHECK(bytes[41] == 0x41);
    CHECK(bytes[42] == 0);
    CHECK(bytes[43] == 0);
    CHECK(slice(bytes, 44, 32) == vec(cookie));

    const auto reply = decode_reply(bytes);
    REQUIRE(reply);
    CHECK(reply->type == MessageType::cookie);
    CHECK(reply->token == token);
    CHECK(reply->observed == observed);
    CHECK(reply->observed.address.is_v4());
    CHECK(reply->cookie == cookie);
  }
  SECTION("IPv6 as it is") {
    const Source observed{ip::make_address("2001:db8::7"), 7000};
    const auto bytes = encode_cookie(token, observed, cookie);
    CHECK(slice(bytes, 24, 16) == vec(observed.address.to_v6().to_bytes()));
    const auto reply = decode_reply(bytes);
    REQUIRE(reply);
    CHECK(reply->observed == observed);
  }
}

TEST_CASE("reflector result reply: layout, statuses and round trip", "[reflector][protocol]") {
  const Token token = token_of(0x21);
  const Source observed{ip::make_address("198.51.100.9"), 1};
  for (auto status : {Status::sent, Status::rate_limited, Status::auth_failed, Status::bad_request, Status::busy,
                      Status::connected, Status::refused, Status::no_answer}) {
    const auto bytes = encode_result(token, status, observed);
    REQUIRE(bytes.size() == 46);
    check_header(bytes, MessageType::result, token);
    CHECK(bytes[24] == static_cast<std::uint8_t>(status));
    CHECK(bytes[25] == 0);
    CHECK(slice(bytes, 26, 16) ==
          std::vector<std::uint8_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 9});
    CHECK(bytes[42] == 0);
    CHECK(bytes[43] == 1);
    CHECK(bytes[44] == 0);
    CHECK(bytes[45] == 0);
    const auto reply = decode_reply(bytes);
    REQUIRE(reply);
    CHECK(reply->type == MessageType::result);
    CHECK(reply->status == status);
    CHECK(reply->token == token);
    CHECK(reply->observed == observed);
    CHECK_FALSE(to_string(status).empty());
  }
  CHECK(static_cast<int>(Status::sent) == 0);
  CHECK(static_cast<int>(Status::rate_limited) == 1);
  CHECK(static_cast<int>(Status::auth_failed) == 2);
  CHECK(static_cast<int>(Status::bad_request) == 3);
  CHECK(static_cast<int>(Status::busy) == 4);
  CHECK(static_cast<int>(Status::connected) == 5);
  CHECK(static_cast<int>(Status::refused) == 6);
  CHECK(static_cast<int>(Status::no_answer) == 7);
  // A status from a newer reflector decodes; the client treats it as a failure.
  auto bytes = encode_result(token, Status::sent, observed);
  bytes[24] = 77;
  const auto reply = decode_reply(bytes);
  REQUIRE(reply);
  CHECK(static_cast<int>(reply->status) == 77);
  CHECK(to_string(reply->status) == "unknown status");
}

TEST_CASE("reflector replies: exact sizes only, right magic, version and type", "[reflector][protocol]") {
  const Source observed{ip::make_address("192.0.2.1"), 9};
  const auto cookie = encode_cookie(token_of(1), observed, cookie_of(1));
  const auto result = encode_result(token_of(1), Status::sent, observed);
  auto error_of = [](std::span<const std::uint8_t> in) {
    auto reply = decode_reply(in);
    REQUIRE_FALSE(reply);
    return reply.error();
  };
  CHECK(error_of(std::span(cookie).first(75)) == DecodeError::too_short);
  CHECK(error_of(std::span(result).first(45)) == DecodeError::too_short);
  CHECK(error_of(std::span(result).first(10)) == DecodeError::too_short);
  std::vector<std::uint8_t> longer(cookie.begin(), cookie.end());
  longer.push_back(0);
  CHECK(error_of(longer) == DecodeError::too_long);
  std::vector<std::uint8_t> longer_result(result.begin(), result.end());
  longer_result.push_back(0);
  CHECK(error_of(longer_result) == DecodeError::too_long);
  auto bad = cookie;
  bad[1] = 'k';
  CHECK(error_of(bad) == DecodeError::bad_magic);
  bad = cookie;
  bad[header::kVersion] = 9;
  CHECK(error_of(bad) == DecodeError::bad_version);
  CHECK(error_of(encode_request({token_of(1), Transport::udp, 5, {}})) == DecodeError::wrong_type);
  CHECK(error_of(encode_probe(token_of(1))) == DecodeError::wrong_type);
  // Reserved fields in replies are ignored.
  auto reserved = result;
  reserved[result_reply::kReserved] = 1;
  reserved[header::kReserved] = 1;
  CHECK(decode_reply(reserved));
}

TEST_CASE("reflector probe: the 24-byte header with the client's token", "[reflector][protocol]") {
  const Token token = token_of(0xF0);
  const auto bytes = encode_probe(token);
  REQUIRE(bytes.size() == 24);
  check_header(bytes, MessageType::probe, token);
  const auto decoded = decode_probe(bytes);
  REQUIRE(decoded);
  CHECK(*decoded == token);

  CHECK(decode_probe(std::span(bytes).first(23)).error() == DecodeError::too_short);
  std::vector<std::uint8_t> longer(bytes.begin(), bytes.end());
  longer.push_back(0);
  CHECK(decode_probe(longer).error() == DecodeError::too_long);
  auto wrong = bytes;
  wrong[header::kType] = 3;
  CHECK(decode_probe(wrong).error() == DecodeError::wrong_type);
  wrong = bytes;
  wrong[0] = 0;
  CHECK(decode_probe(wrong).error() == DecodeError::bad_magic);
  wrong = bytes;
  wrong[header::kVersion] = 2;
  CHECK(decode_probe(wrong).error() == DecodeError::bad_version);
}

TEST_CASE("reflector TCP framing: a 16-bit big-endian length, then the message", "[reflector][protocol]") {
  const RequestFields fields{token_of(9), Transport::udp, 5060, {}};
  const auto framed = encode_tcp_request(fields);
  REQUIRE(framed.size() == 78);
  CHECK(framed[0] == 0);
  CHECK(framed[1] == 76);
  CHECK(slice(framed, 2, 76) == vec(encode_request(fields)));
  CHECK(decode_frame_length(std::span<const std::uint8_t, 2>(framed.data(), 2)) == 76);

  const Source observed{ip::make_address("192.0.2.1"), 9};
  const auto result = encode_tcp_result(token_of(9), Status::busy, observed);
  REQUIRE(result.size() == 48);
  CHECK(result[0] == 0);
  CHECK(result[1] == 46);
  CHECK(slice(result, 2, 46) == vec(encode_result(token_of(9), Status::busy, observed)));

  CHECK(vec(encode_frame_length(0x1234)) == std::vector<std::uint8_t>{0x12, 0x34});
  const std::array<std::uint8_t, 2> length{0x01, 0xF4};
  CHECK(decode_frame_length(length) == 500);
}

TEST_CASE("reflector replies and probes are never larger than a request", "[reflector][protocol]") {
  CHECK(cookie_reply::kSize <= request::kSize);
  CHECK(result_reply::kSize <= request::kSize);
  CHECK(probe::kSize <= request::kSize);
}

TEST_CASE("reflector cookies: bound to address, port, slot and secret", "[reflector][protocol]") {
  Secret secret{};
  secret.fill(0x42);
  const Source source{ip::make_address("203.0.113.1"), 40000};
  const std::uint64_t slot = 1'000'000;
  const auto cookie = make_cookie(secret, source, slot);
  CHECK(cookie == make_cookie(secret, source, slot));
  CHECK(cookie != make_cookie(secret, {source.address, 40001}, slot));
  CHECK(cookie != make_cookie(secret, {ip::make_address("203.0.113.2"), 40000}, slot));
  CHECK(cookie != make_cookie(secret, source, slot + 1));
  Secret other = secret;
  other[31] = 0;
  CHECK(cookie != make_cookie(other, source, slot));
  // A dual-stack socket's ::ffff:203.0.113.1 is the same source.
  CHECK(cookie == make_cookie(secret, {ip::make_address("::ffff:203.0.113.1"), 40000}, slot));

  CHECK(cookie_valid(secret, source, cookie, slot));
  CHECK(cookie_valid(secret, source, cookie, slot + 1));  // the previous slot still counts
  CHECK_FALSE(cookie_valid(secret, source, cookie, slot + 2));
  CHECK_FALSE(cookie_valid(secret, source, cookie, slot - 1));  // not from the future
  CHECK_FALSE(cookie_valid(secret, {source.address, 40001}, cookie, slot));
  CHECK_FALSE(cookie_valid(other, source, cookie, slot));
  CHECK_FALSE(cookie_valid(secret, source, Cookie{}, slot));
  CHECK_FALSE(cookie_valid(secret, source, Cookie{}, 0));
}

TEST_CASE("reflector cookie slots are 30 seconds", "[reflector][protocol]") {
  using std::chrono::seconds;
  const std::chrono::system_clock::time_point epoch{};
  CHECK(cookie_slot(epoch) == 0);
  CHECK(cookie_slot(epoch + seconds(29)) == 0);
  CHECK(cookie_slot(epoch + seconds(30)) == 1);
  CHECK(cookie_slot(epoch + seconds(1'700'000'000)) == 1'700'000'000 / 30);
  CHECK(cookie_slot(epoch - seconds(5)) == 0);
}

TEST_CASE("reflector key file text: trimmed, 16 to 1024 bytes, used as it is", "[reflector][protocol]") {
  const auto key = parse_key("  s3cret-s3cret-s3cret\n");
  REQUIRE(key);
  CHECK(*key == key_bytes("s3cret-s3cret-s3cret"));
  CHECK(parse_key("0123456789abcdef") == key_bytes("0123456789abcdef"));
  CHECK_FALSE(parse_key("0123456789abcde"));
  CHECK_FALSE(parse_key(""));
  CHECK_FALSE(parse_key(" \n\t "));
  CHECK(parse_key(std::string(1024, 'k')));
  CHECK_FALSE(parse_key(std::string(1025, 'k')));
  CHECK(parse_key("inner spaces are part of it") == key_bytes("inner spaces are part of it"));
}

TEST_CASE("reflector addresses: IPv4-mapped IPv6 becomes IPv4", "[reflector][protocol]") {
  CHECK(normalized(ip::make_address("::ffff:10.1.2.3")) == ip::make_address("10.1.2.3"));
  CHECK(normalized(ip::make_address("10.1.2.3")) == ip::make_address("10.1.2.3"));
  CHECK(normalized(ip::make_address("2001:db8::1")) == ip::make_address("2001:db8::1"));
}

TEST_CASE("reflector decode errors all have a message", "[reflector][protocol]") {
  for (auto error : {DecodeError::too_short, DecodeError::too_long, DecodeError::bad_magic, DecodeError::bad_version,
                     DecodeError::wrong_type, DecodeError::nonzero_reserved, DecodeError::nonzero_padding})
    CHECK_FALSE(to_string(error).empty());
}
