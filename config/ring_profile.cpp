#include "config/ring_profile.hpp"

namespace natkeeper::config {

std::vector<ProfileRange> ring_profile(PortRange rtp_window) {
  return {
      {{Transport::udp, 7076, 7077}, "app"},
      {{Transport::udp, 9078, 9079}, "app"},
      {{Transport::tcp, 15063, 15064}, "sip"},
      {{Transport::udp, 15063, 15064}, "sip"},
      {rtp_window, "rtp"},
  };
}

}  // namespace natkeeper::config
