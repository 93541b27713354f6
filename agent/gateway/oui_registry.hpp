#pragma once
// The IEEE registry of MAC address blocks, as Debian's ieee-data ships it: who
// a LAN device's maker is, and whether it is one of Ring's.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/codecs/oui_csv.hpp"
#include "config/mac_address.hpp"

namespace natkeeper {

inline constexpr std::string_view kIeeeDataDirectory = "/usr/share/ieee-data";
// Each registry file is read up to this size (oui.csv: 3 MB in 2022).
inline constexpr std::size_t kMaxOuiFileBytes = 32 * 1024 * 1024;

class OuiRegistry {
 public:
  OuiRegistry() = default;  // empty: every vendor unknown
  explicit OuiRegistry(const std::vector<OuiAssignment>& assignments);
  // oui.csv, mam.csv, oui36.csv and iab.csv in `directory`; a missing or
  // unreadable file adds nothing (ieee-data is optional).
  static OuiRegistry load(const std::filesystem::path& directory = kIeeeDataDirectory);

  // The organisation of the longest registered block holding `mac`.
  std::optional<std::string_view> vendor(const MacAddress& mac) const;
  // Whether that block is registered to Ring LLC.
  bool is_ring(const MacAddress& mac) const;
  bool empty() const { return blocks_.empty(); }

 private:
  struct Block {
    std::uint64_t key;  // bits and prefix: see block_key()
    std::uint32_t organisation;
  };
  const Block* find(const MacAddress& mac) const;

  std::vector<Block> blocks_;  // sorted by key, one per key
  // Each organisation's name once, back to back (a string each would take
  // twice the memory): name i ends at name_ends_[i], where name i + 1 begins.
  std::string names_;
  std::vector<std::uint32_t> name_ends_;
  std::optional<std::uint32_t> ring_;
};

}  // namespace natkeeper
