#pragma once
// PCP responses built by hand from the request they answer, for the client and
// mapper tests.
#include <boost/asio/ip/address_v4.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "mappers/pcp/pcp_codec.hpp"

namespace pcp_replies {

using Bytes = std::vector<std::uint8_t>;
namespace ip = boost::asio::ip;
using namespace natkeeper::pcp;

inline void put32(Bytes& bytes, std::size_t at, std::uint32_t value) {
  for (std::size_t i = 0; i < 4; ++i) bytes[at + i] = static_cast<std::uint8_t>(value >> (24 - 8 * i));
}

// The scripted server's answer to a request, built the way RFC 6887 §8.3 says
// a server builds it: the request with R set, result code, lifetime and epoch
// filled in, and for MAP the assigned external port and address.
struct Answer {
  ResultCode result = ResultCode::success;
  std::uint32_t lifetime = 3600;
  std::uint32_t epoch = 100;
  std::uint16_t external_port = 0;  // 0: the suggested one
  ip::address_v4 external_address = ip::make_address_v4("203.0.113.1");
};

inline Bytes answer(const Bytes& request, const Answer& a = {}) {
  Bytes reply = request;
  reply[response_header::kROpcode] |= kResponseBit;
  reply[response_header::kReserved] = 0;
  reply[response_header::kResultCode] = static_cast<std::uint8_t>(a.result);
  put32(reply, response_header::kLifetime, a.lifetime);
  put32(reply, response_header::kEpoch, a.epoch);
  std::fill_n(reply.begin() + response_header::kReserved2, response_header::kReserved2Size, 0);
  if ((request[request_header::kROpcode] & kOpcodeMask) == static_cast<std::uint8_t>(Opcode::map)) {
    const auto body = reply.begin() + request_header::kSize;
    if (a.external_port != 0) {
      body[map_body::kExternalPort] = static_cast<std::uint8_t>(a.external_port >> 8);
      body[map_body::kExternalPort + 1] = static_cast<std::uint8_t>(a.external_port);
    }
    const auto address = to_v4_mapped(a.external_address).to_bytes();
    std::copy(address.begin(), address.end(), body + map_body::kExternalAddress);
  }
  return reply;
}

}  // namespace pcp_replies
