#include <catch2/catch.hpp>

#include "agent/codecs/stun_codec.hpp"
#include "result_printer.hpp"

using namespace natkeeper::stun;
using boost::asio::ip::make_address;

namespace {

const TransactionId kId{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

// A Binding success response as coturn sends it, built by hand.
std::vector<std::uint8_t> coturn_like_response() {
  std::vector<std::uint8_t> m = {0x01, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42};
  m.insert(m.end(), kId.begin(), kId.end());
  // XOR-MAPPED-ADDRESS 203.0.113.1:20000
  const std::uint16_t xport = 20000 ^ 0x2112;
  const std::uint32_t xaddr = (203u << 24 | 0u << 16 | 113u << 8 | 1u) ^ kMagicCookie;
  for (std::uint8_t b : {0x00, 0x20, 0x00, 0x08, 0x00, 0x01}) m.push_back(b);
  m.push_back(static_cast<std::uint8_t>(xport >> 8));
  m.push_back(static_cast<std::uint8_t>(xport));
  for (int s = 24; s >= 0; s -= 8) m.push_back(static_cast<std::uint8_t>(xaddr >> s));
  // RESPONSE-ORIGIN 203.0.113.3:3479
  for (std::uint8_t b : {0x80, 0x2b, 0x00, 0x08, 0x00, 0x01, 0x0d, 0x97, 203, 0, 113, 3}) m.push_back(b);
  // OTHER-ADDRESS 203.0.113.3:3479
  for (std::uint8_t b : {0x80, 0x2c, 0x00, 0x08, 0x00, 0x01, 0x0d, 0x97, 203, 0, 113, 3}) m.push_back(b);
  // SOFTWARE "x" padded to 4
  for (std::uint8_t b : {0x80, 0x22, 0x00, 0x01, 0x78, 0x00, 0x00, 0x00}) m.push_back(b);
  const auto length = m.size() - kHeaderSize;
  m[2] = static_cast<std::uint8_t>(length >> 8);
  m[3] = static_cast<std::uint8_t>(length);
  return m;
}

// A Binding error response with an ERROR-CODE value and then `more` attributes.
std::vector<std::uint8_t> error_response(std::vector<std::uint8_t> error_code, std::vector<std::uint8_t> more = {}) {
  std::vector<std::uint8_t> m = {0x01, 0x11, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42};
  m.insert(m.end(), kId.begin(), kId.end());
  m.push_back(0x00);
  m.push_back(0x09);
  m.push_back(0x00);
  m.push_back(static_cast<std::uint8_t>(error_code.size()));
  m.insert(m.end(), error_code.begin(), error_code.end());
  m.resize(kHeaderSize + 4 + ((error_code.size() + 3) & ~std::size_t{3}), 0);
  m.insert(m.end(), more.begin(), more.end());
  const auto length = m.size() - kHeaderSize;
  m[2] = static_cast<std::uint8_t>(length >> 8);
  m[3] = static_cast<std::uint8_t>(length);
  return m;
}

}  // namespace

TEST_CASE("a Binding request carries CHANGE-REQUEST and RESPONSE-PORT") {
  const auto bytes = encode_binding_request({kId, kChangeIp | kChangePort, 20000});
  REQUIRE(bytes.size() == kHeaderSize + 8 + 8);
  CHECK(bytes[0] == 0x00);
  CHECK(bytes[1] == 0x01);
  CHECK(bytes[2] == 0x00);
  CHECK(bytes[3] == 16);
  CHECK(std::vector<std::uint8_t>(bytes.begin() + 4, bytes.begin() + 8) ==
        std::vector<std::uint8_t>{0x21, 0x12, 0xA4, 0x42});
  CHECK(std::equal(kId.begin(), kId.end(), bytes.begin() + header::kTransactionId));
  // CHANGE-REQUEST: type 0x0003, length 4, flags 0x00000006
  CHECK(std::vector<std::uint8_t>(bytes.begin() + 20, bytes.begin() + 28) ==
        std::vector<std::uint8_t>{0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x06});
  // RESPONSE-PORT: type 0x0027, length 4, port 20000, 2 bytes padding
  CHECK(std::vector<std::uint8_t>(bytes.begin() + 28, bytes.end()) ==
        std::vector<std::uint8_t>{0x00, 0x27, 0x00, 0x04, 0x4e, 0x20, 0x00, 0x00});
}

TEST_CASE("a plain Binding request has no attributes") {
  const auto bytes = encode_binding_request({kId, 0, std::nullopt});
  CHECK(bytes.size() == kHeaderSize);
  CHECK(bytes[3] == 0);
}

TEST_CASE("a success response yields the mapped address and the RFC 5780 attributes") {
  const auto bytes = coturn_like_response();
  const auto response = decode_binding_response(bytes);
  REQUIRE(response.has_value());
  CHECK(response->type == MessageType::binding_success);
  CHECK(response->transaction_id == kId);
  REQUIRE(response->mapped);
  CHECK(response->mapped->address() == make_address("203.0.113.1"));
  CHECK(response->mapped->port() == 20000);
  REQUIRE(response->response_origin);
  CHECK(response->response_origin->address() == make_address("203.0.113.3"));
  CHECK(response->response_origin->port() == 3479);
  REQUIRE(response->other_address);
  CHECK(response->other_address->address() == make_address("203.0.113.3"));
  CHECK(response->other_address->port() == 3479);
}

TEST_CASE("an error response yields its code") {
  const auto response = decode_binding_response(error_response({0x00, 0x00, 0x04, 0x14}));  // class 4, number 20
  REQUIRE(response.has_value());
  CHECK(response->type == MessageType::binding_error);
  CHECK(response->error_code == 420);
  CHECK(response->unknown_attributes.empty());
}

TEST_CASE("a 420 error names the attributes the server does not know") {
  // ERROR-CODE 420 "Unknown" and UNKNOWN-ATTRIBUTES CHANGE-REQUEST, 0x7f01, padded
  const auto bytes = error_response({0x00, 0x00, 0x04, 0x14, 'U', 'n', 'k', 'n', 'o', 'w', 'n', 0x00},
                                    {0x00, 0x0a, 0x00, 0x04, 0x00, 0x03, 0x7f, 0x01});
  const auto response = decode_binding_response(bytes);
  REQUIRE(response.has_value());
  CHECK(response->error_code == 420);
  CHECK(response->unknown_attributes == std::vector{Attribute::change_request, static_cast<Attribute>(0x7f01)});
  CHECK(name(response->unknown_attributes[0]) == "CHANGE-REQUEST");
  CHECK(name(response->unknown_attributes[1]) == "0x7f01");

  // One attribute: 2 bytes of value, 2 of padding.
  const auto one = decode_binding_response(
      error_response({0x00, 0x00, 0x04, 0x14}, {0x00, 0x0a, 0x00, 0x02, 0x00, 0x27, 0x00, 0x00}));
  REQUIRE(one.has_value());
  CHECK(one->unknown_attributes == std::vector{Attribute::response_port});
}

TEST_CASE("a malformed ERROR-CODE or UNKNOWN-ATTRIBUTES is rejected") {
  CHECK(decode_binding_response(error_response({0x00, 0x00, 0x04})).error() == DecodeError::bad_attribute);
  CHECK(decode_binding_response(error_response({0x00, 0x00, 0x02, 0x14})).error() == DecodeError::bad_attribute);
  CHECK(decode_binding_response(error_response({0x00, 0x00, 0x07, 0x14})).error() == DecodeError::bad_attribute);
  CHECK(decode_binding_response(error_response({0x00, 0x00, 0x04, 100})).error() == DecodeError::bad_attribute);
  // an odd length: half an attribute type
  CHECK(decode_binding_response(error_response({0x00, 0x00, 0x04, 0x14}, {0x00, 0x0a, 0x00, 0x03, 0x00, 0x03, 0x00,
                                                                           0x00}))
            .error() == DecodeError::bad_attribute);
  // a length past the message
  CHECK(decode_binding_response(error_response({0x00, 0x00, 0x04, 0x14}, {0x00, 0x0a, 0x00, 0x08, 0x00, 0x03, 0x00,
                                                                           0x27}))
            .error() == DecodeError::bad_attribute);
}

TEST_CASE("without OTHER-ADDRESS, RFC 3489's CHANGED-ADDRESS names the other address") {
  auto bytes = coturn_like_response();
  // OTHER-ADDRESS (0x802c) becomes CHANGED-ADDRESS (0x0005); its value stays
  bytes[kHeaderSize + 24] = 0x00;
  bytes[kHeaderSize + 25] = 0x05;
  const auto response = decode_binding_response(bytes);
  REQUIRE(response.has_value());
  REQUIRE(response->other_address);
  CHECK(response->other_address->address() == make_address("203.0.113.3"));
  CHECK(response->other_address->port() == 3479);

  bytes[kHeaderSize + 25] = 0x06;  // USERNAME: no other address
  const auto without = decode_binding_response(bytes);
  REQUIRE(without.has_value());
  CHECK_FALSE(without->other_address);
}

TEST_CASE("what is not a well-formed STUN response is rejected") {
  const auto good = coturn_like_response();
  for (std::size_t n = 0; n < kHeaderSize; ++n)
    CHECK(decode_binding_response(std::span(good).first(n)).error() == DecodeError::too_short);
  CHECK(decode_binding_response(std::span(good).first(good.size() - 4)).error() == DecodeError::bad_length);

  auto request = encode_binding_request({kId, 0, std::nullopt});
  CHECK(decode_binding_response(request).error() == DecodeError::not_a_response);

  auto wrong_cookie = good;
  wrong_cookie[4] ^= 1;
  CHECK(decode_binding_response(wrong_cookie).error() == DecodeError::not_stun);

  auto top_bits = good;
  top_bits[0] |= 0x80;
  CHECK(decode_binding_response(top_bits).error() == DecodeError::not_stun);

  auto overrun = good;
  overrun[kHeaderSize + 3] = 0x40;  // XOR-MAPPED-ADDRESS claims 64 bytes
  CHECK(decode_binding_response(overrun).error() == DecodeError::bad_attribute);

  auto bad_family = good;
  bad_family[kHeaderSize + 5] = 0x07;
  CHECK(decode_binding_response(bad_family).error() == DecodeError::bad_attribute);

  std::vector<std::uint8_t> huge(kMaxMessageSize + 4, 0);
  CHECK(decode_binding_response(huge).error() == DecodeError::too_long);
}
