#pragma once
// The seam between the NAT-PMP mapper's policy and the world: channels to the
// gateway, beside the Timebase. Production uses libnatpmp; unit tests script
// the channels in virtual time, with no sockets and no sleeps.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address_v4.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <system_error>
#include <vector>

#include "mappers/mapper.hpp"
#include "mappers/natpmp/natpmp_codec.hpp"
#include "mappers/timebase.hpp"

namespace natkeeper::natpmp {

using TimePoint = Timebase::TimePoint;

// The datagram at the head of a channel's queue.
struct Datagram {
  // A longer datagram is cut to kMaxPeekSize bytes: it is no reply either way.
  static constexpr std::size_t kMaxPeekSize = 32;
  std::vector<std::uint8_t> bytes;
  asio::ip::address_v4 source;
  std::uint16_t source_port = 0;
  // It arrived before the request began (Channel::begin_request): a late
  // reply to an earlier request, or a forgery. NAT-PMP has no nonce, so only
  // what arrives after the request is sent may answer it.
  bool stale = false;
};

// One request at a time to the gateway's port 5351, and what comes back.
class Channel {
 public:
  virtual ~Channel() = default;
  // Marks the start of a request: what is queued now is stale (see
  // Datagram::stale), what arrives later is not. Called just before the
  // request's first send, not before a retransmission: a reply to an earlier
  // transmission of the same request answers it as well.
  virtual void begin_request() = 0;
  // Sends the request; again to retransmit it.
  virtual std::error_code send(const Request& request) = 0;
  // The datagram at the head of the queue, left there for accept() or
  // discard(); waits for one until `until`, then nullopt. Fails with
  // Errc::no_gateway_answer when the gateway's port is unreachable (ICMP),
  // operation_canceled, or the socket's error.
  virtual asio::awaitable<Result<std::optional<Datagram>>> peek(TimePoint until) = 0;
  // Takes the head datagram as the reply to the request. False when the
  // socket reported an error first: the datagram is still queued.
  virtual bool accept() = 0;
  // Throws the head datagram away.
  virtual void discard() = 0;
};

class ChannelFactory {
 public:
  virtual ~ChannelFactory() = default;
  virtual Result<std::unique_ptr<Channel>> open() = 0;
};

// Each channel a natpmp_t from libnatpmp: its own UDP socket connected to
// gateway:5351 (the kernel drops datagrams from anywhere else), waited on
// from `executor`.
std::shared_ptr<ChannelFactory> libnatpmp_channels(asio::any_io_executor executor, asio::ip::address_v4 gateway,
                                               Timebase& time);

}  // namespace natkeeper::natpmp
