#pragma once
#include <filesystem>
#include <string>
#include <system_error>

#include "agent/codecs/state_codec.hpp"

namespace natkeeper {

// The service's record of its live mappings: state_directory()/mappings.json.
std::filesystem::path state_file_path();

// Writes atomically (a temporary file in the same directory, fsync, rename,
// fsync of the directory), mode 0600: a crash leaves the old or the new file,
// never a torn one.
std::error_code write_state_file(const std::filesystem::path& file, const state::ServiceState& state);

struct StateFileLoad {
  state::ServiceState state;  // empty when the file does not exist or is unusable
  std::string error;          // why the file was unusable (unreadable, too large, corrupt)
};
// A missing file is an empty state, not an error.
StateFileLoad read_state_file(const std::filesystem::path& file);

// Removes the file (nothing left to clean up); a missing file is fine.
std::error_code remove_state_file(const std::filesystem::path& file);

}  // namespace natkeeper
