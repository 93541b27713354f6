#include "agent/reflector/protocol.hpp"

#include <algorithm>

#include "mappers/byte_order.hpp"
#include "mappers/hmac.hpp"

namespace natkeeper::reflector {
namespace {

namespace ip = boost::asio::ip;
using wire::get16;
using wire::put16;

template <std::size_t N>
void put_bytes(std::span<std::uint8_t> out, std::size_t at, const std::array<std::uint8_t, N>& bytes) noexcept {
  std::copy(bytes.begin(), bytes.end(), out.begin() + static_cast<std::ptrdiff_t>(at));
}

template <std::size_t N>
std::array<std::uint8_t, N> get_bytes(std::span<const std::uint8_t> in, std::size_t at) noexcept {
  std::array<std::uint8_t, N> bytes{};
  std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(at), N, bytes.begin());
  return bytes;
}

// 16 bytes: IPv6 as it is, IPv4 as ::ffff:a.b.c.d.
ip::address_v6::bytes_type address_bytes(const ip::address& address) noexcept {
  if (address.is_v6()) return address.to_v6().to_bytes();
  ip::address_v6::bytes_type bytes{};
  bytes[10] = 0xff;
  bytes[11] = 0xff;
  const auto v4 = address.to_v4().to_bytes();
  std::copy(v4.begin(), v4.end(), bytes.begin() + 12);
  return bytes;
}

void put_source(std::span<std::uint8_t> out, std::size_t at, const Source& source) noexcept {
  put_bytes(out, at, address_bytes(source.address));
  put16(out, at + kAddressSize, source.port);
}

Source get_source(std::span<const std::uint8_t> in, std::size_t at) noexcept {
  const ip::address_v6 address(get_bytes<kAddressSize>(in, at));
  return {normalized(address), get16(in, at + kAddressSize)};
}

void put_header(std::span<std::uint8_t> out, MessageType type, const Token& token) noexcept {
  put_bytes(out, header::kMagic, kMagic);
  out[header::kVersion] = kProtocolVersion;
  out[header::kType] = static_cast<std::uint8_t>(type);
  put16(out, header::kReserved, 0);
  put_bytes(out, header::kToken, token);
}

// Magic and version; the type is the caller's to judge.
std::optional<DecodeError> check_header(std::span<const std::uint8_t> in) noexcept {
  if (in.size() < header::kSize) return DecodeError::too_short;
  if (!std::equal(kMagic.begin(), kMagic.end(), in.begin() + header::kMagic)) return DecodeError::bad_magic;
  if (in[header::kVersion] != kProtocolVersion) return DecodeError::bad_version;
  return std::nullopt;
}

bool all_zero(std::span<const std::uint8_t> bytes) noexcept {
  return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

}  // namespace

std::string_view to_string(Status status) noexcept {
  switch (status) {
    case Status::sent: return "probe sent";
    case Status::rate_limited: return "rate limited";
    case Status::auth_failed: return "authentication failed (key required or wrong)";
    case Status::bad_request: return "bad request";
    case Status::busy: return "busy (too many TCP probes in flight)";
    case Status::connected: return "TCP handshake completed";
    case Status::refused: return "TCP connection refused";
    case Status::no_answer: return "no answer to the TCP connection";
  }
  return "unknown status";
}

std::string_view to_string(DecodeError error) noexcept {
  switch (error) {
    case DecodeError::too_short: return "too short";
    case DecodeError::too_long: return "too long";
    case DecodeError::bad_magic: return "not a reflector message (bad magic)";
    case DecodeError::bad_version: return "not protocol version 1";
    case DecodeError::wrong_type: return "unexpected message type";
    case DecodeError::nonzero_reserved: return "reserved field not zero";
    case DecodeError::nonzero_padding: return "padding not zero";
  }
  return "unknown decode error";
}

// --- Client side ------------------------------------------------------------------

RequestBytes encode_request(const RequestFields& fields, std::span<const std::uint8_t> key) noexcept {
  RequestBytes bytes{};  // reserved fields and, without a key, the tag stay zero
  const std::span<std::uint8_t> out(bytes);
  put_header(out, MessageType::request, fields.token);
  out[request::kTransport] = static_cast<std::uint8_t>(fields.transport);
  out[request::kKind] = static_cast<std::uint8_t>(fields.kind);
  put16(out, request::kTargetPort, fields.target_port);
  put_bytes(out, request::kCookie, fields.cookie);
  if (!key.empty()) put_bytes(out, request::kAuthTag, compute_auth_tag(key, bytes));
  return bytes;
}

TcpRequestBytes encode_tcp_request(const RequestFields& fields, std::span<const std::uint8_t> key) noexcept {
  TcpRequestBytes bytes{};
  put16(bytes, 0, static_cast<std::uint16_t>(request::kSize));
  const auto message = encode_request(fields, key);
  std::copy(message.begin(), message.end(), bytes.begin() + kFrameLengthSize);
  return bytes;
}

ReplyResult decode_reply(std::span<const std::uint8_t> in) noexcept {
  if (auto error = check_header(in)) return *error;
  Reply reply;
  reply.token = get_bytes<kTokenSize>(in, header::kToken);
  switch (in[header::kType]) {
    case static_cast<std::uint8_t>(MessageType::cookie):
      if (in.size() < cookie_reply::kSize) return DecodeError::too_short;
      if (in.size() > cookie_reply::kSize) return DecodeError::too_long;
      reply.type = MessageType::cookie;
      reply.observed = get_source(in, cookie_reply::kObservedAddress);
      reply.cookie = get_bytes<kCookieSize>(in, cookie_reply::kCookie);
      return reply;
    case static_cast<std::uint8_t>(MessageType::result):
      if (in.size() < result_reply::kSize) return DecodeError::too_short;
      if (in.size() > result_reply::kSize) return DecodeError::too_long;
      reply.type = MessageType::result;
      reply.status = static_cast<Status>(in[result_reply::kStatus]);
      reply.observed = get_source(in, result_reply::kObservedAddress);
      return reply;
    default:
      return DecodeError::wrong_type;
  }
}

ProbeResult decode_probe(std::span<const std::uint8_t> in) noexcept {
  if (auto error = check_header(in)) return *error;
  if (in[header::kType] != static_cast<std::uint8_t>(MessageType::probe)) return DecodeError::wrong_type;
  if (in.size() > probe::kSize) return DecodeError::too_long;
  return get_bytes<kTokenSize>(in, header::kToken);
}

// --- Reflector side ---------------------------------------------------------------

RequestResult decode_request(std::span<const std::uint8_t> in) noexcept {
  if (auto error = check_header(in)) return *error;
  if (in[header::kType] != static_cast<std::uint8_t>(MessageType::request)) return DecodeError::wrong_type;
  if (in.size() < request::kSize) return DecodeError::too_short;
  if (in.size() > request::kMaxSize) return DecodeError::too_long;
  if (get16(in, header::kReserved) != 0) return DecodeError::nonzero_reserved;
  if (!all_zero(in.subspan(request::kSize))) return DecodeError::nonzero_padding;
  Request request;
  request.token = get_bytes<kTokenSize>(in, header::kToken);
  request.transport = in[request::kTransport];
  request.kind = in[request::kKind];
  request.target_port = get16(in, request::kTargetPort);
  request.cookie = get_bytes<kCookieSize>(in, request::kCookie);
  request.auth_tag = get_bytes<kAuthTagSize>(in, request::kAuthTag);
  request.size = in.size();
  return request;
}

std::optional<Transport> probe_transport(const Request& request) noexcept {
  switch (request.transport) {
    case static_cast<std::uint8_t>(Transport::tcp): return Transport::tcp;
    case static_cast<std::uint8_t>(Transport::udp): return Transport::udp;
    default: return std::nullopt;
  }
}

std::optional<ProbeKind> probe_kind(const Request& request) noexcept {
  switch (request.kind) {
    case static_cast<std::uint8_t>(ProbeKind::deliver): return ProbeKind::deliver;
    case static_cast<std::uint8_t>(ProbeKind::handshake): return ProbeKind::handshake;
    default: return std::nullopt;
  }
}

CookieBytes encode_cookie(const Token& token, const Source& observed, const Cookie& cookie) noexcept {
  CookieBytes bytes{};
  put_header(bytes, MessageType::cookie, token);
  put_source(bytes, cookie_reply::kObservedAddress, observed);
  put_bytes(bytes, cookie_reply::kCookie, cookie);
  return bytes;
}

ResultBytes encode_result(const Token& token, Status status, const Source& observed) noexcept {
  ResultBytes bytes{};
  put_header(bytes, MessageType::result, token);
  bytes[result_reply::kStatus] = static_cast<std::uint8_t>(status);
  put_source(bytes, result_reply::kObservedAddress, observed);
  return bytes;
}

TcpResultBytes encode_tcp_result(const Token& token, Status status, const Source& observed) noexcept {
  TcpResultBytes bytes{};
  put16(bytes, 0, static_cast<std::uint16_t>(result_reply::kSize));
  const auto message = encode_result(token, status, observed);
  std::copy(message.begin(), message.end(), bytes.begin() + kFrameLengthSize);
  return bytes;
}

ProbeBytes encode_probe(const Token& token) noexcept {
  ProbeBytes bytes{};
  put_header(bytes, MessageType::probe, token);
  return bytes;
}

// --- TCP framing ------------------------------------------------------------------

std::array<std::uint8_t, kFrameLengthSize> encode_frame_length(std::uint16_t length) noexcept {
  std::array<std::uint8_t, kFrameLengthSize> bytes{};
  put16(bytes, 0, length);
  return bytes;
}

std::uint16_t decode_frame_length(std::span<const std::uint8_t, kFrameLengthSize> bytes) noexcept {
  return get16(bytes, 0);
}

// --- Authentication ---------------------------------------------------------------

AuthTag compute_auth_tag(std::span<const std::uint8_t> key, std::span<const std::uint8_t> request) noexcept {
  AuthTag tag{};
  if (request.size() < request::kAuthenticatedSize) return tag;
  const auto digest = hmac_sha256(key, request.first(request::kAuthenticatedSize));
  std::copy_n(digest.begin(), tag.size(), tag.begin());
  return tag;
}

bool auth_tag_valid(std::span<const std::uint8_t> request, std::span<const std::uint8_t> key) noexcept {
  if (request.size() < request::kSize) return false;
  return equal_constant_time(compute_auth_tag(key, request), get_bytes<kAuthTagSize>(request, request::kAuthTag));
}

std::optional<std::vector<std::uint8_t>> parse_key(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n\f\v";
  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return std::nullopt;
  text = text.substr(first, text.find_last_not_of(kSpace) - first + 1);
  if (text.size() < kMinKeySize || text.size() > kMaxKeySize) return std::nullopt;
  return std::vector<std::uint8_t>(text.begin(), text.end());
}

// --- Cookies ----------------------------------------------------------------------

std::uint64_t cookie_slot(std::chrono::system_clock::time_point now) noexcept {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  return seconds < 0 ? 0 : static_cast<std::uint64_t>(seconds) / static_cast<std::uint64_t>(kCookieSlot.count());
}

Cookie make_cookie(const Secret& secret, const Source& source, std::uint64_t slot) noexcept {
  std::array<std::uint8_t, 8 + kAddressSize + 2> message{};
  for (std::size_t i = 0; i < 8; ++i) message[i] = static_cast<std::uint8_t>(slot >> (56 - 8 * i));
  put_bytes(message, 8, address_bytes(source.address));
  put16(message, 8 + kAddressSize, source.port);
  return hmac_sha256(secret, message);
}

bool cookie_valid(const Secret& secret, const Source& source, const Cookie& cookie,
                  std::uint64_t current_slot) noexcept {
  // Both are computed, so the time taken does not tell which slot matched.
  const bool current = equal_constant_time(make_cookie(secret, source, current_slot), cookie);
  const bool previous = current_slot > 0 && equal_constant_time(make_cookie(secret, source, current_slot - 1), cookie);
  return current || previous;
}

// --- Addresses --------------------------------------------------------------------

ip::address normalized(const ip::address& address) noexcept {
  if (address.is_v6() && address.to_v6().is_v4_mapped())
    return ip::make_address_v4(ip::v4_mapped, address.to_v6());
  return address;
}

}  // namespace natkeeper::reflector
