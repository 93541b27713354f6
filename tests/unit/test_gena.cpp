#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <string>

#include "mappers/upnp/gena.hpp"
#include "result_printer.hpp"

using namespace natkeeper::upnp;
using namespace std::chrono_literals;

namespace {

// What miniupnpd 2.3.1 (Debian 12) sent the lab's LAN host: the answer to a
// SUBSCRIBE, and the initial event of that subscription.
const std::string kMiniupnpdAnswer =
    "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nConnection: close\r\nContent-Length: 0\r\n"
    "Server: Debian/6.18.44-fc-v1300 UPnP/1.1 MiniUPnPd/2.3.1\r\nExt:\r\nTimeout: Second-1800\r\n"
    "SID: uuid:3f1c7a2e-5b9d-4c61-9e0a-77c0ffee85c1\r\n\r\n";
const std::string kMiniupnpdPropertyset =
    "<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\"><e:property><PossibleConnectionTypes>IP_Routed"
    "</PossibleConnectionTypes></e:property><e:property><ConnectionStatus>Connected</ConnectionStatus></e:property>"
    "<e:property><ExternalIPAddress>203.0.113.1</ExternalIPAddress></e:property><e:property>"
    "<PortMappingNumberOfEntries>0</PortMappingNumberOfEntries></e:property><e:property><SystemUpdateID>1"
    "</SystemUpdateID></e:property></e:propertyset>\r\n";
const std::string kMiniupnpdNotify =
    "NOTIFY /event HTTP/1.1\r\nHost: 10.77.0.2:44037\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n"
    "Content-Length: 447\r\nNT: upnp:event\r\nNTS: upnp:propchange\r\n"
    "SID: uuid:3f1c7a2e-5b9d-4c61-9e0a-77c0ffee85c1\r\nSEQ: 0\r\nConnection: close\r\nCache-Control: no-cache\r\n\r\n" +
    kMiniupnpdPropertyset;

const HttpUrl kPublisher{"10.77.0.1", 5000, "/evt/IPConn"};

// In two reads, as a socket may deliver it.
template <bool IsRequest>
void feed_in_two(GenaMessageReader<IsRequest>& reader, const std::string& bytes, std::size_t split) {
  reader.feed(std::string_view(bytes).substr(0, split));
  reader.feed(std::string_view(bytes).substr(split));
  REQUIRE(reader.state() == GenaMessageReader<IsRequest>::State::complete);
}

GenaResult<GenaSubscription> answer(const std::string& bytes) {
  SubscribeAnswerReader reader;
  feed_in_two(reader, bytes, bytes.size() / 2);
  return read_subscribe_answer(reader.message());
}

GenaResult<GenaEvent> notify(const std::string& bytes) {
  NotifyReader reader;
  feed_in_two(reader, bytes, bytes.size() / 3);
  return read_notify(reader.message());
}

std::string notify_with(std::string_view headers, const std::string& body) {
  return fmt::format("NOTIFY /event HTTP/1.1\r\nHOST: 10.77.0.2:44037\r\n{}Content-Length: {}\r\n\r\n{}", headers,
                     body.size(), body);
}

const std::string kEventHeaders = "NT: upnp:event\r\nNTS: upnp:propchange\r\nSID: uuid:1\r\nSEQ: 7\r\n";

std::string propertyset(const std::string& properties) {
  return "<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\">" + properties + "</e:propertyset>";
}

}  // namespace

namespace Catch {
template <>
struct StringMaker<GenaError> {
  static std::string convert(GenaError error) { return std::string(describe(error)); }
};
}  // namespace Catch

TEST_CASE("GENA request heads: subscribe with a callback, renew and end by SID", "[gena]") {
  CHECK(subscribe_request(kPublisher, {"10.77.0.2", 40123, "/natkeeper/event"}, 1800s) ==
        "SUBSCRIBE /evt/IPConn HTTP/1.1\r\nHOST: 10.77.0.1:5000\r\nCALLBACK: <http://10.77.0.2:40123/natkeeper/event>"
        "\r\nNT: upnp:event\r\nTIMEOUT: Second-1800\r\n\r\n");
  CHECK(renewal_request(kPublisher, "uuid:abc", 1800s) ==
        "SUBSCRIBE /evt/IPConn HTTP/1.1\r\nHOST: 10.77.0.1:5000\r\nSID: uuid:abc\r\nTIMEOUT: Second-1800\r\n\r\n");
  CHECK(unsubscribe_request(kPublisher, "uuid:abc") ==
        "UNSUBSCRIBE /evt/IPConn HTTP/1.1\r\nHOST: 10.77.0.1:5000\r\nSID: uuid:abc\r\n\r\n");
}

TEST_CASE("GENA: miniupnpd's answer grants a SID and a duration", "[gena]") {
  const auto granted = answer(kMiniupnpdAnswer);
  REQUIRE(granted);
  CHECK(granted->sid == "uuid:3f1c7a2e-5b9d-4c61-9e0a-77c0ffee85c1");
  CHECK(granted->timeout == 1800s);
}

TEST_CASE("GENA: a granted duration is bounded; infinite is the bound", "[gena]") {
  const auto with_timeout = [](const std::string& timeout) {
    return answer("HTTP/1.1 200 OK\r\nSID: uuid:1\r\nTIMEOUT: " + timeout + "\r\n\r\n");
  };
  CHECK(with_timeout("Second-300")->timeout == 300s);
  CHECK(with_timeout("second-0")->timeout == 0s);
  CHECK(with_timeout("Second-infinite")->timeout == kGenaLongestTimeout);
  CHECK(with_timeout("Second-86401")->timeout == kGenaLongestTimeout);
  CHECK(with_timeout("Second-99999999999999999999999")->timeout == kGenaLongestTimeout);
  for (const auto* bad : {"", "300", "Second-", "Second--1", "Second-30x", "Minute-5", "Second- 30"}) {
    INFO(bad);
    CHECK(with_timeout(bad).error() == GenaError::bad_timeout);
  }
}

TEST_CASE("GENA: answers that grant nothing", "[gena]") {
  // miniupnpd, renewing a SID it does not know (any more)
  CHECK(answer("HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\n\r\n").error() == GenaError::unknown_sid);
  CHECK(answer("HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n").error() == GenaError::refused);
  CHECK(answer("HTTP/1.1 200 OK\r\nTIMEOUT: Second-300\r\n\r\n").error() == GenaError::bad_sid);
  CHECK(answer("HTTP/1.1 200 OK\r\nSID: uuid:a b\r\nTIMEOUT: Second-300\r\n\r\n").error() == GenaError::bad_sid);
  CHECK(answer("HTTP/1.1 200 OK\r\nSID: " + std::string(kGenaMaxSidBytes + 1, 'u') + "\r\nTIMEOUT: Second-300\r\n\r\n")
            .error() == GenaError::bad_sid);
}

TEST_CASE("GENA: an answer is read to the end of its head; its body is not", "[gena]") {
  SubscribeAnswerReader reader;
  CHECK(reader.feed("HTTP/1.1 200 OK\r\nSID: uuid:1\r\nTIMEOUT: Second-60\r\nContent-Length: 100000\r\n") ==
        SubscribeAnswerReader::State::need_more);
  CHECK(reader.feed("\r\n<html>") == SubscribeAnswerReader::State::complete);
  CHECK(read_subscribe_answer(reader.message())->timeout == 60s);

  SubscribeAnswerReader endless;
  CHECK(endless.feed("HTTP/1.1 200 OK\r\nX: " + std::string(kGenaMaxHeaderBytes, 'x')) ==
        SubscribeAnswerReader::State::failed);
  SubscribeAnswerReader cut;
  cut.feed("HTTP/1.1 200 OK\r\nSID: uuid:1\r\n");
  CHECK(cut.finish() == SubscribeAnswerReader::State::failed);
  CHECK_FALSE(cut.error().empty());
  SubscribeAnswerReader junk;
  CHECK(junk.feed("SSH-2.0-OpenSSH_9.2\r\n\r\n") == SubscribeAnswerReader::State::failed);
}

TEST_CASE("GENA: miniupnpd's NOTIFY is its subscription's event, properties by name", "[gena]") {
  const auto event = notify(kMiniupnpdNotify);
  REQUIRE(event);
  CHECK(event->sid == "uuid:3f1c7a2e-5b9d-4c61-9e0a-77c0ffee85c1");
  CHECK(event->seq == 0);
  REQUIRE(event->properties.size() == 5);
  CHECK(event->properties[2].name == "ExternalIPAddress");
  CHECK(event->properties[2].value == "203.0.113.1");
  CHECK(event->properties[3].name == "PortMappingNumberOfEntries");
  CHECK(event->properties[3].value == "0");
}

TEST_CASE("GENA: variables are read by their local name, values trimmed and decoded", "[gena]") {
  // as later miniupnpd versions write them, with the service's namespace prefix
  const auto event = notify(notify_with(
      kEventHeaders, "<?xml version=\"1.0\"?>\n" +
                         propertyset("<e:property><s:PortMappingNumberOfEntries> 3 </s:PortMappingNumberOfEntries>"
                                     "</e:property>\n<e:property><s:Note>a &amp; <![CDATA[b]]></s:Note></e:property>"
                                     "<e:property><Empty/></e:property>")));
  REQUIRE(event);
  CHECK(event->seq == 7);
  REQUIRE(event->properties.size() == 3);
  CHECK(event->properties[0].name == "PortMappingNumberOfEntries");
  CHECK(event->properties[0].value == "3");
  CHECK(event->properties[1].value == "a & b");
  CHECK(event->properties[2].name == "Empty");
  CHECK(event->properties[2].value.empty());
}

TEST_CASE("GENA: a NOTIFY that is no event of a subscription", "[gena]") {
  const auto body = propertyset("<e:property><PortMappingNumberOfEntries>3</PortMappingNumberOfEntries></e:property>");
  CHECK(notify("POST /event HTTP/1.1\r\n" + kEventHeaders + "Content-Length: 0\r\n\r\n").error() ==
        GenaError::not_notify);
  CHECK(notify(notify_with("NT: upnp:event\r\nNTS: ssdp:alive\r\nSID: uuid:1\r\nSEQ: 7\r\n", body)).error() ==
        GenaError::not_propchange);
  CHECK(notify(notify_with("NTS: upnp:propchange\r\nSID: uuid:1\r\nSEQ: 7\r\n", body)).error() ==
        GenaError::not_propchange);
  CHECK(notify(notify_with("NT: upnp:event\r\nNTS: upnp:propchange\r\nSEQ: 7\r\n", body)).error() ==
        GenaError::bad_sid);
  for (const auto* seq : {"", "-1", "4294967296", "1.5", "0x10"}) {
    INFO(seq);
    CHECK(notify(notify_with(fmt::format("NT: upnp:event\r\nNTS: upnp:propchange\r\nSID: uuid:1\r\nSEQ: {}\r\n", seq),
                             body))
              .error() == GenaError::bad_seq);
  }
  CHECK(notify(notify_with("NT: upnp:event\r\nNTS: upnp:propchange\r\nSID: uuid:1\r\nSEQ: 4294967295\r\n", body))
            ->seq == 4294967295u);
}

TEST_CASE("GENA: an event's property set is bounded", "[gena]") {
  const auto property = [](const std::string& name, const std::string& value) {
    return "<e:property><" + name + ">" + value + "</" + name + "></e:property>";
  };
  std::string many;
  for (std::size_t i = 0; i < kGenaMaxProperties; ++i) many += property("V" + std::to_string(i), "1");
  CHECK(notify(notify_with(kEventHeaders, propertyset(many)))->properties.size() == kGenaMaxProperties);
  CHECK(notify(notify_with(kEventHeaders, propertyset(many + property("One", "more")))).error() ==
        GenaError::too_many_properties);
  CHECK(notify(notify_with(kEventHeaders, propertyset(property("Long", std::string(kGenaMaxValueBytes + 1, 'x')))))
            .error() == GenaError::bad_propertyset);
  CHECK(notify(notify_with(kEventHeaders, propertyset(property(std::string(kGenaMaxValueBytes + 1, 'N'), "1"))))
            .error() == GenaError::bad_propertyset);
  // no property set, an empty one, properties outside it, not XML
  for (const auto& body : {std::string(), propertyset(""), property("A", "1"),
                           "<other>" + property("A", "1") + "</other>", std::string("PortMappingNumberOfEntries=3")}) {
    INFO(body);
    CHECK(notify(notify_with(kEventHeaders, body)).error() == GenaError::bad_propertyset);
  }
}

TEST_CASE("GENA: a NOTIFY is read within its limits, chunked or not", "[gena]") {
  const auto body = propertyset("<e:property><PortMappingNumberOfEntries>3</PortMappingNumberOfEntries></e:property>");
  const auto chunked = fmt::format("NOTIFY /event HTTP/1.1\r\n{}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
                                   kEventHeaders, body.size(), body);
  CHECK(notify(chunked)->properties.at(0).value == "3");

  NotifyReader oversized;
  const auto big = notify_with(kEventHeaders, propertyset(std::string(kGenaMaxBodyBytes, ' ')));
  CHECK(oversized.feed(big) == NotifyReader::State::failed);
  NotifyReader long_head;
  CHECK(long_head.feed("NOTIFY /event HTTP/1.1\r\nX: " + std::string(kGenaMaxHeaderBytes, 'x') + "\r\n\r\n") ==
        NotifyReader::State::failed);
  NotifyReader cut;
  cut.feed(kMiniupnpdNotify.substr(0, kMiniupnpdNotify.size() - 10));
  CHECK(cut.state() == NotifyReader::State::need_more);
  CHECK(cut.finish() == NotifyReader::State::failed);
  // byte by byte, as a trickling sender sends
  NotifyReader trickled;
  for (const char c : kMiniupnpdNotify) trickled.feed(std::string_view(&c, 1));
  REQUIRE(trickled.state() == NotifyReader::State::complete);
  CHECK(read_notify(trickled.message())->properties.size() == 5);
}

TEST_CASE("GENA: the answers to a NOTIFY", "[gena]") {
  CHECK(notify_answer(http::status::ok) == "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  CHECK(notify_answer(http::status::precondition_failed) ==
        "HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}
