#include "mappers/upnp/xml_walk.hpp"

#include "mappers/upnp/xml_text.hpp"

namespace natkeeper::upnp {
namespace {

std::string_view local_name(std::string_view name) {
  const auto colon = name.rfind(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

// Where the tag opened at `from` ends: its first '>' outside a quoted attribute value.
std::size_t tag_end(std::string_view xml, std::size_t from) {
  char quote = 0;
  for (auto i = from; i < xml.size(); ++i) {
    const char c = xml[i];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '>') {
      return i;
    }
  }
  return std::string_view::npos;
}

std::size_t past(std::string_view xml, std::size_t from, std::string_view end) {
  const auto at = xml.find(end, from);
  return at == std::string_view::npos ? xml.size() : at + end.size();
}

}  // namespace

void walk_xml(std::string_view xml, XmlVisitor& visitor) {
  std::size_t at = 0;
  while (at < xml.size()) {
    const auto open = xml.find('<', at);
    visitor.text(xml.substr(at, open == std::string_view::npos ? std::string_view::npos : open - at));
    if (open == std::string_view::npos) break;
    const auto markup = xml.substr(open);
    if (markup.starts_with("<!--")) {
      at = past(xml, open + 4, "-->");
    } else if (markup.starts_with("<![CDATA[")) {
      const auto end = xml.find("]]>", open + 9);
      visitor.text(xml.substr(open + 9, end == std::string_view::npos ? std::string_view::npos : end - open - 9));
      at = end == std::string_view::npos ? xml.size() : end + 3;
    } else if (markup.starts_with("<?") || markup.starts_with("<!")) {
      at = past(xml, open + 2, ">");  // the XML declaration, a DOCTYPE
    } else {
      const auto close = tag_end(xml, open + 1);
      if (close == std::string_view::npos) break;
      auto tag = xml.substr(open + 1, close - open - 1);
      const bool closing = tag.starts_with('/');
      const bool empty = !closing && tag.ends_with('/');
      if (closing) tag.remove_prefix(1);
      const auto name = local_name(tag.substr(0, tag.find_first_of(" \t\r\n/")));
      if (!closing) visitor.start(name);
      if (closing || empty) visitor.end(name);
      at = close + 1;
    }
  }
}

std::string xml_value(std::string_view text) { return decode_xml_text(trim_xml_space(text)); }

}  // namespace natkeeper::upnp
