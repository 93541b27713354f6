// UPnP control messages as a pure codec: the request envelope, and answers
// read by libminiupnpc's parsers (successes, faults, truncated and garbage
// answers, entities), GetListOfPortMappings' listing among them.
#include <catch2/catch.hpp>

#include "result_printer.hpp"

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "mappers/errors.hpp"
#include "mappers/upnp/soap.hpp"
#include "mappers/upnp/xml_text.hpp"

using namespace natkeeper;
using namespace natkeeper::upnp;
using namespace std::chrono_literals;
using namespace std::string_literals;

namespace {

const std::string kIp2 = "urn:schemas-upnp-org:service:WANIPConnection:2";

// As miniupnpd 2.3 frames every answer (upnpsoap.c).
std::string miniupnpd_envelope(const std::string& inner) {
  return "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
         "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>" + inner +
         "</s:Body></s:Envelope>\r\n";
}

std::string miniupnpd_fault(int code, const std::string& description) {
  return "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
         "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><s:Fault>"
         "<faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>"
         "<UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>" + std::to_string(code) +
         "</errorCode><errorDescription>" + description + "</errorDescription></UPnPError></detail></s:Fault>"
         "</s:Body></s:Envelope>";
}

const std::string kEntryAnswer = miniupnpd_envelope(
    "<u:GetSpecificPortMappingEntryResponse xmlns:u=\"" + kIp2 + "\"><NewInternalPort>7076</NewInternalPort>"
    "<NewInternalClient>10.77.0.2</NewInternalClient><NewEnabled>1</NewEnabled>"
    "<NewPortMappingDescription>natkeeper udp 7076</NewPortMappingDescription>"
    "<NewLeaseDuration>3597</NewLeaseDuration></u:GetSpecificPortMappingEntryResponse>");

constexpr std::array<std::string_view, 4> kEntryOutputs{"NewInternalPort", "NewInternalClient",
                                                        "NewPortMappingDescription", "NewLeaseDuration"};

Result<SoapOutputs> read_entry(const std::string& body, int status = 200) {
  return read_soap_answer("GetSpecificPortMappingEntry", status, body, kEntryOutputs);
}

std::string listed_entry(const std::string& proto, int external_port, const std::string& client,
                         const std::string& description, int lease) {
  return "<p:PortMappingEntry><p:NewRemoteHost></p:NewRemoteHost><p:NewExternalPort>" +
         std::to_string(external_port) + "</p:NewExternalPort><p:NewProtocol>" + proto +
         "</p:NewProtocol><p:NewInternalPort>" + std::to_string(external_port) +
         "</p:NewInternalPort><p:NewInternalClient>" + client +
         "</p:NewInternalClient><p:NewEnabled>1</p:NewEnabled><p:NewDescription>" + description +
         "</p:NewDescription><p:NewLeaseTime>" + std::to_string(lease) + "</p:NewLeaseTime></p:PortMappingEntry>";
}

std::string listing_of(const std::string& entries) {
  return "<p:PortMappingList xmlns:p=\"urn:schemas-upnp-org:gw:WANIPConnection\" "
         "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"urn:schemas-upnp-org:gw:"
         "WANIPConnection http://www.upnp.org/schemas/gw/WANIPConnection-v2.xsd\">" + entries + "</p:PortMappingList>";
}

// A GetListOfPortMappings answer with `listing` as miniupnpd sends it (in CDATA), or escaped.
std::string list_answer(const std::string& listing, bool in_cdata = true) {
  const auto value = in_cdata ? "<![CDATA[" + listing + "]]>" : escape_xml_text(listing);
  return miniupnpd_envelope("<u:GetListOfPortMappingsResponse xmlns:u=\"" + kIp2 + "\"><NewPortListing>" + value +
                            "</NewPortListing></u:GetListOfPortMappingsResponse>");
}

constexpr std::array<std::string_view, 1> kPortListing{"NewPortListing"};

Result<std::vector<ListedPortMapping>> listed(const std::string& body, std::uint16_t first = 0,
                                              std::uint16_t last = 65535, std::uint16_t at_most = 256,
                                              Transport proto = Transport::udp) {
  const auto answer = read_soap_answer("GetListOfPortMappings", 200, body, kPortListing);
  if (!answer) return answer.error();
  const auto found = answer->find("NewPortListing");
  return read_port_listing(found == answer->end() ? "" : found->second, proto, first, last, at_most);
}

}  // namespace

TEST_CASE("the request envelope escapes every argument value and the service type") {
  const std::array<SoapArgument, 3> arguments{{{"NewExternalPort", "7076"},
                                               {"NewPortMappingDescription", "a<b>&\"c\" 'd'"},
                                               {"NewInternalClient", "10.77.0.2"}}};
  const auto body = soap_request_body("urn:x&y:service:WANIPConnection:1", "AddPortMapping", arguments);
  CHECK(body ==
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
        "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>"
        "<u:AddPortMapping xmlns:u=\"urn:x&amp;y:service:WANIPConnection:1\"><NewExternalPort>7076</NewExternalPort>"
        "<NewPortMappingDescription>a&lt;b&gt;&amp;&quot;c&quot; &apos;d&apos;</NewPortMappingDescription>"
        "<NewInternalClient>10.77.0.2</NewInternalClient></u:AddPortMapping></s:Body></s:Envelope>\r\n");
  CHECK(soap_action_header(kIp2, "AddPortMapping") == "\"" + kIp2 + "#AddPortMapping\"");
}

TEST_CASE("a miniupnpd answer gives the output arguments asked for") {
  const auto answer = read_entry(kEntryAnswer);
  REQUIRE(answer);
  CHECK(*answer == SoapOutputs{{"NewInternalPort", "7076"},
                               {"NewInternalClient", "10.77.0.2"},
                               {"NewPortMappingDescription", "natkeeper udp 7076"},
                               {"NewLeaseDuration", "3597"}});
  // An action without output arguments: an empty response element is the success.
  const auto added = read_soap_answer(
      "AddPortMapping", 200,
      miniupnpd_envelope("<u:AddPortMappingResponse xmlns:u=\"" + kIp2 + "\"></u:AddPortMappingResponse>"), {});
  REQUIRE(added);
  CHECK(added->empty());
  // One that lacks an output leaves it out; the caller decides.
  const auto address = read_soap_answer(
      "GetExternalIPAddress", 200,
      miniupnpd_envelope("<u:GetExternalIPAddressResponse xmlns:u=\"" + kIp2 + "\"><NewExternalIPAddress>"
                         "</NewExternalIPAddress></u:GetExternalIPAddressResponse>"),
      std::array<std::string_view, 2>{"NewExternalIPAddress", "NewOther"});
  REQUIRE(address);
  CHECK(*address == SoapOutputs{{"NewExternalIPAddress", ""}});
}

TEST_CASE("a fault is its UPnP errorCode, whatever the HTTP status") {
  CHECK(read_entry(miniupnpd_fault(714, "NoSuchEntryInArray"), 500).error() == make_upnp_error(714));
  CHECK(read_soap_answer("AddPortMapping", 200, miniupnpd_fault(718, "ConflictInMappingEntry"), {}).error() ==
        make_upnp_error(718));
  CHECK(read_entry(miniupnpd_fault(606, "Action not authorized"), 500).error() == MapFailure::not_authorized);
  // A code that is no UPnP error code is no readable fault.
  const auto odd = miniupnpd_fault(714, "x");
  for (const auto& code : {std::string("7a4"), std::string("-4"), std::string("99"), std::string("")}) {
    auto body = odd;
    body.replace(body.find("714"), 3, code);
    CHECK(read_entry(body, 500).error() == Errc::bad_reply);
  }
}

TEST_CASE("a truncated answer, another action's, garbage or a non-200 status without a fault is unreadable") {
  SECTION("cut short, anywhere before the response element's end tag") {
    for (const auto* before : {"<NewEnabled>", "</u:GetSpecific", "<u:Get"})
      CHECK(read_entry(kEntryAnswer.substr(0, kEntryAnswer.find(before) + 3)).error() == Errc::bad_reply);
    CHECK(read_entry(kEntryAnswer.substr(0, kEntryAnswer.find("</s:Body>")))); // the rest is not needed
  }
  SECTION("an empty-element response") {
    CHECK(read_soap_answer("DeletePortMapping", 200,
                           miniupnpd_envelope("<u:DeletePortMappingResponse xmlns:u=\"" + kIp2 + "\"/>"), {}));
  }
  SECTION("another action's response") {
    CHECK(read_soap_answer("AddAnyPortMapping", 200, kEntryAnswer, {}).error() == Errc::bad_reply);
  }
  SECTION("garbage, empty") {
    CHECK(read_entry("\x00\x1f<<s:Envelope <<\xff\xfe garbled \x00 >>\r\n"s).error() == Errc::bad_reply);
    CHECK(read_entry("<html><body>Not Found</body></html>").error() == Errc::bad_reply);
    CHECK(read_entry("").error() == Errc::bad_reply);
    CHECK(read_entry(std::string(100000, '<')).error() == Errc::bad_reply);
  }
  SECTION("a 500 whose body is the response") {
    CHECK(read_entry(kEntryAnswer, 500).error() == Errc::bad_reply);
  }
}

TEST_CASE("entities in values are decoded, surrounding white space dropped") {
  const auto answer = read_entry(miniupnpd_envelope(
      "<u:GetSpecificPortMappingEntryResponse xmlns:u=\"" + kIp2 + "\"><NewInternalPort>\r\n 7076 </NewInternalPort>"
      "<NewPortMappingDescription>a&lt;b&gt; &amp;&quot;c&quot;&apos;&#233;&#x263A;&bogus;&#0;"
      "</NewPortMappingDescription></u:GetSpecificPortMappingEntryResponse>"));
  REQUIRE(answer);
  CHECK(answer->at("NewInternalPort") == "7076");
  CHECK(answer->at("NewPortMappingDescription") == "a<b> &\"c\"'\xC3\xA9\xE2\x98\xBA&bogus;&#0;");
  CHECK(decode_xml_text("&#x110000;&#xD800;&#12345678901;&amp") == "&#x110000;&#xD800;&#12345678901;&amp");
  CHECK(escape_xml_text("<&>\"'x") == "&lt;&amp;&gt;&quot;&apos;x");
}

TEST_CASE("GetListOfPortMappings: the listing in CDATA, as miniupnpd sends it, in document order") {
  const auto entries = listed(list_answer(listing_of(listed_entry("UDP", 7076, "10.77.0.2", "natkeeper udp 7076", 3590) +
                                                     listed_entry("UDP", 5000, "10.77.0.9", "other", 0) +
                                                     listed_entry("UDP", 7077, "10.77.0.2", "natkeeper udp 7077", 12))));
  REQUIRE(entries);
  REQUIRE(entries->size() == 3);
  CHECK((*entries)[0].proto == Transport::udp);
  CHECK((*entries)[0].external_port == 7076);
  CHECK((*entries)[0].entry.internal_client == "10.77.0.2");
  CHECK((*entries)[0].entry.internal_port == 7076);
  CHECK((*entries)[0].entry.description == "natkeeper udp 7076");
  CHECK((*entries)[0].entry.lease == 3590s);
  CHECK((*entries)[1].external_port == 5000);
  CHECK((*entries)[1].entry.lease == 0s);
  CHECK((*entries)[2].external_port == 7077);
  CHECK((*entries)[2].entry.lease == 12s);
}

TEST_CASE("GetListOfPortMappings: an escaped listing, with escaped descriptions") {
  // Escaped twice: once inside the listing document, once around it.
  const auto entries = listed(list_answer(listing_of(listed_entry("TCP", 15063, "10.77.0.50", "door &amp; bell", 60)),
                                          false),
                              0, 65535, 256, Transport::tcp);
  REQUIRE(entries);
  REQUIRE(entries->size() == 1);
  CHECK((*entries)[0].proto == Transport::tcp);
  CHECK((*entries)[0].external_port == 15063);
  CHECK((*entries)[0].entry.internal_client == "10.77.0.50");
  CHECK((*entries)[0].entry.description == "door & bell");
}

TEST_CASE("GetListOfPortMappings: only what was asked, at most as many as asked") {
  const auto body = list_answer(listing_of(listed_entry("UDP", 7076, "10.77.0.2", "a", 0) +
                                           listed_entry("TCP", 7077, "10.77.0.2", "b", 0) +
                                           listed_entry("UDP", 7078, "10.77.0.2", "c", 0) +
                                           listed_entry("UDP", 9000, "10.77.0.2", "d", 0) +
                                           listed_entry("UDP", 7079, "10.77.0.2", "e", 0)));
  auto ports = [](const Result<std::vector<ListedPortMapping>>& entries) {
    std::vector<int> found;
    for (const auto& entry : entries.value()) found.push_back(entry.external_port);
    return found;
  };
  CHECK(ports(listed(body, 7000, 8000)) == std::vector<int>{7076, 7078, 7079});
  CHECK(ports(listed(body, 7000, 8000, 2)) == std::vector<int>{7076, 7078});
  CHECK(ports(listed(body, 7077, 7077, 256, Transport::tcp)) == std::vector<int>{7077});
  CHECK(ports(listed(body, 0, 65535, 0)).empty());
}

TEST_CASE("GetListOfPortMappings: an empty listing, and unreadable ones") {
  CHECK(listed(list_answer(listing_of(""))).value().empty());
  CHECK(listed(miniupnpd_envelope("<u:GetListOfPortMappingsResponse xmlns:u=\"" + kIp2 +
                                  "\"><NewPortListing></NewPortListing></u:GetListOfPortMappingsResponse>"))
            .value()
            .empty());
  // An entry without its ports, or whose port is no number.
  CHECK(listed(list_answer(listing_of("<p:PortMappingEntry><p:NewProtocol>UDP</p:NewProtocol></p:PortMappingEntry>")))
            .error() == Errc::bad_reply);
  auto no_number = listed_entry("UDP", 7076, "10.77.0.2", "a", 0);
  no_number.replace(no_number.find("7076"), 4, "many");
  CHECK(listed(list_answer(listing_of(no_number))).error() == Errc::bad_reply);
  // Cut short: no whole response element, whatever entries came.
  const auto whole = list_answer(listing_of(listed_entry("UDP", 7076, "10.77.0.2", "a", 0) +
                                            listed_entry("UDP", 7077, "10.77.0.2", "b", 0)));
  CHECK(listed(whole.substr(0, whole.find("<p:NewExternalPort>7077"))).error() == Errc::bad_reply);
}
