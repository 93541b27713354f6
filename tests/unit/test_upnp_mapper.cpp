#include <catch2/catch.hpp>

#include "result_printer.hpp"

#include <algorithm>
#include <deque>
#include <optional>
#include <functional>
#include <map>

#include "mappers/errors.hpp"
#include "mappers/upnp/upnp_mapper.hpp"
#include "run_loop.hpp"
#include "virtual_time.hpp"

using namespace natkeeper;
using namespace natkeeper::upnp;
using namespace std::chrono_literals;

namespace {

// What a scripted add answers when its reply cannot be read.
constexpr int kUnreadable = -1;

// A scripted gateway: each add answers with the next scripted code (0 =
// success, kUnreadable, or a UPnP error), and its table holds what it made.
class FakeIgd final : public IgdControl {
 public:
  bool v2 = false;
  std::deque<int> add_answers;                 // codes for successive adds
  // Whether the gateway makes the mapping when it answers `code`: it may act,
  // then send a reply that cannot be read.
  std::function<bool(int)> acts_on = [](int code) { return code == 0; };
  std::function<std::uint16_t(std::uint16_t)> reserve = [](std::uint16_t p) { return p; };
  // What it holds for a mapping it makes: as asked, unless a test says otherwise (nullopt: nothing).
  std::function<std::optional<PortMappingEntry>(const PortMappingArgs&)> holds = [](const PortMappingArgs& a) {
    return std::optional(PortMappingEntry{a.internal_client, a.internal_port, a.description, a.lease});
  };
  std::map<std::pair<Transport, std::uint16_t>, PortMappingEntry> held;  // its table, by external port
  std::vector<PortMappingArgs> adds;
  std::vector<std::string> actions;  // of each add
  std::vector<std::pair<Transport, std::uint16_t>> deletes;
  // Set: the answer to every GetSpecificPortMappingEntry, whatever the table holds.
  std::optional<Result<PortMappingEntry>> entry;
  int entry_calls = 0;
  int delete_answer = 0;
  Result<std::string> external = std::string("203.0.113.1");
  int external_calls = 0;

  bool has_add_any_port_mapping() const override { return v2; }
  boost::asio::awaitable<std::error_code> add_port_mapping(PortMappingArgs args) override {
    actions.emplace_back("AddPortMapping");
    co_return next_add(args, args.external_port);
  }
  boost::asio::awaitable<Result<std::uint16_t>> add_any_port_mapping(PortMappingArgs args) override {
    REQUIRE(v2);
    actions.emplace_back("AddAnyPortMapping");
    const auto port = reserve(args.external_port);
    if (auto ec = next_add(args, port)) co_return ec;
    co_return port;
  }
  boost::asio::awaitable<std::error_code> delete_port_mapping(Transport proto, std::uint16_t port) override {
    deletes.emplace_back(proto, port);
    if (delete_answer) co_return make_upnp_error(delete_answer);
    held.erase({proto, port});
    co_return std::error_code{};
  }
  boost::asio::awaitable<Result<PortMappingEntry>> get_specific_port_mapping(Transport proto,
                                                                            std::uint16_t port) override {
    ++entry_calls;
    if (entry) co_return *entry;
    const auto found = held.find({proto, port});
    if (found == held.end()) co_return make_upnp_error(714);
    co_return found->second;
  }
  std::vector<Result<ListedPortMapping>> table;  // what get_generic_port_mapping lists; 713 after it
  int list_calls = 0;
  boost::asio::awaitable<Result<ListedPortMapping>> get_generic_port_mapping(std::uint32_t index) override {
    ++list_calls;
    if (index < table.size()) co_return table[index];
    co_return make_upnp_error(713);
  }
  int listing_calls = 0;                      // GetListOfPortMappings
  std::optional<int> listing_error;           // its answer, when set
  std::size_t listing_cap = SIZE_MAX;         // it lists at most so many, whatever was asked
  boost::asio::awaitable<Result<std::vector<ListedPortMapping>>> get_list_of_port_mappings(
      Transport proto, std::uint16_t first_port, std::uint16_t last_port, std::uint16_t at_most) override {
    ++listing_calls;
    if (listing_error) co_return make_upnp_error(*listing_error);
    std::vector<ListedPortMapping> listed;
    for (const auto& [key, held_entry] : held) {
      if (key.first == proto && key.second >= first_port && key.second <= last_port &&
          listed.size() < std::min<std::size_t>(at_most, listing_cap))
        listed.push_back({key.first, key.second, held_entry});
    }
    co_return listed;
  }
  boost::asio::awaitable<Result<std::string>> get_external_ip_address() override {
    ++external_calls;
    co_return external;
  }

 private:
  std::error_code next_add(const PortMappingArgs& args, std::uint16_t port) {
    adds.push_back(args);
    REQUIRE_FALSE(add_answers.empty());
    const int code = add_answers.front();
    add_answers.pop_front();
    if (acts_on(code)) {
      if (auto made = holds(args)) held[{args.proto, port}] = *made;
    }
    if (code == kUnreadable) return make_error_code(Errc::bad_reply);
    return code ? make_upnp_error(code) : std::error_code{};
  }
};

struct Fixture {
  testing::VirtualTime time;
  boost::asio::io_context loop;
  std::shared_ptr<FakeIgd> igd = std::make_shared<FakeIgd>();
  UpnpMapperOptions options{false, 3, 42};

  UpnpMapper mapper() {
    return UpnpMapper(igd, "10.77.0.2", options, time);
  }
  void pass(std::chrono::seconds duration) {
    time.run_until(loop, [] { return false; }, duration);
  }
  Result<Mapping> map(MapRequest request) {
    auto m = mapper();
    return run_loop(loop, m.map(std::move(request)));
  }
};

MapRequest request(std::uint16_t port, Transport proto = Transport::udp) {
  return {proto, port, port, 3600s, "natkeeper test", {}, {}};
}

}  // namespace

TEST_CASE("IGDv1: AddPortMapping with this host as internal client") {
  Fixture f;
  f.igd->add_answers = {0};
  auto mapping = f.map(request(7076));
  REQUIRE(mapping);
  CHECK(mapping->external_port == 7076);
  CHECK(mapping->external_ip.to_string() == "203.0.113.1");
  CHECK(mapping->lifetime == 3600s);
  CHECK_FALSE(mapping->permanent);
  REQUIRE(f.igd->adds.size() == 1);
  CHECK(f.igd->adds[0].internal_client == "10.77.0.2");
  CHECK(f.igd->adds[0].internal_port == 7076);
  CHECK(f.igd->adds[0].lease == 3600s);
  CHECK(f.igd->adds[0].description == "natkeeper test");
}

TEST_CASE("the external address is read again once it is old, and by every check") {
  Fixture f;
  f.igd->add_answers = {0, 0, 0, 0};
  auto m = f.mapper();
  REQUIRE(run_loop(f.loop, m.map(request(7076))));
  REQUIRE(run_loop(f.loop, m.map(request(7077))));
  CHECK(f.igd->external_calls == 1);  // a round's mappings share one answer

  // The WAN address changes: a renewal a while later reports the new one.
  f.igd->external = std::string("198.51.100.7");
  f.pass(kExternalAddressMaxAge - 1s);
  auto early = run_loop(f.loop, m.map(request(7076)));
  REQUIRE(early);
  CHECK(early->external_ip.to_string() == "203.0.113.1");
  f.pass(1s);
  auto renewed = run_loop(f.loop, m.map(request(7076)));
  REQUIRE(renewed);
  CHECK(renewed->external_ip.to_string() == "198.51.100.7");
  CHECK(f.igd->external_calls == 2);

  REQUIRE(run_loop(f.loop, m.check(*renewed)));
  REQUIRE(run_loop(f.loop, m.check(*renewed)));
  CHECK(f.igd->external_calls == 4);
}

TEST_CASE("725 OnlyPermanentLeasesSupported or 402 Invalid Args: lease 0, flagged, and asked at once from then on") {
  for (int code : {725, 402}) {
    Fixture f;
    f.igd->add_answers = {code, 0, 0};
    auto m = f.mapper();
    auto mapping = run_loop(f.loop, m.map(request(7076)));
    REQUIRE(mapping);
    CHECK(mapping->permanent);
    CHECK(mapping->lifetime == 0s);
    REQUIRE(f.igd->adds.size() == 2);
    CHECK(f.igd->adds[0].lease == 3600s);
    CHECK(f.igd->adds[1].lease == 0s);

    auto next = run_loop(f.loop, m.map(request(7077)));
    REQUIRE(next);
    CHECK(next->permanent);
    REQUIRE(f.igd->adds.size() == 3);
    CHECK(f.igd->adds[2].lease == 0s);
  }
}

TEST_CASE("402 Invalid Args for lease 0 is the gateway's refusal") {
  Fixture f;
  f.igd->add_answers = {402, 402, 402};
  auto m = f.mapper();
  auto mapping = run_loop(f.loop, m.map(request(7076)));
  REQUIRE_FALSE(mapping);
  CHECK(mapping.error() == make_upnp_error(402));
  CHECK(f.igd->adds.size() == 2);
  // Lease 0 is asked at once now, and its refusal is not tried again.
  CHECK_FALSE(run_loop(f.loop, m.map(request(7077))));
  REQUIRE(f.igd->adds.size() == 3);
  CHECK(f.igd->adds[2].lease == 0s);
}

TEST_CASE("each mapping made is read back: the lease the gateway holds is the one renewals count on") {
  Fixture f;
  std::chrono::seconds held_lease{0};
  f.igd->holds = [&](const PortMappingArgs& a) {
    return std::optional(PortMappingEntry{a.internal_client, a.internal_port, a.description, held_lease});
  };
  f.igd->add_answers = {0};
  SECTION("a shorter lease held is believed") {
    held_lease = 600s;
    auto mapping = f.map(request(7076));
    REQUIRE(mapping);
    CHECK(mapping->lifetime == 600s);
    CHECK_FALSE(mapping->permanent);
  }
  SECTION("a few seconds less is the time left since the add: the lease asked") {
    held_lease = 3590s;
    auto mapping = f.map(request(7076));
    REQUIRE(mapping);
    CHECK(mapping->lifetime == 3600s);
  }
  SECTION("a longer one is not") {
    held_lease = 7200s;
    auto mapping = f.map(request(7076));
    REQUIRE(mapping);
    CHECK(mapping->lifetime == 3600s);
  }
  SECTION("held without expiry: permanent, to be deleted") {
    held_lease = 0s;
    auto mapping = f.map(request(7076));
    REQUIRE(mapping);
    CHECK(mapping->permanent);
    CHECK(mapping->lifetime == 0s);
  }
  SECTION("a permanent lease asked for and held with an expiry is renewed by it, within a day") {
    f.igd->add_answers = {725, 0, 0};
    held_lease = 7200s;
    auto m = f.mapper();
    auto mapping = run_loop(f.loop, m.map(request(7076)));
    REQUIRE(mapping);
    CHECK_FALSE(mapping->permanent);
    CHECK(mapping->lifetime == 7200s);
    held_lease = 604800s;
    mapping = run_loop(f.loop, m.map(request(7077)));
    REQUIRE(mapping);
    CHECK(mapping->lifetime == 24h);
  }
  CHECK(f.igd->entry_calls >= 1);
}

TEST_CASE("a mapping the gateway says it made but does not hold as asked is a failure") {
  Fixture f;
  f.igd->add_answers = {0};
  SECTION("not there (714)") {
    f.igd->holds = [](const PortMappingArgs&) { return std::optional<PortMappingEntry>(); };
  }
  SECTION("there for another client") {
    f.igd->holds = [](const PortMappingArgs& a) {
      return std::optional(PortMappingEntry{"10.77.0.9", a.internal_port, a.description, a.lease});
    };
  }
  SECTION("there to another internal port") {
    f.igd->holds = [](const PortMappingArgs& a) {
      return std::optional(PortMappingEntry{a.internal_client, 9, a.description, a.lease});
    };
  }
  auto mapping = f.map(request(7076));
  REQUIRE_FALSE(mapping);
  CHECK(mapping.error() == Errc::added_but_not_held);
  CHECK_FALSE(mapping.error().message().empty());
}

TEST_CASE("a gateway that cannot show its entry is believed, with the lease asked") {
  for (int code : {401, 501, -3}) {
    Fixture f;
    f.igd->add_answers = {0};
    f.igd->entry = make_upnp_error(code);
    auto mapping = f.map(request(7076));
    REQUIRE(mapping);
    CHECK(mapping->lifetime == 3600s);
    CHECK_FALSE(mapping->permanent);
  }
}

TEST_CASE("an add whose reply cannot be read counts as made when the gateway holds it") {
  Fixture f;
  f.igd->acts_on = [](int code) { return code == 0 || code == kUnreadable; };
  for (bool v2 : {false, true}) {
    f.igd->v2 = v2;
    f.igd->held.clear();
    SECTION(v2 ? "AddAnyPortMapping, made" : "AddPortMapping, made") {
      f.igd->add_answers = {kUnreadable};
      auto mapping = f.map(request(7076));
      REQUIRE(mapping);
      CHECK(mapping->external_port == 7076);
      CHECK(mapping->lifetime == 3600s);
      CHECK(f.igd->adds.size() == 1);
    }
    SECTION(v2 ? "AddAnyPortMapping, not made" : "AddPortMapping, not made") {
      f.igd->acts_on = [](int code) { return code == 0; };
      f.igd->add_answers = {kUnreadable};
      auto mapping = f.map(request(7076));
      REQUIRE_FALSE(mapping);
      CHECK(mapping.error() == Errc::bad_reply);
    }
  }
}

namespace {
// Another client's mapping on the gateway.
void held_by_another(FakeIgd& igd, std::uint16_t port, Transport proto = Transport::udp) {
  igd.held[{proto, port}] = PortMappingEntry{"10.77.0.9", port, "someone", 3600s};
}
}  // namespace

TEST_CASE("718 ConflictInMappingEntry: a conflict, and no other port unless allowed") {
  Fixture f;
  f.igd->add_answers = {718};
  held_by_another(*f.igd, 7076);
  auto mapping = f.map(request(7076));
  REQUIRE_FALSE(mapping);
  CHECK(mapping.error() == MapFailure::port_conflict);
  CHECK(mapping.error() == make_upnp_error(718));
  CHECK(f.igd->adds.size() == 1);
}

TEST_CASE("718 with other ports allowed: IGDv1 tries a bounded number of other ports") {
  Fixture f;
  f.options.allow_other_external_port = true;
  held_by_another(*f.igd, 7076);
  SECTION("the second try succeeds") {
    f.igd->add_answers = {718, 718, 0};
    auto mapping = f.map(request(7076));
    REQUIRE(mapping);
    REQUIRE(f.igd->adds.size() == 3);
    CHECK(mapping->external_port == f.igd->adds[2].external_port);
    CHECK(mapping->external_port >= 1024);
    CHECK(mapping->request.wanted_external_port == 7076);
    CHECK(f.igd->adds[2].internal_port == 7076);
  }
  SECTION("every try conflicts: give up after the attempts") {
    f.igd->add_answers = {718, 718, 718, 718};
    auto mapping = f.map(request(7076));
    REQUIRE_FALSE(mapping);
    CHECK(mapping.error() == MapFailure::port_conflict);
    CHECK(f.igd->adds.size() == 1 + 3);
  }
}

TEST_CASE("606 is not authorized, 728 is a full table; neither is retried") {
  for (int code : {606, 728}) {
    Fixture f;
    f.options.allow_other_external_port = true;
    f.igd->add_answers = {code};
    auto mapping = f.map(request(7076));
    REQUIRE_FALSE(mapping);
    CHECK(mapping.error() == (code == 606 ? MapFailure::not_authorized : MapFailure::table_full));
    CHECK(mapping.error().value() == code);
    CHECK(f.igd->adds.size() == 1);
  }
}

TEST_CASE("other UPnP and transport errors are reported as they are") {
  for (int code : {501, -3}) {
    Fixture f;
    f.igd->add_answers = {code};
    auto mapping = f.map(request(7076));
    REQUIRE_FALSE(mapping);
    CHECK(mapping.error() == make_upnp_error(code));
    CHECK_FALSE(mapping.error().message().empty());
    CHECK(f.igd->adds.size() == 1);
  }
}

TEST_CASE("501 Action Failed, or 714 to an add, while another client holds the port is a conflict") {
  for (int code : {501, 714}) {
    Fixture f;
    f.igd->add_answers = {code};
    held_by_another(*f.igd, 7076);
    auto mapping = f.map(request(7076));
    REQUIRE_FALSE(mapping);
    CHECK(mapping.error() == Errc::port_held_by_another);
    CHECK(mapping.error() == MapFailure::port_conflict);
    CHECK(f.igd->adds.size() == 1);
    CHECK(f.igd->entry_calls == 1);
  }
}

TEST_CASE("a conflict while nobody, or this host itself, holds the port is asked again once") {
  for (int code : {714, 718}) {
    for (bool ours : {false, true}) {
      Fixture f;
      if (ours) f.igd->held[{Transport::udp, 7076}] = PortMappingEntry{"10.77.0.2", 7076, "natkeeper", 3600s};
      SECTION("granted the second time") {
        f.igd->add_answers = {code, 0};
        auto mapping = f.map(request(7076));
        REQUIRE(mapping);
        CHECK(mapping->external_port == 7076);
        CHECK(f.igd->adds.size() == 2);
      }
      SECTION("refused again: the refusal stands, unless this host holds the entry: made afresh") {
        f.igd->add_answers = {code, code, 0};
        auto mapping = f.map(request(7076));
        if (ours) {
          REQUIRE(mapping);
          CHECK(f.igd->deletes == std::vector<std::pair<Transport, std::uint16_t>>{{Transport::udp, 7076}});
          CHECK(f.igd->adds.size() == 3);
        } else {
          REQUIRE_FALSE(mapping);
          CHECK(mapping.error() == make_upnp_error(code));
          CHECK(f.igd->deletes.empty());
          CHECK(f.igd->adds.size() == 2);
        }
      }
    }
  }
}

TEST_CASE("IGDv2: AddAnyPortMapping") {
  Fixture f;
  f.igd->v2 = true;
  SECTION("the wanted port is granted") {
    f.igd->add_answers = {0};
    auto mapping = f.map(request(15063, Transport::tcp));
    REQUIRE(mapping);
    CHECK(mapping->external_port == 15063);
    CHECK(f.igd->adds[0].proto == Transport::tcp);
  }
  SECTION("another port offered: reported as granted, the policy is the agent's") {
    f.igd->add_answers = {0};
    f.igd->reserve = [](std::uint16_t) -> std::uint16_t { return 40000; };
    auto mapping = f.map(request(15063));
    REQUIRE(mapping);
    CHECK(mapping->external_port == 40000);
    CHECK(f.igd->deletes.empty());
  }
  SECTION("another port offered and allowed") {
    f.options.allow_other_external_port = true;
    f.igd->add_answers = {0};
    f.igd->reserve = [](std::uint16_t) -> std::uint16_t { return 40000; };
    auto mapping = f.map(request(15063));
    REQUIRE(mapping);
    CHECK(mapping->external_port == 40000);
  }
  SECTION("a v1 gateway's AddPortMapping is never used") {
    f.igd->add_answers = {0, 0};
    auto m = f.mapper();
    REQUIRE(run_loop(f.loop, m.map(request(7076))));
    REQUIRE(run_loop(f.loop, m.map(request(7077))));
    CHECK(f.igd->actions == std::vector<std::string>{"AddAnyPortMapping", "AddAnyPortMapping"});
  }
  SECTION("725 on IGDv2 also falls back to a permanent lease") {
    f.igd->add_answers = {725, 0};
    auto mapping = f.map(request(7076));
    REQUIRE(mapping);
    CHECK(mapping->permanent);
  }
}

TEST_CASE("an IGDv2 service without AddAnyPortMapping: AddPortMapping, for this request and the next") {
  for (int code : {401, 602}) {
    Fixture f;
    f.igd->v2 = true;
    f.options.allow_other_external_port = true;
    f.igd->add_answers = {code, 0, 718, 718, 0};
    auto m = f.mapper();
    const auto first = run_loop(f.loop, m.map(request(7076)));
    REQUIRE(first);
    CHECK(first->external_port == 7076);
    // Without AddAnyPortMapping a conflict is IGDv1's: other ports are tried.
    const auto second = run_loop(f.loop, m.map(request(7077)));
    REQUIRE(second);
    CHECK(second->external_port != 7077);
    CHECK(f.igd->actions == std::vector<std::string>{"AddAnyPortMapping", "AddPortMapping", "AddPortMapping",
                                                     "AddPortMapping", "AddPortMapping"});
  }
}

TEST_CASE("a mapping without a readable external address fails clearly") {
  Fixture f;
  f.igd->add_answers = {0};
  f.igd->external = make_upnp_error(501);
  auto mapping = f.map(request(7076));
  REQUIRE_FALSE(mapping);
  CHECK(mapping.error() == make_upnp_error(501));
}

TEST_CASE("an empty external address is the gateway having none: 0.0.0.0, as the gateway may also say") {
  for (const char* none : {"", "0.0.0.0"}) {
    Fixture f;
    f.igd->external = std::string(none);
    auto m = f.mapper();
    const auto address = run_loop(f.loop, m.external_address());
    REQUIRE(address);
    CHECK(address->is_unspecified());
  }
}

TEST_CASE("unmap deletes only this host's mapping") {
  Fixture f;
  auto m = f.mapper();
  const Mapping mine{request(7076), {}, 7076, 3600s, false};
  f.igd->held[{Transport::udp, 7076}] = PortMappingEntry{"10.77.0.2", 7076, "natkeeper", 3600s};
  SECTION("ours: deleted") {
    CHECK_FALSE(run_loop(f.loop, m.unmap(mine)));
    REQUIRE(f.igd->deletes.size() == 1);
    CHECK(f.igd->deletes[0] == std::pair{Transport::udp, std::uint16_t{7076}});
  }
  SECTION("another host's: left alone") {
    f.igd->entry = PortMappingEntry{"10.77.0.9", 7076, "theirs", 0s};
    CHECK_FALSE(run_loop(f.loop, m.unmap(mine)));
    CHECK(f.igd->deletes.empty());
  }
  SECTION("already gone (714): success without a delete") {
    f.igd->entry = make_upnp_error(714);
    CHECK_FALSE(run_loop(f.loop, m.unmap(mine)));
    CHECK(f.igd->deletes.empty());
  }
  SECTION("the gateway refuses the delete: reported") {
    f.igd->delete_answer = 606;
    CHECK(run_loop(f.loop, m.unmap(mine)) == MapFailure::not_authorized);
  }
}

namespace {
MapRequest for_doorbell(std::uint16_t port) {
  auto r = request(port);
  r.internal_client = boost::asio::ip::make_address("10.77.0.50");
  r.device = "doorbell";
  return r;
}
}  // namespace

TEST_CASE("a mapping for another device names the device as NewInternalClient") {
  Fixture f;
  f.igd->add_answers = {0};
  const auto mapped = f.map(for_doorbell(7076));
  REQUIRE(mapped);
  REQUIRE(f.igd->adds.size() == 1);
  CHECK(f.igd->adds[0].internal_client == "10.77.0.50");
}

TEST_CASE("718 or 606 for a device, with no holder of the port, is the router refusing third-party mappings") {
  for (int code : {718, 606}) {
    Fixture f;
    f.igd->add_answers = {code, code};
    f.igd->entry = make_upnp_error(714);
    const auto mapped = f.map(for_doorbell(7076));
    REQUIRE_FALSE(mapped);
    CHECK(mapped.error() == Errc::third_party_refused);
    CHECK(mapped.error() == MapFailure::third_party_refused);
    // A conflict with nobody is asked again once first; 606 is no conflict.
    CHECK(f.igd->adds.size() == (code == 718 ? 2 : 1));
  }
}

TEST_CASE("718 for a device while another client holds the port stays a conflict") {
  Fixture f;
  f.igd->add_answers = {718};
  f.igd->entry = PortMappingEntry{"10.77.0.9", 7076, "someone", 3600s};
  const auto mapped = f.map(for_doorbell(7076));
  REQUIRE_FALSE(mapped);
  CHECK(mapped.error() == make_upnp_error(718));
  CHECK(mapped.error() == MapFailure::port_conflict);
}

TEST_CASE("a device's own earlier mapping refused on renewal is a third-party refusal too") {
  Fixture f;
  f.igd->add_answers = {718, 718};
  f.igd->entry = PortMappingEntry{"10.77.0.50", 7076, "natkeeper doorbell", 3600s};
  const auto mapped = f.map(for_doorbell(7076));
  REQUIRE_FALSE(mapped);
  CHECK(mapped.error() == Errc::third_party_refused);
}

TEST_CASE("718 for this host, asked again with nobody holding the port, stays a conflict") {
  Fixture f;
  f.igd->add_answers = {718, 718};
  f.igd->entry = make_upnp_error(714);
  const auto mapped = f.map(request(7076));
  REQUIRE_FALSE(mapped);
  CHECK(mapped.error() == make_upnp_error(718));
  CHECK(mapped.error() == MapFailure::port_conflict);
}

TEST_CASE("a device's mapping is held, and deleted, only while the gateway shows the device as its client") {
  Fixture f;
  auto m = f.mapper();
  Mapping doorbell{for_doorbell(7076), {}, 7076, 3600s, false};
  f.igd->entry = PortMappingEntry{"10.77.0.50", 7076, "natkeeper doorbell", 3600s};
  CHECK(run_loop(f.loop, m.holds(doorbell)).value());
  f.igd->entry = PortMappingEntry{"10.77.0.2", 7076, "natkeeper", 3600s};
  CHECK_FALSE(run_loop(f.loop, m.holds(doorbell)).value());
  CHECK_FALSE(run_loop(f.loop, m.unmap(doorbell)));
  CHECK(f.igd->deletes.empty());  // this host's own mapping on that port stays
}

TEST_CASE("the gateway's table is listed by index until its end, bounded", "[upnp]") {
  Fixture f;
  f.igd->table.push_back(ListedPortMapping{Transport::udp, 5000, {"10.77.0.2", 5000, "natkeeper", 3600s}});
  f.igd->table.push_back(ListedPortMapping{Transport::tcp, 6000, {"10.77.0.9", 6001, "other", 0s}});
  f.igd->table.push_back(ListedPortMapping{Transport::udp, 7000, {"not an address", 7000, "x", 0s}});
  auto mapper = f.mapper();
  const auto table = run_loop(f.loop, mapper.list_table(100));
  REQUIRE(table);
  REQUIRE(table->size() == 2);  // the entry without an address is no mapping of anybody's
  CHECK((*table)[0].request.proto == Transport::udp);
  CHECK((*table)[0].external_port == 5000);
  CHECK((*table)[0].request.internal_client == boost::asio::ip::make_address("10.77.0.2"));
  CHECK((*table)[0].request.description == "natkeeper");
  CHECK((*table)[1].request.internal_port == 6001);
  CHECK((*table)[1].permanent);
  CHECK(f.igd->list_calls == 4);  // the fourth says 713: the end

  f.igd->list_calls = 0;
  const auto first = run_loop(f.loop, mapper.list_table(1));
  REQUIRE(first);
  CHECK(first->size() == 1);
  CHECK(f.igd->list_calls == 1);

  f.igd->table[1] = make_upnp_error(501);
  CHECK_FALSE(run_loop(f.loop, mapper.list_table(100)));
}

namespace {

// `count` UDP mappings of this host from port `first` on, each as made with `lease`.
std::vector<Mapping> made(std::uint16_t first, int count, std::chrono::seconds lease = 3600s) {
  std::vector<Mapping> mappings;
  for (int i = 0; i < count; ++i) {
    const auto port = static_cast<std::uint16_t>(first + i);
    mappings.push_back(Mapping{request(port), {}, port, lease, false});
  }
  return mappings;
}

void hold(FakeIgd& igd, const std::vector<Mapping>& mappings, std::string client = "10.77.0.2") {
  for (const auto& m : mappings)
    igd.held[{m.request.proto, m.external_port}] = PortMappingEntry{client, m.request.internal_port, "t", m.lifetime};
}

}  // namespace

TEST_CASE("IGDv2: a batch's grants are read back in pages, not one lookup each", "[upnp]") {
  Fixture f;
  f.igd->v2 = true;
  f.igd->add_answers = {0, 0, 0};
  auto m = f.mapper();
  CHECK(m.reads_back_later());
  CHECK(m.read_back_per_request() == kListPage);
  for (std::uint16_t port : {7076, 7077, 7078}) REQUIRE(run_loop(f.loop, m.map(request(port))));
  CHECK(f.igd->entry_calls == 0);
  f.igd->held[{Transport::udp, 7077}].internal_client = "10.77.0.9";  // another client's now
  f.igd->held[{Transport::udp, 7078}].lease = 600s;                   // shortened
  const auto held = run_loop(f.loop, m.read_back(made(7076, 3)));
  REQUIRE(held);
  REQUIRE(held->size() == 3);
  REQUIRE((*held)[0]);
  CHECK((*held)[0]->lifetime == 3600s);
  CHECK_FALSE((*held)[1]);
  REQUIRE((*held)[2]);
  CHECK((*held)[2]->lifetime == 600s);
  CHECK(f.igd->listing_calls == 1);
  CHECK(f.igd->entry_calls == 1);  // the one not listed as made is looked up
}

TEST_CASE("IGDv2: a full page is read again in halves; a gateway that lists fewer is checked entry by entry",
          "[upnp]") {
  Fixture f;
  f.igd->v2 = true;
  auto m = f.mapper();
  const auto ours = made(10000, 600);
  hold(*f.igd, ours);
  hold(*f.igd, made(20000, 300), "10.77.0.9");  // another client's, outside the range
  SECTION("pages split until each fits") {
    const auto held = run_loop(f.loop, m.read_back(ours));
    REQUIRE(held);
    CHECK(std::all_of(held->begin(), held->end(), [](const auto& h) { return h.has_value(); }));
    CHECK(f.igd->listing_calls >= 3);
    CHECK(f.igd->listing_calls <= 7);
    CHECK(f.igd->entry_calls == 0);
  }
  SECTION("a gateway that lists at most 100") {
    f.igd->listing_cap = 100;
    const auto held = run_loop(f.loop, m.read_back(ours));
    REQUIRE(held);
    CHECK(std::all_of(held->begin(), held->end(), [](const auto& h) { return h.has_value(); }));
    CHECK(f.igd->entry_calls == 500);
  }
}

TEST_CASE("IGDv2 without GetListOfPortMappings, and IGDv1: one lookup a mapping", "[upnp]") {
  Fixture f;
  auto ours = made(7076, 3);
  hold(*f.igd, ours);
  f.igd->held.erase({Transport::udp, 7077});
  SECTION("IGDv2 refusing the listing as unknown, remembered") {
    f.igd->v2 = true;
    f.igd->listing_error = 401;
    auto m = f.mapper();
    auto held = run_loop(f.loop, m.read_back(ours));
    REQUIRE(held);
    CHECK((*held)[0]);
    CHECK_FALSE((*held)[1]);
    CHECK(f.igd->listing_calls == 1);
    CHECK(f.igd->entry_calls == 3);
    CHECK_FALSE(m.reads_back_later());
    CHECK(m.read_back_per_request() == 1);
    held = run_loop(f.loop, m.read_back(ours));
    CHECK(f.igd->listing_calls == 1);
  }
  SECTION("IGDv1") {
    auto m = f.mapper();
    CHECK_FALSE(m.reads_back_later());
    const auto held = run_loop(f.loop, m.read_back(ours));
    REQUIRE(held);
    CHECK((*held)[0]);
    CHECK_FALSE((*held)[1]);
    CHECK((*held)[2]);
    CHECK(f.igd->listing_calls == 0);
    CHECK(f.igd->entry_calls == 3);
  }
  SECTION("a gateway that does not answer fails the read-back") {
    f.igd->entry = make_error_code(Errc::timed_out);
    auto m = f.mapper();
    const auto held = run_loop(f.loop, m.read_back(ours));
    REQUIRE_FALSE(held);
  }
}

TEST_CASE("IGDv2: a refresh AddAnyPortMapping moves off this host's own entry is made in place", "[upnp]") {
  Fixture f;
  f.igd->v2 = true;
  // Like a router that will not update an entry: a taken port is "taken", whoever holds it.
  f.igd->reserve = [igd = f.igd.get()](std::uint16_t p) {
    return igd->held.count({Transport::udp, p}) ? static_cast<std::uint16_t>(p + 1) : p;
  };
  SECTION("this host's: the stray goes, the entry is made afresh") {
    f.igd->held[{Transport::udp, 7076}] = PortMappingEntry{"10.77.0.2", 7076, "natkeeper test", 3600s};
    f.igd->add_answers = {0, 0};
    const auto mapped = f.map(request(7076));
    REQUIRE(mapped);
    CHECK(mapped->external_port == 7076);
    CHECK(f.igd->deletes ==
          std::vector<std::pair<Transport, std::uint16_t>>{{Transport::udp, 7077}, {Transport::udp, 7076}});
    CHECK(f.igd->held.count({Transport::udp, 7076}) == 1);
    CHECK(f.igd->held.count({Transport::udp, 7077}) == 0);
  }
  SECTION("another client's: the grant elsewhere is left to the caller's policy") {
    f.igd->held[{Transport::udp, 7076}] = PortMappingEntry{"10.77.0.9", 7076, "someone", 3600s};
    f.igd->add_answers = {0};
    const auto mapped = f.map(request(7076));
    REQUIRE(mapped);
    CHECK(mapped->external_port == 7077);
    CHECK(f.igd->deletes.empty());
  }
}
