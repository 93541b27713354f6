// The registry's CSV files are read from disk at run time: any text parses to
// blocks that fit their registry's width, each with a trimmed organisation.
#include <string_view>

#include "agent/codecs/oui_csv.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(oui_csv) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto assignments = natkeeper::parse_oui_csv(text);
  // The shortest row: "MA-L,000000,x".
  if (assignments.size() * 13 > size) __builtin_trap();
  constexpr std::string_view kSpace = " \t\r\n";
  for (const auto& assignment : assignments) {
    if (assignment.bits != 24 && assignment.bits != 28 && assignment.bits != 36) __builtin_trap();
    if (assignment.prefix >> assignment.bits != 0) __builtin_trap();
    const auto& name = assignment.organisation;
    if (name.empty() || name.size() > size || kSpace.find(name.front()) != kSpace.npos ||
        kSpace.find(name.back()) != kSpace.npos) __builtin_trap();
  }
  return 0;
}
