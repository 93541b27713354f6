#pragma once
#include <boost/asio/awaitable.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mappers/result.hpp"
#include "mappers/upnp/igd_control.hpp"
#include "mappers/upnp/igd_description.hpp"

namespace natkeeper::upnp {

struct OpenedIgd {
  // Its SOAP calls go over natkeeper's own HTTP client, each within 5 s and
  // 512 KiB of answer.
  std::shared_ptr<IgdControl> control;
  IgdDescription description;  // the WAN connection service chosen
  // When the description offers several: those asked, in document order, with
  // what each said of itself (the chosen one among them). Empty otherwise.
  std::vector<std::pair<IgdDescription, ConnectionState>> asked;
};

// Reads the root description fetched from `location` and returns the IGD's WAN
// connection service (see connection_services), or Errc::not_an_igd. natkeeper
// fetches the bytes itself, within limits. Of several services the best
// (best_connection) is taken: they are asked for their status and external
// address in turn (GetStatusInfo, GetExternalIPAddress) until one is connected
// with an address. A single service is taken without asking: some gateways
// call their only connection disconnected and map all the same.
boost::asio::awaitable<Result<OpenedIgd>> open_igd(std::string location, std::string description);

}  // namespace natkeeper::upnp
