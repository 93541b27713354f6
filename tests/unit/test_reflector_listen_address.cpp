// natkeeper-reflector's command line: --listen and --key-file.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <boost/asio/ip/udp.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "agent/reflector/key_file.hpp"
#include "agent/reflector/listen_address.hpp"
#include "agent/reflector/protocol.hpp"

using namespace natkeeper::reflector;
namespace ip = boost::asio::ip;

TEST_CASE("reflector --listen syntax", "[reflector][listen]") {
  CHECK(parse_listen("203.0.113.2:7000") == ip::udp::endpoint(ip::make_address("203.0.113.2"), 7000));
  CHECK(parse_listen("203.0.113.2") == ip::udp::endpoint(ip::make_address("203.0.113.2"), kDefaultPort));
  CHECK(parse_listen("0.0.0.0:65535") == ip::udp::endpoint(ip::make_address("0.0.0.0"), 65535));
  CHECK(parse_listen("[::]:7001") == ip::udp::endpoint(ip::make_address("::"), 7001));
  CHECK(parse_listen("[2001:db8::1]") == ip::udp::endpoint(ip::make_address("2001:db8::1"), kDefaultPort));
  CHECK(parse_listen("2001:db8::1") == ip::udp::endpoint(ip::make_address("2001:db8::1"), kDefaultPort));
  for (const char* bad : {"", ":7000", "203.0.113.2:", "203.0.113.2:0", "203.0.113.2:65536", "203.0.113.2:70000x",
                          "203.0.113.2:-1", "[::1", "[::1]:", "[::1]x", "host.example:7000", "[1.2.3.4:7000",
                          "203.0.113.2:7000:1", "203.0.113.2:123456"}) {
    INFO(bad);
    CHECK_FALSE(parse_listen(bad));
  }
}

TEST_CASE("reflector --key-file: read with a bound", "[reflector][key_file]") {
  const auto path = std::filesystem::temp_directory_path() / ("reflector-key-" + std::to_string(::getpid()));
  auto write = [&](const std::string& text) { std::ofstream(path, std::ios::binary) << text; };
  struct Remove {
    std::filesystem::path path;
    ~Remove() { std::filesystem::remove(path); }
  } remove{path};

  write("  s3cret-s3cret-s3cret\n");
  const auto key = read_key_file(path.string());
  REQUIRE(key.has_value());
  CHECK(std::string(key->begin(), key->end()) == "s3cret-s3cret-s3cret");

  write(std::string(kMaxKeyFileSize - 20, ' ') + std::string(20, 'k'));
  CHECK(read_key_file(path.string()).has_value());
  write(std::string(kMaxKeyFileSize - 19, ' ') + std::string(20, 'k'));
  CHECK(read_key_file(path.string()).error() == KeyFileError::too_long);
  write("short");
  CHECK(read_key_file(path.string()).error() == KeyFileError::invalid);

  // A device that never ends is read no further than the bound.
  CHECK(read_key_file("/dev/zero").error() == KeyFileError::too_long);
  CHECK(read_key_file((path / "missing").string()).error() == KeyFileError::unreadable);
  for (const auto error : {KeyFileError::unreadable, KeyFileError::too_long, KeyFileError::invalid})
    CHECK_FALSE(to_string(error).empty());
}
