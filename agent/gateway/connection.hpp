#pragma once
// What --once, --delete, --discover and the service share: finding the
// gateway and the protocol to map with, and how hard to press it.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>

#include "agent/gateway/discovery.hpp"
#include "agent/gateway/request_window.hpp"
#include "config/config.hpp"

namespace natkeeper {

// Requests in flight at once for one protocol.
std::size_t parallel_requests(Method method);
// The request window for bulk mapping with `method`; its maximum is
// parallel_requests(method).
WindowSettings request_window(Method method);
// Before a plan of more mappings than `config.warn_above`: how many, and what
// that can do to a home router.
void warn_about_large_plan(const config::Config& config, std::size_t planned);
// "PCP", "NAT-PMP", "UPnP-IGD": for people (to_string(Method) is for scripts).
std::string_view display_name(Method method);

std::optional<asio::ip::address> known_external_ip(const FoundProtocol& found);

struct Connection {
  GatewayPath path;
  FoundProtocol protocol;
};

// Finds the gateway and the best protocol it speaks; logs why not and returns
// nullopt.
asio::awaitable<std::optional<Connection>> connect(const config::Config& config);

}  // namespace natkeeper
