#pragma once
#include <boost/asio/awaitable.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mappers/timebase.hpp"
#include "agent/gateway/request_window.hpp"
#include "mappers/mapper.hpp"

namespace natkeeper {

struct MapOutcome {
  MapRequest request;
  std::optional<Mapping> mapping;  // set on success
  std::error_code error;           // set on failure
};

struct BatchPolicy {
  WindowSettings window;
  // A mapping granted on another external port than the wanted one is kept
  // only when this is set; otherwise it is removed again and reported as a
  // conflict (the device behind it would not know the other port).
  bool allow_other_external_port = false;
  // Called after each request with how many are done, of how many.
  std::function<void(std::size_t done, std::size_t total)> on_progress;
  // Times each answer for the request window.
  const Timebase* time = &system_timebase();
  // Called with the request's index as soon as a mapping is granted and kept,
  // so that proving it need not wait for the whole batch. A batch the gateway
  // makes again (map_all_until_stable) calls it again.
  std::function<void(std::size_t index, const Mapping& mapping)> on_granted = {};
  // Called with the request's index just before it is sent: from then on the
  // gateway may grant it, whether or not an answer ever arrives.
  std::function<void(std::size_t index)> on_sent = {};
};

// Maps every request in request order (so the most important ports go first),
// with as many in flight as a RequestWindow allows. Once the gateway reports
// its table full, the rest are not attempted: asking again would only repeat
// the refusal.
asio::awaitable<std::vector<MapOutcome>> map_all(Mapper& mapper, std::vector<MapRequest> requests,
                                                 BatchPolicy policy);

// "mapped 40 of 200: gateway table full" when the gateway refused mappings
// because its table is full; nullopt otherwise.
std::optional<std::string> table_full_summary(const std::vector<MapOutcome>& outcomes);
// The same for `mapped` of `asked` requests, once the gateway reported its table full.
std::string table_full_message(std::size_t mapped, std::size_t asked);

// map_all, and once more when the gateway lost its state meanwhile (its epoch
// went back): what was mapped before the loss is gone. Bounded: a gateway that
// keeps losing its state gets `max_rounds` rounds.
asio::awaitable<std::vector<MapOutcome>> map_all_until_stable(Mapper& mapper, std::vector<MapRequest> requests,
                                                              BatchPolicy policy, int max_rounds = 3);

// Removes the mappings, at most `parallel` at a time; returns one error per
// mapping. `on_removed` is called with each one's index as the gateway confirms
// it, so a caller cut short by a deadline still knows which ones are gone.
asio::awaitable<std::vector<std::error_code>> unmap_all(Mapper& mapper, std::vector<Mapping> mappings,
                                                        std::size_t parallel,
                                                        std::function<void(std::size_t index)> on_removed = {});

}  // namespace natkeeper
