#pragma once
// The service's orchestration: keeps the configured mappings alive through one
// gateway connection, renews them, heals them when the gateway or the network
// changes, and releases them on stop. Everything runs on one executor; events
// (signals, notices, netlink) arrive as calls and wake the one loop in run().
// What it decides is in pure functions (service_policy, notice_policy, plan);
// time and every effect on the world are injected, so tests run it in virtual
// time against a scripted gateway.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "mappers/timebase.hpp"
#include "agent/codecs/state_codec.hpp"
#include "agent/gateway/connection.hpp"
#include "agent/gateway/device_addresses.hpp"
#include "agent/gateway/gateway_listener.hpp"
#include "agent/report/status.hpp"
#include "agent/service/notice_policy.hpp"
#include "agent/service/plan.hpp"
#include "agent/service/state_writer.hpp"
#include "agent/verify/verification.hpp"
#include "config/config.hpp"

namespace natkeeper {

struct SupervisorHooks {
  std::function<void(const std::string& line)> status;  // a one-line summary after each change
  std::function<void()> ready;                          // after the first round, and after each reload
};

// What the supervisor does to the world besides asking its mapper.
struct SupervisorEffects {
  // Finds the gateway and its protocol for a configuration.
  std::function<asio::awaitable<std::optional<Connection>>(const config::Config&)> connect;
  // The way to the gateway as the kernel sees it now (locate_gateway).
  std::function<Result<GatewayPath>(const config::Config&)> locate;
  // Proves mappings from outside (verify_mappings), with a canary mapping
  // through the mapper where another device's UDP ports need one.
  std::function<asio::awaitable<VerifyResult>(const config::Config&, const GatewayPath&, std::vector<MappingReport>&,
                                              const std::optional<asio::ip::address>&, Mapper*)>
      verify;
  // Removes what an earlier run recorded through another gateway or protocol
  // (remove_recorded); returns what could not be removed.
  std::function<asio::awaitable<std::vector<Mapping>>(const state::ServiceState&, const config::Config&)>
      remove_recorded;
  // Where the configured devices are now (look_up_devices).
  std::function<DeviceLookup(const config::Config&, const LocalInterface&, const config::DeviceAddresses& previous)>
      find_devices;
  // Watches the gateway of a connection for signs that it dropped mappings
  // (UPnP events: watch_gateway_events), on `executor`, calling `hint` on
  // each; the watch lasts as long as what it returns (nullptr: nothing to
  // watch).
  std::function<std::shared_ptr<void>(asio::any_io_executor executor, Timebase& time, const Connection& connection,
                                      std::function<void()> hint)>
      watch;
};

// The real ones.
SupervisorEffects system_effects();

class Supervisor {
 public:
  using TimePoint = Timebase::TimePoint;
  using Duration = Timebase::Duration;

  // `seed` drives the spreading of renewals and retries.
  Supervisor(asio::any_io_executor executor, Timebase& time, SupervisorEffects effects, config::Config config,
             StateWriter state, SupervisorHooks hooks, std::uint64_t seed = std::random_device{}());

  // Keeps the mappings alive until stop(); returns then, with requests in
  // flight cancelled.
  asio::awaitable<void> run();
  void stop();
  // After run(): removes every mapping this host holds, giving up after
  // `deadline`. True when none is left at the gateway (as far as it said).
  asio::awaitable<bool> release(Duration deadline);
  // Returns once every state file write asked for so far is done.
  asio::awaitable<void> flush_state() { return state_.flush(); }

  // Takes a new, valid configuration: applies the difference at the next step.
  void reload(config::Config config);
  // Something in the kernel's view of the network changed (link, address, route).
  void network_changed(std::string what);
  // The neighbour table changed: a device named by MAC may have a new address.
  void neighbours_changed();
  // Asked from outside (SIGUSR1: a router's hook after a WAN change): check the
  // way to the gateway and request every mapping again now.
  void refresh(std::string why);
  // A datagram on the gateway notice ports (GatewayListener's handler).
  void gateway_datagram(std::span<const std::uint8_t> datagram, const asio::ip::udp::endpoint& source,
                        std::uint16_t port);

  // For --status: the gateway, the NAT diagnosis and every mapping, in parts
  // (see StatusParts); the parts after the head are taken from the plan as it
  // is when each is asked for. The caller must stop asking before the
  // Supervisor goes.
  StatusParts status_parts() const;
  // The same at once, as one document.
  nlohmann::json status() const { return whole_status(status_parts()); }
  const config::Config& config() const { return config_; }

 private:
  asio::awaitable<void> step();
  asio::awaitable<void> sleep_until(TimePoint when);
  TimePoint next_wakeup() const;
  // When the configuration wants the mappings proven again, from now.
  TimePoint next_verification() const;
  void wake();
  double random_unit();

  // Runs `task` so that stop() cancels it.
  template <class T>
  asio::awaitable<T> interruptible(asio::awaitable<T> task);
  // `task`'s result, or nullopt when `limit` passed first (the task is then cancelled).
  template <class T>
  asio::awaitable<std::optional<T>> within(asio::awaitable<T> task, Duration limit);

  asio::awaitable<void> reconnect();
  asio::awaitable<void> check_path();
  asio::awaitable<void> apply_config(config::Config config);
  // Looks the devices up again; when one has a new address, maps it there and
  // removes its mappings to the old one.
  asio::awaitable<void> follow_devices();
  // The devices of `config` where they are now; logs what changed.
  config::DeviceAddresses look_up(const config::Config& config);
  // Takes the plan of `config` for the current devices' addresses over the
  // running one, removing at the gateway what it no longer wants; logs `why`.
  asio::awaitable<void> replan(config::Config config, std::string_view why);
  asio::awaitable<void> take_over_recorded(const state::ServiceState& recorded);
  asio::awaitable<void> renew(std::vector<std::size_t> indices);
  asio::awaitable<void> verify();
  // Asks the gateway whether what a notice claimed is true; remaps if so.
  asio::awaitable<void> ask_gateway();
  // Reads back the next slice of the held mappings (policy::held_check_slice);
  // what the gateway no longer holds is due for renewal at once.
  asio::awaitable<void> check_held();
  // The gateway hinted that it may have dropped mappings (effects_.watch): the
  // next slice is read as soon as the read-back's request rate allows.
  void gateway_changed();
  // Deletes `mappings` at the gateway; what it does not confirm deleted stays
  // pending (recorded, retried with backoff, released on stop). Returns how
  // many are left pending.
  asio::awaitable<std::size_t> remove(std::vector<Mapping> mappings);
  asio::awaitable<void> retry_removals();
  // Where the gateway can list its table (UPnP): removes natkeeper's mappings
  // for this host and its devices that the plan does not want, which a run
  // that could not record them left.
  asio::awaitable<void> reconcile();
  // Every mapping the gateway may hold for this host, confirmed or not.
  std::vector<Mapping> possibly_held_mappings() const;
  std::size_t possibly_held_count() const;

  void note_external_address();
  void on_notice(const GatewayNotice& notice);
  void schedule_remap(std::string why, Duration delay);
  void schedule_reconnect(std::string why);
  std::vector<PlannedMapping> plan_entries() const;
  void save_state();
  // save_state(), at most once per kProgressInterval: a long round records
  // its grants as they come, without a write per mapping.
  void save_progress();
  void publish();
  std::string summary() const;

  asio::any_io_executor executor_;
  Timebase& time_;
  SupervisorEffects effects_;
  config::Config config_;
  StateWriter state_;
  SupervisorHooks hooks_;
  std::vector<PlannedMapping> entries_;
  std::optional<Connection> connection_;
  GatewayListener listener_;

  // An event for the loop: wake() makes it expire, each turn of the loop re-arms it.
  asio::steady_timer wake_;
  asio::cancellation_signal stop_signal_;
  bool stopping_ = false;
  bool ready_ = false;
  std::mt19937_64 random_;

  // What is pending (set by events, done by step()).
  std::optional<config::Config> pending_config_;
  std::optional<TimePoint> remap_at_;
  std::optional<TimePoint> path_check_at_;
  std::optional<TimePoint> devices_check_at_;
  config::DeviceAddresses device_addresses_;
  std::vector<std::string> device_problems_;  // as last logged
  bool reconnect_ = false;
  bool reconcile_pending_ = false;  // once per connection, after its first round
  bool verify_pending_ = false;
  bool state_dirty_ = true;
  bool network_down_ = false;
  TimePoint next_connect_{};
  TimePoint last_full_round_{};  // when every mapping was last requested
  TimePoint next_verify_{TimePoint::max()};
  // The read-back of every held mapping, a slice at a time (check_held):
  // when the next slice is due, where it starts in entries_, when its pass
  // began, when the last slice was read.
  std::optional<TimePoint> held_check_at_;
  std::size_t held_check_next_ = 0;
  TimePoint held_pass_started_{};
  TimePoint held_slice_read_{};
  std::shared_ptr<void> watch_;  // the gateway's hints, while connected (effects_.watch)
  int connect_failures_ = 0;
  int losses_in_a_row_ = 0;
  std::optional<state::ServiceState> recorded_;  // the state file's mappings, until taken over
  // Deletions the gateway has not confirmed, by protocol and external port.
  std::map<std::pair<Transport, std::uint16_t>, PendingRemoval> removals_;
  TimePoint last_state_save_{};

  // What the gateway said unasked, and what it is to be asked about it.
  std::optional<TimePoint> question_at_;
  std::string question_why_;
  std::deque<policy::AnnouncedEpoch> announced_epochs_;  // by the notices behind the question
  policy::QuestionPacer question_pacer_;
  policy::NoticeRoundBudget notice_rounds_;
  std::uint64_t dropped_notices_ = 0;
  TimePoint dropped_reported_{};  // -v tells the count at most once a minute

  std::optional<asio::ip::address> external_ip_;
  int external_ip_changes_ = 0;
  NatKind nat_ = NatKind::unknown;
  std::optional<asio::ip::address> observed_public_ip_;
  std::chrono::system_clock::time_point started_;
  std::string last_summary_;
};

}  // namespace natkeeper
