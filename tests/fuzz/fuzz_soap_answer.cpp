// SOAP answers come from whatever answers at the gateway's control URL.
#include <algorithm>
#include <array>
#include <string_view>

#include "mappers/errors.hpp"
#include "mappers/upnp/soap.hpp"
#include "tests/fuzz/fuzz_target.hpp"

namespace {

using namespace natkeeper;
using namespace natkeeper::upnp;

constexpr std::uint16_t kFirst = 1000, kLast = 2000, kAtMost = 16;

void check_listing(std::string_view listing) {
  const auto entries = read_port_listing(listing, Transport::udp, kFirst, kLast, kAtMost);
  if (!entries) {
    if (entries.error() != Errc::bad_reply) __builtin_trap();
    return;
  }
  if (entries->size() > kAtMost) __builtin_trap();
  for (const auto& entry : *entries) {
    if (entry.proto != Transport::udp || entry.external_port < kFirst || entry.external_port > kLast ||
        entry.entry.internal_port == 0)
      __builtin_trap();
  }
}

}  // namespace

NATKEEPER_FUZZ_TARGET(soap_answer) {
  if (size == 0) return 0;
  // The first byte: bit 0 the HTTP status (200 or 500), bit 1 whether the
  // body is also read as a bare listing, the rest the action.
  const int status = data[0] & 1 ? 200 : 500;
  constexpr std::array<std::string_view, 3> actions{"GetSpecificPortMappingEntry", "GetListOfPortMappings",
                                                    "AddPortMapping"};
  const auto action = actions[(data[0] >> 2) % actions.size()];
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 2) check_listing(body);

  constexpr std::array<std::string_view, 4> outputs{"NewInternalPort", "NewPortMappingDescription", "NewPortListing",
                                                    "NewLeaseDuration"};
  const auto answer = read_soap_answer(action, status, body, outputs);
  if (!answer) {
    const auto& error = answer.error();
    const bool upnp_code = error.category() == upnp_category() && error.value() >= 100 && error.value() <= 999;
    if (!upnp_code && error != Errc::bad_reply) __builtin_trap();
    return 0;
  }
  if (status != 200) __builtin_trap();
  for (const auto& [name, value] : *answer) {
    if (std::find(outputs.begin(), outputs.end(), name) == outputs.end()) __builtin_trap();
    // Decoding only shortens.
    if (value.size() > body.size()) __builtin_trap();
  }
  if (const auto listing = answer->find("NewPortListing"); listing != answer->end()) check_listing(listing->second);
  return 0;
}
