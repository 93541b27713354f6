#include "agent/service/notice_policy.hpp"

#include <fmt/format.h>

#include <utility>

#include "agent/service/service_policy.hpp"

namespace natkeeper::policy {

NoticeVerdict judge_notice(const GatewayNotice& notice, NoticeHistory& history, const NoticeContext& context,
                           std::chrono::steady_clock::time_point now, double unit) {
  using Action = NoticeVerdict::Action;
  const bool upnp = context.method == Method::upnp;
  // What the gateway says applies whichever protocol it said it in; UPnP has
  // nothing to renew in place, so it finds the gateway (and its address) again.
  const auto act = [&](std::string why) {
    if (upnp) return NoticeVerdict{Action::reconnect, {}, std::move(why)};
    return NoticeVerdict{Action::remap, announcement_delay(unit), std::move(why)};
  };
  switch (notice.kind) {
    case GatewayNotice::Kind::natpmp_address: {
      const bool first = !std::exchange(history.natpmp_seen, true);
      const bool lost = history.natpmp_epoch.lost_state(notice.epoch, now);
      const bool moved = notice.external_address && context.external_ip &&
                         boost::asio::ip::address(*notice.external_address) != *context.external_ip;
      if (moved)
        return act(fmt::format("the gateway announced a new external address, {}", notice.external_address->to_string()));
      if (first || lost) return act("the gateway announced a restart or a change (NAT-PMP)");
      return {};
    }
    case GatewayNotice::Kind::pcp_announce: {
      const bool first = !std::exchange(history.pcp_seen, true);
      if (history.pcp_epoch.lost_state(notice.epoch, now) || first)
        return act("the gateway announced a restart or a change (PCP ANNOUNCE)");
      return {};
    }
    case GatewayNotice::Kind::ssdp_alive: {
      if (!upnp) return {};
      const auto previous = history.boot_id;
      if (notice.boot_id) history.boot_id = notice.boot_id;
      if (notice.boot_id && previous && *notice.boot_id != *previous)
        return {Action::reconnect, {}, "the gateway restarted (its SSDP boot id changed)"};
      if (!context.spot_check_pending && now - context.last_spot_check >= kSpotCheckSpacing)
        return {Action::spot_check, {}, {}};
      return {};
    }
    case GatewayNotice::Kind::ssdp_byebye:
      if (upnp) return {Action::ignore, {}, "the gateway says it is going away (SSDP byebye)"};
      return {};
  }
  return {};
}

}  // namespace natkeeper::policy
