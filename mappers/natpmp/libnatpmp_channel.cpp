// The production NAT-PMP transport: libnatpmp builds, sends and reads the
// datagrams; the mapper's policy (natpmp_mapper.cpp) decides what is read,
// when to retransmit and when to give up, so libnatpmp's own retransmission
// (readnatpmpresponseorretry with nothing queued) never runs.
#include <arpa/inet.h>
#include <natpmp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <cerrno>
#include <cstring>

#include "mappers/errors.hpp"
#include "mappers/natpmp/natpmp_channel.hpp"

namespace natkeeper::natpmp {
namespace {

using asio::ip::address_v4;
constexpr auto token = asio::as_tuple(asio::use_awaitable);

std::error_code errno_code(int error) { return {error, std::system_category()}; }

bool operator<(const timespec& a, const timespec& b) {
  return a.tv_sec != b.tv_sec ? a.tv_sec < b.tv_sec : a.tv_nsec < b.tv_nsec;
}

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
    // Receive stamps (see begin_request) before the first request. A datagram
    // that queued before this, after initnatpmp's connect, is stamped when
    // first read and passes for fresh; ahead of the first request's reply in
    // the queue, it can meet only that request, sent a moment later.
    const int on = 1;
    if (::setsockopt(channel->pmp_.s, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) < 0) {
      const int error = errno;
      closenatpmp(&channel->pmp_);
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

  // A datagram is stale when the kernel's receive stamp (SO_TIMESTAMPNS) is
  // before this mark: stale ones are told apart as they come up, so the
  // request goes out at once however fast a flood comes (draining the queue
  // before sending never ended under one). Both are CLOCK_REALTIME, the
  // stamps' only clock. A step of it backwards after the mark makes replies
  // look stale: dropped as if lost, which retransmission (or the next
  // request's mark) covers. One between a datagram's arrival and the mark
  // lets it pass for fresh: no worse than a forgery sent after the request.
  void begin_request() override { ::clock_gettime(CLOCK_REALTIME, &request_began_); }

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
    for (;;) {
      // A turn of the loop before each look: under a flood every look finds
      // a datagram at once, and the loop must still get to other work.
      co_await asio::post(socket_.get_executor(), asio::use_awaitable);
      // A look before any wait: a datagram whose readiness edge came while
      // no wait was queued is still seen.
      auto head = peek_queued();
      if (!head || *head) co_return head;
      const auto outcome = co_await (socket_.async_wait(asio::socket_base::wait_read, token) ||
                                     time_.sleep_until(until));
      if (outcome.index() == 1) co_return std::nullopt;
      const auto [ec] = std::get<0>(outcome);
      if (ec == asio::error::operation_aborted) co_return make_error_code(std::errc::operation_canceled);
      if (ec) co_return std::error_code(ec);
    }
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

 private:
  LibnatpmpChannel(asio::any_io_executor executor, Timebase& time) : socket_(executor), time_(time) {}

  // The head of the queue without waiting, left there; nullopt when nothing
  // is queued.
  Result<std::optional<Datagram>> peek_queued() {
    std::array<std::uint8_t, Datagram::kMaxPeekSize> buffer{};
    iovec data{buffer.data(), buffer.size()};
    sockaddr_in source{};
    alignas(cmsghdr) std::array<std::byte, CMSG_SPACE(sizeof(timespec))> control{};
    msghdr message{};
    message.msg_name = &source;
    message.msg_namelen = sizeof source;
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    message.msg_control = control.data();
    message.msg_controllen = control.size();
    // A longer datagram is cut to the buffer: `size` is what was copied.
    const ssize_t size = ::recvmsg(pmp_.s, &message, MSG_PEEK | MSG_DONTWAIT);
    if (size < 0) {
      const int error = errno;
      if (error == EAGAIN || error == EWOULDBLOCK) return std::nullopt;
      // ICMP port unreachable: nothing listens on the gateway's 5351.
      if (error == ECONNREFUSED) return make_error_code(Errc::no_gateway_answer);
      return errno_code(error);
    }
    Datagram datagram;
    datagram.bytes.assign(buffer.begin(), buffer.begin() + size);
    datagram.source = address_v4(ntohl(source.sin_addr.s_addr));
    datagram.source_port = ntohs(source.sin_port);
    // Without a stamp nothing shows that it came after the request.
    datagram.stale = true;
    for (cmsghdr* header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
      if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_TIMESTAMPNS) continue;
      timespec arrived{};
      std::memcpy(&arrived, CMSG_DATA(header), sizeof arrived);
      datagram.stale = arrived < request_began_;
    }
    return datagram;
  }

  natpmp_t pmp_{};
  bool open_ = false;
  timespec request_began_{};
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
