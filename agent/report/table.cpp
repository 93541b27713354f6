#include "agent/report/table.hpp"

#include <fmt/format.h>

namespace natkeeper {
namespace {

std::string port_span(unsigned first, unsigned last) {
  return first == last ? std::to_string(first) : fmt::format("{}-{}", first, last);
}

bool continues(const TableLine& previous, const TableLine& next) {
  if (previous.proto != next.proto || previous.alike != next.alike || previous.group != next.group ||
      next.internal_port != previous.internal_port + previous.count ||
      previous.external.has_value() != next.external.has_value())
    return false;
  return !previous.external || (previous.external->address == next.external->address &&
                                next.external->port == previous.external->port + previous.count);
}

std::string padded(std::string_view text, std::size_t width) {
  return width == 0 ? std::string(text) : fmt::format("{:<{}}", text, width);
}

std::string layout(const std::vector<TableColumn>& columns, std::vector<std::string> cells) {
  constexpr std::size_t kFixed[] = {6, 12, 28};  // PROTO, INTERNAL, EXTERNAL
  std::string line;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const bool last = i + 1 == cells.size();
    const auto width = i < 3 ? kFixed[i] : columns[i - 3].width;
    line += last ? cells[i] : padded(cells[i], width) + " ";
  }
  return line + "\n";
}

}  // namespace

std::string TableLine::key(std::initializer_list<std::string_view> fields) {
  std::string joined;
  for (const auto field : fields) (joined += field) += '\x1f';
  return joined;
}

std::string render_table(const std::vector<TableColumn>& columns, const std::vector<TableLine>& lines) {
  std::vector<std::string> headings{"PROTO", "INTERNAL", "EXTERNAL"};
  for (const auto& column : columns) headings.emplace_back(column.heading);
  std::string out = layout(columns, headings);
  for (std::size_t i = 0; i < lines.size();) {
    std::size_t last = i;
    while (last + 1 < lines.size() && continues(lines[last], lines[last + 1])) ++last;
    const auto& first = lines[i];
    if (!first.group.empty() && (i == 0 || lines[i - 1].group != first.group)) out += fmt::format("For {}:\n", first.group);
    const auto& end = lines[last];
    std::vector<std::string> cells{first.proto, port_span(first.internal_port, end.internal_port + end.count - 1), "-"};
    if (first.external)
      cells[2] = fmt::format("{}:{}", first.external->address, port_span(first.external->port, end.external->port + end.count - 1));
    auto shown = first.cells;
    if (first.least) {
      const TableLine* least = &first;
      for (std::size_t k = i; k <= last; ++k)
        if (lines[k].least && lines[k].least->rank < least->least->rank) least = &lines[k];
      shown[first.least->cell] = least->cells[first.least->cell];
    }
    cells.insert(cells.end(), shown.begin(), shown.end());
    out += layout(columns, std::move(cells));
    i = last + 1;
  }
  return out;
}

}  // namespace natkeeper
