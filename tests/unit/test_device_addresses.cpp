#include <catch2/catch.hpp>

#include <linux/neighbour.h>

#include "agent/gateway/device_addresses.hpp"

using namespace natkeeper;
namespace ip = boost::asio::ip;

namespace {

const LocalInterface kLan{"eth0", ip::make_address_v4("10.77.0.2"), ip::make_address_v4("255.255.255.0")};
const auto kMac = *parse_mac("54:e0:19:00:00:50");

config::Config with_devices(std::vector<config::Device> devices) {
  config::Config config;
  config.devices = std::move(devices);
  return config;
}

}  // namespace

TEST_CASE("devices by address keep it; by MAC take the neighbour table's; unseen ones keep what was known") {
  const auto config = with_devices({{"camera", ip::make_address_v4("10.77.0.60"), std::nullopt, true, {}},
                                    {"doorbell", std::nullopt, kMac, true, {}}});
  const std::vector<netlink::Neighbour> table{{false, 2, ip::make_address("10.77.0.50"), kMac, NUD_REACHABLE, 0, 5}};
  auto lookup = look_up_devices(config, kLan, table, {});
  CHECK(lookup.problems.empty());
  CHECK(lookup.addresses == config::DeviceAddresses{ip::make_address_v4("10.77.0.60"), ip::make_address_v4("10.77.0.50")});

  lookup = look_up_devices(config, kLan, {}, lookup.addresses);
  CHECK(lookup.addresses[1] == ip::make_address_v4("10.77.0.50"));
  CHECK(lookup.problems.empty());

  lookup = look_up_devices(config, kLan, {}, {});
  CHECK_FALSE(lookup.addresses[1]);
  REQUIRE(lookup.problems.size() == 1);
  CHECK_THAT(lookup.problems[0], Catch::StartsWith("device doorbell: 54:e0:19:00:00:50 is not in the neighbour table"));
}

TEST_CASE("a device off the gateway's LAN, or at this host's address, is no device to map for") {
  const auto config = with_devices({{"", ip::make_address_v4("192.168.1.5"), std::nullopt, true, {}},
                                    {"", ip::make_address_v4("10.77.0.2"), std::nullopt, true, {}}});
  const auto lookup = look_up_devices(config, kLan, {}, {});
  CHECK(lookup.addresses == config::DeviceAddresses{std::nullopt, std::nullopt});
  REQUIRE(lookup.problems.size() == 2);
  CHECK_THAT(lookup.problems[0], Catch::Contains("192.168.1.5 is not on the gateway's LAN"));
  CHECK_THAT(lookup.problems[1], Catch::Contains("this host's own address"));
}

TEST_CASE("a reloaded configuration keeps the addresses of the devices it still names by MAC") {
  const auto before = with_devices({{"doorbell", std::nullopt, kMac, true, {}}});
  const auto after = with_devices({{"camera", ip::make_address_v4("10.77.0.60"), std::nullopt, true, {}},
                                   {"front door", std::nullopt, kMac, false, {}}});
  CHECK(carry_over(before, {ip::make_address_v4("10.77.0.50")}, after) ==
        config::DeviceAddresses{ip::make_address_v4("10.77.0.60"), ip::make_address_v4("10.77.0.50")});
  CHECK_FALSE(follows_macs(with_devices({})));
  CHECK(follows_macs(after));
}

TEST_CASE("a named device by MAC, quiet at a restart, keeps the address the state file recorded for it") {
  const auto config = with_devices({{"doorbell", std::nullopt, kMac, true, {}},
                                    {"", std::nullopt, *parse_mac("54:e0:19:00:00:51"), true, {}}});
  state::ServiceState recorded{"10.77.0.1", "upnp", "10.77.0.2", {}};
  recorded.mappings.push_back({Transport::udp, 7076, 7076, "", false, 0, "10.77.0.50", "doorbell"});
  recorded.mappings.push_back({Transport::udp, 7077, 7077, "", false, 0, "10.77.0.51", ""});
  CHECK(recorded_addresses(config, {}, recorded) ==
        config::DeviceAddresses{ip::make_address_v4("10.77.0.50"), std::nullopt});  // unnamed: no way to tell
  CHECK(recorded_addresses(config, {ip::make_address_v4("10.77.0.60"), std::nullopt}, recorded)[0] ==
        ip::make_address_v4("10.77.0.60"));  // found now: the table wins
}
