#pragma once
// The reflector's rate limits, without I/O: token buckets, one per source in a
// bounded table and one for all sources together. The caller gives the time.
#include <boost/asio/ip/address.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>

namespace natkeeper::reflector {

using Clock = std::chrono::steady_clock;

// A token bucket: `rate` tokens a second, holding at most `burst`.
class TokenBucket {
 public:
  TokenBucket(double rate, double burst, Clock::time_point now) noexcept;
  // Takes one token when there is one.
  bool take(Clock::time_point now) noexcept;

 private:
  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point last_;
};

// A bucket holds twice its rate (at least one token): the burst a source may send.
double burst_for(double rate) noexcept;

// One token bucket per source, in a table of at most `capacity` sources; the
// least recently seen source is forgotten first (it starts again with a full
// bucket). IPv4 sources are keyed by address, IPv6 sources by their /64.
class SourceLimiter {
 public:
  // `seed` keys the table's hash: random in the server, so that no one can
  // choose sources that collide.
  SourceLimiter(double rate, double burst, std::size_t capacity, std::uint64_t seed);
  // The index points into the list: a copy would point into the original's.
  SourceLimiter(const SourceLimiter&) = delete;
  SourceLimiter& operator=(const SourceLimiter&) = delete;
  SourceLimiter(SourceLimiter&&) = default;

  bool take(const boost::asio::ip::address& source, Clock::time_point now);
  std::size_t size() const noexcept { return lru_.size(); }

  using Key = std::array<std::uint8_t, 16>;
  static Key key(const boost::asio::ip::address& source) noexcept;

 private:
  struct KeyHash {
    std::uint64_t seed;
    std::size_t operator()(const Key& key) const noexcept;
  };
  struct Entry {
    Key key;
    TokenBucket bucket;
  };
  double rate_, burst_;
  std::size_t capacity_;
  std::list<Entry> lru_;  // most recently seen first
  std::unordered_map<Key, std::list<Entry>::iterator, KeyHash> index_;
};

}  // namespace natkeeper::reflector
