#include "mappers/upnp/igd_description.hpp"

#include <boost/asio/ip/address_v4.hpp>

#include <algorithm>
#include <charconv>
#include <optional>
#include <tuple>
#include <utility>

#include "mappers/upnp/ascii.hpp"
#include "mappers/upnp/http_url.hpp"
#include "mappers/upnp/xml_walk.hpp"

namespace natkeeper::upnp {
namespace {

// Longer values are no service type or URL natkeeper could use.
constexpr std::size_t kMaxValue = 1024;

// Keeps the <service> elements' type, control and event URLs, and URLBase, out of
// what walk_xml meets.
class DescriptionReader final : public XmlVisitor {
 public:
  void start(std::string_view name) override {
    clear_text();
    if (name == "service") service_.emplace();
  }
  void end(std::string_view name) override {
    const auto value = overlong_ ? std::string() : xml_value(text_);
    clear_text();
    if (name == "service") {
      if (service_ && description_.services.size() < kMaxDescribedServices)
        description_.services.push_back(std::move(*service_));
      service_.reset();
    } else if (service_ && name == "serviceType") {
      service_->service_type = value;
    } else if (service_ && name == "controlURL") {
      service_->control_url = value;
    } else if (service_ && name == "eventSubURL") {
      service_->event_url = value;
    } else if (name == "URLBase") {
      description_.url_base = value;
    }
  }
  void text(std::string_view text) override {
    if (text_.size() + text.size() > kMaxValue) overlong_ = true;
    else text_ += text;
  }
  RootDescription take() { return std::move(description_); }

 private:
  void clear_text() {
    text_.clear();
    overlong_ = false;
  }

  RootDescription description_;
  std::optional<DescribedService> service_;  // inside a <service>
  std::string text_;                          // since the last tag
  bool overlong_ = false;
};

// "http://host:port" of `url`, or nullopt.
std::optional<std::string> origin_of(std::string_view url) {
  const auto parsed = parse_http_url(url);
  if (!parsed) return std::nullopt;
  return "http://" + parsed->host + ":" + std::to_string(parsed->port);
}

std::optional<std::string> absolute_url(std::string_view url, std::string_view base) {
  if (url.empty()) return std::nullopt;
  if (starts_with_ci(url, "http://")) return std::string(url);
  if (url.find("://") != std::string_view::npos) return std::nullopt;  // another scheme
  auto origin = origin_of(base);
  if (!origin) return std::nullopt;
  if (!url.starts_with('/')) *origin += '/';
  return *origin + std::string(url);
}

// urn:DOMAIN:service:NAME followed by its version, one to three digits and
// nothing else: the type goes into the SOAPAction header as it is.
bool is_service(std::string_view type, std::string_view domain, std::string_view name) {
  const auto prefix = "urn:" + std::string(domain) + ":service:" + std::string(name);
  if (!type.starts_with(prefix)) return false;
  const auto version = type.substr(prefix.size());
  return !version.empty() && version.size() <= 3 &&
         std::all_of(version.begin(), version.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_schemas_service(std::string_view type, std::string_view name) {
  return is_service(type, "schemas-upnp-org", name);
}

// 2 for the UPnP Forum's WANIPConnection:2 and later, 1 otherwise.
int version_of(std::string_view type) {
  if (!is_schemas_service(type, "WANIPConnection:")) return 1;
  const auto number = type.substr(type.rfind(':') + 1);
  int version = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), version);
  return ec == std::errc{} && end == number.data() + number.size() && version >= 2 ? 2 : 1;
}

}  // namespace

RootDescription parse_root_description(std::string_view xml) {
  DescriptionReader reader;
  walk_xml(xml, reader);
  return reader.take();
}

bool is_wan_connection_service(std::string_view service_type) {
  for (const auto name : {std::string_view{"WANIPConnection:"}, std::string_view{"WANPPPConnection:"}}) {
    if (is_schemas_service(service_type, name) || is_service(service_type, "dslforum-org", name)) return true;
  }
  return false;
}

std::vector<IgdDescription> connection_services(const RootDescription& description, const std::string& location) {
  std::vector<IgdDescription> found;
  const auto where = parse_http_url(location);
  if (!where) return found;
  // A URLBase natkeeper cannot read is left aside, as if there were none.
  const std::string_view base =
      parse_http_url(description.url_base) ? std::string_view(description.url_base) : location;
  for (const auto& service : description.services) {
    if (found.size() == kMaxConnectionServices) break;
    if (!is_wan_connection_service(service.service_type)) continue;
    auto control_url = absolute_url(service.control_url, base);
    if (!control_url) continue;
    const auto control = parse_http_url(*control_url);
    if (!control || control->host != where->host) continue;
    auto event_url = absolute_url(service.event_url, base);
    if (event_url) {
      const auto events = parse_http_url(*event_url);
      if (!events || events->host != where->host) event_url.reset();
    }
    found.push_back({location, service.service_type, std::move(*control_url), version_of(service.service_type),
                     event_url.value_or(std::string())});
  }
  return found;
}

namespace {

bool is_connected(const ConnectionState& state) { return iequals(state.status, "Connected"); }

bool has_external_address(const ConnectionState& state) {
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address_v4(state.external_ip, ec);
  return !ec && !address.is_unspecified();
}

}  // namespace

bool is_usable_connection(const ConnectionState& state) {
  return is_connected(state) && has_external_address(state);
}

std::size_t best_connection(std::span<const ConnectionState> states) {
  auto rank = [](const ConnectionState& state) { return std::tuple(is_connected(state), has_external_address(state)); };
  // max_element keeps the first of equals: document order breaks ties.
  const auto best = std::max_element(states.begin(), states.end(),
                                     [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  return static_cast<std::size_t>(best - states.begin());
}

}  // namespace natkeeper::upnp
