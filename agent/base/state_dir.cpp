#include "agent/base/state_dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace natkeeper {
namespace {

std::error_code last_error() { return {errno, std::generic_category()}; }

// Reads exactly buffer.size() bytes or fails.
std::error_code read_key(int fd, HostKey& key) {
  std::size_t done = 0;
  while (done < key.size()) {
    const auto n = ::read(fd, key.data() + done, key.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0 ? std::make_error_code(std::errc::io_error) : last_error();
    done += static_cast<std::size_t>(n);
  }
  return {};
}

}  // namespace

std::filesystem::path directory_from_systemd(const char* variable, std::filesystem::path fallback) {
  if (const char* systemd = std::getenv(variable); systemd && *systemd) {
    const std::string dirs(systemd);
    return dirs.substr(0, dirs.find(':'));  // the first, when the unit names several
  }
  return fallback;
}

std::filesystem::path state_directory() { return directory_from_systemd("STATE_DIRECTORY", "/var/lib/natkeeper"); }

Result<HostKey> load_or_create_host_key(const std::filesystem::path& directory) {
  const auto path = directory / "host.key";
  HostKey key{};
  // Non-blocking and not through a link: a FIFO in the key's place is refused,
  // not waited on; a link is not followed to a key that is not this host's.
  if (const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC); fd >= 0) {
    struct stat info {};
    auto ec = ::fstat(fd, &info) != 0 ? last_error() : std::error_code();
    if (!ec && !S_ISREG(info.st_mode)) ec = std::make_error_code(std::errc::invalid_argument);
    if (!ec) ec = read_key(fd, key);
    ::close(fd);
    if (ec) return ec;
    return key;
  }
  if (errno != ENOENT) return last_error();

  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  if (ec) return ec;
  if (::getrandom(key.data(), key.size(), 0) != static_cast<ssize_t>(key.size())) return last_error();
  // Written under a temporary name and renamed: a crash never leaves half a key.
  const auto temporary = directory / ("host.key." + std::to_string(::getpid()));
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return last_error();
  const bool written = ::write(fd, key.data(), key.size()) == static_cast<ssize_t>(key.size()) &&
                       ::fsync(fd) == 0;
  ::close(fd);
  if (!written) {
    ::unlink(temporary.c_str());
    return std::make_error_code(std::errc::io_error);
  }
  // link() fails if another run created the key meanwhile: then use theirs.
  const bool linked = ::link(temporary.c_str(), path.c_str()) == 0;
  const auto link_error = last_error();
  ::unlink(temporary.c_str());
  if (!linked) {
    if (link_error != std::errc::file_exists) return link_error;
    return load_or_create_host_key(directory);
  }
  return key;
}

}  // namespace natkeeper
