#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "mappers/hmac.hpp"

using natkeeper::hmac_sha256;

namespace {

std::vector<std::uint8_t> bytes_of(std::string_view text) { return {text.begin(), text.end()}; }

std::string hex(const natkeeper::Sha256Digest& digest) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const auto b : digest) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
  return out;
}

}  // namespace

TEST_CASE("HMAC-SHA256 matches RFC 4231's test vectors", "[hmac]") {
  CHECK(hex(hmac_sha256(std::vector<std::uint8_t>(20, 0x0b), bytes_of("Hi There"))) ==
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  CHECK(hex(hmac_sha256(bytes_of("Jefe"), bytes_of("what do ya want for nothing?"))) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // a key longer than SHA-256's 64-byte block is hashed first
  CHECK(hex(hmac_sha256(std::vector<std::uint8_t>(131, 0xaa),
                        bytes_of("Test Using Larger Than Block-Size Key - Hash Key First"))) ==
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  CHECK(hex(hmac_sha256({}, {})) == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST_CASE("MAC comparison: equal only with equal length and bytes", "[hmac]") {
  const auto a = bytes_of("0123456789abcdef"), b = bytes_of("0123456789abcdeF");
  CHECK(natkeeper::equal_constant_time(a, a));
  CHECK_FALSE(natkeeper::equal_constant_time(a, b));
  CHECK_FALSE(natkeeper::equal_constant_time(a, std::span(a).first(15)));
}
