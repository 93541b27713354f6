#pragma once
#include <boost/asio/awaitable.hpp>

#include <optional>
#include <vector>

#include "mappers/mapper.hpp"

namespace natkeeper {

struct MapOutcome {
  MapRequest request;
  std::optional<Mapping> mapping;  // set on success
  std::error_code error;           // set on failure
};

// Maps every request, at most `parallel` at a time, in request order (so the
// most important ports go first). Once the gateway reports its table full, the
// rest are not attempted: asking again would only repeat the refusal.
asio::awaitable<std::vector<MapOutcome>> map_all(Mapper& mapper, std::vector<MapRequest> requests,
                                                 std::size_t parallel);

// map_all, and once more when the gateway lost its state meanwhile (its epoch
// went back): what was mapped before the loss is gone. Bounded: a gateway that
// keeps losing its state gets `max_rounds` rounds.
asio::awaitable<std::vector<MapOutcome>> map_all_until_stable(Mapper& mapper, std::vector<MapRequest> requests,
                                                              std::size_t parallel, int max_rounds = 3);

// Removes the mappings, at most `parallel` at a time; returns one error per mapping.
asio::awaitable<std::vector<std::error_code>> unmap_all(Mapper& mapper, std::vector<Mapping> mappings,
                                                        std::size_t parallel);

}  // namespace natkeeper
