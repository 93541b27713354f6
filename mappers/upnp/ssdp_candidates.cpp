#include "mappers/upnp/ssdp_candidates.hpp"

#include <algorithm>
#include <tuple>

namespace natkeeper::upnp {
namespace {

using boost::asio::ip::address_v4;

bool in_network(const address_v4& a, const address_v4& b, const address_v4& mask) {
  return (a.to_uint() & mask.to_uint()) == (b.to_uint() & mask.to_uint());
}

bool is_version_2(std::string_view search_target) {
  return search_target == kIgdV2 || search_target == kWanIpConnectionV2;
}

}  // namespace

bool location_is_acceptable(const HttpUrl& url, const address_v4& responder, const address_v4& local_address,
                            const address_v4& netmask) {
  boost::system::error_code ec;
  const auto host = boost::asio::ip::make_address_v4(url.host, ec);
  if (ec || host != responder) return false;
  if (host.is_loopback() || host.is_multicast() || host.is_unspecified() || host == local_address)
    return false;
  if (in_network(host, address_v4({169, 254, 0, 0}), address_v4({255, 255, 0, 0}))) return false;
  return in_network(host, local_address, netmask);
}

SsdpCandidates::SsdpCandidates(address_v4 local_address, address_v4 netmask, address_v4 gateway)
    : local_address_(local_address), netmask_(netmask), gateway_(gateway) {}

bool SsdpCandidates::add(std::string_view datagram, const address_v4& responder, SearchKind search,
                         Duration elapsed) {
  auto response = parse_search_response(datagram);
  if (!response || !is_igd_search_target(response->search_target)) return false;
  const auto url = parse_http_url(response->location);
  if (!url || !location_is_acceptable(*url, responder, local_address_, netmask_)) return false;

  const auto kept = std::find_if(candidates_.begin(), candidates_.end(), [&](const Candidate& c) {
    return c.answer.responder == responder && c.answer.response.location == response->location;
  });
  if (kept != candidates_.end()) {
    if (!kept->handed_out) {
      if (search == SearchKind::unicast_to_gateway) kept->answer.search = search;
      if (is_version_2(response->search_target)) kept->answer.response = std::move(*response);
    }
    return false;
  }
  if (!within_bounds(responder, search)) return false;
  candidates_.push_back({SsdpAnswer{std::move(*response), responder, search, elapsed}, candidates_.size(), false});
  return true;
}

bool SsdpCandidates::within_bounds(const address_v4& responder, SearchKind search) const {
  if (responder == gateway_) {
    std::size_t kept = 0, waiting = 0;
    for (const auto& c : candidates_) {
      if (c.answer.responder != gateway_ || c.answer.search != search) continue;
      ++kept;
      if (!c.handed_out) ++waiting;
    }
    return kept < kMaxGatewayLocations && waiting < kMaxWaitingGatewayLocations;
  }
  // One candidate per other device, so candidates count devices.
  const auto others = std::count_if(candidates_.begin(), candidates_.end(), [&](const Candidate& c) {
    return c.answer.responder != gateway_;
  });
  const bool known = std::any_of(candidates_.begin(), candidates_.end(),
                                 [&](const Candidate& c) { return c.answer.responder == responder; });
  return !known && static_cast<std::size_t>(others) < kMaxOtherDevices;
}

bool SsdpCandidates::ranks_before(const Candidate& a, const Candidate& b) const {
  auto rank = [&](const Candidate& c) {
    return std::tuple(c.answer.responder != gateway_, c.answer.search != SearchKind::unicast_to_gateway,
                      !is_version_2(c.answer.response.search_target), c.arrival);
  };
  return rank(a) < rank(b);
}

std::optional<SsdpAnswer> SsdpCandidates::take(Duration elapsed) {
  auto best = candidates_.end();
  for (auto it = candidates_.begin(); it != candidates_.end(); ++it) {
    if (!it->handed_out && (best == candidates_.end() || ranks_before(*it, *best))) best = it;
  }
  if (best == candidates_.end()) return std::nullopt;
  // The gateway's answer to the unicast search outranks every other: when it
  // is not the best, it has not come yet.
  const bool unicast_answer = best->answer.responder == gateway_ && best->answer.search == SearchKind::unicast_to_gateway;
  if (!unicast_answer && elapsed < kUnicastAnswerWait) return std::nullopt;
  best->handed_out = true;
  return best->answer;
}

bool SsdpCandidates::has_pending() const {
  return std::any_of(candidates_.begin(), candidates_.end(), [](const Candidate& c) { return !c.handed_out; });
}

}  // namespace natkeeper::upnp
