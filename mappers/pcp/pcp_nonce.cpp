#include "mappers/pcp/pcp_nonce.hpp"

#include <algorithm>

#include "mappers/hmac.hpp"

namespace natkeeper::pcp {

Nonce derive_nonce(std::span<const std::uint8_t, 32> host_key, const boost::asio::ip::address_v4& client,
                   Transport proto, std::uint16_t internal_port) {
  const auto address = client.to_bytes();
  const std::array<std::uint8_t, 7> message{address[0], address[1], address[2], address[3],
                                            static_cast<std::uint8_t>(proto),
                                            static_cast<std::uint8_t>(internal_port >> 8),
                                            static_cast<std::uint8_t>(internal_port & 0xff)};
  const auto digest = hmac_sha256(host_key, message);
  Nonce nonce{};
  std::copy_n(digest.begin(), nonce.size(), nonce.begin());
  return nonce;
}

}  // namespace natkeeper::pcp
