#pragma once
// The service's timing and reload rules as pure functions: no clock, no
// randomness of their own (a `unit` in [0, 1) is passed in), so tests pin them.
#include <chrono>
#include <cstddef>
#include <tuple>
#include <vector>

#include "config/config.hpp"
#include "mappers/mapping.hpp"

namespace natkeeper::policy {

using Duration = std::chrono::steady_clock::duration;

// When to renew a lease granted for `lifetime`: at a random point in [1/2, 5/8]
// of it, so the clients of one gateway spread out, and a lost renewal still
// leaves 3/8 of the lifetime for the next try.
Duration renewal_delay(std::chrono::seconds lifetime, double unit);
// The earliest point a renewal makes sense: renewals due close together are
// sent together once each one's lease is half gone.
Duration renewal_window_start(std::chrono::seconds lifetime);

// Leases shorter than this are renewed as if they were this long: no busy
// loop on a silly grant.
inline constexpr std::chrono::seconds kShortestScheduledLease{4};

// How long to wait before trying again what failed `failures` times in a row
// (mapping requests, finding the gateway): 5 s doubling to 10 minutes, each
// spread by ±25 %.
Duration retry_delay(int failures, double unit);

// How long to wait before mapping everything again after the gateway lost its
// state `losses` rounds in a row: at once the first three times, then with
// retry_delay's backoff, so a gateway that keeps losing it is not hammered.
Duration remap_delay_after_loss(int losses, double unit);

// How long to wait after the gateway announced a restart or an address change
// before mapping again. RFC 6887 §14.1.1 spreads clients over 0–5 s against a
// storm at a large gateway; a home gateway has a handful of clients, and a
// doorbell offline for 5 s misses calls, so 0–0.5 s.
Duration announcement_delay(double unit);

// Routers drop mappings without a word (idle cleaning, another LAN client's
// or the router's web page's DeletePortMapping, a WAN reconnect), so where the
// protocol can look mappings up, every one is read back in passes: a slice of
// kHeldCheckSliceRequests requests' worth at a time, slices
// kHeldCheckSliceRequests / kHeldCheckRequestsPerSecond apart, a pass at most
// every kHeldCheckPeriod. A lost mapping is asked for again at once, so it is
// back within a pass and a round.
inline constexpr std::chrono::seconds kHeldCheckPeriod{60};
inline constexpr std::size_t kHeldCheckSliceRequests = 4;
inline constexpr double kHeldCheckRequestsPerSecond = 0.5;
// How many mappings a slice reads back, where one request covers `per_request`.
std::size_t held_check_slice(std::size_t per_request);
// How long after a slice the next is read: `pass_age` after its pass began,
// `pass_done` when that slice ended it.
Duration held_check_delay(Duration pass_age, bool pass_done);
// The least time between two slices, whatever asks for one (a hint that
// mappings were dropped too): the request rate above holds.
Duration held_check_spacing();

// A subscription to the gateway's UPnP events (hints that it dropped
// mappings) is renewed at half the duration granted, at least one and at most
// five minutes apart. A gateway drops a subscription without a word
// (miniupnpd after one event it could not deliver, or when it restarts), and
// only a renewal finds that out: the upper bound is how long events can be
// missed unnoticed, for one request every five minutes (the read-back still
// finds what they would have told). The lower bound keeps a silly grant from
// making a busy loop.
Duration subscription_renewal_delay(std::chrono::seconds granted);

// True when the new configuration talks to another gateway or protocol: every
// mapping must then move.
bool gateway_settings_differ(const config::Config& before, const config::Config& after);
// True when the new configuration proves mappings differently (servers, key,
// interval, on or off): every mapping must be proven again.
bool verification_settings_differ(const config::Config& before, const config::Config& after);

}  // namespace natkeeper::policy
