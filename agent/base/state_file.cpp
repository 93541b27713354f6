#include "agent/base/state_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <functional>
#include <utility>

#include "agent/base/log.hpp"
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

// Writes the content of a file to its descriptor.
using WriteContent = std::function<std::error_code(int fd)>;

// A new file in `directory` with the content `write` gives it; returns its path.
Result<std::filesystem::path> write_temporary(const std::filesystem::path& directory,
                                              const std::filesystem::path& final_name, const WriteContent& write) {
  auto name = (directory / ("." + final_name.string() + ".XXXXXX")).string();
  // mkostemp creates the file exclusively; the mode is set whatever the umask.
  const int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) return last_error();
  auto ec = ::fchmod(fd, 0600) == 0 ? std::error_code() : last_error();
  if (!ec) ec = write(fd);
  if (!ec && ::fsync(fd) != 0) ec = last_error();
  if (::close(fd) != 0 && !ec) ec = last_error();
  if (ec) {
    ::unlink(name.c_str());
    return ec;
  }
  return std::filesystem::path(name);
}

// Replaces `file` with what `write` writes, as write_state_file() does.
std::error_code write_file_atomically(const std::filesystem::path& file, const WriteContent& write) {
  const auto directory = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  if (ec) return ec;
  const auto temporary = write_temporary(directory, file.filename(), write);
  if (!temporary) return temporary.error();
  if (::rename(temporary->c_str(), file.c_str()) != 0) {
    ec = last_error();
    ::unlink(temporary->c_str());
    return ec;
  }
  return sync_directory(directory);
}

const char* kind_of_file(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a regular file";
}

// The first `limit` bytes of a regular file; nullopt with `error` empty when
// there is no file.
std::optional<std::string> read_regular_file(const std::filesystem::path& file, std::size_t limit, std::string& error) {
  // O_NONBLOCK: opening a FIFO does not wait for a writer; O_NOFOLLOW: a
  // symbolic link is not followed to whatever it names.
  const int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP) error = file.string() + " is a symbolic link; not read";
    else if (errno != ENOENT) error = "cannot open " + file.string() + ": " + last_error().message();
    return std::nullopt;
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) error = "cannot read " + file.string() + ": " + last_error().message();
  else if (!S_ISREG(info.st_mode)) error = file.string() + " is " + kind_of_file(info.st_mode) + "; not read";
  if (!error.empty()) {
    ::close(fd);
    return std::nullopt;
  }
  std::string text;
  std::array<char, 64 * 1024> chunk{};
  while (text.size() < limit) {
    const auto n = ::read(fd, chunk.data(), std::min(chunk.size(), limit - text.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = "cannot read " + file.string() + ": " + last_error().message();
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    text.append(chunk.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

// Moves a damaged file aside and puts its intact records in its place; says
// where it went, for the log line.
std::string set_aside(const std::filesystem::path& file, std::string_view text, const state::ServiceState& intact) {
  const auto aside = damaged_state_file_path(file);
  if (const auto ec = write_file_atomically(aside, [text](int fd) { return write_all(fd, text); }))
    return fmt::format("it stays in place, as no copy can be kept as {}: {}", aside.string(), ec.message());
  const auto ec = intact.mappings.empty() ? remove_state_file(file) : write_state_file(file, intact);
  if (ec) return fmt::format("a copy is kept as {}, but the file cannot be replaced: {}", aside.string(), ec.message());
  return fmt::format("the damaged file is kept as {}", aside.string());
}

}  // namespace

std::filesystem::path state_file_path() { return state_directory() / "mappings.json"; }

std::filesystem::path damaged_state_file_path(const std::filesystem::path& file) {
  auto aside = file;
  return aside += ".damaged";
}

std::error_code write_state_file(const std::filesystem::path& file, const state::ServiceState& state) {
  // Line by line through a buffer: never the whole text in memory.
  return write_file_atomically(file, [&state](int fd) {
    constexpr std::size_t kBufferSize = 64 * 1024;
    std::string buffer;
    buffer.reserve(kBufferSize);
    std::error_code ec;
    const bool written = state::encode(state, [&](std::string_view line) {
      if (buffer.size() + line.size() > kBufferSize) {
        ec = write_all(fd, std::exchange(buffer, {}));
        buffer.reserve(kBufferSize);
      }
      buffer += line;
      return !ec;
    });
    return written ? write_all(fd, buffer) : ec;
  });
}

StateFileLoad read_state_file(const std::filesystem::path& file) {
  StateFileLoad load;
  // One byte more than decode() reads tells a file that is too large.
  const auto text = read_regular_file(file, state::kMaxStateFileBytes + 1, load.error);
  if (!text) return load;
  auto decoded = state::decode(*text);
  const auto damage = state::describe_damage(decoded);
  load.state = std::move(decoded.state);
  if (damage.empty()) return load;
  load.damage = fmt::format("{} is damaged: {}; {}", file.string(), damage, set_aside(file, *text, load.state));
  log::warning("{}", load.damage);
  return load;
}

std::error_code remove_state_file(const std::filesystem::path& file) {
  if (::unlink(file.c_str()) != 0 && errno != ENOENT) return last_error();
  return {};
}

}  // namespace natkeeper
