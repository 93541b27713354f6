#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "mappers/upnp/http_url.hpp"
#include "mappers/upnp/ssdp.hpp"
#include "mappers/upnp/ssdp_candidates.hpp"
#include "result_printer.hpp"

using namespace natkeeper::upnp;
using boost::asio::ip::make_address_v4;
using namespace std::chrono_literals;

TEST_CASE("searches carry the target; only the multicast one carries MX") {
  const auto multicast = make_multicast_search(kIgdV1, 1);
  CHECK(multicast.starts_with("M-SEARCH * HTTP/1.1\r\n"));
  CHECK_THAT(multicast, Catch::Contains("HOST: 239.255.255.250:1900\r\n"));
  CHECK_THAT(multicast, Catch::Contains("MAN: \"ssdp:discover\"\r\n"));
  CHECK_THAT(multicast, Catch::Contains("MX: 1\r\n"));
  CHECK_THAT(multicast, Catch::Contains(std::string("ST: ") + std::string(kIgdV1) + "\r\n"));
  CHECK(multicast.ends_with("\r\n\r\n"));

  const auto unicast = make_unicast_search(kIgdV2, "10.77.0.1:1900");
  CHECK_THAT(unicast, Catch::Contains("HOST: 10.77.0.1:1900\r\n"));
  CHECK_THAT(unicast, !Catch::Contains("MX:"));
}

TEST_CASE("an IGD search names the IGD devices and the WAN connection services, version 2 first") {
  // Some routers answer only a search for a WAN connection service.
  const std::vector<std::string_view> targets(kIgdSearchTargets.begin(), kIgdSearchTargets.end());
  CHECK(targets == std::vector<std::string_view>{kIgdV2, kIgdV1, "urn:schemas-upnp-org:service:WANIPConnection:2",
                                                 "urn:schemas-upnp-org:service:WANIPConnection:1",
                                                 "urn:schemas-upnp-org:service:WANPPPConnection:1"});
  for (const auto target : kIgdSearchTargets) CHECK(is_igd_search_target(target));
  for (const auto other : {"upnp:rootdevice", "ssdp:all", "urn:schemas-upnp-org:device:WANDevice:1",
                           "urn:dslforum-org:service:WANIPConnection:1"})
    CHECK_FALSE(is_igd_search_target(other));
}

TEST_CASE("a search response yields LOCATION, ST and USN") {
  const auto response = parse_search_response(
      "HTTP/1.1 200 OK\r\n"
      "CACHE-CONTROL: max-age=120\r\n"
      "st: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n"
      "Location:   http://10.77.0.1:5000/rootDesc.xml  \r\n"
      "USN: uuid:3f1c::urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n"
      "\r\n");
  REQUIRE(response);
  CHECK(response->location == "http://10.77.0.1:5000/rootDesc.xml");
  CHECK(response->search_target == kIgdV2);
  CHECK(response->usn.starts_with("uuid:3f1c"));
  CHECK(is_igd_search_target(response->search_target));
}

TEST_CASE("bare LF line ends are tolerated") {
  const auto response = parse_search_response("HTTP/1.1 200 OK\nST: x\nLOCATION: http://a/\n\n");
  REQUIRE(response);
  CHECK(response->location == "http://a/");
}

TEST_CASE("what is not a usable search response is ignored") {
  // Every SsdpError is non-zero: a success's error() never equals one.
  CHECK(parse_search_response("").error() == SsdpError::wrong_start_line);
  CHECK(parse_search_response("NOTIFY * HTTP/1.1\r\nLOCATION: http://a/\r\nST: x\r\n\r\n").error() ==
        SsdpError::wrong_start_line);
  CHECK(parse_search_response("HTTP/1.1 404 Not Found\r\nLOCATION: http://a/\r\nST: x\r\n\r\n").error() ==
        SsdpError::wrong_start_line);
  CHECK(parse_search_response("HTTP/1.1 200 OK\r\nST: x\r\n\r\n").error() ==
        SsdpError::missing_header);  // no LOCATION
  CHECK(parse_search_response("HTTP/1.1 200 OK\r\nLOCATION: http://a/\r\n").error() ==
        SsdpError::missing_header);  // no ST
  CHECK(parse_search_response(std::string(kMaxSsdpDatagram + 1, 'A')).error() == SsdpError::too_long);
  CHECK(parse_search_response("HTTP/1.1 200").error() == SsdpError::missing_header);
  CHECK_FALSE(is_igd_search_target("urn:schemas-upnp-org:device:MediaRenderer:1"));
  CHECK_FALSE(is_igd_search_target("upnp:rootdevice"));
}

TEST_CASE("http URLs are split into host, port and path") {
  auto url = parse_http_url("http://10.77.0.1:5000/rootDesc.xml");
  REQUIRE(url);
  CHECK(url->host == "10.77.0.1");
  CHECK(url->port == 5000);
  CHECK(url->path == "/rootDesc.xml");

  url = parse_http_url("HTTP://router.lan");
  REQUIRE(url);
  CHECK(url->port == 80);
  CHECK(url->path == "/");

  const std::pair<const char*, HttpUrlError> bad_urls[]{
      {"https://10.0.0.1/", HttpUrlError::not_http},
      {"http://", HttpUrlError::bad_authority},
      {"http://:80/", HttpUrlError::bad_authority},
      {"http://u:p@10.0.0.1/", HttpUrlError::bad_authority},
      {"http://[::1]/", HttpUrlError::bad_authority},
      {"http://10.0.0.1:0/", HttpUrlError::bad_port},
      {"http://10.0.0.1:65536/", HttpUrlError::bad_port},
      {"http://10.0.0.1:8x/", HttpUrlError::bad_port},
      {"http://10.0.0.1/a b", HttpUrlError::unprintable},
      {"ftp://10.0.0.1/", HttpUrlError::not_http},
  };
  for (const auto& [bad, why] : bad_urls) {
    INFO(bad);
    const auto refused = parse_http_url(bad);
    CHECK_FALSE(refused);
    CHECK(refused.error() == why);
  }
}

TEST_CASE("a LOCATION must be the answering host itself, on this host's subnet") {
  const auto local = make_address_v4("10.77.0.2");
  const auto mask = make_address_v4("255.255.255.0");
  auto ok = [&](const char* url, const char* responder = "10.77.0.1") {
    return location_is_acceptable(*parse_http_url(url), make_address_v4(responder), local, mask);
  };
  CHECK(ok("http://10.77.0.1:5000/rootDesc.xml"));
  CHECK_FALSE(ok("http://127.0.0.1:5000/rootDesc.xml"));
  CHECK_FALSE(ok("http://127.0.0.1:5000/", "127.0.0.1"));
  CHECK_FALSE(ok("http://169.254.169.254/latest/meta-data/"));
  CHECK_FALSE(ok("http://169.254.169.254/latest/meta-data/", "169.254.169.254"));
  CHECK_FALSE(ok("http://10.77.0.9:5000/"));           // another host than the one answering
  CHECK_FALSE(ok("http://192.168.1.1/", "192.168.1.1"));  // off-subnet
  CHECK_FALSE(ok("http://router.lan/"));               // names may resolve anywhere
  CHECK_FALSE(ok("http://10.77.0.2/", "10.77.0.2"));   // this host itself
  CHECK_FALSE(ok("http://224.0.0.1/", "224.0.0.1"));
}

TEST_CASE("NOTIFY: alive with its boot id, byebye without a location, others refused") {
  const auto alive = parse_notify(
      "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=120\r\n"
      "LOCATION: http://10.77.0.1:5000/rootDesc.xml\r\nNT: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
      "NTS: ssdp:alive\r\nUSN: uuid:x::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
      "BOOTID.UPNP.ORG: 1764040000\r\nCONFIGID.UPNP.ORG: 1337\r\n\r\n");
  REQUIRE(alive);
  CHECK(alive->kind == Notify::Kind::alive);
  CHECK(alive->location == "http://10.77.0.1:5000/rootDesc.xml");
  CHECK(alive->notification_type == kIgdV1);
  REQUIRE(alive->boot_id);
  CHECK(*alive->boot_id == 1764040000u);

  const auto byebye = parse_notify("NOTIFY * HTTP/1.1\nNT: upnp:rootdevice\nNTS: ssdp:byebye\nUSN: uuid:x\n\n");
  REQUIRE(byebye);
  CHECK(byebye->kind == Notify::Kind::byebye);
  CHECK_FALSE(byebye->boot_id);

  CHECK(parse_notify("NOTIFY * HTTP/1.1\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n\r\n").error() ==
        SsdpError::missing_header);  // no LOCATION
  CHECK(parse_notify("NOTIFY * HTTP/1.1\r\nNT: a\r\nNTS: ssdp:bogus\r\nLOCATION: http://h/\r\n\r\n").error() ==
        SsdpError::unknown_notification_subtype);
  CHECK(parse_notify("HTTP/1.1 200 OK\r\nNT: a\r\nNTS: ssdp:alive\r\nLOCATION: http://h/\r\n\r\n").error() ==
        SsdpError::wrong_start_line);
  CHECK(parse_notify("M-SEARCH * HTTP/1.1\r\nNT: a\r\nNTS: ssdp:alive\r\nLOCATION: http://h/\r\n\r\n").error() ==
        SsdpError::wrong_start_line);
  CHECK(parse_notify("NOTIFY * HTTP/1.1\r\nNTS: ssdp:byebye\r\n\r\n").error() == SsdpError::missing_header);  // no NT
  const auto odd_boot_id =
      parse_notify("NOTIFY * HTTP/1.1\r\nNT: a\r\nNTS: ssdp:alive\r\nLOCATION: http://h/\r\nBOOTID.UPNP.ORG: 12x\r\n\r\n");
  REQUIRE(odd_boot_id);
  CHECK_FALSE(odd_boot_id->boot_id);
  CHECK(parse_notify(std::string(kMaxSsdpDatagram + 1, 'N')).error() == SsdpError::too_long);
}

namespace {

const auto kLocal = make_address_v4("10.77.0.2");
const auto kMask = make_address_v4("255.255.255.0");
const auto kGateway = make_address_v4("10.77.0.1");
const auto kRogue = make_address_v4("10.77.0.66");
const std::string kRealLocation = "http://10.77.0.1:5000/rootDesc.xml";
const std::string kForgedLocation = "http://10.77.0.1:9/x.xml";
constexpr auto kUnicast = SearchKind::unicast_to_gateway;
constexpr auto kMulticast = SearchKind::multicast;
// Past the wait for the gateway's answer to the unicast search.
constexpr auto kLater = SsdpCandidates::kUnicastAnswerWait + 1ms;

std::string ssdp_answer(const std::string& location, std::string_view st = kIgdV2) {
  return "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: " + std::string(st) + "\r\nLOCATION: " + location +
         "\r\nUSN: uuid:1::" + std::string(st) + "\r\n\r\n";
}

// The LOCATIONs handed out at `elapsed` until none is left.
std::vector<std::string> take_all(SsdpCandidates& candidates, std::chrono::milliseconds elapsed = kLater) {
  std::vector<std::string> locations;
  while (auto answer = candidates.take(elapsed)) locations.push_back(answer->response.location);
  return locations;
}

}  // namespace

TEST_CASE("a forged answer in the gateway's name does not hide the gateway's real LOCATION") {
  SsdpCandidates candidates(kLocal, kMask, kGateway);
  // Both come back to the multicast search, the forged one first, and claim the same responder.
  CHECK(candidates.add(ssdp_answer(kForgedLocation), kGateway, kMulticast, 1ms));
  CHECK(candidates.add(ssdp_answer(kRealLocation, kIgdV1), kGateway, kMulticast, 300ms));
  CHECK(take_all(candidates) == std::vector<std::string>{kForgedLocation, kRealLocation});
}

TEST_CASE("the gateway's answer to the unicast search is handed out first and at once") {
  SsdpCandidates candidates(kLocal, kMask, kGateway);
  REQUIRE(candidates.add(ssdp_answer(kForgedLocation), kGateway, kMulticast, 1ms));
  // An answer to the multicast search waits: the unicast answer may still come.
  CHECK_FALSE(candidates.take(1ms));
  CHECK(candidates.has_pending());
  REQUIRE(candidates.add(ssdp_answer(kRealLocation, kIgdV1), kGateway, kUnicast, 2ms));
  const auto first = candidates.take(2ms);
  REQUIRE(first);
  CHECK(first->response.location == kRealLocation);
  CHECK(first->search == kUnicast);
  CHECK(first->elapsed == 2ms);
  // Still held back until the wait is over, then handed out as the next to try.
  CHECK_FALSE(candidates.take(SsdpCandidates::kUnicastAnswerWait - 1ms));
  CHECK(take_all(candidates) == std::vector<std::string>{kForgedLocation});
  CHECK_FALSE(candidates.has_pending());
}

TEST_CASE("IGD:2 goes before IGD:1, and each LOCATION is one candidate however often it answers") {
  SsdpCandidates candidates(kLocal, kMask, kGateway);
  const std::string igd1 = "http://10.77.0.1:5000/igd1.xml", igd2 = "http://10.77.0.1:5000/igd2.xml";
  CHECK(candidates.add(ssdp_answer(igd1, kIgdV1), kGateway, kMulticast, 1ms));
  CHECK(candidates.add(ssdp_answer(igd2, kIgdV2), kGateway, kMulticast, 2ms));
  // Repeats: the resent searches and the other search target.
  CHECK_FALSE(candidates.add(ssdp_answer(igd2, kIgdV2), kGateway, kMulticast, 3ms));
  CHECK_FALSE(candidates.add(ssdp_answer(igd1, "urn:schemas-upnp-org:service:WANIPConnection:1"), kGateway,
                             kMulticast, 4ms));
  CHECK(take_all(candidates) == std::vector<std::string>{igd2, igd1});
  // Once handed out, a LOCATION is not tried again.
  CHECK_FALSE(candidates.add(ssdp_answer(igd1, kIgdV1), kGateway, kUnicast, 500ms));
  CHECK_FALSE(candidates.take(500ms));
}

TEST_CASE("answers to the searches for WAN connection services are candidates; WANIPConnection:2 ranks as IGD:2") {
  SsdpCandidates candidates(kLocal, kMask, kGateway);
  const std::string igd1 = "http://10.77.0.1:5000/igd1.xml", igd2 = "http://10.77.0.1:5000/igd2.xml";
  CHECK(candidates.add(ssdp_answer(igd1, kWanPppConnectionV1), kGateway, kMulticast, 1ms));
  CHECK(candidates.add(ssdp_answer(igd2, kWanIpConnectionV2), kGateway, kMulticast, 2ms));
  CHECK(take_all(candidates) == std::vector<std::string>{igd2, igd1});
}

TEST_CASE("a repeat of a waiting LOCATION raises its rank: an answer to the unicast search, IGD:2") {
  SsdpCandidates candidates(kLocal, kMask, kGateway);
  REQUIRE(candidates.add(ssdp_answer(kForgedLocation), kGateway, kMulticast, 1ms));
  REQUIRE(candidates.add(ssdp_answer(kRealLocation, kIgdV1), kGateway, kMulticast, 2ms));
  CHECK_FALSE(candidates.add(ssdp_answer(kRealLocation, kIgdV2), kGateway, kUnicast, 3ms));
  const auto first = candidates.take(3ms);
  REQUIRE(first);
  CHECK(first->response.location == kRealLocation);
  CHECK(first->response.search_target == kIgdV2);
  CHECK(first->search == kUnicast);
}

TEST_CASE("LOCATIONs forged to the multicast search cannot crowd out the answer to the unicast search") {
  SsdpCandidates candidates(kLocal, kMask, kGateway);
  std::size_t kept = 0;
  for (int port = 9000; port < 9100; ++port)
    kept += candidates.add(ssdp_answer("http://10.77.0.1:" + std::to_string(port) + "/x.xml"), kGateway,
                           kMulticast, 1ms);
  CHECK(kept == SsdpCandidates::kMaxWaitingGatewayLocations);
  // The multicast share is full; the unicast one is not.
  CHECK_FALSE(candidates.add(ssdp_answer(kRealLocation), kGateway, kMulticast, 5ms));
  CHECK(candidates.add(ssdp_answer(kRealLocation), kGateway, kUnicast, 5ms));
  const auto first = candidates.take(5ms);
  REQUIRE(first);
  CHECK(first->response.location == kRealLocation);
  CHECK(take_all(candidates).size() == SsdpCandidates::kMaxWaitingGatewayLocations);
}

TEST_CASE("forged LOCATIONs tried and given up make room for the gateway's later answer, up to a bound") {
  SsdpCandidates candidates(kLocal, kMask, kGateway);
  int port = 9000;
  auto forge_burst = [&](std::chrono::milliseconds elapsed) {
    std::size_t kept = 0;
    for (int i = 0; i < 20; ++i, ++port)
      kept += candidates.add(ssdp_answer("http://10.77.0.1:" + std::to_string(port) + "/x.xml"), kGateway,
                             kMulticast, elapsed);
    return kept;
  };
  CHECK(forge_burst(1ms) == SsdpCandidates::kMaxWaitingGatewayLocations);
  CHECK(take_all(candidates).size() == SsdpCandidates::kMaxWaitingGatewayLocations);
  // The gateway's answer to the multicast search, after its MX delay: room again.
  CHECK(candidates.add(ssdp_answer(kRealLocation, kIgdV1), kGateway, kMulticast, 400ms));
  CHECK(take_all(candidates) == std::vector<std::string>{kRealLocation});
  // Bursts go on: tried and waiting LOCATIONs of the gateway are bounded in all.
  std::size_t kept = 1 + SsdpCandidates::kMaxWaitingGatewayLocations;
  for (int burst = 0; burst < 10; ++burst) {
    kept += forge_burst(500ms);
    take_all(candidates);
  }
  CHECK(kept == SsdpCandidates::kMaxGatewayLocations);
}

TEST_CASE("other devices come after the gateway, one answer each, from a bounded number of them") {
  SsdpCandidates candidates(kLocal, kMask, kGateway);
  CHECK(candidates.add(ssdp_answer("http://10.77.0.66:8000/a.xml"), kRogue, kMulticast, 1ms));
  CHECK_FALSE(candidates.add(ssdp_answer("http://10.77.0.66:8001/b.xml"), kRogue, kMulticast, 1ms));
  // An answer on the unicast socket from another host is no answer of the gateway's.
  CHECK_FALSE(candidates.add(ssdp_answer("http://10.77.0.66:8002/c.xml"), kRogue, kUnicast, 1ms));
  for (int host = 100; host < 120; ++host) {
    const auto address = "10.77.0." + std::to_string(host);
    candidates.add(ssdp_answer("http://" + address + ":80/d.xml"), make_address_v4(address), kMulticast, 2ms);
  }
  CHECK(candidates.add(ssdp_answer(kRealLocation, kIgdV1), kGateway, kMulticast, 900ms));
  const auto order = take_all(candidates);
  REQUIRE(order.size() == SsdpCandidates::kMaxOtherDevices + 1);
  CHECK(order.front() == kRealLocation);
  CHECK(order[1] == "http://10.77.0.66:8000/a.xml");
}

TEST_CASE("answers that are no IGD, or whose LOCATION may not be fetched, are not candidates") {
  SsdpCandidates candidates(kLocal, kMask, kGateway);
  CHECK_FALSE(candidates.add(ssdp_answer(kRealLocation, "urn:schemas-upnp-org:device:MediaRenderer:1"), kGateway,
                             kUnicast, 1ms));
  CHECK_FALSE(candidates.add(ssdp_answer("http://10.77.0.66:8000/desc.xml"), kGateway, kUnicast, 1ms));
  CHECK_FALSE(candidates.add(ssdp_answer("http://127.0.0.1:5000/rootDesc.xml"), kGateway, kUnicast, 1ms));
  CHECK_FALSE(candidates.add("HTTP/1.1 200 OK\r\nST: x\r\n\r\n", kGateway, kUnicast, 1ms));
  CHECK_FALSE(candidates.has_pending());
  CHECK_FALSE(candidates.take(kLater));
}
