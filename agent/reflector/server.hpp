#pragma once
// natkeeper-reflector: the internet-side server that natkeeper's verifier asks
// to probe a mapping. One io_context, single-threaded; every member function
// runs on the loop's thread (or before the loop runs).
//
// Safety (it is an internet service):
//   - probes go only to the request's own source IP (a request names no address);
//   - over UDP nothing but a COOKIE (no larger than the request) is sent until
//     the request echoes a valid cookie, which proves the source address;
//   - no reply is larger than the request that caused it;
//   - per-source (bounded LRU tables) and global token buckets, apart for
//     requests that proved their source and for those that did not;
//   - optional pre-shared key;
//   - a delivered TCP probe's outcome is never reported: RESULT "sent" is all
//     it says; a handshake request's outcome is, to its (proven) source only;
//   - bounded TCP connections, read time, message size and probes in flight,
//     in all and per /24 or /48; an idle connection gives way to a new one.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "agent/reflector/protocol.hpp"
#include "mappers/transport.hpp"

namespace natkeeper::reflector {

// What the server sent, for logs and tests.
struct SendRecord {
  enum class Kind { cookie, result, udp_probe, tcp_probe, tcp_handshake };
  Kind kind = Kind::result;
  Transport via = Transport::udp;  // how the request arrived
  Source request_source;           // where it came from
  std::size_t request_size = 0;    // its size (over TCP: without the length)
  Source destination;              // where this goes (a TCP probe: where it connects)
  std::size_t size = 0;            // bytes sent (over TCP: without the length)
  Status status = Status::sent;    // RESULT only
};
std::string_view to_string(SendRecord::Kind kind) noexcept;

struct ServerOptions {
  // UDP and TCP on each, on the same port; port 0 picks a free port.
  std::vector<boost::asio::ip::udp::endpoint> listen;
  std::vector<std::uint8_t> key;  // pre-shared key; empty: none required
  // Requests (UDP datagrams, TCP requests) per second and source. A home with
  // the Ring profile verifies about 110 mappings, one request each, from one
  // public address: within the burst of 200. Replies and probes are never
  // larger than the requests. Requests that proved their source and those
  // that did not (cookie rounds) each have these rates.
  double rate_per_source = 100;
  double global_rate = 1000;      // requests per second, all sources together
  std::size_t source_table_size = 4096;  // sources remembered, in each of the two tables
  // When all are held, a new connection closes the one that has waited
  // longest for its request, if any has.
  std::size_t max_tcp_connections = 64;
  std::size_t max_tcp_connections_per_prefix = 4;  // an IPv4 /24 or an IPv6 /48
  std::size_t max_tcp_probes = 64;  // connects in flight, handshakes included
  // natkeeper verifies 16 mappings at a time, from one public address.
  std::size_t max_tcp_probes_per_prefix = 16;
  // For a connection's request to arrive, and then for its RESULT to be
  // written (after a handshake's time): a client sends its request at once.
  std::chrono::milliseconds tcp_read_timeout{2000};
  std::chrono::milliseconds tcp_probe_timeout{3000};  // connect and write
  // Called on the loop's thread for every message sent and probe started.
  std::function<void(const SendRecord&)> on_send;
};

struct ServerStats {
  std::uint64_t udp_received = 0;   // datagrams on the listen ports
  std::uint64_t tcp_accepted = 0;   // connections
  std::uint64_t tcp_refused = 0;    // connections closed at once: too many
  std::uint64_t tcp_evicted = 0;    // idle connections closed to make room for a new one
  std::uint64_t oversized = 0;      // datagrams or frames over the maximum: dropped
  std::uint64_t malformed = 0;      // undecodable requests, truncated frames, timeouts: dropped
  std::uint64_t rate_limited = 0;   // requests over a rate
  std::uint64_t cookies_sent = 0;
  std::uint64_t results_sent = 0;
  std::uint64_t auth_failed = 0;
  std::uint64_t bad_requests = 0;
  std::uint64_t busy = 0;
  std::uint64_t udp_probes = 0;
  std::uint64_t tcp_probes = 0;
  std::uint64_t tcp_handshakes = 0;  // handshake requests answered with their outcome
  std::uint64_t send_errors = 0;    // a reply or UDP probe the kernel did not take
};

// A listen address that cannot be bound; what() names it and says why.
struct ListenError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Server {
 public:
  // Opens and binds every socket; throws ListenError when one cannot be
  // (address in use, not an address of this host, ...).
  Server(boost::asio::io_context& loop, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts serving on the loop.
  void start();
  // Closes every socket and ends every exchange and probe in flight; the
  // loop runs out of work afterwards.
  void stop();

  // The bound addresses, in --listen order (UDP and TCP share the port).
  std::vector<boost::asio::ip::udp::endpoint> udp_endpoints() const;
  std::vector<boost::asio::ip::tcp::endpoint> tcp_endpoints() const;
  // May be read from any thread.
  ServerStats stats() const noexcept;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace natkeeper::reflector
