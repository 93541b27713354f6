#include "mappers/upnp/soap_igd.hpp"

#include <array>
#include <charconv>
#include <optional>
#include <span>

#include "mappers/errors.hpp"
#include "mappers/upnp/http_client.hpp"
#include "mappers/upnp/soap.hpp"

namespace natkeeper::upnp {
namespace {

namespace asio = boost::asio;

constexpr std::chrono::milliseconds kSoapDeadline{5000};
// 512 KiB of answer: a GetListOfPortMappings page of 256 entries, at most
// about 1 KiB each (miniupnpd's markup, a 63-byte description escaped twice
// when the listing comes escaped rather than in CDATA), is under 300 KiB;
// every other answer is well under 4 KiB.
constexpr HttpResponseLimits kSoapLimits{16 * 1024, 512 * 1024};

template <class Int>
std::optional<Int> parse_number(std::string_view text) {
  Int value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// An output argument as a number; nullopt when it is missing or no number.
template <class Int>
std::optional<Int> number(const SoapOutputs& outputs, std::string_view name) {
  const auto found = outputs.find(name);
  return found == outputs.end() ? std::nullopt : parse_number<Int>(found->second);
}

std::string text(const SoapOutputs& outputs, std::string_view name) {
  const auto found = outputs.find(name);
  return found == outputs.end() ? std::string() : found->second;
}

// `action` of `service`, over one connection within kSoapDeadline and
// kSoapLimits. It owns everything it uses: a caller that loses interest
// cancels it, and need not outlive it.
asio::awaitable<Result<SoapOutputs>> call(IgdDescription service, std::string_view action,
                                          std::vector<SoapArgument> arguments,
                                          std::span<const std::string_view> outputs) {
  auto url = parse_http_url(service.control_url);
  if (!url) co_return make_error_code(Errc::bad_reply);  // connection_services keeps none such
  HttpRequest request{"POST",
                      std::move(*url),
                      {{"Content-Type", "text/xml; charset=\"utf-8\""},
                       {"SOAPAction", soap_action_header(service.service_type, action)}},
                      soap_request_body(service.service_type, action, arguments)};
  const auto answer = co_await http_exchange(std::move(request), {kSoapDeadline, kSoapLimits});
  // An answer that came but cannot be read: the gateway may have acted on the
  // request all the same. No answer at all stays MapFailure::gateway_unreachable.
  if (answer.error == Errc::bad_http_answer) co_return make_error_code(Errc::bad_reply);
  if (answer.error) co_return answer.error;
  co_return read_soap_answer(action, answer.status, answer.body, outputs);
}

std::vector<SoapArgument> port_arguments(Transport proto, std::uint16_t external_port) {
  return {{"NewRemoteHost", ""},
          {"NewExternalPort", std::to_string(external_port)},
          {"NewProtocol", std::string(to_upper_string(proto))}};
}

std::vector<SoapArgument> add_arguments(const PortMappingArgs& args) {
  auto arguments = port_arguments(args.proto, args.external_port);
  arguments.insert(arguments.end(), {{"NewInternalPort", std::to_string(args.internal_port)},
                                     {"NewInternalClient", args.internal_client},
                                     {"NewEnabled", "1"},
                                     {"NewPortMappingDescription", args.description},
                                     {"NewLeaseDuration", std::to_string(args.lease.count())}});
  return arguments;
}

constexpr std::array<std::string_view, 0> kNoOutputs{};
constexpr std::array<std::string_view, 1> kReservedPort{"NewReservedPort"};
constexpr std::array<std::string_view, 4> kEntryOutputs{"NewInternalPort", "NewInternalClient",
                                                        "NewPortMappingDescription", "NewLeaseDuration"};
constexpr std::array<std::string_view, 6> kListedOutputs{"NewExternalPort",   "NewProtocol",
                                                         "NewInternalPort",   "NewInternalClient",
                                                         "NewPortMappingDescription", "NewLeaseDuration"};
constexpr std::array<std::string_view, 1> kPortListing{"NewPortListing"};
constexpr std::array<std::string_view, 1> kExternalAddress{"NewExternalIPAddress"};
constexpr std::array<std::string_view, 1> kConnectionStatus{"NewConnectionStatus"};

// NewProtocol's value.
std::optional<Transport> protocol_of(std::string_view text) {
  for (const auto proto : {Transport::tcp, Transport::udp})
    if (text == to_upper_string(proto)) return proto;
  return std::nullopt;
}

PortMappingEntry entry_of(const SoapOutputs& outputs, std::uint16_t internal_port) {
  return {text(outputs, "NewInternalClient"), internal_port, text(outputs, "NewPortMappingDescription"),
          std::chrono::seconds(number<std::uint32_t>(outputs, "NewLeaseDuration").value_or(0))};
}

// GetExternalIPAddress of `service`: its NewExternalIPAddress as sent.
asio::awaitable<Result<std::string>> external_ip_address(IgdDescription service) {
  const auto answer = co_await call(std::move(service), "GetExternalIPAddress", {}, kExternalAddress);
  if (!answer) co_return answer.error();
  const auto address = answer->find("NewExternalIPAddress");
  if (address == answer->end()) co_return make_error_code(Errc::bad_reply);
  co_return address->second;
}

// Arguments are named before co_await throughout: GCC 12 may destroy a
// temporary of a co_await expression twice.
class SoapIgd final : public IgdControl {
 public:
  explicit SoapIgd(IgdDescription service) : service_(std::move(service)) {}

  bool has_add_any_port_mapping() const override { return service_.version >= 2; }

  asio::awaitable<std::error_code> add_port_mapping(PortMappingArgs args) override {
    auto arguments = add_arguments(args);
    const auto answer = co_await call(service_, "AddPortMapping", std::move(arguments), kNoOutputs);
    co_return answer ? std::error_code{} : answer.error();
  }

  asio::awaitable<Result<std::uint16_t>> add_any_port_mapping(PortMappingArgs args) override {
    auto arguments = add_arguments(args);
    const auto answer = co_await call(service_, "AddAnyPortMapping", std::move(arguments), kReservedPort);
    if (!answer) co_return answer.error();
    const auto port = number<std::uint16_t>(*answer, "NewReservedPort");
    if (!port || *port == 0) co_return make_error_code(Errc::bad_reply);
    co_return *port;
  }

  asio::awaitable<std::error_code> delete_port_mapping(Transport proto, std::uint16_t external_port) override {
    auto arguments = port_arguments(proto, external_port);
    const auto answer = co_await call(service_, "DeletePortMapping", std::move(arguments), kNoOutputs);
    co_return answer ? std::error_code{} : answer.error();
  }

  asio::awaitable<Result<PortMappingEntry>> get_specific_port_mapping(Transport proto,
                                                                     std::uint16_t external_port) override {
    auto arguments = port_arguments(proto, external_port);
    const auto answer = co_await call(service_, "GetSpecificPortMappingEntry", std::move(arguments), kEntryOutputs);
    if (!answer) co_return answer.error();
    const auto internal_port = number<std::uint16_t>(*answer, "NewInternalPort");
    if (!internal_port) co_return make_error_code(Errc::bad_reply);
    co_return entry_of(*answer, *internal_port);
  }

  asio::awaitable<Result<ListedPortMapping>> get_generic_port_mapping(std::uint32_t index) override {
    std::vector<SoapArgument> arguments{{"NewPortMappingIndex", std::to_string(index)}};
    const auto answer = co_await call(service_, "GetGenericPortMappingEntry", std::move(arguments), kListedOutputs);
    if (!answer) co_return answer.error();
    const auto external_port = number<std::uint16_t>(*answer, "NewExternalPort");
    const auto internal_port = number<std::uint16_t>(*answer, "NewInternalPort");
    const auto protocol = protocol_of(text(*answer, "NewProtocol"));
    if (!external_port || !internal_port || !protocol) co_return make_error_code(Errc::bad_reply);
    co_return ListedPortMapping{*protocol, *external_port, entry_of(*answer, *internal_port)};
  }

  asio::awaitable<Result<std::vector<ListedPortMapping>>> get_list_of_port_mappings(
      Transport proto, std::uint16_t first_port, std::uint16_t last_port, std::uint16_t at_most) override {
    // NewNumberOfPorts 0 would ask for all of them.
    if (at_most == 0) co_return std::vector<ListedPortMapping>{};
    // NewManage 1: every client's entries, not only this host's (WANIPConnection:2 section 2.5.20).
    std::vector<SoapArgument> arguments{{"NewStartPort", std::to_string(first_port)},
                                        {"NewEndPort", std::to_string(last_port)},
                                        {"NewProtocol", std::string(to_upper_string(proto))},
                                        {"NewManage", "1"},
                                        {"NewNumberOfPorts", std::to_string(at_most)}};
    const auto answer = co_await call(service_, "GetListOfPortMappings", std::move(arguments), kPortListing);
    // 730 PortMappingNotFound: nothing in the range (miniupnpd sends an empty list instead).
    if (!answer && answer.error() == make_upnp_error(730)) co_return std::vector<ListedPortMapping>{};
    if (!answer) co_return answer.error();
    co_return read_port_listing(text(*answer, "NewPortListing"), proto, first_port, last_port, at_most);
  }

  asio::awaitable<Result<std::string>> get_external_ip_address() override {
    co_return co_await external_ip_address(service_);
  }

 private:
  IgdDescription service_;
};

// GetStatusInfo and GetExternalIPAddress; a failed one leaves its part empty.
asio::awaitable<ConnectionState> ask_connection_state(IgdDescription service) {
  ConnectionState state;
  const auto status = co_await call(service, "GetStatusInfo", {}, kConnectionStatus);
  if (status) state.status = text(*status, "NewConnectionStatus");
  const auto address = co_await external_ip_address(std::move(service));
  if (address) state.external_ip = *address;
  co_return state;
}

}  // namespace

asio::awaitable<Result<OpenedIgd>> open_igd(std::string location, std::string description) {
  const auto services = connection_services(parse_root_description(description), location);
  if (services.empty()) co_return make_error_code(Errc::not_an_igd);
  OpenedIgd opened;
  std::size_t chosen = 0;
  if (services.size() > 1) {
    std::vector<ConnectionState> states;
    for (const auto& service : services) {
      states.push_back(co_await ask_connection_state(service));
      if (is_usable_connection(states.back())) break;
    }
    chosen = best_connection(states);
    for (std::size_t i = 0; i < states.size(); ++i) opened.asked.emplace_back(services[i], states[i]);
  }
  opened.description = services[chosen];
  opened.control = std::make_shared<SoapIgd>(opened.description);
  co_return opened;
}

}  // namespace natkeeper::upnp
