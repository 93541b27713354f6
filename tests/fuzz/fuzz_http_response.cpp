// Description fetches read HTTP from any device that answered SSDP.
#include <string_view>

#include "mappers/upnp/http_response.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(http_response) {
  using natkeeper::upnp::HttpResponseReader;
  if (size == 0) return 0;
  // The first byte splits the rest into two reads, as a socket may.
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto split = std::min<std::size_t>(data[0], input.size());
  const natkeeper::upnp::HttpResponseLimits limits{512, 1024};
  HttpResponseReader reader(limits);
  reader.feed(input.substr(0, split));
  reader.feed(input.substr(split));
  reader.finish();
  if (reader.state() == HttpResponseReader::State::need_more) __builtin_trap();
  if (reader.body().size() > limits.max_body_bytes) __builtin_trap();
  if (reader.state() == HttpResponseReader::State::complete && (reader.status() < 200 || reader.status() > 999))
    __builtin_trap();
  if (reader.state() == HttpResponseReader::State::failed && reader.error().empty()) __builtin_trap();
  return 0;
}
