#include "mappers/natpmp/natpmp_mapper.hpp"

#include <arpa/inet.h>
#include <natpmp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <limits>

#include "mappers/errors.hpp"
#include "mappers/natpmp/natpmp_codec.hpp"

namespace natkeeper::natpmp {
namespace {

using Clock = std::chrono::steady_clock;
using asio::ip::address_v4;
constexpr auto token = asio::as_tuple(asio::use_awaitable);

// A datagram longer than this is no reply (the longest is 16 bytes).
constexpr std::size_t kPeekSize = 32;
// Discarded in one go before the loop gets a turn again.
constexpr int kMaxDiscardsPerTurn = 64;

std::error_code errno_code(int error) { return {error, std::system_category()}; }

std::error_code aborted() { return make_error_code(std::errc::operation_canceled); }

// The result values readnatpmpresponseorretry gives for a reply it read.
bool is_read_reply(int r) {
  switch (r) {
    case 0:
    case NATPMP_ERR_UNSUPPORTEDVERSION:
    case NATPMP_ERR_UNSUPPORTEDOPCODE:
    case NATPMP_ERR_UNDEFINEDERROR:
    case NATPMP_ERR_NOTAUTHORIZED:
    case NATPMP_ERR_NETWORKFAILURE:
    case NATPMP_ERR_OUTOFRESOURCES:
      return true;
    default:
      return false;
  }
}

}  // namespace

// One natpmp_t. libnatpmp owns the socket, builds the requests and keeps the
// retransmission schedule; the session decides when libnatpmp may read. Asio
// sees the same descriptor only to wait on it, and hands it back (release)
// before closenatpmp closes it.
class Session {
 public:
  static Result<std::unique_ptr<Session>> open(asio::any_io_executor executor, address_v4 gateway) {
    std::unique_ptr<Session> session(new Session(executor, gateway));
    // libnatpmp compares the reply's source with this in network byte order.
    const auto forced_gateway = static_cast<in_addr_t>(htonl(gateway.to_uint()));
    errno = 0;
    const int r = initnatpmp(&session->pmp_, 1, forced_gateway);
    if (r < 0) {
      const int error = errno ? errno : EIO;
      // A failed fcntl or connect leaves the socket open in 20150609.
      if (r != NATPMP_ERR_SOCKETERROR && session->pmp_.s >= 0) ::close(session->pmp_.s);
      return errno_code(error);
    }
    boost::system::error_code ec;
    session->socket_.assign(asio::ip::udp::v4(), session->pmp_.s, ec);
    if (ec) {
      closenatpmp(&session->pmp_);
      return std::error_code(ec);
    }
    session->open_ = true;
    return session;
  }

  ~Session() {
    if (!open_) return;
    boost::system::error_code ignored;
    socket_.release(ignored);  // Asio must not close it: closenatpmp does
    closenatpmp(&pmp_);
  }

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  asio::awaitable<Result<Reply>> public_address(Clock::time_point deadline) {
    discard_stale();
    errno = 0;
    if (sendpublicaddressrequest(&pmp_) < 0) co_return send_error();
    sent();
    const Expected expected{Opcode::public_address, 0, false};
    co_return co_await exchange(expected, deadline);
  }

  // lifetime 0 deletes (then the suggested port must be 0, §3.4).
  asio::awaitable<Result<Reply>> mapping(Transport proto, std::uint16_t internal_port,
                                         std::uint16_t suggested_port, std::uint32_t lifetime,
                                         Clock::time_point deadline) {
    discard_stale();
    const int protocol = proto == Transport::tcp ? NATPMP_PROTOCOL_TCP : NATPMP_PROTOCOL_UDP;
    errno = 0;
    if (sendnewportmappingrequest(&pmp_, protocol, internal_port, suggested_port, lifetime) < 0)
      co_return send_error();
    sent();
    const Expected expected{mapping_opcode(proto), internal_port, lifetime == 0};
    co_return co_await exchange(expected, deadline);
  }

  // Only after an exchange that ended with its reply read may the next request
  // use this socket; otherwise a late reply could be taken for the next one.
  bool reusable() const { return reusable_; }
  std::chrono::steady_clock::duration round_trip() const { return replied_ - last_send_; }
  Clock::time_point replied() const { return replied_; }
  std::uint64_t take_dropped() { return std::exchange(dropped_, 0); }

 private:
  Session(asio::any_io_executor executor, address_v4 gateway)
      : socket_(executor), timer_(executor), gateway_(gateway) {}

  std::error_code send_error() {
    const int error = errno ? errno : EIO;
    reusable_ = false;
    return errno_code(error);
  }

  void sent() {
    reusable_ = false;
    last_send_ = Clock::now();
    tries_ = pmp_.try_number;
  }

  // Waits for the reply that `expected` describes, letting libnatpmp
  // retransmit on its schedule, until `deadline`.
  asio::awaitable<Result<Reply>> exchange(Expected expected, Clock::time_point deadline) {
    using namespace asio::experimental::awaitable_operators;
    for (;;) {
      if (auto done = take_queued(expected)) co_return std::move(*done);

      timeval timeout{};
      if (getnatpmprequesttimeout(&pmp_, &timeout) < 0) co_return make_error_code(Errc::bad_reply);
      const auto now = Clock::now();
      if (now >= deadline) co_return make_error_code(Errc::timed_out);
      const auto until_retry = std::chrono::seconds(timeout.tv_sec) +
                               std::chrono::microseconds(timeout.tv_usec);
      if (until_retry <= std::chrono::microseconds::zero()) {
        // Nothing queued and the retry time has come: libnatpmp's read finds
        // no datagram and retransmits, or reports that nine tries are spent.
        if (auto failed = retransmit()) co_return *failed;
        continue;
      }

      // libnatpmp's schedule runs on gettimeofday, this timer on the steady
      // clock: a millisecond's slack keeps it from waking a hair early.
      timer_.expires_at(std::min(deadline, now + std::chrono::duration_cast<Clock::duration>(until_retry) +
                                               std::chrono::milliseconds(1)));
      // A peeking receive, not async_wait(wait_read): Asio tries a receive at
      // once, so a datagram whose readiness edge came while no wait was
      // queued is still seen. Nothing is consumed; take_queued looks again.
      auto readable = socket_.async_receive_from(asio::buffer(peek_buffer_), peek_source_,
                                                 asio::socket_base::message_peek, token);
      auto retry_time = timer_.async_wait(token);
      auto either = std::move(readable) || std::move(retry_time);
      const auto outcome = co_await std::move(either);
      if (outcome.index() == 0) {
        const auto ec = std::get<0>(std::get<0>(outcome));
        if (ec == asio::error::operation_aborted) co_return aborted();
        if (ec == asio::error::connection_refused) co_return make_error_code(Errc::no_gateway_answer);
        if (ec && ec != asio::error::message_size) co_return std::error_code(ec);
      } else {
        const auto [ec] = std::get<1>(outcome);
        if (ec) co_return aborted();
      }
    }
  }

  // Looks at each queued datagram without consuming it. The invalid are
  // discarded and counted; the valid reply is left for libnatpmp to read (it
  // reads the head of the queue, the datagram just checked). nullopt: nothing
  // (more) to do until the socket is readable again.
  std::optional<Result<Reply>> take_queued(const Expected& expected) {
    for (int discards = 0; discards < kMaxDiscardsPerTurn;) {
      std::array<std::uint8_t, kPeekSize> buffer{};
      sockaddr_in source{};
      socklen_t source_size = sizeof source;
      const ssize_t n = ::recvfrom(pmp_.s, buffer.data(), buffer.size(), MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC,
                                   reinterpret_cast<sockaddr*>(&source), &source_size);
      if (n < 0) {
        const int error = errno;
        if (error == EAGAIN || error == EWOULDBLOCK) return std::nullopt;
        if (error == EINTR) continue;
        // ICMP port unreachable: nothing listens on the gateway's 5351.
        if (error == ECONNREFUSED) return Result<Reply>(make_error_code(Errc::no_gateway_answer));
        return Result<Reply>(errno_code(error));
      }
      const auto size = static_cast<std::size_t>(n);
      Decoded decoded;
      if (source.sin_family == AF_INET && size <= buffer.size() &&
          is_from_server(address_v4(ntohl(source.sin_addr.s_addr)), ntohs(source.sin_port), gateway_))
        decoded = decode_reply(std::span(buffer.data(), size), expected);
      if (!decoded) {
        std::uint8_t byte;
        ::recv(pmp_.s, &byte, 1, MSG_DONTWAIT);  // one recv takes the whole datagram
        ++dropped_;
        ++discards;
        continue;
      }
      natpmpresp_t response{};
      const int r = readnatpmpresponseorretry(&pmp_, &response);
      if (is_read_reply(r)) {
        // After an error reply 20150609 keeps the request pending; it is over.
        pmp_.has_pending_request = 0;
        reusable_ = true;
        replied_ = Clock::now();
        return Result<Reply>(*decoded.reply);
      }
      // Not read (a socket error was reported first): look again.
    }
    return std::nullopt;
  }

  // The retry time has come with nothing queued. nullopt: carry on waiting.
  std::optional<std::error_code> retransmit() {
    natpmpresp_t response{};
    errno = 0;
    const int r = readnatpmpresponseorretry(&pmp_, &response);
    const int error = errno ? errno : EIO;
    if (r == NATPMP_TRYAGAIN) {
      if (pmp_.try_number != tries_) {
        tries_ = pmp_.try_number;
        last_send_ = Clock::now();
      }
      return std::nullopt;
    }
    // Nine tries spent, or ICMP port unreachable.
    if (r == NATPMP_ERR_NOGATEWAYSUPPORT) return make_error_code(Errc::no_gateway_answer);
    if (r == NATPMP_ERR_SENDERR || r == NATPMP_ERR_RECVFROM) return errno_code(error);
    if (r == NATPMP_ERR_NOPENDINGREQ || r == NATPMP_ERR_INVALIDARGS) return make_error_code(Errc::bad_reply);
    // A datagram arrived between take_queued and this read, and libnatpmp read
    // it unchecked. Its content is not used; the request stays pending and is
    // retransmitted on the next turn (NAT-PMP requests are idempotent).
    ++dropped_;
    pmp_.has_pending_request = 1;
    return std::nullopt;
  }

  // Replies that came after the previous request was answered (duplicates of
  // a retransmitted request) must not be taken for the next one.
  void discard_stale() {
    std::uint8_t byte;
    for (int i = 0; i < kMaxDiscardsPerTurn; ++i) {
      const ssize_t n = ::recv(pmp_.s, &byte, 1, MSG_DONTWAIT);
      if (n >= 0) {
        ++dropped_;
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      // Any other error was a stale ICMP report, now cleared: carry on.
    }
  }

  natpmp_t pmp_{};
  bool open_ = false;
  asio::ip::udp::socket socket_;
  asio::steady_timer timer_;
  address_v4 gateway_;
  bool reusable_ = false;
  std::uint64_t dropped_ = 0;
  int tries_ = 0;
  Clock::time_point last_send_{};
  Clock::time_point replied_{};
  std::array<std::uint8_t, kPeekSize> peek_buffer_{};
  asio::ip::udp::endpoint peek_source_;
};

asio::awaitable<Result<PublicAddressProbe>> probe_public_address(address_v4 gateway,
                                                                 Clock::duration max_wait) {
  auto executor = co_await asio::this_coro::executor;
  auto opened = Session::open(executor, gateway);
  if (!opened) co_return opened.error();
  Session& session = **opened;
  auto reply = co_await session.public_address(Clock::now() + max_wait);
  if (!reply) co_return reply.error();
  if (reply->result_code != 0) co_return make_natpmp_error(reply->result_code);
  if (reply->external_address.is_unspecified()) co_return make_error_code(Errc::bad_reply);
  co_return PublicAddressProbe{reply->external_address, reply->epoch, session.round_trip(),
                               session.replied(), session.take_dropped()};
}

// --- NatpmpMapper -------------------------------------------------------------

// A session lent out of the pool; given back (or closed) when destroyed.
class NatpmpMapper::Lease {
 public:
  Lease(NatpmpMapper* owner, std::unique_ptr<Session> session)
      : owner_(owner), session_(std::move(session)) {}
  Lease(Lease&& other) noexcept = default;
  Lease& operator=(Lease&&) = delete;
  ~Lease() {
    if (session_) owner_->release(std::move(session_));
  }
  Session& session() { return *session_; }

 private:
  NatpmpMapper* owner_;
  std::unique_ptr<Session> session_;
};

// Waits for a session: handed over directly, or a free slot to open one in.
// Queued while it lives, so a coroutine destroyed while suspended leaves no
// dangling pointer behind, and gives back what it was handed and never used.
struct NatpmpMapper::PoolWaiter {
  explicit PoolWaiter(NatpmpMapper& owner)
      : mapper(owner), wake(owner.executor_, Clock::time_point::max()) {
    mapper.pool_waiters_.push_back(this);
  }
  ~PoolWaiter() {
    leave();
    if (session) mapper.release(std::move(session));
    if (slot) mapper.release_slot();
  }
  PoolWaiter(const PoolWaiter&) = delete;
  PoolWaiter& operator=(const PoolWaiter&) = delete;
  void leave() { std::erase(mapper.pool_waiters_, this); }

  NatpmpMapper& mapper;
  asio::steady_timer wake;
  std::unique_ptr<Session> session;
  bool slot = false;
};

// Waits for the address request another caller has in flight.
struct NatpmpMapper::AddressWaiter {
  explicit AddressWaiter(NatpmpMapper& owner)
      : mapper(owner), wake(owner.executor_, Clock::time_point::max()) {
    mapper.address_waiters_.push_back(this);
  }
  ~AddressWaiter() { std::erase(mapper.address_waiters_, this); }
  AddressWaiter(const AddressWaiter&) = delete;
  AddressWaiter& operator=(const AddressWaiter&) = delete;

  NatpmpMapper& mapper;
  asio::steady_timer wake;
  std::optional<Result<asio::ip::address>> result;
  bool retry = false;  // that request was cancelled: ask again
};

NatpmpMapper::NatpmpMapper(asio::any_io_executor executor, address_v4 gateway, NatpmpMapperOptions options)
    : executor_(std::move(executor)), gateway_(gateway), options_(options) {
  options_.max_parallel = std::max<std::size_t>(options_.max_parallel, 1);
}

NatpmpMapper::~NatpmpMapper() = default;

asio::awaitable<Result<NatpmpMapper::Lease>> NatpmpMapper::acquire() {
  if (!idle_.empty()) {
    auto session = std::move(idle_.back());
    idle_.pop_back();
    co_return Lease(this, std::move(session));
  }
  if (open_sessions_ < options_.max_parallel) {
    ++open_sessions_;
  } else {
    PoolWaiter waiter(*this);
    co_await waiter.wake.async_wait(token);
    waiter.leave();
    if (waiter.session) co_return Lease(this, std::move(waiter.session));
    if (!waiter.slot) co_return aborted();
    waiter.slot = false;  // this caller uses it
  }
  auto opened = Session::open(executor_, gateway_);
  if (!opened) {
    release_slot();
    co_return opened.error();
  }
  co_return Lease(this, std::move(*opened));
}

void NatpmpMapper::release(std::unique_ptr<Session> session) {
  dropped_ += session->take_dropped();
  if (!session->reusable()) {
    session.reset();
    release_slot();
    return;
  }
  if (!pool_waiters_.empty()) {
    auto* waiter = pool_waiters_.front();
    pool_waiters_.pop_front();
    waiter->session = std::move(session);
    waiter->wake.cancel();
    return;
  }
  idle_.push_back(std::move(session));
}

void NatpmpMapper::release_slot() {
  if (!pool_waiters_.empty()) {
    auto* waiter = pool_waiters_.front();
    pool_waiters_.pop_front();
    waiter->slot = true;
    waiter->wake.cancel();
    return;
  }
  --open_sessions_;
}

void NatpmpMapper::note_epoch(std::uint32_t epoch, Clock::time_point when) {
  last_epoch_ = epoch;
  if (!epoch_.lost_state(epoch, when)) return;
  lost_state_ = true;
  ++lost_state_count_;
  // A gateway that restarted may well have another external address.
  external_ip_.reset();
}

bool NatpmpMapper::take_gateway_lost_state() { return std::exchange(lost_state_, false); }

void NatpmpMapper::adopt_probe(const PublicAddressProbe& probe) {
  note_epoch(probe.epoch, probe.received);
  if (!probe.external_address.is_unspecified()) external_ip_ = asio::ip::address(probe.external_address);
}

bool NatpmpMapper::on_announcement(std::span<const std::uint8_t> datagram, const asio::ip::address& source,
                                   std::uint16_t source_port) {
  if (!source.is_v4() || !is_from_server(source.to_v4(), source_port, gateway_)) return false;
  const Expected announcement{Opcode::public_address, 0, false};
  const auto decoded = decode_reply(datagram, announcement);
  if (!decoded || decoded.reply->result_code != 0 || decoded.reply->external_address.is_unspecified())
    return false;
  note_epoch(decoded.reply->epoch, Clock::now());
  external_ip_ = asio::ip::address(decoded.reply->external_address);
  return true;
}

void NatpmpMapper::finish_address_request(Result<asio::ip::address> result) {
  address_in_flight_ = false;
  const bool cancelled = !result && result.error() == std::errc::operation_canceled;
  for (auto* waiter : address_waiters_) {
    if (cancelled)
      waiter->retry = true;
    else
      waiter->result = result;
    waiter->wake.cancel();
  }
}

asio::awaitable<Result<asio::ip::address>> NatpmpMapper::external_address() {
  while (!external_ip_ && address_in_flight_) {
    AddressWaiter waiter(*this);
    co_await waiter.wake.async_wait(token);
    if (waiter.result) co_return *waiter.result;
    if (!waiter.retry) co_return aborted();
  }
  if (external_ip_) co_return *external_ip_;

  // This caller asks; the others wait for its answer. The guard wakes them
  // however this coroutine ends (an exception, or destruction while suspended).
  address_in_flight_ = true;
  struct Finish {
    NatpmpMapper* mapper;
    bool done = false;
    ~Finish() {
      if (!done) mapper->finish_address_request(aborted());
    }
  } finish{this};

  Result<asio::ip::address> result = aborted();
  {
    auto lease = co_await acquire();
    if (!lease) {
      result = lease.error();
    } else {
      auto reply = co_await lease->session().public_address(Clock::now() + options_.max_request_time);
      if (!reply) {
        result = reply.error();
      } else {
        note_epoch(reply->epoch, lease->session().replied());
        if (reply->result_code != 0)
          result = make_natpmp_error(reply->result_code);
        else if (reply->external_address.is_unspecified())
          result = make_error_code(Errc::bad_reply);
        else
          result = *(external_ip_ = asio::ip::address(reply->external_address));
      }
    }
  }
  finish.done = true;
  finish_address_request(result);
  co_return result;
}

asio::awaitable<Result<Mapping>> NatpmpMapper::map(MapRequest request) {
  // Lifetime 0 would be a deletion (§3.4).
  if (request.lifetime <= std::chrono::seconds::zero()) co_return make_error_code(std::errc::invalid_argument);
  const auto lifetime = static_cast<std::uint32_t>(
      std::min<std::chrono::seconds::rep>(request.lifetime.count(), std::numeric_limits<std::uint32_t>::max()));

  // The address first: a gateway that cannot say it is not left holding a
  // mapping nobody will use, and a batch shares one address request.
  auto external = co_await external_address();
  if (!external) co_return external.error();

  std::uint16_t external_port = 0;
  std::uint32_t granted = 0;
  {
    auto lease = co_await acquire();
    if (!lease) co_return lease.error();
    auto reply = co_await lease->session().mapping(request.proto, request.internal_port,
                                                   request.wanted_external_port, lifetime,
                                                   Clock::now() + options_.max_request_time);
    if (!reply) co_return reply.error();
    note_epoch(reply->epoch, lease->session().replied());
    if (reply->result_code != 0) co_return make_natpmp_error(reply->result_code);
    external_port = reply->external_port;
    granted = reply->lifetime;
  }
  co_return Mapping{std::move(request), *external, external_port, std::chrono::seconds(granted), false};
}

asio::awaitable<std::error_code> NatpmpMapper::unmap(Mapping mapping) {
  auto lease = co_await acquire();
  if (!lease) co_return lease.error();
  auto reply = co_await lease->session().mapping(mapping.request.proto, mapping.request.internal_port, 0, 0,
                                                 Clock::now() + options_.max_request_time);
  if (!reply) co_return reply.error();
  note_epoch(reply->epoch, lease->session().replied());
  if (reply->result_code != 0) co_return make_natpmp_error(reply->result_code);
  co_return std::error_code{};
}

}  // namespace natkeeper::natpmp
