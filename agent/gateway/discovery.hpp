#pragma once
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/gateway/netinfo.hpp"
#include "config/config.hpp"
#include "mappers/mapper.hpp"
#include "mappers/upnp/ssdp_candidates.hpp"

namespace natkeeper {

struct GatewayPath {
  asio::ip::address_v4 gateway;
  LocalInterface local;
};

// Where the gateway is and which address this host has towards it: the
// configured gateway, the --igd URL's host, or the default route's gateway.
Result<GatewayPath> locate_gateway(const config::Config& config);

// A protocol the gateway answered, ready to map with.
struct FoundProtocol {
  Method method = Method::upnp;
  std::unique_ptr<Mapper> mapper;
  std::string detail;  // e.g. "IGDv2 at http://10.77.0.1:5000/rootDesc.xml"
  std::chrono::steady_clock::duration answer_time{};  // from the start of discovery
  // Known at discovery for NAT-PMP and UPnP; for PCP only when asked for.
  std::optional<Result<asio::ip::address>> external_ip;
  // UPnP: where the WAN connection service's events are subscribed to
  // (absolute); empty without eventing, and for NAT-PMP and PCP.
  std::string event_url;
};

struct ProtocolFailure {
  Method method;
  std::error_code error;
};

struct Discovery {
  std::vector<FoundProtocol> found;  // most preferred first
  std::vector<ProtocolFailure> failed;
};

enum class DiscoveryGoal {
  // Stop at the first answer that no more preferred protocol can beat within
  // a short grace window (--once, the service).
  map_soon,
  // Wait for every protocol and learn each one's external address (--discover).
  list_all,
};

// The protocols `auto` probes, most preferred first: PCP, NAT-PMP, UPnP-IGD;
// UPnP-IGD before NAT-PMP where a device is planned.
std::vector<Method> preference_order(const config::Config& config);

// The gateway's IGD, from SSDP answers handed out best first (see
// upnp::SsdpCandidates): each of the gateway's LOCATIONs is opened in turn
// until one opens and its control URL answers. Other devices' answers are only
// logged. An IGD whose control URL does not answer is taken only when no other
// LOCATION opens.
using NextSsdpAnswer = std::function<asio::awaitable<std::optional<upnp::SsdpAnswer>>()>;
using OpenIgd = std::function<asio::awaitable<Result<FoundProtocol>>(const std::string& location)>;
asio::awaitable<Result<FoundProtocol>> open_gateway_igd(const asio::ip::address_v4& gateway,
                                                        const NextSsdpAnswer& next, const OpenIgd& open);

// Probes PCP (ANNOUNCE), NAT-PMP (public address) and UPnP-IGD (SSDP) at the
// same time, or only the configured protocol. Probes that lose the race are
// cancelled before this returns.
asio::awaitable<Discovery> discover(const GatewayPath& path, const config::Config& config, DiscoveryGoal goal);

}  // namespace natkeeper
