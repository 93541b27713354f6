#include "agent/service/event_subscription.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>
#include <random>

#include "agent/base/log.hpp"
#include "agent/service/service_policy.hpp"
#include "mappers/upnp/gena.hpp"

namespace natkeeper {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
namespace http = upnp::http;
constexpr auto token = asio::as_tuple(asio::use_awaitable);

// UDA 1.1 §4.1.2: a device SHOULD grant at least 30 minutes.
constexpr std::chrono::seconds kRequestedTimeout{1800};
// A SUBSCRIBE or renewal, from connecting to the answer's head; a connection
// to the callback, from accepting it to the answer. A LAN gateway takes
// milliseconds.
constexpr auto kExchangeLimit = 2s;
constexpr auto kConnectionLimit = 2s;
constexpr auto kUnsubscribeLimit = 1s;
// miniupnpd sends a subscriber one event at a time.
constexpr std::size_t kMaxConnections = 4;
constexpr const char* kCallbackPath = "/natkeeper/event";
constexpr std::string_view kEntriesVariable = "PortMappingNumberOfEntries";

std::optional<std::uint32_t> parse_count(std::string_view text) {
  std::uint32_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

long long milliseconds(Timebase::Duration span) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(span).count();
}

// The loops end quietly when the subscription goes; anything else is a fault.
void end_quietly_when_cancelled(std::exception_ptr error) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const boost::system::system_error& e) {
    if (e.code() != asio::error::operation_aborted) throw;
  }
}

}  // namespace

struct EventSubscriptionState {
  EventSubscriptionState(asio::any_io_executor executor_, Timebase& time_, upnp::HttpUrl event_url_,
                         asio::ip::address_v4 gateway_, asio::ip::address_v4 local_, EventSubscription::Hint hint_,
                         std::uint64_t seed)
      : executor(executor_),
        time(time_),
        event_url(std::move(event_url_)),
        gateway(gateway_),
        local(local_),
        acceptor(executor_),
        hint(std::move(hint_)),
        random(seed) {}

  asio::any_io_executor executor;
  Timebase& time;
  upnp::HttpUrl event_url;
  asio::ip::address_v4 gateway;  // the event URL's host
  asio::ip::address_v4 local;
  tcp::acceptor acceptor;
  upnp::HttpUrl callback;
  EventSubscription::Hint hint;
  std::mt19937_64 random;
  asio::cancellation_signal stop_subscribing, stop_accepting;
  bool closed = false;

  std::string sid;
  bool subscribing = false;  // a new subscription asked for, its SID not known yet
  // The first event of a new subscription may come before the answer that
  // names its SID: it waits for it here.
  std::optional<upnp::GenaEvent> early;
  std::size_t connections = 0;
  EventCounts counts;
  Timebase::TimePoint dropped_reported{};

  double unit() { return std::uniform_real_distribution<double>(0.0, 1.0)(random); }

  void drop(std::string_view why) {
    ++counts.dropped;
    log::debug("UPnP events: dropped {}", why);
    // -v tells the count at most once a minute.
    if (const auto now = time.now(); now - dropped_reported >= 1min) {
      dropped_reported = now;
      log::info("UPnP events: {} connections or requests dropped so far that were no event of the subscription",
                counts.dropped);
    }
  }

  // What a NOTIFY said; the status to answer it with.
  http::status on_notify(const upnp::GenaResult<upnp::GenaEvent>& event) {
    if (!event) {
      drop(fmt::format("a NOTIFY that is no event: {}", upnp::describe(event.error())));
      return http::status::bad_request;
    }
    if (event->sid != sid) {
      if (subscribing && !early) {
        early = *event;
        return http::status::ok;
      }
      drop(fmt::format("an event of another subscription ({})", event->sid));
      return http::status::precondition_failed;
    }
    return take(*event) ? http::status::ok : http::status::bad_request;
  }

  // An event of the subscription; false when it is malformed.
  bool take(const upnp::GenaEvent& event) {
    const auto property = std::find_if(event.properties.begin(), event.properties.end(),
                                       [](const auto& p) { return p.name == kEntriesVariable; });
    std::optional<std::uint32_t> value;
    if (property != event.properties.end()) {
      value = parse_count(property->value);
      if (!value) {
        drop(fmt::format("an event whose {} is \"{}\"", kEntriesVariable, property->value));
        return false;
      }
    }
    ++counts.events;
    const auto told = value ? fmt::format("{} mappings", *value) : std::string("no mapping count");
    log::debug("UPnP event {} of {}: {}", event.seq, event.sid, told);
    if (event.seq == 0 || closed) return true;  // the state when subscribing: no change
    ++counts.hints;
    log::info("UPnP event: the gateway's table or connection changed ({})", told);
    hint();
    return true;
  }

  void subscribed(upnp::GenaSubscription granted) {
    sid = std::move(granted.sid);
    if (!early) return;
    const auto first = std::move(*early);
    early.reset();
    if (first.sid == sid) take(first);
    else drop(fmt::format("an event of another subscription ({})", first.sid));
  }

  void lost() { sid.clear(); }
};

namespace {

using State = std::shared_ptr<EventSubscriptionState>;

struct Answered {
  std::optional<upnp::GenaAnswer> answer;
  std::string failure;  // without an answer: why
};

// Sends `request` to the gateway over a connection of its own and reads its
// answer's head. From this host's LAN address: miniupnpd takes only a
// CALLBACK on the address that asks.
asio::awaitable<Answered> exchange(State state, std::string request) {
  tcp::socket socket(state->executor);
  boost::system::error_code ec;
  socket.open(tcp::v4(), ec);
  if (!ec) socket.bind({state->local, 0}, ec);
  if (ec) co_return Answered{std::nullopt, ec.message()};
  const tcp::endpoint server{state->gateway, state->event_url.port};
  if (const auto [error] = co_await socket.async_connect(server, token); error)
    co_return Answered{std::nullopt, error.message()};
  if (const auto [error, size] = co_await asio::async_write(socket, asio::buffer(request), token); error)
    co_return Answered{std::nullopt, error.message()};
  upnp::SubscribeAnswerReader reader;
  std::array<char, 2048> buffer;
  while (reader.state() == upnp::SubscribeAnswerReader::State::need_more) {
    const auto [error, size] = co_await socket.async_read_some(asio::buffer(buffer), token);
    if (error == asio::error::eof) reader.finish();
    else if (error) co_return Answered{std::nullopt, error.message()};
    else reader.feed({buffer.data(), size});
  }
  if (reader.state() == upnp::SubscribeAnswerReader::State::failed)
    co_return Answered{std::nullopt, "no HTTP answer: " + reader.error()};
  co_return Answered{reader.message(), {}};
}

asio::awaitable<Answered> exchange_within(State state, std::string request, Timebase::Duration limit) {
  using namespace asio::experimental::awaitable_operators;
  auto& time = state->time;
  // Named before co_await (GCC 12 destroys temporaries in a co_await expression twice).
  auto task = exchange(state, std::move(request));
  auto outcome = co_await (std::move(task) || time.sleep_until(time.now() + limit));
  if (outcome.index() == 1)
    co_return Answered{std::nullopt, fmt::format("no answer within {} ms", milliseconds(limit))};
  co_return std::get<0>(std::move(outcome));
}

asio::awaitable<void> keep_subscribed(State state) {
  int failures = 0;
  for (;;) {
    const bool renewing = !state->sid.empty();
    auto request = renewing ? upnp::renewal_request(state->event_url, state->sid, kRequestedTimeout)
                            : upnp::subscribe_request(state->event_url, state->callback, kRequestedTimeout);
    state->subscribing = !renewing;
    state->early.reset();
    auto asking = exchange_within(state, std::move(request), kExchangeLimit);
    const auto answered = co_await std::move(asking);
    state->subscribing = false;
    if (state->closed) co_return;
    const auto what = renewing ? "renewing the subscription" : "subscribing";
    std::string failure = answered.failure;
    if (answered.answer) {
      auto granted = upnp::read_subscribe_answer(*answered.answer);
      if (granted) {
        const auto wait = policy::subscription_renewal_delay(granted->timeout);
        if (renewing) log::debug("UPnP events: renewed for {} s", granted->timeout.count());
        else log::info("UPnP events: subscribed to {} for {} s", state->event_url.path, granted->timeout.count());
        failures = 0;
        state->subscribed(std::move(*granted));
        co_await state->time.sleep_until(state->time.now() + wait);
        continue;
      }
      if (renewing) {
        // The gateway forgot it (miniupnpd: a restart, or an event it could
        // not deliver): a new one at once.
        log::info("UPnP events: the gateway refused the renewal ({}); subscribing again",
                  upnp::describe(granted.error()));
        state->lost();
        continue;
      }
      failure = fmt::format("HTTP {}: {}", answered.answer->result_int(), upnp::describe(granted.error()));
    }
    // A refused subscription, or no answer, is tried again with backoff; a
    // renewal without an answer as a renewal: the gateway may still hold it.
    const auto wait = policy::retry_delay(++failures, state->unit());
    const auto line = fmt::format("UPnP events: {} failed ({}); trying again in {} s", what, failure,
                                  std::max(1LL, milliseconds(wait) / 1000));
    if (failures == 1) log::info("{}", line);
    else log::debug("{}", line);
    co_await state->time.sleep_until(state->time.now() + wait);
  }
}

asio::awaitable<void> unsubscribe(State state, std::string sid) {
  auto asking = exchange_within(state, upnp::unsubscribe_request(state->event_url, sid), kUnsubscribeLimit);
  const auto answered = co_await std::move(asking);
  if (answered.answer) log::debug("UPnP events: unsubscribed {}: HTTP {}", sid, answered.answer->result_int());
  else log::debug("UPnP events: could not unsubscribe {}: {}", sid, answered.failure);
}

// Reads one request and answers it.
asio::awaitable<void> answer_request(State state, tcp::socket& socket) {
  upnp::NotifyReader reader;
  std::array<char, 4096> buffer;
  while (reader.state() == upnp::NotifyReader::State::need_more) {
    const auto [error, size] = co_await socket.async_read_some(asio::buffer(buffer), token);
    if (error == asio::error::eof) {
      reader.finish();
    } else if (error) {
      // Cancelled: serve() tells why.
      if (error != asio::error::operation_aborted)
        state->drop(fmt::format("a connection that failed: {}", error.message()));
      co_return;
    } else {
      reader.feed({buffer.data(), size});
    }
  }
  auto status = http::status::bad_request;
  if (reader.state() == upnp::NotifyReader::State::failed)
    state->drop(fmt::format("a request that is no HTTP, or over a limit: {}", reader.error()));
  else
    status = state->on_notify(upnp::read_notify(reader.message()));
  const auto answer = upnp::notify_answer(status);
  co_await asio::async_write(socket, asio::buffer(answer), token);
}

asio::awaitable<void> serve(State state, tcp::socket socket) {
  using namespace asio::experimental::awaitable_operators;
  struct Release {
    EventSubscriptionState& state;
    ~Release() { --state.connections; }
  } release{*state};
  auto& time = state->time;
  auto answering = answer_request(state, socket);
  const auto outcome = co_await (std::move(answering) || time.sleep_until(time.now() + kConnectionLimit));
  if (outcome.index() == 1) state->drop(fmt::format("a connection without a whole request after {} ms",
                                                    milliseconds(kConnectionLimit)));
}

asio::awaitable<void> accept_events(State state) {
  for (;;) {
    auto [error, socket] = co_await state->acceptor.async_accept(token);
    if (error == asio::error::operation_aborted) co_return;
    if (error) {
      // Out of descriptors, say: not in a busy loop.
      state->drop(fmt::format("a connection not accepted: {}", error.message()));
      co_await state->time.sleep_until(state->time.now() + kConnectionLimit);
      continue;
    }
    boost::system::error_code ec;
    const auto peer = socket.remote_endpoint(ec);
    if (ec || peer.address() != asio::ip::address(state->gateway)) {
      state->drop(fmt::format("a connection from {}, which is not the gateway", ec ? "?" : peer.address().to_string()));
      continue;
    }
    if (state->connections == kMaxConnections) {
      state->drop(fmt::format("a connection over {} at once", kMaxConnections));
      continue;
    }
    ++state->connections;
    asio::co_spawn(state->executor, serve(state, std::move(socket)), end_quietly_when_cancelled);
  }
}

}  // namespace

Result<std::unique_ptr<EventSubscription>> EventSubscription::start(asio::any_io_executor executor, Timebase& time,
                                                                   const std::string& event_url,
                                                                   const asio::ip::address_v4& local, Hint hint,
                                                                   std::uint64_t seed) {
  const auto url = upnp::parse_http_url(event_url);
  if (!url) return std::make_error_code(std::errc::invalid_argument);
  boost::system::error_code ec;
  const auto gateway = asio::ip::make_address_v4(url->host, ec);
  if (ec) return std::make_error_code(std::errc::invalid_argument);
  auto state = std::make_shared<EventSubscriptionState>(executor, time, *url, gateway, local, std::move(hint), seed);
  auto& acceptor = state->acceptor;
  acceptor.open(tcp::v4(), ec);
  if (!ec) acceptor.bind({local, 0}, ec);
  if (!ec) acceptor.listen(2 * kMaxConnections, ec);
  if (ec) return std::error_code(ec);
  state->callback = {local.to_string(), acceptor.local_endpoint().port(), kCallbackPath};
  asio::co_spawn(executor, accept_events(state),
                 asio::bind_cancellation_slot(state->stop_accepting.slot(), end_quietly_when_cancelled));
  asio::co_spawn(executor, keep_subscribed(state),
                 asio::bind_cancellation_slot(state->stop_subscribing.slot(), end_quietly_when_cancelled));
  return std::unique_ptr<EventSubscription>(new EventSubscription(std::move(state)));
}

EventSubscription::~EventSubscription() {
  auto& state = *state_;
  state.closed = true;
  state.stop_subscribing.emit(asio::cancellation_type::terminal);
  state.stop_accepting.emit(asio::cancellation_type::terminal);
  boost::system::error_code ignored;
  state.acceptor.close(ignored);
  if (!state.sid.empty())
    asio::co_spawn(state.executor, unsubscribe(state_, std::exchange(state.sid, {})), end_quietly_when_cancelled);
}

const std::string& EventSubscription::sid() const { return state_->sid; }

EventCounts EventSubscription::counts() const { return state_->counts; }

std::shared_ptr<void> watch_gateway_events(asio::any_io_executor executor, Timebase& time,
                                           const Connection& connection, std::function<void()> hint) {
  const auto& url = connection.protocol.event_url;
  if (url.empty()) return nullptr;
  auto subscription = EventSubscription::start(executor, time, url, connection.path.local.address, std::move(hint),
                                               std::random_device{}());
  if (!subscription) {
    log::info("UPnP events: cannot subscribe to {}: {}; mappings the gateway drops are found by reading them back",
              url, subscription.error().message());
    return nullptr;
  }
  return std::move(*subscription);
}

}  // namespace natkeeper
