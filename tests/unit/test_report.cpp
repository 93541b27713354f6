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
  const auto row = mapping_json(failed);
  for (const char* key : {"proto", "internal_port", "external_port", "external_ip", "method", "state", "error",
                          "error_code"}) {
    CHECK(to_json(report)["mappings"][101][key] == row[key]);
    CHECK(status_mapping_json(failed, 5s, std::nullopt)[key] == row[key]);
  }
}

TEST_CASE("the status table folds runs, shows a run's soonest renewal and pending mappings") {
  const auto report = sample();
  nlohmann::json mappings = nlohmann::json::array();
  for (std::size_t i = 0; i < 100; ++i)  // udp 16500-16599, each renewed at its own time
    mappings.push_back(status_mapping_json(report.mappings[i], std::chrono::seconds(2000 - i), 300s));
  mappings.push_back(status_mapping_json(report.mappings[101], 4s, std::nullopt));  // a conflict
  MappingReport waiting;
  waiting.request = {Transport::tcp, 15063, 15063, 3600s, "natkeeper", {}, {}};
  waiting.note = "not mapped yet";
  mappings.push_back(status_mapping_json(waiting, 0s, std::nullopt));
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
