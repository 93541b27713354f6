#pragma once
// GENA, UPnP's eventing (UPnP Device Architecture 1.1 §4), as a pure codec:
// the SUBSCRIBE, renewal and UNSUBSCRIBE requests a control point sends, the
// answers it reads, and the NOTIFY requests a device sends to its callback.
// The HTTP framing is Boost.Beast's parser (also the callback server's, which
// reads requests from the LAN: http_response reads responses only), within
// hard limits. No I/O: bytes in, structs out.
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mappers/upnp/http_url.hpp"

namespace natkeeper::upnp {

namespace http = boost::beast::http;

// A NOTIFY's head and body, a SUBSCRIBE answer's head: an IGD's are a few
// hundred bytes.
inline constexpr std::size_t kGenaMaxHeaderBytes = 8 * 1024;
inline constexpr std::size_t kGenaMaxBodyBytes = 16 * 1024;
// Properties of one event, and the bytes of a name or value: miniupnpd sends
// five, the longest value about a hundred bytes.
inline constexpr std::size_t kGenaMaxProperties = 32;
inline constexpr std::size_t kGenaMaxValueBytes = 1024;
// miniupnpd's SIDs are 41 bytes ("uuid:" and a UUID).
inline constexpr std::size_t kGenaMaxSidBytes = 128;
// A granted duration longer than this, "infinite" too, counts as this.
inline constexpr std::chrono::seconds kGenaLongestTimeout{86400};

enum class GenaError {
  bad_http = 1,         // no HTTP message, or one over a limit
  refused,              // a SUBSCRIBE answered with another status than 200 or 412
  unknown_sid,          // 412 Precondition Failed: the device does not know the subscription
  bad_sid,              // no SID, or one that is empty, overlong or not printable
  bad_timeout,          // no TIMEOUT "Second-N" or "Second-infinite"
  not_notify,           // another method than NOTIFY
  not_propchange,       // NT is not upnp:event, or NTS not upnp:propchange
  bad_seq,              // SEQ missing or not a 32-bit number
  bad_propertyset,      // no <propertyset> with a property, or a name or value overlong
  too_many_properties,  // more than kGenaMaxProperties
};
std::string_view describe(GenaError error);

template <class T>
using GenaResult = boost::system::result<T, GenaError>;

// Request heads (GENA requests have no body) to the device's event URL
// `publisher`: a new subscription sending events to `callback`, its renewal,
// and its end.
std::string subscribe_request(const HttpUrl& publisher, const HttpUrl& callback, std::chrono::seconds timeout);
std::string renewal_request(const HttpUrl& publisher, std::string_view sid, std::chrono::seconds timeout);
std::string unsubscribe_request(const HttpUrl& publisher, std::string_view sid);

struct GenaSubscription {
  std::string sid;
  std::chrono::seconds timeout{0};  // as granted, at most kGenaLongestTimeout
};

using GenaAnswer = http::response<http::empty_body>;
// A SUBSCRIBE's or renewal's answer: the subscription it grants.
GenaResult<GenaSubscription> read_subscribe_answer(const GenaAnswer& answer);

struct GenaProperty {
  std::string name;  // the local name: <s:ExternalIPAddress> is ExternalIPAddress
  std::string value;
};

struct GenaEvent {
  std::string sid;
  std::uint32_t seq = 0;  // 0: the initial event of a subscription
  std::vector<GenaProperty> properties;
};

using GenaNotify = http::request<http::string_body>;
// A NOTIFY with NT upnp:event and NTS upnp:propchange, whose body is
// <e:propertyset><e:property><Name>value</Name></e:property>...; elements
// are taken by their local name.
GenaResult<GenaEvent> read_notify(const GenaNotify& request);

// The whole answer to a NOTIFY: 200 OK, 400 Bad Request or 412 Precondition Failed.
std::string notify_answer(http::status status);

// One HTTP message as it arrives, read by Beast's parser within the limits
// above: a request (a NOTIFY) to its end, a response (a SUBSCRIBE answer) to
// the end of its head, as its body is not wanted.
template <bool IsRequest>
class GenaMessageReader {
 public:
  using Body = std::conditional_t<IsRequest, http::string_body, http::empty_body>;
  enum class State { need_more, complete, failed };

  GenaMessageReader();
  // The next bytes received. Bytes after a complete message are ignored.
  State feed(std::string_view bytes);
  // The peer closed the connection: what is not complete now fails.
  State finish();

  State state() const { return state_; }
  // Once complete.
  const http::message<IsRequest, Body>& message() const { return parser_.get(); }
  // Why the state is `failed`, for people.
  const std::string& error() const { return error_; }

 private:
  http::parser<IsRequest, Body> parser_;
  std::string pending_;  // received, not yet taken by the parser
  State state_ = State::need_more;
  std::string error_;
};

using NotifyReader = GenaMessageReader<true>;
using SubscribeAnswerReader = GenaMessageReader<false>;

}  // namespace natkeeper::upnp
