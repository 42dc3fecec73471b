#ifndef POLICY_SERVICES_REGION_ENDPOINT_CHANGE_H_
#define POLICY_SERVICES_REGION_ENDPOINT_CHANGE_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/ledger/ledger_record.h"
#include "services/region/endpoint.h"

// The registry's changes as the organisation's audit ledger records them: who made them and
// what each record holds. The stores write these records with the changes
// (endpoint_store.h).
namespace policy::region {

inline constexpr size_t kMaxActorBytes = 128;

// INVALID_ARGUMENT naming `field` unless `actor` (who makes a change, as the ledger names
// them) is 1..kMaxActorBytes bytes of UTF-8 without NUL, which the audit ledger takes.
absl::Status ValidateActor(absl::string_view actor, absl::string_view field = "actor");

// How the ledger names a residency: policy.region.v1.Residency's value names ("RESIDENCY_EU",
// "RESIDENCY_US", "RESIDENCY_APAC", "RESIDENCY_GLOBAL"), as the ledger has always held them.
absl::string_view LedgerResidencyName(Residency r);

// The fields in which `after` differs from `before`, as policy.region.v1.Endpoint names them
// ("capabilities.zero_data_retention", "models", ...), in the proto's order and joined by
// commas; empty when they are equal. An update that changes nothing is no change: the stores
// write nothing for it, and record nothing, so that a retried update is recorded once.
std::string ChangedEndpointFields(const Endpoint& before, const Endpoint& after);

// A creation of `wanted` where `stored` has its id already: OK when they are equal (a retried
// creation, which changes and records nothing), else ALREADY_EXISTS naming the first field in
// which they differ.
absl::Status CreationOverExisting(const Endpoint& stored, const Endpoint& wanted);

// An update of `stored` made by a caller who read `expected` before changing it: OK when
// `expected` is null or equal to `stored`, else FAILED_PRECONDITION naming the first field in
// which they differ (the endpoint changed since it was read).
absl::Status UpdateOverChanged(const Endpoint& stored, const Endpoint* expected);

// The records of the three changes, in the organisation's ledger (no project, no subject),
// action ENDPOINT_CHANGED by `actor`, with metadata "change" ("created", "updated",
// "deleted") and "endpoint" (its id); a creation and an update add the endpoint's "region",
// "residency" (LedgerResidencyName) and "enabled" ("true" or "false") as saved, and an
// update "fields": the changed fields' names (ChangedEndpointFields), never their values.
// Each call draws a new request id, "region:endpoint:" and 32 hex digits from OpenSSL's
// random generator: a record keeps it for good, so that the ledger records it once however
// often it is delivered. INTERNAL when the generator fails.
absl::StatusOr<ledger::LedgerRecord> EndpointCreatedRecord(const Endpoint& endpoint,
                                                           absl::string_view actor);
absl::StatusOr<ledger::LedgerRecord> EndpointUpdatedRecord(const Endpoint& before,
                                                           const Endpoint& after,
                                                           absl::string_view actor);
absl::StatusOr<ledger::LedgerRecord> EndpointDeletedRecord(absl::string_view id,
                                                           absl::string_view actor);

}  // namespace policy::region

#endif  // POLICY_SERVICES_REGION_ENDPOINT_CHANGE_H_
