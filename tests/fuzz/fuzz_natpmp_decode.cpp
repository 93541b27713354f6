// NAT-PMP replies come from whatever can send to our socket. The first three
// bytes pick the pending request (opcode, deletion flag, internal port); the
// rest is the datagram.
#include <cstdint>
#include <span>

#include "mappers/natpmp/natpmp_codec.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(natpmp_decode) {
  using namespace natkeeper::natpmp;
  if (size < 3) return 0;
  Expected expected;
  expected.opcode = static_cast<Opcode>((data[0] & 3) % 3);
  expected.deletion = expected.opcode != Opcode::public_address && (data[0] & 4) != 0;
  expected.internal_port =
      expected.opcode == Opcode::public_address ? 0 : static_cast<std::uint16_t>((data[1] << 8) | data[2]);
  const std::span<const std::uint8_t> datagram(data + 3, size - 3);

  const auto decoded = decode_reply(datagram, expected);
  if (!decoded) {
    if (to_string(decoded.error()).empty()) __builtin_trap();
    return 0;
  }
  // Whatever is accepted is exactly what the request allows.
  const Reply& reply = *decoded;
  if (datagram.size() != reply_size(expected.opcode)) __builtin_trap();
  if (datagram[0] != 0 || datagram[1] != 128 + static_cast<int>(expected.opcode)) __builtin_trap();
  if (reply.opcode != expected.opcode) __builtin_trap();
  if (reply.result_code != ((datagram[2] << 8) | datagram[3])) __builtin_trap();
  if (expected.opcode == Opcode::public_address) {
    if (reply.result_code != 0 && !reply.external_address.is_unspecified()) __builtin_trap();
    return 0;
  }
  if (reply.internal_port != expected.internal_port) __builtin_trap();
  if (reply.result_code == 0) {
    if (expected.deletion && reply.lifetime != 0) __builtin_trap();
    if (!expected.deletion && (reply.lifetime == 0 || reply.external_port == 0)) __builtin_trap();
  }
  return 0;
}
