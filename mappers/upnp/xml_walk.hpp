#pragma once
// XML read as leniently as libminiupnpc reads it, for the few documents UPnP
// devices send (descriptions, event property sets): a pure text walk, no I/O.
#include <string>
#include <string_view>

namespace natkeeper::upnp {

// What a walk meets, in document order.
class XmlVisitor {
 public:
  // An element opens (an empty one opens and ends at once), by its local
  // name: "e:property" is "property".
  virtual void start(std::string_view name) = 0;
  virtual void end(std::string_view name) = 0;
  // Text between tags, as written (see xml_value); CDATA's contents too.
  virtual void text(std::string_view text) = 0;

 protected:
  ~XmlVisitor() = default;
};

// Walks `xml`: nothing validated (closing tags need not match), comments, the
// XML declaration and DOCTYPEs skipped; it stops at a tag that never closes.
void walk_xml(std::string_view xml, XmlVisitor& visitor);

// What a text says: trimmed of XML white space, references decoded (decode_xml_text).
std::string xml_value(std::string_view text);

}  // namespace natkeeper::upnp
