#pragma once
// Between the service's live mappings and its state file: what is recorded,
// and how recorded mappings are removed when the situation that made them
// (gateway, protocol, this host's address) is gone.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <vector>

#include "agent/codecs/state_codec.hpp"
#include "agent/gateway/connection.hpp"

namespace natkeeper {

// The state of `connection` (gateway, method, this host's address) without mappings.
state::ServiceState recorded_situation(const Connection& connection);
// How the state file records `mapping`, with its expiry counted from `now`;
// `confirmed` false: requested or being removed, not confirmed by the gateway.
state::LiveMapping live_mapping(const Mapping& mapping, bool confirmed, std::chrono::system_clock::time_point now);
// `unconfirmed`: requested or being removed, not confirmed by the gateway;
// recorded all the same, as the gateway may hold them.
state::ServiceState record_mappings(const Connection& connection, const std::vector<Mapping>& mappings,
                                    const std::vector<Mapping>& unconfirmed = {});
// Each with the lifetime its lease has left now (zero once it has ended).
std::vector<Mapping> recorded_mappings(const state::ServiceState& state);

// Were the recorded mappings made through this gateway, protocol and local address?
bool recorded_through(const state::ServiceState& state, const Connection& connection);

// Removes recorded mappings through the protocol they were made with, at the
// gateway they were made on (found again for this alone). Returns those that
// could not be removed.
asio::awaitable<std::vector<Mapping>> remove_recorded(const state::ServiceState& state, const config::Config& config);

}  // namespace natkeeper
