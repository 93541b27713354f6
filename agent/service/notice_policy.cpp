#include "agent/service/notice_policy.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace natkeeper::policy {

std::optional<std::string> notice_question(const GatewayNotice& notice, Method method) {
  switch (notice.kind) {
    case GatewayNotice::Kind::natpmp_address:
      return fmt::format("a NAT-PMP notice says the external address is {} (epoch {} s)",
                         notice.external_address ? notice.external_address->to_string() : "unknown", notice.epoch);
    case GatewayNotice::Kind::pcp_announce:
      return fmt::format("a PCP ANNOUNCE says the gateway restarted or changed (epoch {} s)", notice.epoch);
    case GatewayNotice::Kind::ssdp_alive:
      // (Also the gateway's periodic heartbeat: a look at one mapping.)
      if (method != Method::upnp) return std::nullopt;
      return notice.boot_id ? fmt::format("an SSDP alive notice (boot id {})", *notice.boot_id)
                            : std::string("an SSDP alive notice");
    case GatewayNotice::Kind::ssdp_byebye:
      return std::nullopt;
  }
  return std::nullopt;
}

bool restarted_since_round(std::chrono::seconds epoch, Duration since_round) {
  return epoch + std::chrono::seconds(2) < since_round;
}

bool confirms(const AnnouncedEpoch& announced, std::chrono::seconds answer_epoch, TimePoint now) {
  const auto expected = announced.epoch + std::chrono::duration_cast<std::chrono::seconds>(now - announced.seen);
  const auto slack = std::chrono::seconds(2);
  return answer_epoch + slack >= expected && answer_epoch <= expected + slack;
}

TimePoint question_time(const QuestionPacer& pacer, TimePoint now) { return std::max(now, pacer.next_allowed); }

void note_answer(QuestionPacer& pacer, TimePoint now, bool found_change) {
  if (pacer.last_needless && now - *pacer.last_needless >= kQuestionQuietPeriod) pacer.spacing = kShortestQuestionSpacing;
  pacer.next_allowed = now + pacer.spacing;
  if (found_change) return;
  pacer.last_needless = now;
  pacer.spacing = std::min<Duration>(pacer.spacing * 2, kLongestQuestionSpacing);
}

Duration notice_round_delay(NoticeRoundBudget& budget, TimePoint now) {
  // A leaky bucket: each round adds an interval of debt; up to a burst's worth
  // of debt beyond now is allowed at once.
  constexpr Duration tolerance = kNoticeRoundInterval * (kNoticeRoundBurst - 1);
  const auto start = std::max(budget.paid_until, now);
  const auto delay = std::max<Duration>(start - tolerance - now, Duration::zero());
  budget.paid_until = start + kNoticeRoundInterval;
  return delay;
}

}  // namespace natkeeper::policy
