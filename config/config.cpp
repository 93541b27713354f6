#include "config/config.hpp"

#include <toml++/toml.h>
#include <fmt/format.h>

#include <array>
#include <bitset>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <tuple>

#include "config/ring_profile.hpp"
#include "mappers/upnp/http_url.hpp"

namespace natkeeper::config {
namespace {

// Errors inside the loader travel as this exception and leave it as a ConfigError.
struct Invalid {
  std::size_t line;
  std::string key;
  std::string message;
};

std::size_t line_of(const toml::node& node) { return node.source().begin.line; }

class TableReader {
 public:
  TableReader(const toml::table& table, std::string prefix)
      : table_(table), prefix_(std::move(prefix)) {}

  // Rejects keys this table does not know: a typo must not silently fall back to a default.
  void only(std::initializer_list<std::string_view> known) const {
    for (const auto& [key, node] : table_) {
      if (std::find(known.begin(), known.end(), key.str()) == known.end())
        throw Invalid{line_of(node), path(key.str()), "unknown key"};
    }
  }

  template <class T>
  std::optional<std::pair<T, std::size_t>> get(std::string_view key, std::string_view type_name) const {
    const auto* node = table_.get(key);
    if (!node) return std::nullopt;
    const auto value = node->value_exact<T>();
    if (!value) throw Invalid{line_of(*node), path(key), fmt::format("expected {}", type_name)};
    return std::pair{*value, line_of(*node)};
  }

  const toml::table* subtable(std::string_view key) const {
    const auto* node = table_.get(key);
    if (!node) return nullptr;
    if (!node->is_table()) throw Invalid{line_of(*node), path(key), "expected a table"};
    return node->as_table();
  }

  // [[key]] tables (an array of tables), or nullptr when absent.
  const toml::array* tables(std::string_view key) const {
    const auto* node = table_.get(key);
    if (!node) return nullptr;
    if (!node->is_array_of_tables())
      throw Invalid{line_of(*node), path(key), fmt::format("expected [[{}]] tables", key)};
    return node->as_array();
  }

  const toml::array* array(std::string_view key) const {
    const auto* node = table_.get(key);
    if (!node) return nullptr;
    if (!node->is_array()) throw Invalid{line_of(*node), path(key), "expected an array of strings"};
    return node->as_array();
  }

  std::string path(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : fmt::format("{}.{}", prefix_, key);
  }

 private:
  const toml::table& table_;
  std::string prefix_;
};

bool printable_ascii(std::string_view text, std::size_t max_size) {
  return !text.empty() && text.size() <= max_size && std::all_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f;
  });
}

std::vector<PortRange> read_ports(const TableReader& table, std::string_view key) {
  std::vector<PortRange> out;
  const auto* ports = table.array(key);
  if (!ports) return out;
  for (std::size_t i = 0; i < ports->size(); ++i) {
    const auto& node = *ports->get(i);
    const auto item = fmt::format("{}[{}]", table.path(key), i);
    const auto spec = node.value_exact<std::string>();
    if (!spec) throw Invalid{line_of(node), item, "expected a string like \"udp:7076-7077\""};
    auto ranges = parse_map_spec(*spec);
    if (!ranges) throw Invalid{line_of(node), item, ranges.error()};
    out.insert(out.end(), ranges->begin(), ranges->end());
  }
  return out;
}

bool read_profile_name(const TableReader& table, std::string_view key, bool current) {
  auto name = table.get<std::string>(key, "a string");
  if (!name) return current;
  if (name->first == "ring") return true;
  if (name->first == "none") return false;
  throw Invalid{name->second, table.path(key), fmt::format("'{}' is not one of: ring, none", name->first)};
}

void read_gateway(const TableReader& gateway, Config& config) {
  gateway.only({"protocol", "address", "igd"});
  if (auto protocol = gateway.get<std::string>("protocol", "a string")) {
    auto choice = parse_protocol_choice(protocol->first);
    if (!choice)
      throw Invalid{protocol->second, gateway.path("protocol"),
                    fmt::format("'{}' is not one of: {}", protocol->first, kProtocolChoices)};
    config.protocol = *choice;
  }
  if (auto address = gateway.get<std::string>("address", "an IPv4 address string")) {
    boost::system::error_code ec;
    config.gateway = boost::asio::ip::make_address_v4(address->first, ec);
    if (ec)
      throw Invalid{address->second, gateway.path("address"),
                    fmt::format("'{}' is not an IPv4 address", address->first)};
  }
  if (auto igd = gateway.get<std::string>("igd", "a URL string")) {
    if (!is_igd_url(igd->first))
      throw Invalid{igd->second, gateway.path("igd"), fmt::format("expected {}", kIgdUrlSyntax)};
    config.igd_url = igd->first;
  }
}

void read_profile(const TableReader& profile, Config& config) {
  profile.only({"name", "rtp"});
  config.ring_profile = read_profile_name(profile, "name", config.ring_profile);
  if (auto rtp = profile.get<std::string>("rtp", "a port range string like \"16500-16599\"")) {
    auto range = parse_port_range(rtp->first);
    if (!range) throw Invalid{rtp->second, profile.path("rtp"), range.error()};
    if (range->first < kRingRtpFirst || range->second > kRingRtpLast)
      throw Invalid{rtp->second, profile.path("rtp"),
                    fmt::format("'{}' is outside the RTP range {}-{}", rtp->first, kRingRtpFirst, kRingRtpLast)};
    config.ring_rtp_window = {Transport::udp, range->first, range->second};
  }
}

}  // namespace

std::optional<std::string> lease_problem(std::int64_t seconds) {
  if (seconds == kPermanentLease.count() || (seconds >= kMinLease.count() && seconds <= kMaxLease.count()))
    return std::nullopt;
  return fmt::format("{} is neither 0 (permanent) nor in {}-{} seconds", seconds, kMinLease.count(), kMaxLease.count());
}

namespace {

void read_mapping(const TableReader& mapping, Config& config) {
  mapping.only({"lease", "description", "allow_other_external_port", "ports", "warn_above"});
  if (auto lease = mapping.get<std::int64_t>("lease", "an integer number of seconds")) {
    if (auto problem = lease_problem(lease->first)) throw Invalid{lease->second, mapping.path("lease"), *problem};
    config.lease = std::chrono::seconds(lease->first);
  }
  if (auto description = mapping.get<std::string>("description", "a string")) {
    const auto& text = description->first;
    // Gateways keep descriptions in small fixed buffers (miniupnpc: 80 bytes).
    if (!printable_ascii(text, 40))
      throw Invalid{description->second, mapping.path("description"),
                    "expected 1-40 printable ASCII characters"};
    config.description = text;
  }
  if (auto allow = mapping.get<bool>("allow_other_external_port", "true or false"))
    config.allow_other_external_port = allow->first;
  if (auto warn_above = mapping.get<std::int64_t>("warn_above", "an integer number of mappings")) {
    if (warn_above->first < 0 || warn_above->first > kMaxPlannedMappings)
      throw Invalid{warn_above->second, mapping.path("warn_above"),
                    fmt::format("{} is out of range 0-{}", warn_above->first, kMaxPlannedMappings)};
    config.warn_above = static_cast<std::size_t>(warn_above->first);
  }
  config.ports = read_ports(mapping, "ports");
}

Device read_device(const TableReader& table, std::size_t line) {
  table.only({"name", "mac", "address", "profile", "ports"});
  Device device;
  if (auto name = table.get<std::string>("name", "a string")) {
    // Part of each mapping's description at the gateway, which has little room.
    if (!printable_ascii(name->first, 24))
      throw Invalid{name->second, table.path("name"), "expected 1-24 printable ASCII characters"};
    device.name = name->first;
  }
  if (auto mac = table.get<std::string>("mac", "a MAC address string like \"54:e0:19:aa:bb:cc\"")) {
    device.mac = parse_mac(mac->first);
    if (!device.mac)
      throw Invalid{mac->second, table.path("mac"),
                    fmt::format("'{}' is not a MAC address like \"54:e0:19:aa:bb:cc\"", mac->first)};
  }
  if (auto address = table.get<std::string>("address", "an IPv4 address string")) {
    boost::system::error_code ec;
    device.address = boost::asio::ip::make_address_v4(address->first, ec);
    if (ec) {
      boost::system::error_code v6_error;
      boost::asio::ip::make_address_v6(address->first, v6_error);
      throw Invalid{address->second, table.path("address"),
                    v6_error ? fmt::format("'{}' is not an IPv4 address", address->first)
                             : fmt::format("'{}': devices by IPv6 address are not supported yet; give its IPv4 "
                                           "address or its mac",
                                           address->first)};
    }
  }
  if (device.mac.has_value() == device.address.has_value())
    throw Invalid{line, table.path(device.mac ? "address" : "mac"),
                  "name the device by its mac or by its address: exactly one of them"};
  device.ring_profile = read_profile_name(table, "profile", true);
  device.ports = read_ports(table, "ports");
  return device;
}

void read_devices(const TableReader& root, Config& config) {
  const auto* tables = root.tables("device");
  if (!tables) return;
  for (std::size_t i = 0; i < tables->size(); ++i) {
    const auto& node = *tables->get(i);
    const TableReader table(*node.as_table(), fmt::format("device[{}]", i));
    auto device = read_device(table, line_of(node));
    for (std::size_t j = 0; j < config.devices.size(); ++j) {
      const auto& other = config.devices[j];
      const bool same = (device.mac && device.mac == other.mac) || (device.address && device.address == other.address);
      if (same || (!device.name.empty() && device.name == other.name))
        throw Invalid{line_of(node), table.path(same ? (device.mac ? "mac" : "address") : "name"),
                      fmt::format("the same {} as device[{}]", same ? "device" : "name", j)};
    }
    config.devices.push_back(std::move(device));
  }
}

void read_verify(const TableReader& verify, Config& config) {
  verify.only({"enabled", "reflector", "stun", "reflector_key_file", "interval"});
  if (auto enabled = verify.get<bool>("enabled", "true or false")) config.verify = enabled->first;
  for (auto [key, target] : {std::pair{"reflector", &config.reflector}, std::pair{"stun", &config.stun}}) {
    if (auto endpoint = verify.get<std::string>(key, "a \"host:port\" string")) {
      if (!is_host_and_port(endpoint->first))
        throw Invalid{endpoint->second, verify.path(key),
                      fmt::format("'{}' is not host:port (e.g. \"reflector.example.net:7000\")", endpoint->first)};
      *target = endpoint->first;
    }
  }
  if (auto key_file = verify.get<std::string>("reflector_key_file", "a file name string"))
    config.reflector_key_file = key_file->first;
  if (auto interval = verify.get<std::int64_t>("interval", "an integer number of seconds")) {
    if (interval->first != 0 && (interval->first < kMinVerifyInterval.count() || interval->first > kMaxLease.count()))
      throw Invalid{interval->second, verify.path("interval"),
                    fmt::format("{} is neither 0 (only after changes) nor in {}-{} seconds", interval->first,
                                kMinVerifyInterval.count(), kMaxLease.count())};
    config.verify_interval = std::chrono::seconds(interval->first);
  }
}

}  // namespace

bool is_host_and_port(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  const auto port = parse_port_range(text.substr(colon + 1));
  return port && port->first == port->second;
}

bool is_igd_url(std::string_view text) {
  const auto url = upnp::parse_http_url(text);
  boost::system::error_code ec;
  return url && (boost::asio::ip::make_address_v4(url->host, ec), !ec);
}

std::string_view to_string(ProtocolChoice choice) {
  switch (choice) {
    case ProtocolChoice::automatic: return "auto";
    case ProtocolChoice::pcp: return "pcp";
    case ProtocolChoice::natpmp: return "natpmp";
    case ProtocolChoice::upnp: return "upnp";
  }
  return "auto";
}

std::optional<ProtocolChoice> parse_protocol_choice(std::string_view text) {
  if (text == "auto") return ProtocolChoice::automatic;
  if (text == "pcp") return ProtocolChoice::pcp;
  if (text == "natpmp") return ProtocolChoice::natpmp;
  if (text == "upnp") return ProtocolChoice::upnp;
  return std::nullopt;
}

std::string ConfigError::to_string() const {
  std::string out = file;
  if (line > 0) out += fmt::format(":{}", line);
  if (!key.empty()) out += fmt::format(": {}", key);
  return out + ": " + message;
}

ConfigResult parse_config(std::string_view toml_text, std::string_view source_name) {
  const std::string source(source_name);
  Config config;
  config.source = source;
  try {
    const toml::table root = toml::parse(toml_text, source);
    const TableReader reader(root, "");
    reader.only({"gateway", "profile", "mapping", "verify", "device"});
    if (const auto* gateway = reader.subtable("gateway")) read_gateway({*gateway, "gateway"}, config);
    if (const auto* profile = reader.subtable("profile")) read_profile({*profile, "profile"}, config);
    if (const auto* mapping = reader.subtable("mapping")) read_mapping({*mapping, "mapping"}, config);
    if (const auto* verify = reader.subtable("verify")) read_verify({*verify, "verify"}, config);
    read_devices(reader, config);
  } catch (const toml::parse_error& error) {
    return ConfigError{source, error.source().begin.line, "", std::string(error.description())};
  } catch (const Invalid& invalid) {
    return ConfigError{source, invalid.line, invalid.key, invalid.message};
  }
  return config;
}

ConfigResult load_config_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return ConfigError{path, 0, "", fmt::format("cannot read: {}", std::strerror(errno))};
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return ConfigError{path, 0, "", "read error"};
  return parse_config(text.str(), path);
}

std::string default_config_path() { return NATKEEPER_DEFAULT_CONFIG; }

std::string label(const Device& device) {
  if (!device.name.empty()) return device.name;
  return device.mac ? to_string(*device.mac) : device.address->to_string();
}

bool profile_for_this_host(const Config& config) { return config.ring_profile && config.devices.empty(); }

bool plans_anything(const Config& config) {
  const bool for_devices = std::any_of(config.devices.begin(), config.devices.end(),
                                       [](const auto& device) { return device.ring_profile || !device.ports.empty(); });
  return profile_for_this_host(config) || !config.ports.empty() || for_devices;
}

DeviceAddresses configured_addresses(const Config& config) {
  DeviceAddresses addresses;
  for (const auto& device : config.devices) addresses.push_back(device.address);
  return addresses;
}

namespace {

struct Wanted {
  PortRange range;
  std::string description;
};

std::vector<Wanted> wanted_ports(const Config& config, bool with_profile, const std::vector<PortRange>& ports,
                                 std::string_view description) {
  std::vector<Wanted> wanted;
  if (with_profile) {
    for (const auto& entry : ring_profile(config.ring_rtp_window))
      wanted.push_back({entry.range, fmt::format("{} ring {}", description, entry.purpose)});
  }
  for (const auto& range : ports) wanted.push_back({range, std::string(description)});
  return wanted;
}

}  // namespace

std::vector<RequestRun> plan_runs(const Config& config, const DeviceAddresses& addresses) {
  std::vector<RequestRun> runs;
  // The ports planned so far, per client and transport: a port planned twice
  // keeps its first place. A bit per port: 16 KB per client, however many ports.
  using PlannedPorts = std::array<std::bitset<65536>, 2>;
  std::map<std::optional<boost::asio::ip::address>, std::unique_ptr<PlannedPorts>> planned;
  auto add = [&](const std::vector<Wanted>& wanted, std::optional<boost::asio::ip::address> client,
                 const std::string& device) {
    auto& client_ports = planned[client];
    if (!client_ports) client_ports = std::make_unique<PlannedPorts>();
    for (const auto& [range, description] : wanted) {
      auto& ports = (*client_ports)[range.proto == Transport::tcp ? 0 : 1];
      for (unsigned port = range.first; port <= range.last; ++port) {
        if (ports.test(port)) continue;
        ports.set(port);
        const auto p = static_cast<std::uint16_t>(port);
        if (!runs.empty()) {
          auto& last = runs.back();
          if (last.first.proto == range.proto && last.first.internal_port + last.count == port &&
              last.first.description == description && last.first.internal_client == client) {
            ++last.count;
            continue;
          }
        }
        runs.push_back({{range.proto, p, p, config.lease, description, client, device}, 1});
      }
    }
  };
  add(wanted_ports(config, profile_for_this_host(config), config.ports, config.description),
      std::nullopt, {});
  for (std::size_t i = 0; i < config.devices.size() && i < addresses.size(); ++i) {
    if (!addresses[i]) continue;
    const auto& device = config.devices[i];
    // The gateway's table shows whom each mapping is for (within the 80 bytes
    // gateways keep: 40 + 1 + 24 and the profile's words).
    const auto description = fmt::format("{} {}", config.description, label(device));
    // Reports name an unnamed device by its address (MapRequest::device empty).
    add(wanted_ports(config, device.ring_profile, device.ports, description), boost::asio::ip::address(*addresses[i]),
        device.name);
  }
  return runs;
}

std::vector<MapRequest> plan_requests(const Config& config, const DeviceAddresses& addresses) {
  std::vector<MapRequest> requests;
  for (const auto& run : plan_runs(config, addresses)) {
    for (std::uint32_t i = 0; i < run.count; ++i) {
      auto& request = requests.emplace_back(run.first);
      request.internal_port = request.wanted_external_port = static_cast<std::uint16_t>(run.first.internal_port + i);
    }
  }
  return requests;
}

std::vector<MapRequest> plan_requests(const Config& config) { return plan_requests(config, configured_addresses(config)); }

}  // namespace natkeeper::config
