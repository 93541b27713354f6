#pragma once
#include <filesystem>
#include <string>
#include <system_error>

#include "agent/codecs/state_codec.hpp"

namespace natkeeper {

// The service's record of its live mappings: state_directory()/mappings.json.
std::filesystem::path state_file_path();
// Where read_state_file() keeps a damaged state file: one, replaced each
// time, so that damage cannot fill the disk.
std::filesystem::path damaged_state_file_path(const std::filesystem::path& file);

// Writes atomically (a temporary file in the same directory, fsync, rename,
// fsync of the directory), mode 0600: a crash leaves the old or the new file,
// never a torn one.
std::error_code write_state_file(const std::filesystem::path& file, const state::ServiceState& state);

struct StateFileLoad {
  // What the file records; of a damaged file, every intact record.
  state::ServiceState state;
  // Why nothing could be read: not a regular file, unreadable.
  std::string error;
  // What was damaged and lost, and where the damaged file is kept; already
  // logged. Empty when the file was intact.
  std::string damage;
};
// The one way the state file is read (the service's start, --delete). A
// missing file is an empty state, not an error; only a regular file is read
// (opened without following a symbolic link or waiting on a FIFO), at most
// state::kMaxStateFileBytes of it. A damaged file is moved aside (to
// damaged_state_file_path()) and replaced by its intact records, so that they
// are still there for the next run should this one stop before writing.
StateFileLoad read_state_file(const std::filesystem::path& file);

// Removes the file (nothing left to clean up); a missing file is fine.
std::error_code remove_state_file(const std::filesystem::path& file);

}  // namespace natkeeper
