#pragma once
// natkeeper-reflector's --key-file.
#include <boost/system/result.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace natkeeper::reflector {

// The most a key file is read: a key of at most kMaxKeySize bytes and the
// white space around it. A path may name something that never ends (/dev/zero).
inline constexpr std::size_t kMaxKeyFileSize = 4096;

enum class KeyFileError {
  unreadable = 1,  // cannot be opened or read
  too_long,        // more than kMaxKeyFileSize bytes
  invalid,         // parse_key refuses its text
};
std::string to_string(KeyFileError error);  // for an error message

// The key in the file at `path` (see parse_key); reads at most
// kMaxKeyFileSize + 1 bytes.
boost::system::result<std::vector<std::uint8_t>, KeyFileError> read_key_file(const std::string& path);

}  // namespace natkeeper::reflector
