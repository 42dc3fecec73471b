#include "services/audit/entry.h"

#include <array>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/ids/project_id.h"
#include "common/text/caller_text.h"
#include "common/text/utf8.h"

namespace policy::audit {
namespace {

constexpr std::array<absl::string_view, kActionCount> kActionNames = {"api_call",
                                                                      "key_created",
                                                                      "key_rotated",
                                                                      "key_revoked",
                                                                      "model_changed",
                                                                      "policy_violation",
                                                                      "pii_detected",
                                                                      "rate_limited",
                                                                      "fallback_triggered",
                                                                      "decision_allow",
                                                                      "decision_deny",
                                                                      "member_added",
                                                                      "member_removed",
                                                                      "member_role_changed",
                                                                      "project_created",
                                                                      "project_changed",
                                                                      "project_deleted",
                                                                      "key_overlap_ended",
                                                                      "audit_read",
                                                                      "subject_forgotten",
                                                                      "subject_access_exported",
                                                                      "service_account_created",
                                                                      "service_account_removed",
                                                                      "endpoint_changed",
                                                                      "invitation_changed",
                                                                      "org_file_applied",
                                                                      "service_account_changed",
                                                                      "idp_group_changed",
                                                                      "member_erased"};

constexpr absl::string_view kLeafTag = "policy-suite/audit/entry/v1";

bool IsEnvironment(absl::string_view e) {
  return e == "production" || e == "staging" || e == "development" || e == "sandbox";
}

bool IsTokenChar(char c, bool upper_allowed) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-' || c == '_' ||
         (upper_allowed && absl::ascii_isupper(c));
}

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

absl::Status CheckText(absl::string_view field, absl::string_view value, size_t max_bytes) {
  if (value.size() > max_bytes) {
    return Invalid(field, absl::StrCat(value.size(), " bytes, more than the limit of ", max_bytes));
  }
  if (!IsUtf8(value)) return Invalid(field, "not valid UTF-8");
  if (value.find('\0') != absl::string_view::npos) return Invalid(field, "contains a NUL byte");
  return absl::OkStatus();
}

void PutU64(std::string& out, uint64_t v) {
  char bytes[8];
  for (int i = 7; i >= 0; --i) {
    bytes[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  out.append(bytes, 8);
}

void PutBytes(std::string& out, absl::string_view bytes) {
  PutU64(out, bytes.size());
  out.append(bytes.data(), bytes.size());
}

// Reads what PutU64 / PutBytes wrote; false at the end of the input or on a bad length.
struct Reader {
  absl::string_view in;
  bool U64(uint64_t& v) {
    if (in.size() < 8) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
    in.remove_prefix(8);
    return true;
  }
  bool Bytes(std::string& s) {
    uint64_t n = 0;
    if (!U64(n) || n > in.size()) return false;
    s.assign(in.data(), n);
    in.remove_prefix(n);
    return true;
  }
};

}  // namespace

absl::string_view ActionName(Action action) { return kActionNames[static_cast<int>(action)]; }

std::optional<Action> ActionFromName(absl::string_view name) {
  for (int i = 0; i < kActionCount; ++i) {
    if (kActionNames[i] == name) return static_cast<Action>(i);
  }
  return std::nullopt;
}

absl::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSuccess:
      return "success";
    case Outcome::kError:
      return "error";
    case Outcome::kBlocked:
      return "blocked";
  }
  return "success";
}

std::string LedgerName(const LedgerRef& ledger) {
  if (ledger.project.empty()) return "organisation";
  return absl::StrCat(ledger.project, "/", ledger.environment);
}

absl::Status ValidateLedger(const LedgerRef& ledger, absl::string_view field) {
  if (ledger.project.empty()) {
    if (!ledger.environment.empty()) {
      return Invalid(absl::StrCat(field, ".environment"),
                     "must be empty for the organisation's ledger (no project)");
    }
    return absl::OkStatus();
  }
  if (absl::Status s = ids::ValidateProjectId(ledger.project, absl::StrCat(field, ".project"));
      !s.ok()) {
    return s;
  }
  if (!IsEnvironment(ledger.environment)) {
    return Invalid(absl::StrCat(field, ".environment"),
                   absl::StrCat(Quoted(ledger.environment),
                                " is not one of production, staging, development, sandbox"));
  }
  return absl::OkStatus();
}

absl::Status ValidateIdentifier(absl::string_view identifier, absl::string_view field) {
  return CheckText(field, identifier, kMaxIdentifierBytes);
}

absl::Status ValidateEntryInput(const EntryInput& input) {
  if (input.actor.empty()) return Invalid("entry.actor", "required");
  if (absl::Status s = CheckText("entry.actor", input.actor, kMaxIdentifierBytes); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckText("entry.subject", input.subject, kMaxIdentifierBytes); !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateLedger(input.ledger, "entry"); !s.ok()) return s;
  if (absl::Status s = CheckText("entry.model", input.model, kMaxModelBytes); !s.ok()) return s;
  if (input.tokens < 0) return Invalid("entry.tokens", "negative");
  if (input.tokens > kMaxTokens) {
    return Invalid("entry.tokens", absl::StrCat("more than the maximum of ", kMaxTokens));
  }
  if (input.latency < absl::ZeroDuration()) return Invalid("entry.latency", "negative");
  if (input.latency > kMaxLatency) return Invalid("entry.latency", "more than 24 hours");
  if (input.metadata.size() > kMaxMetadataPairs) {
    return Invalid(
        "entry.metadata",
        absl::StrCat(input.metadata.size(), " pairs, more than the limit of ", kMaxMetadataPairs));
  }
  for (const auto& [key, value] : input.metadata) {
    const std::string field = absl::StrCat("entry.metadata[\"", key, "\"]");
    if (key.empty() || key.size() > kMaxMetadataKeyBytes) {
      return Invalid(field, absl::StrCat("keys are 1 to ", kMaxMetadataKeyBytes, " bytes"));
    }
    for (char c : key) {
      if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_' && c != '.') {
        return Invalid("entry.metadata", "keys are of [a-z0-9_.]");
      }
    }
    if (absl::Status s = CheckText(field, value, kMaxMetadataValueBytes); !s.ok()) return s;
  }
  if (!input.content_hash.empty() && input.content_hash.size() != 32) {
    return Invalid("entry.content_hash",
                   absl::StrCat(input.content_hash.size(), " bytes; a SHA-256 hash is 32"));
  }
  return ValidateRequestId(input.request_id, "entry.request_id");
}

absl::Status ValidateRequestId(absl::string_view request_id, absl::string_view field) {
  if (request_id.size() > kMaxRequestIdBytes) {
    return Invalid(field, absl::StrCat("more than ", kMaxRequestIdBytes, " bytes"));
  }
  for (char c : request_id) {
    if (!IsTokenChar(c, true) && c != '.' && c != ':') {
      return Invalid(field, "only [A-Za-z0-9_.:-] is allowed");
    }
  }
  return absl::OkStatus();
}

namespace {

// EncodeLeafData into `out` (appended), with the metadata written in place.
void AppendLeafData(const Entry& e, std::string& out) {
  PutBytes(out, kLeafTag);
  PutBytes(out, e.ledger.project);
  PutBytes(out, e.ledger.environment);
  PutU64(out, e.index);
  PutU64(out, static_cast<uint64_t>(absl::ToUnixMicros(e.time)));
  PutBytes(out, ActionName(e.action));
  PutBytes(out, e.actor.ref);
  PutBytes(out, e.actor.sealed);
  PutBytes(out, e.model);
  PutU64(out, static_cast<uint64_t>(e.tokens));
  PutU64(out, static_cast<uint64_t>(absl::ToInt64Microseconds(e.latency)));
  PutBytes(out, OutcomeName(e.outcome));
  // PutBytes(out, EncodeMetadata(e.metadata)), without the intermediate string.
  uint64_t metadata_size = 8;
  for (const auto& [key, value] : e.metadata) metadata_size += 16 + key.size() + value.size();
  PutU64(out, metadata_size);
  PutU64(out, e.metadata.size());
  for (const auto& [key, value] : e.metadata) {
    PutBytes(out, key);
    PutBytes(out, value);
  }
  PutBytes(out, e.content_hash);
  PutBytes(out, e.request_id);
  PutBytes(out, e.subject.ref);
  PutBytes(out, e.subject.sealed);
}

}  // namespace

std::string EncodeLeafData(const Entry& e) {
  std::string out;
  out.reserve(256 + e.actor.sealed.size() + e.subject.sealed.size());
  AppendLeafData(e, out);
  return out;
}

Hash EntryLeafHash(const Entry& entry) {
  // One buffer per thread, reused: hashing a ledger allocates nothing per entry.
  thread_local std::string buffer;
  buffer.clear();
  AppendLeafData(entry, buffer);
  return LeafHash(buffer);
}

bool SameRequest(const Entry& a, const Entry& b) {
  return a.ledger == b.ledger && a.action == b.action && a.actor.ref == b.actor.ref &&
         a.model == b.model && a.tokens == b.tokens && a.latency == b.latency &&
         a.outcome == b.outcome && a.metadata == b.metadata && a.content_hash == b.content_hash &&
         a.request_id == b.request_id && a.subject.ref == b.subject.ref;
}

std::string EncodeMetadata(const Metadata& metadata) {
  std::string out;
  PutU64(out, metadata.size());
  for (const auto& [key, value] : metadata) {  // std::map: ordered by key.
    PutBytes(out, key);
    PutBytes(out, value);
  }
  return out;
}

absl::StatusOr<Metadata> DecodeMetadata(absl::string_view bytes) {
  Reader r{bytes};
  uint64_t n = 0;
  if (!r.U64(n) || n > kMaxMetadataPairs * 4) return absl::DataLossError("malformed metadata");
  Metadata metadata;
  for (uint64_t i = 0; i < n; ++i) {
    std::string key, value;
    if (!r.Bytes(key) || !r.Bytes(value)) return absl::DataLossError("malformed metadata");
    metadata.emplace(std::move(key), std::move(value));
  }
  if (!r.in.empty() || metadata.size() != n) return absl::DataLossError("malformed metadata");
  return metadata;
}

std::string EncodeHashes(const std::vector<Hash>& hashes) {
  std::string out;
  out.reserve(hashes.size() * 32);
  for (const Hash& h : hashes) out.append(h.data(), h.size());
  return out;
}

absl::StatusOr<std::vector<Hash>> DecodeHashes(absl::string_view bytes) {
  if (bytes.size() % 32 != 0) return absl::DataLossError("stored hashes are not 32 bytes each");
  std::vector<Hash> hashes(bytes.size() / 32);
  for (size_t i = 0; i < hashes.size(); ++i)
    std::memcpy(hashes[i].data(), bytes.data() + 32 * i, 32);
  return hashes;
}

}  // namespace policy::audit
