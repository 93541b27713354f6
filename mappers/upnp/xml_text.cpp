#include "mappers/upnp/xml_text.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <optional>
#include <utility>

namespace natkeeper::upnp {
namespace {

constexpr std::array<std::pair<std::string_view, char>, 5> kEntities{
    {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}}};

// A Unicode scalar value as UTF-8.
void append_utf8(std::string& out, std::uint32_t code) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | code >> 6);
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | code >> 12);
    out += static_cast<char>(0x80 | (code >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | code >> 18);
    out += static_cast<char>(0x80 | (code >> 12 & 0x3F));
    out += static_cast<char>(0x80 | (code >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

// "&#38;" or "&#x26;" at the start of `text`: the code point and the
// reference's length. Only characters XML allows (no NUL, no surrogates).
std::optional<std::pair<std::uint32_t, std::size_t>> character_reference(std::string_view text) {
  if (!text.starts_with("&#")) return std::nullopt;
  const bool hex = text.size() > 2 && (text[2] == 'x' || text[2] == 'X');
  const auto digits_at = hex ? 3 : 2;
  const auto end = text.find(';', digits_at);
  // Eight digits are more than any code point needs.
  if (end == std::string_view::npos || end == static_cast<std::size_t>(digits_at) || end > digits_at + 8u)
    return std::nullopt;
  std::uint32_t code = 0;
  const auto digits = text.substr(digits_at, end - digits_at);
  const auto [stop, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), code, hex ? 16 : 10);
  if (ec != std::errc{} || stop != digits.data() + digits.size()) return std::nullopt;
  if (code == 0 || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return std::nullopt;
  return std::pair{code, end + 1};
}

}  // namespace

std::string decode_xml_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const auto amp = text.find('&');
    out.append(text.substr(0, amp));
    if (amp == std::string_view::npos) break;
    text.remove_prefix(amp);
    const auto entity = std::find_if(kEntities.begin(), kEntities.end(),
                                     [&](const auto& e) { return text.starts_with(e.first); });
    if (entity != kEntities.end()) {
      out += entity->second;
      text.remove_prefix(entity->first.size());
    } else if (const auto reference = character_reference(text)) {
      append_utf8(out, reference->first);
      text.remove_prefix(reference->second);
    } else {
      out += '&';
      text.remove_prefix(1);
    }
  }
  return out;
}

std::string escape_xml_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto entity = std::find_if(kEntities.begin(), kEntities.end(), [c](const auto& e) { return e.second == c; });
    if (entity == kEntities.end()) out += c;
    else out += entity->first;
  }
  return out;
}

std::string_view trim_xml_space(std::string_view text) {
  constexpr std::string_view space = " \t\r\n";
  const auto first = text.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

}  // namespace natkeeper::upnp
