#pragma once
// One source file per fuzz target:
//
//   #include "tests/fuzz/fuzz_target.hpp"
//   NATKEEPER_FUZZ_TARGET(pcp_decode) { ...use data, size...; return 0; }
//
// Built with clang and -DNATKEEPER_FUZZ=ON it is a libFuzzer entry point; in
// every other build it registers itself, and the Catch2 replay test runs it on
// each file of tests/fuzz/corpus/<name>/.
#include <cstddef>
#include <cstdint>

#ifdef NATKEEPER_LIBFUZZER
#define NATKEEPER_FUZZ_TARGET(name) \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
#else
#include <map>
#include <string>

namespace natkeeper::fuzz {
using Target = int (*)(const std::uint8_t* data, std::size_t size);
inline std::map<std::string, Target>& targets() {
  static std::map<std::string, Target> registry;
  return registry;
}
inline bool register_target(const char* name, Target target) {
  targets().emplace(name, target);
  return true;
}
}  // namespace natkeeper::fuzz

#define NATKEEPER_FUZZ_TARGET(name)                                                        \
  static int fuzz_##name(const std::uint8_t* data, std::size_t size);                     \
  [[maybe_unused]] static const bool registered_##name =                                   \
      natkeeper::fuzz::register_target(#name, fuzz_##name);                                \
  static int fuzz_##name(const std::uint8_t* data, std::size_t size)
#endif
