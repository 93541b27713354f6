// The production NAT-PMP transport: libnatpmp builds, sends and reads the
// datagrams; the mapper's policy (natpmp_mapper.cpp) decides what is read,
// when to retransmit and when to give up, so libnatpmp's own retransmission
// (readnatpmpresponseorretry with nothing queued) never runs.
#include <arpa/inet.h>
#include <natpmp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <cerrno>

#include "mappers/errors.hpp"
#include "mappers/natpmp/natpmp_channel.hpp"

namespace natkeeper::natpmp {
namespace {

using asio::ip::address_v4;
constexpr auto token = asio::as_tuple(asio::use_awaitable);

// Thrown away in one go before the loop gets a turn again.
constexpr int kMaxDiscardsPerTurn = 64;

std::error_code errno_code(int error) { return {error, std::system_category()}; }

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

// One natpmp_t. Asio sees its descriptor only to wait on it, and hands it
// back (release) before closenatpmp closes it.
class LibnatpmpChannel final : public Channel {
 public:
  static Result<std::unique_ptr<Channel>> open(asio::any_io_executor executor, address_v4 gateway,
                                               Timebase& time) {
    std::unique_ptr<LibnatpmpChannel> channel(new LibnatpmpChannel(executor, time));
    // libnatpmp compares the reply's source with this in network byte order.
    const auto forced_gateway = static_cast<in_addr_t>(htonl(gateway.to_uint()));
    errno = 0;
    const int r = initnatpmp(&channel->pmp_, 1, forced_gateway);
    if (r < 0) {
      const int error = errno ? errno : EIO;
      // A failed fcntl or connect leaves the socket open in 20150609.
      if (r != NATPMP_ERR_SOCKETERROR && channel->pmp_.s >= 0) ::close(channel->pmp_.s);
      return errno_code(error);
    }
    boost::system::error_code ec;
    channel->socket_.assign(asio::ip::udp::v4(), channel->pmp_.s, ec);
    if (ec) {
      closenatpmp(&channel->pmp_);
      return std::error_code(ec);
    }
    channel->open_ = true;
    return std::unique_ptr<Channel>(std::move(channel));
  }

  ~LibnatpmpChannel() override {
    if (!open_) return;
    boost::system::error_code ignored;
    socket_.release(ignored);  // Asio must not close it: closenatpmp does
    closenatpmp(&pmp_);
  }

  LibnatpmpChannel(const LibnatpmpChannel&) = delete;
  LibnatpmpChannel& operator=(const LibnatpmpChannel&) = delete;

  std::error_code send(const Request& request) override {
    errno = 0;
    const int r = request.opcode == Opcode::public_address
                      ? sendpublicaddressrequest(&pmp_)
                      : sendnewportmappingrequest(
                            &pmp_, request.opcode == Opcode::map_tcp ? NATPMP_PROTOCOL_TCP : NATPMP_PROTOCOL_UDP,
                            request.internal_port, request.suggested_external_port, request.lifetime);
    if (r < 0) return errno_code(errno ? errno : EIO);
    return {};
  }

  asio::awaitable<Result<std::optional<Datagram>>> peek(TimePoint until) override {
    using namespace asio::experimental::awaitable_operators;
    // A peeking receive, not async_wait(wait_read): Asio tries a receive at
    // once, so a datagram whose readiness edge came while no wait was queued
    // is still seen, and its completion is posted, so a flood of datagrams
    // never keeps the loop from other work. Nothing is consumed.
    std::array<std::uint8_t, Datagram::kMaxPeekSize> buffer{};
    asio::ip::udp::endpoint source;
    auto readable = socket_.async_receive_from(asio::buffer(buffer), source, asio::socket_base::message_peek, token);
    const auto outcome = co_await (std::move(readable) || time_.sleep_until(until));
    if (outcome.index() == 1) co_return std::nullopt;
    const auto [ec, size] = std::get<0>(outcome);
    if (ec == asio::error::operation_aborted) co_return make_error_code(std::errc::operation_canceled);
    // ICMP port unreachable: nothing listens on the gateway's 5351.
    if (ec == asio::error::connection_refused) co_return make_error_code(Errc::no_gateway_answer);
    if (ec && ec != asio::error::message_size) co_return std::error_code(ec);
    Datagram datagram;
    datagram.bytes.assign(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(size));
    datagram.source = source.address().is_v4() ? source.address().to_v4() : address_v4();
    datagram.source_port = source.port();
    co_return datagram;
  }

  bool accept() override {
    natpmpresp_t response{};
    // It reads the head of the queue: the datagram just peeked.
    if (!is_read_reply(readnatpmpresponseorretry(&pmp_, &response))) return false;
    // After an error reply 20150609 keeps the request pending; it is over.
    pmp_.has_pending_request = 0;
    return true;
  }

  void discard() override {
    std::uint8_t byte;
    ::recv(pmp_.s, &byte, 1, MSG_DONTWAIT);  // one recv takes the whole datagram
  }

  Discarded discard_queued() override {
    Discarded discarded;
    std::uint8_t byte;
    for (int i = 0; i < kMaxDiscardsPerTurn; ++i) {
      const ssize_t n = ::recv(pmp_.s, &byte, 1, MSG_DONTWAIT);
      if (n >= 0) {
        ++discarded.count;
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) return discarded;
      // Any other error was a stale ICMP report, now cleared: carry on.
    }
    discarded.emptied = false;
    return discarded;
  }

 private:
  LibnatpmpChannel(asio::any_io_executor executor, Timebase& time) : socket_(executor), time_(time) {}

  natpmp_t pmp_{};
  bool open_ = false;
  asio::ip::udp::socket socket_;
  Timebase& time_;
};

class LibnatpmpChannels final : public ChannelFactory {
 public:
  LibnatpmpChannels(asio::any_io_executor executor, address_v4 gateway, Timebase& time)
      : executor_(std::move(executor)), gateway_(gateway), time_(time) {}
  Result<std::unique_ptr<Channel>> open() override { return LibnatpmpChannel::open(executor_, gateway_, time_); }

 private:
  asio::any_io_executor executor_;
  address_v4 gateway_;
  Timebase& time_;
};

}  // namespace

std::shared_ptr<ChannelFactory> libnatpmp_channels(asio::any_io_executor executor, address_v4 gateway,
                                               Timebase& time) {
  return std::make_shared<LibnatpmpChannels>(std::move(executor), gateway, time);
}

}  // namespace natkeeper::natpmp
