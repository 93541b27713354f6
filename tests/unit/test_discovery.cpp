#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/gateway/discovery.hpp"
#include "mappers/errors.hpp"
#include "tests/unit/run_loop.hpp"

using namespace natkeeper;

TEST_CASE("auto prefers PCP, then NAT-PMP, then UPnP; UPnP before NAT-PMP where a device is planned") {
  config::Config config;
  CHECK(preference_order(config) == std::vector<Method>{Method::pcp, Method::natpmp, Method::upnp});
  config.devices.push_back({"doorbell", boost::asio::ip::make_address_v4("10.77.0.50"), std::nullopt, true, {}});
  CHECK(preference_order(config) == std::vector<Method>{Method::pcp, Method::upnp, Method::natpmp});
}

namespace {

namespace asio = boost::asio;
using natkeeper::upnp::SearchKind;
using natkeeper::upnp::SsdpAnswer;

const auto kGateway = asio::ip::make_address_v4("10.77.0.1");

SsdpAnswer answer_from(const char* responder, std::string location) {
  return SsdpAnswer{{std::move(location), std::string(natkeeper::upnp::kIgdV2), "uuid:1"},
                    asio::ip::make_address_v4(responder), SearchKind::multicast, {}};
}

// Hands out `answers` in order, then none; `open` answers per LOCATION from
// `outcomes` (absent: not an IGD) and records what was opened.
struct ScriptedIgds {
  std::vector<SsdpAnswer> answers;
  std::map<std::string, Result<asio::ip::address>> outcomes;
  std::vector<std::string> opened;
  std::size_t handed_out = 0;

  NextSsdpAnswer next() {
    return [this]() -> asio::awaitable<std::optional<SsdpAnswer>> {
      if (handed_out == answers.size()) co_return std::nullopt;
      co_return answers[handed_out++];
    };
  }
  OpenIgd open() {
    return [this](const std::string& location) -> asio::awaitable<Result<FoundProtocol>> {
      opened.push_back(location);
      const auto outcome = outcomes.find(location);
      if (outcome == outcomes.end()) co_return make_error_code(Errc::not_an_igd);
      FoundProtocol found;
      found.detail = location;
      found.external_ip = outcome->second;
      co_return found;
    };
  }
  Result<FoundProtocol> run() {
    asio::io_context loop;
    const auto next_answer = next();
    const auto open_location = open();
    return run_loop(loop, open_gateway_igd(kGateway, next_answer, open_location));
  }
};

const Result<asio::ip::address> kExternal = asio::ip::make_address("203.0.113.1");

}  // namespace

TEST_CASE("a LOCATION that fails to open gives way to the gateway's next one; other devices are not opened") {
  ScriptedIgds igds;
  igds.answers = {answer_from("10.77.0.66", "http://10.77.0.66:8000/desc.xml"),
                  answer_from("10.77.0.1", "http://10.77.0.1:9/x.xml"),
                  answer_from("10.77.0.1", "http://10.77.0.1:5000/rootDesc.xml")};
  igds.outcomes.emplace("http://10.77.0.66:8000/desc.xml", kExternal);
  igds.outcomes.emplace("http://10.77.0.1:5000/rootDesc.xml", kExternal);
  const auto found = igds.run();
  REQUIRE(found.has_value());
  CHECK(found->detail == "http://10.77.0.1:5000/rootDesc.xml");
  CHECK(igds.opened == std::vector<std::string>{"http://10.77.0.1:9/x.xml", "http://10.77.0.1:5000/rootDesc.xml"});
}

TEST_CASE("an IGD whose control URL does not answer is taken only when no other LOCATION opens") {
  ScriptedIgds igds;
  const Result<asio::ip::address> unreachable = make_error_code(Errc::no_gateway_answer);
  igds.outcomes.emplace("http://10.77.0.1:5000/dead.xml", unreachable);
  igds.answers = {answer_from("10.77.0.1", "http://10.77.0.1:5000/dead.xml")};
  SECTION("another LOCATION answers") {
    igds.answers.push_back(answer_from("10.77.0.1", "http://10.77.0.1:5000/rootDesc.xml"));
    igds.outcomes.emplace("http://10.77.0.1:5000/rootDesc.xml", kExternal);
    const auto found = igds.run();
    REQUIRE(found.has_value());
    CHECK(found->detail == "http://10.77.0.1:5000/rootDesc.xml");
  }
  SECTION("none other opens") {
    igds.answers.push_back(answer_from("10.77.0.1", "http://10.77.0.1:9/x.xml"));
    const auto found = igds.run();
    REQUIRE(found.has_value());
    CHECK(found->detail == "http://10.77.0.1:5000/dead.xml");
    CHECK(igds.opened.size() == 2);
  }
  SECTION("an IGD that refuses the call still answers: it is taken at once") {
    const Result<asio::ip::address> refused = make_upnp_error(501);
    igds.outcomes.insert_or_assign("http://10.77.0.1:5000/dead.xml", refused);
    igds.answers.push_back(answer_from("10.77.0.1", "http://10.77.0.1:5000/rootDesc.xml"));
    const auto found = igds.run();
    REQUIRE(found.has_value());
    CHECK(found->detail == "http://10.77.0.1:5000/dead.xml");
    CHECK(igds.opened.size() == 1);
  }
}

TEST_CASE("no answer that opens: no gateway answer") {
  ScriptedIgds igds;
  igds.answers = {answer_from("10.77.0.1", "http://10.77.0.1:9/x.xml")};
  const auto found = igds.run();
  REQUIRE_FALSE(found.has_value());
  CHECK(found.error() == Errc::no_gateway_answer);
}
