// Reading an IGD root description, choosing its WAN connection services, and
// ranking them by what they say of themselves: the pure parts of open_igd.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "mappers/upnp/igd_description.hpp"

using namespace natkeeper::upnp;

namespace {

const std::string kLocation = "http://10.77.0.1:5000/rootDesc.xml";

std::string service(const std::string& type, const std::string& control_url) {
  return "<service><serviceType>" + type + "</serviceType><serviceId>urn:upnp-org:serviceId:x</serviceId>"
         "<SCPDURL>/scpd.xml</SCPDURL><controlURL>" + control_url + "</controlURL>"
         "<eventSubURL>/evt</eventSubURL></service>";
}

// An IGD whose WANDevice holds one WANConnectionDevice per service in `connections`.
std::string igd(const std::vector<std::string>& connections, const std::string& url_base = "") {
  std::string devices;
  for (const auto& connection : connections)
    devices += "<device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>"
               "<serviceList>" + connection + "</serviceList></device>";
  return "<?xml version=\"1.0\"?>\n<root xmlns=\"urn:schemas-upnp-org:device-1-0\">"
         "<specVersion><major>1</major><minor>0</minor></specVersion>" +
         (url_base.empty() ? "" : "<URLBase>" + url_base + "</URLBase>") +
         "<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType><deviceList>"
         "<device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><serviceList>" +
         service("urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1", "/ctl/CmnIfCfg") +
         "</serviceList><deviceList>" + devices + "</deviceList></device></deviceList></device></root>\n";
}

const std::string kIp1 = "urn:schemas-upnp-org:service:WANIPConnection:1";
const std::string kIp2 = "urn:schemas-upnp-org:service:WANIPConnection:2";
const std::string kPpp1 = "urn:schemas-upnp-org:service:WANPPPConnection:1";
const std::string kTr064Ip = "urn:dslforum-org:service:WANIPConnection:1";
const std::string kTr064Ppp = "urn:dslforum-org:service:WANPPPConnection:1";

std::vector<std::string> control_urls(const std::vector<IgdDescription>& services) {
  std::vector<std::string> urls;
  for (const auto& s : services) urls.push_back(s.control_url);
  return urls;
}

}  // namespace

TEST_CASE("a description's services are read in document order, as libminiupnpc reads them") {
  const auto description = parse_root_description(
      "<?xml version=\"1.0\"?><!DOCTYPE root><s:root xmlns:s=\"urn:schemas-upnp-org:device-1-0\">"
      "<s:URLBase> http://10.77.0.1:49000/ </s:URLBase><!-- <service><serviceType>hidden</serviceType></service> -->"
      "<s:device><s:serviceList>"
      "<s:service attr=\"a > b\"><s:serviceType>\n  urn:schemas-upnp-org:service:WANIPConnection:1\n</s:serviceType>"
      "<s:controlURL>/ctl?a=1&amp;b=&lt;2&gt;</s:controlURL><s:eventSubURL/></s:service>"
      "<service><serviceType><![CDATA[urn:dslforum-org:service:WANPPPConnection:1]]></serviceType>"
      "<controlURL>upnp/control/<!-- split -->wanpppconn1</controlURL></service>"
      "<service><serviceType>urn:x</serviceType></service>"
      "</s:serviceList></s:device></s:root>");
  CHECK(description.url_base == "http://10.77.0.1:49000/");
  REQUIRE(description.services.size() == 3);
  CHECK(description.services[0].service_type == kIp1);
  CHECK(description.services[0].control_url == "/ctl?a=1&b=<2>");
  CHECK(description.services[1].service_type == kTr064Ppp);
  CHECK(description.services[1].control_url == "upnp/control/wanpppconn1");
  CHECK(description.services[2].control_url.empty());
}

TEST_CASE("what is no description yields no services; a cut one those it completed") {
  CHECK(parse_root_description("").services.empty());
  CHECK(parse_root_description(std::string(4096, '<')).services.empty());
  const char garbage[] = "\x00\x1f<<s:Envelope <<\xff\xfe garbled \x00 >>\r\n";
  CHECK(parse_root_description(std::string_view(garbage, sizeof garbage - 1)).services.empty());
  CHECK(parse_root_description("<root><service><serviceType>a</serviceType>").services.empty());
  const auto whole = igd({service(kIp1, "/a"), service(kPpp1, "/b")});
  const auto cut = parse_root_description(std::string_view(whole).substr(0, whole.find("/b")));
  CHECK(cut.services.size() == 2);  // WANCommonInterfaceConfig and WANIPConnection
  // Values past a kilobyte are no type or URL: left empty.
  const auto overlong = parse_root_description(service(kIp1, "/" + std::string(2000, 'x')));
  REQUIRE(overlong.services.size() == 1);
  CHECK(overlong.services[0].control_url.empty());
  // Services are bounded.
  std::string many;
  for (int i = 0; i < 100; ++i) many += service(kIp1, "/c" + std::to_string(i));
  CHECK(parse_root_description(many).services.size() == kMaxDescribedServices);
}

TEST_CASE("the WAN connection services: the UPnP Forum's and TR-064's, of any version, and nothing more") {
  const std::string kEvents = "http://10.77.0.1:5000/evt";
  for (const auto& type : {kIp1, kIp2, kPpp1, kTr064Ip, kTr064Ppp}) CHECK(is_wan_connection_service(type));
  for (const auto type : {"urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1",
                          "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1",
                          "urn:dslforum-org:service:WANCommonInterfaceConfig:1",
                          "urn:schemas-upnp-org:service:Layer3Forwarding:1", "WANIPConnection:1",
                          "urn:schemas-upnp-org:device:WANConnectionDevice:1", ""})
    CHECK_FALSE(is_wan_connection_service(type));
  // The type goes into the SOAPAction header: nothing may follow its version.
  for (const auto type : {"urn:schemas-upnp-org:service:WANIPConnection:", "urn:schemas-upnp-org:service:WANIPConnection:1x",
                          "urn:schemas-upnp-org:service:WANIPConnection:1\r\nX-Injected: 1",
                          "urn:dslforum-org:service:WANPPPConnection:1 ", "urn:schemas-upnp-org:service:WANIPConnection:1234"})
    CHECK_FALSE(is_wan_connection_service(type));

  const auto services = connection_services(
      parse_root_description(igd({service(kPpp1, "/ctl/PPP"), service(kIp2, "/ctl/IP2"),
                                  service(kTr064Ip, "/upnp/control/wanipconnection1")})),
      kLocation);
  REQUIRE(services.size() == 3);
  CHECK(services[0] == IgdDescription{kLocation, kPpp1, "http://10.77.0.1:5000/ctl/PPP", 1, kEvents});
  CHECK(services[1] == IgdDescription{kLocation, kIp2, "http://10.77.0.1:5000/ctl/IP2", 2, kEvents});
  // TR-064 has no AddAnyPortMapping.
  CHECK(services[2] == IgdDescription{kLocation, kTr064Ip, "http://10.77.0.1:5000/upnp/control/wanipconnection1", 1, kEvents});
}

TEST_CASE("control URLs: relative ones from the root of URLBase or the location, only on the location's host") {
  auto urls = [](const std::string& control_url, const std::string& url_base = "") {
    return control_urls(connection_services(parse_root_description(igd({service(kIp1, control_url)}, url_base)),
                                            "http://10.77.0.1:5000/desc/igd.xml"));
  };
  using List = std::vector<std::string>;
  CHECK(urls("/ctl/IPConn") == List{"http://10.77.0.1:5000/ctl/IPConn"});
  CHECK(urls("ctl/IPConn") == List{"http://10.77.0.1:5000/ctl/IPConn"});
  CHECK(urls("HTTP://10.77.0.1:49000/ctl") == List{"HTTP://10.77.0.1:49000/ctl"});
  CHECK(urls("/ctl", "http://10.77.0.1:49000/igd/") == List{"http://10.77.0.1:49000/ctl"});
  CHECK(urls("/ctl", "not a url") == List{"http://10.77.0.1:5000/ctl"});
  CHECK(urls("/ctl", "http://10.77.0.66:80/").empty());
  CHECK(urls("http://169.254.169.254/ctl").empty());
  CHECK(urls("https://10.77.0.1/ctl").empty());
  CHECK(urls("").empty());
  CHECK(urls("/ctl with space").empty());
  CHECK(connection_services(parse_root_description(igd({service(kIp1, "/ctl")})), "not a url").empty());

  std::vector<std::string> many;
  for (int i = 0; i < 20; ++i) many.push_back(service(kPpp1, "/ctl/" + std::to_string(i)));
  CHECK(connection_services(parse_root_description(igd(many)), kLocation).size() == kMaxConnectionServices);
}

TEST_CASE("a device's connections rank Connected first, then with an external address, then as listed") {
  const ConnectionState connected{"Connected", "203.0.113.1"}, disconnected{"Disconnected", ""};
  const ConnectionState no_address{"Connected", "0.0.0.0"}, unknown{"", "198.51.100.7"}, silent{"", ""};
  // 203.0.113.1 is reserved to libminiupnpc, not to natkeeper; 10.x behind a carrier NAT too.
  CHECK(is_usable_connection(connected));
  CHECK(is_usable_connection({"connected", "10.0.0.7"}));
  CHECK_FALSE(is_usable_connection(no_address));
  CHECK_FALSE(is_usable_connection(disconnected));
  CHECK_FALSE(is_usable_connection(unknown));
  CHECK_FALSE(is_usable_connection({"Connected", "not an address"}));

  using States = std::vector<ConnectionState>;
  CHECK(best_connection(States{disconnected, connected}) == 1);
  CHECK(best_connection(States{connected, disconnected}) == 0);
  CHECK(best_connection(States{no_address, connected}) == 1);
  CHECK(best_connection(States{unknown, no_address}) == 1);
  CHECK(best_connection(States{disconnected, unknown}) == 1);
  CHECK(best_connection(States{silent, disconnected}) == 0);
  CHECK(best_connection(States{disconnected}) == 0);
}

TEST_CASE("event URLs: like control URLs, and dropped when on another host") {
  auto event_url = [](const std::string& events) {
    const auto described = "<service><serviceType>" + std::string(kIp1) + "</serviceType><controlURL>/ctl</controlURL>" +
                           events + "</service>";
    const auto services = connection_services(parse_root_description(igd({described})), kLocation);
    REQUIRE(services.size() == 1);
    return services[0].event_url;
  };
  CHECK(event_url("<eventSubURL>/evt/IPConn</eventSubURL>") == "http://10.77.0.1:5000/evt/IPConn");
  CHECK(event_url("<eventSubURL>evt</eventSubURL>") == "http://10.77.0.1:5000/evt");
  CHECK(event_url("<eventSubURL>http://10.77.0.1:5000/e</eventSubURL>") == "http://10.77.0.1:5000/e");
  CHECK(event_url("<eventSubURL>http://192.0.2.9:80/e</eventSubURL>").empty());
  CHECK(event_url("").empty());
}
