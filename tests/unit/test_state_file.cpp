#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>

#include "agent/base/state_file.hpp"
#include "result_printer.hpp"

using namespace natkeeper;
using namespace natkeeper::state;
namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

namespace {

// A fresh directory under the system's temporary directory, removed afterwards.
struct TemporaryDirectory {
  TemporaryDirectory() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() / ("natkeeper-state-test-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(counter++) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(path);
  }
  ~TemporaryDirectory() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  fs::path path;
};

ServiceState example_state() {
  ServiceState state;
  state.gateway = "10.77.0.1";
  state.method = "upnp";
  state.local_address = "10.77.0.2";
  state.mappings.push_back({Transport::udp, 7076, 7076, "203.0.113.1", false, 1790000000, "", ""});
  state.mappings.push_back({Transport::tcp, 22000, 42000, "", true, 0, "", ""});
  state.mappings.push_back({Transport::udp, 7076, 7077, "203.0.113.1", false, 1790000000, "10.77.0.50", "doorbell"});
  return state;
}

// The example state's file, changed by `edit`, decoded.
DecodeResult decode_edited(const std::function<void(Json&)>& edit) {
  auto document = Json::parse(encode(example_state()));
  edit(document);
  return decode(document.dump());
}

void write_text(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
}

}  // namespace

TEST_CASE("the state file's documented form", "[state_file]") {
  ServiceState state = example_state();
  state.mappings.resize(1);
  CHECK(encode(state) ==
        R"({"version":1,"gateway":"10.77.0.1","method":"upnp","local_address":"10.77.0.2","mappings":[)"
        R"({"proto":"udp","internal_port":7076,"external_port":7076,"external_ip":"203.0.113.1",)"
        R"("permanent":false,"expires_unix":1790000000}]})"
        "\n");
}

TEST_CASE("states round-trip through the state codec", "[state_file]") {
  ServiceState empty;
  empty.gateway = "192.168.1.1";
  empty.method = "pcp";
  empty.local_address = "192.168.1.20";
  for (const auto& state : {example_state(), empty}) {
    const auto decoded = decode(encode(state));
    INFO(decoded.error().message);
    REQUIRE(decoded);
    CHECK(*decoded == state);
  }
}

TEST_CASE("a device's mapping records its client and name; this host's keep their earlier form", "[state_file]") {
  const auto document = Json::parse(encode(example_state()));
  CHECK_FALSE(document["mappings"][0].contains("internal_client"));
  CHECK(document["mappings"][2]["internal_client"] == "10.77.0.50");
  CHECK(document["mappings"][2]["device"] == "doorbell");
  const auto decoded = decode(encode(example_state()));
  REQUIRE(decoded);
  CHECK(decoded->mappings[2].internal_client == "10.77.0.50");
  CHECK(decoded->mappings[0].internal_client.empty());
  // A name without a device is no device: this host's mapping keeps its form.
  const auto named = decode_edited([](Json& d) { d["mappings"][0]["device"] = "doorbell"; });
  REQUIRE(named);
  CHECK(*named == example_state());
}

TEST_CASE("the state codec ignores members it does not know", "[state_file]") {
  const auto decoded = decode_edited([](Json& document) {
    document["written_by"] = "natkeeper 0.2";
    document["mappings"][0]["description"] = "ring";
  });
  REQUIRE(decoded);
  CHECK(*decoded == example_state());
}

TEST_CASE("the state codec rejects what natkeeper does not write, saying where", "[state_file]") {
  struct Case {
    std::function<void(Json&)> edit;
    std::string error;
  };
  const std::vector<Case> cases{
      {[](Json& d) { d.erase("version"); }, "version: missing"},
      {[](Json& d) { d["version"] = 2; }, "version: unsupported version (2)"},
      {[](Json& d) { d["version"] = "1"; }, "version: not an integer (\"1\")"},
      {[](Json& d) { d["version"] = 1.0; }, "version: not an integer (1.0)"},
      {[](Json& d) { d["gateway"] = "10.77.0"; }, "gateway: not an IPv4 address (\"10.77.0\")"},
      {[](Json& d) { d["gateway"] = "10.77.0.256"; }, "gateway: not an IPv4 address (\"10.77.0.256\")"},
      {[](Json& d) { d["gateway"] = ""; }, "gateway: not an IPv4 address (\"\")"},
      {[](Json& d) { d["gateway"] = std::string("10.77.0.1\0x", 11); },
       "gateway: not an IPv4 address (\"10.77.0.1\\u0000x\")"},
      {[](Json& d) { d["method"] = "igd"; }, "method: unknown method (\"igd\")"},
      {[](Json& d) { d.erase("method"); }, "method: missing"},
      {[](Json& d) { d["local_address"] = 5; }, "local_address: not a string (5)"},
      {[](Json& d) { d["local_address"] = "fe80::1"; }, "local_address: not an IPv4 address (\"fe80::1\")"},
      {[](Json& d) { d["mappings"] = Json::object(); }, "mappings: not an array ({})"},
      {[](Json& d) { d.erase("mappings"); }, "mappings: missing"},
      {[](Json& d) { d["mappings"][1] = "x"; }, "mappings[1]: not an object (\"x\")"},
      {[](Json& d) { d["mappings"][0]["proto"] = "sctp"; }, "mappings[0].proto: unknown protocol (\"sctp\")"},
      {[](Json& d) { d["mappings"][0]["proto"] = "UDP"; }, "mappings[0].proto: unknown protocol (\"UDP\")"},
      {[](Json& d) { d["mappings"][1]["internal_port"] = 0; }, "mappings[1].internal_port: not a port (0)"},
      {[](Json& d) { d["mappings"][0]["internal_port"] = -1; }, "mappings[0].internal_port: not a port (-1)"},
      {[](Json& d) { d["mappings"][0]["internal_port"] = "7076"; },
       "mappings[0].internal_port: not an integer (\"7076\")"},
      {[](Json& d) { d["mappings"][1]["external_port"] = 65536; }, "mappings[1].external_port: not a port (65536)"},
      {[](Json& d) { d["mappings"][0]["external_port"] = 18446744073709551615u; },
       "mappings[0].external_port: out of range (18446744073709551615)"},
      {[](Json& d) { d["mappings"][0].erase("external_port"); }, "mappings[0].external_port: missing"},
      {[](Json& d) { d["mappings"][0]["external_ip"] = "203.0.113"; },
       "mappings[0].external_ip: not an IPv4 address (\"203.0.113\")"},
      {[](Json& d) { d["mappings"][0]["external_ip"] = nullptr; }, "mappings[0].external_ip: not a string (null)"},
      {[](Json& d) { d["mappings"][0]["permanent"] = "false"; },
       "mappings[0].permanent: not a boolean (\"false\")"},
      {[](Json& d) { d["mappings"][0]["expires_unix"] = -1; }, "mappings[0].expires_unix: negative (-1)"},
      {[](Json& d) { d["mappings"][0]["expires_unix"] = 1.5e9; },
       "mappings[0].expires_unix: not an integer (1500000000.0)"},
      {[](Json& d) { d["mappings"][1].erase("expires_unix"); }, "mappings[1].expires_unix: missing"},
      {[](Json& d) { d["mappings"][2]["internal_client"] = "doorbell"; },
       "mappings[2].internal_client: not an IPv4 address (\"doorbell\")"},
      {[](Json& d) { d["mappings"][2]["internal_client"] = 5; }, "mappings[2].internal_client: not a string (5)"},
      {[](Json& d) { d["mappings"][2]["device"] = std::string(65, 'd'); },
       "mappings[2].device: too long (\"ddddddddddddddddddddddddddddddddddddddd...)"},
      {[](Json& d) { d["gateway"] = std::string(100, 'x'); },
       "gateway: not an IPv4 address (\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...)"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO("case " << i);
    const auto decoded = decode_edited(cases[i].edit);
    CHECK_FALSE(decoded);
    CHECK(decoded.error().message == cases[i].error);
  }
}

TEST_CASE("the state codec rejects text that is not a JSON object", "[state_file]") {
  CHECK(decode("").error().message == "not valid JSON");
  CHECK(decode("{\"version\":1").error().message == "not valid JSON");
  CHECK(decode(encode(example_state()) + "x").error().message == "not valid JSON");
  CHECK(decode("\"\xff\"").error().message == "not valid JSON");
  CHECK(decode("[1]").error().message == "not a JSON object ([1])");
  CHECK(decode("null").error().message == "not a JSON object (null)");
}

TEST_CASE("the state codec holds every port of both protocols, and no more", "[state_file]") {
  ServiceState state = example_state();
  // The longest entry: a device's, with the longest name.
  state.mappings.assign(kMaxLiveMappings, {Transport::tcp, 65535, 65535, "255.255.255.255", false,
                                           std::numeric_limits<std::int64_t>::max(), "255.255.255.255",
                                           std::string(kMaxDeviceNameBytes, 'd')});
  auto text = encode(state);
  CHECK(text.size() <= kMaxStateFileBytes);
  const auto decoded = decode(text);
  REQUIRE(decoded);
  CHECK(decoded->mappings.size() == kMaxLiveMappings);

  // The count is checked before the entries.
  auto too_many = Json::parse(encode(example_state()));
  too_many["mappings"] = Json::array();
  for (std::size_t i = 0; i <= kMaxLiveMappings; ++i) too_many["mappings"].push_back(Json::object());
  CHECK(decode(too_many.dump()).error().message == "mappings: 131073 entries, more than 131072");
  CHECK(decode(std::string(kMaxStateFileBytes + 1, ' ')).error().message.starts_with("too large: "));
}

TEST_CASE("the state file is written atomically, private, and read back", "[state_file]") {
  const TemporaryDirectory directory;
  const auto file = directory.path / "state" / "mappings.json";
  REQUIRE_FALSE(write_state_file(file, example_state()));
  struct stat info {};
  REQUIRE(::stat(file.c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);

  auto changed = example_state();
  changed.mappings.pop_back();
  REQUIRE_FALSE(write_state_file(file, changed));
  const auto load = read_state_file(file);
  CHECK(load.error.empty());
  CHECK(load.state == changed);
  // Only the file itself is left: no temporary.
  std::vector<fs::path> entries;
  for (const auto& entry : fs::directory_iterator(file.parent_path())) entries.push_back(entry.path().filename());
  CHECK(entries == std::vector<fs::path>{"mappings.json"});
}

TEST_CASE("a failed state file write leaves no temporary file behind", "[state_file]") {
  const TemporaryDirectory directory;
  // rename() cannot replace a directory with a file.
  const auto file = directory.path / "mappings.json";
  fs::create_directories(file / "in-the-way");
  CHECK(write_state_file(file, example_state()));
  std::vector<fs::path> entries;
  for (const auto& entry : fs::directory_iterator(directory.path)) entries.push_back(entry.path().filename());
  CHECK(entries == std::vector<fs::path>{"mappings.json"});
}

TEST_CASE("a missing state file is an empty state", "[state_file]") {
  const TemporaryDirectory directory;
  const auto load = read_state_file(directory.path / "mappings.json");
  CHECK(load.error.empty());
  CHECK(load.state == ServiceState{});
}

TEST_CASE("an unusable state file is an empty state and a message naming it", "[state_file]") {
  const TemporaryDirectory directory;
  const auto file = directory.path / "mappings.json";

  write_text(file, "{\"version\":1,");
  auto load = read_state_file(file);
  CHECK(load.state == ServiceState{});
  CHECK(load.error == file.string() + ": not valid JSON");

  auto document = Json::parse(encode(example_state()));
  document["mappings"][1]["internal_port"] = 0;
  write_text(file, document.dump());
  load = read_state_file(file);
  CHECK(load.state == ServiceState{});
  CHECK(load.error == file.string() + ": mappings[1].internal_port: not a port (0)");

  write_text(file, std::string(kMaxStateFileBytes + 10, ' '));
  load = read_state_file(file);
  CHECK(load.state == ServiceState{});
  CHECK(load.error == file.string() + ": too large: " + std::to_string(kMaxStateFileBytes + 1) + " bytes (at most " +
                          std::to_string(kMaxStateFileBytes) + ")");

  // A directory opens but cannot be read.
  const auto load_directory = read_state_file(directory.path);
  CHECK(load_directory.state == ServiceState{});
  CHECK(load_directory.error.starts_with("cannot read " + directory.path.string() + ": "));
}

TEST_CASE("removing the state file", "[state_file]") {
  const TemporaryDirectory directory;
  const auto file = directory.path / "mappings.json";
  REQUIRE_FALSE(write_state_file(file, example_state()));
  CHECK_FALSE(remove_state_file(file));
  CHECK_FALSE(fs::exists(file));
  CHECK_FALSE(remove_state_file(file));
  CHECK(remove_state_file(directory.path / "no-such-directory" / "mappings.json") == std::error_code{});
}

TEST_CASE("the state file lives in the state directory", "[state_file]") {
  const char* saved = std::getenv("STATE_DIRECTORY");
  const std::string previous = saved ? saved : "";
  ::setenv("STATE_DIRECTORY", "/var/lib/natkeeper-test:/var/lib/other", 1);
  CHECK(state_file_path() == fs::path("/var/lib/natkeeper-test/mappings.json"));
  ::unsetenv("STATE_DIRECTORY");
  CHECK(state_file_path() == fs::path("/var/lib/natkeeper/mappings.json"));
  if (saved) ::setenv("STATE_DIRECTORY", previous.c_str(), 1);
}
