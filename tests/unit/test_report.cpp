#include <catch2/catch.hpp>

#include "agent/report/report.hpp"
#include "agent/report/status.hpp"
#include "mappers/errors.hpp"

using namespace natkeeper;
using namespace std::chrono_literals;

namespace {

MapOutcome ok(std::uint16_t port, Transport proto = Transport::udp, std::chrono::seconds lease = 3600s) {
  MapRequest request{proto, port, port, lease, "natkeeper", {}, {}};
  return {request, Mapping{request, asio::ip::make_address("203.0.113.1"), port, lease, lease == 0s}, {}};
}

MapOutcome failed(std::uint16_t port, std::error_code error) {
  return {{Transport::udp, port, port, 3600s, "natkeeper", {}, {}}, std::nullopt, error};
}

RunReport sample() {
  std::vector<MapOutcome> outcomes;
  for (std::uint16_t p = 16500; p <= 16599; ++p) outcomes.push_back(ok(p));
  outcomes.push_back(ok(15063, Transport::tcp));
  outcomes.push_back(failed(7076, make_upnp_error(718)));
  outcomes.push_back(failed(7077, make_upnp_error(718)));
  outcomes.push_back(failed(9078, make_upnp_error(728)));
  outcomes.push_back(failed(9079, make_error_code(Errc::table_full_skipped)));
  return make_report({"10.77.0.1", "10.77.0.2", "upnp", "IGDv2 at http://10.77.0.1:5000/rootDesc.xml",
                      "203.0.113.1"},
                     NatKind::unknown, "upnp", outcomes);
}

}  // namespace

TEST_CASE("the JSON report follows the contract") {
  const auto json = to_json(sample());
  CHECK(json["gateway"]["address"] == "10.77.0.1");
  CHECK(json["gateway"]["method"] == "upnp");
  CHECK(json["gateway"]["external_ip"] == "203.0.113.1");
  CHECK(json["nat"] == "unknown");
  REQUIRE(json["mappings"].size() == 105);
  const auto& first = json["mappings"][0];
  CHECK(first["proto"] == "udp");
  CHECK(first["internal_port"] == 16500);
  CHECK(first["external_port"] == 16500);
  CHECK(first["method"] == "upnp");
  CHECK(first["lifetime"] == 3600);
  CHECK(first["state"] == "mapped");
  CHECK(first["error"].is_null());
  const auto& conflict = json["mappings"][101];
  CHECK(conflict["state"] == "failed");
  CHECK(conflict["external_port"].is_null());
  CHECK(conflict["error"] == "conflict: external port 7076 is held by another client "
                             "(UPnP error 718 ConflictInMappingEntry)");
  CHECK(conflict["error_code"] == "upnp:718");
  CHECK(json["mappings"][103]["error"] == "gateway mapping table full (UPnP error 728 NoPortMapsAvailable)");
  CHECK(json["mappings"][104]["error"] == "not attempted: the gateway mapping table is full");
  CHECK(json["summary"]["requested"] == 105);
  CHECK(json["summary"]["active"] == 101);
  CHECK(json["summary"]["failed"] == 4);
}

TEST_CASE("the text table folds runs of ports into one row") {
  const auto text = to_text(sample());
  CHECK_THAT(text, Catch::Contains("udp    16500-16599  203.0.113.1:16500-16599"));
  CHECK_THAT(text, Catch::Contains("tcp    15063        203.0.113.1:15063"));
  // Conflicts name their port, so they keep a row each.
  CHECK_THAT(text, Catch::Contains("conflict: external port 7076"));
  CHECK_THAT(text, Catch::Contains("conflict: external port 7077"));
  CHECK_THAT(text, Catch::Contains("101 of 105 mappings active."));
  const auto rows = std::count(text.begin(), text.end(), '\n');
  CHECK(rows < 15);
}

TEST_CASE("leases read as durations; permanent leases are called out") {
  CHECK(format_lease(*ok(1, Transport::udp, 3600s).mapping) == "1h");
  CHECK(format_lease(*ok(1, Transport::udp, 5400s).mapping) == "1h30m");
  CHECK(format_lease(*ok(1, Transport::udp, 45s).mapping) == "45s");
  CHECK(format_lease(*ok(1, Transport::udp, 0s).mapping) == "permanent");
  const auto report = make_report({}, NatKind::unknown, "upnp", {ok(1, Transport::udp, 0s)});
  CHECK_THAT(to_text(report), Catch::Contains("natkeeper --delete"));
}

TEST_CASE("--once, --status and --delete show a mapping with the same fields") {
  const auto report = sample();
  const auto& failed = report.mappings[101];
  const auto row = mapping_json(failed, "10.77.0.2", std::nullopt);
  for (const char* key : {"proto", "internal_port", "external_port", "external_ip", "method", "state", "error",
                          "error_code", "internal_client"}) {
    CHECK(to_json(report)["mappings"][101][key] == row[key]);
    CHECK(status_mapping_json(failed, "10.77.0.2", std::nullopt, 5s, std::nullopt)[key] == row[key]);
  }
}

TEST_CASE("the status table folds runs, shows a run's soonest renewal and pending mappings") {
  const auto report = sample();
  nlohmann::json mappings = nlohmann::json::array();
  for (std::size_t i = 0; i < 100; ++i)  // udp 16500-16599, each renewed at its own time
    mappings.push_back(status_mapping_json(report.mappings[i], "10.77.0.2", std::nullopt, std::chrono::seconds(2000 - i), 300s));
  mappings.push_back(status_mapping_json(report.mappings[101], "10.77.0.2", std::nullopt, 4s, std::nullopt));  // a conflict
  MappingReport waiting;
  waiting.request = {Transport::tcp, 15063, 15063, 3600s, "natkeeper", {}, {}};
  waiting.note = "not mapped yet";
  mappings.push_back(status_mapping_json(waiting, "10.77.0.2", std::nullopt, 0s, std::nullopt));
  const nlohmann::json status = {{"pid", 42}, {"status", "2 of 3 mappings active"}, {"nat", "unknown"},
                                 {"nat_explanation", "-"}, {"mappings", mappings},
                                 {"summary", {{"planned", 102}, {"active", 100}, {"verified", 0}}}};
  CHECK(mappings[101]["state"] == "pending");
  const auto text = status_to_text(status);
  CHECK_THAT(text, Catch::Contains("PROTO  INTERNAL     EXTERNAL                     STATE      LEASE   RENEW IN  DETAIL"));
  CHECK_THAT(text, Catch::Contains("udp    16500-16599  203.0.113.1:16500-16599      mapped     1h      31m"));
  CHECK_THAT(text, Catch::Contains("udp    7076         -                            failed     -       4s        conflict"));
  CHECK_THAT(text, Catch::Contains("tcp    15063        -                            pending    -       -         not mapped yet"));
  CHECK_THAT(text, Catch::Contains("100 of 102 mappings active, 0 verified from outside."));
}

namespace {

MapRequest for_device(std::uint16_t port, const char* device = "doorbell", const char* address = "10.77.0.50") {
  return {Transport::udp, port, port, 3600s, "natkeeper doorbell", asio::ip::make_address(address), device};
}

}  // namespace

TEST_CASE("each mapping row says whom it is for; a device's row names the device") {
  const auto own = sample().mappings.front();
  auto json = mapping_json(own, "10.77.0.2", std::nullopt);
  CHECK(json["internal_client"] == "10.77.0.2");
  CHECK_FALSE(json.contains("device"));

  MappingReport doorbell;
  doorbell.request = for_device(7076);
  json = mapping_json(doorbell, "10.77.0.2", std::nullopt);
  CHECK(json["internal_client"] == "10.77.0.50");
  CHECK(json["device"] == "doorbell");
  doorbell.request.device.clear();  // a device known by its address alone
  CHECK(mapping_json(doorbell, "10.77.0.2", std::nullopt)["device"] == "10.77.0.50");
}

TEST_CASE("tables group the mappings under whom they are for once a device is planned") {
  std::vector<MapOutcome> outcomes{ok(7076), ok(7077)};
  for (std::uint16_t port : {7076, 7077}) {
    const auto request = for_device(port);
    outcomes.push_back({request, Mapping{request, asio::ip::make_address("203.0.113.1"), static_cast<std::uint16_t>(port + 1000), 3600s, false}, {}});
  }
  const auto report = make_report({"10.77.0.1", "10.77.0.2", "upnp", "IGDv2", "203.0.113.1"}, NatKind::single,
                                  "upnp", outcomes);
  const auto text = to_text(report);
  CHECK_THAT(text, Catch::Contains("For this host 10.77.0.2:\nudp    7076-7077    203.0.113.1:7076-7077"));
  // A device that got other external ports: the table says so.
  CHECK_THAT(text, Catch::Contains("For doorbell 10.77.0.50:\nudp    7076-7077    203.0.113.1:8076-8077"));
  CHECK_THAT(text, Catch::Contains("mapped; on another external port: the wanted one was taken\n"));
  CHECK_THAT(to_text(sample()), !Catch::Contains("For "));

  nlohmann::json mappings = nlohmann::json::array();
  for (const auto& m : report.mappings) mappings.push_back(status_mapping_json(m, "10.77.0.2", std::nullopt, 60s, std::nullopt));
  const nlohmann::json status = {{"pid", 42}, {"status", "-"}, {"mappings", mappings}};
  const auto status_text = status_to_text(status);
  CHECK_THAT(status_text, Catch::Contains("For this host 10.77.0.2:\nudp    7076-7077"));
  CHECK_THAT(status_text, Catch::Contains("For doorbell 10.77.0.50:\nudp    7076-7077    203.0.113.1:8076-8077"));
}

TEST_CASE("a refused mapping for a device says so and names the router setting to change") {
  const auto request = for_device(7076);
  const auto upnp = describe_failure(make_error_code(Errc::third_party_refused), request, std::nullopt);
  CHECK_THAT(upnp, Catch::StartsWith("the router only forwards ports to the host that asks"));
  CHECK_THAT(upnp, Catch::Contains("secure_mode=no"));
  CHECK_THAT(upnp, Catch::Contains("FRITZ!Box"));
  CHECK_THAT(upnp, Catch::Contains("10.77.0.50"));
  for (int code : {2, 5, 12}) {
    const auto pcp = describe_failure(make_pcp_error(code), request, std::nullopt);
    CHECK_THAT(pcp, Catch::Contains("only forwards ports to the host that asks"));
    CHECK_THAT(pcp, Catch::Contains("pcp_allow_thirdparty=yes"));
  }
  CHECK_THAT(describe_failure(make_error_code(Errc::third_party_unsupported), request, std::nullopt),
             Catch::StartsWith("NAT-PMP cannot map ports for another device"));
  // For this host, PCP's NOT_AUTHORIZED stays what it was.
  CHECK_THAT(describe_failure(make_pcp_error(2), MapRequest{}, std::nullopt), Catch::StartsWith("not authorized"));
}

TEST_CASE("a bare Action Failed from a router whose own WAN cannot be reached says why") {
  const auto request = MapRequest{Transport::udp, 7076, 7076, 3600s, "natkeeper", {}, {}};
  const auto refusal = make_upnp_error(501);
  const auto described = [&](const char* wan) {
    return describe_failure(refusal, request, asio::ip::make_address(wan));
  };
  CHECK(described("192.168.1.20") ==
        "the router's own WAN is behind another NAT (its external address is 192.168.1.20): it cannot forward from "
        "the internet; put the router in front of it in bridge mode, or forward the same ports on that router to "
        "this one (UPnP error 501 Action Failed)");
  CHECK_THAT(described("10.1.2.3"), Catch::StartsWith("the router's own WAN is behind another NAT (its external "
                                                      "address is 10.1.2.3)"));
  CHECK_THAT(described("100.64.0.2"), Catch::StartsWith("the router's own WAN is behind the internet provider's "
                                                        "carrier-grade NAT (its external address is 100.64.0.2)"));
  CHECK_THAT(described("100.64.0.2"), Catch::Contains("public IPv4 address"));
  CHECK_THAT(described("0.0.0.0"), Catch::StartsWith("the router has no external address of its own (0.0.0.0)"));
  // A public address, or none known, explains nothing; nor does it explain other refusals.
  CHECK(described("203.0.113.1") == "UPnP error 501 Action Failed");
  CHECK(describe_failure(refusal, request, std::nullopt) == "UPnP error 501 Action Failed");
  CHECK(describe_failure(make_upnp_error(606), request, asio::ip::make_address("192.168.1.20")) ==
        "not authorized: the gateway refuses mappings for this host (UPnP error 606 Action not authorized)");

  // Every report says it, against the gateway's external address.
  const auto report = make_report({"10.77.0.1", "10.77.0.2", "upnp", "IGDv1", "192.168.1.20"}, NatKind::double_nat,
                                  "upnp", {failed(7076, refusal)});
  CHECK_THAT(to_text(report), Catch::Contains("its external address is 192.168.1.20"));
  CHECK_THAT(to_json(report)["mappings"][0]["error"].get<std::string>(),
             Catch::Contains("its external address is 192.168.1.20"));
  CHECK(to_json(report)["mappings"][0]["error_code"] == "upnp:501");
  StatusRows rows("10.77.0.2", asio::ip::make_address("192.168.1.20"));
  CHECK_FALSE(rows.add(report.mappings[0], 60s, std::nullopt));
  CHECK_THAT(rows.finish().value()["error"].get<std::string>(), Catch::Contains("behind another NAT"));
}

namespace {

// The rows --status shows for `reports`, each renewed `renew_in` - its index from now.
std::vector<nlohmann::json> status_rows(const std::vector<MappingReport>& reports, std::chrono::seconds renew_in = 2000s,
                                        std::optional<std::chrono::seconds> verified_ago = std::nullopt) {
  StatusRows rows("10.77.0.2", std::nullopt);
  std::vector<nlohmann::json> out;
  for (std::size_t i = 0; i < reports.size(); ++i) {
    const auto ago = verified_ago ? std::optional(*verified_ago + std::chrono::seconds(i)) : std::nullopt;
    if (auto row = rows.add(reports[i], renew_in - std::chrono::seconds(i), ago)) out.push_back(std::move(*row));
  }
  if (auto row = rows.finish()) out.push_back(std::move(*row));
  return out;
}

}  // namespace

TEST_CASE("--status folds a run of ports into one row with its count, soonest renewal and oldest proof") {
  auto reports = sample().mappings;  // udp 16500-16599 mapped, tcp 15063, four failures
  for (std::size_t i = 0; i < 100; ++i) reports[i].verified_by = "reflector";
  reports.resize(100);
  auto rows = status_rows(reports, 2000s, 300s);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["internal_port"] == 16500);
  CHECK(rows[0]["external_port"] == 16500);
  CHECK(rows[0]["count"] == 100);
  CHECK(rows[0]["renew_in_s"] == 2000 - 99);
  CHECK(rows[0]["verified_ago_s"] == 300 + 99);
  CHECK(rows[0]["state"] == "mapped");
  // A single port's row is as it always was, with a count of one.
  auto single = status_rows({reports[7]}, 60s, 5s);
  REQUIRE(single.size() == 1);
  auto expected = status_mapping_json(reports[7], "10.77.0.2", std::nullopt, 60s, 5s);
  CHECK(single[0] == expected);
  CHECK(single[0]["count"] == 1);
}

TEST_CASE("--status starts a new row wherever a port breaks the run") {
  const auto base = sample().mappings;
  std::vector<MappingReport> reports(base.begin(), base.begin() + 10);  // udp 16500-16509
  reports[3].note = "probe sent";                                       // another outcome
  reports[6].mapping->external_port = 40000;                            // another external port
  reports[8].mapping->lifetime = 7200s;                                 // another lease
  reports.push_back(base[100]);                                         // tcp 15063
  reports.push_back(base[101]);                                         // udp 7076 failed
  reports.push_back(base[102]);                                         // udp 7077 failed alike: joins
  const auto rows = status_rows(reports);
  std::vector<std::pair<int, int>> spans;  // first internal port, count
  for (const auto& row : rows) spans.emplace_back(row["internal_port"].get<int>(), row["count"].get<int>());
  CHECK(spans == std::vector<std::pair<int, int>>{{16500, 3}, {16503, 1}, {16504, 2}, {16506, 1}, {16507, 1},
                                                   {16508, 1}, {16509, 1}, {15063, 1}, {7076, 2}});
  CHECK(rows.back()["state"] == "failed");
  CHECK(rows.back()["external_port"].is_null());
}

TEST_CASE("--status --json prints the parts as one document, the rows as they come") {
  const auto rows = status_rows(sample().mappings);
  const nlohmann::json head = {{"pid", 42}, {"status", "running"}, {"gateway", {{"address", "10.77.0.1"}}},
                               {"summary", {{"planned", 105}, {"active", 101}}}};
  StatusJsonPrinter printer;
  auto text = printer.head(head);
  for (const auto& row : rows) text += printer.row(row);
  text += printer.finish();
  auto whole = head;
  whole["mappings"] = rows;
  CHECK(nlohmann::json::parse(text) == whole);
  // Indented as dump(2) would: each row at the depth of the array's elements.
  CHECK_THAT(text, Catch::Contains("  \"mappings\": [\n    {\n      \"count\": 100,"));
  CHECK_THAT(text, Catch::EndsWith("\n  ]\n}\n"));

  StatusJsonPrinter empty;
  const auto none = empty.head(head) + empty.finish();
  CHECK(nlohmann::json::parse(none)["mappings"] == nlohmann::json::array());
}

TEST_CASE("the status text shows rows that stand for runs as their port spans") {
  const auto rows = status_rows(sample().mappings);
  nlohmann::json status = {{"pid", 42}, {"status", "-"}, {"summary", {{"planned", 105}, {"active", 101}, {"verified", 0}}}};
  status["mappings"] = rows;
  const auto text = status_to_text(status);
  CHECK_THAT(text, Catch::Contains("udp    16500-16599  203.0.113.1:16500-16599      mapped     1h      31m"));
  CHECK_THAT(text, Catch::Contains("udp    7076-7077    -                            failed"));
  // Rows that continue each other (a run split where the plan changed while
  // it was sent) still share a table row.
  auto first_half = rows[0], second_half = rows[0];
  first_half["count"] = second_half["count"] = 50;
  second_half["internal_port"] = second_half["external_port"] = 16550;
  status["mappings"] = {first_half, second_half};
  CHECK_THAT(status_to_text(status), Catch::Contains("udp    16500-16599  203.0.113.1:16500-16599      mapped"));
}
