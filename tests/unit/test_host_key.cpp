#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>

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
