#include "agent/gateway/map_batch.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <set>
#include <utility>

#include "agent/base/bounded_concurrency.hpp"
#include "agent/base/log.hpp"
#include "mappers/errors.hpp"

namespace natkeeper {
namespace {

// Where the mapper reads back in batches (UPnP with GetListOfPortMappings):
// what the gateway granted in `outcomes` and does not hold is a failure, and
// the leases it holds are those renewals count on. A gateway that cannot
// show them leaves its word standing.
asio::awaitable<void> read_back_grants(Mapper& mapper, std::vector<MapOutcome>& outcomes) {
  std::vector<std::size_t> granted;
  std::vector<Mapping> mappings;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    if (!outcomes[i].mapping) continue;
    granted.push_back(i);
    mappings.push_back(*outcomes[i].mapping);
  }
  if (granted.empty()) co_return;
  const auto held = co_await mapper.read_back(std::move(mappings));
  if (!held) {
    log::info("could not read back the {} mappings granted: {}", granted.size(), held.error().message());
    co_return;
  }
  for (std::size_t k = 0; k < granted.size(); ++k) {
    auto& outcome = outcomes[granted[k]];
    if (const auto& lease = (*held)[k]) {
      outcome.mapping->lifetime = lease->lifetime;
      outcome.mapping->permanent = lease->permanent;
    } else {
      outcome.mapping.reset();
      outcome.error = make_error_code(Errc::added_but_not_held);
    }
  }
}

}  // namespace

asio::awaitable<std::vector<MapOutcome>> map_all(Mapper& mapper, std::vector<MapRequest> requests,
                                                 BatchPolicy policy) {
  std::vector<MapOutcome> outcomes(requests.size());
  bool table_full = false;
  // Mappings granted on another port than wanted, to be removed once no
  // request of the batch is in flight: removing one meanwhile could remove
  // what a request for that port has just been granted (UPnP deletes by port).
  std::vector<Mapping> moved;
  // Their external ports: a request refused meanwhile because of one of them
  // deserves another try, and one granted there is asked again, as the
  // gateway may have let the moved mapping overwrite it (miniupnpd updates a
  // port its client holds in place) before the removal took it away; or
  // before the mapper read it back (UPnP), which then found it not held.
  std::set<std::pair<Transport, std::uint16_t>> briefly_held;
  auto remove_moved = [&]() -> asio::awaitable<void> {
    for (auto& mapping : std::exchange(moved, {})) co_await mapper.unmap(std::move(mapping));
  };
  RequestWindow window(policy.window);
  std::size_t done = 0;
  auto count_done = [&] {
    if (policy.on_progress) policy.on_progress(++done, requests.size());
  };
  auto map_one = [&](std::size_t i) -> asio::awaitable<void> {
    auto& outcome = outcomes[i];
    outcome.request = requests[i];
    if (table_full) {
      outcome.error = make_error_code(Errc::table_full_skipped);
      count_done();
      co_return;
    }
    if (policy.on_sent) policy.on_sent(i);
    const auto sent = policy.time->now();
    auto mapping = co_await mapper.map(requests[i]);
    if (!mapping && mapping.error() == Errc::timed_out)
      window.on_timeout();
    else
      window.on_answer(policy.time->now() - sent);
    if (mapping && mapping->external_port != requests[i].wanted_external_port &&
        !policy.allow_other_external_port) {
      briefly_held.emplace(requests[i].proto, mapping->external_port);
      moved.push_back(std::move(*mapping));
      outcome.error = make_error_code(Errc::external_port_moved);
    } else if (mapping) {
      outcome.mapping = std::move(*mapping);
      if (policy.on_granted) policy.on_granted(i, *outcome.mapping);
    } else {
      outcome.error = mapping.error();
      if (outcome.error == MapFailure::table_full) table_full = true;
    }
    count_done();
  };
  std::function<std::size_t()> window_size = [&window] { return window.size(); };
  co_await for_each_windowed(requests.size(), policy.window.maximum, window_size, map_one);
  co_await remove_moved();
  // One at a time now, so no other request of the batch can be in the way.
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const auto& request = requests[i];
    const bool refused_or_granted = outcomes[i].error == Errc::external_port_moved ||
                                    outcomes[i].error == Errc::added_but_not_held || outcomes[i].mapping;
    if (!refused_or_granted || !briefly_held.count({request.proto, request.wanted_external_port})) continue;
    outcomes[i] = {};
    --done;
    co_await map_one(i);
    co_await remove_moved();
  }
  if (mapper.reads_back_later()) co_await read_back_grants(mapper, outcomes);
  co_return outcomes;
}

std::optional<std::string> table_full_summary(const std::vector<MapOutcome>& outcomes) {
  const auto full = std::any_of(outcomes.begin(), outcomes.end(),
                                [](const MapOutcome& o) { return o.error == MapFailure::table_full; });
  if (!full) return std::nullopt;
  const auto mapped = std::count_if(outcomes.begin(), outcomes.end(), [](const MapOutcome& o) { return o.mapping.has_value(); });
  return table_full_message(static_cast<std::size_t>(mapped), outcomes.size());
}

std::string table_full_message(std::size_t mapped, std::size_t asked) {
  return fmt::format("mapped {} of {}: gateway table full", mapped, asked);
}

asio::awaitable<std::vector<MapOutcome>> map_all_until_stable(Mapper& mapper, std::vector<MapRequest> requests,
                                                              BatchPolicy policy, int max_rounds) {
  mapper.take_gateway_lost_state();  // a loss before this batch concerns no mapping of it
  auto outcomes = co_await map_all(mapper, requests, policy);
  for (int round = 1; round < max_rounds && mapper.take_gateway_lost_state(); ++round) {
    log::notice("the gateway lost its mappings (its epoch went back): mapping again");
    outcomes = co_await map_all(mapper, requests, policy);
  }
  co_return outcomes;
}

asio::awaitable<std::vector<std::error_code>> unmap_all(Mapper& mapper, std::vector<Mapping> mappings,
                                                        std::size_t parallel,
                                                        std::function<void(std::size_t index)> on_removed) {
  std::vector<std::error_code> errors(mappings.size());
  auto unmap_one = [&](std::size_t i) -> asio::awaitable<void> {
    errors[i] = co_await mapper.unmap(mappings[i]);
    if (!errors[i] && on_removed) on_removed(i);
  };
  co_await for_each_bounded(mappings.size(), parallel, unmap_one);
  co_return errors;
}

}  // namespace natkeeper
