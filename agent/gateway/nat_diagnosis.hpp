#pragma once
#include <boost/asio/ip/address.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace natkeeper {

enum class NatKind { single, double_nat, cgnat, unknown };

std::string_view to_string(NatKind kind);  // the JSON contract's words
// What the user can do about it, in one line.
std::string_view explain(NatKind kind);

// What the gateway's own external address alone tells: a private (RFC 1918)
// address means another NAT sits upstream, 100.64.0.0/10 is the ISP's
// carrier-grade NAT. Anything else needs an outside observer to confirm.
NatKind classify_external_address(const boost::asio::ip::address& external);

// Why a router whose own external address is `external` cannot forward from
// the internet, whatever it is asked: it has none (0.0.0.0; miniupnpd does
// not tell a private one), or a private or 100.64.0.0/10 one, being behind
// another NAT. Nullopt when the address does not say so.
std::optional<std::string> unreachable_wan(const boost::asio::ip::address& external);

// The gateway's external address against the public address an outside
// observer (reflector, STUN server) saw: a private or 100.64/10 gateway address
// says it all; otherwise equal means one NAT, different means another NAT
// upstream of the gateway.
NatKind diagnose_nat(const std::optional<boost::asio::ip::address>& gateway_external,
                     const std::optional<boost::asio::ip::address>& observed_public);

}  // namespace natkeeper
