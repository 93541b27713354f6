#pragma once
// The IEEE registry's CSV files as Debian's ieee-data ships them (oui.csv,
// mam.csv, oui36.csv, iab.csv), as a pure codec: text in, MAC address blocks
// and their organisations out.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace natkeeper {

struct OuiAssignment {
  std::uint64_t prefix = 0;  // the block's first `bits` bits of a MAC
  unsigned bits = 24;        // 24 (MA-L), 28 (MA-M) or 36 (MA-S, IAB)
  std::string organisation;
};

// The assignments of one of the registry's CSV files (header "Registry,
// Assignment,Organization Name,Organization Address"; RFC 4180 quoting, so a
// field may hold commas, quotes and line breaks). Rows that are no assignment
// are skipped. Pure.
std::vector<OuiAssignment> parse_oui_csv(std::string_view text);

}  // namespace natkeeper
