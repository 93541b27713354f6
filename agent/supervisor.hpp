#pragma once
// The service's policy: keeps the configured mappings alive through one
// gateway connection, renews them, heals them when the gateway or the network
// changes, and releases them on stop. Everything runs on one executor; events
// (signals, notices, netlink) arrive as calls and wake the one loop in run().
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "agent/codecs/gateway_notice.hpp"
#include "agent/codecs/state_codec.hpp"
#include "agent/gateway_listener.hpp"
#include "agent/gateway_session.hpp"
#include "config/config.hpp"
#include "mappers/epoch.hpp"

namespace natkeeper {

struct SupervisorHooks {
  std::function<void(const std::string& line)> status;  // a one-line summary after each change
  std::function<void()> ready;                          // after the first round, and after each reload
};

// Finds the gateway and its protocol for a configuration (connect() in the
// service; a scripted gateway in tests).
using Connector = std::function<asio::awaitable<std::optional<Connection>>(const config::Config&)>;

class Supervisor {
 public:
  using Clock = std::chrono::steady_clock;

  // `workers` run blocking libminiupnpc calls when leftovers of another
  // gateway are removed, and write the state file (its fsync can take seconds
  // on a busy disk, which must not stall the loop and its watchdog).
  Supervisor(asio::any_io_executor executor, asio::any_io_executor workers, Connector connector,
             config::Config config, std::filesystem::path state_file, SupervisorHooks hooks);

  // Keeps the mappings alive until stop(); returns then, with requests in
  // flight cancelled.
  asio::awaitable<void> run();
  void stop();
  // After run(): removes every mapping this host holds, giving up after
  // `deadline`. True when none is left at the gateway (as far as it said).
  asio::awaitable<bool> release(Clock::duration deadline);
  // Returns once every state file write asked for so far is done.
  asio::awaitable<void> flush_state();

  // Takes a new, valid configuration: applies the difference at the next step.
  void reload(config::Config config);
  // Something in the kernel's view of the network changed (link, address, route).
  void network_changed(std::string what);
  // Asked from outside (SIGUSR1: a router's hook after a WAN change): check the
  // way to the gateway and request every mapping again now.
  void refresh(std::string why);
  // A datagram on the gateway notice ports (GatewayListener's handler).
  void gateway_datagram(std::span<const std::uint8_t> datagram, const asio::ip::udp::endpoint& source,
                        std::uint16_t port);

  // For --status: the gateway, the NAT diagnosis and every mapping.
  nlohmann::json status() const;
  const config::Config& config() const { return config_; }

 private:
  struct Entry {
    MappingReport report;
    Clock::time_point renew_at{};      // renewal, or the next try after a failure
    Clock::time_point window_start{};  // renewals due near each other go together from here
    int failures = 0;
    std::optional<std::chrono::system_clock::time_point> verified_at;
  };

  asio::awaitable<void> step();
  asio::awaitable<void> sleep_until(Clock::time_point when);
  Clock::time_point next_wakeup() const;
  void wake();
  double random_unit();

  // Runs `task` so that stop() cancels it.
  template <class T>
  asio::awaitable<T> interruptible(asio::awaitable<T> task);

  asio::awaitable<void> reconnect();
  asio::awaitable<void> check_path();
  asio::awaitable<void> apply_config(config::Config config);
  asio::awaitable<void> take_over_recorded(const state::ServiceState& recorded);
  asio::awaitable<void> renew(std::vector<std::size_t> indices);
  asio::awaitable<void> verify();
  asio::awaitable<void> spot_check();
  asio::awaitable<std::vector<std::error_code>> unmap_entries(const std::vector<Mapping>& mappings);

  void apply_outcome(Entry& entry, const MapOutcome& outcome, Clock::time_point now);
  void note_external_address();
  void on_notice(const GatewayNotice& notice);
  void schedule_remap(std::string why, Clock::duration delay);
  void schedule_reconnect(std::string why);
  std::vector<Entry> plan_entries() const;
  std::vector<Mapping> live_mappings() const;
  void save_state();
  void publish();
  std::string summary() const;

  asio::any_io_executor executor_;
  asio::any_io_executor workers_;
  asio::strand<asio::any_io_executor> state_writer_;  // one write at a time, in order
  Connector connector_;
  config::Config config_;
  std::filesystem::path state_file_;
  SupervisorHooks hooks_;
  std::vector<Entry> entries_;
  std::optional<Connection> connection_;
  GatewayListener listener_;

  asio::steady_timer wake_;
  asio::cancellation_signal stop_signal_;
  bool stopping_ = false;
  bool ready_ = false;
  std::mt19937_64 random_{std::random_device{}()};

  // What is pending (set by events, done by step()).
  std::optional<config::Config> pending_config_;
  std::optional<Clock::time_point> remap_at_;
  std::optional<Clock::time_point> path_check_at_;
  bool reconnect_ = false;
  bool spot_check_ = false;
  bool verify_pending_ = false;
  bool state_dirty_ = true;
  bool network_down_ = false;
  Clock::time_point next_connect_{};
  Clock::time_point next_verify_{Clock::time_point::max()};
  Clock::time_point last_spot_check_{};
  int connect_failures_ = 0;
  int losses_in_a_row_ = 0;
  std::optional<state::ServiceState> recorded_;  // the state file's mappings, until taken over

  // What the gateway said unasked.
  EpochTracker natpmp_notice_epoch_, pcp_notice_epoch_;
  bool natpmp_notice_seen_ = false, pcp_notice_seen_ = false;
  std::optional<std::uint32_t> gateway_boot_id_;
  std::uint64_t dropped_notices_ = 0;
  Clock::time_point dropped_reported_{};  // -v tells the count at most once a minute

  std::optional<asio::ip::address> external_ip_;
  int external_ip_changes_ = 0;
  NatKind nat_ = NatKind::unknown;
  std::optional<asio::ip::address> observed_public_ip_;
  std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
  std::string last_summary_;
};

}  // namespace natkeeper
