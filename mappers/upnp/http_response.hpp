#pragma once
// An HTTP/1.x response reader with hard limits, as a pure codec (bytes in, no
// I/O): natkeeper reads UPnP descriptions and SOAP answers with it, so a LAN
// device that answers with an endless header, a huge body or a bogus chunk
// size costs at most the limits, and only the bytes reach an XML parser.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace natkeeper::upnp {

struct HttpResponseLimits {
  std::size_t max_header_bytes = 16 * 1024;
  // Real IGD root descriptions are a few KiB.
  std::size_t max_body_bytes = 256 * 1024;
};

class HttpResponseReader {
 public:
  enum class State { need_more, complete, failed };

  explicit HttpResponseReader(HttpResponseLimits limits = {}) : limits_(limits) {}

  // The next bytes received. Bytes after a complete response are ignored.
  State feed(std::string_view bytes);
  // The peer closed the connection: completes a body that runs until the close.
  State finish();

  State state() const { return state_; }
  // Set once the status line has been read.
  int status() const { return status_; }
  // Case-insensitive; the first occurrence.
  std::optional<std::string_view> header(std::string_view name) const;
  const std::string& body() const { return body_; }
  // Why the state is `failed`, for people.
  const std::string& error() const { return error_; }

 private:
  enum class Framing { until_close, length, chunked };
  enum class Phase { head, body, chunk_size, chunk_data, chunk_end, trailers, done };

  State fail(std::string why);
  bool parse_head(std::string_view head);
  // Consumes from `input` what the current phase needs; false when it wants more.
  bool step(std::string_view& input);
  bool take_line(std::string_view& input, std::string& line, std::size_t max, std::string_view what);
  bool append_body(std::string_view bytes);

  HttpResponseLimits limits_;
  State state_ = State::need_more;
  Phase phase_ = Phase::head;
  Framing framing_ = Framing::until_close;
  std::string pending_;  // an incomplete head or line
  std::size_t remaining_ = 0;  // of the body (length) or of the current chunk
  std::size_t trailer_bytes_ = 0;
  int status_ = 0;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::string body_;
  std::string error_;
};

}  // namespace natkeeper::upnp
