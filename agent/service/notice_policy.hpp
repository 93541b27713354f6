#pragma once
// What the service makes of a gateway's notice, as pure functions. A notice is
// a multicast datagram that any device on the LAN can send with the gateway's
// address: it is at most a reason to ask the gateway itself (Mapper::check),
// and those questions, and the rounds their answers start, are paced so that a
// stream of notices costs the gateway next to nothing.
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "agent/codecs/gateway_notice.hpp"
#include "mappers/method.hpp"

namespace natkeeper::policy {

using TimePoint = std::chrono::steady_clock::time_point;
using Duration = std::chrono::steady_clock::duration;

// Why `notice` (from the gateway's address and port, as far as a datagram
// shows) is worth a question to the gateway, for the mappings made with
// `method`; nullopt when it is not (a byebye; SSDP when UPnP is not used).
std::optional<std::string> notice_question(const GatewayNotice& notice, Method method);

// Questions a notice prompted come at most this often, and back off to the
// longest spacing while their answers find nothing; only a quiet period
// without a needless question brings the spacing back, so a stream of notices
// cannot reset it.
inline constexpr std::chrono::seconds kShortestQuestionSpacing{2};
inline constexpr std::chrono::seconds kLongestQuestionSpacing{60};
inline constexpr std::chrono::minutes kQuestionQuietPeriod{10};

struct QuestionPacer {
  TimePoint next_allowed{};
  Duration spacing = kShortestQuestionSpacing;
  std::optional<TimePoint> last_needless;
};
// Whether a gateway whose answer carried `epoch` (the seconds it has kept its
// mappings, RFC 6887 §8.5) started after the round that made the mappings,
// `since_round` ago, and so lost them. Two epoch samples seconds apart
// cannot show a restart a second after the first (a restarted gateway's
// epoch starts again near where the old one was); the round's age can. One
// second of slack for the epoch's granularity, one for the round's length.
bool restarted_since_round(std::chrono::seconds epoch, Duration since_round);

// An epoch a notice announced (NAT-PMP, PCP), and when the notice came.
struct AnnouncedEpoch {
  std::chrono::seconds epoch{0};
  TimePoint seen{};
};
// Whether the gateway's answer at `now`, carrying `answer_epoch`, confirms
// the epoch `announced` (counted on since, within 2 s): the gateway itself
// says what the notice said, a restart or a change, and everything is mapped
// again as RFC 6887 §14.1.1 asks. (Anyone can learn the gateway's epoch and
// forge a notice that agrees: the rounds this starts are budgeted.)
bool confirms(const AnnouncedEpoch& announced, std::chrono::seconds answer_epoch, TimePoint now);
// The announced epochs kept while a question is due: the latest ones.
inline constexpr std::size_t kAnnouncedEpochsKept = 8;

// When a notice seen at `now` may be asked about.
TimePoint question_time(const QuestionPacer& pacer, TimePoint now);
// The gateway answered at `now`; `found_change`: it lost its mappings or its
// address changed (else the question was needless: the spacing doubles).
void note_answer(QuestionPacer& pacer, TimePoint now, bool found_change);

// Rounds (every mapping requested again) that confirmed notices start: three
// at once, then one a minute. The gateway confirms, but a NAT-PMP answer has
// no nonce and can be forged too.
inline constexpr std::chrono::minutes kNoticeRoundInterval{1};
inline constexpr int kNoticeRoundBurst = 3;

struct NoticeRoundBudget {
  TimePoint paid_until{};  // when the rounds granted so far are paid off
};
// How long a round a confirmed notice wants at `now` must wait, and books it.
Duration notice_round_delay(NoticeRoundBudget& budget, TimePoint now);

}  // namespace natkeeper::policy
