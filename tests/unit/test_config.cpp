#include <catch2/catch.hpp>

#include "result_printer.hpp"

#include <fstream>

#include "config/config.hpp"

using namespace natkeeper;
using namespace natkeeper::config;

namespace {

ConfigError error_of(std::string_view text) {
  auto parsed = parse_config(text, "test.toml");
  REQUIRE_FALSE(parsed);
  return parsed.error();
}

}  // namespace

TEST_CASE("no configuration means the Ring profile with defaults") {
  const Config defaults;
  const auto requests = plan_requests(defaults);
  // UDP 7076, 7077, 9078, 9079; TCP and UDP 15063-15064; UDP 16500-16599.
  REQUIRE(requests.size() == 4 + 4 + 100);
  CHECK(requests.front().proto == Transport::udp);
  CHECK(requests.front().internal_port == 7076);
  CHECK(requests[4].proto == Transport::tcp);
  CHECK(requests[4].internal_port == 15063);
  CHECK(requests.back().internal_port == 16599);
  for (const auto& request : requests) {
    CHECK(request.lifetime == std::chrono::seconds(3600));
    CHECK(request.wanted_external_port == request.internal_port);
  }
}

TEST_CASE("the example configuration loads and states the defaults") {
  auto loaded = load_config_file(NATKEEPER_EXAMPLE_CONFIG);
  INFO((loaded ? std::string() : loaded.error().to_string()));
  REQUIRE(loaded);
  const Config defaults;
  CHECK(loaded->protocol == defaults.protocol);
  CHECK(loaded->ring_profile == defaults.ring_profile);
  CHECK(loaded->ring_rtp_window == defaults.ring_rtp_window);
  CHECK(loaded->lease == defaults.lease);
  CHECK(loaded->description == defaults.description);
  CHECK(loaded->allow_other_external_port == defaults.allow_other_external_port);
  CHECK(loaded->ports.empty());
  CHECK(loaded->verify == defaults.verify);
  CHECK(loaded->verify_interval == defaults.verify_interval);
}

TEST_CASE("every key is read") {
  auto parsed = parse_config(R"(
[gateway]
protocol = "upnp"
address = "192.168.1.1"
igd = "http://192.168.1.1:5000/rootDesc.xml"
[profile]
name = "ring"
rtp = "20000-20009"
[mapping]
lease = 7200
description = "doorbell"
allow_other_external_port = true
ports = ["udp:5000", "tcp+udp:8080-8081"]
)",
                             "full.toml");
  REQUIRE(parsed);
  CHECK(parsed->source == "full.toml");
  CHECK(parsed->protocol == ProtocolChoice::upnp);
  CHECK(parsed->gateway->to_string() == "192.168.1.1");
  CHECK(parsed->igd_url == "http://192.168.1.1:5000/rootDesc.xml");
  CHECK(parsed->ring_rtp_window == PortRange{Transport::udp, 20000, 20009});
  CHECK(parsed->lease == std::chrono::seconds(7200));
  const auto permanent = parse_config("[mapping]\nlease = 0\n", "test.toml");
  REQUIRE(permanent);
  CHECK(permanent->lease == kPermanentLease);
  CHECK(parsed->description == "doorbell");
  CHECK(parsed->allow_other_external_port);
  CHECK(parsed->ports.size() == 3);

  const auto requests = plan_requests(*parsed);
  CHECK(requests.size() == 8 + 10 + 5);
  CHECK(requests.back().internal_port == 8081);
  CHECK(requests.back().description == "doorbell");
  CHECK(requests.front().description == "doorbell ring app");
}

TEST_CASE("profile none maps only the listed ports, without duplicates") {
  auto parsed = parse_config(R"(
[profile]
name = "none"
[mapping]
ports = ["udp:7076-7077", "udp:7077", "tcp:7077"]
)",
                             "t.toml");
  REQUIRE(parsed);
  const auto requests = plan_requests(*parsed);
  REQUIRE(requests.size() == 3);
  CHECK(requests[2].proto == Transport::tcp);
}

TEST_CASE("the plan in runs: one per range and device, however many ports") {
  auto parsed = parse_config(R"(
[profile]
name = "none"
[mapping]
ports = ["udp:16500-65008", "udp:16000-16600", "tcp:16500-16501"]
)",
                             "t.toml");
  REQUIRE(parsed);
  const auto runs = plan_runs(*parsed, configured_addresses(*parsed));
  // The second range keeps only what the first did not plan: below it.
  REQUIRE(runs.size() == 3);
  CHECK(runs[0].first.internal_port == 16500);
  CHECK(runs[0].count == 48509);
  CHECK(runs[1].first.internal_port == 16000);
  CHECK(runs[1].count == 500);
  CHECK(runs[2].first.proto == Transport::tcp);
  CHECK(runs[2].count == 2);
  // The same plan as plan_requests() spells it out, port by port.
  const auto requests = plan_requests(*parsed);
  REQUIRE(requests.size() == 48509 + 500 + 2);
  CHECK(requests[48508].internal_port == 65008);
  CHECK(requests[48509].internal_port == 16000);
  CHECK(requests[48509].wanted_external_port == 16000);
  CHECK(requests.back().proto == Transport::tcp);
  CHECK(requests.back().internal_port == 16501);
}

TEST_CASE("errors name the file, the line and the key") {
  auto e = error_of("[mapping]\nlease = 5\n");
  CHECK(e.file == "test.toml");
  CHECK(e.line == 2);
  CHECK(e.key == "mapping.lease");
  CHECK(e.to_string() == "test.toml:2: mapping.lease: 5 is neither 0 (permanent) nor in 60-604800 seconds");

  e = error_of("[mapping]\n\nlease = \"long\"\n");
  CHECK(e.line == 3);
  CHECK(e.key == "mapping.lease");
  CHECK_THAT(e.message, Catch::Contains("integer"));
}

TEST_CASE("unknown keys and tables are errors, not silently ignored") {
  auto e = error_of("[mapping]\nleese = 3600\n");
  CHECK(e.key == "mapping.leese");
  CHECK(e.line == 2);
  CHECK(e.message == "unknown key");

  e = error_of("[mappings]\n");
  CHECK(e.key == "mappings");
  CHECK(e.line == 1);
}

TEST_CASE("out-of-range and malformed values are rejected with their key") {
  struct Case {
    const char* text;
    const char* key;
    const char* complaint;
  };
  for (const auto& [text, key, complaint] : {
           Case{"[gateway]\nprotocol = \"smoke-signals\"", "gateway.protocol", "not one of"},
           Case{"[gateway]\naddress = \"fe80::1\"", "gateway.address", "not an IPv4 address"},
           Case{"[gateway]\naddress = 17", "gateway.address", "expected"},
           Case{"[gateway]\nigd = \"ftp://x/\"", "gateway.igd", "http://"},
           Case{"[gateway]\nigd = \"http://router.lan/d.xml\"", "gateway.igd", "IPv4 address"},
           Case{"[profile]\nname = \"nest\"", "profile.name", "not one of"},
           Case{"[profile]\nrtp = \"16000-16599\"", "profile.rtp", "outside the RTP range"},
           Case{"[profile]\nrtp = \"16600-16500\"", "profile.rtp", "ends before it starts"},
           Case{"[mapping]\nlease = 604801", "mapping.lease", "neither 0 (permanent) nor in 60-604800"},
           Case{"[mapping]\nlease = -1", "mapping.lease", "neither 0 (permanent) nor in 60-604800"},
           Case{"[mapping]\ndescription = \"\"", "mapping.description", "printable"},
           Case{"[mapping]\ndescription = \"tab\\there\"", "mapping.description", "printable"},
           Case{"[mapping]\nallow_other_external_port = \"yes\"", "mapping.allow_other_external_port", "true or false"},
           Case{"[mapping]\nports = \"udp:1\"", "mapping.ports", "array"},
           Case{"[mapping]\nports = [\"udp:1\", 2]", "mapping.ports[1]", "expected a string"},
           Case{"[mapping]\nports = [\"udp:0\"]", "mapping.ports[0]", "not a port"},
           Case{"gateway = 3", "gateway", "table"},
       }) {
    INFO(text);
    const auto e = error_of(text);
    CHECK(e.key == key);
    CHECK_THAT(e.message, Catch::Contains(complaint));
    CHECK(e.line >= 1);
  }
}

TEST_CASE("TOML syntax errors become messages with a line, not exceptions") {
  auto e = error_of("[mapping]\nlease = = 3\n");
  CHECK(e.line == 2);
  CHECK_FALSE(e.message.empty());
  e = error_of("[mapping\n");
  CHECK(e.line == 1);
  e = error_of(std::string("a = \"\xff\"\n"));
  CHECK(e.line == 1);
}

TEST_CASE("a missing file is a config error naming it") {
  auto loaded = load_config_file("/nonexistent/natkeeper.toml");
  REQUIRE_FALSE(loaded);
  CHECK(loaded.error().file == "/nonexistent/natkeeper.toml");
  CHECK_THAT(loaded.error().message, Catch::Contains("cannot read"));
}

TEST_CASE("the [verify] table names the reflector and the STUN server") {
  auto parsed = parse_config(R"(
[verify]
enabled = true
reflector = "reflector.example.net:7000"
stun = "203.0.113.2:3478"
reflector_key_file = "/etc/natkeeper/reflector.key"
interval = 600
)",
                             "v.toml");
  REQUIRE(parsed.has_value());
  CHECK(parsed->verify);
  CHECK(parsed->reflector == "reflector.example.net:7000");
  CHECK(parsed->stun == "203.0.113.2:3478");
  CHECK(parsed->reflector_key_file == "/etc/natkeeper/reflector.key");
  CHECK(parsed->verify_interval == std::chrono::seconds(600));
  CHECK(parse_config("[verify]\ninterval = 0\n", "v.toml")->verify_interval == std::chrono::seconds(0));
  CHECK(error_of("[verify]\ninterval = 59\n").key == "verify.interval");
  CHECK(error_of("[verify]\ninterval = -1\n").key == "verify.interval");

  auto e = error_of("[verify]\nstun = \"203.0.113.2\"\n");
  CHECK(e.key == "verify.stun");
  CHECK(e.line == 2);
  CHECK_THAT(e.message, Catch::Contains("host:port"));
  CHECK(error_of("[verify]\nreflector = \"x:70000\"\n").key == "verify.reflector");
  CHECK(error_of("[verify]\nenabled = 1\n").key == "verify.enabled");
}

TEST_CASE("[[device]] tables name devices by MAC or address, each with its profile and ports") {
  auto parsed = parse_config(R"(
[mapping]
ports = ["tcp:8080"]

[[device]]
name = "doorbell"
mac = "54:E0:19:aa:bb:cc"

[[device]]
address = "192.168.1.60"
profile = "none"
ports = ["tcp+udp:5060"]
)",
                             "test.toml");
  INFO((parsed ? std::string() : parsed.error().to_string()));
  REQUIRE(parsed);
  REQUIRE(parsed->devices.size() == 2);
  const auto& doorbell = parsed->devices[0];
  CHECK(label(doorbell) == "doorbell");
  CHECK(to_string(*doorbell.mac) == "54:e0:19:aa:bb:cc");
  CHECK_FALSE(doorbell.address);
  CHECK(doorbell.ring_profile);
  const auto& phone = parsed->devices[1];
  CHECK(label(phone) == "192.168.1.60");
  CHECK_FALSE(phone.ring_profile);
  CHECK(phone.ports.size() == 2);

  SECTION("the plan: this host's ports without the profile, then each found device's") {
    const auto doorbell_address = boost::asio::ip::make_address_v4("192.168.1.50");
    const auto requests = plan_requests(*parsed, {doorbell_address, phone.address});
    REQUIRE(requests.size() == 1 + 108 + 2);
    CHECK_FALSE(requests[0].internal_client);
    CHECK(requests[0].internal_port == 8080);
    CHECK(requests[1].internal_client == boost::asio::ip::address(doorbell_address));
    CHECK(requests[1].device == "doorbell");
    CHECK(requests[1].description == "natkeeper doorbell ring app");
    CHECK(requests.back().device.empty());  // unnamed: reports show its address
    CHECK(requests.back().internal_port == 5060);
  }
  SECTION("a device not found is left out of the plan") {
    const auto requests = plan_requests(*parsed);  // the doorbell is known by MAC only
    CHECK(requests.size() == 1 + 2);
  }
}

TEST_CASE("two devices may plan the same ports; each request names its device") {
  Config config;
  config.devices = {Device{"a", boost::asio::ip::make_address_v4("10.0.0.5"), std::nullopt, true, {}},
                    Device{"b", boost::asio::ip::make_address_v4("10.0.0.6"), std::nullopt, true, {}}};
  const auto requests = plan_requests(config);
  REQUIRE(requests.size() == 2 * 108);
  CHECK(requests[0].wanted_external_port == requests[108].wanted_external_port);
  CHECK(requests[0].device == "a");
  CHECK(requests[108].device == "b");
}

TEST_CASE("a malformed [[device]] names its key and line") {
  struct Case {
    const char* text;
    const char* key;
    std::size_t line;
    const char* complaint;
  };
  for (const auto& c : {
           Case{"[[device]]\nname = \"x\"\n", "device[0].mac", 1, "exactly one"},
           Case{"[[device]]\nmac = \"54:e0:19:aa:bb:cc\"\naddress = \"10.0.0.5\"\n", "device[0].address", 1,
                "exactly one"},
           Case{"[[device]]\nmac = \"54:e0:19:aa:bb\"\n", "device[0].mac", 2, "not a MAC"},
           Case{"[[device]]\naddress = \"10.0.0.256\"\n", "device[0].address", 2, "not an IPv4"},
           Case{"[[device]]\naddress = \"fd00::5\"\n", "device[0].address", 2, "IPv6"},
           Case{"[[device]]\naddress = \"10.0.0.5\"\nprofile = \"nest\"\n", "device[0].profile", 3, "ring, none"},
           Case{"[[device]]\naddress = \"10.0.0.5\"\nports = [\"udp:0\"]\n", "device[0].ports[0]", 3, ""},
           Case{"[[device]]\naddress = \"10.0.0.5\"\ncolour = 1\n", "device[0].colour", 3, "unknown key"},
           Case{"[[device]]\naddress = \"10.0.0.5\"\n[[device]]\naddress = \"10.0.0.5\"\n", "device[1].address", 3,
                "same device as device[0]"},
           Case{"[[device]]\nname = \"d\"\naddress = \"10.0.0.5\"\n[[device]]\nname = \"d\"\naddress = \"10.0.0.6\"\n",
                "device[1].name", 4, "same name"},
           Case{"device = 5\n", "device", 1, "[[device]]"},
       }) {
    INFO(c.text);
    const auto e = error_of(c.text);
    CHECK(e.key == c.key);
    CHECK(e.line == c.line);
    CHECK_THAT(e.message, Catch::Contains(c.complaint));
  }
}
