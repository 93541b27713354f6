#include "agent/codecs/oui_csv.hpp"

#include <array>
#include <charconv>
#include <optional>

namespace natkeeper {
namespace {

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(kSpace) - first + 1);
}

// The block size of each registry the files name.
std::optional<unsigned> registry_bits(std::string_view registry) {
  if (registry == "MA-L") return 24;
  if (registry == "MA-M") return 28;
  if (registry == "MA-S" || registry == "IAB") return 36;
  return std::nullopt;
}

// The first fields of the record at `at` (registry, assignment, organisation);
// leaves `at` at the next record. False when the text ends inside a quoted
// field: the record is cut.
using Fields = std::array<std::string, 3>;
bool read_record(std::string_view text, std::size_t& at, Fields& fields) {
  for (auto& field : fields) field.clear();
  std::size_t index = 0;
  bool quoted = false, field_start = true;
  while (at < text.size()) {
    const char c = text[at++];
    std::string* out = index < fields.size() ? &fields[index] : nullptr;
    if (quoted) {
      if (c == '"') {
        if (at == text.size() || text[at] != '"') {
          quoted = false;
          continue;
        }
        ++at;  // "" stands for one quote
      }
      if (out) *out += c;
      continue;
    }
    if (c == '"' && field_start) {
      quoted = true;
      field_start = false;
      continue;
    }
    field_start = c == ',';
    if (c == ',') ++index;
    else if (c == '\n') return true;
    else if (out) *out += c;
  }
  return !quoted;
}

std::optional<OuiAssignment> assignment_of(const Fields& fields) {
  const auto bits = registry_bits(trim(fields[0]));
  const auto digits = trim(fields[1]);
  const auto organisation = trim(fields[2]);
  if (!bits || digits.size() != *bits / 4 || organisation.empty()) return std::nullopt;
  OuiAssignment assignment;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), assignment.prefix, 16);
  if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
  assignment.bits = *bits;
  assignment.organisation = organisation;
  return assignment;
}

}  // namespace

std::vector<OuiAssignment> parse_oui_csv(std::string_view text) {
  std::vector<OuiAssignment> assignments;
  Fields fields;
  for (std::size_t at = 0; at < text.size();) {
    if (!read_record(text, at, fields)) break;
    if (auto assignment = assignment_of(fields)) assignments.push_back(std::move(*assignment));
  }
  return assignments;
}

}  // namespace natkeeper
