#pragma once
#include <boost/asio/ip/address_v4.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "mappers/result.hpp"

namespace natkeeper {

namespace asio = boost::asio;

struct LocalInterface {
  std::string name;
  asio::ip::address_v4 address;  // this host's address towards the gateway
  asio::ip::address_v4 netmask;
};

// The gateway of the lowest-metric IPv4 default route in /proc/self/net/route's text.
std::optional<asio::ip::address_v4> parse_default_gateway(std::string_view proc_net_route);

// This host's default gateway, or Errc::no_default_route.
Result<asio::ip::address_v4> find_default_gateway();

// The interface and source address the kernel uses to reach `gateway`.
Result<LocalInterface> find_interface_towards(const asio::ip::address_v4& gateway);

}  // namespace natkeeper
