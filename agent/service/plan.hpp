#pragma once
// The service's plan: one entry per planned mapping, with what the gateway
// granted and when to ask again; and how a reloaded plan takes over the
// entries of the running one.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "agent/report/report.hpp"
#include "agent/service/service_policy.hpp"
#include "config/config.hpp"

namespace natkeeper {

// What the gateway granted a planned mapping, whose request tells the rest.
struct Grant {
  boost::asio::ip::address external_ip;
  std::uint16_t external_port = 0;
  bool permanent = false;
  std::chrono::duration<std::uint32_t> lifetime{0};
  friend bool operator==(const Grant&, const Grant&) = default;
};
Grant grant_of(const Mapping& mapping);

// One planned mapping. A plan may hold every port: an entry keeps only what is
// its own, and shares the rest of its request with its run of the plan.
struct PlannedMapping {
  // The request of the entry's run (one copy for thousands of ports); the
  // entry's ports are its own.
  std::shared_ptr<const MapRequest> run;
  std::uint16_t internal_port = 0;
  std::uint16_t wanted_external_port = 0;
  // Where a request of the running round stands when the entry has no mapping
  // yet: `intended` is recorded in the state file before it is sent; once
  // `sent`, the gateway may grant it even if no answer ever arrives, so
  // release deletes it. `granted` holds a grant the round has not recorded yet.
  // `removing`: release asked the gateway to delete what it may hold, and the
  // gateway did not confirm it.
  enum class Request : std::uint8_t { none, intended, sent, removing } request = Request::none;
  MappingState state = MappingState::failed;
  std::optional<Method> method;  // through which it was last asked for
  int failures = 0;
  std::optional<Grant> mapping;  // what the gateway holds for it, as reported
  std::optional<Grant> granted;
  std::error_code error;
  std::chrono::steady_clock::time_point renew_at{};      // renewal, or the next try after a failure
  std::chrono::steady_clock::time_point window_start{};  // renewals due near each other go together from here
  // What proving it from outside found.
  std::optional<std::chrono::system_clock::time_point> verified_at;
  std::optional<std::chrono::steady_clock::duration> probe_round_trip;
  std::string verified_by;
  std::string note;
};

// The entry's whole request.
MapRequest request_of(const PlannedMapping& entry);
// The entry's request as granted.
Mapping mapping_of(const PlannedMapping& entry, const Grant& grant);
// The entry as every report shows a mapping.
MappingReport report_of(const PlannedMapping& entry);

// The gateway holds it for us, as far as we know: granted, and not failed since.
inline bool active(const PlannedMapping& entry) { return entry.mapping && !entry.error; }

// A request as the mapping it would make on its wanted external port, for what
// the gateway has not confirmed.
Mapping as_requested(const MapRequest& request);

// What the gateway may hold for the entry: its mapping, a grant of the running
// round, or, for a request sent and not answered, the request on its wanted
// external port. nullopt when nothing can be there.
std::optional<Mapping> possibly_held(const PlannedMapping& entry);
// True when possibly_held() is only a guess: the gateway never confirmed it.
inline bool unconfirmed(const PlannedMapping& entry) { return !entry.mapping && !entry.granted; }
// What the state file records for the entry: what possibly_held() says, and
// a request about to be sent (intent goes first), on its wanted port;
// `confirmed` where the gateway confirmed it holds it and no removal is under way.
struct RecordedMapping {
  Mapping mapping;
  bool confirmed = false;
};
std::optional<RecordedMapping> to_record(const PlannedMapping& entry);

// A mapping to delete that the gateway has not confirmed deleted: tried again
// with backoff until it does, or until the lease would have ended anyway.
struct PendingRemoval {
  Mapping mapping;
  std::chrono::steady_clock::time_point lease_end;  // time_point::max() for a permanent one
  std::chrono::steady_clock::time_point retry_at{};
  int failures = 0;
};
// For `mapping` whose removal failed at `now` (its lifetime counted from then).
PendingRemoval pending_removal(Mapping mapping, std::chrono::steady_clock::time_point now, double unit);
// Records a failed try at `now`; false when the lease has passed meanwhile, so
// the gateway dropped it by itself and there is nothing left to retry.
bool retry_later(PendingRemoval& removal, std::chrono::steady_clock::time_point now, double unit);

// Of the gateway's listed table, what natkeeper made (its `description`, alone
// or followed by a space and more, for one of `clients`) and no entry holds or
// wants: left by a run that could not record it.
std::vector<Mapping> stray_mappings(std::vector<Mapping> listed, const std::vector<PlannedMapping>& entries,
                                    const std::string& description,
                                    const std::vector<boost::asio::ip::address>& clients);

// The plan's entries for `runs`, none asked for yet.
std::vector<PlannedMapping> unmapped(const std::vector<config::RequestRun>& runs);

struct PlanMerge {
  // The new plan in its own order. A request planned before keeps its entry
  // (its mapping at the gateway, schedule and proof) and takes the new lease
  // and description, asked for at its next renewal.
  std::vector<PlannedMapping> entries;
  // What the gateway holds for requests no longer planned: to be removed.
  std::vector<Mapping> removed;
  std::size_t added = 0, dropped = 0, kept = 0;  // requests, by how the new plan differs
};
PlanMerge merge_plan(std::vector<PlannedMapping> current, const std::vector<config::RequestRun>& planned);

// The entries a renewal round asks for at `now`: every one for a round that
// maps `everything`; otherwise, once any is due, all whose window has opened,
// so renewals due near each other go out together.
std::vector<std::size_t> due_for_renewal(const std::vector<PlannedMapping>& entries,
                                         std::chrono::steady_clock::time_point now, bool everything);

// What a round asks for the entries at `indices`: each one's request, on the
// external port it has where it has one (it may differ where other ports are
// allowed).
std::vector<MapRequest> renewal_requests(const std::vector<PlannedMapping>& entries,
                                         std::span<const std::size_t> indices);

// Records a request's outcome at `now` (through `method`) and schedules its
// next renewal or retry; `unit` in [0, 1) spreads it. A request the gateway
// never answered stays `sent`: it may have been granted unheard. Returns true when the
// mapping is new, moved or back, so what proved it before no longer holds.
bool record_outcome(PlannedMapping& entry, const MapOutcome& outcome, Method method,
                    std::chrono::steady_clock::time_point now, double unit);

// Records what verification found of an active entry, proven at `when`.
void record_verification(PlannedMapping& entry, const MappingReport& verified,
                         std::chrono::system_clock::time_point when);

// Takes over mappings an earlier run recorded through the same gateway: each
// goes to the planned entry without a mapping for its protocol and internal
// port (and external port, unless another is allowed). Returns those no
// entry wants.
std::vector<Mapping> adopt_recorded(std::vector<PlannedMapping>& entries, std::vector<Mapping> recorded,
                                    bool allow_other_external_port);

// The gateway's external address as the first active mapping tells it.
std::optional<boost::asio::ip::address> external_address_of(const std::vector<PlannedMapping>& entries);

struct PlanCounts {
  std::size_t active = 0, verified = 0, unreachable = 0, failed = 0;
};
PlanCounts count(const std::vector<PlannedMapping>& entries);

}  // namespace natkeeper
