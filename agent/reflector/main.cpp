// natkeeper-reflector: probes natkeeper's port mappings from the internet side.
// See man natkeeper-reflector(8).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdio>

#include "agent/reflector/key_file.hpp"
#include "agent/reflector/listen_address.hpp"
#include "agent/reflector/protocol.hpp"
#include "agent/reflector/server.hpp"

namespace asio = boost::asio;
using namespace natkeeper;
using namespace natkeeper::reflector;

namespace {

// sysexits(3)
constexpr int kExitOk = 0;
constexpr int kExitUsage = 64;
constexpr int kExitOsError = 71;  // EX_OSERR: a listen address cannot be bound
constexpr int kExitConfig = 78;   // EX_CONFIG: the key file is unreadable or invalid

constexpr std::chrono::seconds kStatsInterval{60};

int verbosity = 0;

template <class... Args>
void say(fmt::format_string<Args...> format, Args&&... args) {
  fmt::print(stderr, "natkeeper-reflector: {}\n", fmt::format(format, std::forward<Args>(args)...));
  std::fflush(stderr);
}

std::string describe(const Source& source) {
  return source.address.is_v6() ? fmt::format("[{}]:{}", source.address.to_string(), source.port)
                                : fmt::format("{}:{}", source.address.to_string(), source.port);
}

std::string describe(const ServerStats& s) {
  return fmt::format(
      "{} datagrams, {} TCP connections ({} refused, {} idle ones closed for newer); dropped {} oversized, "
      "{} malformed; {} rate-limited, {} auth failures, {} bad requests, {} busy; sent {} cookies, {} results, "
      "{} UDP and {} TCP probes, {} TCP handshakes; {} send errors",
      s.udp_received, s.tcp_accepted, s.tcp_refused, s.tcp_evicted, s.oversized, s.malformed, s.rate_limited,
      s.auth_failed, s.bad_requests, s.busy, s.cookies_sent, s.results_sent, s.udp_probes, s.tcp_probes,
      s.tcp_handshakes, s.send_errors);
}

void log_send(const SendRecord& record) {
  if (record.kind == SendRecord::Kind::result)
    say("{} request from {}: result '{}'", to_string(record.via), describe(record.request_source),
        to_string(record.status));
  else
    say("{} request from {}: {} to {}", to_string(record.via), describe(record.request_source),
        to_string(record.kind), describe(record.destination));
}

void schedule_stats(asio::steady_timer& timer, const Server& server) {
  timer.expires_after(kStatsInterval);
  timer.async_wait([&timer, &server](boost::system::error_code ec) {
    if (ec) return;
    say("{}", describe(server.stats()));
    schedule_stats(timer, server);
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"natkeeper-reflector: probes port mappings from the internet side for natkeeper's verifier",
               "natkeeper-reflector"};
  app.footer(fmt::format("Listens on UDP and TCP (default port {}). Exit status: 0 stopped by a signal, 64 usage, "
                         "71 cannot listen, 78 bad key file. See natkeeper-reflector(8).",
                         kDefaultPort));
  app.set_version_flag("--version", std::string("natkeeper-reflector ") + NATKEEPER_VERSION);

  std::vector<std::string> listen;
  std::optional<std::string> key_file;
  ServerOptions options;
  app.add_option("--listen", listen,
                 fmt::format("Address to listen on, UDP and TCP (repeatable): ADDR, ADDR:PORT or [IPV6]:PORT; "
                             "port {} by default",
                             kDefaultPort))
      ->required()
      ->allow_extra_args(false);
  app.add_option("--key-file", key_file, "Require requests to carry a tag made with the key in FILE")
      ->check(CLI::ExistingFile);
  const CLI::Validator positive(
      [](const std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) || !(value > 0) || value > 1e9)
          return "expected a number of requests per second above 0";
        return {};
      },
      "N>0");
  app.add_option("--rate", options.rate_per_source, "Requests per second from one source (default 100)")
      ->check(positive);
  app.add_option("--global-rate", options.global_rate, "Requests per second from all sources (default 1000)")
      ->check(positive);
  app.add_flag("-v,--verbose", verbosity, "Statistics every minute; twice: every message sent");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == static_cast<int>(CLI::ExitCodes::Success) ? kExitOk : kExitUsage;
  }

  for (const auto& text : listen) {
    auto endpoint = parse_listen(text);
    if (!endpoint) {
      say("error: --listen '{}': expected ADDR, ADDR:PORT or [IPV6]:PORT with a port in 1-65535", text);
      return kExitUsage;
    }
    options.listen.push_back(*endpoint);
  }
  if (key_file) {
    auto key = read_key_file(*key_file);
    if (!key) {
      say("error: --key-file {}: {}", *key_file, to_string(key.error()));
      return kExitConfig;
    }
    options.key = std::move(*key);
  }
  if (verbosity >= 2) options.on_send = log_send;

  asio::io_context loop;
  std::optional<Server> server;
  try {
    server.emplace(loop, std::move(options));
  } catch (const ListenError& e) {
    say("error: cannot listen on {}", e.what());
    return kExitOsError;
  } catch (const std::exception& e) {
    say("error: {}", e.what());
    return kExitOsError;
  }
  server->start();
  if (verbosity >= 1) {
    for (const auto& endpoint : server->udp_endpoints())
      say("listening on {} (UDP and TCP){}", describe(Source{endpoint.address(), endpoint.port()}),
          key_file ? ", pre-shared key required" : "");
  }

  asio::steady_timer stats_timer(loop);
  if (verbosity >= 1) schedule_stats(stats_timer, *server);
  asio::signal_set signals(loop, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int signal) {
    if (ec) return;
    if (verbosity >= 1) say("signal {}: stopping; {}", signal, describe(server->stats()));
    server->stop();
    stats_timer.cancel();
  });
  loop.run();
  return kExitOk;
}
