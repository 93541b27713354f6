#pragma once
#include <array>
#include <cstdint>
#include <filesystem>

#include "mappers/result.hpp"

namespace natkeeper {

// The directory systemd names in `variable` (StateDirectory= and the like set
// $STATE_DIRECTORY...; the first when there are several), else `fallback`.
std::filesystem::path directory_from_systemd(const char* variable, std::filesystem::path fallback);

// Where natkeeper keeps what must outlive one run: systemd's $STATE_DIRECTORY
// when set (StateDirectory=), else /var/lib/natkeeper.
std::filesystem::path state_directory();

using HostKey = std::array<std::uint8_t, 32>;

// A random secret of this host, created on first use (mode 0600). PCP nonces
// are derived from it, so a later run (a renewal after a restart, --delete)
// proves ownership of the mappings an earlier run made, while nobody without
// the key can predict a nonce.
Result<HostKey> load_or_create_host_key(const std::filesystem::path& directory);

}  // namespace natkeeper
