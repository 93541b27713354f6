#include "mappers/upnp/http_response.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace natkeeper::upnp {
namespace {

// A chunk-size line with extensions; anything longer is not HTTP we want.
constexpr std::size_t kMaxChunkSizeLine = 1024;
constexpr std::size_t kMaxHeaders = 100;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

// Splits off the next line (without its LF and an optional CR before it).
std::string_view next_line(std::string_view& text) {
  const auto end = text.find('\n');
  auto line = text.substr(0, end);
  text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

template <class Int>
bool parse_whole(std::string_view text, Int& value, int base = 10) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  return ec == std::errc{} && end == text.data() + text.size();
}

// The end of the head (the blank line), and the terminator's length.
std::optional<std::pair<std::size_t, std::size_t>> find_head_end(std::string_view text, std::size_t from) {
  for (auto i = text.find('\n', from); i != std::string_view::npos; i = text.find('\n', i + 1)) {
    if (i + 1 < text.size() && text[i + 1] == '\n') return std::pair{i, std::size_t{2}};
    if (i + 2 < text.size() && text[i + 1] == '\r' && text[i + 2] == '\n') return std::pair{i, std::size_t{3}};
  }
  return std::nullopt;
}

}  // namespace

HttpResponseReader::State HttpResponseReader::fail(std::string why) {
  error_ = std::move(why);
  return state_ = State::failed;
}

std::optional<std::string_view> HttpResponseReader::header(std::string_view name) const {
  for (const auto& [key, value] : headers_)
    if (iequals(key, name)) return std::string_view(value);
  return std::nullopt;
}

HttpResponseReader::State HttpResponseReader::feed(std::string_view bytes) {
  if (state_ != State::need_more) return state_;
  if (phase_ == Phase::head) {
    // The head is kept whole until its blank line; nothing beyond the limit is stored.
    const auto search_from = pending_.size() > 2 ? pending_.size() - 2 : 0;
    const auto room = limits_.max_header_bytes + 3 - std::min(pending_.size(), limits_.max_header_bytes + 3);
    const auto taken = bytes.substr(0, room);
    pending_.append(taken);
    bytes.remove_prefix(taken.size());
    const auto end = find_head_end(pending_, search_from);
    if (!end) {
      if (pending_.size() > limits_.max_header_bytes)
        return fail(fmt::format("the HTTP header is larger than {} bytes", limits_.max_header_bytes));
      return state_;
    }
    if (end->first > limits_.max_header_bytes)
      return fail(fmt::format("the HTTP header is larger than {} bytes", limits_.max_header_bytes));
    const std::string head = pending_.substr(0, end->first + 1);
    std::string rest = pending_.substr(end->first + end->second);
    pending_.clear();
    if (!parse_head(head)) return state_;
    std::string_view rest_view = rest;
    while (state_ == State::need_more && !rest_view.empty() && step(rest_view)) {}
  }
  while (state_ == State::need_more && !bytes.empty() && step(bytes)) {}
  return state_;
}

HttpResponseReader::State HttpResponseReader::finish() {
  if (state_ != State::need_more) return state_;
  if (phase_ == Phase::body && framing_ == Framing::until_close) {
    phase_ = Phase::done;
    return state_ = State::complete;
  }
  return fail("the connection closed before the HTTP response was complete");
}

bool HttpResponseReader::parse_head(std::string_view head) {
  const auto status_line = next_line(head);
  // "HTTP/1.1 200 OK": the version, one space, three digits, then a reason or nothing.
  if (status_line.size() < 12 || !status_line.starts_with("HTTP/1.") || status_line[8] != ' ' ||
      (status_line.size() > 12 && status_line[12] != ' ') || !parse_whole(status_line.substr(9, 3), status_) ||
      status_ < 100) {
    fail("not an HTTP/1.x status line");
    return false;
  }
  while (!head.empty()) {
    const auto line = next_line(head);
    if (line.empty()) continue;
    const auto colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos || line.front() == ' ' || line.front() == '\t' ||
        line.substr(0, colon).find_first_of(" \t") != std::string_view::npos) {
      fail("a malformed HTTP header line");
      return false;
    }
    if (headers_.size() == kMaxHeaders) {
      fail(fmt::format("more than {} HTTP header lines", kMaxHeaders));
      return false;
    }
    headers_.emplace_back(std::string(line.substr(0, colon)), std::string(trim(line.substr(colon + 1))));
  }
  phase_ = Phase::body;
  if (status_ < 200) {
    fail(fmt::format("an unexpected interim HTTP response {}", status_));
    return false;
  }
  if (status_ == 204 || status_ == 304) {
    phase_ = Phase::done;
    state_ = State::complete;
    return true;
  }
  if (const auto coding = header("Transfer-Encoding")) {
    if (!iequals(*coding, "chunked")) {
      fail(fmt::format("an unsupported HTTP transfer coding \"{}\"", *coding));
      return false;
    }
    framing_ = Framing::chunked;
    phase_ = Phase::chunk_size;
    return true;
  }
  std::optional<std::size_t> length;
  for (const auto& [key, value] : headers_) {
    if (!iequals(key, "Content-Length")) continue;
    std::size_t parsed = 0;
    if (!parse_whole(std::string_view(value), parsed) || (length && *length != parsed)) {
      fail("a malformed or contradictory HTTP Content-Length");
      return false;
    }
    length = parsed;
  }
  if (!length) return true;  // until the connection closes
  if (*length > limits_.max_body_bytes) {
    fail(fmt::format("an HTTP body of {} bytes, more than the limit of {}", *length, limits_.max_body_bytes));
    return false;
  }
  framing_ = Framing::length;
  remaining_ = *length;
  if (remaining_ == 0) {
    phase_ = Phase::done;
    state_ = State::complete;
  }
  return true;
}

bool HttpResponseReader::take_line(std::string_view& input, std::string& line, std::size_t max,
                                   std::string_view what) {
  const auto end = input.find('\n');
  const auto part = input.substr(0, end == std::string_view::npos ? input.size() : end + 1);
  if (pending_.size() + part.size() > max) {
    fail(fmt::format("an HTTP {} line longer than {} bytes", what, max));
    return false;
  }
  pending_.append(part);
  input.remove_prefix(part.size());
  if (end == std::string_view::npos) return false;
  line.swap(pending_);
  pending_.clear();
  line.pop_back();
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

bool HttpResponseReader::append_body(std::string_view bytes) {
  if (body_.size() + bytes.size() > limits_.max_body_bytes) {
    fail(fmt::format("an HTTP body larger than the limit of {} bytes", limits_.max_body_bytes));
    return false;
  }
  body_.append(bytes);
  return true;
}

bool HttpResponseReader::step(std::string_view& input) {
  std::string line;
  switch (phase_) {
    case Phase::body:
      if (framing_ == Framing::until_close) {
        const bool kept = append_body(input);
        input = {};
        return kept;
      }
      [[fallthrough]];
    case Phase::chunk_data: {
      const auto part = input.substr(0, remaining_);
      if (!append_body(part)) return false;
      input.remove_prefix(part.size());
      remaining_ -= part.size();
      if (remaining_ > 0) return true;
      if (framing_ == Framing::length) {
        phase_ = Phase::done;
        state_ = State::complete;
      } else {
        phase_ = Phase::chunk_end;
      }
      return true;
    }
    case Phase::chunk_size: {
      if (!take_line(input, line, kMaxChunkSizeLine, "chunk size")) return false;
      const auto size_text = std::string_view(line).substr(0, line.find_first_of("; \t"));
      std::size_t size = 0;
      if (!parse_whole(size_text, size, 16)) {
        fail("a malformed HTTP chunk size");
        return false;
      }
      if (size > limits_.max_body_bytes - body_.size()) {
        fail(fmt::format("an HTTP body larger than the limit of {} bytes", limits_.max_body_bytes));
        return false;
      }
      remaining_ = size;
      phase_ = size == 0 ? Phase::trailers : Phase::chunk_data;
      return true;
    }
    case Phase::chunk_end:
      if (!take_line(input, line, 2, "chunk end")) return false;
      if (!line.empty()) {
        fail("an HTTP chunk longer than its size");
        return false;
      }
      phase_ = Phase::chunk_size;
      return true;
    case Phase::trailers:
      if (!take_line(input, line, limits_.max_header_bytes - std::min(trailer_bytes_, limits_.max_header_bytes),
                     "trailer"))
        return false;
      trailer_bytes_ += line.size() + 2;
      if (line.empty()) {
        phase_ = Phase::done;
        state_ = State::complete;
      }
      return true;
    case Phase::head:
    case Phase::done:
      break;
  }
  input = {};
  return false;
}

}  // namespace natkeeper::upnp
