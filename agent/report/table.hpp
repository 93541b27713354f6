#pragma once
// The one table of mappings that --once and --status print: consecutive ports
// that fare alike share a row, so a profile of a hundred ports reads at a glance.
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace natkeeper {

struct TableLine {
  std::string proto;
  std::uint16_t internal_port = 0;
  // The line stands for this many consecutive ports from internal_port (and
  // from the external port): a run the service already folded.
  std::uint16_t count = 1;
  struct External {
    std::string address;
    std::uint16_t port = 0;
  };
  std::optional<External> external;
  // Lines share a row when their protocol, this key and the external address
  // are equal and both ports continue where the previous line's end.
  std::string alike;
  // The key of lines alike in all these fields.
  static std::string key(std::initializer_list<std::string_view> fields);
  // The cells after PROTO, INTERNAL and EXTERNAL, as the row's first line shows them.
  std::vector<std::string> cells;
  // Where set, the row shows this cell from its line of least `rank` (the
  // soonest renewal of a run) instead of its first line's.
  struct Least {
    std::size_t cell = 0;
    long long rank = 0;
  };
  std::optional<Least> least;
  // Whom the mapping is for ("doorbell 10.77.0.50"): a heading above each run
  // of lines of one group; empty: no heading.
  std::string group;
};

struct TableColumn {
  std::string_view heading;
  std::size_t width = 0;  // padded to this; the last column is not padded
};

// The heading and one row per run of alike lines. `columns` are those after
// PROTO, INTERNAL and EXTERNAL.
std::string render_table(const std::vector<TableColumn>& columns, const std::vector<TableLine>& lines);

}  // namespace natkeeper
