#pragma once
// Case-insensitive ASCII comparisons: HTTP-style header names, methods and
// URL schemes are matched without regard to case.
#include <algorithm>
#include <cctype>
#include <string_view>

namespace natkeeper::upnp {

inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

inline bool starts_with_ci(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

}  // namespace natkeeper::upnp
