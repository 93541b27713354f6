#include "agent/gateway/nat_diagnosis.hpp"

#include <fmt/format.h>

namespace natkeeper {
namespace {

bool in_prefix(std::uint32_t address, std::uint32_t prefix, int length) {
  const std::uint32_t mask = length == 0 ? 0 : ~std::uint32_t{0} << (32 - length);
  return (address & mask) == prefix;
}

}  // namespace

std::string_view to_string(NatKind kind) {
  switch (kind) {
    case NatKind::single: return "single";
    case NatKind::double_nat: return "double";
    case NatKind::cgnat: return "cgnat";
    case NatKind::unknown: return "unknown";
  }
  return "unknown";
}

std::string_view explain(NatKind kind) {
  switch (kind) {
    case NatKind::single:
      return "one NAT: mappings on this gateway are reachable from the internet";
    case NatKind::double_nat:
      return "double NAT: another router sits between the gateway and the internet (its address "
             "differs from what the internet sees); put that router in bridge mode, or forward the "
             "same ports on it too";
    case NatKind::cgnat:
      return "carrier-grade NAT: the gateway's external address is in 100.64.0.0/10, shared by "
             "the internet provider; ask the provider for a public IPv4 address";
    case NatKind::unknown:
      return "not verified from outside";
  }
  return {};
}

NatKind classify_external_address(const boost::asio::ip::address& external) {
  if (!external.is_v4()) return NatKind::unknown;
  const auto a = external.to_v4().to_uint();
  if (in_prefix(a, 0x0A000000, 8) || in_prefix(a, 0xAC100000, 12) || in_prefix(a, 0xC0A80000, 16))
    return NatKind::double_nat;
  if (in_prefix(a, 0x64400000, 10)) return NatKind::cgnat;
  return NatKind::unknown;
}

std::optional<std::string> unreachable_wan(const boost::asio::ip::address& external) {
  if (external.is_unspecified())
    return "the router has no external address of its own (0.0.0.0): its WAN is down, or behind another NAT, so it "
           "cannot forward from the internet; check its internet connection, or put the router in front of it in "
           "bridge mode";
  switch (classify_external_address(external)) {
    case NatKind::double_nat:
      return fmt::format("the router's own WAN is behind another NAT (its external address is {}): it cannot forward "
                         "from the internet; put the router in front of it in bridge mode, or forward the same ports "
                         "on that router to this one",
                         external.to_string());
    case NatKind::cgnat:
      return fmt::format("the router's own WAN is behind the internet provider's carrier-grade NAT (its external "
                         "address is {}): it cannot forward from the internet; ask the provider for a public IPv4 "
                         "address",
                         external.to_string());
    case NatKind::single:
    case NatKind::unknown: break;
  }
  return std::nullopt;
}

NatKind diagnose_nat(const std::optional<boost::asio::ip::address>& gateway_external,
                     const std::optional<boost::asio::ip::address>& observed_public) {
  if (gateway_external) {
    if (const auto kind = classify_external_address(*gateway_external); kind != NatKind::unknown) return kind;
  }
  if (!gateway_external || !observed_public) return NatKind::unknown;
  return *gateway_external == *observed_public ? NatKind::single : NatKind::double_nat;
}

}  // namespace natkeeper
