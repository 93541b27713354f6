// The SOAP actions over natkeeper's own HTTP client, against scripted control
// URLs on 127.0.0.1: what goes out, what comes back, and how a gateway that
// refuses, closes, floods or trickles ends up.
#include <catch2/catch.hpp>

#include "result_printer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "mappers/errors.hpp"
#include "mappers/upnp/soap_igd.hpp"
#include "mappers/upnp/xml_text.hpp"
#include "tests/unit/http_request_reader.hpp"
#include "tests/unit/run_loop.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace natkeeper;
using namespace natkeeper::upnp;
using namespace std::chrono_literals;

namespace {

constexpr auto token = asio::as_tuple(asio::use_awaitable);
const std::string kIp2 = "urn:schemas-upnp-org:service:WANIPConnection:2";

// A control URL on 127.0.0.1 that serves `connections` requests, one per
// connection: each whole request (head and body) goes to `behave` with the socket.
class ScriptedControl {
 public:
  using Behaviour = std::function<asio::awaitable<void>(tcp::socket&, const std::string& request)>;
  ScriptedControl(asio::io_context& loop, Behaviour behave, int connections = 1)
      : acceptor_(loop, {asio::ip::make_address_v4("127.0.0.1"), 0}), behave_(std::move(behave)) {
    asio::co_spawn(loop, serve(connections), asio::detached);
  }
  // A description whose only WAN connection service is IGDv2's, controlled here.
  std::string description() const {
    return "<root><device><serviceList><service><serviceType>" + kIp2 + "</serviceType><controlURL>/ctl</controlURL>"
           "</service></serviceList></device></root>";
  }
  std::string location() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/rootDesc.xml";
  }
  const std::vector<std::string>& requests() const { return requests_; }

 private:
  asio::awaitable<void> serve(int connections) {
    for (int i = 0; i < connections; ++i) {
      auto [ec, socket] = co_await acceptor_.async_accept(token);
      if (ec) co_return;
      auto received = co_await natkeeper::testing::read_http_request(socket);
      if (!received) continue;
      const auto& request = *received;
      requests_.push_back(request);
      co_await behave_(socket, request);
    }
  }

  tcp::acceptor acceptor_;
  Behaviour behave_;
  std::vector<std::string> requests_;
};

asio::awaitable<void> send(tcp::socket& socket, std::string text) {
  co_await asio::async_write(socket, asio::buffer(text), token);
}

std::string http_answer(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Internal Server Error") +
         "\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

std::string envelope(const std::string& inner) {
  return "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
         "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>" + inner + "</s:Body></s:Envelope>";
}

std::string response(const std::string& action, const std::string& arguments) {
  return envelope("<u:" + action + "Response xmlns:u=\"" + kIp2 + "\">" + arguments + "</u:" + action + "Response>");
}

std::string fault(int code) {
  return envelope("<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError "
                  "xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>" + std::to_string(code) +
                  "</errorCode><errorDescription>x</errorDescription></UPnPError></detail></s:Fault>");
}

// Answers every request with `text`.
ScriptedControl::Behaviour answering(std::string text) {
  return [text](tcp::socket& socket, const std::string&) -> asio::awaitable<void> { co_await send(socket, text); };
}

// A single WAN connection service is taken without a call: no loop needed for it.
std::shared_ptr<IgdControl> control_of(const ScriptedControl& control) {
  asio::io_context own;
  auto opened = run_loop(own, open_igd(control.location(), control.description()));
  REQUIRE(opened);
  return opened->control;
}

// One call, while the scripted control URL may wait for more connections.
template <class T>
T call(asio::io_context& loop, asio::awaitable<T> task) {
  auto result = run_for(loop, std::move(task), 10s);
  REQUIRE(result);
  return std::move(*result);
}

}  // namespace

TEST_CASE("AddAnyPortMapping: the request as a gateway reads it, and the port it reserved") {
  asio::io_context loop;
  ScriptedControl control(
      loop, answering(http_answer(200, response("AddAnyPortMapping", "<NewReservedPort>7080</NewReservedPort>"))));
  auto igd = control_of(control);
  const PortMappingArgs args{Transport::udp, 7076, 7077, "10.77.0.2", "doorbell <front> & \"back\"", 3600s};
  const auto reserved = call(loop, igd->add_any_port_mapping(args));
  REQUIRE(reserved);
  CHECK(*reserved == 7080);
  REQUIRE(control.requests().size() == 1);
  const auto& request = control.requests()[0];
  CHECK(request.starts_with("POST /ctl HTTP/1.1\r\n"));
  CHECK_THAT(request, Catch::Contains("\r\nSOAPAction: \"" + kIp2 + "#AddAnyPortMapping\"\r\n"));
  CHECK_THAT(request, Catch::Contains("\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n"));
  CHECK_THAT(request, Catch::Contains("<u:AddAnyPortMapping xmlns:u=\"" + kIp2 + "\"><NewRemoteHost></NewRemoteHost>"
                                      "<NewExternalPort>7076</NewExternalPort><NewProtocol>UDP</NewProtocol>"
                                      "<NewInternalPort>7077</NewInternalPort><NewInternalClient>10.77.0.2"
                                      "</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>"
                                      "doorbell &lt;front&gt; &amp; &quot;back&quot;</NewPortMappingDescription>"
                                      "<NewLeaseDuration>3600</NewLeaseDuration></u:AddAnyPortMapping>"));
}

TEST_CASE("the actions read what the gateway answers") {
  asio::io_context loop;
  SECTION("GetSpecificPortMappingEntry") {
    ScriptedControl control(
        loop, answering(http_answer(200, response("GetSpecificPortMappingEntry",
                                                  "<NewInternalPort>7076</NewInternalPort><NewInternalClient>10.77.0.2"
                                                  "</NewInternalClient><NewEnabled>1</NewEnabled>"
                                                  "<NewPortMappingDescription>natkeeper</NewPortMappingDescription>"
                                                  "<NewLeaseDuration>3597</NewLeaseDuration>"))));
    const auto entry = call(loop, control_of(control)->get_specific_port_mapping(Transport::tcp, 7076));
    REQUIRE(entry);
    CHECK(entry->internal_client == "10.77.0.2");
    CHECK(entry->internal_port == 7076);
    CHECK(entry->description == "natkeeper");
    CHECK(entry->lease == 3597s);
    CHECK_THAT(control.requests()[0], Catch::Contains("<NewExternalPort>7076</NewExternalPort><NewProtocol>TCP"));
  }
  SECTION("GetGenericPortMappingEntry past the table's end") {
    ScriptedControl control(loop, answering(http_answer(500, fault(713))));
    CHECK(call(loop, control_of(control)->get_generic_port_mapping(3)).error() == make_upnp_error(713));
    CHECK_THAT(control.requests()[0], Catch::Contains("<NewPortMappingIndex>3</NewPortMappingIndex>"));
  }
  SECTION("GetExternalIPAddress, and a refused DeletePortMapping") {
    ScriptedControl control(
        loop,
        [](tcp::socket& socket, const std::string& request) -> asio::awaitable<void> {
          auto answer = request.find("#DeletePortMapping") != std::string::npos
                            ? http_answer(500, fault(606))
                            : http_answer(200, response("GetExternalIPAddress", "<NewExternalIPAddress>203.0.113.1"
                                                                                "</NewExternalIPAddress>"));
          co_await send(socket, std::move(answer));
        },
        2);
    auto igd = control_of(control);
    CHECK(call(loop, igd->get_external_ip_address()).value() == "203.0.113.1");
    CHECK(call(loop, igd->delete_port_mapping(Transport::udp, 7076)) == MapFailure::not_authorized);
  }
}

TEST_CASE("GetListOfPortMappings asks for every client's entries, and 730 is an empty list") {
  asio::io_context loop;
  SECTION("730 PortMappingNotFound") {
    ScriptedControl control(loop, answering(http_answer(500, fault(730))));
    const auto listed =
        call(loop, control_of(control)->get_list_of_port_mappings(Transport::udp, 1024, 65535, 256));
    REQUIRE(listed);
    CHECK(listed->empty());
    CHECK_THAT(control.requests()[0],
               Catch::Contains("<NewStartPort>1024</NewStartPort><NewEndPort>65535</NewEndPort>"
                               "<NewProtocol>UDP</NewProtocol><NewManage>1</NewManage>"
                               "<NewNumberOfPorts>256</NewNumberOfPorts>"));
  }
  SECTION("a listing") {
    const std::string listing =
        "<p:PortMappingList xmlns:p=\"urn:schemas-upnp-org:gw:WANIPConnection\"><p:PortMappingEntry>"
        "<p:NewRemoteHost></p:NewRemoteHost><p:NewExternalPort>7076</p:NewExternalPort><p:NewProtocol>UDP"
        "</p:NewProtocol><p:NewInternalPort>7076</p:NewInternalPort><p:NewInternalClient>10.77.0.9"
        "</p:NewInternalClient><p:NewEnabled>1</p:NewEnabled><p:NewDescription>other</p:NewDescription>"
        "<p:NewLeaseTime>0</p:NewLeaseTime></p:PortMappingEntry></p:PortMappingList>";
    ScriptedControl control(loop, answering(http_answer(200, response("GetListOfPortMappings",
                                                                      "<NewPortListing><![CDATA[" + listing +
                                                                          "]]></NewPortListing>"))));
    const auto listed =
        call(loop, control_of(control)->get_list_of_port_mappings(Transport::udp, 7000, 7100, 10));
    REQUIRE(listed);
    REQUIRE(listed->size() == 1);
    CHECK((*listed)[0].external_port == 7076);
    CHECK((*listed)[0].entry.internal_client == "10.77.0.9");
  }
  SECTION("at most none: nothing asked") {
    ScriptedControl control(loop, answering(""), 0);
    CHECK(call(loop, control_of(control)->get_list_of_port_mappings(Transport::udp, 1, 2, 0)).value().empty());
  }
}

TEST_CASE("a GetListOfPortMappings page of 256 entries at their largest fits in an answer") {
  // miniupnpd's entry with every field at its longest, the 63-byte description
  // all '&': escaped inside the listing, then the listing escaped around it.
  std::string description;
  for (int i = 0; i < 63; ++i) description += "&amp;";
  std::string entries;
  for (int port = 40000; port < 40256; ++port) {
    const auto number = std::to_string(port);
    entries += "<p:PortMappingEntry><p:NewRemoteHost>255.255.255.255</p:NewRemoteHost><p:NewExternalPort>" + number +
               "</p:NewExternalPort><p:NewProtocol>UDP</p:NewProtocol><p:NewInternalPort>" + number +
               "</p:NewInternalPort><p:NewInternalClient>192.168.100.200</p:NewInternalClient><p:NewEnabled>1"
               "</p:NewEnabled><p:NewDescription>" + description + "</p:NewDescription><p:NewLeaseTime>4294967295"
               "</p:NewLeaseTime></p:PortMappingEntry>";
  }
  const auto listing =
      "<p:PortMappingList xmlns:p=\"urn:schemas-upnp-org:gw:WANIPConnection\">" + entries + "</p:PortMappingList>";
  const auto body = response("GetListOfPortMappings", "<NewPortListing>" + escape_xml_text(listing) + "</NewPortListing>");
  INFO("an answer of " << body.size() << " bytes");
  CHECK(body.size() < 300 * 1024);
  asio::io_context loop;
  ScriptedControl control(loop, answering(http_answer(200, body)));
  const auto listed = call(loop, control_of(control)->get_list_of_port_mappings(Transport::udp, 1, 65535, 256));
  REQUIRE(listed);
  CHECK(listed->size() == 256);
}

TEST_CASE("no answer is the gateway not answering; an answer that cannot be read is not") {
  asio::io_context loop;
  SECTION("refused: nobody listens on 127.0.0.1:9") {
    const auto opened = run_loop(loop, open_igd("http://127.0.0.1:9/rootDesc.xml",
                                                "<root><service><serviceType>" + kIp2 +
                                                    "</serviceType><controlURL>/ctl</controlURL></service></root>"));
    const auto address = run_loop(loop, opened.value().control->get_external_ip_address());
    CHECK(address.error() == MapFailure::gateway_unreachable);
  }
  SECTION("closed without a byte of answer") {
    ScriptedControl control(loop, [](tcp::socket& socket, const std::string&) -> asio::awaitable<void> {
      socket.close();
      co_return;
    });
    const auto added = call(loop, control_of(control)->add_port_mapping({}));
    CHECK(added == Errc::no_gateway_answer);
    CHECK(added == MapFailure::gateway_unreachable);
  }
  SECTION("an answer larger than 512 KiB, announced or not") {
    const bool announced = GENERATE(true, false);
    ScriptedControl control(loop, [announced](tcp::socket& socket, const std::string&) -> asio::awaitable<void> {
      co_await send(socket, announced ? "HTTP/1.1 200 OK\r\nContent-Length: 209715200\r\n\r\n"
                                      : "HTTP/1.1 200 OK\r\n\r\n");
      const std::string block(64 * 1024, 'x');
      for (int i = 0; i < 16; ++i) {
        auto [ec, size] = co_await asio::async_write(socket, asio::buffer(block), token);
        if (ec) co_return;
      }
    });
    const auto added = call(loop, control_of(control)->add_port_mapping({}));
    CHECK(added == Errc::bad_reply);
    CHECK_FALSE(added == MapFailure::gateway_unreachable);
  }
  SECTION("a 404 without a fault") {
    ScriptedControl control(loop, answering("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nNot Found"));
    CHECK(call(loop, control_of(control)->delete_port_mapping(Transport::udp, 1)) == Errc::bad_reply);
  }
}

// [realtime]: a real server trickling its answer; the cancellation must free the caller at once.
TEST_CASE("a call is cancelled through its cancellation slot while the gateway trickles", "[realtime]") {
  asio::io_context loop;
  ScriptedControl control(loop, [](tcp::socket& socket, const std::string&) -> asio::awaitable<void> {
    const auto answer = http_answer(200, response("GetExternalIPAddress", "<NewExternalIPAddress>203.0.113.1"
                                                                          "</NewExternalIPAddress>"));
    asio::steady_timer pause(socket.get_executor());
    for (const char byte : answer) {  // about 15 s in all
      auto [ec, size] = co_await asio::async_write(socket, asio::buffer(&byte, 1), token);
      if (ec) co_return;
      pause.expires_after(50ms);
      co_await pause.async_wait(token);
    }
  });
  auto igd = control_of(control);
  asio::cancellation_signal cancel;
  bool done = false;
  std::error_code outcome;
  asio::co_spawn(loop, igd->get_external_ip_address(),
                 asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr error, Result<std::string> address) {
                   done = true;
                   if (error) {
                     try {
                       std::rethrow_exception(error);
                     } catch (const boost::system::system_error& e) {
                       outcome = e.code();
                     }
                   } else {
                     outcome = address ? std::error_code{} : address.error();
                   }
                 }));
  asio::steady_timer later(loop, 300ms);
  later.async_wait([&](boost::system::error_code) { cancel.emit(asio::cancellation_type::terminal); });
  const auto started = std::chrono::steady_clock::now();
  loop.run_for(3s);
  REQUIRE(done);
  CHECK(outcome == std::errc::operation_canceled);
  CHECK(std::chrono::steady_clock::now() - started < 1s);
}
