#include <catch2/catch.hpp>

#include <linux/neighbour.h>

#include "agent/report/devices.hpp"
#include "result_printer.hpp"

using namespace natkeeper;
using boost::asio::ip::make_address;

namespace {

MacAddress mac(const char* text) { return *parse_mac(text); }

netlink::Neighbour entry(const char* address, const char* link_address, std::uint16_t state, std::uint32_t age) {
  netlink::Neighbour neighbour;
  neighbour.interface_index = 2;
  neighbour.address = make_address(address);
  neighbour.link_address = mac(link_address);
  neighbour.state = state;
  neighbour.ticks_since_update = age;
  return neighbour;
}

const OuiRegistry& registry() {
  static const OuiRegistry sample(parse_oui_csv("MA-L,54E019,Ring LLC,x\nMA-L,F4BD9E,\"Cisco Systems, Inc\",y\n"));
  return sample;
}

LanDevice doorbell() { return {make_address("192.168.1.50"), mac("54:e0:19:aa:bb:cc"), "Ring LLC", true}; }
LanDevice chime() { return {make_address("192.168.1.9"), mac("54:e0:19:00:00:01"), "Ring LLC", true}; }
LanDevice laptop() { return {make_address("192.168.1.100"), mac("02:00:00:00:00:02"), std::nullopt, false}; }

}  // namespace

TEST_CASE("devices: one per MAC at its current address, with vendors, in address order", "[devices]") {
  const std::vector<netlink::Neighbour> table{
      entry("192.168.1.100", "02:00:00:00:00:02", NUD_REACHABLE, 10),
      entry("192.168.1.10", "f4:bd:9e:00:00:01", NUD_STALE, 10),
      entry("192.168.1.9", "54:e0:19:aa:bb:cc", NUD_REACHABLE, 10),
      entry("192.168.1.50", "54:e0:19:aa:bb:cc", NUD_STALE, 9000),  // its address before DHCP renumbered it
  };
  const auto devices = lan_devices(table, registry());
  REQUIRE(devices.size() == 3);
  CHECK(devices[0].address == make_address("192.168.1.9"));
  CHECK(devices[0].mac == mac("54:e0:19:aa:bb:cc"));
  CHECK(devices[0].vendor == "Ring LLC");
  CHECK(devices[0].ring);
  CHECK(devices[1].address == make_address("192.168.1.10"));
  CHECK(devices[1].vendor == "Cisco Systems, Inc");
  CHECK_FALSE(devices[1].ring);
  CHECK(devices[2].address == make_address("192.168.1.100"));
  CHECK(devices[2].vendor == std::nullopt);

  const auto without_registry = lan_devices(table, OuiRegistry{});
  REQUIRE(without_registry.size() == 3);
  CHECK(without_registry[0].vendor == std::nullopt);
  CHECK_FALSE(without_registry[0].ring);
}

TEST_CASE("devices: JSON as the contract has it", "[devices]") {
  const std::vector<LanDevice> devices{doorbell(), laptop()};
  CHECK(devices_json(devices) == nlohmann::json::parse(R"({"devices": [
      {"address": "192.168.1.50", "mac": "54:e0:19:aa:bb:cc", "vendor": "Ring LLC", "ring": true},
      {"address": "192.168.1.100", "mac": "02:00:00:00:00:02", "vendor": null, "ring": false}]})"));
  CHECK(devices_json({}) == nlohmann::json::parse(R"({"devices": []})"));
}

TEST_CASE("devices: a table one reads at a glance", "[devices]") {
  const std::vector<LanDevice> devices{chime(), laptop()};
  CHECK(devices_text(devices) ==
        "ADDRESS        MAC                RING  VENDOR\n"
        "192.168.1.9    54:e0:19:00:00:01  yes   Ring LLC\n"
        "192.168.1.100  02:00:00:00:00:02        -\n");
  CHECK_THAT(devices_text({}), Catch::StartsWith("No devices in the neighbour table"));
}

TEST_CASE("devices: one hint line when a Ring device is on the network", "[devices]") {
  CHECK(ring_hint(std::vector<LanDevice>{laptop()}) == std::nullopt);
  CHECK(ring_hint({}) == std::nullopt);

  const auto one = ring_hint(std::vector<LanDevice>{laptop(), doorbell()});
  REQUIRE(one);
  CHECK(*one ==
        "A Ring device is on this network: 54:e0:19:aa:bb:cc at 192.168.1.50. The Ring ports were mapped for this "
        "host; to map them for the device instead: natkeeper --once --device 54:e0:19:aa:bb:cc");

  const auto two = ring_hint(std::vector<LanDevice>{chime(), doorbell(), laptop()});
  REQUIRE(two);
  CHECK(two->find('\n') == std::string::npos);
  CHECK_THAT(*two, Catch::StartsWith("Ring devices are on this network: 54:e0:19:00:00:01 at 192.168.1.9, "
                                     "54:e0:19:aa:bb:cc at 192.168.1.50."));
  CHECK_THAT(*two, Catch::EndsWith("natkeeper --once --device 54:e0:19:00:00:01 --device 54:e0:19:aa:bb:cc"));
}

TEST_CASE("devices: the devices on an interface of this host", "[devices]") {
  const auto loopback = find_lan_devices("lo", registry());
  if (!loopback && loopback.error() != std::errc::no_such_device) {
    WARN("no rtnetlink here (" << loopback.error().message() << "): skipped");
    return;
  }
  REQUIRE(loopback);
  CHECK(loopback->empty());  // the loopback interface has no neighbours
  const auto unknown = find_lan_devices("no-such-if0", registry());
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error() == std::errc::no_such_device);
}
