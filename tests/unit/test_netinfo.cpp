#include <catch2/catch.hpp>

#include "agent/gateway/netinfo.hpp"

using natkeeper::parse_default_gateway;

namespace {
constexpr const char* kHeader =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
}

TEST_CASE("the default gateway is read from /proc/net/route") {
  const std::string table = std::string(kHeader) +
                            "eth0\t00000000\t01004D0A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
                            "eth0\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
  auto gateway = parse_default_gateway(table);
  REQUIRE(gateway);
  CHECK(gateway->to_string() == "10.77.0.1");
}

TEST_CASE("the lowest metric default route wins") {
  const std::string table = std::string(kHeader) +
                            "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
                            "eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
  auto gateway = parse_default_gateway(table);
  REQUIRE(gateway);
  CHECK(gateway->to_string() == "192.168.0.1");
}

TEST_CASE("routes that are down, direct or not default are no gateway") {
  const std::string table = std::string(kHeader) +
                            "eth0\t00000000\t0100A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n"  // not up
                            "eth0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n"  // no gateway
                            "eth0\t0000A8C0\t0100A8C0\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0\n"  // not default
                            "garbage line\n";
  CHECK_FALSE(parse_default_gateway(table));
  CHECK_FALSE(parse_default_gateway(""));
}
