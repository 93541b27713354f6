#include <catch2/catch.hpp>

#include "agent/gateway/discovery.hpp"

using namespace natkeeper;

TEST_CASE("auto prefers PCP, then NAT-PMP, then UPnP; UPnP before NAT-PMP where a device is planned") {
  config::Config config;
  CHECK(preference_order(config) == std::vector<Method>{Method::pcp, Method::natpmp, Method::upnp});
  config.devices.push_back({"doorbell", boost::asio::ip::make_address_v4("10.77.0.50"), std::nullopt, true, {}});
  CHECK(preference_order(config) == std::vector<Method>{Method::pcp, Method::upnp, Method::natpmp});
}
