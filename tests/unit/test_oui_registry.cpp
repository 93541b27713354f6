#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "agent/gateway/oui_registry.hpp"

using namespace natkeeper;
namespace fs = std::filesystem;

namespace {

// Rows as the registry's files have them: CRLF, quoted names and addresses
// with commas, doubled quotes and a line break.
constexpr std::string_view kOuiCsv =
    "Registry,Assignment,Organization Name,Organization Address\r\n"
    "MA-L,54E019,Ring LLC,1523 26th St Santa Monica CA US 90404 \r\n"
    "MA-L,F4BD9E,\"Cisco Systems, Inc\",80 West Tasman Drive San Jose CA US 94568 \r\n"
    "MA-L,70B3D5,IEEE Registration Authority,\"445 Hoes Lane  Piscataway NJ US 08554 \"\r\n"
    "MA-L,00D0EF,IGT,\"9295 PROTOTYPE DRIVE\nRENO NV US 89511 \"\r\n"
    "MA-L,0050C2,IEEE Registration Authority,445 Hoes Lane  Piscataway NJ US 08554 \r\n";
constexpr std::string_view kMamCsv =
    "Registry,Assignment,Organization Name,Organization Address\r\n"
    "MA-M,70B3D5A,Twenty-Eight Bits Ltd,\r\n";
constexpr std::string_view kOui36Csv =
    "Registry,Assignment,Organization Name,Organization Address\r\n"
    "MA-S,70B3D5F2F,TELEPLATFORMS,\"Polbina st., 3/1 Moscow  RU 109388 \"\r\n";
constexpr std::string_view kIabCsv =
    "Registry,Assignment,Organization Name,Organization Address\r\n"
    "IAB,0050C2EDA,\"Joint Stock Company \"\"Svyaz Inginiring M\"\"\",\"42, Varshavskoye Shosse, Moscow RU \"\r\n";

MacAddress mac(const char* text) { return *parse_mac(text); }

OuiRegistry sample_registry() {
  std::vector<OuiAssignment> all;
  for (const auto text : {kOuiCsv, kMamCsv, kOui36Csv, kIabCsv}) {
    auto some = parse_oui_csv(text);
    all.insert(all.end(), some.begin(), some.end());
  }
  return OuiRegistry(all);
}

// A directory of its own under the system's temporary one, removed at the end.
struct TemporaryDirectory {
  fs::path path = fs::temp_directory_path() /
                  ("natkeeper-oui-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  TemporaryDirectory() { fs::create_directories(path); }
  ~TemporaryDirectory() { fs::remove_all(path); }
};

}  // namespace

TEST_CASE("oui csv: assignments of each registry, quoting as RFC 4180", "[oui]") {
  const auto oui = parse_oui_csv(kOuiCsv);
  REQUIRE(oui.size() == 5);
  CHECK(oui[0].prefix == 0x54E019);
  CHECK(oui[0].bits == 24);
  CHECK(oui[0].organisation == "Ring LLC");
  CHECK(oui[1].organisation == "Cisco Systems, Inc");
  CHECK(oui[3].organisation == "IGT");  // its address's line break ends no row
  CHECK(oui[4].prefix == 0x0050C2);

  const auto mam = parse_oui_csv(kMamCsv);
  REQUIRE(mam.size() == 1);
  CHECK(mam[0].prefix == 0x70B3D5A);
  CHECK(mam[0].bits == 28);

  const auto iab = parse_oui_csv(kIabCsv);
  REQUIRE(iab.size() == 1);
  CHECK(iab[0].prefix == 0x0050C2EDA);
  CHECK(iab[0].bits == 36);
  CHECK(iab[0].organisation == "Joint Stock Company \"Svyaz Inginiring M\"");

  // LF line ends, a last row without one, spaces around fields.
  const auto plain = parse_oui_csv("MA-S,70B3D5F2F,  TELEPLATFORMS  ,x\nMA-L,  54e019 ,Ring LLC");
  REQUIRE(plain.size() == 2);
  CHECK(plain[0].bits == 36);
  CHECK(plain[0].organisation == "TELEPLATFORMS");
  CHECK(plain[1].prefix == 0x54E019);
}

TEST_CASE("oui csv: rows that are no assignment are skipped", "[oui]") {
  CHECK(parse_oui_csv("").empty());
  CHECK(parse_oui_csv("Registry,Assignment,Organization Name,Organization Address\r\n").empty());
  CHECK(parse_oui_csv("MA-L,54E01,Short,\n").empty());          // digits for another registry
  CHECK(parse_oui_csv("MA-M,54E019,Six digits,\n").empty());
  CHECK(parse_oui_csv("MA-L,54E01G,Not hex,\n").empty());
  CHECK(parse_oui_csv("MA-L,+4E019,Signed,\n").empty());
  CHECK(parse_oui_csv("CID,54E019,Company ID,\n").empty());     // not a MAC block
  CHECK(parse_oui_csv("MA-L,54E019,  ,\n").empty());            // no name
  CHECK(parse_oui_csv("MA-L,54E019\n").empty());
  // An unterminated quote swallows the rest: the rows before it stand.
  const auto cut = parse_oui_csv("MA-L,54E019,Ring LLC,x\nMA-L,F4BD9E,\"Cisco\nMA-L,000000,Lost,\n");
  REQUIRE(cut.size() == 1);
  CHECK(cut[0].organisation == "Ring LLC");
}

TEST_CASE("oui registry: the longest registered block names the vendor", "[oui]") {
  const auto registry = sample_registry();
  CHECK(registry.vendor(mac("54:e0:19:aa:bb:cc")) == "Ring LLC");
  CHECK(registry.vendor(mac("f4:bd:9e:00:00:01")) == "Cisco Systems, Inc");
  CHECK(registry.vendor(mac("70:b3:d5:f2:f0:01")) == "TELEPLATFORMS");          // 36 bits
  CHECK(registry.vendor(mac("70:b3:d5:a0:00:01")) == "Twenty-Eight Bits Ltd");  // 28 bits
  CHECK(registry.vendor(mac("70:b3:d5:f2:e0:01")) == "IEEE Registration Authority");
  CHECK(registry.vendor(mac("70:b3:d5:00:00:01")) == "IEEE Registration Authority");
  CHECK(registry.vendor(mac("00:50:c2:ed:a1:23")) == "Joint Stock Company \"Svyaz Inginiring M\"");
  CHECK(registry.vendor(mac("00:50:c2:ed:b1:23")) == "IEEE Registration Authority");
  CHECK(registry.vendor(mac("02:00:00:00:00:01")) == std::nullopt);
}

TEST_CASE("oui registry: Ring's blocks are those registered to Ring LLC", "[oui]") {
  const auto registry = sample_registry();
  CHECK(registry.is_ring(mac("54:e0:19:aa:bb:cc")));
  CHECK_FALSE(registry.is_ring(mac("f4:bd:9e:00:00:01")));
  CHECK_FALSE(registry.is_ring(mac("02:00:00:00:00:01")));
  // A 36-bit block inside Ring's 24 bits belongs to whoever registered it.
  const OuiRegistry nested(parse_oui_csv("MA-L,54E019,Ring LLC,\nMA-S,54E019ABB,Someone Else,\n"));
  CHECK_FALSE(nested.is_ring(mac("54:e0:19:ab:bc:cc")));
  CHECK(nested.is_ring(mac("54:e0:19:ab:cc:cc")));
  // Without Ring in the registry, nothing is Ring's.
  CHECK_FALSE(OuiRegistry(parse_oui_csv("MA-L,54E019,Not Ring LLC,\n")).is_ring(mac("54:e0:19:aa:bb:cc")));
}

TEST_CASE("oui registry: without ieee-data every vendor is unknown", "[oui]") {
  const OuiRegistry none;
  CHECK(none.empty());
  CHECK(none.vendor(mac("54:e0:19:aa:bb:cc")) == std::nullopt);
  CHECK_FALSE(none.is_ring(mac("54:e0:19:aa:bb:cc")));
  CHECK(OuiRegistry::load("/nonexistent/ieee-data").empty());
}

TEST_CASE("oui registry: loads the files that are there", "[oui]") {
  const TemporaryDirectory directory;
  std::ofstream(directory.path / "oui.csv") << kOuiCsv;
  std::ofstream(directory.path / "oui36.csv") << kOui36Csv;  // mam.csv and iab.csv missing
  const auto registry = OuiRegistry::load(directory.path);
  CHECK(registry.vendor(mac("54:e0:19:aa:bb:cc")) == "Ring LLC");
  CHECK(registry.vendor(mac("70:b3:d5:f2:f0:01")) == "TELEPLATFORMS");
  CHECK(registry.vendor(mac("70:b3:d5:a0:00:01")) == "IEEE Registration Authority");
}

TEST_CASE("oui registry: the installed registry knows Ring's 54:e0:19", "[oui]") {
  if (!fs::exists(fs::path(kIeeeDataDirectory) / "oui.csv")) {
    WARN("ieee-data is not installed: skipped");
    return;
  }
  const auto registry = OuiRegistry::load();
  CHECK(registry.vendor(mac("54:e0:19:aa:bb:cc")) == "Ring LLC");
  CHECK(registry.is_ring(mac("54:e0:19:aa:bb:cc")));
  CHECK(registry.vendor(mac("00:00:0c:12:34:56")) == "Cisco Systems, Inc");
  CHECK_FALSE(registry.is_ring(mac("00:00:0c:12:34:56")));
  CHECK(registry.vendor(mac("70:b3:d5:f2:f0:01")) == "TELEPLATFORMS");  // from oui36.csv
}
