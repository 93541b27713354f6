#include "mappers/upnp/ssdp.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "mappers/upnp/ascii.hpp"

namespace natkeeper::upnp {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string make_multicast_search(std::string_view search_target, int mx_seconds) {
  return fmt::format(
      "M-SEARCH * HTTP/1.1\r\nHOST: {}:{}\r\nMAN: \"ssdp:discover\"\r\nMX: {}\r\nST: {}\r\n\r\n",
      kSsdpMulticastAddress, kSsdpPort, mx_seconds, search_target);
}

std::string make_unicast_search(std::string_view search_target, std::string_view host_and_port) {
  return fmt::format("M-SEARCH * HTTP/1.1\r\nHOST: {}\r\nMAN: \"ssdp:discover\"\r\nST: {}\r\n\r\n",
                     host_and_port, search_target);
}

namespace {

// Walks an SSDP datagram: `accept_start_line` judges the first line, then
// `header(name, value)` sees each header until the blank line. An error when
// the datagram is too large or its start line is missing or not accepted.
template <class AcceptStartLine, class OnHeader>
std::optional<SsdpError> walk_ssdp_message(std::string_view datagram, AcceptStartLine accept_start_line,
                                           OnHeader header) {
  if (datagram.size() > kMaxSsdpDatagram) return SsdpError::too_long;
  bool first_line = true;
  while (!datagram.empty()) {
    const auto eol = datagram.find('\n');
    const auto line = trim(datagram.substr(0, eol));
    datagram.remove_prefix(eol == std::string_view::npos ? datagram.size() : eol + 1);
    if (first_line) {
      if (!accept_start_line(line)) return SsdpError::wrong_start_line;
      first_line = false;
      continue;
    }
    if (line.empty()) break;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    header(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
  }
  if (first_line) return SsdpError::wrong_start_line;
  return std::nullopt;
}

}  // namespace

SsdpResult<SearchResponse> parse_search_response(std::string_view datagram) {
  SearchResponse response;
  // "HTTP/1.1 200 OK" (some devices send HTTP/1.0)
  auto is_ok_status = [](std::string_view line) {
    return starts_with_ci(line, "HTTP/1.") && line.size() >= 12 && line.substr(8, 4) == " 200";
  };
  auto take = [&](std::string_view name, std::string_view value) {
    if (iequals(name, "LOCATION")) response.location = value;
    else if (iequals(name, "ST")) response.search_target = value;
    else if (iequals(name, "USN")) response.usn = value;
  };
  if (const auto error = walk_ssdp_message(datagram, is_ok_status, take)) return *error;
  if (response.location.empty() || response.search_target.empty()) return SsdpError::missing_header;
  return response;
}

SsdpResult<Notify> parse_notify(std::string_view datagram) {
  Notify notify;
  std::string_view nts;
  auto is_notify = [](std::string_view line) { return starts_with_ci(line, "NOTIFY * HTTP/1."); };
  auto take = [&](std::string_view name, std::string_view value) {
    if (iequals(name, "NT")) notify.notification_type = value;
    else if (iequals(name, "NTS")) nts = value;
    else if (iequals(name, "LOCATION")) notify.location = value;
    else if (iequals(name, "USN")) notify.usn = value;
    else if (iequals(name, "BOOTID.UPNP.ORG")) {
      std::uint32_t boot_id = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), boot_id);
      if (ec == std::errc{} && end == value.data() + value.size()) notify.boot_id = boot_id;
    }
  };
  if (const auto error = walk_ssdp_message(datagram, is_notify, take)) return *error;
  if (notify.notification_type.empty()) return SsdpError::missing_header;
  if (iequals(nts, "ssdp:alive")) notify.kind = Notify::Kind::alive;
  else if (iequals(nts, "ssdp:byebye")) notify.kind = Notify::Kind::byebye;
  else if (iequals(nts, "ssdp:update")) notify.kind = Notify::Kind::update;
  else return SsdpError::unknown_notification_subtype;
  // An alive notice must say where the description is (UDA 1.1 §1.2.2).
  if (notify.kind != Notify::Kind::byebye && notify.location.empty()) return SsdpError::missing_header;
  return notify;
}

bool is_igd_search_target(std::string_view st) {
  return std::find(kIgdSearchTargets.begin(), kIgdSearchTargets.end(), st) != kIgdSearchTargets.end();
}

}  // namespace natkeeper::upnp
