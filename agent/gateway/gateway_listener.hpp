#pragma once
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/udp.hpp>

#include <functional>
#include <memory>
#include <span>
#include <system_error>
#include <vector>

#include "mappers/result.hpp"

namespace natkeeper {

namespace asio = boost::asio;

// Listens where gateways speak unasked: 224.0.0.1:5350 (NAT-PMP and PCP
// announcements) and the SSDP group 239.255.255.250:1900 (NOTIFY), joined on
// the interface towards the gateway. Every datagram goes to the handler with
// its source and the port it arrived on; judging it (who sent it, what it
// says) is the handler's business.
class GatewayListener {
 public:
  using Handler = std::function<void(std::span<const std::uint8_t> datagram, const asio::ip::udp::endpoint& source,
                                     std::uint16_t port)>;
  GatewayListener(asio::any_io_executor executor, Handler handler);
  ~GatewayListener();
  GatewayListener(const GatewayListener&) = delete;
  GatewayListener& operator=(const GatewayListener&) = delete;

  // (Re)opens both sockets, joining the groups on `interface_address`. A port
  // that cannot be opened is reported; the other one still listens.
  std::error_code open(const asio::ip::address_v4& interface_address);
  void close();

 private:
  struct Socket;
  void start(std::shared_ptr<Socket> socket);
  asio::any_io_executor executor_;
  Handler handler_;
  std::vector<std::shared_ptr<Socket>> sockets_;
};

}  // namespace natkeeper
