#include "mappers/upnp/upnp_mapper.hpp"

#include <algorithm>

#include "mappers/errors.hpp"
#include "mappers/lease_policy.hpp"

namespace natkeeper::upnp {
namespace {

// 401 Invalid Action, 602 Optional Action Not Implemented: a WANIPConnection:2
// service type does not prove the gateway has IGDv2's actions.
bool lacks_action(const std::error_code& refusal) {
  return refusal == make_upnp_error(401) || refusal == make_upnp_error(602);
}

// A gateway that knows no expiring leases answers a finite one with 725
// OnlyPermanentLeasesSupported, or with 402 Invalid Args.
bool refuses_finite_lease(const std::error_code& refusal, std::chrono::seconds lease) {
  return lease.count() > 0 && (refusal == MapFailure::only_permanent_leases || refusal == make_upnp_error(402));
}

// A reply that came but could not be read (malformed, over its size limit, or
// an AddAnyPortMapping reply without a port): the gateway may have made the
// mapping all the same.
bool unreadable_reply(const std::error_code& error) { return error == Errc::bad_reply; }

// How far below the lease asked the time left in an entry read right after
// the add may be, and still be that lease.
constexpr std::chrono::seconds kLeaseCountdownSlack{10};

enum class Holder { nobody, asker, another, unknown };

// Who holds an external port, as GetSpecificPortMappingEntry tells: the
// internal client and port `args` name, another, nobody (714 NoSuchEntryInArray),
// or unknown when the gateway did not say.
Holder holder_of(const Result<PortMappingEntry>& entry, const PortMappingArgs& args) {
  if (!entry) return entry.error() == make_upnp_error(714) ? Holder::nobody : Holder::unknown;
  const bool asker = entry->internal_client == args.internal_client && entry->internal_port == args.internal_port;
  return asker ? Holder::asker : Holder::another;
}

// Refusals the port's holder explains: a conflict (714 NoSuchEntryInArray or
// 718 ConflictInMappingEntry: gateways answer so for a port nobody holds, or
// the asker does), 501 Action Failed (vendors' word for a conflict, among
// others), and 606 for another device.
bool holder_explains(const std::error_code& refusal, bool for_device) {
  return refusal == make_upnp_error(714) || refusal == make_upnp_error(718) || refusal == make_upnp_error(501) ||
         (for_device && refusal == make_upnp_error(606));
}

// 714 or 718 to an add: the gateway sees a conflict.
bool is_conflict(const std::error_code& refusal) {
  return refusal == make_upnp_error(714) || refusal == make_upnp_error(718);
}

enum class Reading { as_sent, held_by_another, phantom_conflict, third_party_refused };

// What a refusal holder_explains() means once the port's holder is known;
// `tried_again` after a phantom conflict was asked again.
Reading read_refusal(const std::error_code& refusal, Holder holder, bool for_device, bool tried_again) {
  if (holder == Holder::unknown) return Reading::as_sent;
  // 718 and 606 say what they mean; 714 and 501 do not name the conflict.
  if (holder == Holder::another)
    return refusal == make_upnp_error(718) || refusal == make_upnp_error(606) ? Reading::as_sent
                                                                                : Reading::held_by_another;
  if (refusal == make_upnp_error(501)) return Reading::as_sent;
  // Nobody holds the port, or the asker holds it just as asked: a conflict
  // with nobody, once; then, for another device, a gateway that forwards only
  // to the host that asks (miniupnpd's secure_mode answers 718 or 606).
  if (!tried_again && refusal != make_upnp_error(606)) return Reading::phantom_conflict;
  return for_device ? Reading::third_party_refused : Reading::as_sent;
}

}  // namespace

UpnpMapper::Lease UpnpMapper::held_lease(std::chrono::seconds asked, std::chrono::seconds held) {
  if (held.count() == 0) return {held, true};
  // The entry tells the time left, which counts down from the add (miniupnpd):
  // a few seconds short of the lease asked is that lease.
  if (held < asked && asked - held <= kLeaseCountdownSlack) return {asked, false};
  // A permanent lease asked for bounds nothing: a day is the most renewals wait.
  return {std::min(held, lease::permanent_lease_span(asked)), false};
}

UpnpMapper::UpnpMapper(std::shared_ptr<IgdControl> igd, std::string internal_client, UpnpMapperOptions options,
                       Timebase& time)
    : igd_(std::move(igd)),
      internal_client_(std::move(internal_client)),
      options_(options),
      time_(time),
      random_(options.seed) {}

asio::awaitable<Result<asio::ip::address>> UpnpMapper::external_address() {
  if (external_ip_ && time_.now() - external_ip_->read_at < kExternalAddressMaxAge) co_return external_ip_->address;
  co_return co_await ask_external_address();
}

asio::awaitable<Result<asio::ip::address>> UpnpMapper::ask_external_address() {
  auto text = co_await igd_->get_external_ip_address();
  if (!text) co_return text.error();
  // An empty address is one the gateway does not have (WANIPConnection:2
  // section 2.3.13); miniupnpd also gives it for a private one. Unspecified,
  // like 0.0.0.0, so that a report can say what that means.
  boost::system::error_code parse_error;
  const auto address = text->empty() ? asio::ip::address(asio::ip::address_v4::any())
                                     : asio::ip::make_address(*text, parse_error);
  if (parse_error) co_return make_error_code(Errc::bad_reply);
  external_ip_ = ReadAddress{address, time_.now()};
  co_return address;
}

std::string UpnpMapper::client_of(const MapRequest& request) const {
  return request.internal_client ? request.internal_client->to_string() : internal_client_;
}

asio::awaitable<Result<Mapping>> UpnpMapper::map(MapRequest request) {
  PortMappingArgs args{request.proto,      request.wanted_external_port, request.internal_port,
                       client_of(request), request.description,
                       only_permanent_leases_ ? std::chrono::seconds(0) : request.lifetime};
  auto granted = co_await add_and_read_back(args);
  if (!granted && refuses_finite_lease(granted.error(), args.lease)) {
    // Take a permanent lease, flagged so that it is deleted when natkeeper
    // lets go of it; and ask for one at once from now on.
    only_permanent_leases_ = true;
    args.lease = std::chrono::seconds(0);
    granted = co_await add_and_read_back(args);
  }
  if (!granted) granted = co_await explain_refusal(args, granted.error(), for_other_device(request));
  if (!granted && granted.error() == MapFailure::port_conflict && options_.allow_other_external_port &&
      !uses_add_any())
    granted = co_await add_with_other_port(args);
  if (granted && granted->external_port != args.external_port && !for_other_device(request))
    granted = co_await refresh_in_place(args, *granted);
  if (!granted) co_return granted.error();
  // AddAnyPortMapping may grant another port than the wanted one: whether that
  // is acceptable is the agent's policy, for every protocol alike.
  auto external = co_await external_address();
  if (!external) co_return external.error();
  co_return Mapping{std::move(request), *external, granted->external_port, granted->lease.lifetime,
                    granted->lease.permanent};
}

bool UpnpMapper::uses_add_any() const { return igd_->has_add_any_port_mapping() && !add_any_refused_; }

asio::awaitable<Result<UpnpMapper::Grant>> UpnpMapper::add_and_read_back(const PortMappingArgs& args) {
  const auto added = co_await add(args);
  if (!added && !unreadable_reply(added.error())) co_return added.error();
  // The entry the gateway holds now tells whether the mapping is there, and
  // the lease it really holds (some gateways shorten it, or ignore it).
  // Where the gateway lists its entries, the batch's grants are read back
  // together (read_back): the word of a readable reply stands until then.
  if (added && reads_back_later()) co_return Grant{*added, held_lease(args.lease, args.lease)};
  const auto port = added ? *added : args.external_port;
  const auto entry = co_await entry_at(args.proto, port);
  switch (holder_of(entry, args)) {
    case Holder::asker:
      co_return Grant{port, held_lease(args.lease, entry->lease)};
    case Holder::unknown:
      // A gateway that cannot show its entries: its word stands, lease as asked.
      if (added) co_return Grant{port, held_lease(args.lease, args.lease)};
      break;
    case Holder::nobody:
    case Holder::another:
      if (added) co_return make_error_code(Errc::added_but_not_held);
      break;
  }
  co_return added.error();
}

asio::awaitable<Result<std::uint16_t>> UpnpMapper::add(PortMappingArgs args) {
  if (uses_add_any()) {
    auto port = co_await igd_->add_any_port_mapping(args);
    if (port || !lacks_action(port.error())) co_return port;
    add_any_refused_ = true;
  }
  const auto ec = co_await igd_->add_port_mapping(args);
  if (ec) co_return ec;
  co_return args.external_port;
}

asio::awaitable<Result<PortMappingEntry>> UpnpMapper::entry_at(Transport proto, std::uint16_t external_port) {
  co_return co_await igd_->get_specific_port_mapping(proto, external_port);
}

asio::awaitable<Result<UpnpMapper::Grant>> UpnpMapper::explain_refusal(const PortMappingArgs& args,
                                                                       std::error_code refusal, bool for_device) {
  if (!holder_explains(refusal, for_device)) co_return refusal;
  const auto holder = holder_of(co_await entry_at(args.proto, args.external_port), args);
  auto reading = read_refusal(refusal, holder, for_device, false);
  if (reading == Reading::phantom_conflict) {
    auto again = co_await add_and_read_back(args);
    if (again) co_return again;
    if (holder == Holder::asker && !for_device && is_conflict(again.error())) {
      // Some routers will not refresh an entry, even for the client that
      // holds it: it is made afresh (a moment without it beats its expiry).
      // Not a device's: a router refusing third-party mappings would not
      // make it again.
      if (!co_await delete_entry(args.proto, args.external_port)) again = co_await add_and_read_back(args);
      if (again) co_return again;
    }
    refusal = again.error();
    reading = holder_explains(refusal, for_device) ? read_refusal(refusal, holder, for_device, true) : Reading::as_sent;
  }
  switch (reading) {
    case Reading::held_by_another: co_return make_error_code(Errc::port_held_by_another);
    case Reading::third_party_refused: co_return make_error_code(Errc::third_party_refused);
    case Reading::as_sent:
    case Reading::phantom_conflict: break;
  }
  co_return refusal;
}

asio::awaitable<Result<UpnpMapper::Grant>> UpnpMapper::refresh_in_place(const PortMappingArgs& args, Grant moved) {
  if (holder_of(co_await entry_at(args.proto, args.external_port), args) != Holder::asker) co_return moved;
  if (co_await delete_entry(args.proto, moved.external_port)) co_return moved;
  if (const auto ec = co_await delete_entry(args.proto, args.external_port)) co_return ec;
  co_return co_await add_and_read_back(args);
}

asio::awaitable<Result<UpnpMapper::Grant>> UpnpMapper::add_with_other_port(PortMappingArgs args) {
  Result<Grant> granted = make_error_code(Errc::bad_reply);
  for (int attempt = 0; attempt < options_.other_port_attempts; ++attempt) {
    args.external_port = pick_other_port();
    granted = co_await add_and_read_back(args);
    if (granted || granted.error() != MapFailure::port_conflict) break;
  }
  co_return granted;
}

std::uint16_t UpnpMapper::pick_other_port() {
  // Above the well-known and registered-for-system ranges routers often reserve.
  return std::uniform_int_distribution<std::uint16_t>(1024, 65535)(random_);
}

asio::awaitable<std::error_code> UpnpMapper::unmap(Mapping mapping) {
  const auto proto = mapping.request.proto;
  const auto port = mapping.external_port;
  // Never delete a mapping some other host holds on the same port.
  const auto ours = co_await holds(mapping);
  if (!ours) co_return ours.error();
  if (!*ours) co_return std::error_code{};
  co_return co_await delete_entry(proto, port);
}

asio::awaitable<std::error_code> UpnpMapper::delete_entry(Transport proto, std::uint16_t external_port) {
  const auto ec = co_await igd_->delete_port_mapping(proto, external_port);
  if (ec == make_upnp_error(714)) co_return std::error_code{};
  co_return ec;
}

asio::awaitable<Result<std::vector<Mapping>>> UpnpMapper::list_table(std::size_t limit) {
  std::vector<Mapping> table;
  for (std::uint32_t index = 0; index < limit; ++index) {
    auto listed = co_await igd_->get_generic_port_mapping(index);
    // 713 SpecifiedArrayIndexInvalid: past the end. Some gateways say 402 Invalid Args.
    if (!listed && (listed.error() == make_upnp_error(713) || listed.error() == make_upnp_error(402))) break;
    if (!listed) co_return listed.error();
    boost::system::error_code bad_address;
    const auto client = asio::ip::make_address(listed->entry.internal_client, bad_address);
    if (bad_address) continue;
    MapRequest request{listed->proto, listed->entry.internal_port, listed->external_port, listed->entry.lease,
                       listed->entry.description, client, {}};
    table.push_back(Mapping{std::move(request), {}, listed->external_port, listed->entry.lease,
                            listed->entry.lease.count() == 0});
  }
  co_return table;
}

asio::awaitable<Result<bool>> UpnpMapper::holds(const Mapping& mapping) {
  const auto args = args_of(mapping);
  const auto entry = co_await entry_at(args.proto, args.external_port);
  const auto holder = holder_of(entry, args);
  if (holder == Holder::unknown) co_return Result<bool>(boost::system::in_place_error, entry.error());
  co_return holder == Holder::asker;
}

asio::awaitable<Result<GatewayCheck>> UpnpMapper::check(const Mapping& sample) {
  const auto held = co_await holds(sample);
  if (!held) co_return held.error();
  const auto address = co_await ask_external_address();
  if (!address) co_return address.error();
  co_return GatewayCheck{!*held, *address, std::nullopt};
}

bool UpnpMapper::lists_mappings() const { return igd_->has_add_any_port_mapping() && !list_refused_; }

PortMappingArgs UpnpMapper::args_of(const Mapping& mapping) const {
  return {mapping.request.proto, mapping.external_port, mapping.request.internal_port, client_of(mapping.request), {},
          {}};
}

asio::awaitable<Result<UpnpMapper::Listing>> UpnpMapper::list_around(const std::vector<Mapping>& mappings) {
  Listing listing;
  // Gateways list in their own order, so a full page does not tell where it
  // ends: its range is read again in halves instead.
  std::vector<std::tuple<Transport, std::uint16_t, std::uint16_t>> ranges;
  for (const auto proto : {Transport::udp, Transport::tcp}) {
    std::optional<std::pair<std::uint16_t, std::uint16_t>> span;
    for (const auto& mapping : mappings) {
      if (mapping.request.proto != proto) continue;
      const auto port = mapping.external_port;
      span = span ? std::pair(std::min(span->first, port), std::max(span->second, port)) : std::pair(port, port);
    }
    if (span) ranges.emplace_back(proto, span->first, span->second);
  }
  for (int requests = 0; !ranges.empty() && requests < kMaxListRequests; ++requests) {
    const auto [proto, first, last] = ranges.back();
    ranges.pop_back();
    auto page = co_await igd_->get_list_of_port_mappings(proto, first, last, kListPage);
    if (!page) co_return page.error();
    if (page->size() >= kListPage && first < last) {
      const auto middle = static_cast<std::uint16_t>(first + (last - first) / 2);
      ranges.emplace_back(proto, static_cast<std::uint16_t>(middle + 1), last);
      ranges.emplace_back(proto, first, middle);
    }
    for (auto& listed : *page) listing.entries.insert_or_assign({listed.proto, listed.external_port}, std::move(listed.entry));
  }
  listing.unread = std::move(ranges);
  co_return listing;
}

asio::awaitable<Result<std::vector<std::optional<HeldLease>>>> UpnpMapper::read_back(std::vector<Mapping> mappings) {
  std::vector<std::optional<HeldLease>> held(mappings.size());
  std::optional<Listing> listing;
  if (lists_mappings()) {
    auto listed = co_await list_around(mappings);
    if (listed) listing = std::move(*listed);
    else if (lacks_action(listed.error())) list_refused_ = true;
    else co_return listed.error();
  }
  for (std::size_t i = 0; i < mappings.size(); ++i) {
    const auto& mapping = mappings[i];
    const auto args = args_of(mapping);
    const auto believed = held_lease(mapping.lifetime, mapping.permanent ? std::chrono::seconds(0) : mapping.lifetime);
    std::optional<Result<PortMappingEntry>> entry;
    if (listing) {
      const auto key = std::pair(args.proto, args.external_port);
      const auto unread = std::any_of(listing->unread.begin(), listing->unread.end(), [&](const auto& range) {
        return std::get<0>(range) == key.first && std::get<1>(range) <= key.second && key.second <= std::get<2>(range);
      });
      if (unread) {
        held[i] = HeldLease{believed.lifetime, believed.permanent};
        continue;
      }
      if (const auto found = listing->entries.find(key); found != listing->entries.end()) entry = found->second;
    }
    // Not listed as asked, or no listing: the entry itself decides (some
    // gateways list fewer entries than a page holds).
    if (!entry || holder_of(*entry, args) != Holder::asker) entry = co_await entry_at(args.proto, args.external_port);
    switch (holder_of(*entry, args)) {
      case Holder::asker: {
        const auto lease = held_lease(mapping.lifetime, (*entry)->lease);
        held[i] = HeldLease{lease.lifetime, lease.permanent};
        break;
      }
      case Holder::unknown:
        if (entry->error() == MapFailure::gateway_unreachable) co_return entry->error();
        // A gateway that cannot show its entry: its word stands.
        held[i] = HeldLease{believed.lifetime, believed.permanent};
        break;
      case Holder::nobody:
      case Holder::another:
        break;
    }
  }
  co_return held;
}

}  // namespace natkeeper::upnp
