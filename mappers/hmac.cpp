#include "mappers/hmac.hpp"

#include <sodium.h>

namespace natkeeper {

namespace {

// libsodium declares its pointers non-null even for zero lengths, and an empty
// span's data() may be null.
const std::uint8_t* never_null(std::span<const std::uint8_t> bytes) {
  static constexpr std::uint8_t kNothing = 0;
  return bytes.empty() ? &kNothing : bytes.data();
}

}  // namespace

Sha256Digest hmac_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> message) noexcept {
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, never_null(key), key.size());
  crypto_auth_hmacsha256_update(&state, never_null(message), message.size());
  Sha256Digest digest{};
  crypto_auth_hmacsha256_final(&state, digest.data());
  sodium_memzero(&state, sizeof state);
  return digest;
}

bool equal_constant_time(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept {
  return a.size() == b.size() && sodium_memcmp(never_null(a), never_null(b), a.size()) == 0;
}

}  // namespace natkeeper
