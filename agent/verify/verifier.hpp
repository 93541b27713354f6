#pragma once
#include <boost/asio/ip/udp.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "agent/reflector/protocol.hpp"
#include "agent/report/report.hpp"
#include "mappers/mapping.hpp"

namespace natkeeper {

namespace asio = boost::asio;

struct VerifyOptions {
  std::optional<asio::ip::udp::endpoint> reflector;  // natkeeper-reflector: UDP and TCP
  std::optional<asio::ip::udp::endpoint> stun;       // an RFC 5780 STUN server: UDP
  std::vector<std::uint8_t> reflector_key;           // pre-shared key of a private reflector
  int attempts = 3;                                  // per mapping and method
  std::chrono::milliseconds wait_per_attempt{700};   // for the probe to arrive
};

struct Verification {
  MappingState state = MappingState::mapped;
  std::string method;  // "reflector", "stun", or empty when not verified
  std::string note;    // why it is only mapped, or what was tried when unreachable
  std::optional<std::chrono::steady_clock::duration> round_trip;  // request sent → probe seen
};

// What the outside observer saw of this host: its public address.
struct Observer {
  std::string method;
  asio::ip::address public_address;
};

// Proves mappings from outside: an unsolicited packet sent by a host on the
// internet to the mapped external port must arrive on the internal port, where
// the verifier listens. Each attempt uses a fresh source port: a conntrack
// entry from an earlier flow would bypass the mapping.
class Verifier {
 public:
  Verifier(asio::ip::address_v4 local_address, VerifyOptions options);

  // Asks the configured servers once whether they answer, and what public
  // address they see; call before verify(). Logs what does not answer.
  asio::awaitable<void> prepare();
  std::optional<Observer> observer() const { return observer_; }

  asio::awaitable<Verification> verify(const Mapping& mapping);

 private:
  asio::awaitable<Verification> verify_with_stun(const Mapping& mapping);
  asio::awaitable<Verification> verify_with_reflector(const Mapping& mapping);
  // Spaces reflector requests below the reflector's default per-source rate:
  // it drops what comes faster, and all of this host's requests share its
  // public address.
  asio::awaitable<void> pace_reflector_request();
  // Sends one request from `control` (paced) and awaits the reply with its token.
  asio::awaitable<std::optional<reflector::Reply>> ask_reflector(asio::ip::udp::socket& control,
                                                                 const reflector::RequestFields& fields);

  asio::ip::address_v4 local_address_;
  VerifyOptions options_;
  bool stun_answers_ = false;
  bool reflector_answers_ = false;
  std::optional<Observer> observer_;
  std::chrono::steady_clock::time_point next_request_slot_{};
};

// Verifies every active mapping, at most `parallel` at a time, and sets each
// report's state and note.
asio::awaitable<void> verify_all(Verifier& verifier, std::vector<MappingReport>& mappings, std::size_t parallel);

}  // namespace natkeeper
