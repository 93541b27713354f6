#pragma once
// What the running service holds, as --status shows it: the service builds the
// JSON, the --status client prints it as JSON or as this text.
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>

#include "agent/report/report.hpp"

namespace natkeeper {

// A mapping the service keeps: the row of every JSON output, with its lease,
// its next renewal and when it was last proven from outside. A mapping not
// asked for yet is "pending".
nlohmann::json status_mapping_json(const MappingReport& mapping, std::string_view this_host,
                                   std::chrono::seconds renew_in, std::optional<std::chrono::seconds> verified_ago);

// The text --status prints for the service's status JSON.
std::string status_to_text(const nlohmann::json& status);

}  // namespace natkeeper
