#include "services/region/endpoint_change.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/status.h"
#include "common/text/caller_text.h"
#include "common/text/utf8.h"

namespace policy::region {
namespace {

absl::StatusOr<ledger::LedgerRecord> Record(absl::string_view change, absl::string_view id,
                                            absl::string_view actor) {
  ASSIGN_OR_RETURN(std::string request_id, ledger::NewRequestId("region:endpoint:"));
  return ledger::LedgerRecord{
      .action = "ENDPOINT_CHANGED",
      .actor = std::string(actor),
      .project = "",  // The organisation's ledger.
      .environment = "",
      .subject = "",
      .request_id = std::move(request_id),
      .metadata = {{"change", std::string(change)}, {"endpoint", std::string(id)}}};
}

absl::StatusOr<ledger::LedgerRecord> SavedRecord(absl::string_view change, const Endpoint& e,
                                                 absl::string_view actor) {
  ASSIGN_OR_RETURN(ledger::LedgerRecord record, Record(change, e.id, actor));
  record.metadata["region"] = e.region;
  record.metadata["residency"] = std::string(LedgerResidencyName(e.residency));
  record.metadata["enabled"] = e.enabled ? "true" : "false";
  return record;
}

}  // namespace

absl::Status ValidateActor(absl::string_view actor, absl::string_view field) {
  if (actor.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": required (who makes the change, for the audit ledger)"));
  }
  if (absl::Status s = CheckMaxBytes({{field, actor, kMaxActorBytes}}); !s.ok()) return s;
  if (!IsUtf8(actor) || actor.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": not UTF-8 text"));
  }
  return absl::OkStatus();
}

absl::string_view LedgerResidencyName(Residency r) {
  switch (r) {
    case Residency::kEu:
      return "RESIDENCY_EU";
    case Residency::kUs:
      return "RESIDENCY_US";
    case Residency::kApac:
      return "RESIDENCY_APAC";
    case Residency::kGlobal:
      return "RESIDENCY_GLOBAL";
  }
  return "RESIDENCY_UNSPECIFIED";
}

absl::StatusOr<ledger::LedgerRecord> EndpointCreatedRecord(const Endpoint& endpoint,
                                                           absl::string_view actor) {
  return SavedRecord("created", endpoint, actor);
}

absl::StatusOr<ledger::LedgerRecord> EndpointUpdatedRecord(const Endpoint& endpoint,
                                                           absl::string_view actor) {
  return SavedRecord("updated", endpoint, actor);
}

absl::StatusOr<ledger::LedgerRecord> EndpointDeletedRecord(absl::string_view id,
                                                           absl::string_view actor) {
  return Record("deleted", id, actor);
}

}  // namespace policy::region
