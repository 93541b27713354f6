#pragma once
#include <boost/asio/ip/address_v4.hpp>

#include <array>
#include <cstdint>
#include <span>

#include "mappers/pcp/pcp_codec.hpp"
#include "mappers/transport.hpp"

namespace natkeeper::pcp {

// The nonce of this host's mapping of (internal client, proto, internal
// port), the internal client being this host or the device it maps for:
// HMAC-SHA256 of that address, protocol and port under the host key, cut to
// 96 bits. Stable across runs, so renewals and deletes after a restart carry
// the nonce the gateway recorded (RFC 6887 §11.2), yet unpredictable to others.
Nonce derive_nonce(std::span<const std::uint8_t, 32> host_key, const boost::asio::ip::address_v4& client,
                   Transport proto, std::uint16_t internal_port);

}  // namespace natkeeper::pcp
