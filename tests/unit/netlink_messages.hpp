#pragma once
// Hand-built rtnetlink messages, laid out as the kernel sends them.
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstdint>
#include <vector>

namespace natkeeper::test {

using Bytes = std::vector<std::uint8_t>;

template <class T>
void append(Bytes& out, const T& value) {
  const auto* raw = reinterpret_cast<const std::uint8_t*>(&value);
  out.insert(out.end(), raw, raw + sizeof value);
}

inline void pad(Bytes& out) {
  while (out.size() % 4 != 0) out.push_back(0);
}

inline Bytes attribute(std::uint16_t type, const Bytes& payload) {
  Bytes out;
  append(out, rtattr{static_cast<unsigned short>(sizeof(rtattr) + payload.size()), type});
  out.insert(out.end(), payload.begin(), payload.end());
  pad(out);
  return out;
}

// One netlink message: header, family header, attributes.
template <class FamilyHeader>
Bytes message(std::uint16_t type, const FamilyHeader& family, const std::vector<Bytes>& attributes = {}) {
  Bytes body;
  append(body, family);
  pad(body);
  for (const auto& a : attributes) body.insert(body.end(), a.begin(), a.end());
  nlmsghdr header{};
  header.nlmsg_len = static_cast<std::uint32_t>(sizeof header + body.size());
  header.nlmsg_type = type;
  Bytes out;
  append(out, header);
  out.insert(out.end(), body.begin(), body.end());
  pad(out);
  return out;
}

inline Bytes bare_message(std::uint16_t type, std::size_t payload_bytes = 0) {
  nlmsghdr header{};
  header.nlmsg_len = static_cast<std::uint32_t>(sizeof header + payload_bytes);
  header.nlmsg_type = type;
  Bytes out;
  append(out, header);
  out.resize(out.size() + payload_bytes);
  pad(out);
  return out;
}

inline Bytes concat(const std::vector<Bytes>& parts) {
  Bytes out;
  for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

}  // namespace natkeeper::test
