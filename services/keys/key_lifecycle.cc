#include "services/keys/key_lifecycle.h"

#include <algorithm>
#include <array>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/crypto/crypto.h"
#include "common/ids/project_id.h"
#include "common/paging/page_token.h"
#include "common/status/status.h"
#include "services/keys/api_key.h"

namespace policy::keys {
namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 500;
constexpr size_t kMaxScopes = 32;
constexpr size_t kMaxIdBytes = 128;
constexpr size_t kMaxReasonBytes = 256;
constexpr absl::string_view kOpCreate = "create";
constexpr absl::string_view kOpRotate = "rotate";
constexpr absl::string_view kOpRevokePrincipal = "revoke_principal";

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == '@' || c == '+' || c == ':';
}

// Ids of principals: 1 to 128 of [A-Za-z0-9._@+:-]. Projects follow ids::ValidateProjectId.
absl::Status ValidateId(absl::string_view value, absl::string_view field) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  if (value.size() > kMaxIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is longer than 128 bytes"));
  }
  if (!std::all_of(value.begin(), value.end(), IsIdChar)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " may contain only letters, digits and . _ - @ + :"));
  }
  return absl::OkStatus();
}

// A change's actor: empty (the keys service), or a member's id.
absl::Status ValidateActor(absl::string_view actor) {
  return actor.empty() ? absl::OkStatus() : ValidateId(actor, "actor");
}

absl::Status ValidateRequestId(absl::string_view value) {
  if (value.size() > kMaxIdBytes) {
    return absl::InvalidArgumentError("request_id is longer than 128 bytes");
  }
  for (char c : value) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError("request_id must be printable ASCII without spaces");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateKeyId(absl::string_view key_id) {
  if (key_id.empty()) return absl::InvalidArgumentError("key_id is required");
  bool ok = key_id.size() == 4 + kKeyIdChars && key_id.substr(0, 4) == "key_" &&
            std::all_of(key_id.begin() + 4, key_id.end(),
                        [](char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); });
  if (!ok) return absl::InvalidArgumentError("key_id is not a key id (key_ + 17 letters/digits)");
  return absl::OkStatus();
}

absl::Status ValidateReason(absl::string_view reason) {
  if (reason.size() > kMaxReasonBytes) {
    return absl::InvalidArgumentError("reason is longer than 256 bytes");
  }
  for (char c : reason) {
    if (static_cast<unsigned char>(c) < 0x20) {
      return absl::InvalidArgumentError("reason contains control characters");
    }
  }
  return absl::OkStatus();
}

bool IsScope(absl::string_view scope) {
  if (scope.empty() || scope.size() > 64 || !(scope[0] >= 'a' && scope[0] <= 'z')) return false;
  return std::all_of(scope.begin(), scope.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
           c == '-';
  });
}

absl::Status ValidateOwner(KeyKind kind, const Principal& owner) {
  RETURN_IF_ERROR(ValidateId(owner.id, "owner.id"));
  const PrincipalType expected =
      kind == KeyKind::kServiceAccount ? PrincipalType::kServiceAccount : PrincipalType::kMember;
  if (owner.type != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "owner.type must be ", PrincipalTypeName(expected), " for a ", KindName(kind), " key"));
  }
  return absl::OkStatus();
}

std::string Fingerprint(std::initializer_list<absl::string_view> parts) {
  return crypto::Sha256(absl::StrJoin(parts, "\x1f"));
}

std::string DurationText(const std::optional<absl::Duration>& d) {
  return d.has_value() ? absl::StrCat(absl::ToInt64Microseconds(*d)) : "";
}

int64_t FloorDays(absl::Duration d) {
  return absl::ToInt64Hours(absl::Floor(d, absl::Hours(24))) / 24;
}

absl::Status MismatchedRequest(absl::string_view request_id) {
  return absl::FailedPreconditionError(
      absl::StrCat("request_id ", request_id, " was already used for a different request"));
}

// The filters a listing's page token is bound to (paging::EncodePageToken).
std::array<absl::string_view, 6> ListFilters(const ListKeysParams& p) {
  return {p.owner ? PrincipalTypeName(p.owner->type) : "",
          p.owner ? absl::string_view(p.owner->id) : "",
          p.project ? "p" : "",
          p.project ? absl::string_view(*p.project) : "",
          p.kind ? KindName(*p.kind) : "",
          p.state ? StateName(*p.state) : ""};
}

// A listing's page token: the position after the last key ("<created_at µs>:<key id>").
std::string EncodePageToken(const ListCursor& cursor, const ListKeysParams& p) {
  return paging::EncodePageToken(
      absl::StrCat(absl::ToUnixMicros(cursor.created_at), ":", cursor.key_id), ListFilters(p));
}

absl::StatusOr<std::optional<ListCursor>> DecodePageToken(const ListKeysParams& p) {
  if (p.page_token.empty()) return std::optional<ListCursor>();
  ASSIGN_OR_RETURN(std::string position, paging::DecodePageToken(p.page_token, ListFilters(p)));
  std::vector<std::string> parts = absl::StrSplit(position, absl::MaxSplits(':', 1));
  int64_t micros = 0;
  // Timestamps a database can hold: years 0001 to 9999.
  constexpr int64_t kMinMicros = -62135596800LL * 1'000'000;
  constexpr int64_t kMaxMicros = 253402300799LL * 1'000'000;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &micros) || micros < kMinMicros ||
      micros > kMaxMicros || !ValidateKeyId(parts[1]).ok()) {
    return paging::InvalidPageToken();
  }
  return std::optional<ListCursor>(ListCursor{absl::FromUnixMicros(micros), parts[1]});
}

}  // namespace

KeyLifecycle::KeyLifecycle(KeyStore* store, const Pepper* pepper, Clock* clock, KeyPolicy policy)
    : store_(store), pepper_(pepper), clock_(clock), policy_(policy) {}

absl::StatusOr<std::optional<IdempotencyRecord>> KeyLifecycle::FindRequest(
    const std::string& request_id, const std::string& operation, const std::string& fingerprint) {
  if (request_id.empty()) return std::optional<IdempotencyRecord>();
  ASSIGN_OR_RETURN(std::optional<IdempotencyRecord> record, store_->GetRequest(request_id));
  if (record.has_value() && clock_->Now() - record->created_at > policy_.idempotency_window) {
    record.reset();  // Past the window even if no sweep has deleted it yet.
  }
  if (record.has_value() && (record->operation != operation ||
                             !crypto::ConstantTimeEquals(record->fingerprint, fingerprint))) {
    return MismatchedRequest(request_id);
  }
  return record;
}

absl::StatusOr<IdempotencyRecord> KeyLifecycle::NewRequest(const std::string& request_id,
                                                           const std::string& operation,
                                                           const std::string& fingerprint,
                                                           const IssuedKey* issued,
                                                           absl::Time now) {
  IdempotencyRecord record{request_id, operation, fingerprint, {}, "", now};
  if (issued != nullptr) {
    record.key_ids.push_back(issued->key.key_id);
    ASSIGN_OR_RETURN(record.sealed_secret,
                     crypto::AeadSeal(pepper_->seal_key(), issued->secret, request_id));
  }
  return record;
}

absl::StatusOr<IssuedKey> KeyLifecycle::NewKey(const CreateKeyParams& params, absl::Time now,
                                               absl::Time expires_at) {
  ASSIGN_OR_RETURN(NewSecret secret, GenerateSecret(params.kind));
  ASSIGN_OR_RETURN(ParsedSecret parsed, ParseSecret(secret.secret));
  KeyRecord key;
  key.key_id = secret.key_id;
  key.kind = params.kind;
  key.owner = params.owner;
  key.project = params.project;
  key.environment = params.environment;
  key.scopes = params.scopes;
  key.secret_hash = pepper_->HashSecret(parsed.random_part);
  key.redacted = RedactSecret(secret.secret);
  key.state = KeyState::kActive;
  key.created_at = now;
  key.expires_at = expires_at;
  return IssuedKey{std::move(key), std::move(secret.secret)};
}

absl::StatusOr<IssuedKey> KeyLifecycle::ReplayCreate(const IdempotencyRecord& record) {
  if (record.key_ids.size() != 1) return absl::InternalError("malformed create request record");
  ASSIGN_OR_RETURN(KeyRecord key, store_->Get(record.key_ids[0]));
  ASSIGN_OR_RETURN(std::string secret,
                   crypto::AeadOpen(pepper_->seal_key(), record.sealed_secret, record.request_id));
  return IssuedKey{std::move(key), std::move(secret)};
}

absl::StatusOr<IssuedKey> KeyLifecycle::Create(const CreateKeyParams& input) {
  CreateKeyParams params = input;
  RETURN_IF_ERROR(ValidateRequestId(params.request_id));
  RETURN_IF_ERROR(ValidateActor(params.actor));
  RETURN_IF_ERROR(ValidateOwner(params.kind, params.owner));
  if (params.kind == KeyKind::kAdmin) {
    if (!params.project.empty()) {
      return absl::InvalidArgumentError("project must be empty for an admin key");
    }
  } else {
    RETURN_IF_ERROR(ids::ValidateProjectId(params.project, "project"));
  }
  if (params.scopes.size() > kMaxScopes) {
    return absl::InvalidArgumentError("scopes has more than 32 entries");
  }
  for (const std::string& scope : params.scopes) {
    if (!IsScope(scope)) {
      return absl::InvalidArgumentError(absl::StrCat("scopes entry '",
                                                     absl::CHexEscape(scope.substr(0, 64)),
                                                     "' is not a scope ([a-z][a-z0-9_.:-]{0,63})"));
    }
  }
  std::sort(params.scopes.begin(), params.scopes.end());
  params.scopes.erase(std::unique(params.scopes.begin(), params.scopes.end()), params.scopes.end());
  if (params.expires_at.has_value() && params.ttl.has_value()) {
    return absl::InvalidArgumentError("give at most one of expire_time and ttl");
  }
  if (params.ttl.has_value() && *params.ttl < kMinKeyLifetime) {
    return absl::InvalidArgumentError(
        absl::StrCat("ttl must be at least ", absl::FormatDuration(kMinKeyLifetime)));
  }

  const std::string fingerprint = Fingerprint(
      {kOpCreate, KindName(params.kind), PrincipalTypeName(params.owner.type), params.owner.id,
       params.project, EnvironmentName(params.environment), absl::StrJoin(params.scopes, " "),
       params.expires_at ? absl::StrCat(absl::ToUnixMicros(*params.expires_at)) : "",
       DurationText(params.ttl)});
  ASSIGN_OR_RETURN(std::optional<IdempotencyRecord> earlier,
                   FindRequest(params.request_id, std::string(kOpCreate), fingerprint));
  if (earlier.has_value()) return ReplayCreate(*earlier);

  const absl::Time now = clock_->Now();
  const absl::Time expires_at =
      params.expires_at.value_or(now + params.ttl.value_or(policy_.default_ttl));
  if (expires_at - now < kMinKeyLifetime) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expire_time must be at least ", absl::FormatDuration(kMinKeyLifetime), " from now"));
  }
  if (expires_at - now > policy_.max_ttl) {
    return absl::InvalidArgumentError(absl::StrCat("key lifetime exceeds the maximum of ",
                                                   absl::FormatDuration(policy_.max_ttl)));
  }

  ASSIGN_OR_RETURN(IssuedKey issued, NewKey(params, now, expires_at));
  std::optional<IdempotencyRecord> request;
  if (!params.request_id.empty()) {
    ASSIGN_OR_RETURN(
        request, NewRequest(params.request_id, std::string(kOpCreate), fingerprint, &issued, now));
  }
  absl::Status inserted = store_->Insert(issued.key, request, params.actor);
  if (absl::IsAlreadyExists(inserted) && request.has_value()) {
    // A concurrent retry with the same request id won the race: return its result.
    ASSIGN_OR_RETURN(earlier, FindRequest(params.request_id, std::string(kOpCreate), fingerprint));
    if (earlier.has_value()) return ReplayCreate(*earlier);
  }
  RETURN_IF_ERROR(inserted);
  return issued;
}

absl::StatusOr<RotatedKey> KeyLifecycle::ReplayRotate(const IdempotencyRecord& record) {
  if (record.key_ids.size() != 2) return absl::InternalError("malformed rotate request record");
  ASSIGN_OR_RETURN(KeyRecord old_key, store_->Get(record.key_ids[0]));
  ASSIGN_OR_RETURN(KeyRecord new_key, store_->Get(record.key_ids[1]));
  ASSIGN_OR_RETURN(std::string secret,
                   crypto::AeadOpen(pepper_->seal_key(), record.sealed_secret, record.request_id));
  return RotatedKey{std::move(old_key), IssuedKey{std::move(new_key), std::move(secret)}};
}

absl::StatusOr<RotatedKey> KeyLifecycle::Rotate(const RotateKeyParams& params) {
  RETURN_IF_ERROR(ValidateRequestId(params.request_id));
  RETURN_IF_ERROR(ValidateKeyId(params.key_id));
  RETURN_IF_ERROR(ValidateActor(params.actor));
  const absl::Duration overlap = params.overlap.value_or(policy_.default_overlap);
  if (overlap < absl::ZeroDuration() || overlap > policy_.max_overlap) {
    return absl::InvalidArgumentError(
        absl::StrCat("overlap must be between 0 and ", absl::FormatDuration(policy_.max_overlap)));
  }
  if (params.ttl.has_value() && (*params.ttl < kMinKeyLifetime || *params.ttl > policy_.max_ttl)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ttl must be at least ", absl::FormatDuration(kMinKeyLifetime),
                     " and at most ", absl::FormatDuration(policy_.max_ttl)));
  }
  const std::string fingerprint = Fingerprint(
      {kOpRotate, params.key_id, DurationText(params.overlap), DurationText(params.ttl)});
  ASSIGN_OR_RETURN(std::optional<IdempotencyRecord> earlier,
                   FindRequest(params.request_id, std::string(kOpRotate), fingerprint));
  if (earlier.has_value()) return ReplayRotate(*earlier);

  ASSIGN_OR_RETURN(KeyRecord old_key, store_->Get(params.key_id));
  if (old_key.state == KeyState::kRotating) {
    return absl::FailedPreconditionError(
        absl::StrCat("key ", old_key.key_id, " was already rotated to ", old_key.rotated_to));
  }
  if (old_key.state == KeyState::kRevoked) {
    return absl::FailedPreconditionError(
        absl::StrCat("key ", old_key.key_id, " is revoked; create a new key instead"));
  }
  const absl::Time now = clock_->Now();
  if (StateAt(old_key, now) == KeyState::kExpired) {
    // An expired credential does not beget a fresh one: issue a new key instead.
    return absl::FailedPreconditionError(
        absl::StrCat("key ", old_key.key_id, " has expired; create a new key instead"));
  }
  const absl::Time overlap_ends_at = std::min(now + overlap, old_key.expires_at);
  const absl::Duration lifetime =
      std::min(params.ttl.value_or(old_key.expires_at - old_key.created_at), policy_.max_ttl);
  CreateKeyParams successor_params{params.request_id, old_key.kind,        old_key.owner,
                                   old_key.project,   old_key.environment, old_key.scopes,
                                   std::nullopt,      std::nullopt};
  ASSIGN_OR_RETURN(IssuedKey successor, NewKey(successor_params, now, now + lifetime));
  successor.key.rotated_from = old_key.key_id;
  std::optional<IdempotencyRecord> request;
  if (!params.request_id.empty()) {
    ASSIGN_OR_RETURN(request, NewRequest(params.request_id, std::string(kOpRotate), fingerprint,
                                         &successor, now));
    request->key_ids.insert(request->key_ids.begin(), old_key.key_id);
  }
  absl::StatusOr<KeyRecord> rotated =
      store_->Rotate(old_key.key_id, overlap_ends_at, successor.key, request, params.actor);
  // A concurrent twin with the same request id may have rotated the key first: replay it.
  if ((absl::IsAlreadyExists(rotated.status()) || absl::IsFailedPrecondition(rotated.status())) &&
      request.has_value()) {
    ASSIGN_OR_RETURN(earlier, FindRequest(params.request_id, std::string(kOpRotate), fingerprint));
    if (earlier.has_value()) return ReplayRotate(*earlier);
  }
  if (!rotated.ok()) return rotated.status();
  return RotatedKey{*std::move(rotated), std::move(successor)};
}

absl::StatusOr<std::pair<KeyRecord, bool>> KeyLifecycle::Revoke(const std::string& key_id,
                                                                const std::string& reason,
                                                                const std::string& actor) {
  RETURN_IF_ERROR(ValidateKeyId(key_id));
  RETURN_IF_ERROR(ValidateReason(reason));
  RETURN_IF_ERROR(ValidateActor(actor));
  const absl::Time now = clock_->Now();
  // A reason may quote the leaked key itself: never store, record or log its secret.
  const std::string why = reason.empty() ? "revoked" : RedactSecretsIn(reason);
  return store_->Revoke(key_id, why, now, actor);
}

absl::StatusOr<std::vector<KeyRecord>> KeyLifecycle::ReplayRevokePrincipal(
    const IdempotencyRecord& record) {
  std::vector<KeyRecord> keys;
  for (const std::string& key_id : record.key_ids) {
    ASSIGN_OR_RETURN(KeyRecord key, store_->Get(key_id));
    keys.push_back(std::move(key));
  }
  return keys;
}

absl::StatusOr<std::vector<KeyRecord>> KeyLifecycle::RevokePrincipal(const std::string& request_id,
                                                                     const Principal& owner,
                                                                     const std::string& reason,
                                                                     const std::string& actor) {
  RETURN_IF_ERROR(ValidateRequestId(request_id));
  RETURN_IF_ERROR(ValidateId(owner.id, "owner.id"));
  RETURN_IF_ERROR(ValidateReason(reason));
  RETURN_IF_ERROR(ValidateActor(actor));
  const std::string why = reason.empty() ? "principal's keys revoked" : RedactSecretsIn(reason);
  const std::string fingerprint =
      Fingerprint({kOpRevokePrincipal, PrincipalTypeName(owner.type), owner.id, why});
  ASSIGN_OR_RETURN(std::optional<IdempotencyRecord> earlier,
                   FindRequest(request_id, std::string(kOpRevokePrincipal), fingerprint));
  if (earlier.has_value()) return ReplayRevokePrincipal(*earlier);
  const absl::Time now = clock_->Now();
  std::optional<IdempotencyRecord> request;
  if (!request_id.empty()) {
    ASSIGN_OR_RETURN(request, NewRequest(request_id, std::string(kOpRevokePrincipal), fingerprint,
                                         nullptr, now));
  }
  absl::StatusOr<std::vector<KeyRecord>> revoked =
      store_->RevokeOwnedBy(owner, why, now, request, actor);
  if (absl::IsAlreadyExists(revoked.status()) && request.has_value()) {
    ASSIGN_OR_RETURN(earlier,
                     FindRequest(request_id, std::string(kOpRevokePrincipal), fingerprint));
    if (earlier.has_value()) return ReplayRevokePrincipal(*earlier);
  }
  return revoked;
}

absl::StatusOr<KeyRecord> KeyLifecycle::Get(const std::string& key_id) {
  RETURN_IF_ERROR(ValidateKeyId(key_id));
  return store_->Get(key_id);
}

absl::StatusOr<KeyListing> KeyLifecycle::List(const ListKeysParams& params) {
  if (params.page_size < 0) return absl::InvalidArgumentError("page_size must not be negative");
  if (params.owner.has_value()) RETURN_IF_ERROR(ValidateId(params.owner->id, "owner.id"));
  if (params.project.has_value()) {
    RETURN_IF_ERROR(ids::ValidateProjectId(*params.project, "project"));
  }
  const int limit =
      params.page_size == 0 ? kDefaultPageSize : std::min(params.page_size, kMaxPageSize);
  ASSIGN_OR_RETURN(std::optional<ListCursor> after, DecodePageToken(params));
  KeyFilter filter{params.owner, params.project, params.kind, params.state, clock_->Now()};
  ASSIGN_OR_RETURN(KeyPage page, store_->List(filter, limit, after));
  KeyListing listing{std::move(page.keys), ""};
  if (page.next.has_value()) listing.next_page_token = EncodePageToken(*page.next, params);
  return listing;
}

absl::StatusOr<RotationReport> KeyLifecycle::GetRotationReport(
    const std::optional<std::string>& project) {
  if (project.has_value()) RETURN_IF_ERROR(ids::ValidateProjectId(*project, "project"));
  const absl::Time now = clock_->Now();
  RotationReport report{now, policy_.rotation_warning, {}};
  KeyFilter filter{std::nullopt, project, std::nullopt, std::nullopt, now};
  std::optional<ListCursor> after;
  do {
    ASSIGN_OR_RETURN(KeyPage page, store_->List(filter, kMaxPageSize, after));
    for (KeyRecord& key : page.keys) {
      // Rotating keys are being replaced already; revoked ones are gone.
      if (key.state != KeyState::kActive || key.expires_at > now + policy_.rotation_warning) {
        continue;
      }
      const Urgency urgency = now >= key.expires_at ? Urgency::kCritical : Urgency::kWarning;
      const int64_t days = FloorDays(key.expires_at - now);
      report.entries.push_back({std::move(key), urgency, days});
    }
    after = page.next;
  } while (after.has_value());
  std::sort(report.entries.begin(), report.entries.end(), [](const auto& a, const auto& b) {
    return a.key.expires_at != b.key.expires_at ? a.key.expires_at < b.key.expires_at
                                                : a.key.key_id < b.key.key_id;
  });
  return report;
}

absl::StatusOr<InventoryReport> KeyLifecycle::GetInventoryReport(
    const std::optional<std::string>& project) {
  if (project.has_value()) RETURN_IF_ERROR(ids::ValidateProjectId(*project, "project"));
  const absl::Time now = clock_->Now();
  InventoryReport report{now, {}, {}};
  KeyFilter filter{std::nullopt, project, std::nullopt, std::nullopt, now};
  std::optional<ListCursor> after;
  do {
    ASSIGN_OR_RETURN(KeyPage page, store_->List(filter, kMaxPageSize, after));
    for (KeyRecord& key : page.keys) {
      ++report.counts_by_state[StateAt(key, now)];
      const int64_t age = FloorDays(now - key.created_at);
      report.entries.push_back({std::move(key), age});
    }
    after = page.next;
  } while (after.has_value());
  return report;
}

absl::Status KeyLifecycle::Sweep() {
  RETURN_IF_ERROR(store_->RevokeEndedOverlaps().status());
  return store_->ForgetRequestsBefore(clock_->Now() - policy_.idempotency_window).status();
}

absl::StatusOr<IssuedKey> KeyLifecycle::BootstrapAdmin(const Principal& owner) {
  const absl::Time now = clock_->Now();
  for (KeyState usable : {KeyState::kActive, KeyState::kRotating}) {
    KeyFilter filter{std::nullopt, std::nullopt, KeyKind::kAdmin, usable, now};
    ASSIGN_OR_RETURN(KeyPage page, store_->List(filter, 1, std::nullopt));
    if (!page.keys.empty()) {
      return absl::FailedPreconditionError(
          "a usable admin key exists already; create further keys through the API");
    }
  }
  CreateKeyParams params;
  params.kind = KeyKind::kAdmin;
  params.owner = owner;
  params.environment = Environment::kProduction;
  params.scopes = {"admin"};
  return Create(params);
}

}  // namespace policy::keys
