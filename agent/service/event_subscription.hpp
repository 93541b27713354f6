#pragma once
// The gateway's UPnP events (GENA, UPnP Device Architecture 1.1 §4) as a hint
// that it may have dropped mappings. miniupnpd says nothing over SSDP when a
// mapping goes (another LAN client's DeletePortMapping, its idle cleaning),
// only to the subscribers of its WAN connection service, with the evented
// variable PortMappingNumberOfEntries. A hint proves nothing (any LAN device
// can send a NOTIFY): it only makes the read-back of the held mappings come
// sooner, at no more than its usual rate.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/address_v4.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "agent/gateway/connection.hpp"
#include "mappers/result.hpp"
#include "mappers/timebase.hpp"

namespace natkeeper {

struct EventSubscriptionState;

struct EventCounts {
  std::uint64_t events = 0;   // of the subscription, taken
  std::uint64_t hints = 0;    // of those, how many told a change (all but the initial ones)
  std::uint64_t dropped = 0;  // connections and requests that were no event of it
};

// One subscription to a WAN connection service's events, on `executor`, its
// timers through `time`. It listens on an ephemeral TCP port of `local` (this
// host's address towards the gateway; the CALLBACK URL names it), subscribes,
// renews (policy::subscription_renewal_delay), subscribes again after a
// failure with backoff (policy::retry_delay), and calls `hint` for every event
// of its subscription but the initial one (SEQ 0, the state at subscribing).
// Not only when PortMappingNumberOfEntries went down: miniupnpd sends a
// subscriber one event at a time and forgets changes made while one is on its
// way, so the count it tells lags its table after a burst of additions, and a
// deletion then shows as no change or even a rise. Hints for additions and
// address changes cost no more than the read-back's usual rate. Only the gateway (the event URL's host) may connect, four connections at
// most at once, each for 2 s; other connections are closed at once. Events
// of another subscription, malformed or oversized ones, are dropped and
// counted.
class EventSubscription {
 public:
  using Hint = std::function<void()>;

  // Listens and starts subscribing. Fails when `event_url` is no http URL
  // with an IPv4 host, or when nothing can listen on `local`.
  static Result<std::unique_ptr<EventSubscription>> start(asio::any_io_executor executor, Timebase& time,
                                                          const std::string& event_url,
                                                          const asio::ip::address_v4& local, Hint hint,
                                                          std::uint64_t seed);
  // Stops at once and hints no more; unsubscribes on the way out (best
  // effort, for at most 1 s).
  ~EventSubscription();
  EventSubscription(const EventSubscription&) = delete;
  EventSubscription& operator=(const EventSubscription&) = delete;

  // The subscription's SID; empty while there is none.
  const std::string& sid() const;
  EventCounts counts() const;

 private:
  explicit EventSubscription(std::shared_ptr<EventSubscriptionState> state) : state_(std::move(state)) {}
  // Shared with its coroutines, which may outlive it by a turn of the loop.
  std::shared_ptr<EventSubscriptionState> state_;
};

// SupervisorEffects::watch: the gateway's events, where the connection's
// protocol named an event URL (UPnP); nullptr otherwise, or when nothing can
// listen for them (logged).
std::shared_ptr<void> watch_gateway_events(asio::any_io_executor executor, Timebase& time,
                                           const Connection& connection, std::function<void()> hint);

}  // namespace natkeeper
