#include "services/region/endpoint_change.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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
  if (!IsPlainText(actor)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be UTF-8 text without control characters"));
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

std::string ChangedEndpointFields(const Endpoint& before, const Endpoint& after) {
  std::vector<absl::string_view> fields;
  auto compare = [&](bool differ, absl::string_view name) {
    if (differ) fields.push_back(name);
  };
  compare(before.id != after.id, "id");
  compare(before.region != after.region, "region");
  compare(before.provider != after.provider, "provider");
  compare(before.base_url != after.base_url, "base_url");
  compare(before.deployment != after.deployment, "deployment");
  compare(before.residency != after.residency, "residency");
  compare(before.capabilities.zero_data_retention != after.capabilities.zero_data_retention,
          "capabilities.zero_data_retention");
  compare(before.capabilities.private_link != after.capabilities.private_link,
          "capabilities.private_link");
  compare(before.capabilities.cached != after.capabilities.cached, "capabilities.cached");
  compare(before.models != after.models, "models");
  compare(before.priority != after.priority, "priority");
  compare(before.weight != after.weight, "weight");
  compare(before.enabled != after.enabled, "enabled");
  return absl::StrJoin(fields, ",");
}

absl::Status CreationOverExisting(const Endpoint& stored, const Endpoint& wanted) {
  const std::string fields = ChangedEndpointFields(stored, wanted);
  if (fields.empty()) return absl::OkStatus();
  const absl::string_view first = absl::string_view(fields).substr(0, fields.find(','));
  return absl::AlreadyExistsError(
      absl::StrCat("endpoint ", Quoted(stored.id), " exists already, with a different ", first));
}

absl::Status UpdateOverChanged(const Endpoint& stored, const Endpoint* expected) {
  if (expected == nullptr) return absl::OkStatus();
  const std::string fields = ChangedEndpointFields(*expected, stored);
  if (fields.empty()) return absl::OkStatus();
  const absl::string_view first = absl::string_view(fields).substr(0, fields.find(','));
  return absl::FailedPreconditionError(absl::StrCat("endpoint ", Quoted(stored.id),
                                                    " changed since it was read: its ", first,
                                                    " is not the expected one; read it again"));
}

absl::StatusOr<ledger::LedgerRecord> EndpointUpdatedRecord(const Endpoint& before,
                                                           const Endpoint& after,
                                                           absl::string_view actor) {
  ASSIGN_OR_RETURN(ledger::LedgerRecord record, SavedRecord("updated", after, actor));
  record.metadata["fields"] = ChangedEndpointFields(before, after);
  return record;
}

absl::StatusOr<ledger::LedgerRecord> EndpointDeletedRecord(absl::string_view id,
                                                           absl::string_view actor) {
  return Record("deleted", id, actor);
}

}  // namespace policy::region
