#pragma once
#include <boost/asio/ip/udp.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/gateway/nat_diagnosis.hpp"
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
  // How long the reflector tries a TCP handshake before it says "no answer"
  // (natkeeper-reflector(8): 3 seconds); its RESULT comes only then.
  std::chrono::milliseconds reflector_handshake_time{3000};
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

// --- A mapping for another LAN device: what can be proven ------------------------
// The verifier listens on this host, where no packet for the device ever
// arrives. A device's TCP port is proven by a handshake the reflector reports;
// its UDP port cannot be proven at all, only the gateway's forwarding, by a
// canary: a UDP mapping of this host proven from outside in the same run.

// A handshake's outcome as the reflector reported it (or its refusal) → the
// device's row. Only a completed handshake proves the packet reached the device.
Verification judge_device_handshake(reflector::Status status);

// What a canary showed of the gateway's forwarding.
struct Canary {
  enum class Outcome {
    verified,     // a UDP port of this host, mapped the same way, was proven from outside
    unreachable,  // it was mapped and not reachable from outside
    unknown,      // no canary could be made or observed
  };
  Outcome outcome = Outcome::unknown;
  std::string what;  // which port was the canary, or why there was none
};

// A canary from this host's own UDP mappings in the same run: verified when
// one is, unreachable when one was probed and none arrived; nullopt when none
// tells (a temporary canary mapping is then needed).
std::optional<Canary> canary_from_run(const std::vector<MappingReport>& mappings);

// A device's UDP row, given the canary and the NAT diagnosis: never verified.
// Unreachable only when the canary was unreachable and the gateway's external
// address is not public (double NAT, CGNAT): nothing from outside reaches any
// of the gateway's mappings then.
Verification judge_device_udp(const Canary& canary, NatKind nat);

// Proves mappings from outside: an unsolicited packet sent by a host on the
// internet to the mapped external port must arrive on the internal port, where
// the verifier listens; for another device's TCP port, the reflector's own
// connection must complete. Requests to the reflector go from one control
// socket with one cookie for the verifier's life (one request per mapping);
// the probe comes from the reflector's probe port, never along that flow.
class Verifier {
 public:
  Verifier(asio::ip::address_v4 local_address, VerifyOptions options);
  ~Verifier();
  Verifier(const Verifier&) = delete;
  Verifier& operator=(const Verifier&) = delete;

  // Asks the configured servers once whether they answer, and what public
  // address they see, and keeps the reflector's cookie and whether the STUN
  // server has another address (RFC 5780); call before verify(). Logs what
  // does not answer.
  asio::awaitable<void> prepare();
  std::optional<Observer> observer() const { return observer_; }

  // A device's UDP mapping is left `mapped` ("cannot be observed"): see
  // judge_device_udp for what a canary adds. So is a mapping for which the
  // STUN server refused (or has no address for) every request it would answer
  // through the mapping: it cannot verify, which is not "unreachable".
  asio::awaitable<Verification> verify(const Mapping& mapping);

  struct Control;  // the reflector's control socket and the requests awaiting replies

 private:
  asio::awaitable<Verification> verify_with_stun(const Mapping& mapping);
  asio::awaitable<Verification> verify_with_reflector(const Mapping& mapping);
  asio::awaitable<Verification> verify_device_tcp(const Mapping& mapping);
  // Spaces reflector requests below the reflector's default per-source rate:
  // it drops what comes faster, and all of this host's requests share its
  // public address.
  asio::awaitable<void> pace_reflector_request();
  // Sends one request (paced) and awaits the reply with its token within `wait`.
  asio::awaitable<std::optional<reflector::Reply>> exchange(const reflector::RequestFields& fields,
                                                            std::chrono::steady_clock::duration wait);
  struct Answer {
    reflector::Reply reply;  // a RESULT
    std::chrono::steady_clock::time_point sent;
  };
  // Sends `fields` with the run's cookie and awaits the RESULT within `wait`;
  // a COOKIE instead (the old one expired) is kept and the request sent again.
  asio::awaitable<std::optional<Answer>> ask_reflector(reflector::RequestFields fields,
                                                       std::chrono::steady_clock::duration wait);

  asio::ip::address_v4 local_address_;
  VerifyOptions options_;
  bool stun_answers_ = false;
  // Its Binding response named another address to answer a CHANGE-REQUEST from.
  bool stun_has_other_address_ = false;
  bool reflector_answers_ = false;
  // The reflector answered nothing to a handshake request: it predates them.
  bool handshakes_unanswered_ = false;
  std::optional<Observer> observer_;
  std::shared_ptr<Control> control_;
  reflector::Cookie cookie_{};
  std::chrono::steady_clock::time_point next_request_slot_{};
};

}  // namespace natkeeper
