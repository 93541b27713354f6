// The state file is read back after a crash, from disk that may be damaged:
// any bytes must decode or be refused with a message, never crash, and what
// decodes must survive being written and read again unchanged.
#include <string_view>

#include "agent/codecs/state_codec.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(state_decode) {
  namespace state = natkeeper::state;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto decoded = state::decode(text);
  if (!decoded) {
    if (decoded.error().message.empty()) __builtin_trap();
    return 0;
  }
  if (decoded->mappings.size() > state::kMaxLiveMappings) __builtin_trap();
  const auto again = state::decode(state::encode(*decoded));
  if (!again || !(*again == *decoded)) __builtin_trap();
  return 0;
}
