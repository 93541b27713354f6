#include "agent/verify/verifier.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <random>

#include "agent/base/bounded_concurrency.hpp"
#include "agent/base/log.hpp"
#include "agent/codecs/stun_codec.hpp"
#include "agent/reflector/protocol.hpp"

namespace natkeeper {
namespace {

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;
using asio::ip::tcp;
using asio::ip::udp;
constexpr auto kToken = asio::as_tuple(asio::use_awaitable);
// A rate-limited reflector is asked again after this pause.
constexpr auto kRateLimitPause = 300ms;
// natkeeper-reflector allows 100 requests a second per source with a burst of
// 200 by default; staying at 90 with a burst of 150 leaves room for retries.
// A run asks once for the cookie and once per mapping: the Ring profile's 108
// mappings fit in the burst, so pacing only slows much larger plans.
constexpr auto kReflectorRequestInterval = std::chrono::microseconds(11'111);
constexpr int kReflectorBurst = 150;
constexpr std::string_view kKeyRefused =
    "the reflector wants a pre-shared key (--reflector-key-file) and refused this one";

template <std::size_t N>
std::array<std::uint8_t, N> random_bytes() {
  static thread_local std::mt19937 generator{std::random_device{}()};
  std::array<std::uint8_t, N> bytes{};
  for (auto& b : bytes) b = static_cast<std::uint8_t>(generator());
  return bytes;
}

// One datagram on `socket` within `wait`; nullopt on timeout or error.
asio::awaitable<std::optional<std::size_t>> receive_within(udp::socket& socket, std::span<std::uint8_t> buffer,
                                                           Clock::duration wait) {
  asio::steady_timer timer(socket.get_executor(), wait);
  auto outcome = co_await (socket.async_receive(asio::buffer(buffer.data(), buffer.size()), kToken) ||
                           timer.async_wait(kToken));
  if (outcome.index() != 0) co_return std::nullopt;
  const auto [ec, size] = std::get<0>(outcome);
  if (ec) co_return std::nullopt;
  co_return size;
}

// A socket on this host's address: a fresh port when `port` is 0. The error
// says when the port is taken (the application may hold it).
Result<udp::socket> open_udp(const asio::any_io_executor& executor, const asio::ip::address_v4& local,
                             std::uint16_t port) {
  udp::socket socket(executor);
  boost::system::error_code ec;
  socket.open(udp::v4(), ec);
  if (!ec) socket.bind({local, port}, ec);
  if (ec) return std::error_code(ec);
  return socket;
}

std::string endpoint_text(const udp::endpoint& endpoint) {
  return fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
}

// A STUN server's answer along the request's own flow to a request with
// `attribute`, which asked for an answer elsewhere: why it cannot verify.
std::string refusal(const stun::BindingResponse& answer, stun::Attribute attribute) {
  if (answer.type == stun::MessageType::binding_success)
    return fmt::format("it ignored {}", stun::name(attribute));
  auto text = answer.error_code
                  ? fmt::format("it answered {} with error {}", stun::name(attribute), *answer.error_code)
                  : fmt::format("it answered {} with an error without ERROR-CODE", stun::name(attribute));
  if (!answer.unknown_attributes.empty()) {
    std::vector<std::string> names;
    for (const auto unknown : answer.unknown_attributes) names.push_back(stun::name(unknown));
    text += fmt::format(", unknown to it: {}", fmt::join(names, ", "));
  }
  return text;
}

std::string busy_note(const Mapping& mapping) {
  return fmt::format("{} port {} is in use on this host (the application?): the probe cannot be observed",
                     to_string(mapping.request.proto), mapping.request.internal_port);
}

// Waits on `listener` for a datagram that `accept(bytes, sender)` takes, within `wait`.
template <class Accept>
asio::awaitable<bool> await_datagram(udp::socket& listener, Clock::duration wait, Accept accept) {
  std::array<std::uint8_t, 1500> buffer{};
  const auto deadline = Clock::now() + wait;
  while (Clock::now() < deadline) {
    asio::steady_timer timer(listener.get_executor(), deadline);
    udp::endpoint sender;
    auto outcome = co_await (listener.async_receive_from(asio::buffer(buffer), sender, kToken) ||
                             timer.async_wait(kToken));
    if (outcome.index() != 0) co_return false;
    const auto [ec, size] = std::get<0>(outcome);
    if (ec) co_return false;
    if (accept(std::span<const std::uint8_t>(buffer.data(), size), sender)) co_return true;
  }
  co_return false;
}

// Waits on `listener` for a connection that writes the probe with `token`.
asio::awaitable<bool> await_tcp_probe(tcp::acceptor& listener, Clock::duration wait,
                                      const reflector::Token& token) {
  const auto deadline = Clock::now() + wait;
  while (Clock::now() < deadline) {
    asio::steady_timer timer(listener.get_executor(), deadline);
    auto accepted = co_await (listener.async_accept(kToken) || timer.async_wait(kToken));
    if (accepted.index() != 0) co_return false;
    auto [ec, connection] = std::move(std::get<0>(accepted));
    if (ec) co_return false;
    std::array<std::uint8_t, reflector::probe::kSize> message{};
    auto read = co_await (asio::async_read(connection, asio::buffer(message), kToken) || timer.async_wait(kToken));
    if (read.index() != 0) co_return false;
    if (std::get<0>(std::get<0>(read))) continue;  // closed before the whole probe came
    const auto probe = reflector::decode_probe(message);
    if (probe && *probe == token) co_return true;
  }
  co_return false;
}

}  // namespace

// --- Device rules -------------------------------------------------------------------

Verification judge_device_handshake(reflector::Status status) {
  using reflector::Status;
  Verification result;
  switch (status) {
    case Status::connected:
      result.state = MappingState::verified;
      result.method = "reflector";
      result.note = "the device accepted a TCP connection from outside";
      break;
    case Status::refused:
      // A reset proves nothing: the gateway itself may send it.
      result.note = "a TCP connection from outside was refused, by the device or by the gateway: nothing proves "
                    "it reached the device (is anything listening on the device's port?)";
      break;
    case Status::no_answer:
      result.state = MappingState::unreachable;
      result.note = "a TCP connection from outside got no answer: the gateway does not forward it, or the device "
                    "is off or drops it";
      break;
    case Status::auth_failed:
      result.note = kKeyRefused;
      break;
    default:
      result.note = fmt::format("the reflector did not try a TCP handshake ({}): the device's port is not proven",
                                reflector::to_string(status));
      break;
  }
  return result;
}

std::optional<Canary> canary_from_run(const std::vector<MappingReport>& mappings) {
  auto own_udp = [](const MappingReport& m, MappingState state) {
    return m.mapping && !for_other_device(m.request) && m.request.proto == Transport::udp && m.state == state;
  };
  for (const auto& m : mappings)
    if (own_udp(m, MappingState::verified))
      return Canary{Canary::Outcome::verified, fmt::format("udp {} of this host", m.request.internal_port)};
  for (const auto& m : mappings)
    if (own_udp(m, MappingState::unreachable))
      return Canary{Canary::Outcome::unreachable, fmt::format("udp {} of this host", m.request.internal_port)};
  return std::nullopt;
}

Verification judge_device_udp(const Canary& canary, NatKind nat) {
  Verification result;
  switch (canary.outcome) {
    case Canary::Outcome::verified:
      result.note = fmt::format("the gateway forwards: a canary port to this host was verified ({}); the device "
                                "itself cannot be observed from here",
                                canary.what);
      break;
    case Canary::Outcome::unreachable:
      if (nat == NatKind::double_nat || nat == NatKind::cgnat) {
        result.state = MappingState::unreachable;
        result.note = fmt::format("a canary port to this host ({}) was not reachable from outside, and the "
                                  "gateway's external address is not the public one (double NAT or CGNAT): the "
                                  "device's port is not reachable either",
                                  canary.what);
      } else {
        result.note = fmt::format("not proven: a canary port to this host ({}) was not reachable from outside "
                                  "either (the gateway may not forward at all, or this host's firewall dropped it); "
                                  "the device itself cannot be observed from here",
                                  canary.what);
      }
      break;
    case Canary::Outcome::unknown:
      result.note = fmt::format("the device itself cannot be observed from here, and no canary showed whether the "
                                "gateway forwards: {}",
                                canary.what);
      break;
  }
  return result;
}

// --- The reflector's control socket --------------------------------------------------

struct Verifier::Control {
  // A request awaiting its reply: the reader stores the reply and cancels the timer.
  struct Waiter {
    asio::steady_timer timer;
    std::optional<reflector::Reply> reply;
  };
  udp::socket socket;
  udp::endpoint reflector;
  std::map<reflector::Token, Waiter*> waiters;
  explicit Control(udp::socket s, udp::endpoint r) : socket(std::move(s)), reflector(r) {}
};

namespace {

// Hands each reply from the reflector to the request with its token, until the
// socket is closed.
asio::awaitable<void> read_replies(std::shared_ptr<Verifier::Control> control) {
  std::array<std::uint8_t, reflector::request::kMaxSize> buffer{};
  for (;;) {
    udp::endpoint sender;
    auto [ec, size] = co_await control->socket.async_receive_from(asio::buffer(buffer), sender, kToken);
    if (ec) co_return;  // closed; any other error would repeat at once
    if (sender != control->reflector) continue;
    const auto reply = reflector::decode_reply(std::span<const std::uint8_t>(buffer.data(), size));
    if (!reply) continue;
    const auto waiting = control->waiters.find(reply->token);
    if (waiting == control->waiters.end()) continue;  // late: its request gave up
    waiting->second->reply = *reply;
    waiting->second->timer.cancel();
  }
}

}  // namespace

// --- Verifier ----------------------------------------------------------------------

Verifier::Verifier(asio::ip::address_v4 local_address, VerifyOptions options)
    : local_address_(local_address), options_(std::move(options)) {}

Verifier::~Verifier() {
  if (!control_) return;
  boost::system::error_code ignored;
  control_->socket.close(ignored);  // ends read_replies
}

asio::awaitable<void> Verifier::prepare() {
  const auto executor = co_await asio::this_coro::executor;
  if (options_.reflector) {
    if (auto socket = open_udp(executor, local_address_, 0)) {
      control_ = std::make_shared<Control>(std::move(*socket), *options_.reflector);
      asio::co_spawn(executor, read_replies(control_), asio::detached);
      // A request without a cookie makes the reflector answer with one, and
      // with the address it saw: it sends no probe for it.
      for (int attempt = 0; attempt < options_.attempts && !reflector_answers_; ++attempt) {
        const reflector::RequestFields fields{random_bytes<reflector::kTokenSize>(), Transport::udp, 9, {},
                                              reflector::ProbeKind::deliver};
        const auto reply = co_await exchange(fields, options_.wait_per_attempt);
        if (!reply || reply->type != reflector::MessageType::cookie) continue;
        reflector_answers_ = true;
        cookie_ = reply->cookie;
        observer_ = Observer{"reflector", reply->observed.address};
      }
    }
    if (!reflector_answers_)
      log::warning("the reflector at {} does not answer: mappings cannot be verified through it",
                   endpoint_text(*options_.reflector));
  }
  if (options_.stun) {
    for (int attempt = 0; attempt < options_.attempts && !stun_answers_; ++attempt) {
      auto sender = open_udp(executor, local_address_, 0);
      if (!sender) break;
      const auto id = random_bytes<stun::kTransactionIdSize>();
      const auto request = stun::encode_binding_request({id, 0, std::nullopt});
      boost::system::error_code ignored;
      sender->send_to(asio::buffer(request), *options_.stun, 0, ignored);
      std::array<std::uint8_t, stun::kMaxMessageSize> buffer{};
      const auto size = co_await receive_within(*sender, buffer, options_.wait_per_attempt);
      if (!size) continue;
      const auto response = stun::decode_binding_response(std::span<const std::uint8_t>(buffer.data(), *size));
      if (!response || response->transaction_id != id || !response->mapped) continue;
      stun_answers_ = true;
      stun_has_other_address_ = response->other_address.has_value();
      if (!observer_) observer_ = Observer{"stun", response->mapped->address()};
    }
    if (!stun_answers_)
      log::warning("the STUN server at {} does not answer: UDP mappings cannot be verified through it",
                   endpoint_text(*options_.stun));
    else if (!stun_has_other_address_)
      log::info("the STUN server at {} names no other address (OTHER-ADDRESS): CHANGE-REQUEST is not used",
                endpoint_text(*options_.stun));
  }
}

asio::awaitable<Verification> Verifier::verify(const Mapping& mapping) {
  const bool udp_mapping = mapping.request.proto == Transport::udp;
  if (for_other_device(mapping.request)) {
    Verification device;
    if (udp_mapping) device.note = "the device itself cannot be observed from here";
    else if (reflector_answers_) co_return co_await verify_device_tcp(mapping);
    else if (options_.reflector) device.note = "the reflector does not answer: the device's TCP port is not proven";
    else device.note = "a device's TCP port is proven only through natkeeper-reflector (--reflector)";
    co_return device;
  }
  if (reflector_answers_) co_return co_await verify_with_reflector(mapping);
  if (udp_mapping && stun_answers_) co_return co_await verify_with_stun(mapping);
  Verification none;
  if (!options_.reflector && !options_.stun)
    none.note = "no reflector or STUN server configured (--reflector, --stun)";
  else if (!udp_mapping && !options_.reflector)
    none.note = "TCP mappings are verified only through natkeeper-reflector (--reflector)";
  else
    none.note = "the verification server does not answer";
  co_return none;
}

asio::awaitable<Verification> Verifier::verify_with_reflector(const Mapping& mapping) {
  const auto executor = co_await asio::this_coro::executor;
  const auto proto = mapping.request.proto;
  Verification result;
  // Listen where the probe must arrive before anything is asked.
  std::optional<udp::socket> udp_listener;
  std::optional<tcp::acceptor> tcp_listener;
  boost::system::error_code ec;
  if (proto == Transport::udp) {
    auto socket = open_udp(executor, local_address_, mapping.request.internal_port);
    if (!socket) ec = boost::system::error_code(socket.error().value(), boost::system::system_category());
    else udp_listener.emplace(std::move(*socket));
  } else {
    tcp_listener.emplace(executor);
    tcp_listener->open(tcp::v4(), ec);
    // The probe connection an earlier run accepted may linger in TIME_WAIT;
    // a port an application listens on still refuses the bind.
    if (!ec) tcp_listener->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) tcp_listener->bind({local_address_, mapping.request.internal_port}, ec);
    if (!ec) tcp_listener->listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec == asio::error::address_in_use) {
    result.note = busy_note(mapping);
    co_return result;
  }
  if (ec) {
    result.note = fmt::format("cannot listen on port {}: {}", mapping.request.internal_port, ec.message());
    co_return result;
  }

  bool probe_sent = false;
  for (int attempt = 0; attempt < options_.attempts; ++attempt) {
    const auto token = random_bytes<reflector::kTokenSize>();
    const reflector::RequestFields fields{token, proto, mapping.external_port, {}, reflector::ProbeKind::deliver};
    const auto answer = co_await ask_reflector(fields, options_.wait_per_attempt);
    if (answer && answer->reply.status == reflector::Status::auth_failed) {
      result.note = kKeyRefused;
      co_return result;
    }
    if (!answer || answer->reply.status != reflector::Status::sent) {
      // Silence (lost, or dropped over the rate), rate limited or busy: back off.
      asio::steady_timer pause(executor, kRateLimitPause * (attempt + 1));
      co_await pause.async_wait(kToken);
      continue;
    }
    probe_sent = true;
    bool arrived = false;
    if (udp_listener) {
      auto carries_token = [token](std::span<const std::uint8_t> datagram, const udp::endpoint&) {
        const auto probe = reflector::decode_probe(datagram);
        return probe && *probe == token;
      };
      arrived = co_await await_datagram(*udp_listener, options_.wait_per_attempt, carries_token);
    } else {
      arrived = co_await await_tcp_probe(*tcp_listener, options_.wait_per_attempt, token);
    }
    if (arrived) {
      result.state = MappingState::verified;
      result.method = "reflector";
      result.round_trip = Clock::now() - answer->sent;
      co_return result;
    }
  }
  if (probe_sent) {
    result.state = MappingState::unreachable;
    result.note = "the reflector's probe never arrived";
  } else {
    result.note = "the reflector did not answer the probe request";
  }
  co_return result;
}

asio::awaitable<Verification> Verifier::verify_device_tcp(const Mapping& mapping) {
  const auto executor = co_await asio::this_coro::executor;
  Verification result;
  result.note = "the reflector does not answer handshake requests (a natkeeper-reflector older than this "
                "natkeeper drops them): the device's TCP port cannot be proven";
  if (handshakes_unanswered_) co_return result;
  bool answered = false;
  for (int attempt = 0; attempt < options_.attempts; ++attempt) {
    const reflector::RequestFields fields{random_bytes<reflector::kTokenSize>(), Transport::tcp,
                                          mapping.external_port, {}, reflector::ProbeKind::handshake};
    const auto answer =
        co_await ask_reflector(fields, options_.reflector_handshake_time + options_.wait_per_attempt);
    if (!answer) continue;
    answered = true;
    const auto status = answer->reply.status;
    if (status == reflector::Status::rate_limited || status == reflector::Status::busy) {
      asio::steady_timer pause(executor, kRateLimitPause * (attempt + 1));
      co_await pause.async_wait(kToken);
      continue;
    }
    result = judge_device_handshake(status);
    if (result.state == MappingState::verified) result.round_trip = Clock::now() - answer->sent;
    co_return result;
  }
  if (!answered) handshakes_unanswered_ = true;
  else result = judge_device_handshake(reflector::Status::busy);
  co_return result;
}

asio::awaitable<void> Verifier::pace_reflector_request() {
  const auto now = Clock::now();
  next_request_slot_ = std::max(next_request_slot_, now - kReflectorBurst * kReflectorRequestInterval);
  const auto slot = next_request_slot_;
  next_request_slot_ += kReflectorRequestInterval;
  if (slot <= now) co_return;
  asio::steady_timer wait(co_await asio::this_coro::executor, slot);
  co_await wait.async_wait(kToken);
}

asio::awaitable<std::optional<reflector::Reply>> Verifier::exchange(const reflector::RequestFields& fields,
                                                                    Clock::duration wait) {
  co_await pace_reflector_request();
  Control::Waiter waiter{asio::steady_timer(co_await asio::this_coro::executor, wait), std::nullopt};
  const auto entry = control_->waiters.emplace(fields.token, &waiter).first;
  struct Leave {
    Control& control;
    decltype(entry) position;
    ~Leave() { control.waiters.erase(position); }
  } leave{*control_, entry};
  const auto request = reflector::encode_request(fields, options_.reflector_key);
  boost::system::error_code ignored;
  control_->socket.send_to(asio::buffer(request), control_->reflector, 0, ignored);
  co_await waiter.timer.async_wait(kToken);  // ends with the reply (cancelled) or the time
  co_return waiter.reply;
}

asio::awaitable<std::optional<Verifier::Answer>> Verifier::ask_reflector(reflector::RequestFields fields,
                                                                       Clock::duration wait) {
  // The second round only when the first brought a fresh cookie.
  for (int round = 0; round < 2; ++round) {
    fields.cookie = cookie_;
    const auto sent = Clock::now();
    const auto reply = co_await exchange(fields, wait);
    if (!reply) co_return std::nullopt;
    if (reply->type == reflector::MessageType::result) co_return Answer{*reply, sent};
    cookie_ = reply->cookie;
  }
  co_return std::nullopt;
}

asio::awaitable<Verification> Verifier::verify_with_stun(const Mapping& mapping) {
  const auto executor = co_await asio::this_coro::executor;
  Verification result;
  auto listener = open_udp(executor, local_address_, mapping.request.internal_port);
  if (!listener) {
    result.note = listener.error() == std::errc::address_in_use
                      ? busy_note(mapping)
                      : fmt::format("cannot listen on port {}: {}", mapping.request.internal_port,
                                    listener.error().message());
    co_return result;
  }
  auto verified = [&result](Clock::time_point started) {
    result.state = MappingState::verified;
    result.method = "stun";
    result.round_trip = Clock::now() - started;
    return result;
  };
  // A success for our transaction; `not_from`: the server's own address, which
  // an answer sent back along the request's flow would come from (no proof).
  auto answers = [](const stun::TransactionId& id, std::optional<udp::endpoint> not_from) {
    return [id, not_from](std::span<const std::uint8_t> datagram, const udp::endpoint& sender) {
      const auto response = stun::decode_binding_response(datagram);
      return response && response->type == stun::MessageType::binding_success && response->transaction_id == id &&
             sender != not_from;
    };
  };
  // How the server showed that it does not do what an attribute asks: an
  // answer along the request's own flow. Without one, a request unanswered
  // through the mapping says the mapping does not forward.
  std::optional<std::string> response_port_refused, change_request_refused;

  for (int attempt = 0; attempt < options_.attempts && !response_port_refused; ++attempt) {
    // RESPONSE-PORT (RFC 5780 §7.5): the server answers to our public address
    // at the external port, i.e. through the mapping, from a fresh port of ours.
    auto sender = open_udp(executor, local_address_, 0);
    if (!sender) break;
    const auto id = random_bytes<stun::kTransactionIdSize>();
    const auto request = stun::encode_binding_request({id, 0, mapping.external_port});
    const auto started = Clock::now();
    boost::system::error_code ignored;
    sender->send_to(asio::buffer(request), *options_.stun, 0, ignored);
    std::optional<stun::BindingResponse> back_to_sender;
    auto returned = [&back_to_sender, id](std::span<const std::uint8_t> datagram, const udp::endpoint&) {
      auto response = stun::decode_binding_response(datagram);
      if (!response || response->transaction_id != id) return false;
      back_to_sender = std::move(*response);
      return true;
    };
    const auto outcome = co_await (await_datagram(*listener, options_.wait_per_attempt, answers(id, std::nullopt)) ||
                                   await_datagram(*sender, options_.wait_per_attempt, returned));
    if (outcome.index() == 0 && std::get<0>(outcome)) co_return verified(started);
    if (back_to_sender) response_port_refused = refusal(*back_to_sender, stun::Attribute::response_port);
  }
  // A server without RESPONSE-PORT: ask from the internal port itself for an
  // answer from its other address and port, which only the mapping lets in.
  // A server that names no other address has none to answer from (RFC 5780 §7.4).
  if (!stun_has_other_address_)
    change_request_refused = "no OTHER-ADDRESS in its Binding response: CHANGE-REQUEST not sent";
  for (int attempt = 0; attempt < options_.attempts && !change_request_refused; ++attempt) {
    const auto id = random_bytes<stun::kTransactionIdSize>();
    const auto request = stun::encode_binding_request({id, stun::kChangeIp | stun::kChangePort, std::nullopt});
    const auto started = Clock::now();
    boost::system::error_code ignored;
    listener->send_to(asio::buffer(request), *options_.stun, 0, ignored);
    std::optional<stun::BindingResponse> along_the_flow;
    auto answered = [&along_the_flow, proof = answers(id, options_.stun), id, server = *options_.stun](
                        std::span<const std::uint8_t> datagram, const udp::endpoint& sender) {
      if (proof(datagram, sender)) return true;
      auto response = stun::decode_binding_response(datagram);
      if (sender != server || !response || response->transaction_id != id) return false;
      along_the_flow = std::move(*response);
      return true;
    };
    if (!co_await await_datagram(*listener, options_.wait_per_attempt, answered)) continue;
    if (!along_the_flow) co_return verified(started);
    change_request_refused = refusal(*along_the_flow, stun::Attribute::change_request);
  }
  if (response_port_refused && change_request_refused) {
    // Neither request can be answered through the mapping: silence proves nothing.
    result.note = fmt::format("not verified: the STUN server {} does not support RFC 5780 ({}; {})",
                              endpoint_text(*options_.stun), *response_port_refused, *change_request_refused);
    co_return result;
  }
  result.state = MappingState::unreachable;
  result.note = "the STUN server's answers to the external port never arrived";
  co_return result;
}

}  // namespace natkeeper
