#pragma once
// The reflector's budgets, without I/O: token buckets, one per source in a
// bounded table and one for all sources together, and the slots held for a
// while (TCP connections, TCP probes in flight). The caller gives the time.
//
// Who a budget belongs to depends on what it protects:
//   - a request's rate: an IPv4 address or an IPv6 /64 (rate_key). A /64 is
//     one subscriber's, who could otherwise multiply the rate by choosing
//     addresses; an IPv4 /24 would put unrelated subscribers together, and
//     the rate refills, so a few addresses gain little.
//   - a request that has not proven its source: the exact address and port
//     (endpoint_key), those a cookie is made for. A forger who knows a client's
//     address but not its port cannot charge that client's budget.
//   - slots held for seconds, few for all: an IPv4 /24 or an IPv6 /48
//     (slot_key), the blocks one party commonly holds, so that 16 addresses
//     of one block hold no more than one address.
#include <boost/asio/ip/address.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <unordered_map>

namespace natkeeper::reflector {

using Clock = std::chrono::steady_clock;

// 16 address bytes (IPv4-mapped for IPv4), cut to a prefix, then a port (0
// when the budget is the address's or the prefix's).
using SourceKey = std::array<std::uint8_t, 18>;
SourceKey rate_key(const boost::asio::ip::address& source) noexcept;
SourceKey endpoint_key(const boost::asio::ip::address& source, std::uint16_t port) noexcept;
SourceKey slot_key(const boost::asio::ip::address& source) noexcept;

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

// One token bucket per key, in a table of at most `capacity` keys; the least
// recently seen key is forgotten first (it starts again with a full bucket).
class SourceLimiter {
 public:
  // `seed` keys the table's hash: random in the server, so that no one can
  // choose sources that collide.
  SourceLimiter(double rate, double burst, std::size_t capacity, std::uint64_t seed);
  // The index points into the list: a copy would point into the original's.
  SourceLimiter(const SourceLimiter&) = delete;
  SourceLimiter& operator=(const SourceLimiter&) = delete;
  SourceLimiter(SourceLimiter&&) = default;

  bool take(const SourceKey& key, Clock::time_point now);
  std::size_t size() const noexcept { return lru_.size(); }

 private:
  struct KeyHash {
    std::uint64_t seed;
    std::size_t operator()(const SourceKey& key) const noexcept;
  };
  struct Entry {
    SourceKey key;
    TokenBucket bucket;
  };
  double rate_, burst_;
  std::size_t capacity_;
  std::list<Entry> lru_;  // most recently seen first
  std::unordered_map<SourceKey, std::list<Entry>::iterator, KeyHash> index_;
};

// Slots held for a while: at most `total`, at most `per_prefix` of them for
// one slot_key.
class SlotCounts {
 public:
  SlotCounts(std::size_t total, std::size_t per_prefix) noexcept;
  bool prefix_full(const SourceKey& prefix) const;
  bool full() const noexcept { return held_ >= total_; }
  bool available(const SourceKey& prefix) const { return !full() && !prefix_full(prefix); }
  // Only when available(prefix).
  void take(const SourceKey& prefix);
  // Once for every take().
  void give_back(const SourceKey& prefix);

 private:
  std::size_t total_, per_prefix_;
  std::size_t held_ = 0;
  std::map<SourceKey, std::size_t> by_prefix_;  // counts above 0 only: at most `total` entries
};

}  // namespace natkeeper::reflector
