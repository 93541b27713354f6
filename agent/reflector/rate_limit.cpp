#include "agent/reflector/rate_limit.hpp"

#include <algorithm>
#include <iterator>

#include "agent/reflector/protocol.hpp"

namespace natkeeper::reflector {

namespace {

std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// The address's 16 bytes, IPv4-mapped for IPv4, of which the first `v4_bits`
// (IPv4, counted from the IPv4 address) or `v6_bits` (IPv6) are kept.
SourceKey prefix_key(const boost::asio::ip::address& source, std::size_t v4_bits, std::size_t v6_bits) noexcept {
  const auto address = normalized(source);
  SourceKey key{};
  std::size_t kept_bytes = 0;
  if (address.is_v4()) {  // ::ffff:a.b.c.d
    key[10] = key[11] = 0xff;
    const auto bytes = address.to_v4().to_bytes();
    std::copy(bytes.begin(), bytes.end(), key.begin() + 12);
    kept_bytes = 12 + v4_bits / 8;
  } else {
    const auto bytes = address.to_v6().to_bytes();
    std::copy(bytes.begin(), bytes.end(), key.begin());
    kept_bytes = v6_bits / 8;
  }
  std::fill(key.begin() + static_cast<std::ptrdiff_t>(kept_bytes), key.begin() + 16, 0);
  return key;
}

}  // namespace

double burst_for(double rate) noexcept { return std::max(1.0, 2 * rate); }

TokenBucket::TokenBucket(double rate, double burst, Clock::time_point now) noexcept
    : rate_(rate), burst_(burst), tokens_(burst), last_(now) {}

bool TokenBucket::take(Clock::time_point now) noexcept {
  if (now > last_) {
    const std::chrono::duration<double> elapsed = now - last_;
    tokens_ = std::min(burst_, tokens_ + elapsed.count() * rate_);
    last_ = now;
  }
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

SourceKey rate_key(const boost::asio::ip::address& source) noexcept { return prefix_key(source, 32, 64); }

SourceKey endpoint_key(const boost::asio::ip::address& source, std::uint16_t port) noexcept {
  auto key = prefix_key(source, 32, 128);
  key[16] = static_cast<std::uint8_t>(port >> 8);
  key[17] = static_cast<std::uint8_t>(port);
  return key;
}

SourceKey slot_key(const boost::asio::ip::address& source) noexcept { return prefix_key(source, 24, 48); }

SourceLimiter::SourceLimiter(double rate, double burst, std::size_t capacity, std::uint64_t seed)
    : rate_(rate), burst_(burst), capacity_(std::max<std::size_t>(capacity, 1)), index_(0, KeyHash{seed}) {
  index_.reserve(capacity_);
}

std::size_t SourceLimiter::KeyHash::operator()(const SourceKey& key) const noexcept {
  std::uint64_t high = 0, low = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    high = (high << 8) | key[i];
    low = (low << 8) | key[8 + i];
  }
  const std::uint64_t port = (std::uint64_t{key[16]} << 8) | key[17];
  return static_cast<std::size_t>(mix(mix(mix(high ^ seed) ^ low) ^ port));
}

bool SourceLimiter::take(const SourceKey& k, Clock::time_point now) {
  if (const auto found = index_.find(k); found != index_.end()) {
    lru_.splice(lru_.begin(), lru_, found->second);
    return found->second->bucket.take(now);
  }
  if (lru_.size() >= capacity_) {  // forget the least recently seen, reusing its node
    index_.erase(lru_.back().key);
    lru_.splice(lru_.begin(), lru_, std::prev(lru_.end()));
    lru_.front() = Entry{k, TokenBucket(rate_, burst_, now)};
  } else {
    lru_.push_front(Entry{k, TokenBucket(rate_, burst_, now)});
  }
  index_.emplace(k, lru_.begin());
  return lru_.front().bucket.take(now);
}

SlotCounts::SlotCounts(std::size_t total, std::size_t per_prefix) noexcept : total_(total), per_prefix_(per_prefix) {}

bool SlotCounts::prefix_full(const SourceKey& prefix) const {
  const auto found = by_prefix_.find(prefix);
  return (found == by_prefix_.end() ? 0 : found->second) >= per_prefix_;
}

void SlotCounts::take(const SourceKey& prefix) {
  ++by_prefix_[prefix];
  ++held_;
}

void SlotCounts::give_back(const SourceKey& prefix) {
  const auto found = by_prefix_.find(prefix);
  if (found == by_prefix_.end()) return;
  if (--found->second == 0) by_prefix_.erase(found);
  --held_;
}

}  // namespace natkeeper::reflector
