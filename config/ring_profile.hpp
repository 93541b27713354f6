#pragma once
#include <string_view>
#include <vector>

#include "config/map_spec.hpp"

namespace natkeeper::config {

// The vendor's inbound ports for Ring doorbells, cameras and alarm base stations.
// RTP ports are negotiated over SIP anywhere in 16500-65000; the profile maps a
// window of that range, because few gateways hold tens of thousands of mappings.
inline constexpr std::uint16_t kRingRtpFirst = 16500;
inline constexpr std::uint16_t kRingRtpLast = 65000;
inline constexpr PortRange kRingDefaultRtpWindow{Transport::udp, 16500, 16599};

struct ProfileRange {
  PortRange range;
  std::string_view purpose;
};

// In priority order: app ports, SIP, then the RTP window, so a small gateway
// table fills with what matters most.
std::vector<ProfileRange> ring_profile(PortRange rtp_window);

}  // namespace natkeeper::config
