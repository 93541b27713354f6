#include <catch2/catch.hpp>

#include "result_printer.hpp"

#include "config/mac_address.hpp"
#include "config/map_spec.hpp"

using namespace natkeeper;
using config::parse_map_spec;
using config::PortRange;

TEST_CASE("a map spec names one protocol and a port or range") {
  auto single = parse_map_spec("udp:7076");
  REQUIRE(single);
  CHECK(*single == std::vector<PortRange>{{Transport::udp, 7076, 7076}});

  auto range = parse_map_spec("tcp:15063-15064");
  REQUIRE(range);
  CHECK(*range == std::vector<PortRange>{{Transport::tcp, 15063, 15064}});
}

TEST_CASE("tcp+udp expands to one range per protocol, tcp first") {
  for (auto spec : {"tcp+udp:15063", "udp+tcp:15063"}) {
    auto both = parse_map_spec(spec);
    REQUIRE(both);
    CHECK(*both == std::vector<PortRange>{{Transport::tcp, 15063, 15063}, {Transport::udp, 15063, 15063}});
  }
}

TEST_CASE("the full port range is accepted") {
  auto all = parse_map_spec("udp:1-65535");
  REQUIRE(all);
  CHECK(all->front().size() == 65535);
}

TEST_CASE("bad map specs say what was wrong and what is expected") {
  struct Case {
    const char* spec;
    const char* complaint;
  };
  for (const auto& [spec, complaint] : {
           Case{"7076", "missing ':'"},
           Case{"sctp:7076", "unknown protocol 'sctp'"},
           Case{"udp:", "is not a port"},
           Case{"udp:0", "is not a port"},
           Case{"udp:65536", "is not a port"},
           Case{"udp:70000-70001", "is not a port"},
           Case{"udp:9079-9078", "ends before it starts"},
           Case{"udp:12a", "is not a port"},
           Case{"udp:-5", "is not a port"},
           Case{"udp:5-", "is not a port"},
           Case{"UDP:5", "unknown protocol"},
       }) {
    INFO(spec);
    auto parsed = parse_map_spec(spec);
    REQUIRE_FALSE(parsed);
    CHECK_THAT(parsed.error(), Catch::Contains(complaint));
    CHECK_THAT(parsed.error(), Catch::Contains("PROTO:PORT[-PORT]"));
  }
}

TEST_CASE("a MAC address is six hex pairs with one separator throughout") {
  const auto mac = parse_mac("54:E0:19:aa:bb:0c");
  REQUIRE(mac);
  CHECK(to_string(*mac) == "54:e0:19:aa:bb:0c");
  CHECK(parse_mac("54-e0-19-aa-bb-0c") == mac);
  for (auto bad : {"", "54:e0:19:aa:bb", "54:e0:19:aa:bb:0c:", "54:e0-19:aa:bb:0c", "54:e0:19:aa:bb:0g",
                   "54e0.19aa.bb0c", "54:e0:19:aa:bb: c"})
    CHECK_FALSE(parse_mac(bad));
}
