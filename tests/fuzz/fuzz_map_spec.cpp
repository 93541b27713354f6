// --map specs and [mapping] ports come from users: any text must parse or be
// refused with a message, never crash.
#include <string_view>

#include "config/map_spec.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(map_spec) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto ranges = natkeeper::config::parse_map_spec(text);
  if (ranges) {
    for (const auto& range : *ranges) {
      if (range.first == 0 || range.last < range.first) __builtin_trap();
    }
  } else if (ranges.error().empty()) {
    __builtin_trap();
  }
  return 0;
}
