#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <boost/crc.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <sstream>

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
  state.mappings.push_back({Transport::tcp, 8080, 8080, "", false, 0, "", "", false});
  return state;
}

// The text of a record as the state file holds it: the line up to its closing
// brace, checksummed with CRC-32 as the last member.
std::string checksummed(const Json& record) {
  auto line = record.dump();
  line.pop_back();
  boost::crc_32_type crc;
  crc.process_bytes(line.data(), line.size());
  std::ostringstream digits;
  digits << std::hex;
  digits.width(8);
  digits.fill('0');
  digits << crc.checksum();
  return line + R"(,"crc32":")" + digits.str() + "\"}\n";
}

// The example state's file, one record per entry (header, mappings, header),
// without checksums, changed by `edit`, checksummed again.
std::string edited_lines(const std::function<void(std::vector<Json>&)>& edit) {
  std::vector<Json> records;
  std::istringstream lines(encode(example_state()));
  for (std::string line; std::getline(lines, line);) {
    auto record = Json::parse(line);
    record.erase("crc32");
    records.push_back(std::move(record));
  }
  edit(records);
  std::string text;
  for (const auto& record : records) text += checksummed(record);
  return text;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line + "\n");
  return lines;
}

// The earlier format: one JSON object, version 1, its mappings in an array.
Json single_object(const ServiceState& state) {
  Json mappings = Json::array();
  for (const auto& m : state.mappings) {
    Json entry{{"proto", std::string(to_string(m.proto))}, {"internal_port", m.internal_port},
               {"external_port", m.external_port},        {"external_ip", m.external_ip},
               {"permanent", m.permanent},                {"expires_unix", m.expires_unix}};
    if (!m.internal_client.empty()) {
      entry["internal_client"] = m.internal_client;
      entry["device"] = m.device;
    }
    mappings.push_back(entry);
  }
  return Json{{"version", 1},
              {"gateway", state.gateway},
              {"method", state.method},
              {"local_address", state.local_address},
              {"mappings", mappings}};
}

ServiceState confirmed_only(ServiceState state) {
  for (auto& mapping : state.mappings) mapping.confirmed = true;
  return state;
}

void write_text(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("the state file's documented form", "[state_file]") {
  ServiceState state = example_state();
  state.mappings.resize(1);
  const std::string header =
      R"({"version":2,"gateway":"10.77.0.1","method":"upnp","local_address":"10.77.0.2","mapping_count":1,)"
      R"("crc32":"959e41e1"})"
      "\n";
  CHECK(encode(state) == header +
                             R"({"proto":"udp","internal_port":7076,"external_port":7076,"external_ip":"203.0.113.1",)"
                             R"("permanent":false,"expires_unix":1790000000,"crc32":"4dbb1ebc"})"
                             "\n" +
                             header);
}

TEST_CASE("states round-trip through the state codec, intact", "[state_file]") {
  ServiceState empty;
  empty.gateway = "192.168.1.1";
  empty.method = "pcp";
  empty.local_address = "192.168.1.20";
  for (const auto& state : {example_state(), empty}) {
    const auto decoded = decode(encode(state));
    INFO(describe_damage(decoded));
    CHECK(decoded.intact());
    CHECK(decoded.damage.empty());
    CHECK(describe_damage(decoded).empty());
    CHECK(decoded.state == state);
  }
}

TEST_CASE("a device's mapping records its client and name; this host's keep their earlier form", "[state_file]") {
  const auto lines = lines_of(encode(example_state()));
  REQUIRE(lines.size() == 6);
  CHECK_FALSE(Json::parse(lines[1]).contains("internal_client"));
  CHECK(Json::parse(lines[3])["internal_client"] == "10.77.0.50");
  CHECK(Json::parse(lines[3])["device"] == "doorbell");
  const auto decoded = decode(encode(example_state()));
  CHECK(decoded.state.mappings[2].internal_client == "10.77.0.50");
  CHECK(decoded.state.mappings[0].internal_client.empty());
  // A name without a device is no device: this host's mapping keeps its form.
  const auto named = decode(edited_lines([](std::vector<Json>& r) { r[1]["device"] = "doorbell"; }));
  CHECK(named.intact());
  CHECK(named.state == example_state());
}

TEST_CASE("an unconfirmed mapping says so; a confirmed one has no such member", "[state_file]") {
  const auto lines = lines_of(encode(example_state()));
  CHECK_FALSE(Json::parse(lines[1]).contains("confirmed"));
  CHECK(Json::parse(lines[4])["confirmed"] == false);
  CHECK(decode(encode(example_state())).state.mappings[3].confirmed == false);
  // Written before the member existed, or true: confirmed.
  auto state = example_state();
  state.mappings[3].confirmed = true;
  CHECK(decode(edited_lines([](std::vector<Json>& r) { r[4].erase("confirmed"); })).state == state);
  CHECK(decode(edited_lines([](std::vector<Json>& r) { r[4]["confirmed"] = true; })).state == state);
  const auto wrong = decode(edited_lines([](std::vector<Json>& r) { r[4]["confirmed"] = "no"; }));
  REQUIRE(wrong.damage.size() == 1);
  CHECK(wrong.damage[0] == Damage{5, R"(confirmed: not a boolean ("no"))"});
  CHECK(wrong.state.mappings.size() == 3);
}

TEST_CASE("the state codec ignores members it does not know", "[state_file]") {
  const auto decoded = decode(edited_lines([](std::vector<Json>& records) {
    records.front()["written_by"] = "natkeeper 0.3";
    records.back()["written_by"] = "natkeeper 0.3";
    records[1]["description"] = "ring";
  }));
  CHECK(decoded.intact());
  CHECK(decoded.state == example_state());
}

TEST_CASE("a state file of the earlier format is read, all or nothing", "[state_file]") {
  const auto upgraded = decode(single_object(example_state()).dump() + "\n");
  CHECK(upgraded.intact());
  CHECK(upgraded.state == confirmed_only(example_state()));

  struct Case {
    std::function<void(Json&)> edit;
    std::string error;
  };
  const std::vector<Case> cases{
      {[](Json& d) { d.erase("version"); }, "version: missing"},
      {[](Json& d) { d["version"] = 3; }, "version: unsupported version (3)"},
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
    auto document = single_object(example_state());
    cases[i].edit(document);
    const auto decoded = decode(document.dump());
    CHECK(decoded.state == ServiceState{});
    CHECK(decoded.damage == std::vector<Damage>{{0, cases[i].error}});
  }
  CHECK(decode("").damage == std::vector<Damage>{{0, "empty"}});
  CHECK(decode("{\"version\":1").damage == std::vector<Damage>{{0, "not valid JSON"}});
  CHECK(decode("\"\xff\"").damage == std::vector<Damage>{{0, "not valid JSON"}});
  CHECK(decode("[1]").damage == std::vector<Damage>{{0, "not a JSON object ([1])"}});
  CHECK(decode("null").damage == std::vector<Damage>{{0, "not a JSON object (null)"}});
}

TEST_CASE("a wrong record costs its own line only, saying which and why", "[state_file]") {
  struct Case {
    std::function<void(std::vector<Json>&)> edit;
    Damage damage;
  };
  const std::vector<Case> cases{
      {[](auto& r) { r[1]["proto"] = "sctp"; }, {2, "proto: unknown protocol (\"sctp\")"}},
      {[](auto& r) { r[2]["internal_port"] = 0; }, {3, "internal_port: not a port (0)"}},
      {[](auto& r) { r[1]["external_port"] = 65536; }, {2, "external_port: not a port (65536)"}},
      {[](auto& r) { r[1].erase("external_port"); }, {2, "external_port: missing"}},
      {[](auto& r) { r[1]["external_ip"] = nullptr; }, {2, "external_ip: not a string (null)"}},
      {[](auto& r) { r[2]["expires_unix"] = -1; }, {3, "expires_unix: negative (-1)"}},
      {[](auto& r) { r[3]["internal_client"] = "doorbell"; },
       {4, "internal_client: not an IPv4 address (\"doorbell\")"}},
      {[](auto& r) { r[3]["device"] = std::string(65, 'd'); },
       {4, "device: too long (\"ddddddddddddddddddddddddddddddddddddddd...)"}},
      {[](auto& r) { r[2] = r[0]; }, {3, "a header where a mapping belongs"}},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO("case " << i);
    const auto decoded = decode(edited_lines(cases[i].edit));
    CHECK(decoded.damage == std::vector<Damage>{cases[i].damage});
    CHECK(decoded.damage_count == 1);
    // The others are kept, and placed.
    auto expected = example_state();
    expected.mappings.erase(expected.mappings.begin() + static_cast<long>(cases[i].damage.line - 2));
    CHECK(decoded.state == expected);
    CHECK(decoded.lost_mappings == 1);
  }
}

TEST_CASE("a wrong header in both copies leaves the mappings unplaced", "[state_file]") {
  const std::vector<std::pair<std::function<void(Json&)>, std::string>> cases{
      {[](Json& h) { h["version"] = 3; }, "version: unsupported version (3)"},
      {[](Json& h) { h["gateway"] = "10.77.0"; }, "gateway: not an IPv4 address (\"10.77.0\")"},
      {[](Json& h) { h["method"] = "igd"; }, "method: unknown method (\"igd\")"},
      {[](Json& h) { h.erase("local_address"); }, "local_address: missing"},
      {[](Json& h) { h["mapping_count"] = -1; }, "mapping_count: out of range (-1)"},
      {[](Json& h) { h["mapping_count"] = "4"; }, "mapping_count: not an integer (\"4\")"},
  };
  for (const auto& [edit_header, error] : cases) {
    INFO(error);
    const auto& edit = edit_header;  // (clang before 16 cannot capture a structured binding)
    const auto decoded = decode(edited_lines([&](std::vector<Json>& r) {
      edit(r.front());
      edit(r.back());
    }));
    CHECK(decoded.damage ==
          std::vector<Damage>{{1, error}, {6, error}, {0, "no intact header: the mappings cannot be placed"}});
    CHECK(decoded.state == ServiceState{});
    CHECK(decoded.lost_mappings == 4);
  }
}

TEST_CASE("a state file cut anywhere keeps every whole record before the cut", "[state_file]") {
  const auto text = encode(example_state());
  const auto lines = lines_of(text);
  // Only the last newline missing: nothing is lost.
  CHECK(decode(text.substr(0, text.size() - 1)).intact());
  for (std::size_t cut = 0; cut + 1 < text.size(); ++cut) {
    INFO("cut after " << cut << " bytes");
    const auto decoded = decode(text.substr(0, cut));
    CHECK_FALSE(decoded.intact());
    // Whole mapping lines before the cut (a line is whole with its newline or
    // without: its checksum is complete).
    std::size_t whole = 0, end = lines[0].size();
    for (std::size_t line = 1; line + 1 < lines.size() && end + lines[line].size() - 1 <= cut; ++line) {
      ++whole;
      end += lines[line].size();
    }
    if (cut < lines[0].size() - 1) {
      // The header is cut: nothing can be placed.
      CHECK(decoded.state.mappings.empty());
      continue;
    }
    auto expected = example_state();
    expected.mappings.resize(whole);
    CHECK(decoded.state == expected);
    CHECK(decoded.lost_mappings == example_state().mappings.size() - whole);
  }
}

TEST_CASE("a state file cut after a whole record says it was cut", "[state_file]") {
  const auto lines = lines_of(encode(example_state()));
  const auto decoded = decode(lines[0] + lines[1] + lines[2]);
  CHECK(decoded.damage == std::vector<Damage>{{4, "missing: the closing header (cut short?)"}});
  CHECK(decoded.state.mappings.size() == 2);
  CHECK(decoded.lost_mappings == 2);
  CHECK(describe_damage(decoded) == "line 4: missing: the closing header (cut short?); 2 mappings kept, 2 lost");
  const auto header_only = decode(lines[0]);
  CHECK(header_only.damage == std::vector<Damage>{{2, "missing: the closing header (cut short?)"}});
  CHECK(header_only.lost_mappings == 4);
}

TEST_CASE("a changed byte costs its line only; either header copy places the mappings", "[state_file]") {
  const auto text = encode(example_state());
  const auto lines = lines_of(text);
  std::size_t line = 1, line_end = lines[0].size();
  for (std::size_t at = 0; at < text.size(); ++at) {
    if (at == line_end) line_end += lines[line++].size();
    if (text[at] == '\n') continue;  // a joined line is two damaged lines; below
    INFO("byte " << at << " of line " << line);
    auto damaged = text;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x20);
    const auto decoded = decode(damaged);
    REQUIRE(decoded.damage_count == 1);
    CHECK(decoded.damage[0].line == line);
    auto expected = example_state();
    if (line >= 2 && line <= 5) expected.mappings.erase(expected.mappings.begin() + static_cast<long>(line - 2));
    CHECK(decoded.state == expected);
  }
  auto joined = text;
  joined[lines[0].size() + lines[1].size() - 1] = ' ';
  const auto decoded = decode(joined);
  CHECK(decoded.damage == std::vector<Damage>{{2, "checksum mismatch"}});
  CHECK(decoded.state.mappings.size() == 2);
  CHECK(decoded.lost_mappings == 2);
}

TEST_CASE("damage is listed up to a bound, and counted", "[state_file]") {
  const auto lines = lines_of(encode(example_state()));
  std::string text = lines[0];
  for (int i = 0; i < 20; ++i) text += "garbage\n";
  text += lines[1] + lines[5];
  const auto decoded = decode(text);
  CHECK(decoded.damage.size() == kMaxDamageListed);
  CHECK(decoded.damage_count == 20);
  CHECK(decoded.damage[0] == Damage{2, "no checksum (a line cut short?)"});
  CHECK(decoded.state.mappings.size() == 1);
  CHECK(decoded.lost_mappings == 3);
  CHECK(describe_damage(decoded).ends_with("; 12 more problems; 1 mappings kept, 3 lost"));
}

TEST_CASE("the state codec holds every port of both protocols, and no more", "[state_file]") {
  ServiceState state = example_state();
  // The longest entry: a device's, with the longest name, unconfirmed.
  state.mappings.assign(kMaxLiveMappings + 1, {Transport::tcp, 65535, 65535, "255.255.255.255", false,
                                               std::numeric_limits<std::int64_t>::max(), "255.255.255.255",
                                               std::string(kMaxDeviceNameBytes, 'd'), false});
  const auto text = encode(state);
  CHECK(text.size() <= kMaxStateFileBytes);
  const auto decoded = decode(text);
  CHECK(decoded.state.mappings.size() == kMaxLiveMappings);
  CHECK(decoded.damage == std::vector<Damage>{{0, "1 mapping records beyond 131072"}});

  // Beyond the size bound nothing is read, what comes before is kept.
  const auto large = decode(encode(example_state()) + std::string(kMaxStateFileBytes, 'x'));
  CHECK(large.state.mappings.size() == 4);
  CHECK(large.damage == std::vector<Damage>{{0, "larger than 50331648 bytes; the rest is not read"},
                                            {6, "a header where a mapping belongs"},
                                            {7, "no checksum (a line cut short?)"}});
}

TEST_CASE("snapshots that differ only in their expiry times hold the same", "[state_file]") {
  const auto state = example_state();
  auto later = state;
  for (auto& mapping : later.mappings) mapping.expires_unix += 600;
  CHECK(holdings_digest(state) == holdings_digest(later));
  const std::vector<std::function<void(ServiceState&)>> changes{
      [](ServiceState& s) { s.gateway = "10.77.0.9"; },
      [](ServiceState& s) { s.method = "pcp"; },
      [](ServiceState& s) { s.local_address = "10.77.0.9"; },
      [](ServiceState& s) { s.mappings.pop_back(); },
      [](ServiceState& s) { s.mappings[0].external_port = 7078; },
      [](ServiceState& s) { s.mappings[0].external_ip = ""; },
      [](ServiceState& s) { s.mappings[1].permanent = false; },
      [](ServiceState& s) { s.mappings[2].internal_client = "10.77.0.51"; },
      [](ServiceState& s) { s.mappings[2].device = "chime"; },
      [](ServiceState& s) { s.mappings[3].confirmed = true; },
      [](ServiceState& s) { s.mappings[0].proto = Transport::tcp; },
      [](ServiceState& s) { s.mappings[0].internal_port = 1; },
      // The same characters across two fields.
      [](ServiceState& s) {
        s.mappings[2].device = s.mappings[2].internal_client.substr(s.mappings[2].internal_client.size() - 1) +
                               s.mappings[2].device;
        s.mappings[2].internal_client.pop_back();
      },
  };
  for (std::size_t i = 0; i < changes.size(); ++i) {
    INFO("change " << i);
    auto changed = later;
    changes[i](changed);
    CHECK(holdings_digest(state) != holdings_digest(changed));
  }
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
  CHECK(load.damage.empty());
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
  CHECK(load.damage.empty());
  CHECK(load.state == ServiceState{});
}

TEST_CASE("a state file of the earlier format is read as it is", "[state_file]") {
  const TemporaryDirectory directory;
  const auto file = directory.path / "mappings.json";
  const auto text = single_object(example_state()).dump() + "\n";
  write_text(file, text);
  const auto load = read_state_file(file);
  CHECK(load.error.empty());
  CHECK(load.damage.empty());
  CHECK(load.state == confirmed_only(example_state()));
  CHECK(read_text(file) == text);
}

TEST_CASE("a damaged state file: its intact records are kept, in its place, and it is moved aside", "[state_file]") {
  const TemporaryDirectory directory;
  const auto file = directory.path / "mappings.json";
  const auto aside = directory.path / "mappings.json.damaged";
  CHECK(damaged_state_file_path(file) == aside);
  const auto lines = lines_of(encode(example_state()));
  // Torn in the third record.
  const auto torn = lines[0] + lines[1] + lines[2] + lines[3].substr(0, 20);
  write_text(file, torn);
  const auto load = read_state_file(file);
  auto kept = example_state();
  kept.mappings.resize(2);
  CHECK(load.state == kept);
  CHECK(load.error.empty());
  CHECK(load.damage == file.string() + " is damaged: line 4: no checksum (a line cut short?); 2 mappings kept, 2 lost; " +
                           "the damaged file is kept as " + aside.string());
  CHECK(read_text(aside) == torn);
  struct stat info {};
  REQUIRE(::stat(aside.c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);
  // What replaced it is intact: the next run finds the same, with nothing to report.
  const auto again = read_state_file(file);
  CHECK(again.damage.empty());
  CHECK(again.state == kept);

  // Another damaged file takes the place of the first: one is kept, no more.
  write_text(file, "{\"version\":1,");
  const auto nothing = read_state_file(file);
  CHECK(nothing.state == ServiceState{});
  CHECK(nothing.damage == file.string() + " is damaged: not valid JSON; 0 mappings kept, 0 lost; " +
                              "the damaged file is kept as " + aside.string());
  CHECK(read_text(aside) == "{\"version\":1,");
  // Nothing intact: no state file is left.
  CHECK_FALSE(fs::exists(file));
  std::vector<fs::path> entries;
  for (const auto& entry : fs::directory_iterator(directory.path)) entries.push_back(entry.path().filename());
  CHECK(entries == std::vector<fs::path>{"mappings.json.damaged"});
}

TEST_CASE("a damaged state file that cannot be copied stays in place", "[state_file]") {
  const TemporaryDirectory directory;
  const auto file = directory.path / "mappings.json";
  const auto lines = lines_of(encode(example_state()));
  write_text(file, lines[0] + lines[1]);
  // rename() cannot replace a directory with a file.
  fs::create_directories(directory.path / "mappings.json.damaged" / "in-the-way");
  const auto load = read_state_file(file);
  CHECK(load.state.mappings.size() == 1);
  CHECK(load.damage.find("; it stays in place, as no copy can be kept as ") != std::string::npos);
  CHECK(read_text(file) == lines[0] + lines[1]);
}

TEST_CASE("a state file larger than any natkeeper writes keeps what comes before the bound", "[state_file]") {
  const TemporaryDirectory directory;
  const auto file = directory.path / "mappings.json";
  write_text(file, encode(example_state()) + std::string(kMaxStateFileBytes + 10, '\n'));
  const auto load = read_state_file(file);
  CHECK(load.state == example_state());
  CHECK(load.damage.starts_with(file.string() + " is damaged: larger than 50331648 bytes; the rest is not read; "));
}

TEST_CASE("only a regular file is read as the state file: no waiting on a FIFO, no following a link",
          "[state_file]") {
  const TemporaryDirectory directory;
  const auto file = directory.path / "mappings.json";

  // Opening a FIFO for reading waits for a writer, unless non-blocking.
  REQUIRE(::mkfifo(file.c_str(), 0600) == 0);
  auto load = read_state_file(file);
  CHECK(load.state == ServiceState{});
  CHECK(load.error == file.string() + " is a FIFO; not read");
  CHECK(fs::is_fifo(file));  // left alone
  fs::remove(file);

  // A link could make the service read (and replace) a file it was not given.
  const auto elsewhere = directory.path / "elsewhere.json";
  REQUIRE_FALSE(write_state_file(elsewhere, example_state()));
  fs::create_symlink(elsewhere, file);
  load = read_state_file(file);
  CHECK(load.state == ServiceState{});
  CHECK(load.error == file.string() + " is a symbolic link; not read");
  fs::remove(file);

  fs::create_directory(file);
  load = read_state_file(file);
  CHECK(load.state == ServiceState{});
  CHECK(load.error == file.string() + " is a directory; not read");
  CHECK(load.damage.empty());
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
