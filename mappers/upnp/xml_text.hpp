#pragma once
// XML character data as UPnP's descriptions and SOAP messages carry it: a pure
// text codec, no I/O.
#include <string>
#include <string_view>

namespace natkeeper::upnp {

// The five predefined entities and numeric character references (&#38;,
// &#x26;) decoded; anything else, a malformed or cut-off reference too, is
// kept as written.
std::string decode_xml_text(std::string_view text);

// `text` without the XML white space (space, tab, CR, LF) around it.
std::string_view trim_xml_space(std::string_view text);

// `text` as character data or an attribute value: & < > " ' escaped.
std::string escape_xml_text(std::string_view text);

}  // namespace natkeeper::upnp
