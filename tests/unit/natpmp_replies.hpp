#pragma once
// NAT-PMP replies built by hand (RFC 6886 §3.2, §3.3), for the codec and mapper tests.
#include <cstdint>
#include <vector>

namespace natpmp_replies {

using Bytes = std::vector<std::uint8_t>;

inline void put16(Bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}

inline void put32(Bytes& b, std::uint32_t v) {
  put16(b, static_cast<std::uint16_t>(v >> 16));
  put16(b, static_cast<std::uint16_t>(v));
}

// 203.0.113.1 unless told otherwise.
inline Bytes address_reply(std::uint16_t result, std::uint32_t epoch, std::uint32_t address = 0xCB007101) {
  Bytes b{0, 128};
  put16(b, result);
  put32(b, epoch);
  put32(b, address);
  return b;
}

inline Bytes mapping_reply(std::uint8_t opcode, std::uint16_t result, std::uint32_t epoch, std::uint16_t internal,
                           std::uint16_t external, std::uint32_t lifetime) {
  Bytes b{0, opcode};
  put16(b, result);
  put32(b, epoch);
  put16(b, internal);
  put16(b, external);
  put32(b, lifetime);
  return b;
}

}  // namespace natpmp_replies
