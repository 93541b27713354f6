#include "mappers/errors.hpp"

#include <fmt/format.h>

#include <string>

namespace natkeeper {
namespace {

class NatkeeperCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "natkeeper"; }
  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::no_default_route:
        return "no default route: this host has no IPv4 gateway";
      case Errc::no_gateway_answer:
        return "no answer from the gateway";
      case Errc::not_an_igd:
        return "the device is not a usable Internet Gateway Device";
      case Errc::bad_reply:
        return "the gateway sent a malformed reply";
      case Errc::timed_out:
        return "the gateway did not answer in time";
      case Errc::table_full_skipped:
        return "not attempted: the gateway mapping table is full";
      case Errc::external_port_moved:
        return "the gateway offered only another external port, and the configuration "
               "requires the same port";
      case Errc::bad_http_answer:
        return "the device's HTTP answer was refused (malformed, too large or not 200 OK)";
      case Errc::third_party_refused:
        return "the router only forwards ports to the host that asks, not to another device";
      case Errc::third_party_unsupported:
        return "NAT-PMP cannot map ports for another device";
      case Errc::nothing_granted:
        return "the gateway answered success but granted a lifetime of 0 seconds: it made no mapping";
      case Errc::added_but_not_held:
        return "the gateway answered that it made the mapping, but its table does not hold it as asked";
      case Errc::port_held_by_another:
        return "the gateway refused the mapping, and its table shows the external port held by another client";
    }
    return fmt::format("natkeeper error {}", value);
  }
  std::error_condition default_error_condition(int value) const noexcept override {
    if (static_cast<Errc>(value) == Errc::table_full_skipped) return MapFailure::table_full;
    if (static_cast<Errc>(value) == Errc::external_port_moved || static_cast<Errc>(value) == Errc::port_held_by_another)
      return MapFailure::port_conflict;
    if (static_cast<Errc>(value) == Errc::third_party_refused ||
        static_cast<Errc>(value) == Errc::third_party_unsupported)
      return MapFailure::third_party_refused;
    return {value, *this};
  }
};

std::string_view upnp_error_name(int code) {
  switch (code) {
    case 401: return "Invalid Action";
    case 402: return "Invalid Args";
    case 501: return "Action Failed";
    case 602: return "Optional Action Not Implemented";
    case 606: return "Action not authorized";
    case 713: return "SpecifiedArrayIndexInvalid";
    case 714: return "NoSuchEntryInArray";
    case 715: return "WildCardNotPermittedInSrcIP";
    case 716: return "WildCardNotPermittedInExtPort";
    case 718: return "ConflictInMappingEntry";
    case 724: return "SamePortValuesRequired";
    case 725: return "OnlyPermanentLeasesSupported";
    case 726: return "RemoteHostOnlySupportsWildcard";
    case 727: return "ExternalPortOnlySupportsWildcard";
    case 728: return "NoPortMapsAvailable";
    case 729: return "ConflictWithOtherMechanisms";
    case 732: return "WildCardNotPermittedInIntPort";
    default: return {};
  }
}

class UpnpCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "upnp"; }
  std::string message(int code) const override {
    const auto text = upnp_error_name(code);
    if (text.empty()) return fmt::format("UPnP error {}", code);
    return fmt::format("UPnP error {} {}", code, text);
  }
  std::error_condition default_error_condition(int code) const noexcept override {
    switch (code) {
      case 606: return MapFailure::not_authorized;
      case 718: return MapFailure::port_conflict;
      case 725: return MapFailure::only_permanent_leases;
      case 728: return MapFailure::table_full;
      default: return {code, *this};
    }
  }
};

class PcpCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "pcp"; }
  std::string message(int code) const override {
    static constexpr std::string_view names[] = {
        "SUCCESS", "UNSUPP_VERSION", "NOT_AUTHORIZED", "MALFORMED_REQUEST", "UNSUPP_OPCODE",
        "UNSUPP_OPTION", "MALFORMED_OPTION", "NETWORK_FAILURE", "NO_RESOURCES", "UNSUPP_PROTOCOL",
        "USER_EX_QUOTA", "CANNOT_PROVIDE_EXTERNAL", "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS"};
    if (code >= 0 && code < static_cast<int>(std::size(names)))
      return fmt::format("PCP result {} {}", code, names[code]);
    return fmt::format("PCP result {}", code);
  }
  std::error_condition default_error_condition(int code) const noexcept override {
    switch (code) {
      case 2: return MapFailure::not_authorized;    // NOT_AUTHORIZED
      case 8: return MapFailure::table_full;        // NO_RESOURCES
      case 10: return MapFailure::table_full;       // USER_EX_QUOTA: this host's share is full
      case 11: return MapFailure::port_conflict;    // CANNOT_PROVIDE_EXTERNAL
      case 12: return MapFailure::not_authorized;   // ADDRESS_MISMATCH: a NAT between us and it
      default: return {code, *this};
    }
  }
};

class NatpmpCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "natpmp"; }
  std::string message(int code) const override {
    static constexpr std::string_view names[] = {"Success", "Unsupported Version",
                                                 "Not Authorized/Refused", "Network Failure",
                                                 "Out of resources", "Unsupported opcode"};
    if (code >= 0 && code < static_cast<int>(std::size(names)))
      return fmt::format("NAT-PMP result {} {}", code, names[code]);
    return fmt::format("NAT-PMP result {}", code);
  }
  std::error_condition default_error_condition(int code) const noexcept override {
    switch (code) {
      case 2: return MapFailure::not_authorized;
      case 4: return MapFailure::table_full;
      default: return {code, *this};
    }
  }
};

class MapFailureCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "map-failure"; }
  std::string message(int value) const override {
    switch (static_cast<MapFailure>(value)) {
      case MapFailure::table_full: return "gateway mapping table full";
      case MapFailure::port_conflict: return "external port is held by another client";
      case MapFailure::not_authorized: return "not authorized by the gateway";
      case MapFailure::only_permanent_leases: return "gateway grants only permanent leases";
      case MapFailure::third_party_refused: return "the gateway refuses mappings for another device";
      case MapFailure::gateway_unreachable: return "the gateway does not answer";
    }
    return fmt::format("mapping failure {}", value);
  }
  // Unreachability spans categories no protocol category could declare alone.
  bool equivalent(const std::error_code& code, int condition) const noexcept override {
    if (static_cast<MapFailure>(condition) != MapFailure::gateway_unreachable)
      return error_category::equivalent(code, condition);
    if (!code) return false;
    if (code == Errc::no_gateway_answer || code == Errc::timed_out) return true;
    return code.category() == std::system_category() || code.category() == std::generic_category();
  }
};

}  // namespace

const std::error_category& natkeeper_category() {
  static const NatkeeperCategory category;
  return category;
}

std::error_code make_error_code(Errc e) { return {static_cast<int>(e), natkeeper_category()}; }

const std::error_category& upnp_category() {
  static const UpnpCategory category;
  return category;
}

std::error_code make_upnp_error(int code) { return {code, upnp_category()}; }

const std::error_category& pcp_category() {
  static const PcpCategory category;
  return category;
}

std::error_code make_pcp_error(int result_code) { return {result_code, pcp_category()}; }

const std::error_category& natpmp_category() {
  static const NatpmpCategory category;
  return category;
}

std::error_code make_natpmp_error(int result_code) { return {result_code, natpmp_category()}; }

const std::error_category& map_failure_category() {
  static const MapFailureCategory category;
  return category;
}

std::error_condition make_error_condition(MapFailure f) {
  return {static_cast<int>(f), map_failure_category()};
}

}  // namespace natkeeper
