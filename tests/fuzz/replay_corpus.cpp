// Replays every committed fuzz corpus through its target, so builds without
// libFuzzer (gcc, CI) still run each input that once found a bug or new code.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "tests/fuzz/fuzz_target.hpp"

namespace fs = std::filesystem;

TEST_CASE("every fuzz target has a corpus and survives all of it") {
  const fs::path corpora = NATKEEPER_FUZZ_CORPUS_DIR;
  REQUIRE_FALSE(natkeeper::fuzz::targets().empty());
  for (const auto& [name, target] : natkeeper::fuzz::targets()) {
    const auto dir = corpora / name;
    INFO("target " << name << ", corpus " << dir);
    REQUIRE(fs::is_directory(dir));
    std::size_t inputs = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (!entry.is_regular_file()) continue;
      std::ifstream file(entry.path(), std::ios::binary);
      const std::vector<char> bytes{std::istreambuf_iterator<char>(file), {}};
      INFO("input " << entry.path().filename());
      CHECK(target(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()) == 0);
      ++inputs;
    }
    CHECK(inputs > 0);
  }
}
