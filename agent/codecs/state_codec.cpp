#include "agent/codecs/state_codec.hpp"

#include <arpa/inet.h>

#include <nlohmann/json.hpp>

#include <limits>
#include <optional>

namespace natkeeper::state {
namespace {

// The key order of the documentation, for a file people may read.
using Json = nlohmann::ordered_json;

constexpr std::int64_t kVersion = 1;
// A value quoted in an error message is cut to this length: it goes to a log line.
constexpr std::size_t kQuotedValueChars = 40;

std::string dump(const Json& value) {
  // Replacing invalid UTF-8 keeps dump() from throwing.
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string quoted(const Json& value) {
  auto text = dump(value);
  if (text.size() > kQuotedValueChars) {
    text.resize(kQuotedValueChars);
    text += "...";
  }
  return text;
}

bool is_dotted_ipv4(const std::string& text) {
  in_addr ignored{};
  // inet_pton stops at a NUL; the whole string must be the address.
  return text.find('\0') == std::string::npos && ::inet_pton(AF_INET, text.c_str(), &ignored) == 1;
}

// Reads the members of one JSON object; the first problem is kept in `error`
// as "<path>.<member>: <problem> (<value>)".
class ObjectReader {
 public:
  ObjectReader(const Json& object, std::string path, std::string& error)
      : object_(object), path_(std::move(path)), error_(error) {}

  const Json* member(const char* name) {
    const auto found = object_.find(name);
    if (found == object_.end()) {
      error_ = qualified(name) + ": missing";
      return nullptr;
    }
    return &*found;
  }

  std::optional<std::string> string(const char* name) {
    const auto* value = member(name);
    if (!value) return std::nullopt;
    if (!value->is_string()) return fail(name, "not a string", *value);
    return value->get<std::string>();
  }

  std::optional<std::int64_t> integer(const char* name) {
    const auto* value = member(name);
    if (!value) return std::nullopt;
    if (value->is_number_unsigned()) {
      const auto unsigned_value = value->get<std::uint64_t>();
      if (unsigned_value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        return fail(name, "out of range", *value);
      return static_cast<std::int64_t>(unsigned_value);
    }
    if (!value->is_number_integer()) return fail(name, "not an integer", *value);
    return value->get<std::int64_t>();
  }

  std::optional<bool> boolean(const char* name) {
    const auto* value = member(name);
    if (!value) return std::nullopt;
    if (!value->is_boolean()) return fail(name, "not a boolean", *value);
    return value->get<bool>();
  }

  std::optional<std::uint16_t> port(const char* name) {
    const auto value = integer(name);
    if (!value) return std::nullopt;
    if (*value < 1 || *value > 65535) return fail(name, "not a port", *member(name));
    return static_cast<std::uint16_t>(*value);
  }

  // A member that may be absent: nullopt only on an error, "" when absent.
  std::optional<std::string> optional_string(const char* name, std::size_t max_bytes) {
    if (!object_.contains(name)) return std::string();
    auto text = string(name);
    if (text && text->size() > max_bytes) return fail(name, "too long", *member(name));
    return text;
  }

  std::optional<std::string> ipv4(const char* name, bool may_be_empty) {
    auto text = string(name);
    if (!text) return std::nullopt;
    if ((text->empty() && may_be_empty) || is_dotted_ipv4(*text)) return text;
    return fail(name, "not an IPv4 address", *member(name));
  }

  std::nullopt_t fail(const char* name, const char* problem, const Json& value) {
    error_ = qualified(name) + ": " + problem + " (" + quoted(value) + ")";
    return std::nullopt;
  }

 private:
  std::string qualified(const char* name) const { return path_.empty() ? name : path_ + "." + name; }

  const Json& object_;
  std::string path_;
  std::string& error_;
};

std::optional<LiveMapping> decode_mapping(const Json& value, std::size_t index, std::string& error) {
  const auto path = "mappings[" + std::to_string(index) + "]";
  if (!value.is_object()) {
    error = path + ": not an object (" + quoted(value) + ")";
    return std::nullopt;
  }
  ObjectReader reader(value, path, error);
  LiveMapping mapping;
  const auto proto_name = reader.string("proto");
  if (!proto_name) return std::nullopt;
  const auto proto = parse_transport(*proto_name);
  if (!proto) return reader.fail("proto", "unknown protocol", *reader.member("proto"));
  mapping.proto = *proto;
  const auto internal_port = reader.port("internal_port");
  if (!internal_port) return std::nullopt;
  mapping.internal_port = *internal_port;
  const auto external_port = reader.port("external_port");
  if (!external_port) return std::nullopt;
  mapping.external_port = *external_port;
  auto external_ip = reader.ipv4("external_ip", true);
  if (!external_ip) return std::nullopt;
  mapping.external_ip = std::move(*external_ip);
  const auto permanent = reader.boolean("permanent");
  if (!permanent) return std::nullopt;
  mapping.permanent = *permanent;
  const auto expires = reader.integer("expires_unix");
  if (!expires) return std::nullopt;
  if (*expires < 0) return reader.fail("expires_unix", "negative", *reader.member("expires_unix"));
  mapping.expires_unix = *expires;
  auto internal_client = reader.optional_string("internal_client", kMaxDeviceNameBytes);
  if (!internal_client) return std::nullopt;
  if (!internal_client->empty() && !is_dotted_ipv4(*internal_client))
    return reader.fail("internal_client", "not an IPv4 address", *reader.member("internal_client"));
  mapping.internal_client = std::move(*internal_client);
  auto device = reader.optional_string("device", kMaxDeviceNameBytes);
  if (!device) return std::nullopt;
  // A name belongs to a device's mapping: this host's have none.
  if (!mapping.internal_client.empty()) mapping.device = std::move(*device);
  if (value.contains("confirmed")) {
    const auto confirmed = reader.boolean("confirmed");
    if (!confirmed) return std::nullopt;
    mapping.confirmed = *confirmed;
  }
  return mapping;
}

}  // namespace

std::string encode(const ServiceState& state) {
  Json mappings = Json::array();
  for (const auto& mapping : state.mappings) {
    Json entry{{"proto", std::string(to_string(mapping.proto))},
               {"internal_port", mapping.internal_port},
               {"external_port", mapping.external_port},
               {"external_ip", mapping.external_ip},
               {"permanent", mapping.permanent},
               {"expires_unix", mapping.expires_unix}};
    // This host's mappings keep the shape files had before devices.
    if (!mapping.internal_client.empty()) {
      entry["internal_client"] = mapping.internal_client;
      entry["device"] = mapping.device;
    }
    if (!mapping.confirmed) entry["confirmed"] = false;
    mappings.push_back(std::move(entry));
  }
  const Json document{{"version", kVersion},
                      {"gateway", state.gateway},
                      {"method", state.method},
                      {"local_address", state.local_address},
                      {"mappings", std::move(mappings)}};
  return dump(document) + "\n";
}

DecodeResult decode(std::string_view text) {
  if (text.size() > kMaxStateFileBytes) {
    return DecodeError{"too large: " + std::to_string(text.size()) + " bytes (at most " +
                       std::to_string(kMaxStateFileBytes) + ")"};
  }
  const auto document = Json::parse(text.begin(), text.end(), nullptr, false);
  if (document.is_discarded()) return DecodeError{"not valid JSON"};
  if (!document.is_object()) return DecodeError{"not a JSON object (" + quoted(document) + ")"};
  std::string error;
  // What the reader (or decode_mapping) put in `error` when a step failed.
  const auto refusal = [&error] { return DecodeError{std::move(error)}; };
  ObjectReader reader(document, "", error);
  const auto version = reader.integer("version");
  if (!version) return refusal();
  if (*version != kVersion) {
    reader.fail("version", "unsupported version", *reader.member("version"));
    return refusal();
  }
  ServiceState state;
  auto gateway = reader.ipv4("gateway", false);
  if (!gateway) return refusal();
  state.gateway = std::move(*gateway);
  auto method = reader.string("method");
  if (!method) return refusal();
  if (*method != "upnp" && *method != "natpmp" && *method != "pcp") {
    reader.fail("method", "unknown method", *reader.member("method"));
    return refusal();
  }
  state.method = std::move(*method);
  auto local_address = reader.ipv4("local_address", false);
  if (!local_address) return refusal();
  state.local_address = std::move(*local_address);

  const auto* mappings = reader.member("mappings");
  if (!mappings) return refusal();
  if (!mappings->is_array()) {
    reader.fail("mappings", "not an array", *mappings);
    return refusal();
  }
  if (mappings->size() > kMaxLiveMappings) {
    return DecodeError{"mappings: " + std::to_string(mappings->size()) + " entries, more than " +
                       std::to_string(kMaxLiveMappings)};
  }
  state.mappings.reserve(mappings->size());
  for (std::size_t index = 0; index < mappings->size(); ++index) {
    auto mapping = decode_mapping((*mappings)[index], index, error);
    if (!mapping) return refusal();
    state.mappings.push_back(std::move(*mapping));
  }
  return state;
}

}  // namespace natkeeper::state
