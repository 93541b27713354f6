#include "mappers/upnp/miniupnpc_igd.hpp"

#include <miniupnpc/upnpcommands.h>

#include <fmt/format.h>

#include <charconv>
#include <cstring>

#include "mappers/errors.hpp"

namespace natkeeper::upnp {
namespace {

std::error_code status(int code) {
  return code == UPNPCOMMAND_SUCCESS ? std::error_code{} : make_upnp_error(code);
}

template <std::size_t N>
std::string from_buffer(const char (&buffer)[N]) {
  return std::string(buffer, strnlen(buffer, N));
}

template <class Int>
std::optional<Int> parse_number(const std::string& text) {
  Int value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

class MiniupnpcIgd final : public IgdControl {
 public:
  explicit MiniupnpcIgd(IgdDescription description) : description_(std::move(description)) {}

  bool has_add_any_port_mapping() const override { return description_.version >= 2; }

  std::error_code add_port_mapping(const PortMappingArgs& args) override {
    const auto ports = Ports(args);
    return status(UPNP_AddPortMapping(control(), service(), ports.external.c_str(),
                                      ports.internal.c_str(), args.internal_client.c_str(),
                                      args.description.c_str(), proto(args.proto), nullptr,
                                      ports.lease.c_str()));
  }

  Result<std::uint16_t> add_any_port_mapping(const PortMappingArgs& args) override {
    const auto ports = Ports(args);
    char reserved[6] = {};
    if (const auto ec = status(UPNP_AddAnyPortMapping(
            control(), service(), ports.external.c_str(), ports.internal.c_str(),
            args.internal_client.c_str(), args.description.c_str(), proto(args.proto), nullptr,
            ports.lease.c_str(), reserved)))
      return ec;
    const auto port = parse_number<std::uint16_t>(from_buffer(reserved));
    if (!port || *port == 0) return make_error_code(Errc::bad_reply);
    return *port;
  }

  std::error_code delete_port_mapping(Transport p, std::uint16_t external_port) override {
    const auto port = std::to_string(external_port);
    return status(UPNP_DeletePortMapping(control(), service(), port.c_str(), proto(p), nullptr));
  }

  Result<PortMappingEntry> get_specific_port_mapping(Transport p,
                                                     std::uint16_t external_port) override {
    const auto port = std::to_string(external_port);
    // Buffer sizes are the ones upnpcommands.h documents.
    char client[16] = {}, internal_port[6] = {}, desc[80] = {}, enabled[4] = {}, lease[16] = {};
    if (const auto ec = status(UPNP_GetSpecificPortMappingEntry(control(), service(), port.c_str(),
                                                                proto(p), nullptr, client,
                                                                internal_port, desc, enabled, lease)))
      return ec;
    const auto in_port = parse_number<std::uint16_t>(from_buffer(internal_port));
    const auto seconds = parse_number<std::uint32_t>(from_buffer(lease));
    if (!in_port) return make_error_code(Errc::bad_reply);
    return PortMappingEntry{from_buffer(client), *in_port, from_buffer(desc),
                            std::chrono::seconds(seconds.value_or(0))};
  }

  Result<ListedPortMapping> get_generic_port_mapping(std::uint32_t index) override {
    const auto position = std::to_string(index);
    // Buffer sizes are the ones upnpcommands.h documents.
    char external_port[6] = {}, client[16] = {}, internal_port[6] = {}, protocol[4] = {}, desc[80] = {},
         enabled[4] = {}, remote_host[64] = {}, lease[16] = {};
    if (const auto ec = status(UPNP_GetGenericPortMappingEntry(control(), service(), position.c_str(), external_port,
                                                               client, internal_port, protocol, desc, enabled,
                                                               remote_host, lease)))
      return ec;
    const auto ext_port = parse_number<std::uint16_t>(from_buffer(external_port));
    const auto in_port = parse_number<std::uint16_t>(from_buffer(internal_port));
    const auto seconds = parse_number<std::uint32_t>(from_buffer(lease));
    const auto transport = from_buffer(protocol);
    if (!ext_port || !in_port || (transport != "UDP" && transport != "TCP")) return make_error_code(Errc::bad_reply);
    return ListedPortMapping{transport == "TCP" ? Transport::tcp : Transport::udp, *ext_port,
                             {from_buffer(client), *in_port, from_buffer(desc), std::chrono::seconds(seconds.value_or(0))}};
  }

  Result<std::string> get_external_ip_address() override {
    char address[40] = {};
    if (const auto ec = status(UPNP_GetExternalIPAddress(control(), service(), address))) return ec;
    return from_buffer(address);
  }

 private:
  struct Ports {
    explicit Ports(const PortMappingArgs& args)
        : external(std::to_string(args.external_port)),
          internal(std::to_string(args.internal_port)),
          lease(std::to_string(args.lease.count())) {}
    std::string external, internal, lease;
  };
  const char* control() const { return description_.control_url.c_str(); }
  const char* service() const { return description_.service_type.c_str(); }
  static const char* proto(Transport p) { return p == Transport::tcp ? "TCP" : "UDP"; }

  IgdDescription description_;
};

// Two blocking SOAP calls; a failed one leaves its part empty.
ConnectionState ask_connection_state(const IgdDescription& service) {
  // Buffer sizes are the ones upnpcommands.h documents.
  char status[64] = {}, last_error[64] = {}, address[40] = {};
  unsigned int uptime = 0;
  const auto control = service.control_url.c_str();
  const auto type = service.service_type.c_str();
  ConnectionState state;
  if (UPNP_GetStatusInfo(control, type, status, &uptime, last_error) == UPNPCOMMAND_SUCCESS)
    state.status = from_buffer(status);
  if (UPNP_GetExternalIPAddress(control, type, address) == UPNPCOMMAND_SUCCESS)
    state.external_ip = from_buffer(address);
  return state;
}

}  // namespace

Result<OpenedIgd> open_igd(const std::string& location, std::string_view description) {
  const auto services = connection_services(parse_root_description(description), location);
  if (services.empty()) return make_error_code(Errc::not_an_igd);
  OpenedIgd opened;
  std::size_t chosen = 0;
  if (services.size() > 1) {
    std::vector<ConnectionState> states;
    for (const auto& service : services) {
      states.push_back(ask_connection_state(service));
      if (is_usable_connection(states.back())) break;
    }
    chosen = best_connection(states);
    for (std::size_t i = 0; i < states.size(); ++i) opened.asked.emplace_back(services[i], states[i]);
  }
  opened.description = services[chosen];
  opened.control = std::make_shared<MiniupnpcIgd>(opened.description);
  return opened;
}

}  // namespace natkeeper::upnp
