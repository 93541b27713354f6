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

SourceLimiter::SourceLimiter(double rate, double burst, std::size_t capacity, std::uint64_t seed)
    : rate_(rate), burst_(burst), capacity_(std::max<std::size_t>(capacity, 1)), index_(0, KeyHash{seed}) {
  index_.reserve(capacity_);
}

SourceLimiter::Key SourceLimiter::key(const boost::asio::ip::address& source) noexcept {
  const auto address = normalized(source);
  Key key{};
  if (address.is_v4()) {  // ::ffff:a.b.c.d
    key[10] = key[11] = 0xff;
    const auto bytes = address.to_v4().to_bytes();
    std::copy(bytes.begin(), bytes.end(), key.begin() + 12);
  } else {  // the /64: one subscriber usually holds a whole /64
    const auto bytes = address.to_v6().to_bytes();
    std::copy_n(bytes.begin(), 8, key.begin());
  }
  return key;
}

std::size_t SourceLimiter::KeyHash::operator()(const Key& key) const noexcept {
  std::uint64_t high = 0, low = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    high = (high << 8) | key[i];
    low = (low << 8) | key[8 + i];
  }
  return static_cast<std::size_t>(mix(mix(high ^ seed) ^ low));
}

bool SourceLimiter::take(const boost::asio::ip::address& source, Clock::time_point now) {
  const auto k = key(source);
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

}  // namespace natkeeper::reflector
