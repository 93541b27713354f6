// natkeeper-reflector's --listen argument.
#include <catch2/catch.hpp>

#include <boost/asio/ip/udp.hpp>

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
