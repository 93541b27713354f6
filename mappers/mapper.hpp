#pragma once
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <optional>
#include <system_error>
#include <vector>

#include "mappers/mapping.hpp"
#include "mappers/method.hpp"
#include "mappers/result.hpp"

namespace natkeeper {

namespace asio = boost::asio;

// See Mapper::check.
struct GatewayCheck {
  bool mappings_lost = false;
  asio::ip::address external_ip;  // unspecified when the gateway did not say
  // NAT-PMP and PCP: the answer's epoch, the seconds the gateway has kept
  // its mappings since it (re)started.
  std::optional<std::chrono::seconds> epoch;
};

// A lease as a read-back found it at the gateway, as renewals may count on it.
struct HeldLease {
  std::chrono::seconds lifetime{0};
  bool permanent = false;
};

// One port-mapping protocol spoken to one gateway. All operations run on the
// caller's executor and report failures as error codes, never exceptions; an
// operation is cancelled through the usual Asio per-operation cancellation.
class Mapper {
 public:
  virtual ~Mapper() = default;
  virtual Method method() const = 0;
  virtual asio::awaitable<Result<asio::ip::address>> external_address() = 0;
  virtual asio::awaitable<Result<Mapping>> map(MapRequest request) = 0;
  // Removes a mapping this host holds. A mapping that is already gone, or that
  // belongs to another host, is left alone and reported as success.
  virtual asio::awaitable<std::error_code> unmap(Mapping mapping) = 0;
  // What the gateway says now, asked over this connection, about what a
  // notice claimed (a notice is a multicast datagram anyone on the LAN can
  // forge): whether it lost its mappings (NAT-PMP/PCP epoch, RFC 6886 §3.6 and
  // RFC 6887 §8.5; UPnP: `sample` is gone) and its external address. `sample`
  // is a mapping this host holds. One request or two, never a round.
  // Where the protocol cannot ask: std::errc::operation_not_supported.
  virtual asio::awaitable<Result<GatewayCheck>> check(const Mapping& sample);
  // The gateway's table, every host's mappings, at most `limit` of them, each
  // with its internal client set. Only where the protocol can list it (UPnP's
  // GetGenericPortMappingEntry); elsewhere std::errc::operation_not_supported.
  virtual asio::awaitable<Result<std::vector<Mapping>>> list_table(std::size_t limit);
  // Which of `mappings` (this host's or its devices') the gateway holds now
  // as they were made (the same internal client and port): each one's lease,
  // or nullopt where the gateway does not hold it. The leases are those of
  // mappings just made; for older ones only whether they are held means
  // anything. Only where the protocol can look mappings up (UPnP); elsewhere
  // std::errc::operation_not_supported.
  virtual asio::awaitable<Result<std::vector<std::optional<HeldLease>>>> read_back(std::vector<Mapping> mappings);
  // About how many mappings one request of read_back() covers (its cost at
  // the gateway); 0 where read_back() is not supported.
  virtual std::size_t read_back_per_request() const { return 0; }
  // True when map() leaves reading back what it granted to one read_back()
  // of the whole batch, which costs the gateway less than one per mapping.
  virtual bool reads_back_later() const { return false; }
  // True once after the gateway showed it lost its mappings (NAT-PMP/PCP
  // epoch) in an answer to a request: all of them must be made again.
  // UPnP has no such signal.
  virtual bool take_gateway_lost_state() { return false; }
  // Datagrams that reached this mapper's sockets and were discarded as
  // malformed, unexpected or not matching a request (a rogue LAN device, or
  // stale replies). UPnP's HTTP has no such datagrams.
  virtual std::uint64_t dropped() const { return 0; }
};

inline asio::awaitable<Result<GatewayCheck>> Mapper::check(const Mapping&) {
  co_return std::make_error_code(std::errc::operation_not_supported);
}

inline asio::awaitable<Result<std::vector<Mapping>>> Mapper::list_table(std::size_t) {
  co_return std::make_error_code(std::errc::operation_not_supported);
}

inline asio::awaitable<Result<std::vector<std::optional<HeldLease>>>> Mapper::read_back(std::vector<Mapping>) {
  co_return std::make_error_code(std::errc::operation_not_supported);
}

}  // namespace natkeeper
