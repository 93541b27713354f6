#pragma once
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/raw_protocol.hpp>

#include <vector>

#include "agent/codecs/netlink_codec.hpp"
#include "mappers/result.hpp"

namespace natkeeper {

namespace asio = boost::asio;

// What one notification told: changes of the way to the gateway, and whether
// the neighbour table changed (a device may have a new address).
struct NetworkEvents {
  std::vector<netlink::Change> changes;
  bool neighbours = false;
};

// Listens to the kernel's IPv4 link, address, route and neighbour notifications.
// Datagrams from anyone but the kernel are ignored: no process can fake a change.
class NetlinkWatcher {
 public:
  explicit NetlinkWatcher(asio::any_io_executor executor);
  std::error_code open();
  void close();
  // Completes with the events of the next notification that has any
  // (datagrams without a relevant change are skipped). When the kernel
  // dropped notifications because the socket's queue overflowed (ENOBUFS),
  // completes with the single change {link_up, interface_index 0} and
  // `neighbours`: something changed unseen, so the caller must recheck everything. Cancellable through
  // Asio's per-operation cancellation; close() ends it with operation_aborted.
  // One call at a time: the calls share the receive buffer.
  asio::awaitable<Result<NetworkEvents>> next_events();

 private:
  asio::generic::raw_protocol::socket socket_;
  std::vector<std::uint8_t> buffer_;
};

}  // namespace natkeeper
