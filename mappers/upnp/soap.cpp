#include "mappers/upnp/soap.hpp"

#include <miniupnpc/upnpreplyparse.h>
// libminiupnpc is C99, where miniupnpctypes.h makes UNSIGNED_INTEGER unsigned
// long long; C++ has no __STDC_VERSION__, and the header would fall back to
// unsigned int and so misplace every field of struct PortMapping after
// leaseTime. The guard keeps portlistingparse.h from including it again.
#include <miniupnpc/miniupnpctypes.h>
#undef UNSIGNED_INTEGER
#define UNSIGNED_INTEGER unsigned long long
#include <miniupnpc/portlistingparse.h>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

#include "mappers/errors.hpp"
#include "mappers/upnp/xml_text.hpp"

namespace natkeeper::upnp {
namespace {

// libminiupnpc's parsers take an int size, and read nothing of an empty buffer.
bool parseable(std::string_view xml) {
  return !xml.empty() && xml.size() <= static_cast<std::size_t>(std::numeric_limits<int>::max());
}

// What ParseNameValue read, freed on every path.
class NameValues {
 public:
  explicit NameValues(std::string_view xml) { ParseNameValue(xml.data(), static_cast<int>(xml.size()), &data_); }
  ~NameValues() { ClearNameValueList(&data_); }
  NameValues(const NameValues&) = delete;
  NameValues& operator=(const NameValues&) = delete;

  const char* value(std::string_view name) {
    return GetValueFromNameValueList(&data_, std::string(name).c_str());
  }
  // ParseNameValue keeps NewPortListing apart, whole and as sent.
  const char* port_listing() const { return data_.portListing; }

 private:
  NameValueParserData data_{};
};

// Whether `xml` holds an element whose local name (without a namespace
// prefix) is `name`, whole: up to its end tag, or an empty-element tag. An
// answer cut short has no such response element.
bool has_whole_element(std::string_view xml, std::string_view name) {
  bool opened = false;
  for (auto open = xml.find('<'); open != std::string_view::npos; open = xml.find('<', open + 1)) {
    auto tag = xml.substr(open + 1);
    const bool end_tag = tag.starts_with('/');
    if (end_tag) tag.remove_prefix(1);
    // Scans stop at the next '<': each character is looked at a bounded number of times.
    const auto name_end = std::min(tag.find_first_of(" \t\r\n/><"), tag.size());
    auto element = tag.substr(0, name_end);
    if (const auto colon = element.rfind(':'); colon != std::string_view::npos) element.remove_prefix(colon + 1);
    if (element != name) continue;
    if (end_tag) {
      if (opened) return true;
      continue;
    }
    opened = true;
    const auto close = tag.find_first_of("<>", name_end);
    if (close != std::string_view::npos && tag[close] == '>' && tag[close - 1] == '/') return true;
  }
  return false;
}

Result<int> error_code(std::string_view text) {
  text = trim_xml_space(text);
  int code = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), code);
  // UPnP's error codes have three digits (UDA 1.1 section 3.2.2.4).
  if (ec != std::errc{} || end != text.data() + text.size() || code < 100 || code > 999)
    return make_error_code(Errc::bad_reply);
  return code;
}

// What ParsePortListing read, freed on every path.
class PortListing {
 public:
  explicit PortListing(std::string_view xml) { ParsePortListing(xml.data(), static_cast<int>(xml.size()), &data_); }
  ~PortListing() { FreePortListing(&data_); }
  PortListing(const PortListing&) = delete;
  PortListing& operator=(const PortListing&) = delete;

  // In document order (the parser lists them last first).
  std::vector<const PortMapping*> entries() const {
    std::vector<const PortMapping*> found;
    for (const auto* entry = data_.l_head; entry; entry = entry->l_next) found.push_back(entry);
    std::reverse(found.begin(), found.end());
    return found;
  }

 private:
  PortMappingParserData data_{};
};

template <std::size_t N>
std::string field_text(const char (&field)[N]) {
  return decode_xml_text(trim_xml_space(std::string_view(field, strnlen(field, N))));
}

}  // namespace

std::string soap_request_body(std::string_view service_type, std::string_view action,
                              std::span<const SoapArgument> arguments) {
  std::string values;
  for (const auto& [name, value] : arguments) values += fmt::format("<{0}>{1}</{0}>", name, escape_xml_text(value));
  return fmt::format(
      "<?xml version=\"1.0\"?>\r\n"
      "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
      "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>"
      "<u:{0} xmlns:u=\"{1}\">{2}</u:{0}></s:Body></s:Envelope>\r\n",
      action, escape_xml_text(service_type), values);
}

std::string soap_action_header(std::string_view service_type, std::string_view action) {
  return fmt::format("\"{}#{}\"", service_type, action);
}

Result<SoapOutputs> read_soap_answer(std::string_view action, int http_status, std::string_view body,
                                     std::span<const std::string_view> outputs) {
  if (!parseable(body)) return make_error_code(Errc::bad_reply);
  NameValues values(body);
  // A fault (UDA 1.1 section 3.2.2.4), whatever the HTTP status: some gateways send it with 200.
  if (const char* code = values.value("errorCode")) {
    const auto parsed = error_code(code);
    if (!parsed) return parsed.error();
    return make_upnp_error(*parsed);
  }
  if (http_status != 200 || !has_whole_element(body, fmt::format("{}Response", action)))
    return make_error_code(Errc::bad_reply);
  SoapOutputs found;
  for (const auto name : outputs) {
    if (name == "NewPortListing") {
      if (const char* listing = values.port_listing()) found.emplace(name, listing);
    } else if (const char* value = values.value(name)) {
      found.emplace(name, decode_xml_text(trim_xml_space(value)));
    }
  }
  return found;
}

Result<std::vector<ListedPortMapping>> read_port_listing(std::string_view listing, Transport proto,
                                                         std::uint16_t first_port, std::uint16_t last_port,
                                                         std::uint16_t at_most) {
  // Escaped instead of in CDATA, the document has no markup of its own.
  const auto document = listing.find('<') == std::string_view::npos ? decode_xml_text(listing) : std::string(listing);
  std::vector<ListedPortMapping> listed;
  if (!parseable(document)) return listed;
  const PortListing parsed(document);
  const auto entries = parsed.entries();
  for (const auto* entry : entries) {
    if (entry->externalPort == 0 || entry->internalPort == 0) return make_error_code(Errc::bad_reply);
  }
  for (const auto* entry : entries) {
    if (listed.size() >= at_most) break;
    const std::string_view protocol(entry->protocol, strnlen(entry->protocol, sizeof entry->protocol));
    if (protocol != to_upper_string(proto) || entry->externalPort < first_port || entry->externalPort > last_port)
      continue;
    const auto lease = std::min<unsigned long long>(entry->leaseTime, std::numeric_limits<std::uint32_t>::max());
    listed.push_back({proto, entry->externalPort,
                      {field_text(entry->internalClient), entry->internalPort, field_text(entry->description),
                       std::chrono::seconds(lease)}});
  }
  return listed;
}

}  // namespace natkeeper::upnp
