#include "agent/service/supervisor.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>

#include "agent/base/log.hpp"
#include "agent/base/state_file.hpp"
#include "agent/gateway/map_batch.hpp"
#include "agent/gateway/recorded_mappings.hpp"
#include "agent/report/status.hpp"
#include "agent/service/event_subscription.hpp"
#include "agent/service/service_policy.hpp"
#include "mappers/errors.hpp"
#include "mappers/natpmp/natpmp_codec.hpp"

namespace natkeeper {
namespace {

using namespace std::chrono_literals;

// Netlink changes come in bursts (a link going up brings its addresses and routes).
constexpr auto kPathSettleTime = 500ms;
// Removing what an old situation (gateway, address) left: it may not answer any more.
constexpr auto kOldSituationDeadline = 2s;
// A bound on listing the gateway's table (one request per entry): every port
// of both protocols.
constexpr std::size_t kMaxListedMappings = 2 * 65536;
// How often a long round records its progress in the state file.
constexpr auto kProgressInterval = 1s;
// Neighbour entries change in bursts too (a renumbered device: a new entry,
// then the old one going stale).
constexpr auto kNeighbourSettleTime = 1s;
// A round or a release of a large plan goes in batches of this many mappings:
// what it holds meanwhile (requests, answers) is bounded by the batch, not the
// plan, and a batch keeps a full request window busy.
constexpr std::size_t kBatchSize = 1024;

long long whole_seconds(std::chrono::steady_clock::duration span) {
  return std::chrono::duration_cast<std::chrono::seconds>(span).count();
}

auto removal_key(const Mapping& mapping) { return std::pair{mapping.request.proto, mapping.external_port}; }

std::string describe(const MapRequest& request) {
  return fmt::format("{} {}", to_string(request.proto), request.internal_port);
}

}  // namespace

SupervisorEffects system_effects() {
  return {[](const config::Config& config) { return connect(config); },
          locate_gateway,
          verify_mappings,
          [](const state::ServiceState& recorded, const config::Config& config) {
            return remove_recorded(recorded, config);
          },
          [](const config::Config& config, const LocalInterface& lan, const config::DeviceAddresses& previous) {
            return look_up_devices(config, lan, previous);
          },
          watch_gateway_events};
}

Supervisor::Supervisor(asio::any_io_executor executor, Timebase& time, SupervisorEffects effects,
                       config::Config config, StateWriter state, SupervisorHooks hooks, std::uint64_t seed)
    : executor_(executor),
      time_(time),
      effects_(std::move(effects)),
      config_(std::move(config)),
      state_(std::move(state)),
      hooks_(std::move(hooks)),
      listener_(executor,
                [this](std::span<const std::uint8_t> datagram, const asio::ip::udp::endpoint& source,
                       std::uint16_t port) { gateway_datagram(datagram, source, port); }),
      wake_(executor),
      random_(seed),
      started_(time.wall_now()) {
  device_addresses_ = config::configured_addresses(config_);
  entries_ = plan_entries();
}

std::vector<PlannedMapping> Supervisor::plan_entries() const {
  auto entries = unmapped(config::plan_runs(config_, device_addresses_));
  warn_about_large_plan(config_, entries.size());
  return entries;
}

double Supervisor::random_unit() { return std::uniform_real_distribution<double>(0.0, 1.0)(random_); }

void Supervisor::wake() {
  // An expired event: a wait on it now, or at the next sleep, ends at once.
  wake_.expires_at(asio::steady_timer::time_point::min());
}

template <class T>
asio::awaitable<T> Supervisor::interruptible(asio::awaitable<T> task) {
  if (stopping_) throw boost::system::system_error(asio::error::operation_aborted);
  co_return co_await asio::co_spawn(executor_, std::move(task),
                                    asio::bind_cancellation_slot(stop_signal_.slot(), asio::use_awaitable));
}

template <class T>
asio::awaitable<std::optional<T>> Supervisor::within(asio::awaitable<T> task, Duration limit) {
  using namespace asio::experimental::awaitable_operators;
  auto outcome = co_await (std::move(task) || time_.sleep_until(time_.now() + limit));
  if (outcome.index() == 0) co_return std::move(std::get<0>(outcome));
  co_return std::nullopt;
}

void Supervisor::stop() {
  if (stopping_) return;
  stopping_ = true;
  if (stop_signal_.slot().has_handler()) stop_signal_.emit(asio::cancellation_type::terminal);
  wake();
}

asio::awaitable<void> Supervisor::run() {
  const auto loaded = read_state_file(state_.file());
  if (!loaded.error.empty()) log::warning("{}; mappings of an earlier run, if any, expire with their leases", loaded.error);
  if (!loaded.state.mappings.empty()) recorded_ = loaded.state;
  if (auto known = recorded_addresses(config_, device_addresses_, loaded.state); known != device_addresses_) {
    device_addresses_ = std::move(known);
    entries_ = plan_entries();  // nothing is mapped yet
  }
  while (!stopping_) {
    // Re-armed before the step: a wake() from here on ends the next sleep.
    wake_.expires_at(asio::steady_timer::time_point::max());
    try {
      co_await step();
    } catch (const boost::system::system_error& error) {
      // stop() cancels what is in flight; anything else is a fault.
      if (!stopping_ || error.code() != asio::error::operation_aborted) throw;
    }
    if (stopping_) break;
    publish();
    co_await sleep_until(next_wakeup());
  }
  listener_.close();
  watch_.reset();
}

asio::awaitable<void> Supervisor::sleep_until(TimePoint when) {
  // Yields even when due: events queued meanwhile are handled first.
  using namespace asio::experimental::awaitable_operators;
  co_await (time_.sleep_until(when) || wake_.async_wait(asio::as_tuple(asio::use_awaitable)));
}

Supervisor::TimePoint Supervisor::next_wakeup() const {
  // Mirrors step(): whatever is due here must be done there, or the loop would spin.
  const auto now = time_.now();
  if (stopping_ || pending_config_) return now;
  auto next = TimePoint::max();
  if (path_check_at_) next = std::min(next, *path_check_at_);
  if (network_down_) return next;
  if (devices_check_at_ && connection_) next = std::min(next, *devices_check_at_);
  if (!connection_ || reconnect_) next = std::min(next, next_connect_);
  if (connection_) {
    if (remap_at_) next = std::min(next, *remap_at_);
    if (question_at_) next = std::min(next, *question_at_);
    if (held_check_at_) next = std::min(next, *held_check_at_);
    if (verify_pending_ || reconcile_pending_) next = now;
    next = std::min(next, next_verify_);
    for (const auto& entry : entries_) next = std::min(next, entry.renew_at);
    for (const auto& [key, removal] : removals_) next = std::min(next, removal.retry_at);
  }
  return next;
}

asio::awaitable<void> Supervisor::step() {
  if (pending_config_) {
    auto config = std::move(*pending_config_);
    pending_config_.reset();
    co_await apply_config(std::move(config));
  }
  if (path_check_at_ && time_.now() >= *path_check_at_) {
    path_check_at_.reset();
    co_await check_path();
  }
  if ((!connection_ || reconnect_) && !network_down_ && time_.now() >= next_connect_) co_await reconnect();
  if (connection_ && !network_down_) {
    if (recorded_) {
      auto recorded = std::move(*recorded_);
      recorded_.reset();
      co_await take_over_recorded(recorded);
    }
    if (!removals_.empty()) co_await retry_removals();
    if (question_at_ && time_.now() >= *question_at_) co_await ask_gateway();
    if (devices_check_at_ && time_.now() >= *devices_check_at_) co_await follow_devices();
    if (held_check_at_ && time_.now() >= *held_check_at_) co_await check_held();

    auto now = time_.now();
    const bool everything = remap_at_ && now >= *remap_at_;
    if (everything) {
      remap_at_.reset();
      last_full_round_ = now;
      // A loss the mapper knew of before this round (an announcement's epoch) is what the round repairs.
      connection_->protocol.mapper->take_gateway_lost_state();
    }
    if (auto due = due_for_renewal(entries_, now, everything); !due.empty()) co_await renew(std::move(due));

    if (connection_ && connection_->protocol.mapper->take_gateway_lost_state()) {
      schedule_remap("the gateway lost its mappings (its epoch went back)",
                     policy::remap_delay_after_loss(++losses_in_a_row_, random_unit()));
    } else if (everything) {
      losses_in_a_row_ = 0;
    }
    if (connection_ && reconcile_pending_) co_await reconcile();
    if (connection_ && (verify_pending_ || time_.now() >= next_verify_)) co_await verify();
  }
  if (state_dirty_) save_state();
  if (!ready_) {
    ready_ = true;
    publish();
    hooks_.ready();
  }
}

asio::awaitable<void> Supervisor::reconnect() {
  reconnect_ = false;
  watch_.reset();
  auto fresh = co_await effects_.connect(config_);
  if (!fresh) {
    ++connect_failures_;
    const auto delay = policy::retry_delay(connect_failures_, random_unit());
    next_connect_ = time_.now() + delay;
    reconnect_ = true;
    log::notice("looking for the gateway again in {} s", std::max(1LL, whole_seconds(delay)));
    for (auto& entry : entries_) {
      entry.state = MappingState::failed;
      entry.note = "no gateway answers";
    }
    co_return;
  }
  connect_failures_ = 0;
  if (connection_ && !recorded_through(record_mappings(*connection_, {}), *fresh)) {
    // A new gateway, protocol or address of this host: what the old one holds
    // points nowhere now. Remove it while the old gateway may still answer.
    const auto old = possibly_held_mappings();
    removals_.clear();
    if (!old.empty()) {
      log::notice("removing {} mappings of the old situation via {}", old.size(), display_name(connection_->protocol.method));
      auto removal = unmap_all(*connection_->protocol.mapper, old, parallel_requests(connection_->protocol.method));
      if (!co_await within(std::move(removal), kOldSituationDeadline))
        log::warning("the old gateway did not answer in time; its mappings expire with their leases");
    }
    for (auto& entry : entries_) {
      entry.mapping.reset();
      entry.granted.reset();
      entry.request = PlannedMapping::Request::none;
    }
  }
  connection_ = std::move(fresh);
  log::notice("using {} at {} ({})", display_name(connection_->protocol.method), connection_->path.gateway.to_string(),
              connection_->protocol.detail);
  listener_.open(connection_->path.local.address);
  watch_ = effects_.watch(executor_, time_, *connection_, [this] { gateway_changed(); });
  // Devices are found on the gateway's interface, before the first round maps for them.
  if (!config_.devices.empty()) co_await follow_devices();
  question_at_.reset();
  announced_epochs_.clear();
  held_check_at_ = time_.now() + policy::kHeldCheckPeriod;
  held_check_next_ = 0;
  reconcile_pending_ = true;
  remap_at_ = time_.now();
  verify_pending_ = true;
  state_dirty_ = true;
}

asio::awaitable<void> Supervisor::check_path() {
  auto path = effects_.locate(config_);
  if (!path) {
    if (!network_down_)
      log::warning("no way to the gateway ({}); waiting for the network to come back", path.error().message());
    network_down_ = true;
    co_return;
  }
  const bool was_down = std::exchange(network_down_, false);
  if (!connection_) {
    next_connect_ = time_.now();
    reconnect_ = true;
    co_return;
  }
  const auto& known = connection_->path;
  if (path->gateway != known.gateway || path->local.address != known.local.address || path->local.name != known.local.name) {
    connect_failures_ = 0;
    schedule_reconnect(fmt::format("the way to the gateway changed from {} via {} ({}) to {} via {} ({})",
                                   known.gateway.to_string(), known.local.name, known.local.address.to_string(),
                                   path->gateway.to_string(), path->local.name, path->local.address.to_string()));
  } else if (was_down) {
    schedule_remap("the network towards the gateway is back", Duration::zero());
  }
}

asio::awaitable<void> Supervisor::apply_config(config::Config config) {
  device_addresses_ = carry_over(config_, device_addresses_, config);
  if (policy::gateway_settings_differ(config_, config)) {
    log::notice("reloaded {}: the gateway settings changed, every mapping moves", config.source);
    co_await release(kOldSituationDeadline);
    // What the old gateway did not confirm is removed like a crash's leftovers.
    if (const auto left = possibly_held_mappings(); !left.empty() && connection_)
      recorded_ = record_mappings(*connection_, {}, left);
    removals_.clear();
    config_ = std::move(config);
    entries_ = plan_entries();
    connect_failures_ = 0;
    schedule_reconnect("new gateway settings");
  } else {
    if (connection_) device_addresses_ = look_up(config);
    const auto why = fmt::format("reloaded {}", config.source);
    co_await replan(std::move(config), why);
  }
  next_verify_ = next_verification();
  state_dirty_ = true;
  hooks_.ready();
}

asio::awaitable<void> Supervisor::replan(config::Config config, std::string_view why) {
  auto merge = merge_plan(std::move(entries_), config::plan_runs(config, device_addresses_));
  if (merge.added > merge.dropped) warn_about_large_plan(config, merge.entries.size());
  const bool verification_changed = policy::verification_settings_differ(config_, config);
  config_ = std::move(config);
  entries_ = std::move(merge.entries);
  const auto& removed = merge.removed;
  log::notice("{}: {} mappings added, {} removed, {} unchanged", why, merge.added, merge.dropped, merge.kept);
  if (!removed.empty() && connection_) {
    const auto left = co_await remove(removed);
    if (left > 0)
      log::warning("{} of {} removed mappings could not be deleted at the gateway; trying again later", left,
                   removed.size());
  }
  if (merge.added > 0 || verification_changed) verify_pending_ = true;
  state_dirty_ = true;
}

void Supervisor::neighbours_changed() {
  if (!follows_macs(config_) || devices_check_at_) return;
  devices_check_at_ = time_.now() + kNeighbourSettleTime;
  wake();
}

config::DeviceAddresses Supervisor::look_up(const config::Config& config) {
  auto lookup = effects_.find_devices(config, connection_->path.local, device_addresses_);
  // A device that stays unfound is told once, not at every change of the table.
  if (lookup.problems != device_problems_)
    for (const auto& problem : lookup.problems) log::warning("{}", problem);
  device_problems_ = std::move(lookup.problems);
  for (std::size_t i = 0; i < lookup.addresses.size(); ++i) {
    const auto before = i < device_addresses_.size() ? device_addresses_[i] : std::nullopt;
    if (lookup.addresses[i] && lookup.addresses[i] != before)
      log::notice("device {} is at {}{}", config::label(config.devices[i]), lookup.addresses[i]->to_string(),
                  before ? fmt::format(" now (was {}): its mappings move there", before->to_string()) : std::string());
  }
  return std::move(lookup.addresses);
}

asio::awaitable<void> Supervisor::follow_devices() {
  devices_check_at_.reset();
  auto addresses = look_up(config_);
  if (addresses == device_addresses_) co_return;
  device_addresses_ = std::move(addresses);
  co_await replan(config_, "a device was found or moved");
}

asio::awaitable<std::size_t> Supervisor::remove(std::vector<Mapping> mappings) {
  // Pending from the start, so that a stop in the middle leaves them recorded
  // and released; each leaves the list as the gateway confirms it.
  std::vector<std::pair<Transport, std::uint16_t>> keys;
  for (auto& mapping : mappings) {
    keys.push_back(removal_key(mapping));
    removals_.insert_or_assign(keys.back(), pending_removal(mapping, time_.now(), random_unit()));
  }
  state_dirty_ = true;
  co_await interruptible(unmap_all(*connection_->protocol.mapper, std::move(mappings),
                                   parallel_requests(connection_->protocol.method),
                                   [this, &keys](std::size_t i) { removals_.erase(keys[i]); }));
  co_return static_cast<std::size_t>(
      std::count_if(keys.begin(), keys.end(), [this](const auto& key) { return removals_.count(key) > 0; }));
}

asio::awaitable<void> Supervisor::retry_removals() {
  const auto now = time_.now();
  std::vector<Mapping> due;
  for (const auto& [key, removal] : removals_)
    if (removal.retry_at <= now) due.push_back(removal.mapping);
  if (due.empty()) co_return;
  // remove() starts each one's backoff afresh; it continues from here.
  std::map<std::pair<Transport, std::uint16_t>, PendingRemoval> before;
  for (const auto& mapping : due) before.insert(removals_.extract(removal_key(mapping)));
  const auto left = co_await remove(due);
  for (auto& [key, removal] : before) {
    if (!removals_.count(key)) continue;
    if (retry_later(removal, time_.now(), random_unit())) {
      removals_.insert_or_assign(key, std::move(removal));
    } else {
      removals_.erase(key);
      log::notice("gave up deleting {} (external port {}): its lease has ended", describe(removal.mapping.request),
                  removal.mapping.external_port);
    }
  }
  log::info("deleted {} of {} mappings the gateway had not confirmed deleted", due.size() - left, due.size());
}

asio::awaitable<void> Supervisor::take_over_recorded(const state::ServiceState& recorded) {
  if (!recorded_through(recorded, *connection_)) {
    const auto left = co_await effects_.remove_recorded(recorded, config_);
    log::notice("{} mappings left by an earlier run via {} at {}: {} removed", recorded.mappings.size(), recorded.method,
                recorded.gateway, recorded.mappings.size() - left.size());
    co_return;
  }
  // What the plan still wants is asked for again in this round, on the same
  // external port: the gateway renews it, nothing is doubled.
  const auto unwanted = adopt_recorded(entries_, recorded_mappings(recorded), config_.allow_other_external_port);
  const auto taken = recorded.mappings.size() - unwanted.size();
  if (!unwanted.empty()) co_await remove(unwanted);
  log::notice("{} mappings left by an earlier run: {} taken over, {} no longer wanted removed", recorded.mappings.size(),
              taken, unwanted.size());
}

asio::awaitable<void> Supervisor::reconcile() {
  reconcile_pending_ = false;
  const auto table = co_await interruptible(connection_->protocol.mapper->list_table(kMaxListedMappings));
  if (!table) {
    if (table.error() != std::errc::operation_not_supported)
      log::info("cannot list the gateway's mappings: {}", table.error().message());
    co_return;
  }
  std::vector<asio::ip::address> clients{connection_->path.local.address};
  for (const auto& device : device_addresses_)
    if (device) clients.emplace_back(*device);
  auto strays = stray_mappings(*table, entries_, config_.description, clients);
  if (strays.empty()) co_return;
  log::notice("{} of the gateway's {} mappings are natkeeper's for this host or its devices and not planned: "
              "removing them",
              strays.size(), table->size());
  const auto left = co_await remove(std::move(strays));
  if (left > 0) log::warning("{} of them could not be deleted; trying again later", left);
}

asio::awaitable<void> Supervisor::renew(std::vector<std::size_t> indices) {
  // Intent before acting: what the gateway may grant is in the state file
  // before it is asked for, so that a crash mid-round leaves nothing unknown.
  bool new_requests = false;
  for (const auto i : indices) {
    if (possibly_held(entries_[i])) continue;
    entries_[i].request = PlannedMapping::Request::intended;
    new_requests = true;
  }
  if (new_requests) {
    save_state();
    co_await interruptible(state_.flush());
  }
  const auto method = connection_->protocol.method;
  const auto started = time_.now();
  std::size_t mapped = 0, failed = 0;
  bool table_full = false, unreachable = false;
  std::optional<MapOutcome> first_failure;
  // Once the gateway said its table is full, or answered none of a batch, the
  // rest is not asked for: it would only repeat that.
  std::error_code rest_fails_with;
  for (std::size_t begin = 0; begin < indices.size(); begin += kBatchSize) {
    const auto batch = std::span(indices).subspan(begin, std::min(kBatchSize, indices.size() - begin));
    std::vector<MapOutcome> outcomes;
    if (rest_fails_with) {
      for (const auto i : batch) outcomes.push_back({request_of(entries_[i]), std::nullopt, rest_fails_with});
    } else {
      BatchPolicy policy{request_window(method), config_.allow_other_external_port, {}, &time_};
      policy.on_sent = [this, batch](std::size_t k) {
        auto& entry = entries_[batch[k]];
        if (entry.request == PlannedMapping::Request::intended) entry.request = PlannedMapping::Request::sent;
      };
      policy.on_granted = [this, batch](std::size_t k, const Mapping& mapping) {
        entries_[batch[k]].granted = grant_of(mapping);
        removals_.erase(removal_key(mapping));  // wanted again: no longer to be deleted
        save_progress();
      };
      outcomes = co_await interruptible(
          map_all(*connection_->protocol.mapper, renewal_requests(entries_, batch), std::move(policy)));
    }
    const auto now = time_.now();
    bool any_mapped = false;
    std::error_code unanswered;
    for (std::size_t k = 0; k < batch.size(); ++k) {
      const auto& outcome = outcomes[k];
      if (record_outcome(entries_[batch[k]], outcome, method, now, random_unit())) verify_pending_ = true;
      any_mapped = any_mapped || outcome.mapping;
      if (outcome.mapping) ++mapped;
      if (!outcome.error) continue;
      ++failed;
      if (!first_failure) first_failure = outcome;
      if (outcome.error == MapFailure::gateway_unreachable) unanswered = outcome.error;
      if (outcome.error == MapFailure::table_full) table_full = true;
    }
    unreachable = unreachable || unanswered;
    if (!rest_fails_with && table_full) rest_fails_with = make_error_code(Errc::table_full_skipped);
    if (!rest_fails_with && unanswered && !any_mapped) rest_fails_with = unanswered;
    save_progress();
  }
  log::info("asked for {} mappings via {} in {} ms", indices.size(), display_name(method),
            std::chrono::duration_cast<std::chrono::milliseconds>(time_.now() - started).count());
  if (table_full) log::warning("{}", table_full_message(mapped, indices.size()));
  if (first_failure) {
    log::warning("{} of {} mappings failed; the first: {}: {}", failed, indices.size(), describe(first_failure->request),
                 describe_failure(first_failure->error, first_failure->request, external_ip_));
  }
  if (unreachable) schedule_reconnect("the gateway does not answer");
  note_external_address();
  state_dirty_ = true;
}

Supervisor::TimePoint Supervisor::next_verification() const {
  return config_.verify_interval.count() > 0 ? time_.now() + config_.verify_interval : TimePoint::max();
}

void Supervisor::note_external_address() {
  auto current = external_address_of(entries_);
  if (!current && connection_) current = known_external_ip(connection_->protocol);
  if (!current || current == external_ip_) return;
  if (external_ip_) {
    ++external_ip_changes_;
    log::notice("the gateway's external address changed from {} to {}", external_ip_->to_string(), current->to_string());
    verify_pending_ = true;
  }
  external_ip_ = current;
  observed_public_ip_.reset();
  nat_ = diagnose_nat(external_ip_, std::nullopt);
}

asio::awaitable<void> Supervisor::verify() {
  verify_pending_ = false;
  next_verify_ = next_verification();
  std::vector<std::size_t> indices;
  for (std::size_t i = 0; i < entries_.size(); ++i)
    if (active(entries_[i])) indices.push_back(i);
  if (indices.empty()) co_return;
  // In batches, as rounds go: the reports of a batch are all it holds. Each
  // batch judges another device's UDP rows by its own (or by a canary).
  std::size_t verified = 0, unreachable = 0;
  std::optional<VerifyResult> result;
  for (std::size_t begin = 0; begin < indices.size(); begin += kBatchSize) {
    const auto batch = std::span(indices).subspan(begin, std::min(kBatchSize, indices.size() - begin));
    std::vector<MappingReport> reports;
    reports.reserve(batch.size());
    for (const auto i : batch) reports.push_back(report_of(entries_[i]));
    const auto proven = co_await interruptible(
        effects_.verify(config_, connection_->path, reports, external_ip_, connection_->protocol.mapper.get()));
    const auto when = time_.wall_now();
    for (std::size_t k = 0; k < batch.size(); ++k) {
      record_verification(entries_[batch[k]], reports[k], when);
      if (reports[k].state == MappingState::verified) ++verified;
      if (reports[k].state == MappingState::unreachable) ++unreachable;
    }
    // The diagnosis of a batch the outside observer saw, if any.
    if (!result || (!result->observed_public_ip && proven.observed_public_ip)) result = proven;
  }
  nat_ = result->nat;
  observed_public_ip_ = result->observed_public_ip;
  if (unreachable > 0)
    log::warning("{} of {} mappings are not reachable from outside: {}", unreachable, indices.size(), explain(nat_));
  else if (verified > 0)
    log::info("{} of {} mappings verified from outside", verified, indices.size());
}

asio::awaitable<void> Supervisor::ask_gateway() {
  question_at_.reset();
  const auto why = std::exchange(question_why_, {});
  const auto announced = std::exchange(announced_epochs_, {});
  const auto sample = std::find_if(entries_.begin(), entries_.end(), active);
  // Nothing held, nothing to lose: what failed is retried on its own schedule.
  if (sample == entries_.end()) co_return;
  const auto checked =
      co_await interruptible(connection_->protocol.mapper->check(mapping_of(*sample, *sample->mapping)));
  const auto now = time_.now();
  std::string change;
  if (!checked) {
    if (checked.error() == std::errc::operation_not_supported) co_return;
    policy::note_answer(question_pacer_, now, false);
    if (checked.error() == MapFailure::gateway_unreachable) {
      schedule_reconnect("the gateway does not answer");
      co_return;
    }
    // A refusal while a gateway changes (miniupnpd re-checking a new address)
    // may have taken the renewed mapping with it.
    change = fmt::format("the gateway refused the question ({})", checked.error().message());
  } else {
    const auto confirmed = [&](const policy::AnnouncedEpoch& epoch) {
      return policy::confirms(epoch, *checked->epoch, now);
    };
    const bool lost = checked->mappings_lost ||
                      (checked->epoch && (policy::restarted_since_round(*checked->epoch, now - last_full_round_) ||
                                          std::any_of(announced.begin(), announced.end(), confirmed)));
    const bool moved =
        !checked->external_ip.is_unspecified() && external_ip_ && checked->external_ip != *external_ip_;
    policy::note_answer(question_pacer_, now, lost || moved);
    if (lost) change = "the gateway confirms it restarted or lost its mappings";
    else if (moved) change = fmt::format("the gateway's external address is {} now", checked->external_ip.to_string());
  }
  if (change.empty()) {
    log::info("{}; the gateway says nothing changed", why);
    co_return;
  }
  if (remap_at_) co_return;  // a round is coming anyway
  schedule_remap(fmt::format("{}; {}", why, change),
                 policy::announcement_delay(random_unit()) + policy::notice_round_delay(notice_rounds_, now));
}

asio::awaitable<void> Supervisor::check_held() {
  auto& mapper = *connection_->protocol.mapper;
  const auto per_request = mapper.read_back_per_request();
  if (per_request == 0) {
    held_check_at_.reset();
    co_return;
  }
  const auto now = time_.now();
  if (held_check_next_ == 0) held_pass_started_ = now;
  std::vector<std::size_t> slice;
  std::vector<Mapping> mappings;
  auto next = std::min(held_check_next_, entries_.size());
  for (; next < entries_.size() && slice.size() < policy::held_check_slice(per_request); ++next) {
    if (!active(entries_[next])) continue;
    slice.push_back(next);
    mappings.push_back(mapping_of(entries_[next], *entries_[next].mapping));
  }
  const bool pass_done = next == entries_.size();
  held_check_next_ = pass_done ? 0 : next;
  held_check_at_ = now + policy::held_check_delay(now - held_pass_started_, pass_done);
  if (slice.empty()) co_return;
  held_slice_read_ = now;
  const auto held = co_await interruptible(mapper.read_back(std::move(mappings)));
  if (!held) {
    log::info("could not read back {} mappings: {}", slice.size(), held.error().message());
    if (held.error() == MapFailure::gateway_unreachable) schedule_reconnect("the gateway does not answer");
    co_return;
  }
  std::size_t gone = 0;
  for (std::size_t k = 0; k < slice.size(); ++k) {
    if ((*held)[k]) continue;
    // A reload meanwhile may have dropped or moved the entry.
    if (slice[k] >= entries_.size() || !active(entries_[slice[k]])) continue;
    auto& entry = entries_[slice[k]];
    entry.renew_at = entry.window_start = time_.now();
    if (++gone == 1)
      log::notice("{} (external port {}) is gone from the gateway, removed behind natkeeper's back: mapping it again",
                  describe(request_of(entry)), entry.mapping->external_port);
  }
  if (gone > 1) log::notice("{} of {} mappings read back are gone from the gateway: mapping them again", gone, slice.size());
}

void Supervisor::gateway_changed() {
  if (!held_check_at_) return;  // the mapper cannot read back
  const auto now = time_.now();
  const auto when = std::max(now, held_slice_read_ + policy::held_check_spacing());
  if (when >= *held_check_at_) return;
  log::info("reading the held mappings back {}",
            when == now ? std::string("now") : fmt::format("in {} s", std::max(1LL, whole_seconds(when - now))));
  held_check_at_ = when;
  wake();
}

void Supervisor::reload(config::Config config) {
  pending_config_ = std::move(config);
  wake();
}

void Supervisor::network_changed(std::string what) {
  log::info("network change: {}", what);
  // The first change of a burst sets the time; the rest of the burst does not postpone it.
  if (!path_check_at_) path_check_at_ = time_.now() + kPathSettleTime;
  wake();
}

void Supervisor::refresh(std::string why) {
  log::notice("{}: checking the way to the gateway and mapping everything again", why);
  const auto now = time_.now();
  path_check_at_ = now;
  if (connection_) remap_at_ = now;
  connect_failures_ = 0;
  next_connect_ = now;
  wake();
}

void Supervisor::gateway_datagram(std::span<const std::uint8_t> datagram, const asio::ip::udp::endpoint& source,
                                  std::uint16_t port) {
  const bool from_gateway = connection_ && source.address() == asio::ip::address(connection_->path.gateway);
  // NAT-PMP and PCP notices come from the server port (RFC 6886 §3.2.1, RFC 6887 §14.1.1).
  const bool right_port = port != kAnnouncePort || source.port() == natpmp::kServerPort;
  // Only the gateway's datagrams are parsed: every LAN device's NOTIFYs arrive here too.
  if (from_gateway && right_port) {
    if (const auto notice = parse_gateway_notice(datagram, port)) {
      on_notice(*notice);
      return;
    }
  }
  // SSDP: every device's NOTIFYs arrive here; only the announce port is the gateway's alone.
  if (port == kAnnouncePort || from_gateway) {
    ++dropped_notices_;
    log::debug("dropped a {}-byte datagram from {}:{} on port {}", datagram.size(), source.address().to_string(),
               source.port(), port);
    if (const auto now = time_.now(); now - dropped_reported_ >= std::chrono::minutes(1)) {
      dropped_reported_ = now;
      log::info("{} datagrams dropped so far that were no notice from the gateway (the last from {})",
                dropped_notices_, source.address().to_string());
    }
  }
}

void Supervisor::on_notice(const GatewayNotice& notice) {
  // The source address proves nothing: the notice only prompts a question.
  auto why = policy::notice_question(notice, connection_->protocol.method);
  if (!why) return;
  if (notice.kind == GatewayNotice::Kind::natpmp_address || notice.kind == GatewayNotice::Kind::pcp_announce) {
    if (announced_epochs_.size() == policy::kAnnouncedEpochsKept) announced_epochs_.pop_front();
    announced_epochs_.push_back({std::chrono::seconds(notice.epoch), time_.now()});
  }
  if (question_at_) {
    log::debug("{} (the gateway is to be asked already)", *why);
    return;
  }
  question_at_ = policy::question_time(question_pacer_, time_.now());
  log::debug("{}: asking the gateway", *why);
  question_why_ = std::move(*why);
  wake();
}

void Supervisor::schedule_remap(std::string why, Duration delay) {
  const auto when = time_.now() + delay;
  if (remap_at_ && *remap_at_ <= when) return;
  log::notice("{}: mapping everything again", why);
  remap_at_ = when;
  wake();
}

void Supervisor::schedule_reconnect(std::string why) {
  if (!reconnect_) log::notice("{}: finding the gateway again", why);
  reconnect_ = true;
  if (connect_failures_ == 0) next_connect_ = time_.now();
  wake();
}

std::size_t Supervisor::possibly_held_count() const {
  return removals_.size() + static_cast<std::size_t>(std::count_if(
                                entries_.begin(), entries_.end(), [](const auto& e) { return possibly_held(e).has_value(); }));
}

std::vector<Mapping> Supervisor::possibly_held_mappings() const {
  std::vector<Mapping> mappings;
  for (const auto& entry : entries_)
    if (auto held = possibly_held(entry)) mappings.push_back(std::move(*held));
  for (const auto& [key, removal] : removals_) mappings.push_back(removal.mapping);
  return mappings;
}

void Supervisor::save_state() {
  // Without a connection nothing was taken over yet: the file keeps what it has.
  if (!connection_) return;
  state_dirty_ = false;
  const auto now = time_.now();
  last_state_save_ = now;
  // Record by record: a plan of every port is not copied on the way. (The
  // reservation is a bound: pages it does not fill are never touched.)
  auto recorded = recorded_situation(*connection_);
  recorded.mappings.reserve(entries_.size() + removals_.size());
  const auto wall_now = std::chrono::system_clock::now();
  for (const auto& entry : entries_) {
    if (const auto record = to_record(entry)) recorded.mappings.push_back(live_mapping(record->mapping, record->confirmed, wall_now));
  }
  for (const auto& [key, removal] : removals_) {
    auto mapping = removal.mapping;
    if (!mapping.permanent)
      mapping.lifetime = std::chrono::duration_cast<std::chrono::seconds>(std::max(removal.lease_end - now, Duration::zero()));
    recorded.mappings.push_back(live_mapping(mapping, false, wall_now));
  }
  if (recorded.mappings.empty()) state_.save(std::nullopt);
  else state_.save(std::move(recorded));
}

void Supervisor::save_progress() {
  if (time_.now() - last_state_save_ >= kProgressInterval) save_state();
}

asio::awaitable<bool> Supervisor::release(Duration deadline) {
  if (!connection_) co_return !recorded_ && possibly_held_count() == 0;
  // Everything the gateway may hold goes: confirmed mappings, grants of a
  // round stop cut short, requests sent and never answered, and what earlier
  // removals left. Whatever the gateway does not confirm removed in time
  // stays where it is, and so recorded.
  std::vector<std::size_t> held;
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (possibly_held(entries_[i])) held.push_back(i);
    else entries_[i].request = PlannedMapping::Request::none;  // intended, never sent
  }
  const auto total = held.size() + removals_.size();
  if (total == 0) {
    if (!recorded_) save_state();
    co_return !recorded_;
  }
  log::notice("removing {} mappings", total);
  const auto until = time_.now() + deadline;
  auto& mapper = *connection_->protocol.mapper;
  const auto parallel = parallel_requests(connection_->protocol.method);
  bool in_time = true;
  for (std::size_t begin = 0; in_time && begin < held.size(); begin += kBatchSize) {
    const auto batch = std::span(held).subspan(begin, std::min(kBatchSize, held.size() - begin));
    std::vector<Mapping> mappings;
    mappings.reserve(batch.size());
    for (const auto i : batch) mappings.push_back(*possibly_held(entries_[i]));
    auto removal = unmap_all(mapper, std::move(mappings), parallel, [this, batch](std::size_t k) {
      auto& entry = entries_[batch[k]];
      entry.mapping.reset();
      entry.granted.reset();
      entry.request = PlannedMapping::Request::none;
    });
    in_time = (co_await within(std::move(removal), until - time_.now())).has_value();
  }
  if (in_time && !removals_.empty()) {
    std::vector<Mapping> mappings;
    for (const auto& [key, removal] : removals_) mappings.push_back(removal.mapping);
    auto removal = unmap_all(mapper, mappings, parallel,
                             [this, &mappings](std::size_t i) { removals_.erase(removal_key(mappings[i])); });
    in_time = (co_await within(std::move(removal), until - time_.now())).has_value();
  }
  if (!in_time)
    log::warning("the gateway did not confirm every deletion within {} ms",
                 std::chrono::duration_cast<std::chrono::milliseconds>(deadline).count());
  for (const auto i : held)
    if (possibly_held(entries_[i])) entries_[i].request = PlannedMapping::Request::removing;
  const auto left = possibly_held_count();
  if (left > 0)
    log::warning("{} of {} mappings could not be confirmed removed; they stay recorded for the next start or --delete",
                 left, total);
  save_state();
  co_return left == 0 && !recorded_;
}

std::string Supervisor::summary() const {
  if (network_down_) return "no network towards the gateway; waiting for it";
  if (!connection_) return ready_ ? "no gateway answers; trying again" : "looking for the gateway";
  const auto counts = count(entries_);
  auto line = fmt::format("{} of {} mappings active via {} at {}", counts.active, entries_.size(),
                          display_name(connection_->protocol.method), connection_->path.gateway.to_string());
  if (external_ip_) line += fmt::format(", external {}", external_ip_->to_string());
  if (counts.verified > 0) line += fmt::format(", {} verified", counts.verified);
  if (nat_ == NatKind::double_nat || nat_ == NatKind::cgnat) line += fmt::format(", NAT {}", to_string(nat_));
  return line;
}

void Supervisor::publish() {
  auto line = summary();
  if (line == last_summary_) return;
  log::info("{}", line);
  last_summary_ = line;
  hooks_.status(line);
}

StatusParts Supervisor::status_parts() const {
  using nlohmann::json;
  const auto counts = count(entries_);
  json gateway = nullptr;
  if (connection_) {
    gateway = gateway_json(gateway_report(connection_->path, connection_->protocol, external_ip_));
    gateway["interface"] = connection_->path.local.name;
  }
  const auto dropped = dropped_notices_ + (connection_ ? connection_->protocol.mapper->dropped() : 0);
  std::optional<json> head = json{
      {"pid", ::getpid()},
      {"config", config_.source},
      {"running_s", std::chrono::duration_cast<std::chrono::seconds>(time_.wall_now() - started_).count()},
      {"status", summary()},
      {"gateway", gateway},
      {"external_ip_changes", external_ip_changes_},
      {"nat", to_string(nat_)},
      {"nat_explanation", explain(nat_)},
      {"observed_public_ip", observed_public_ip_ ? json(observed_public_ip_->to_string()) : json(nullptr)},
      {"dropped_datagrams", dropped},
      {"summary", {{"planned", entries_.size()}, {"active", counts.active}, {"verified", counts.verified},
                   {"unreachable", counts.unreachable}, {"failed", counts.failed}}}};
  auto rows = StatusRows(connection_ ? connection_->path.local.address.to_string() : std::string(), external_ip_);
  return [this, head = std::move(head), rows = std::move(rows), next = std::size_t{0}]() mutable -> std::optional<json> {
    if (head) return std::exchange(head, std::nullopt);
    const auto now = time_.now();
    const auto wall_now = time_.wall_now();
    // entries_ may have changed since the last part: a reload may have shortened it.
    while (next < entries_.size()) {
      const auto& entry = entries_[next++];
      const auto renew_in = std::chrono::duration_cast<std::chrono::seconds>(std::max(entry.renew_at - now, Duration::zero()));
      std::optional<std::chrono::seconds> verified_ago;
      if (entry.verified_at) verified_ago = std::chrono::duration_cast<std::chrono::seconds>(wall_now - *entry.verified_at);
      if (auto row = rows.add(report_of(entry), renew_in, verified_ago)) return row;
    }
    return rows.finish();
  };
}

}  // namespace natkeeper
