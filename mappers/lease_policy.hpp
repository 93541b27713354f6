#pragma once
// What a granted lease is believed to be. NAT-PMP replies carry no nonce, so
// any LAN host can forge one from the gateway's address; a grant of 2^32-1 s
// would keep a mapping from ever being renewed while the gateway's real lease
// runs out. Pure: the mappers ask, this decides.
#include <chrono>

namespace natkeeper::lease {

// However long a gateway grants (or claims to), a mapping is renewed at least
// this often, so a gateway that forgot it is noticed within a day.
inline constexpr std::chrono::seconds kMaxScheduledLease = std::chrono::hours(24);

// A grant up to twice the request is a gateway's own minimum lifetime (PCP
// servers raise short requests, RFC 6887 §15) or rounding; one further above
// it (and by more than kGrantSlack) is not what was asked for.
inline constexpr std::chrono::seconds kGrantSlack = std::chrono::minutes(10);

// The lease the renewal schedule may rely on: never beyond what was asked,
// never beyond kMaxScheduledLease.
constexpr std::chrono::seconds scheduled_lease(std::chrono::seconds requested, std::chrono::seconds granted) {
  const auto bound = requested < kMaxScheduledLease ? requested : kMaxScheduledLease;
  return granted < bound ? granted : bound;
}

// How long a permanent mapping asked with lease `asked` is counted on before
// it is asked for again: the lease asked, or for lease 0 the longest a
// renewal waits.
constexpr std::chrono::seconds permanent_lease_span(std::chrono::seconds asked) {
  return asked.count() > 0 ? asked : kMaxScheduledLease;
}

// NAT-PMP and PCP leases always expire (lifetime 0 deletes): a permanent
// mapping asked for (lease 0) gets this lifetime there, renewed as any.
inline constexpr std::chrono::seconds kLifetimeForPermanent = std::chrono::hours(2);

// The lifetime an expiring-lease protocol asks for, given the lease asked.
constexpr std::chrono::seconds expiring_lifetime(std::chrono::seconds requested) {
  return requested.count() > 0 ? requested : kLifetimeForPermanent;
}

// True when a grant is so far above the request that the reply must be
// confirmed by asking again before it is believed.
constexpr bool needs_confirmation(std::chrono::seconds requested, std::chrono::seconds granted) {
  return granted > 2 * requested && granted - requested > kGrantSlack;
}

}  // namespace natkeeper::lease
