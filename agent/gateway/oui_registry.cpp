#include "agent/gateway/oui_registry.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <iterator>
#include <unordered_map>

namespace natkeeper {
namespace {

constexpr std::string_view kRingOrganisation = "Ring LLC";
constexpr unsigned kMacBits = 48;
constexpr std::array kBlockBits{36u, 28u, 24u};  // longest first

std::uint64_t block_key(unsigned bits, std::uint64_t prefix) { return std::uint64_t{bits} << kMacBits | prefix; }

std::uint64_t mac_number(const MacAddress& mac) {
  std::uint64_t number = 0;
  for (const auto byte : mac.bytes) number = number << 8 | byte;
  return number;
}

// The file's text, or nothing when it cannot be read.
std::string read_bounded(const std::filesystem::path& file) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) return {};
  std::ifstream in(file, std::ios::binary);
  std::string text(std::min<std::uintmax_t>(size, kMaxOuiFileBytes), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

}  // namespace

OuiRegistry::OuiRegistry(const std::vector<OuiAssignment>& assignments) {
  std::unordered_map<std::string_view, std::uint32_t> known;  // views of the caller's names
  blocks_.reserve(assignments.size());
  for (const auto& assignment : assignments) {
    const auto [entry, added] = known.try_emplace(assignment.organisation,
                                                  static_cast<std::uint32_t>(name_ends_.size()));
    if (added) {
      names_ += assignment.organisation;
      name_ends_.push_back(static_cast<std::uint32_t>(names_.size()));
    }
    blocks_.push_back({block_key(assignment.bits, assignment.prefix), entry->second});
  }
  names_.shrink_to_fit();
  name_ends_.shrink_to_fit();
  std::stable_sort(blocks_.begin(), blocks_.end(), [](const Block& a, const Block& b) { return a.key < b.key; });
  // The registry assigns each block once; should a file repeat one, its first row counts.
  blocks_.erase(std::unique(blocks_.begin(), blocks_.end(), [](const Block& a, const Block& b) { return a.key == b.key; }),
                blocks_.end());
  blocks_.shrink_to_fit();
  if (const auto ring = known.find(kRingOrganisation); ring != known.end()) ring_ = ring->second;
}

OuiRegistry OuiRegistry::load(const std::filesystem::path& directory) {
  std::vector<OuiAssignment> assignments;
  for (const char* file : {"oui.csv", "mam.csv", "oui36.csv", "iab.csv"}) {
    auto some = parse_oui_csv(read_bounded(directory / file));
    assignments.reserve(assignments.size() + some.size());  // exactly: no doubling of 46,000 rows
    std::move(some.begin(), some.end(), std::back_inserter(assignments));
  }
  return OuiRegistry(assignments);
}

const OuiRegistry::Block* OuiRegistry::find(const MacAddress& mac) const {
  for (const unsigned bits : kBlockBits) {
    const auto key = block_key(bits, mac_number(mac) >> (kMacBits - bits));
    const auto block = std::lower_bound(blocks_.begin(), blocks_.end(), key,
                                        [](const Block& b, std::uint64_t k) { return b.key < k; });
    if (block != blocks_.end() && block->key == key) return &*block;
  }
  return nullptr;
}

std::optional<std::string_view> OuiRegistry::vendor(const MacAddress& mac) const {
  const auto* block = find(mac);
  if (!block) return std::nullopt;
  const auto begin = block->organisation == 0 ? 0 : name_ends_[block->organisation - 1];
  return std::string_view(names_).substr(begin, name_ends_[block->organisation] - begin);
}

bool OuiRegistry::is_ring(const MacAddress& mac) const {
  const auto* block = find(mac);
  return block && ring_ && block->organisation == *ring_;
}

}  // namespace natkeeper
