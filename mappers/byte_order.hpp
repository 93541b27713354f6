#pragma once
// Network byte order reads and writes for the codecs. Offsets are the
// caller's to check against the buffer's size first.
#include <cstddef>
#include <cstdint>
#include <span>

namespace natkeeper::wire {

inline void put16(std::span<std::uint8_t> out, std::size_t at, std::uint16_t value) noexcept {
  out[at] = static_cast<std::uint8_t>(value >> 8);
  out[at + 1] = static_cast<std::uint8_t>(value);
}

inline void put32(std::span<std::uint8_t> out, std::size_t at, std::uint32_t value) noexcept {
  put16(out, at, static_cast<std::uint16_t>(value >> 16));
  put16(out, at + 2, static_cast<std::uint16_t>(value));
}

inline std::uint16_t get16(std::span<const std::uint8_t> in, std::size_t at) noexcept {
  return static_cast<std::uint16_t>(in[at] << 8 | in[at + 1]);
}

inline std::uint32_t get32(std::span<const std::uint8_t> in, std::size_t at) noexcept {
  return static_cast<std::uint32_t>(get16(in, at)) << 16 | get16(in, at + 2);
}

}  // namespace natkeeper::wire
