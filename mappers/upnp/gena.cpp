#include "mappers/upnp/gena.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "mappers/upnp/ascii.hpp"
#include "mappers/upnp/xml_walk.hpp"

namespace natkeeper::upnp {
namespace {

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<std::uint32_t> parse_u32(std::string_view text) {
  std::uint32_t value = 0;
  if (!all_digits(text)) return std::nullopt;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// "Second-N" or "Second-infinite" (UDA 1.1 §4.1.2), bounded.
std::optional<std::chrono::seconds> parse_timeout(std::string_view text) {
  constexpr std::string_view prefix = "Second-";
  if (!starts_with_ci(text, prefix)) return std::nullopt;
  text.remove_prefix(prefix.size());
  if (iequals(text, "infinite")) return kGenaLongestTimeout;
  if (!all_digits(text)) return std::nullopt;
  // More digits than the bound has are the bound, however many.
  if (text.size() > 9) return kGenaLongestTimeout;
  return std::min(std::chrono::seconds(*parse_u32(text)), kGenaLongestTimeout);
}

bool valid_sid(std::string_view sid) {
  return !sid.empty() && sid.size() <= kGenaMaxSidBytes &&
         std::all_of(sid.begin(), sid.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// The variables of <propertyset><property><Name>value</Name></property>...,
// elements by their local name; other elements, and text outside a variable,
// are left aside.
class PropertysetReader final : public XmlVisitor {
 public:
  void start(std::string_view name) override {
    ++depth_;
    if (depth_ == 1) {
      in_set_ = name == "propertyset";
    } else if (depth_ == 2) {
      in_property_ = in_set_ && name == "property";
    } else if (depth_ == 3 && in_property_) {
      name_ = name;
      value_.clear();
    }
  }
  void end(std::string_view) override {
    if (depth_ == 3 && in_property_) take_variable();
    if (depth_ > 0) --depth_;
  }
  void text(std::string_view text) override {
    if (depth_ != 3 || !in_property_) return;
    if (value_.size() + text.size() > kGenaMaxValueBytes) error_ = GenaError::bad_propertyset;
    else value_ += text;
  }
  GenaResult<std::vector<GenaProperty>> take() {
    if (error_) return *error_;
    if (properties_.empty()) return GenaError::bad_propertyset;
    return std::move(properties_);
  }

 private:
  void take_variable() {
    if (error_) return;
    if (name_.empty() || name_.size() > kGenaMaxValueBytes) {
      error_ = GenaError::bad_propertyset;
    } else if (properties_.size() == kGenaMaxProperties) {
      error_ = GenaError::too_many_properties;
    } else {
      properties_.push_back({std::string(name_), xml_value(value_)});
    }
  }

  int depth_ = 0;  // of the element open now, 1 for the root
  bool in_set_ = false, in_property_ = false;
  std::string_view name_;  // the variable open now (within the walked text)
  std::string value_;
  std::vector<GenaProperty> properties_;
  std::optional<GenaError> error_;
};

}  // namespace

std::string_view describe(GenaError error) {
  switch (error) {
    case GenaError::bad_http: return "not HTTP, or over a size limit";
    case GenaError::refused: return "refused";
    case GenaError::unknown_sid: return "the subscription is not known (412 Precondition Failed)";
    case GenaError::bad_sid: return "no valid SID";
    case GenaError::bad_timeout: return "no valid TIMEOUT";
    case GenaError::not_notify: return "not a NOTIFY";
    case GenaError::not_propchange: return "not NT upnp:event, NTS upnp:propchange";
    case GenaError::bad_seq: return "no valid SEQ";
    case GenaError::bad_propertyset: return "no property set, or an overlong name or value";
    case GenaError::too_many_properties: return "too many properties";
  }
  return "?";
}

std::string subscribe_request(const HttpUrl& publisher, const HttpUrl& callback, std::chrono::seconds timeout) {
  return fmt::format("SUBSCRIBE {} HTTP/1.1\r\nHOST: {}:{}\r\nCALLBACK: <http://{}:{}{}>\r\nNT: upnp:event\r\n"
                     "TIMEOUT: Second-{}\r\n\r\n",
                     publisher.path, publisher.host, publisher.port, callback.host, callback.port, callback.path,
                     timeout.count());
}

std::string renewal_request(const HttpUrl& publisher, std::string_view sid, std::chrono::seconds timeout) {
  return fmt::format("SUBSCRIBE {} HTTP/1.1\r\nHOST: {}:{}\r\nSID: {}\r\nTIMEOUT: Second-{}\r\n\r\n", publisher.path,
                     publisher.host, publisher.port, sid, timeout.count());
}

std::string unsubscribe_request(const HttpUrl& publisher, std::string_view sid) {
  return fmt::format("UNSUBSCRIBE {} HTTP/1.1\r\nHOST: {}:{}\r\nSID: {}\r\n\r\n", publisher.path, publisher.host,
                     publisher.port, sid);
}

GenaResult<GenaSubscription> read_subscribe_answer(const GenaAnswer& answer) {
  if (answer.result() == http::status::precondition_failed) return GenaError::unknown_sid;
  if (answer.result() != http::status::ok) return GenaError::refused;
  const std::string_view sid = answer["SID"];
  if (!valid_sid(sid)) return GenaError::bad_sid;
  const auto timeout = parse_timeout(answer["TIMEOUT"]);
  if (!timeout) return GenaError::bad_timeout;
  return GenaSubscription{std::string(sid), *timeout};
}

GenaResult<GenaEvent> read_notify(const GenaNotify& request) {
  if (request.method() != http::verb::notify) return GenaError::not_notify;
  if (!iequals(request["NT"], "upnp:event") || !iequals(request["NTS"], "upnp:propchange"))
    return GenaError::not_propchange;
  const std::string_view sid = request["SID"];
  if (!valid_sid(sid)) return GenaError::bad_sid;
  const auto seq = parse_u32(request["SEQ"]);
  if (!seq) return GenaError::bad_seq;
  PropertysetReader reader;
  walk_xml(request.body(), reader);
  auto properties = reader.take();
  if (!properties) return properties.error();
  return GenaEvent{std::string(sid), *seq, std::move(*properties)};
}

std::string notify_answer(http::status status) {
  const std::string_view reason = http::obsolete_reason(status);
  return fmt::format("HTTP/1.1 {} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", static_cast<unsigned>(status),
                     reason);
}

template <bool IsRequest>
GenaMessageReader<IsRequest>::GenaMessageReader() {
  parser_.header_limit(kGenaMaxHeaderBytes);
  if constexpr (IsRequest) parser_.body_limit(kGenaMaxBodyBytes);
  // A request is read whole; a response stops after its head.
  parser_.eager(IsRequest);
}

template <bool IsRequest>
typename GenaMessageReader<IsRequest>::State GenaMessageReader<IsRequest>::feed(std::string_view bytes) {
  if (state_ != State::need_more) return state_;
  pending_.append(bytes);
  const auto done = [this] { return IsRequest ? parser_.is_done() : parser_.is_header_done(); };
  while (!pending_.empty() && !done()) {
    boost::beast::error_code ec;
    const auto used = parser_.put(boost::asio::buffer(pending_), ec);
    pending_.erase(0, used);
    if (ec == http::error::need_more) break;
    if (ec) {
      state_ = State::failed;
      error_ = ec.message();
      return state_;
    }
    if (used == 0) break;
  }
  if (done()) {
    state_ = State::complete;
    pending_.clear();
  }
  return state_;
}

template <bool IsRequest>
typename GenaMessageReader<IsRequest>::State GenaMessageReader<IsRequest>::finish() {
  if (state_ != State::need_more) return state_;
  state_ = State::failed;
  error_ = "the connection closed before the message was complete";
  return state_;
}

template class GenaMessageReader<true>;
template class GenaMessageReader<false>;

}  // namespace natkeeper::upnp
