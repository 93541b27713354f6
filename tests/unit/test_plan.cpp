#include <catch2/catch.hpp>

#include "agent/service/plan.hpp"

using namespace natkeeper;
using namespace std::chrono_literals;

namespace {

MapRequest request(Transport proto, std::uint16_t port, std::chrono::seconds lifetime = 3600s) {
  return {proto, port, port, lifetime, "natkeeper"};
}

PlannedMapping mapped(MapRequest wanted) {
  auto entry = unmapped(wanted);
  entry.report.mapping = Mapping{wanted, boost::asio::ip::make_address("203.0.113.1"), wanted.internal_port, 3600s, false};
  entry.report.state = MappingState::verified;
  entry.failures = 0;
  entry.renew_at = std::chrono::steady_clock::time_point(1000h);
  return entry;
}

}  // namespace

TEST_CASE("merge_plan keeps what is still planned, adds the new, and names what to remove", "[plan]") {
  std::vector<PlannedMapping> current{mapped(request(Transport::udp, 5000)), mapped(request(Transport::udp, 5001)),
                                      unmapped(request(Transport::tcp, 6000))};
  const auto merge = merge_plan(std::move(current), {request(Transport::udp, 5001, 7200s), request(Transport::tcp, 6000),
                                                     request(Transport::udp, 5002)});
  REQUIRE(merge.entries.size() == 3);
  // Kept as it is at the gateway, with its proof and schedule; the new lease is asked for at its renewal.
  CHECK(merge.entries[0].report.request.internal_port == 5001);
  CHECK(merge.entries[0].report.request.lifetime == 7200s);
  CHECK(merge.entries[0].report.mapping->lifetime == 3600s);
  CHECK(merge.entries[0].report.state == MappingState::verified);
  CHECK(merge.entries[0].renew_at == std::chrono::steady_clock::time_point(1000h));
  CHECK_FALSE(merge.entries[1].report.mapping);
  CHECK(merge.entries[2].report.request.internal_port == 5002);
  CHECK(merge.entries[2].report.note == "not mapped yet");
  REQUIRE(merge.removed.size() == 1);
  CHECK(merge.removed[0].request.internal_port == 5000);
  CHECK(merge.diff.added.size() == 1);
  CHECK(merge.diff.removed.size() == 1);
  CHECK(merge.diff.kept.size() == 2);
}

TEST_CASE("merge_plan removes nothing for a request that was never mapped", "[plan]") {
  const auto merge = merge_plan({unmapped(request(Transport::udp, 5000))}, {});
  CHECK(merge.entries.empty());
  CHECK(merge.removed.empty());
  CHECK(merge.diff.removed.size() == 1);
}
