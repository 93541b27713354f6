#pragma once
// HMAC-SHA256 (RFC 2104) for the PCP nonces and the reflector's cookies and
// request tags, through libsodium.
#include <array>
#include <cstdint>
#include <span>

namespace natkeeper {

using Sha256Digest = std::array<std::uint8_t, 32>;

// Any key length, including empty.
Sha256Digest hmac_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> message) noexcept;

// Compares in time independent of where they differ (MAC checks).
bool equal_constant_time(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept;

}  // namespace natkeeper
