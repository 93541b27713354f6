#pragma once
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "agent/netinfo.hpp"
#include "config/config.hpp"
#include "mappers/mapper.hpp"

namespace natkeeper {

struct GatewayPath {
  asio::ip::address_v4 gateway;
  LocalInterface local;
};

// A protocol the gateway answered, ready to map with.
struct FoundProtocol {
  std::unique_ptr<Mapper> mapper;
  std::string detail;  // e.g. "IGDv2 at http://10.77.0.1:5000/rootDesc.xml"
  std::chrono::steady_clock::duration answer_time{};  // from the start of discovery
  Result<asio::ip::address> external_ip = make_error_code(std::errc::operation_not_permitted);
};

// Where the gateway is and which address this host has towards it: the
// configured gateway, or the default route's.
Result<GatewayPath> locate_gateway(const config::Config& config);

// Finds a UPnP-IGD on the gateway's LAN (SSDP, or the configured description
// URL) and returns its mapper. Blocking libminiupnpc calls run on `workers`.
asio::awaitable<Result<FoundProtocol>> discover_upnp(const GatewayPath& path, const config::Config& config,
                                                     asio::any_io_executor workers);

}  // namespace natkeeper
