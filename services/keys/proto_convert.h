#ifndef POLICY_SERVICES_KEYS_PROTO_CONVERT_H_
#define POLICY_SERVICES_KEYS_PROTO_CONVERT_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "policy/keys/v1/keys.pb.h"
#include "services/keys/key.h"
#include "services/keys/key_lifecycle.h"

// The one place where policy.keys.v1 messages meet the domain types. Requests are checked
// for unspecified or unknown enum values here (INVALID_ARGUMENT naming the field).
namespace policy::keys {

namespace pb = ::policy::keys::v1;

// `key` as a caller sees it at `now` (its state is StateAt(key, now)).
void ToProto(const KeyRecord& key, absl::Time now, pb::Key* out);
// `key` with the state a verification found.
void ToProto(const KeyRecord& key, KeyState state, pb::Key* out);

absl::StatusOr<CreateKeyParams> FromProto(const pb::CreateKeyRequest& request);
absl::StatusOr<RotateKeyParams> FromProto(const pb::RotateKeyRequest& request);
absl::StatusOr<ListKeysParams> FromProto(const pb::ListKeysRequest& request);
absl::StatusOr<Principal> PrincipalFromProto(const pb::Principal& principal,
                                             absl::string_view field);

void ToProto(const RotationReport& report, absl::Time now, pb::GetRotationReportResponse* out);
void ToProto(const InventoryReport& report, absl::Time now, pb::GetInventoryReportResponse* out);

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_PROTO_CONVERT_H_
