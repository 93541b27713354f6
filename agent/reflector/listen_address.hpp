#pragma once
// natkeeper-reflector's --listen argument.
#include <boost/asio/ip/udp.hpp>

#include <optional>
#include <string_view>

namespace natkeeper::reflector {

// ADDRESS, ADDRESS:PORT, [IPV6] or [IPV6]:PORT; the port defaults to
// kDefaultPort and must not be 0.
std::optional<boost::asio::ip::udp::endpoint> parse_listen(std::string_view text);

}  // namespace natkeeper::reflector
