// Everything the reflector and the verifier read off the network goes through
// these decoders: any bytes must decode or be refused, never crash or read
// past the end, and what decodes must encode back to the same bytes.
#include <algorithm>
#include <span>
#include <string_view>

#include "agent/reflector/protocol.hpp"
#include "tests/fuzz/fuzz_target.hpp"

using namespace natkeeper::reflector;

namespace {

template <class Bytes>
bool same_prefix(const Bytes& encoded, std::span<const std::uint8_t> in, std::size_t size) {
  return std::equal(encoded.begin(), encoded.begin() + static_cast<std::ptrdiff_t>(size), in.begin());
}

}  // namespace

NATKEEPER_FUZZ_TARGET(reflector_protocol) {
  const std::span<const std::uint8_t> in(data, size);

  if (const auto request = decode_request(in)) {
    if (request->size != size || size < request::kSize || size > request::kMaxSize) __builtin_trap();
    const auto transport = probe_transport(*request);
    const auto kind = probe_kind(*request);
    if (transport && kind) {
      const RequestFields fields{request->token, *transport, request->target_port, request->cookie, *kind};
      const auto encoded = encode_request(fields);
      if (!same_prefix(encoded, in, request::kAuthTag)) __builtin_trap();
    }
    static const std::uint8_t key[16] = {'f', 'u', 'z', 'z', '-', 'k', 'e', 'y', '-', '0', '1', '2', '3', '4', '5', '6'};
    (void)auth_tag_valid(in, key);
  }

  if (const auto reply = decode_reply(in)) {
    if (reply->type == MessageType::cookie) {
      if (size != cookie_reply::kSize) __builtin_trap();
      const auto encoded = encode_cookie(reply->token, reply->observed, reply->cookie);
      // Reserved fields are ignored on receipt: compare what they do not cover.
      if (!same_prefix(encoded, in, header::kMagic + 6) ||
          !std::equal(encoded.begin() + header::kToken, encoded.begin() + cookie_reply::kReserved,
                      in.begin() + header::kToken) ||
          !std::equal(encoded.begin() + cookie_reply::kCookie, encoded.end(), in.begin() + cookie_reply::kCookie))
        __builtin_trap();
    } else if (reply->type == MessageType::result) {
      if (size != result_reply::kSize) __builtin_trap();
      const auto encoded = encode_result(reply->token, reply->status, reply->observed);
      if (!same_prefix(encoded, in, header::kMagic + 6) ||
          !std::equal(encoded.begin() + header::kToken, encoded.begin() + result_reply::kReserved,
                      in.begin() + header::kToken) ||
          !std::equal(encoded.begin() + result_reply::kObservedAddress, encoded.begin() + result_reply::kReserved2,
                      in.begin() + result_reply::kObservedAddress))
        __builtin_trap();
    } else {
      __builtin_trap();
    }
  }

  if (const auto token = decode_probe(in)) {
    if (size != probe::kSize) __builtin_trap();
    const auto encoded = encode_probe(*token);
    if (!same_prefix(encoded, in, header::kMagic + 6) ||
        !std::equal(encoded.begin() + header::kToken, encoded.end(), in.begin() + header::kToken))
      __builtin_trap();
  }

  // A TCP stream: a length and what follows.
  if (size >= kFrameLengthSize) {
    const std::size_t length = decode_frame_length(in.first<kFrameLengthSize>());
    const auto rest = in.subspan(kFrameLengthSize);
    if (length <= rest.size()) {
      (void)decode_request(rest.first(length));
      (void)decode_reply(rest.first(length));
    }
  }

  if (const auto key = parse_key(std::string_view(reinterpret_cast<const char*>(data), size))) {
    if (key->size() < kMinKeySize || key->size() > kMaxKeySize) __builtin_trap();
  }
  return 0;
}
