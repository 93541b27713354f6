#include <catch2/catch.hpp>

#include "agent/base/exit_codes.hpp"
#include "agent/cli/cli.hpp"

using namespace natkeeper;

namespace {

CliParse parse(std::vector<const char*> args) {
  args.insert(args.begin(), "natkeeper");
  return parse_cli(static_cast<int>(args.size()), args.data());
}

}  // namespace

TEST_CASE("modes and flags are parsed") {
  auto p = parse({"--once", "--json", "--protocol", "upnp", "--map", "udp:5000", "--map", "tcp+udp:6000-6001",
                  "--no-default-profile", "--lease", "7200", "--gateway", "10.0.0.1", "-c", "/tmp/x.toml",
                  "--no-verify", "-vv"});
  REQUIRE(p.options);
  const auto& o = *p.options;
  CHECK(o.mode == Mode::once);
  CHECK(o.json);
  CHECK(o.protocol == "upnp");
  CHECK(o.maps == std::vector<std::string>{"udp:5000", "tcp+udp:6000-6001"});
  CHECK(o.no_default_profile);
  CHECK(o.lease_seconds == 7200);
  CHECK(o.gateway == "10.0.0.1");
  CHECK(o.config_file == "/tmp/x.toml");
  CHECK(o.no_verify);
  CHECK(o.verbosity == 2);

  config::Config config;
  REQUIRE_FALSE(apply_cli(o, config));
  CHECK_FALSE(config.ring_profile);
  CHECK(config.ports.size() == 3);
  CHECK(config.lease == std::chrono::seconds(7200));
  CHECK(config.gateway->to_string() == "10.0.0.1");
  CHECK(config.protocol == config::ProtocolChoice::upnp);
  CHECK_FALSE(config.verify);
}

TEST_CASE("no mode is service mode; -q is quiet") {
  auto p = parse({"-q"});
  REQUIRE(p.options);
  CHECK(p.options->mode == Mode::service);
  CHECK(p.options->verbosity == -1);
}

TEST_CASE("help and version exit 0 with text on stdout") {
  for (auto flag : {"--help", "--version"}) {
    auto p = parse({flag});
    CHECK_FALSE(p.options);
    CHECK(p.exit_code == kExitOk);
    CHECK_FALSE(p.out.empty());
  }
  CHECK_THAT(parse({"--help"}).out, Catch::Contains("--once"));
}

TEST_CASE("usage errors exit 64") {
  for (auto args : std::vector<std::vector<const char*>>{
           {"--bogus"}, {"--once", "--delete"}, {"--discover", "--check-config"}, {"--lease", "soon"},
           {"--map"}, {"stray"}}) {
    auto p = parse(args);
    CHECK_FALSE(p.options);
    CHECK(p.exit_code == kExitUsage);
    CHECK_FALSE(p.err.empty());
  }
}

TEST_CASE("bad flag values are usage errors that say what was expected") {
  struct Case {
    std::vector<const char*> args;
    const char* complaint;
  };
  for (const auto& [args, complaint] : {
           Case{{"--map", "udp"}, "PROTO:PORT[-PORT]"},
           Case{{"--map", "icmp:1"}, "unknown protocol"},
           Case{{"--protocol", "carrier-pigeon"}, "expected one of: auto, pcp, natpmp, upnp"},
           Case{{"--gateway", "router"}, "expected an IPv4 address"},
           Case{{"--igd", "10.0.0.1:5000"}, "http://"},
           Case{{"--igd", "http://router.lan:5000/rootDesc.xml"}, "IPv4 address"},
           Case{{"--lease", "10"}, "neither 0 (permanent) nor in 60-604800"},
           Case{{"--reflector", "203.0.113.2"}, "HOST:PORT"},
           Case{{"--stun", "stun.example.net:0"}, "HOST:PORT"},
       }) {
    auto p = parse(args);
    REQUIRE(p.options);
    config::Config config;
    const auto error = apply_cli(*p.options, config);
    REQUIRE(error);
    CHECK_THAT(*error, Catch::Contains(complaint));
  }
}

TEST_CASE("verification flags override the configuration") {
  std::vector<const char*> args{"natkeeper", "--once", "--reflector", "203.0.113.2:7000", "--stun",
                                "stun.example.net:3478", "--reflector-key-file", "/k"};
  auto p = parse_cli(static_cast<int>(args.size()), args.data());
  REQUIRE(p.options);
  config::Config config;
  REQUIRE_FALSE(apply_cli(*p.options, config));
  CHECK(config.reflector == "203.0.113.2:7000");
  CHECK(config.stun == "stun.example.net:3478");
  CHECK(config.reflector_key_file == "/k");
  CHECK(config.verify);
}

TEST_CASE("--device maps for each device what would have been mapped for this host") {
  auto p = parse({"--once", "--device", "10.77.0.50", "--device", "54:e0:19:00:00:50", "--map", "tcp:8080",
                  "--no-default-profile"});
  REQUIRE(p.options);
  config::Config config;
  config.devices.push_back({"from the file", boost::asio::ip::make_address_v4("10.77.0.9"), std::nullopt, true, {}});
  REQUIRE_FALSE(apply_cli(*p.options, config));
  REQUIRE(config.devices.size() == 2);
  CHECK(config.devices[0].address->to_string() == "10.77.0.50");
  CHECK(to_string(*config.devices[1].mac) == "54:e0:19:00:00:50");
  for (const auto& device : config.devices) {
    CHECK_FALSE(device.ring_profile);
    CHECK(device.ports.size() == 1);
  }
  CHECK(config.ports.empty());  // nothing left for this host
  CHECK(config::plan_requests(config, {config.devices[0].address, std::nullopt}).size() == 1);

  auto bad = parse({"--once", "--device", "doorbell"});
  REQUIRE(bad.options);
  const auto usage = apply_cli(*bad.options, config);
  REQUIRE(usage);
  CHECK_THAT(*usage, Catch::Contains("--device 'doorbell'"));
}

TEST_CASE("--find-devices is a mode of its own") {
  auto p = parse({"--find-devices", "--json"});
  REQUIRE(p.options);
  CHECK(p.options->mode == Mode::find_devices);
  CHECK(parse({"--find-devices", "--once"}).exit_code == kExitUsage);
}
