#include "agent/base/state_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>

#include "agent/base/state_dir.hpp"
#include "mappers/result.hpp"

namespace natkeeper {
namespace {

std::error_code last_error() { return {errno, std::generic_category()}; }

std::error_code write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const auto n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return last_error();
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

// Makes a rename in `directory` durable.
std::error_code sync_directory(const std::filesystem::path& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return last_error();
  const auto ec = ::fsync(fd) == 0 ? std::error_code() : last_error();
  ::close(fd);
  return ec;
}

// Writes `text` to a new file in `directory` and returns its path.
Result<std::filesystem::path> write_temporary(const std::filesystem::path& directory,
                                              const std::filesystem::path& final_name, std::string_view text) {
  auto name = (directory / ("." + final_name.string() + ".XXXXXX")).string();
  // mkostemp creates the file exclusively; the mode is set whatever the umask.
  const int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) return last_error();
  auto ec = ::fchmod(fd, 0600) == 0 ? std::error_code() : last_error();
  if (!ec) ec = write_all(fd, text);
  if (!ec && ::fsync(fd) != 0) ec = last_error();
  if (::close(fd) != 0 && !ec) ec = last_error();
  if (ec) {
    ::unlink(name.c_str());
    return ec;
  }
  return std::filesystem::path(name);
}

}  // namespace

std::filesystem::path state_file_path() { return state_directory() / "mappings.json"; }

std::error_code write_state_file(const std::filesystem::path& file, const state::ServiceState& state) {
  const auto directory = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  if (ec) return ec;
  const auto temporary = write_temporary(directory, file.filename(), state::encode(state));
  if (!temporary) return temporary.error();
  if (::rename(temporary->c_str(), file.c_str()) != 0) {
    ec = last_error();
    ::unlink(temporary->c_str());
    return ec;
  }
  return sync_directory(directory);
}

StateFileLoad read_state_file(const std::filesystem::path& file) {
  StateFileLoad load;
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) load.error = "cannot open " + file.string() + ": " + last_error().message();
    return load;
  }
  // One byte more than decode() accepts tells a file that is too large.
  constexpr std::size_t kLimit = state::kMaxStateFileBytes + 1;
  std::string text;
  std::array<char, 64 * 1024> chunk{};
  while (text.size() < kLimit) {
    const auto n = ::read(fd, chunk.data(), std::min(chunk.size(), kLimit - text.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      load.error = "cannot read " + file.string() + ": " + last_error().message();
      ::close(fd);
      return load;
    }
    if (n == 0) break;
    text.append(chunk.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  auto decoded = state::decode(text);
  if (!decoded) {
    load.error = file.string() + ": " + decoded.error().message;
    return load;
  }
  load.state = std::move(*decoded);
  return load;
}

std::error_code remove_state_file(const std::filesystem::path& file) {
  if (::unlink(file.c_str()) != 0 && errno != ENOENT) return last_error();
  return {};
}

}  // namespace natkeeper
