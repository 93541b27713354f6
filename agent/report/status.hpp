#pragma once
// What the running service holds, as --status shows it: the service sends the
// status in parts as JSON, the --status client prints them as JSON or as text.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/report/report.hpp"
#include "agent/report/table.hpp"

namespace natkeeper {

// A mapping the service keeps: the row of every JSON output, with its lease,
// its next renewal and when it was last proven from outside. A mapping not
// asked for yet is "pending". The row stands for one port ("count": 1).
nlohmann::json status_mapping_json(const MappingReport& mapping, std::string_view this_host,
                                   const std::optional<asio::ip::address>& gateway_external,
                                   std::chrono::seconds renew_in, std::optional<std::chrono::seconds> verified_ago);

// Folds the mappings, in plan order, into the rows of --status: a mapping that
// continues the run before it (next internal port, next external port or none
// on both, all else alike) joins its row, which then stands for "count" ports
// from its internal_port (and external_port); the row shows the run's soonest
// renewal and its oldest proof. Holds one run, however many mappings pass.
class StatusRows {
 public:
  StatusRows(std::string this_host, std::optional<asio::ip::address> gateway_external)
      : this_host_(std::move(this_host)), gateway_external_(gateway_external) {}
  // The row of the run `mapping` ends, if it ends one.
  std::optional<nlohmann::json> add(const MappingReport& mapping, std::chrono::seconds renew_in,
                                    std::optional<std::chrono::seconds> verified_ago);
  // The row of the last run, if any; then starts afresh.
  std::optional<nlohmann::json> finish();

 private:
  bool continues(const MappingReport& mapping, std::optional<std::chrono::seconds> verified_ago) const;

  std::string this_host_;
  std::optional<asio::ip::address> gateway_external_;
  std::optional<MappingReport> first_;
  std::uint32_t count_ = 0;
  std::chrono::seconds soonest_renewal_{};
  std::optional<std::chrono::seconds> oldest_proof_;
};

// The status in parts: its head (all but the mappings) first, then each row of
// mappings, then nothing. The service sends each part as one line of JSON.
using StatusParts = std::function<std::optional<nlohmann::json>()>;

// The whole status document: the head with its rows as "mappings".
nlohmann::json whole_status(const StatusParts& parts);

// --status --json as the parts arrive: one JSON document, the head's members
// first and "mappings" last, each piece printed as soon as its part is read.
class StatusJsonPrinter {
 public:
  std::string head(const nlohmann::json& head);
  std::string row(const nlohmann::json& row);
  std::string finish() const;

 private:
  bool any_row_ = false;
};

// --status as text: the head's lines at once; the table once every row is in
// (it aligns and folds rows, and rows are runs: far fewer than the mappings).
class StatusTextPrinter {
 public:
  std::string head(const nlohmann::json& head);
  void row(const nlohmann::json& row);
  std::string finish();

 private:
  nlohmann::json summary_;
  std::vector<TableLine> lines_;
  bool any_device_ = false;
};

// The text --status prints for the whole status document.
std::string status_to_text(const nlohmann::json& status);

}  // namespace natkeeper
