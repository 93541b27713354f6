#include "agent/gateway/recorded_mappings.hpp"

#include <algorithm>
#include <chrono>

#include "agent/base/log.hpp"
#include "agent/gateway/map_batch.hpp"

namespace natkeeper {

state::ServiceState recorded_situation(const Connection& connection) {
  return {connection.path.gateway.to_string(), std::string(to_string(connection.protocol.method)),
          connection.path.local.address.to_string(), {}};
}

state::LiveMapping live_mapping(const Mapping& mapping, bool confirmed, std::chrono::system_clock::time_point now) {
  const auto expiry = std::chrono::duration_cast<std::chrono::seconds>((now + mapping.lifetime).time_since_epoch());
  const auto& request = mapping.request;
  return {request.proto, request.internal_port, mapping.external_port,
          mapping.external_ip.is_unspecified() ? std::string() : mapping.external_ip.to_string(),
          mapping.permanent, mapping.permanent ? 0 : expiry.count(),
          for_other_device(request) ? request.internal_client->to_string() : std::string(),
          request.device.substr(0, state::kMaxDeviceNameBytes), confirmed};
}

state::ServiceState record_mappings(const Connection& connection, const std::vector<Mapping>& mappings,
                                    const std::vector<Mapping>& unconfirmed) {
  auto recorded = recorded_situation(connection);
  const auto now = std::chrono::system_clock::now();
  recorded.mappings.reserve(mappings.size() + unconfirmed.size());
  for (const auto& mapping : mappings) recorded.mappings.push_back(live_mapping(mapping, true, now));
  for (const auto& mapping : unconfirmed) recorded.mappings.push_back(live_mapping(mapping, false, now));
  return recorded;
}

std::vector<Mapping> recorded_mappings(const state::ServiceState& state) {
  std::vector<Mapping> mappings;
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::system_clock::now().time_since_epoch()).count();
  for (const auto& live : state.mappings) {
    Mapping mapping;
    mapping.request = {live.proto, live.internal_port, live.external_port, {}, {}, {}, live.device};
    boost::system::error_code ignored;
    if (!live.internal_client.empty()) mapping.request.internal_client = asio::ip::make_address(live.internal_client, ignored);
    if (!live.external_ip.empty()) mapping.external_ip = asio::ip::make_address(live.external_ip, ignored);
    mapping.external_port = live.external_port;
    mapping.permanent = live.permanent;
    if (!live.permanent) mapping.lifetime = std::chrono::seconds(std::max<std::int64_t>(live.expires_unix - now, 0));
    mappings.push_back(std::move(mapping));
  }
  return mappings;
}

bool recorded_through(const state::ServiceState& state, const Connection& connection) {
  return state.gateway == connection.path.gateway.to_string() &&
         state.method == to_string(connection.protocol.method) &&
         state.local_address == connection.path.local.address.to_string();
}

asio::awaitable<std::vector<Mapping>> remove_recorded(const state::ServiceState& state, const config::Config& config) {
  auto mappings = recorded_mappings(state);
  if (mappings.empty()) co_return mappings;
  auto there = config;
  boost::system::error_code bad_address;
  there.gateway = asio::ip::make_address_v4(state.gateway, bad_address);
  there.igd_url.clear();
  there.protocol = config::parse_protocol_choice(state.method).value_or(config::ProtocolChoice::automatic);
  if (bad_address) co_return mappings;
  log::notice("removing {} mappings an earlier run made via {} at {}", mappings.size(), state.method, state.gateway);
  auto connection = co_await connect(there);
  if (!connection) {
    log::warning("cannot reach {} via {} to remove {} earlier mappings; they expire with their leases", state.gateway,
                 state.method, mappings.size());
    co_return mappings;
  }
  const auto errors =
      co_await unmap_all(*connection->protocol.mapper, mappings, parallel_requests(connection->protocol.method));
  std::vector<Mapping> left;
  for (std::size_t i = 0; i < errors.size(); ++i)
    if (errors[i]) left.push_back(std::move(mappings[i]));
  co_return left;
}

}  // namespace natkeeper
