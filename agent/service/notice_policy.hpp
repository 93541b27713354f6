#pragma once
// What the service makes of a gateway's notice, as a pure function: a notice
// is the gateway's word, weighed against what it said before.
#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "agent/codecs/gateway_notice.hpp"
#include "mappers/epoch.hpp"
#include "mappers/method.hpp"

namespace natkeeper::policy {

// What the gateway said unasked so far, through one connection.
struct NoticeHistory {
  EpochTracker natpmp_epoch, pcp_epoch;
  bool natpmp_seen = false, pcp_seen = false;
  std::optional<std::uint32_t> boot_id;  // SSDP BOOTID.UPNP.ORG
};

// What the service is doing when the notice arrives.
struct NoticeContext {
  Method method = Method::pcp;                      // the protocol the mappings are made with
  std::optional<boost::asio::ip::address> external_ip;  // the gateway's, as last known
  bool spot_check_pending = false;
  std::chrono::steady_clock::time_point last_spot_check{};
};

struct NoticeVerdict {
  enum class Action {
    ignore,
    remap,       // request every mapping again after `delay`
    reconnect,   // find the gateway (and its address) again
    spot_check,  // ask the gateway whether it still holds a mapping
  };
  Action action = Action::ignore;
  std::chrono::steady_clock::duration delay{};
  std::string why;  // for the log; may be set when ignoring too
};

// A gateway sends a dozen SSDP NOTIFYs at a time: one look at the gateway per burst.
inline constexpr std::chrono::seconds kSpotCheckSpacing{10};

// Judges `notice` (already known to come from the gateway) and records it in
// `history`. `unit` in [0, 1) spreads the remap after an announcement.
NoticeVerdict judge_notice(const GatewayNotice& notice, NoticeHistory& history, const NoticeContext& context,
                           std::chrono::steady_clock::time_point now, double unit);

}  // namespace natkeeper::policy
