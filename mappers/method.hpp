#pragma once
#include <string_view>

namespace natkeeper {

// The port-mapping protocols, in order of preference when several answer.
enum class Method { pcp, natpmp, upnp };
// "pcp", "natpmp", "upnp": the method names of the CLI/JSON contract.
std::string_view to_string(Method method);

}  // namespace natkeeper
