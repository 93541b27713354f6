#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <tuple>
#include <utility>
#include <vector>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "mappers/mapper.hpp"
#include "mappers/timebase.hpp"
#include "mappers/upnp/igd_control.hpp"

namespace natkeeper::upnp {

struct UpnpMapperOptions {
  // When the wanted external port is taken (718), may other ones be tried?
  bool allow_other_external_port = false;
  // How many other external ports an IGDv1 gateway (no AddAnyPortMapping) is
  // asked for before giving up.
  int other_port_attempts = 4;
  std::uint32_t seed = std::random_device{}();
};

// How long a mapping may report the external address read before: a round
// of renewals reads it again, so after a WAN change the renewed mappings (and
// what is verified against them) carry the new address.
inline constexpr std::chrono::seconds kExternalAddressMaxAge{60};

// Entries asked for in one GetListOfPortMappings: a page of the largest
// entries fits a SOAP answer's size limit.
inline constexpr std::uint16_t kListPage = 256;
// The GetListOfPortMappings requests one read-back may spend; mappings in
// ranges left unread keep the gateway's word.
inline constexpr int kMaxListRequests = 64;

// The UPnP-IGD policy: which action to use, and what each UPnP error means
// for the mapping. The SOAP calls themselves go through IgdControl.
class UpnpMapper final : public Mapper {
 public:
  UpnpMapper(std::shared_ptr<IgdControl> igd, std::string internal_client, UpnpMapperOptions options = {},
             Timebase& time = system_timebase());

  Method method() const override { return Method::upnp; }
  // GetExternalIPAddress, or the answer to it less than kExternalAddressMaxAge
  // old; unspecified when the gateway has none.
  asio::awaitable<Result<asio::ip::address>> external_address() override;
  asio::awaitable<Result<Mapping>> map(MapRequest request) override;
  asio::awaitable<std::error_code> unmap(Mapping mapping) override;
  // The sample is still there, as this host's, and the address is asked afresh.
  asio::awaitable<Result<GatewayCheck>> check(const Mapping& sample) override;
  // Does the gateway still hold this mapping for this host (GetSpecificPortMappingEntry)?
  asio::awaitable<Result<bool>> holds(const Mapping& mapping);
  asio::awaitable<Result<std::vector<Mapping>>> list_table(std::size_t limit) override;
  // With GetListOfPortMappings where the gateway has it (IGDv2), a page for
  // many mappings, and GetSpecificPortMappingEntry for one not listed as made;
  // else GetSpecificPortMappingEntry for each.
  asio::awaitable<Result<std::vector<std::optional<HeldLease>>>> read_back(std::vector<Mapping> mappings) override;
  std::size_t read_back_per_request() const override { return lists_mappings() ? kListPage : 1; }
  // Where the gateway lists its entries, a batch's grants are read back in pages.
  bool reads_back_later() const override { return lists_mappings(); }

 private:
  // A lease as renewals may count on it: zero with `permanent` for one without expiry.
  struct Lease {
    std::chrono::seconds lifetime;
    bool permanent;
  };
  // What an add left on the gateway.
  struct Grant {
    std::uint16_t external_port;
    Lease lease;
  };
  // The lease the gateway holds (GetSpecificPortMappingEntry) for the one
  // asked: believed when shorter, never longer; a finite lease held without
  // expiry is permanent.
  static Lease held_lease(std::chrono::seconds asked, std::chrono::seconds held);

  // The add, and the entry the gateway then holds: a mapping it says it made
  // but does not hold is Errc::added_but_not_held, and one whose reply could
  // not be read is there when the entry shows it.
  asio::awaitable<Result<Grant>> add_and_read_back(const PortMappingArgs& args);
  // AddAnyPortMapping or AddPortMapping: the external port it reports.
  asio::awaitable<Result<std::uint16_t>> add(PortMappingArgs args);
  asio::awaitable<Result<Grant>> add_with_other_port(PortMappingArgs args);
  // AddAnyPortMapping put a refresh of the entry this host holds on the
  // wanted port on another one (`moved`; routers that will not update an
  // entry in place): that one goes, and the entry is made afresh. A grant
  // elsewhere while another client holds the wanted port stays as it is.
  asio::awaitable<Result<Grant>> refresh_in_place(const PortMappingArgs& args, Grant moved);
  // DeletePortMapping; 714 NoSuchEntryInArray is an entry already gone.
  asio::awaitable<std::error_code> delete_entry(Transport proto, std::uint16_t external_port);
  // GetSpecificPortMappingEntry.
  asio::awaitable<Result<PortMappingEntry>> entry_at(Transport proto, std::uint16_t external_port);
  // A refusal checked against the port's holder (GetSpecificPortMappingEntry):
  // a conflict with nobody is asked again once; one the gateway does not name
  // as such while another client holds the port is Errc::port_held_by_another;
  // one for another device while nobody else holds the port is
  // Errc::third_party_refused.
  asio::awaitable<Result<Grant>> explain_refusal(const PortMappingArgs& args, std::error_code refusal,
                                                 bool for_device);
  // NewInternalClient for a request: the device's address, or this host's.
  std::string client_of(const MapRequest& request) const;
  std::uint16_t pick_other_port();
  // AddAnyPortMapping, unless the gateway showed it lacks it.
  bool uses_add_any() const;
  // GetListOfPortMappings, unless the gateway showed it lacks it.
  bool lists_mappings() const;
  // The arguments that name `mapping`'s entry and its internal client.
  PortMappingArgs args_of(const Mapping& mapping) const;

  // What GetListOfPortMappings showed around some mappings: the entries by
  // protocol and external port, and the ranges it had no requests left for.
  struct Listing {
    std::map<std::pair<Transport, std::uint16_t>, PortMappingEntry> entries;
    std::vector<std::tuple<Transport, std::uint16_t, std::uint16_t>> unread;
  };
  // The entries in each protocol's range of external ports of `mappings`.
  asio::awaitable<Result<Listing>> list_around(const std::vector<Mapping>& mappings);
  // GetExternalIPAddress, remembered for the mappings made next.
  asio::awaitable<Result<asio::ip::address>> ask_external_address();

  struct ReadAddress {
    asio::ip::address address;
    Timebase::TimePoint read_at;
  };

  std::shared_ptr<IgdControl> igd_;
  std::string internal_client_;  // this host
  UpnpMapperOptions options_;
  Timebase& time_;
  std::mt19937 random_;
  std::optional<ReadAddress> external_ip_;
  // What this gateway showed of itself, so that later requests do not ask in vain.
  bool add_any_refused_ = false;
  bool list_refused_ = false;
  bool only_permanent_leases_ = false;
};

}  // namespace natkeeper::upnp
