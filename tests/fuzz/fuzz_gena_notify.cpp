// The event callback server reads NOTIFY requests from any device on the LAN.
#include <string_view>

#include "mappers/upnp/gena.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(gena_notify) {
  namespace upnp = natkeeper::upnp;
  if (size == 0) return 0;
  // The first byte splits the rest into two reads, as a socket may.
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto split = std::min<std::size_t>(data[0], input.size());
  upnp::NotifyReader reader;
  reader.feed(input.substr(0, split));
  reader.feed(input.substr(split));
  reader.finish();
  if (reader.state() == upnp::NotifyReader::State::need_more) __builtin_trap();
  if (reader.state() == upnp::NotifyReader::State::failed) {
    if (reader.error().empty()) __builtin_trap();
    return 0;
  }
  if (reader.message().body().size() > upnp::kGenaMaxBodyBytes) __builtin_trap();
  const auto event = upnp::read_notify(reader.message());
  if (!event) return 0;
  if (event->sid.empty() || event->sid.size() > upnp::kGenaMaxSidBytes) __builtin_trap();
  if (event->properties.empty() || event->properties.size() > upnp::kGenaMaxProperties) __builtin_trap();
  for (const auto& property : event->properties) {
    if (property.name.empty() || property.name.size() > upnp::kGenaMaxValueBytes) __builtin_trap();
    if (property.value.size() > upnp::kGenaMaxValueBytes) __builtin_trap();
  }
  return 0;
}
