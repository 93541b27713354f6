#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "agent/base/state_dir.hpp"
#include "mappers/pcp/pcp_nonce.hpp"
#include "result_printer.hpp"

using namespace natkeeper;
namespace fs = std::filesystem;

TEST_CASE("the host key is created once, private, and read back by later runs") {
  const auto dir = fs::temp_directory_path() / ("natkeeper-key-test-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto first = load_or_create_host_key(dir / "state");
  REQUIRE(first.has_value());
  struct stat info {};
  REQUIRE(::stat((dir / "state" / "host.key").c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);
  CHECK(info.st_size == 32);
  auto second = load_or_create_host_key(dir / "state");
  REQUIRE(second.has_value());
  CHECK(*first == *second);
  fs::remove_all(dir);
}

TEST_CASE("a truncated host key is an error, not a weak key") {
  const auto dir = fs::temp_directory_path() / ("natkeeper-key-short-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  { std::FILE* f = std::fopen((dir / "host.key").c_str(), "w"); std::fputs("short", f); std::fclose(f); }
  CHECK_FALSE(load_or_create_host_key(dir).has_value());
  fs::remove_all(dir);
}

TEST_CASE("a host key that is not a regular file is an error, not a wait or a key read elsewhere") {
  const auto dir = fs::temp_directory_path() / ("natkeeper-key-fifo-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  REQUIRE(::mkfifo((dir / "host.key").c_str(), 0600) == 0);
  CHECK(load_or_create_host_key(dir).error() == std::errc::invalid_argument);
  fs::remove(dir / "host.key");
  { std::FILE* f = std::fopen((dir / "other.key").c_str(), "w"); std::fputs(std::string(32, 'k').c_str(), f); std::fclose(f); }
  fs::create_symlink(dir / "other.key", dir / "host.key");
  CHECK(load_or_create_host_key(dir).error() == std::errc::too_many_symbolic_link_levels);
  fs::remove_all(dir);
}

TEST_CASE("PCP nonces are stable per key, client, protocol and port") {
  HostKey key{};
  key.fill(7);
  const auto client = boost::asio::ip::make_address_v4("10.77.0.2");
  const auto base = pcp::derive_nonce(key, client, Transport::udp, 7076);
  CHECK(base == pcp::derive_nonce(key, client, Transport::udp, 7076));
  CHECK(base != pcp::derive_nonce(key, client, Transport::tcp, 7076));
  CHECK(base != pcp::derive_nonce(key, client, Transport::udp, 7077));
  CHECK(base != pcp::derive_nonce(key, boost::asio::ip::make_address_v4("10.77.0.3"), Transport::udp, 7076));
  HostKey other = key;
  other[0] = 8;
  CHECK(base != pcp::derive_nonce(other, client, Transport::udp, 7076));
}
