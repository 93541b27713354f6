#include "agent/reflector/admission.hpp"

#include <utility>

namespace natkeeper::reflector {

namespace {

std::size_t encoded_size(const Reply& reply) noexcept {
  return reply.type == MessageType::cookie ? cookie_reply::kSize : result_reply::kSize;
}

}  // namespace

Admission::Admission(std::vector<std::uint8_t> key, const Secret& secret, Budget proven, Budget unproven)
    : key_(std::move(key)), secret_(secret), proven_(std::move(proven)), unproven_(std::move(unproven)) {}

Decision Admission::decide(const Arrival& arrival, const Now& now, const SlotCounts& tcp_probes) {
  using Verdict = Decision::Verdict;
  if (arrival.bytes.size() > request::kMaxSize) return {Verdict::oversized, std::nullopt, std::nullopt};
  const auto request = decode_request(arrival.bytes);
  if (!request || arrival.port == 0) return {Verdict::malformed, std::nullopt, std::nullopt};

  const Source source{normalized(arrival.address), arrival.port};
  const auto slot = cookie_slot(now.system);
  const bool proven = arrival.via == Transport::tcp || cookie_valid(secret_, source, request->cookie, slot);
  auto& budget = proven ? proven_ : unproven_;
  const auto source_key = proven ? rate_key(arrival.address) : endpoint_key(arrival.address, arrival.port);
  const bool allowed = budget.per_source.take(source_key, now.steady) && budget.global.take(now.steady);
  auto result = [&](Verdict verdict, Status status) {
    Decision decision{verdict, std::nullopt, std::nullopt};
    // Nothing but a COOKIE goes to a source that has not proven its address.
    if (proven) decision.reply = Reply{MessageType::result, request->token, source, {}, status};
    return decision;
  };

  Decision decision;
  const auto transport = probe_transport(*request);
  const auto kind = probe_kind(*request);
  // A UDP handshake means nothing: a datagram has none.
  const bool sensible = transport && kind && !(*kind == ProbeKind::handshake && *transport == Transport::udp);
  if (!allowed) {
    decision = result(Verdict::rate_limited, Status::rate_limited);
  } else if (!proven) {
    decision = {Verdict::cookie,
                Reply{MessageType::cookie, request->token, source, make_cookie(secret_, source, slot), Status::sent},
                std::nullopt};
  } else if (!key_.empty() && !auth_tag_valid(arrival.bytes, key_)) {
    decision = result(Verdict::auth_failed, Status::auth_failed);
  } else if (!sensible || request->target_port == 0) {
    decision = result(Verdict::bad_request, Status::bad_request);
  } else if (*transport == Transport::tcp && !tcp_probes.available(slot_key(arrival.address))) {
    decision = result(Verdict::busy, Status::busy);
  } else if (*kind == ProbeKind::handshake) {
    decision = result(Verdict::handshake, Status::no_answer);
    decision.probe = ProbeOrder{*transport, *kind, arrival.address, request->target_port, {}};
  } else {
    decision = result(Verdict::probe, Status::sent);
    decision.probe =
        ProbeOrder{*transport, *kind, arrival.address, request->target_port, encode_probe(request->token)};
  }
  // Over UDP a larger reply would make the reflector an amplifier.
  if (decision.reply && encoded_size(*decision.reply) > arrival.bytes.size()) decision.reply.reset();
  return decision;
}

}  // namespace natkeeper::reflector
