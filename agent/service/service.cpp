#include "agent/service/service.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <csignal>
#include <ctime>

#include "agent/base/exit_codes.hpp"
#include "agent/base/log.hpp"
#include "agent/base/state_file.hpp"
#include "agent/service/control_socket.hpp"
#include "agent/service/netlink_watcher.hpp"
#include "agent/service/supervisor.hpp"
#include "agent/service/systemd_notify.hpp"

namespace natkeeper {
namespace {

using namespace std::chrono_literals;

// SIGTERM to exit: systemd's default stop timeout is 90 s, the unit's 15 s,
// and a stopped doorbell host should not wait on a dead gateway for long.
constexpr auto kReleaseDeadline = 4s;

std::string describe(const std::vector<netlink::Change>& changes) {
  std::string text;
  for (const auto& change : changes) {
    if (!text.empty()) text += ", ";
    switch (change.kind) {
      case netlink::ChangeKind::link_up: text += fmt::format("link {} up", change.interface_index); break;
      case netlink::ChangeKind::link_down: text += fmt::format("link {} down", change.interface_index); break;
      case netlink::ChangeKind::address_added: text += fmt::format("address added on {}", change.interface_index); break;
      case netlink::ChangeKind::address_removed: text += fmt::format("address removed on {}", change.interface_index); break;
      case netlink::ChangeKind::route_added: text += change.default_route ? "default route added" : "route added"; break;
      case netlink::ChangeKind::route_removed: text += change.default_route ? "default route removed" : "route removed"; break;
    }
  }
  return text;
}

std::string monotonic_usec() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return std::to_string(static_cast<long long>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1000);
}

}  // namespace

int run_service(config::Config config, ConfigLoader load) {
  asio::io_context loop;
  // Declared after the loop so it is joined first: its threads post results to the loop.
  asio::thread_pool workers(4);
  const auto executor = loop.get_executor();

  SupervisorHooks hooks{[](const std::string& line) { systemd::notify("STATUS=" + line); },
                        [] { systemd::notify("READY=1"); }};
  SystemTimebase time;
  Supervisor supervisor(executor, time, system_effects(workers.get_executor()), std::move(config),
                        StateWriter(executor, workers.get_executor(), state_file_path()), std::move(hooks));

  ControlServer control(executor, control_socket_path(), [&] { return supervisor.status(); });
  if (const auto error = control.open())
    log::warning("no control socket at {}: {}; --status will not reach this service", control_socket_path().string(),
                 error.message());

  // (Coroutine lambdas live as long as their coroutines: here, as long as the loop runs.)
  NetlinkWatcher netlink(executor);
  bool stopped = false;
  auto watch_network = [&]() -> asio::awaitable<void> {
    while (!stopped) {
      auto changes = co_await netlink.next_changes();
      if (!changes) {
        if (changes.error() != std::errc::operation_canceled && !stopped)
          log::warning("network change notifications failed: {}", changes.error().message());
        co_return;
      }
      supervisor.network_changed(describe(*changes));
    }
  };
  if (const auto error = netlink.open())
    log::warning("cannot watch the network for changes: {}; changes are noticed at the next renewal", error.message());
  else
    asio::co_spawn(executor, watch_network(), asio::detached);

  asio::signal_set signals(loop, SIGTERM, SIGINT, SIGHUP);
  signals.add(SIGUSR1);
  auto handle_signals = [&]() -> asio::awaitable<void> {
    for (;;) {
      auto [error, signal] = co_await signals.async_wait(asio::as_tuple(asio::use_awaitable));
      if (error) co_return;
      if (signal == SIGUSR1) {
        supervisor.refresh("SIGUSR1");
        continue;
      }
      if (signal == SIGHUP) {
        systemd::notify("RELOADING=1\nMONOTONIC_USEC=" + monotonic_usec());
        auto loaded = load();
        if (auto* why = std::get_if<std::string>(&loaded)) {
          log::error("reload failed, keeping the running configuration: {}", *why);
          systemd::notify("READY=1");
          continue;
        }
        log::notice("SIGHUP: reloading {}", std::get<config::Config>(loaded).source);
        supervisor.reload(std::get<config::Config>(std::move(loaded)));
        continue;
      }
      log::notice("{}: removing the mappings and stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT");
      systemd::notify("STOPPING=1");
      supervisor.stop();
      co_return;
    }
  };
  asio::co_spawn(executor, handle_signals(), asio::detached);

  asio::steady_timer watchdog(executor);
  // Every half interval, as sd_watchdog_enabled(3) advises; from the loop, so a stuck loop is noticed.
  auto feed_watchdog = [&](std::chrono::microseconds period) -> asio::awaitable<void> {
    while (!stopped) {
      systemd::notify("WATCHDOG=1");
      watchdog.expires_after(period);
      auto [error] = co_await watchdog.async_wait(asio::as_tuple(asio::use_awaitable));
      if (error) co_return;
    }
  };
  if (const auto interval = systemd::watchdog_interval())
    asio::co_spawn(executor, feed_watchdog(*interval / 2), asio::detached);

  int exit_code = kExitOk;
  auto life = [&]() -> asio::awaitable<void> {
    co_await supervisor.run();
    const bool all_removed = co_await supervisor.release(kReleaseDeadline);
    co_await supervisor.flush_state();
    if (all_removed) log::notice("all mappings removed; stopped");
    stopped = true;
    signals.cancel();
    watchdog.cancel();
    netlink.close();
    control.close();
  };
  asio::co_spawn(executor, life(), [&](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log::error("internal error: {}", e.what());
    }
    exit_code = kExitSoftware;
    loop.stop();
  });
  loop.run();
  return exit_code;
}

int status_command(bool json) {
  const auto socket = control_socket_path();
  auto reply = query_status(socket, 3s);
  if (!reply) {
    log::error("cannot reach the natkeeper service at {}: {} (is it running? is this user allowed?)", socket.string(),
               reply.error().message());
    return kExitUnavailable;
  }
  if (json) fmt::print("{}\n", reply->dump(2));
  else fmt::print("{}", status_to_text(*reply));
  const auto& summary = (*reply)["summary"];
  const bool all_active = summary.is_object() && summary.value("failed", 1) == 0 && summary.value("unreachable", 1) == 0;
  return all_active ? kExitOk : kExitSomeFailed;
}

namespace {

std::string text_of(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_integer()) return std::to_string(value.get<long long>());
  return "-";
}

long long number_of(const nlohmann::json& value) { return value.is_number_integer() ? value.get<long long>() : -1; }

std::string span_of(long long first, long long last) {
  if (first < 0) return "-";
  return first == last ? std::to_string(first) : fmt::format("{}-{}", first, last);
}

std::string duration_of(long long seconds) {
  if (seconds < 0) return "-";
  if (seconds < 120) return fmt::format("{}s", seconds);
  if (seconds < 7200) return fmt::format("{}m", seconds / 60);
  return fmt::format("{}h{:02}m", seconds / 3600, seconds / 60 % 60);
}

// Consecutive ports whose rows would read the same share one.
bool continues(const nlohmann::json& previous, const nlohmann::json& next) {
  const auto step = [](const nlohmann::json& a, const nlohmann::json& b, const char* key) {
    return (a[key].is_null() && b[key].is_null()) || number_of(b[key]) == number_of(a[key]) + 1;
  };
  for (const char* key : {"proto", "state", "method", "note", "verified_by", "external_ip", "lease"})
    if (previous.value(key, nlohmann::json()) != next.value(key, nlohmann::json())) return false;
  return previous.value("error", "") == next.value("error", "") && step(previous, next, "internal_port") &&
         step(previous, next, "external_port");
}

}  // namespace

std::string status_to_text(const nlohmann::json& status) {
  std::string out = fmt::format("natkeeper (pid {}): {}\n", text_of(status.value("pid", nlohmann::json())),
                                status.value("status", std::string("?")));
  const auto& gateway = status.value("gateway", nlohmann::json());
  if (gateway.is_object())
    out += fmt::format("Gateway {} via {} ({}); this host {} on {}\n", text_of(gateway["address"]),
                       text_of(gateway["method"]), text_of(gateway["detail"]), text_of(gateway["local_address"]),
                       text_of(gateway["interface"]));
  out += fmt::format("NAT: {}: {}\n", text_of(status.value("nat", nlohmann::json())),
                     text_of(status.value("nat_explanation", nlohmann::json())));
  if (const auto changes = number_of(status.value("external_ip_changes", nlohmann::json())); changes > 0)
    out += fmt::format("The external address changed {} times since the start.\n", changes);
  out += "\n";
  constexpr auto kLayout = "{:<6} {:<12} {:<28} {:<10} {:<7} {:<9} {}\n";
  out += fmt::format(kLayout, "PROTO", "INTERNAL", "EXTERNAL", "STATE", "LEASE", "RENEW IN", "DETAIL");
  const auto& mappings = status.value("mappings", nlohmann::json::array());
  for (std::size_t i = 0; i < mappings.size();) {
    std::size_t last = i;
    while (last + 1 < mappings.size() && continues(mappings[last], mappings[last + 1])) ++last;
    const auto& first = mappings[i];
    std::string external = "-";
    if (!first["external_port"].is_null())
      external = fmt::format("{}:{}", text_of(first["external_ip"]),
                             span_of(number_of(first["external_port"]), number_of(mappings[last]["external_port"])));
    std::string detail = first.value("error", std::string());
    if (detail.empty() && !first.value("verified_by", std::string()).empty())
      detail = fmt::format("verified by {} {} ago", text_of(first["verified_by"]),
                           duration_of(number_of(first["verified_ago_s"])));
    if (detail.empty()) detail = first.value("note", std::string());
    // Each mapping has its own random renewal point: the run's earliest is shown.
    long long soonest = number_of(first["renew_in_s"]);
    for (std::size_t k = i; k <= last; ++k) soonest = std::min(soonest, number_of(mappings[k]["renew_in_s"]));
    const auto renew = first["external_port"].is_null() && first.value("error", std::string()).empty()
                           ? std::string("-")
                           : duration_of(soonest);
    out += fmt::format(kLayout, text_of(first["proto"]),
                       span_of(number_of(first["internal_port"]), number_of(mappings[last]["internal_port"])), external,
                       text_of(first["state"]), text_of(first["lease"]).empty() ? "-" : text_of(first["lease"]), renew,
                       detail);
    i = last + 1;
  }
  const auto& summary = status.value("summary", nlohmann::json::object());
  out += fmt::format("\n{} of {} mappings active, {} verified from outside.\n", text_of(summary.value("active", nlohmann::json())),
                     text_of(summary.value("planned", nlohmann::json())), text_of(summary.value("verified", nlohmann::json())));
  return out;
}

}  // namespace natkeeper
