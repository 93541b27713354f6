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
#include "agent/report/status.hpp"
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
  Supervisor supervisor(executor, time, system_effects(), std::move(config),
                        StateWriter(executor, workers.get_executor(), state_file_path()), std::move(hooks));

  ControlServer control(executor, control_socket_path(), [&] { return supervisor.status_parts(); });
  if (const auto error = control.open())
    log::warning("no control socket at {}: {}; --status will not reach this service", control_socket_path().string(),
                 error.message());

  // (Coroutine lambdas live as long as their coroutines: here, as long as the loop runs.)
  NetlinkWatcher netlink(executor);
  bool stopped = false;
  auto watch_network = [&]() -> asio::awaitable<void> {
    while (!stopped) {
      auto events = co_await netlink.next_events();
      if (!events) {
        if (events.error() != std::errc::operation_canceled && !stopped)
          log::warning("network change notifications failed: {}", events.error().message());
        co_return;
      }
      if (!events->changes.empty()) supervisor.network_changed(describe(events->changes));
      if (events->neighbours) supervisor.neighbours_changed();
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
    else log::notice("stopped; what the gateway did not confirm removed stays recorded in {}", state_file_path().string());
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
  // Each part is printed as it arrives: the service's reply may be large.
  StatusJsonPrinter json_printer;
  StatusTextPrinter text_printer;
  bool head = true, all_active = false;
  const auto error = query_status(socket, 3s, [&](nlohmann::json part) {
    if (!std::exchange(head, false)) {
      if (json) fmt::print("{}", json_printer.row(part));
      else text_printer.row(part);
      return;
    }
    const auto summary = part.value("summary", nlohmann::json());
    all_active = summary.is_object() && summary.value("failed", 1) == 0 && summary.value("unreachable", 1) == 0;
    fmt::print("{}", json ? json_printer.head(part) : text_printer.head(part));
  });
  if (error) {
    if (!head) fmt::print("\n");  // after what was printed, an unfinished line
    log::error("cannot reach the natkeeper service at {}: {} (is it running? is this user allowed?)", socket.string(),
               error.message());
    return kExitUnavailable;
  }
  fmt::print("{}", json ? json_printer.finish() : text_printer.finish());
  return all_active ? kExitOk : kExitSomeFailed;
}

}  // namespace natkeeper
