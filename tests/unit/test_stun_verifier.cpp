// The verifier against a scripted STUN server on loopback, where this host is
// its own "public address" and a mapping's external port is any port on
// 127.0.0.1: an RFC 5780 server proves mappings, one without RFC 5780 cannot,
// and says so instead of making them "unreachable".
#include <catch2/catch.hpp>

#include "result_printer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/codecs/stun_codec.hpp"
#include "agent/verify/verifier.hpp"
#include "mappers/byte_order.hpp"
#include "run_loop.hpp"

using namespace natkeeper;
using namespace std::chrono_literals;
namespace ip = boost::asio::ip;

namespace {

const auto kLoopback = ip::make_address_v4("127.0.0.1");

// --- Messages the server sends and reads (the codec is the client's side) ---------------

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

void put_attribute(std::vector<std::uint8_t>& out, stun::Attribute type, const std::vector<std::uint8_t>& value) {
  put16(out, static_cast<std::uint16_t>(type));
  put16(out, static_cast<std::uint16_t>(value.size()));
  out.insert(out.end(), value.begin(), value.end());
  out.resize((out.size() + 3) & ~std::size_t{3}, 0);
}

// MAPPED-ADDRESS layout, IPv4; XOR-ed with the magic cookie for XOR-MAPPED-ADDRESS.
std::vector<std::uint8_t> address_value(const ip::udp::endpoint& endpoint, bool xored) {
  const auto port = static_cast<std::uint16_t>(endpoint.port() ^ (xored ? stun::kMagicCookie >> 16 : 0));
  const auto address = endpoint.address().to_v4().to_uint() ^ (xored ? stun::kMagicCookie : 0);
  std::vector<std::uint8_t> value = {0x00, 0x01};
  put16(value, port);
  put16(value, static_cast<std::uint16_t>(address >> 16));
  put16(value, static_cast<std::uint16_t>(address));
  return value;
}

std::vector<std::uint8_t> message(stun::MessageType type, const stun::TransactionId& id,
                                  const std::vector<std::uint8_t>& attributes) {
  std::vector<std::uint8_t> out;
  put16(out, static_cast<std::uint16_t>(type));
  put16(out, static_cast<std::uint16_t>(attributes.size()));
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(stun::kMagicCookie >> shift));
  out.insert(out.end(), id.begin(), id.end());
  out.insert(out.end(), attributes.begin(), attributes.end());
  return out;
}

std::vector<std::uint8_t> success(const stun::TransactionId& id, const ip::udp::endpoint& seen,
                                  std::optional<ip::udp::endpoint> other_address) {
  std::vector<std::uint8_t> attributes;
  put_attribute(attributes, stun::Attribute::xor_mapped_address, address_value(seen, true));
  if (other_address) put_attribute(attributes, stun::Attribute::other_address, address_value(*other_address, false));
  return message(stun::MessageType::binding_success, id, attributes);
}

// 420 Unknown Attribute, naming `unknown` in UNKNOWN-ATTRIBUTES.
std::vector<std::uint8_t> unknown_attribute(const stun::TransactionId& id, stun::Attribute unknown) {
  std::vector<std::uint8_t> attributes;
  put_attribute(attributes, stun::Attribute::error_code, {0x00, 0x00, 4, 20});
  std::vector<std::uint8_t> list;
  put16(list, static_cast<std::uint16_t>(unknown));
  put_attribute(attributes, stun::Attribute::unknown_attributes, list);
  return message(stun::MessageType::binding_error, id, attributes);
}

struct Request {
  stun::TransactionId id{};
  bool change = false;
  std::optional<std::uint16_t> response_port;
};

std::optional<Request> read_request(std::span<const std::uint8_t> datagram) {
  if (datagram.size() < stun::kHeaderSize || wire::get16(datagram, 0) != 0x0001) return std::nullopt;
  Request request;
  std::copy_n(datagram.begin() + stun::header::kTransactionId, stun::kTransactionIdSize, request.id.begin());
  for (std::size_t at = stun::kHeaderSize; at + 8 <= datagram.size(); at += 8) {  // our requests: 4-byte values
    const auto type = static_cast<stun::Attribute>(wire::get16(datagram, at));
    if (type == stun::Attribute::change_request) request.change = true;
    if (type == stun::Attribute::response_port) request.response_port = wire::get16(datagram, at + 4);
  }
  return request;
}

// --- The scripted server ------------------------------------------------------------------

enum class Reply {
  follow,  // as RFC 5780 asks
  ignore,  // a success back to the sender, as if the attribute were not there
  reject,  // 420 Unknown Attribute
  drop,    // no answer at all: as a gateway that does not forward it
};

// Answers Binding requests on its primary port; a CHANGE-REQUEST it follows is
// answered from its other port. Counts what it is asked.
struct ScriptedStunServer {
  ip::udp::socket primary, other;
  bool names_other_address = true;
  Reply to_response_port = Reply::follow;
  Reply to_change_request = Reply::follow;
  int response_port_requests = 0;
  int change_requests = 0;

  explicit ScriptedStunServer(boost::asio::io_context& loop)
      : primary(loop, {kLoopback, 0}), other(loop, {kLoopback, 0}), endpoint_(primary.local_endpoint()) {
    boost::asio::co_spawn(loop, serve(), boost::asio::detached);
  }
  ip::udp::endpoint endpoint() const { return endpoint_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(endpoint_.port()); }
  void close() {
    primary.close();
    other.close();
  }

 private:
  ip::udp::endpoint endpoint_;  // kept for the checks after close()

  void send(ip::udp::socket& from, const std::vector<std::uint8_t>& bytes, const ip::udp::endpoint& to) {
    boost::system::error_code ignored;
    from.send_to(boost::asio::buffer(bytes), to, 0, ignored);
  }

  boost::asio::awaitable<void> serve() {
    std::array<std::uint8_t, 1500> buffer{};
    for (;;) {
      ip::udp::endpoint from;
      auto [ec, size] = co_await primary.async_receive_from(boost::asio::buffer(buffer), from,
                                                            boost::asio::as_tuple(boost::asio::use_awaitable));
      if (ec) co_return;
      const auto request = read_request(std::span<const std::uint8_t>(buffer.data(), size));
      if (!request) continue;
      const auto id = request->id;
      if (request->change) {
        ++change_requests;
        if (to_change_request == Reply::follow) send(other, success(id, from, other.local_endpoint()), from);
        if (to_change_request == Reply::ignore) send(primary, success(id, from, other.local_endpoint()), from);
        if (to_change_request == Reply::reject) send(primary, unknown_attribute(id, stun::Attribute::change_request), from);
      } else if (request->response_port) {
        ++response_port_requests;
        const ip::udp::endpoint answer_to(from.address(), *request->response_port);
        if (to_response_port == Reply::follow) send(primary, success(id, from, std::nullopt), answer_to);
        if (to_response_port == Reply::ignore) send(primary, success(id, from, std::nullopt), from);
        if (to_response_port == Reply::reject) send(primary, unknown_attribute(id, stun::Attribute::response_port), from);
      } else {
        const auto other_address = names_other_address ? std::optional(other.local_endpoint()) : std::nullopt;
        send(primary, success(id, from, other_address), from);
      }
    }
  }
};

// A UDP mapping of this host: internal port `internal`, external `external`.
Mapping udp_mapping(std::uint16_t internal, std::uint16_t external) {
  return {{Transport::udp, internal, internal, 3600s, "test", std::nullopt, ""}, kLoopback, external, 3600s, false};
}

// A UDP port nobody listens on now.
std::uint16_t free_udp_port(boost::asio::io_context& loop) {
  ip::udp::socket gone(loop, {kLoopback, 0});
  return gone.local_endpoint().port();
}

struct Checked {
  Verification verification;
  std::chrono::steady_clock::duration took{};
};

constexpr auto kWait = 250ms;

// Prepares a verifier against `server` and verifies `mapping` with it.
Checked verify_with(boost::asio::io_context& loop, ScriptedStunServer& server, const Mapping& mapping) {
  VerifyOptions options;
  options.stun = server.endpoint();
  options.wait_per_attempt = kWait;
  return run_loop(loop, [&]() -> boost::asio::awaitable<Checked> {
    Verifier verifier(kLoopback, options);
    co_await verifier.prepare();
    const auto started = std::chrono::steady_clock::now();
    Checked checked;
    checked.verification = co_await verifier.verify(mapping);
    checked.took = std::chrono::steady_clock::now() - started;
    server.close();
    co_return checked;
  }());
}

}  // namespace

TEST_CASE("STUN: an RFC 5780 server proves a mapping through RESPONSE-PORT, else CHANGE-REQUEST",
          "[verification][stun][realtime]") {
  boost::asio::io_context loop;
  ScriptedStunServer server(loop);
  const auto port = free_udp_port(loop);
  SECTION("RESPONSE-PORT") {
    const auto checked = verify_with(loop, server, udp_mapping(port, port));
    CHECK(checked.verification.state == MappingState::verified);
    CHECK(checked.verification.method == "stun");
    CHECK(server.response_port_requests == 1);
    CHECK(server.change_requests == 0);
  }
  SECTION("a server that ignores RESPONSE-PORT: CHANGE-REQUEST, without waiting for RESPONSE-PORT's answer") {
    server.to_response_port = Reply::ignore;
    const auto checked = verify_with(loop, server, udp_mapping(port, port));
    CHECK(checked.verification.state == MappingState::verified);
    CHECK(checked.verification.method == "stun");
    CHECK(server.response_port_requests == 1);
    CHECK(server.change_requests == 1);
    CHECK(checked.took < kWait);
  }
}

TEST_CASE("STUN: a server that answers CHANGE-REQUEST with 420 leaves the mapping mapped, saying why",
          "[verification][stun][realtime]") {
  boost::asio::io_context loop;
  ScriptedStunServer server(loop);
  server.to_response_port = Reply::reject;
  server.to_change_request = Reply::reject;
  const auto port = free_udp_port(loop);
  const auto checked = verify_with(loop, server, udp_mapping(port, port));
  const auto& result = checked.verification;
  CHECK(result.state == MappingState::mapped);
  CHECK(result.method.empty());
  CHECK_THAT(result.note, Catch::StartsWith("not verified: the STUN server " + server.address() +
                                            " does not support RFC 5780"));
  CHECK_THAT(result.note, Catch::Contains("it answered RESPONSE-PORT with error 420, unknown to it: RESPONSE-PORT"));
  CHECK_THAT(result.note, Catch::Contains("it answered CHANGE-REQUEST with error 420, unknown to it: CHANGE-REQUEST"));
  // One request of each kind: a refusal is not retried.
  CHECK(server.response_port_requests == 1);
  CHECK(server.change_requests == 1);
  CHECK(checked.took < kWait);
}

TEST_CASE("STUN: a server without OTHER-ADDRESS is sent no CHANGE-REQUEST; the mapping stays mapped",
          "[verification][stun][realtime]") {
  boost::asio::io_context loop;
  ScriptedStunServer server(loop);  // as coturn with one address
  server.names_other_address = false;
  server.to_response_port = Reply::ignore;
  server.to_change_request = Reply::reject;
  const auto port = free_udp_port(loop);
  const auto checked = verify_with(loop, server, udp_mapping(port, port));
  const auto& result = checked.verification;
  CHECK(result.state == MappingState::mapped);
  CHECK(result.note == "not verified: the STUN server " + server.address() +
                           " does not support RFC 5780 (it ignored RESPONSE-PORT; no OTHER-ADDRESS in its Binding "
                           "response: CHANGE-REQUEST not sent)");
  CHECK(server.change_requests == 0);
  CHECK(checked.took < kWait);
}

TEST_CASE("STUN: answers a server would send through the mapping that never arrive make it unreachable",
          "[verification][stun][realtime]") {
  boost::asio::io_context loop;
  ScriptedStunServer server(loop);
  const auto port = free_udp_port(loop);
  const auto elsewhere = free_udp_port(loop);  // the external port leads nowhere
  SECTION("an RFC 5780 server: both kinds of request") {
    server.to_change_request = Reply::drop;  // its answer from the other address does not get in
    const auto checked = verify_with(loop, server, udp_mapping(port, elsewhere));
    CHECK(checked.verification.state == MappingState::unreachable);
    CHECK(checked.verification.note == "the STUN server's answers to the external port never arrived");
    CHECK(server.response_port_requests == 3);
    CHECK(server.change_requests == 3);
  }
  SECTION("a server with one address that follows RESPONSE-PORT") {
    server.names_other_address = false;
    const auto checked = verify_with(loop, server, udp_mapping(port, elsewhere));
    CHECK(checked.verification.state == MappingState::unreachable);
    CHECK(server.response_port_requests == 3);
    CHECK(server.change_requests == 0);
  }
}

TEST_CASE("STUN: a server with one address that follows RESPONSE-PORT proves mappings",
          "[verification][stun][realtime]") {
  boost::asio::io_context loop;
  ScriptedStunServer server(loop);
  server.names_other_address = false;
  const auto port = free_udp_port(loop);
  const auto checked = verify_with(loop, server, udp_mapping(port, port));
  CHECK(checked.verification.state == MappingState::verified);
  CHECK(server.change_requests == 0);
}
