#include "agent/report/devices.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace natkeeper {

nlohmann::json devices_json(std::span<const LanDevice> devices) {
  auto rows = nlohmann::json::array();
  for (const auto& device : devices)
    rows.push_back({{"address", device.address.to_string()},
                    {"mac", to_string(device.mac)},
                    {"vendor", device.vendor ? nlohmann::json(*device.vendor) : nlohmann::json(nullptr)},
                    {"ring", device.ring}});
  return {{"devices", std::move(rows)}};
}

std::string devices_text(std::span<const LanDevice> devices) {
  if (devices.empty())
    return "No devices in the neighbour table: the kernel lists only devices that talked with this host "
           "recently.\n";
  std::size_t address_width = std::string_view("ADDRESS").size();
  for (const auto& device : devices) address_width = std::max(address_width, device.address.to_string().size());
  constexpr std::size_t kMacWidth = 17;  // "54:e0:19:aa:bb:cc"
  std::string text = fmt::format("{:<{}}  {:<{}}  {:<4}  {}\n", "ADDRESS", address_width, "MAC", kMacWidth,
                                 "RING", "VENDOR");
  for (const auto& device : devices)
    text += fmt::format("{:<{}}  {:<{}}  {:<4}  {}\n", device.address.to_string(), address_width,
                        to_string(device.mac), kMacWidth, device.ring ? "yes" : "", device.vendor.value_or("-"));
  return text;
}

std::optional<std::string> ring_hint(std::span<const LanDevice> devices) {
  std::vector<std::string> named, flags;
  for (const auto& device : devices) {
    if (!device.ring) continue;
    named.push_back(fmt::format("{} at {}", to_string(device.mac), device.address.to_string()));
    flags.push_back(fmt::format("--device {}", to_string(device.mac)));
  }
  if (named.empty()) return std::nullopt;
  return fmt::format("{} on this network: {}. The Ring ports were mapped for this host; to map them for {} "
                     "instead: natkeeper --once {}",
                     named.size() == 1 ? "A Ring device is" : "Ring devices are", fmt::join(named, ", "),
                     named.size() == 1 ? "the device" : "the devices", fmt::join(flags, " "));
}

}  // namespace natkeeper
