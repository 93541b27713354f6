#include "agent/codecs/state_codec.hpp"

#include <arpa/inet.h>

#include <boost/crc.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <optional>
#include <tuple>

namespace natkeeper::state {
namespace {

// The key order of the documentation, for a file people may read.
using Json = nlohmann::ordered_json;

// Version 1: one JSON object, its mappings in an array. Version 2: JSON Lines,
// each line checksummed.
constexpr std::int64_t kSingleObjectVersion = 1;
constexpr std::int64_t kVersion = 2;
// Each line ends in its CRC-32 as a last member, so that the line stays JSON:
// {...,"crc32":"89abcdef"} where the checksum covers the line up to the comma.
constexpr std::string_view kChecksumOpening = ",\"crc32\":\"";
constexpr std::string_view kChecksumClosing = "\"}";
constexpr std::size_t kChecksumDigits = 8;
constexpr std::size_t kChecksumTail = kChecksumOpening.size() + kChecksumDigits + kChecksumClosing.size();
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

  // A member that may be absent: nullopt only on an error, `absent` when absent.
  std::optional<bool> optional_boolean(const char* name, bool absent) {
    if (!object_.contains(name)) return absent;
    return boolean(name);
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

// `path` names the record in messages: "mappings[3]" in the single-object
// format, "" in a line of its own (the line number says where).
std::optional<LiveMapping> decode_mapping(const Json& value, const std::string& path, std::string& error) {
  if (!value.is_object()) {
    error = (path.empty() ? "" : path + ": ") + "not an object (" + quoted(value) + ")";
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
  const auto confirmed = reader.optional_boolean("confirmed", true);
  if (!confirmed) return std::nullopt;
  mapping.confirmed = *confirmed;
  return mapping;
}

Json encode_mapping(const LiveMapping& mapping) {
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
  return entry;
}

// The members both formats begin with: where the mappings are. nullopt (with
// `error` set) when one is missing or wrong, or the version is not `version`.
std::optional<ServiceState> decode_situation(ObjectReader& reader, std::int64_t version) {
  const auto found_version = reader.integer("version");
  if (!found_version) return std::nullopt;
  if (*found_version != version) return reader.fail("version", "unsupported version", *reader.member("version"));
  ServiceState state;
  auto gateway = reader.ipv4("gateway", false);
  if (!gateway) return std::nullopt;
  state.gateway = std::move(*gateway);
  auto method = reader.string("method");
  if (!method) return std::nullopt;
  if (*method != "upnp" && *method != "natpmp" && *method != "pcp")
    return reader.fail("method", "unknown method", *reader.member("method"));
  state.method = std::move(*method);
  auto local_address = reader.ipv4("local_address", false);
  if (!local_address) return std::nullopt;
  state.local_address = std::move(*local_address);
  return state;
}

std::uint32_t crc32(std::string_view bytes) {
  boost::crc_32_type crc;
  crc.process_bytes(bytes.data(), bytes.size());
  return crc.checksum();
}

std::string checksummed_line(const Json& record) {
  auto line = dump(record);
  line.pop_back();  // the closing brace: the checksum is the last member
  char digits[kChecksumDigits + 1];
  std::snprintf(digits, sizeof digits, "%08x", static_cast<unsigned>(crc32(line)));
  line.append(kChecksumOpening).append(digits).append(kChecksumClosing) += '\n';
  return line;
}

bool has_checksum_tail(std::string_view line) {
  if (line.size() <= kChecksumTail) return false;
  const auto tail = line.substr(line.size() - kChecksumTail);
  return tail.starts_with(kChecksumOpening) && tail.ends_with(kChecksumClosing);
}

// The record a line holds, when its checksum matches; else nullopt and `error`.
std::optional<Json> checked_record(std::string_view line, std::string& error) {
  if (line.empty()) {
    error = "empty line";
    return std::nullopt;
  }
  if (!has_checksum_tail(line)) {
    error = "no checksum (a line cut short?)";
    return std::nullopt;
  }
  const auto digits = line.substr(line.size() - kChecksumTail + kChecksumOpening.size(), kChecksumDigits);
  std::uint32_t recorded = 0;
  for (const char digit : digits) {
    const auto at = std::string_view("0123456789abcdef").find(digit);
    if (at == std::string_view::npos) {
      error = "no checksum (a line cut short?)";
      return std::nullopt;
    }
    recorded = recorded * 16 + static_cast<std::uint32_t>(at);
  }
  if (crc32(line.substr(0, line.size() - kChecksumTail)) != recorded) {
    error = "checksum mismatch";
    return std::nullopt;
  }
  auto record = Json::parse(line.begin(), line.end(), nullptr, false);
  if (record.is_discarded()) {
    error = "not valid JSON";
    return std::nullopt;
  }
  if (!record.is_object()) {
    error = "not a JSON object (" + quoted(record) + ")";
    return std::nullopt;
  }
  return record;
}

bool is_header(const Json& record) { return record.contains("version"); }

struct Header {
  ServiceState situation;
  std::size_t mapping_count = 0;
  friend bool operator==(const Header&, const Header&) = default;
};

std::optional<Header> decode_header(const Json& record, std::string& error) {
  ObjectReader reader(record, "", error);
  auto situation = decode_situation(reader, kVersion);
  if (!situation) return std::nullopt;
  const auto count = reader.integer("mapping_count");
  if (!count) return std::nullopt;
  if (*count < 0) return reader.fail("mapping_count", "out of range", *reader.member("mapping_count"));
  return Header{std::move(*situation), static_cast<std::size_t>(*count)};
}

// Collects what decode() finds, bounded.
class DamageLog {
 public:
  explicit DamageLog(Decoded& decoded) : decoded_(decoded) {}
  void add(std::size_t line, std::string problem) {
    ++decoded_.damage_count;
    last_line_ = line;
    if (decoded_.damage.size() < kMaxDamageListed) decoded_.damage.push_back({line, std::move(problem)});
  }
  std::size_t last_line() const { return last_line_; }

 private:
  Decoded& decoded_;
  std::size_t last_line_ = 0;
};

Decoded decode_single_object(std::string_view text) {
  Decoded decoded;
  DamageLog damage(decoded);
  const auto document = Json::parse(text.begin(), text.end(), nullptr, false);
  if (document.is_discarded()) {
    damage.add(0, text.empty() ? "empty" : "not valid JSON");
    return decoded;
  }
  if (!document.is_object()) {
    damage.add(0, "not a JSON object (" + quoted(document) + ")");
    return decoded;
  }
  std::string error;
  ObjectReader reader(document, "", error);
  auto state = decode_situation(reader, kSingleObjectVersion);
  if (!state) {
    damage.add(0, std::move(error));
    return decoded;
  }
  const auto* mappings = reader.member("mappings");
  if (!mappings) {
    damage.add(0, std::move(error));
    return decoded;
  }
  if (!mappings->is_array()) {
    reader.fail("mappings", "not an array", *mappings);
    damage.add(0, std::move(error));
    return decoded;
  }
  if (mappings->size() > kMaxLiveMappings) {
    damage.add(0, "mappings: " + std::to_string(mappings->size()) + " entries, more than " +
                      std::to_string(kMaxLiveMappings));
    return decoded;
  }
  // Without per-record checksums a wrong entry puts every other in doubt.
  state->mappings.reserve(mappings->size());
  for (std::size_t index = 0; index < mappings->size(); ++index) {
    auto mapping = decode_mapping((*mappings)[index], "mappings[" + std::to_string(index) + "]", error);
    if (!mapping) {
      damage.add(0, std::move(error));
      decoded.lost_mappings = mappings->size();
      return decoded;
    }
    state->mappings.push_back(std::move(*mapping));
  }
  decoded.state = std::move(*state);
  return decoded;
}

Decoded decode_lines(std::string_view text) {
  Decoded decoded;
  DamageLog damage(decoded);
  std::optional<Header> header, closing;
  std::vector<LiveMapping> mappings;
  std::size_t unplaced_lines = 0;  // intact mapping records beyond kMaxLiveMappings
  std::size_t number = 0;
  // One line at a time: a file of empty lines costs no memory.
  while (!text.empty()) {
    const auto end = text.find('\n');
    const auto line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    ++number;
    const bool first = number == 1, last = text.empty() && !first;
    std::string error;
    const auto record = checked_record(line, error);
    if (!record) {
      damage.add(number, std::move(error));
      continue;
    }
    if (is_header(*record)) {
      if (!first && !last) {
        damage.add(number, "a header where a mapping belongs");
        continue;
      }
      auto decoded_header = decode_header(*record, error);
      if (!decoded_header) damage.add(number, std::move(error));
      else (first ? header : closing) = std::move(decoded_header);
      continue;
    }
    if (first) damage.add(number, "not the header");
    auto mapping = decode_mapping(*record, "", error);
    if (!mapping) {
      damage.add(number, std::move(error));
    } else if (mappings.size() == kMaxLiveMappings) {
      ++unplaced_lines;
    } else {
      mappings.push_back(std::move(*mapping));
    }
  }
  // A file cut after a whole mapping record: nothing else says so.
  if (header && !closing && damage.last_line() != number)
    damage.add(number + 1, "missing: the closing header (cut short?)");
  if (header && closing && !(*header == *closing)) damage.add(number, "differs from the header of line 1");
  if (unplaced_lines > 0)
    damage.add(0, std::to_string(unplaced_lines) + " mapping records beyond " + std::to_string(kMaxLiveMappings));
  const auto& placing = header ? header : closing;
  if (!placing) {
    // Which gateway, protocol and address the records were made through is
    // lost: deleting them elsewhere could remove another host's mappings.
    damage.add(0, "no intact header: the mappings cannot be placed");
    decoded.lost_mappings = mappings.size() + unplaced_lines;
    return decoded;
  }
  decoded.state = placing->situation;
  decoded.state.mappings = std::move(mappings);
  const auto kept = decoded.state.mappings.size();
  if (placing->mapping_count > kept) decoded.lost_mappings = placing->mapping_count - kept;
  else if (placing->mapping_count < kept)
    damage.add(0, std::to_string(kept) + " mapping records where the header counts " +
                      std::to_string(placing->mapping_count));
  return decoded;
}

}  // namespace

std::uint64_t holdings_digest(const ServiceState& state) {
  // FNV-1a over every field but the expiry, each string preceded by its length
  // so that no two different states feed the same bytes.
  std::uint64_t digest = 14695981039346656037ULL;
  const auto add_bytes = [&digest](const void* data, std::size_t size) {
    for (const auto byte : std::string_view(static_cast<const char*>(data), size)) {
      digest ^= static_cast<std::uint8_t>(byte);
      digest *= 1099511628211ULL;
    }
  };
  const auto add_value = [&](auto value) { add_bytes(&value, sizeof value); };
  const auto add_text = [&](std::string_view text) {
    add_value(text.size());
    add_bytes(text.data(), text.size());
  };
  add_text(state.gateway);
  add_text(state.method);
  add_text(state.local_address);
  add_value(state.mappings.size());
  for (const auto& m : state.mappings) {
    add_value(static_cast<int>(m.proto));
    add_value(m.internal_port);
    add_value(m.external_port);
    add_text(m.external_ip);
    add_value(m.permanent);
    add_text(m.internal_client);
    add_text(m.device);
    add_value(m.confirmed);
  }
  return digest;
}

bool encode(const ServiceState& state, const std::function<bool(std::string_view line)>& write) {
  const Json header{{"version", kVersion},
                    {"gateway", state.gateway},
                    {"method", state.method},
                    {"local_address", state.local_address},
                    {"mapping_count", state.mappings.size()}};
  const auto header_line = checksummed_line(header);
  if (!write(header_line)) return false;
  for (const auto& mapping : state.mappings)
    if (!write(checksummed_line(encode_mapping(mapping)))) return false;
  // Again at the end: a damaged first line does not lose where the mappings are.
  return write(header_line);
}

std::string encode(const ServiceState& state) {
  std::string text;
  encode(state, [&text](std::string_view line) {
    text += line;
    return true;
  });
  return text;
}

Decoded decode(std::string_view text) {
  const bool too_large = text.size() > kMaxStateFileBytes;
  if (too_large) text = text.substr(0, kMaxStateFileBytes);
  // A file of the earlier format has no line with a checksum.
  bool checksummed = false;
  for (std::size_t begin = 0; begin < text.size() && !checksummed;) {
    const auto end = std::min(text.find('\n', begin), text.size());
    checksummed = has_checksum_tail(text.substr(begin, end - begin));
    begin = end + 1;
  }
  auto decoded = checksummed ? decode_lines(text) : decode_single_object(text);
  if (too_large) {
    // First: whatever else is listed may be cut off.
    decoded.damage.insert(decoded.damage.begin(),
                          {0, "larger than " + std::to_string(kMaxStateFileBytes) + " bytes; the rest is not read"});
    if (decoded.damage.size() > kMaxDamageListed) decoded.damage.pop_back();
    ++decoded.damage_count;
  }
  return decoded;
}

std::string describe_damage(const Decoded& decoded) {
  if (decoded.intact()) return "";
  std::string text;
  for (const auto& damage : decoded.damage) {
    if (!text.empty()) text += "; ";
    if (damage.line > 0) text += "line " + std::to_string(damage.line) + ": ";
    text += damage.problem;
  }
  if (decoded.damage_count > decoded.damage.size())
    text += "; " + std::to_string(decoded.damage_count - decoded.damage.size()) + " more problems";
  return text + "; " + std::to_string(decoded.state.mappings.size()) + " mappings kept, " +
         std::to_string(decoded.lost_mappings) + " lost";
}

}  // namespace natkeeper::state
