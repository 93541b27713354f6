// Configuration files are edited by hand: any text must load or be refused with
// a message naming the file, never crash or throw.
#include <string_view>

#include "config/config.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(config) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto loaded = natkeeper::config::parse_config(text, "fuzz.toml");
  if (loaded) {
    for (const auto& request : natkeeper::config::plan_requests(*loaded))
      if (request.internal_port == 0) __builtin_trap();
  } else if (loaded.error().file != "fuzz.toml" || loaded.error().message.empty()) {
    __builtin_trap();
  }
  return 0;
}
