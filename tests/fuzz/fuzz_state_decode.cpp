// The state file is read back after a crash, from disk that may be damaged:
// any bytes must decode to what is intact plus a description of the rest,
// never crash, stay within the bounds, and what decodes must survive being
// written and read again unchanged and intact.
#include <string_view>

#include "agent/codecs/state_codec.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(state_decode) {
  namespace state = natkeeper::state;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto decoded = state::decode(text);
  if (decoded.state.mappings.size() > state::kMaxLiveMappings) __builtin_trap();
  if (decoded.damage.size() > state::kMaxDamageListed || decoded.damage.size() > decoded.damage_count) __builtin_trap();
  if (decoded.intact() != state::describe_damage(decoded).empty()) __builtin_trap();
  for (const auto& damage : decoded.damage)
    if (damage.problem.empty()) __builtin_trap();
  // Mappings are kept only where they can be placed.
  if (!decoded.state.mappings.empty() && decoded.state.gateway.empty()) __builtin_trap();
  if (decoded.state.gateway.empty()) return 0;
  const auto again = state::decode(state::encode(decoded.state));
  if (!again.intact() || !(again.state == decoded.state)) __builtin_trap();
  return 0;
}
