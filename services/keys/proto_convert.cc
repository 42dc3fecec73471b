#include "services/keys/proto_convert.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/proto/well_known.h"
#include "common/status/status.h"

namespace policy::keys {
namespace {

using proto::DurationFromProto;
using proto::SetDuration;
using proto::SetTime;
using proto::TimeFromProto;

absl::StatusOr<KeyKind> KindFromProto(pb::KeyKind kind, absl::string_view field) {
  switch (kind) {
    case pb::KEY_KIND_PROJECT:
      return KeyKind::kProject;
    case pb::KEY_KIND_SERVICE_ACCOUNT:
      return KeyKind::kServiceAccount;
    case pb::KEY_KIND_ADMIN:
      return KeyKind::kAdmin;
    default:
      return absl::InvalidArgumentError(absl::StrCat(field,
                                                     " must be a KeyKind other than "
                                                     "KEY_KIND_UNSPECIFIED"));
  }
}

absl::StatusOr<Environment> EnvironmentFromProto(pb::Environment e) {
  switch (e) {
    case pb::ENVIRONMENT_PRODUCTION:
      return Environment::kProduction;
    case pb::ENVIRONMENT_STAGING:
      return Environment::kStaging;
    case pb::ENVIRONMENT_DEVELOPMENT:
      return Environment::kDevelopment;
    case pb::ENVIRONMENT_SANDBOX:
      return Environment::kSandbox;
    default:
      return absl::InvalidArgumentError(
          "environment must be an Environment other than ENVIRONMENT_UNSPECIFIED");
  }
}

absl::StatusOr<KeyState> StateFromProto(pb::KeyState state) {
  switch (state) {
    case pb::KEY_STATE_ACTIVE:
      return KeyState::kActive;
    case pb::KEY_STATE_ROTATING:
      return KeyState::kRotating;
    case pb::KEY_STATE_REVOKED:
      return KeyState::kRevoked;
    case pb::KEY_STATE_EXPIRED:
      return KeyState::kExpired;
    default:
      return absl::InvalidArgumentError("state is not a known KeyState");
  }
}

pb::KeyKind KindToProto(KeyKind kind) {
  switch (kind) {
    case KeyKind::kProject:
      return pb::KEY_KIND_PROJECT;
    case KeyKind::kServiceAccount:
      return pb::KEY_KIND_SERVICE_ACCOUNT;
    case KeyKind::kAdmin:
      return pb::KEY_KIND_ADMIN;
  }
  return pb::KEY_KIND_UNSPECIFIED;
}

pb::Environment EnvironmentToProto(Environment e) {
  switch (e) {
    case Environment::kProduction:
      return pb::ENVIRONMENT_PRODUCTION;
    case Environment::kStaging:
      return pb::ENVIRONMENT_STAGING;
    case Environment::kDevelopment:
      return pb::ENVIRONMENT_DEVELOPMENT;
    case Environment::kSandbox:
      return pb::ENVIRONMENT_SANDBOX;
  }
  return pb::ENVIRONMENT_UNSPECIFIED;
}

pb::KeyState StateToProto(KeyState state) {
  switch (state) {
    case KeyState::kActive:
      return pb::KEY_STATE_ACTIVE;
    case KeyState::kRotating:
      return pb::KEY_STATE_ROTATING;
    case KeyState::kRevoked:
      return pb::KEY_STATE_REVOKED;
    case KeyState::kExpired:
      return pb::KEY_STATE_EXPIRED;
  }
  return pb::KEY_STATE_UNSPECIFIED;
}

}  // namespace

absl::StatusOr<Principal> PrincipalFromProto(const pb::Principal& principal,
                                             absl::string_view field) {
  Principal out;
  switch (principal.type()) {
    case pb::PRINCIPAL_TYPE_MEMBER:
      out.type = PrincipalType::kMember;
      break;
    case pb::PRINCIPAL_TYPE_SERVICE_ACCOUNT:
      out.type = PrincipalType::kServiceAccount;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(field,
                                                     ".type must be PRINCIPAL_TYPE_MEMBER or "
                                                     "PRINCIPAL_TYPE_SERVICE_ACCOUNT"));
  }
  out.id = principal.id();
  return out;
}

void ToProto(const KeyRecord& key, absl::Time now, pb::Key* out) {
  ToProto(key, StateAt(key, now), out);
}

void ToProto(const KeyRecord& key, KeyState state, pb::Key* out) {
  out->set_key_id(key.key_id);
  out->set_kind(KindToProto(key.kind));
  out->mutable_owner()->set_type(key.owner.type == PrincipalType::kMember
                                     ? pb::PRINCIPAL_TYPE_MEMBER
                                     : pb::PRINCIPAL_TYPE_SERVICE_ACCOUNT);
  out->mutable_owner()->set_id(key.owner.id);
  out->set_project(key.project);
  out->set_environment(EnvironmentToProto(key.environment));
  for (const std::string& scope : key.scopes) out->add_scopes(scope);
  out->set_state(StateToProto(state));
  out->set_redacted(key.redacted);
  SetTime(key.created_at, out->mutable_create_time());
  SetTime(key.expires_at, out->mutable_expire_time());
  if (key.overlap_ends_at.has_value())
    SetTime(*key.overlap_ends_at, out->mutable_overlap_end_time());
  out->set_rotated_from(key.rotated_from);
  out->set_rotated_to(key.rotated_to);
  if (key.revoked_at.has_value()) {
    SetTime(*key.revoked_at, out->mutable_revoke_time());
    out->set_revocation_reason(key.revocation_reason);
  } else if (state == KeyState::kRevoked && key.overlap_ends_at.has_value()) {
    // The overlap ended and the sweep has not rewritten the row yet: show what it will write.
    SetTime(*key.overlap_ends_at, out->mutable_revoke_time());
    out->set_revocation_reason(std::string(kReasonOverlapEnded));
  }
}

absl::StatusOr<CreateKeyParams> FromProto(const pb::CreateKeyRequest& request) {
  CreateKeyParams params;
  params.request_id = request.request_id();
  ASSIGN_OR_RETURN(params.kind, KindFromProto(request.kind(), "kind"));
  if (!request.has_owner()) return absl::InvalidArgumentError("owner is required");
  ASSIGN_OR_RETURN(params.owner, PrincipalFromProto(request.owner(), "owner"));
  params.project = request.project();
  ASSIGN_OR_RETURN(params.environment, EnvironmentFromProto(request.environment()));
  params.scopes.assign(request.scopes().begin(), request.scopes().end());
  params.actor = request.actor();
  if (request.has_expire_time()) {
    ASSIGN_OR_RETURN(params.expires_at, TimeFromProto(request.expire_time(), "expire_time"));
  }
  if (request.has_ttl()) {
    ASSIGN_OR_RETURN(params.ttl, DurationFromProto(request.ttl(), "ttl"));
  }
  return params;
}

absl::StatusOr<RotateKeyParams> FromProto(const pb::RotateKeyRequest& request) {
  RotateKeyParams params;
  params.request_id = request.request_id();
  params.key_id = request.key_id();
  params.actor = request.actor();
  if (request.has_overlap()) {
    ASSIGN_OR_RETURN(params.overlap, DurationFromProto(request.overlap(), "overlap"));
  }
  if (request.has_ttl()) {
    ASSIGN_OR_RETURN(params.ttl, DurationFromProto(request.ttl(), "ttl"));
  }
  return params;
}

absl::StatusOr<ListKeysParams> FromProto(const pb::ListKeysRequest& request) {
  ListKeysParams params;
  if (request.has_owner()) {
    ASSIGN_OR_RETURN(params.owner, PrincipalFromProto(request.owner(), "owner"));
  }
  if (!request.project().empty()) params.project = request.project();
  if (request.kind() != pb::KEY_KIND_UNSPECIFIED) {
    ASSIGN_OR_RETURN(params.kind, KindFromProto(request.kind(), "kind"));
  }
  if (request.state() != pb::KEY_STATE_UNSPECIFIED) {
    ASSIGN_OR_RETURN(params.state, StateFromProto(request.state()));
  }
  params.page_size = request.page_size();
  params.page_token = request.page_token();
  return params;
}

void ToProto(const RotationReport& report, absl::Time now, pb::GetRotationReportResponse* out) {
  SetTime(report.generated_at, out->mutable_generate_time());
  SetDuration(report.warning_window, out->mutable_warning_window());
  for (const RotationReport::Entry& entry : report.entries) {
    pb::RotationReportEntry* e = out->add_entries();
    ToProto(entry.key, now, e->mutable_key());
    e->set_urgency(entry.urgency == Urgency::kCritical ? pb::URGENCY_CRITICAL
                                                       : pb::URGENCY_WARNING);
    e->set_days_remaining(entry.days_remaining);
  }
}

void ToProto(const InventoryReport& report, absl::Time now, pb::GetInventoryReportResponse* out) {
  SetTime(report.generated_at, out->mutable_generate_time());
  for (const InventoryReport::Entry& entry : report.entries) {
    pb::InventoryEntry* e = out->add_entries();
    ToProto(entry.key, now, e->mutable_key());
    e->set_age_days(entry.age_days);
  }
  for (const auto& [state, count] : report.counts_by_state) {
    (*out->mutable_counts_by_state())[pb::KeyState_Name(StateToProto(state))] = count;
  }
}

}  // namespace policy::keys
