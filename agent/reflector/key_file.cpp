#include "agent/reflector/key_file.hpp"

#include <fstream>

#include "agent/reflector/protocol.hpp"

namespace natkeeper::reflector {

std::string to_string(KeyFileError error) {
  switch (error) {
    case KeyFileError::unreadable: return "cannot read it";
    case KeyFileError::too_long: return "longer than " + std::to_string(kMaxKeyFileSize) + " bytes";
    case KeyFileError::invalid:
      return "expected a key of " + std::to_string(kMinKeySize) + " to " + std::to_string(kMaxKeySize) +
             " bytes (whitespace around it is ignored)";
  }
  return "?";
}

boost::system::result<std::vector<std::uint8_t>, KeyFileError> read_key_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return KeyFileError::unreadable;
  // One byte more than allowed tells a file that is too long.
  std::string text(kMaxKeyFileSize + 1, '\0');
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (file.bad()) return KeyFileError::unreadable;
  text.resize(static_cast<std::size_t>(file.gcount()));
  if (text.size() > kMaxKeyFileSize) return KeyFileError::too_long;
  auto key = parse_key(text);
  if (!key) return KeyFileError::invalid;
  return std::move(*key);
}

}  // namespace natkeeper::reflector
