#include <catch2/catch.hpp>

#include "agent/service/plan.hpp"

using namespace natkeeper;
using namespace std::chrono_literals;

namespace {

MapRequest request(Transport proto, std::uint16_t port, std::chrono::seconds lifetime = 3600s) {
  return {proto, port, port, lifetime, "natkeeper", {}, {}};
}

// A plan of single-port runs.
std::vector<config::RequestRun> runs(std::initializer_list<MapRequest> requests) {
  std::vector<config::RequestRun> planned;
  for (const auto& r : requests) planned.push_back({r, 1});
  return planned;
}

PlannedMapping unmapped(MapRequest wanted) { return natkeeper::unmapped(runs({std::move(wanted)})).front(); }

// The grant the entry's request would have on its wanted port.
Mapping granted_to(const PlannedMapping& entry) {
  return Mapping{request_of(entry), boost::asio::ip::make_address("203.0.113.1"), entry.wanted_external_port, 3600s, false};
}

PlannedMapping mapped(MapRequest wanted) {
  auto entry = unmapped(wanted);
  entry.mapping = grant_of(granted_to(entry));
  entry.state = MappingState::verified;
  entry.failures = 0;
  entry.renew_at = std::chrono::steady_clock::time_point(1000h);
  return entry;
}

}  // namespace

TEST_CASE("merge_plan keeps what is still planned, adds the new, and names what to remove", "[plan]") {
  std::vector<PlannedMapping> current{mapped(request(Transport::udp, 5000)), mapped(request(Transport::udp, 5001)),
                                      unmapped(request(Transport::tcp, 6000))};
  const auto merge = merge_plan(std::move(current), runs({request(Transport::udp, 5001, 7200s), request(Transport::tcp, 6000),
                                                          request(Transport::udp, 5002)}));
  REQUIRE(merge.entries.size() == 3);
  // Kept as it is at the gateway, with its proof and schedule; the new lease is asked for at its renewal.
  CHECK(merge.entries[0].internal_port == 5001);
  CHECK(request_of(merge.entries[0]).lifetime == 7200s);
  CHECK(merge.entries[0].mapping->lifetime == 3600s);
  CHECK(merge.entries[0].state == MappingState::verified);
  CHECK(merge.entries[0].renew_at == std::chrono::steady_clock::time_point(1000h));
  CHECK_FALSE(merge.entries[1].mapping);
  CHECK(merge.entries[2].internal_port == 5002);
  CHECK(merge.entries[2].note == "not mapped yet");
  REQUIRE(merge.removed.size() == 1);
  CHECK(merge.removed[0].request.internal_port == 5000);
  CHECK(merge.added == 1);
  CHECK(merge.dropped == 1);
  CHECK(merge.kept == 2);
}

TEST_CASE("merge_plan removes nothing for a request that was never mapped", "[plan]") {
  const auto merge = merge_plan({unmapped(request(Transport::udp, 5000))}, {});
  CHECK(merge.entries.empty());
  CHECK(merge.removed.empty());
  CHECK(merge.dropped == 1);
}

TEST_CASE("a round renews all that are due, and those whose window opened with them", "[plan]") {
  const auto t0 = std::chrono::steady_clock::time_point(1000h);
  std::vector<PlannedMapping> entries(3, mapped(request(Transport::udp, 5000)));
  entries[0].renew_at = t0 + 10s, entries[0].window_start = t0;
  entries[1].renew_at = t0 + 20s, entries[1].window_start = t0 - 1s;
  entries[2].renew_at = t0 + 30s, entries[2].window_start = t0 + 25s;
  CHECK(due_for_renewal(entries, t0 + 9s, false).empty());
  CHECK(due_for_renewal(entries, t0 + 10s, false) == std::vector<std::size_t>{0, 1});
  CHECK(due_for_renewal(entries, t0, true) == std::vector<std::size_t>{0, 1, 2});
}

TEST_CASE("an outcome schedules the renewal in [1/2, 5/8] of the lease, a failure the backoff", "[plan]") {
  const auto t0 = std::chrono::steady_clock::time_point(1000h);
  auto entry = unmapped(request(Transport::udp, 5000));
  MapOutcome granted{request_of(entry), granted_to(entry), {}};
  CHECK(record_outcome(entry, granted, Method::pcp, t0, 0.0));  // new: proof needed
  CHECK(entry.renew_at == t0 + 1800s);
  CHECK(entry.window_start == t0 + 1800s);
  entry.state = MappingState::verified;
  CHECK_FALSE(record_outcome(entry, granted, Method::pcp, t0, 1.0));  // the same again: still proven
  CHECK(entry.renew_at == t0 + 2250s);
  CHECK(entry.state == MappingState::verified);
  const MapOutcome refused{request_of(entry), std::nullopt, make_error_code(std::errc::timed_out)};
  CHECK_FALSE(record_outcome(entry, refused, Method::pcp, t0, 0.5));
  CHECK(entry.state == MappingState::failed);
  CHECK(entry.mapping);  // may still exist at the gateway
  CHECK(entry.renew_at == t0 + 5s);
  record_outcome(entry, refused, Method::pcp, t0, 0.5);
  CHECK(entry.renew_at == t0 + 10s);
  granted.mapping->lifetime = 1s;  // a silly grant is renewed as if it were 4 s long
  record_outcome(entry, granted, Method::pcp, t0, 0.0);
  CHECK(entry.renew_at == t0 + 2s);
}

TEST_CASE("recorded mappings go to the planned entries that want them", "[plan]") {
  std::vector<PlannedMapping> entries{unmapped(request(Transport::udp, 5000)), unmapped(request(Transport::udp, 5001))};
  auto recorded = [](std::uint16_t internal, std::uint16_t external) {
    return Mapping{request(Transport::udp, internal), boost::asio::ip::make_address("203.0.113.1"), external, 0s, false};
  };
  const auto unwanted = adopt_recorded(entries, {recorded(5000, 5000), recorded(5001, 6001), recorded(7000, 7000)},
                                       /*allow_other_external_port=*/false);
  REQUIRE(unwanted.size() == 2);
  CHECK(unwanted[0].external_port == 6001);
  CHECK(unwanted[1].external_port == 7000);
  CHECK(entries[0].mapping->external_port == 5000);
  CHECK(entries[0].run->description == "natkeeper");
  CHECK_FALSE(entries[1].mapping);
  CHECK(adopt_recorded(entries, {recorded(5001, 6001)}, true).empty());
  CHECK(entries[1].mapping->external_port == 6001);
}

TEST_CASE("a recorded mapping goes only to an entry for the same device", "[plan]") {
  auto for_doorbell = request(Transport::udp, 5000);
  for_doorbell.internal_client = boost::asio::ip::make_address("10.77.0.50");
  std::vector<PlannedMapping> entries{unmapped(for_doorbell)};
  const Mapping this_hosts{request(Transport::udp, 5000), boost::asio::ip::make_address("203.0.113.1"), 5000, 0s, false};
  CHECK(adopt_recorded(entries, {this_hosts}, true).size() == 1);
  CHECK_FALSE(entries[0].mapping);
  const Mapping doorbells{for_doorbell, boost::asio::ip::make_address("203.0.113.1"), 5000, 0s, false};
  CHECK(adopt_recorded(entries, {doorbells}, true).empty());
  CHECK(entries[0].mapping);

  // A device's new address is another mapping: the old one is removed.
  const auto merge = merge_plan(entries, runs({request(Transport::udp, 5000)}));
  REQUIRE(merge.removed.size() == 1);
  CHECK(merge.removed[0].request.internal_client == for_doorbell.internal_client);
}

TEST_CASE("a renewal asks for the external port it has; verification records its proof", "[plan]") {
  std::vector<PlannedMapping> entries{mapped(request(Transport::udp, 5000)), unmapped(request(Transport::tcp, 6000))};
  entries[0].mapping->external_port = 15000;  // another port, where allowed
  const std::vector<std::size_t> both{0, 1};
  const auto requests = renewal_requests(entries, both);
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].wanted_external_port == 15000);
  CHECK(requests[1].wanted_external_port == 6000);

  MappingReport proven = report_of(entries[0]);
  proven.state = MappingState::verified;
  proven.verified_by = "reflector";
  const auto when = std::chrono::system_clock::time_point(100h);
  record_verification(entries[0], proven, when);
  CHECK(entries[0].verified_at == when);
  CHECK(entries[0].verified_by == "reflector");
  proven.state = MappingState::unreachable;
  record_verification(entries[0], proven, when + 1h);
  CHECK(entries[0].verified_at == when);  // when it was last proven
  CHECK(entries[0].state == MappingState::unreachable);
}

TEST_CASE("the entries of a run share its request; each keeps only its own", "[plan]") {
  auto wanted = request(Transport::udp, 16500);
  wanted.description = "natkeeper doorbell ring rtp";
  const auto entries = unmapped({{wanted, 48509}});
  REQUIRE(entries.size() == 48509);
  CHECK(entries.front().run == entries.back().run);
  CHECK(entries.back().internal_port == 65008);
  CHECK(request_of(entries.back()).wanted_external_port == 65008);
  CHECK(request_of(entries.back()).description == "natkeeper doorbell ring rtp");
  // What a plan of every port costs per port, whatever its descriptions say.
  STATIC_REQUIRE(sizeof(PlannedMapping) <= 256);
}

TEST_CASE("the state file records grants, requests sent or about to be, and removals under way", "[plan]") {
  auto entry = unmapped(request(Transport::udp, 5000));
  CHECK_FALSE(to_record(entry));
  entry.request = PlannedMapping::Request::intended;
  REQUIRE(to_record(entry));
  CHECK_FALSE(to_record(entry)->confirmed);
  CHECK_FALSE(possibly_held(entry));  // not sent: nothing to delete yet
  entry.request = PlannedMapping::Request::sent;
  CHECK(possibly_held(entry));
  entry.granted = grant_of(granted_to(entry));
  CHECK(to_record(entry)->confirmed);
  entry.request = PlannedMapping::Request::removing;
  CHECK_FALSE(to_record(entry)->confirmed);
  CHECK(to_record(entry)->mapping.external_port == 5000);
}
