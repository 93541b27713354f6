#include "agent/gateway/gateway_listener.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>

#include "agent/base/log.hpp"
#include "agent/codecs/gateway_notice.hpp"

namespace natkeeper {

struct GatewayListener::Socket {
  Socket(asio::any_io_executor executor, std::uint16_t listen_port) : socket(executor), port(listen_port) {}
  asio::ip::udp::socket socket;
  std::uint16_t port;
  // Larger than any notice: a longer datagram arrives truncated and is refused by the codec.
  std::array<std::uint8_t, 2048> buffer{};
  asio::ip::udp::endpoint source;
};

GatewayListener::GatewayListener(asio::any_io_executor executor, Handler handler)
    : executor_(std::move(executor)), handler_(std::move(handler)) {}

GatewayListener::~GatewayListener() { close(); }

std::error_code GatewayListener::open(const asio::ip::address_v4& interface_address) {
  close();
  std::error_code first_error;
  const std::pair<std::uint16_t, const char*> groups[] = {{kAnnouncePort, "224.0.0.1"},
                                                          {kSsdpNotifyPort, "239.255.255.250"}};
  for (const auto& [port, group] : groups) {
    auto socket = std::make_shared<Socket>(executor_, port);
    boost::system::error_code ec;
    socket->socket.open(asio::ip::udp::v4(), ec);
    // Other programs (a UPnP control point, another client) may listen on these ports too.
    if (!ec) socket->socket.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) socket->socket.bind({asio::ip::address_v4::any(), port}, ec);
    if (!ec)
      socket->socket.set_option(asio::ip::multicast::join_group(asio::ip::make_address_v4(group), interface_address),
                                ec);
    if (ec) {
      log::warning("cannot listen for gateway notices on {}:{}: {}", group, port, ec.message());
      if (!first_error) first_error = ec;
      continue;
    }
    sockets_.push_back(socket);
    start(std::move(socket));
  }
  return first_error;
}

void GatewayListener::close() {
  for (auto& socket : sockets_) {
    boost::system::error_code ignored;
    socket->socket.close(ignored);
  }
  sockets_.clear();
}

void GatewayListener::start(std::shared_ptr<Socket> socket) {
  // The coroutine holds the socket alive until its receive ends after close().
  auto receive_loop = [](std::shared_ptr<Socket> self, Handler* handler) -> asio::awaitable<void> {
    for (;;) {
      auto [ec, size] = co_await self->socket.async_receive_from(asio::buffer(self->buffer), self->source,
                                                                  asio::as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted || !self->socket.is_open()) co_return;
      if (ec) continue;  // e.g. an ICMP error queued on the socket
      (*handler)({self->buffer.data(), size}, self->source, self->port);
    }
  };
  auto loop = receive_loop(std::move(socket), &handler_);
  asio::co_spawn(executor_, std::move(loop), asio::detached);
}

}  // namespace natkeeper
