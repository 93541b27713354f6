#include "mappers/pcp/pcp_client.hpp"

#include <algorithm>
#include <limits>

#include "mappers/errors.hpp"

namespace natkeeper::pcp {
namespace {

namespace ip = boost::asio::ip;

// RFC 6887 §8.1.1: initial and maximum retransmission timeouts, seconds.
constexpr double kIrtSeconds = 3;
constexpr double kMrtSeconds = 1024;

Clock::duration to_duration(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

std::uint32_t wire_lifetime(std::chrono::seconds lifetime) {
  return static_cast<std::uint32_t>(
      std::clamp<std::chrono::seconds::rep>(lifetime.count(), 0, std::numeric_limits<std::uint32_t>::max()));
}

}  // namespace

Client::Client(ClientOptions options) : options_(std::move(options)), random_(options_.seed) {}

double Client::next_rand() {
  // std::mt19937's output is fully specified, unlike the standard
  // distributions, so the schedule is the same with every standard library.
  constexpr double span = static_cast<double>(std::mt19937::max() - std::mt19937::min());
  return -0.1 + 0.2 * (static_cast<double>(random_() - std::mt19937::min()) / span);
}

Nonce Client::new_nonce() {
  Nonce nonce{};
  for (std::size_t i = 0; i < nonce.size(); i += 4) {
    const auto word = static_cast<std::uint32_t>(random_());
    for (std::size_t j = 0; j < 4; ++j) nonce[i + j] = static_cast<std::uint8_t>(word >> (8 * j));
  }
  return nonce;
}

RequestId Client::map(Transport proto, std::uint16_t internal_port, std::uint16_t suggested_external_port,
                      std::chrono::seconds lifetime, Clock::time_point now,
                      std::optional<ip::address_v4> third_party) {
  // §13.1: a THIRD_PARTY option naming the client itself is an error (miniupnpd
  // answers MALFORMED_REQUEST): this host's own mapping goes without one.
  if (third_party == options_.client_address) third_party.reset();
  const auto internal_client = third_party.value_or(options_.client_address);
  const MapRequestKey key{internal_client, proto, internal_port, suggested_external_port, wire_lifetime(lifetime)};
  if (const auto refusal = refusals_.holding(key, now)) {
    Completion refused;
    refused.id = next_id_++;
    refused.error = refusal->error;
    // Rounded up: a caller that waits this long finds the refusal over.
    refused.error_lifetime = std::chrono::ceil<std::chrono::seconds>(refusal->remaining);
    completions_.push_back(std::move(refused));
    return completions_.back().id;
  }
  const auto nonce_key = std::tuple{internal_client, proto, internal_port};
  auto known = nonces_.find(nonce_key);
  if (known == nonces_.end()) {
    const auto nonce = options_.nonce_for ? options_.nonce_for(internal_client, proto, internal_port) : new_nonce();
    known = nonces_.emplace(nonce_key, nonce).first;
  }

  MapRequestFields fields;
  fields.client_address = options_.client_address;
  fields.nonce = known->second;
  fields.proto = proto;
  fields.internal_port = internal_port;
  fields.suggested_external_port = suggested_external_port;
  fields.suggested_external_address = ip::address_v4::any();  // any IPv4 address
  fields.lifetime = key.lifetime;
  fields.third_party = third_party;
  const auto bytes = encode_map(fields);

  Pending request;
  request.opcode = Opcode::map;
  request.datagram.assign(bytes.begin(), bytes.end());
  request.nonce = fields.nonce;
  request.key = key;
  return start(std::move(request), now);
}

RequestId Client::announce(Clock::time_point now) {
  const auto bytes = encode_announce(options_.client_address);
  Pending request;
  request.opcode = Opcode::announce;
  request.datagram.assign(bytes.begin(), bytes.end());
  return start(std::move(request), now);
}

RequestId Client::start(Pending request, Clock::time_point now) {
  const RequestId id = next_id_++;
  outgoing_.push_back(request.datagram);
  // §8.1.1: RT = IRT + RAND*IRT for the first transmission.
  request.rt_seconds = kIrtSeconds + next_rand() * kIrtSeconds;
  request.next_send = now + to_duration(request.rt_seconds);
  // A bound of 0 (or one past the clock's range) means none, like MRD = 0.
  const auto bound = options_.max_request_duration;
  if (bound <= bound.zero() ||
      bound >= std::chrono::duration_cast<std::chrono::milliseconds>(Clock::time_point::max() - now)) {
    request.deadline = Clock::time_point::max();
  } else {
    request.deadline = now + std::chrono::duration_cast<Clock::duration>(bound);
  }
  pending_.emplace(id, std::move(request));
  return id;
}

void Client::cancel(RequestId id) { pending_.erase(id); }

void Client::on_time(Clock::time_point now) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    auto& request = it->second;
    // The deadline comes first: a retransmission due at or after it could
    // not be answered before we give up, so it is not sent.
    if (now >= request.deadline) {
      Completion completion;
      completion.id = it->first;
      completion.error = make_error_code(Errc::timed_out);
      completions_.push_back(std::move(completion));
      it = pending_.erase(it);
      continue;
    }
    if (now >= request.next_send) {
      outgoing_.push_back(request.datagram);
      // §8.1.1: RT = 2*RTprev + RAND*RTprev, and past MRT: RT = MRT + RAND*MRT.
      double rt = 2 * request.rt_seconds + next_rand() * request.rt_seconds;
      if (rt > kMrtSeconds) rt = kMrtSeconds + next_rand() * kMrtSeconds;
      request.rt_seconds = rt;
      request.next_send = now + to_duration(rt);
    }
    ++it;
  }
}

void Client::on_datagram(std::span<const std::uint8_t> bytes, const ip::address& source,
                         std::uint16_t source_port, Clock::time_point now) {
  // Only the server's port 5351 speaks for the server (§8.3); a dual-stack
  // socket reports its IPv4 address IPv4-mapped.
  const bool from_server =
      (source.is_v4() && source.to_v4() == options_.server_address) ||
      (source.is_v6() && v4_mapped(source.to_v6()) == std::optional(options_.server_address));
  if (!from_server || source_port != kServerPort) return drop(DropReason::wrong_source);

  const auto decoded = decode_response(bytes);
  if (!decoded) return drop(DropReason::malformed);
  const Response& response = *decoded;

  if (response.unsupported_version) {
    // A NAT-PMP-only or PCPv1 server answers ANNOUNCE (discovery) so, and the
    // caller falls back to NAT-PMP. It carries no nonce: any LAN host can
    // forge one from the server's address, so it ends the pending ANNOUNCEs
    // only; MAP requests are to a server that discovery found speaking PCPv2.
    // Its epoch is not a PCPv2 epoch.
    bool answered = false;
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.opcode != Opcode::announce) {
        ++it;
        continue;
      }
      Completion completion;
      completion.id = it->first;
      completion.error = make_pcp_error(static_cast<int>(ResultCode::unsupp_version));
      completion.error_lifetime = std::chrono::seconds(response.lifetime);
      completion.epoch = response.epoch;
      completions_.push_back(std::move(completion));
      it = pending_.erase(it);
      answered = true;
    }
    if (!answered) drop(DropReason::unexpected);
    return;
  }

  switch (response.opcode) {
    case Opcode::announce: {
      // An ANNOUNCE response has no nonce: it answers every pending ANNOUNCE.
      bool answered = false;
      for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.opcode != Opcode::announce) {
          ++it;
          continue;
        }
        if (!answered) note_epoch(response, now);
        answered = true;
        complete(it->first, it->second, response, now);
        it = pending_.erase(it);
      }
      if (answered) return;
      // §14.1.1: the server multicasts an unsolicited ANNOUNCE (to port 5350)
      // after it lost its state; a caller may pass those here too. Its only
      // content is the epoch, which is what reveals the lost state.
      if (response.result_code != ResultCode::success) return drop(DropReason::unexpected);
      note_epoch(response, now);
      return;
    }
    case Opcode::map: {
      const MapBody& body = *response.map;  // decode_response guarantees it for MAP
      // §11.4: a response matches by opcode, nonce, protocol, internal port
      // and internal address. The internal address is the THIRD_PARTY
      // option's when the response echoes one; two devices may map the same
      // internal port. A server that leaves the option out of its answer is
      // still told apart by the nonce, which is per internal client.
      std::optional<ip::address> echoed_client;
      if (response.third_party) echoed_client = unmapped(*response.third_party);
      auto chosen = pending_.end();
      bool same_mapping = false;
      // Two pending requests for one mapping (say a map and the delete right
      // after it) carry the same nonce; a success with lifetime 0 answers the
      // delete, any other answer the oldest.
      const bool answers_delete = response.result_code == ResultCode::success && response.lifetime == 0;
      for (auto it = pending_.begin(); it != pending_.end(); ++it) {
        const Pending& request = it->second;
        if (request.opcode != Opcode::map || static_cast<std::uint8_t>(request.key.proto) != body.protocol ||
            request.key.internal_port != body.internal_port ||
            (echoed_client && *echoed_client != ip::address(request.key.internal_client)))
          continue;
        same_mapping = true;
        if (request.nonce != body.nonce) continue;
        if (chosen == pending_.end()) chosen = it;
        if (request.deletion() == answers_delete) {
          chosen = it;
          break;
        }
      }
      if (chosen == pending_.end())
        return drop(same_mapping ? DropReason::nonce_mismatch : DropReason::unexpected);
      note_epoch(response, now);
      complete(chosen->first, chosen->second, response, now);
      pending_.erase(chosen);
      return;
    }
    case Opcode::peer:
      break;  // never requested
  }
  drop(DropReason::unexpected);
}

void Client::complete(RequestId id, const Pending& request, const Response& response, Clock::time_point now) {
  Completion completion;
  completion.id = id;
  completion.epoch = response.epoch;
  if (response.result_code == ResultCode::success) {
    if (request.opcode == Opcode::map && response.map) {
      if (response.lifetime == 0 && !request.deletion()) {
        // §15: lifetime 0 is what deletes a mapping. In answer to a request
        // for more, the server holds none; a lease of 0 s would only be
        // renewed over and over.
        completion.error = make_error_code(Errc::nothing_granted);
      } else {
        MapResult result;
        result.proto = request.key.proto;
        result.internal_port = request.key.internal_port;
        result.external_port = response.map->external_port;
        result.external_address = unmapped(response.map->external_address);
        result.lifetime = std::chrono::seconds(response.lifetime);
        completion.map = result;
        refusals_.forget_mapping(request.key);
      }
    }
  } else {
    // RFC 6887 §7.2/§7.4: the lifetime of an error response says how long the
    // same request would get the same error. Long-lifetime errors
    // (NOT_AUTHORIZED, UNSUPP_*, MALFORMED_*, ADDRESS_MISMATCH, ...) will not
    // go away by asking again sooner; short ones (NETWORK_FAILURE,
    // NO_RESOURCES, USER_EX_QUOTA, CANNOT_PROVIDE_EXTERNAL, ...) may. The
    // request is not sent again before then.
    completion.error = make_pcp_error(static_cast<int>(response.result_code));
    completion.error_lifetime = std::chrono::seconds(response.lifetime);
    if (request.opcode == Opcode::map) refusals_.remember(request.key, completion.error, completion.error_lifetime, now);
  }
  completions_.push_back(std::move(completion));
}

void Client::note_epoch(const Response& response, Clock::time_point now) {
  if (!epochs_.lost_state(response.epoch, now)) return;
  server_lost_state_ = true;
  // What it refused it may grant now: every mapping is asked for again.
  refusals_.clear();
}

void Client::drop(DropReason reason) { ++dropped_[static_cast<std::size_t>(reason)]; }

std::vector<std::vector<std::uint8_t>> Client::take_outgoing() {
  std::vector<std::vector<std::uint8_t>> out(std::make_move_iterator(outgoing_.begin()),
                                             std::make_move_iterator(outgoing_.end()));
  outgoing_.clear();
  return out;
}

std::vector<Completion> Client::take_completions() { return std::exchange(completions_, {}); }

std::optional<Clock::time_point> Client::next_wakeup() const {
  std::optional<Clock::time_point> earliest;
  for (const auto& [id, request] : pending_) {
    const auto due = std::min(request.next_send, request.deadline);
    if (!earliest || due < *earliest) earliest = due;
  }
  return earliest;
}

bool Client::take_server_lost_state() { return std::exchange(server_lost_state_, false); }

std::uint64_t Client::dropped(DropReason reason) const { return dropped_[static_cast<std::size_t>(reason)]; }

std::uint64_t Client::dropped_total() const {
  std::uint64_t total = 0;
  for (const auto count : dropped_) total += count;
  return total;
}

std::size_t Client::pending() const { return pending_.size(); }

}  // namespace natkeeper::pcp
