#include <catch2/catch.hpp>

#include "mappers/upnp/http_url.hpp"
#include "mappers/upnp/ssdp.hpp"
#include "mappers/upnp/ssdp_search.hpp"
#include "result_printer.hpp"

using namespace natkeeper::upnp;
using boost::asio::ip::make_address_v4;

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
