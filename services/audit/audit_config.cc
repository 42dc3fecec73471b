#include "services/audit/audit_config.h"

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/audit/checkpoint.h"

namespace policy::audit {

void AuditConfig::Register(config::Parser& p) {
  server.Register(p);
  storage.RegisterDatabase(p);  // Audit keeps no in-memory copy of PostgreSQL's state.
  p.AddString("signing_key", &signing_key,
              "Ed25519 private key seed signing checkpoints, 64 hex digits (openssl rand -hex 32)",
              config::Sensitivity::kSecret);
  // Shown by key id only: a private seed given here by mistake must not reach the logs.
  p.AddString(
      "previous_public_keys", &previous_public_keys,
      "PUBLIC keys (not private seeds) of earlier signing keys whose checkpoints still verify, "
      "64 hex digits each, comma-separated (a key's public_key as logged at start-up: "
      "\"checkpoint signing key\"; shown in logs by key id)",
      [](const std::string& value) { return DescribeKeyList(value); });
  p.AddString("subject_key", &subject_key,
              "master key (>= 32 bytes) finding and wrapping subjects' keys",
              config::Sensitivity::kSecret);
  p.AddDuration("checkpoint_interval", &checkpoint_interval,
                "how often tree heads of grown ledgers are signed");
  p.AddInt("max_batch", &max_batch, "most entries committed in one transaction");
  p.AddInt("append_writers", &append_writers, "batches of appends committing at once");
  p.AddInt("max_queued_appends", &max_queued_appends,
           "appends waiting for a batch before RESOURCE_EXHAUSTED");
  p.AddInt("blocking_threads", &blocking_threads, "threads serving reads from PostgreSQL");
  p.AddInt("blocking_queue", &blocking_queue, "reads waiting for a thread at most");
  p.AddInt("verify_threads", &verify_threads,
           "threads verifying or summarising whole ledgers, apart from the other reads");
  p.AddInt("verify_queue", &verify_queue,
           "verifications and summaries waiting for a thread at most");
  p.AddDuration("max_export_write_time", &max_export_write_time,
                "how long an export waits for its reader to take a chunk before it is stopped");
  p.AddDuration("forgotten_retention", &forgotten_retention,
                "how long a forgetting also covers records of earlier changes delivered late");
}

std::string DescribeKeyList(absl::string_view hex_list) {
  if (absl::StripAsciiWhitespace(hex_list).empty()) return "";
  absl::StatusOr<std::vector<std::string>> keys =
      CheckpointKeys::ParseHexList(hex_list, "previous_public_keys");
  if (!keys.ok()) return "<not shown: not a list of 64-hex-digit keys>";
  std::vector<std::string> ids;
  for (const std::string& key : *keys) ids.push_back(KeyIdOf(key));
  return absl::StrCat("key ids ", absl::StrJoin(ids, ","));
}

absl::Status AuditConfig::Validate() const {
  if (absl::Status s = server.Validate(); !s.ok()) return s;
  if (absl::Status s = storage.Validate(); !s.ok()) return s;
  if (absl::Status s =
          CheckpointKeys::ParseHexList(previous_public_keys,
                                       "previous_public_keys (POLICY_AUDIT_PREVIOUS_PUBLIC_KEYS)")
              .status();
      !s.ok()) {
    return s;
  }
  // Migrating touches no ledger: the keys are the service's only.
  if (!storage.migrate_only) {
    bool hex = signing_key.size() == 64;
    for (char c : signing_key) hex = hex && absl::ascii_isxdigit(c);
    if (!hex) {
      return absl::InvalidArgumentError(
          "signing_key must be 64 hex digits (POLICY_AUDIT_SIGNING_KEY; openssl rand -hex 32)");
    }
    // A private seed where a public key belongs is a leaked secret and verifies nothing.
    absl::StatusOr<std::vector<std::string>> previous =
        CheckpointKeys::ParseHexList(previous_public_keys, "previous_public_keys");
    const std::string seed = absl::HexStringToBytes(signing_key);
    for (size_t i = 0; previous.ok() && i < previous->size(); ++i) {
      if ((*previous)[i] == seed) {
        return absl::InvalidArgumentError(absl::StrCat(
            "previous_public_keys (POLICY_AUDIT_PREVIOUS_PUBLIC_KEYS): entry ", i + 1,
            " is signing_key itself, the private seed, not a public key: list public keys only "
            "(the public_key the audit service logs at start-up as \"checkpoint signing key\"), "
            "and treat this seed as exposed wherever the setting was stored"));
      }
    }
    if (subject_key.size() < 32) {
      return absl::InvalidArgumentError(
          "subject_key must be at least 32 bytes (POLICY_AUDIT_SUBJECT_KEY; openssl rand -hex "
          "32)");
    }
  }
  if (checkpoint_interval < absl::Milliseconds(10)) {
    return absl::InvalidArgumentError("checkpoint_interval must be at least 10ms");
  }
  if (forgotten_retention < absl::Hours(1)) {
    return absl::InvalidArgumentError("forgotten_retention must be at least 1h");
  }
  if (max_batch < 1 || max_batch > 10000) {
    return absl::InvalidArgumentError("max_batch must be in [1, 10000]");
  }
  if (append_writers < 1 || append_writers > 16) {
    return absl::InvalidArgumentError("append_writers must be in [1, 16]");
  }
  if (max_queued_appends < max_batch) {
    return absl::InvalidArgumentError("max_queued_appends must be at least max_batch");
  }
  if (blocking_threads < 1 || blocking_queue < 1 || verify_threads < 1 || verify_queue < 1) {
    return absl::InvalidArgumentError(
        "blocking_threads, blocking_queue, verify_threads and verify_queue must be positive");
  }
  if (max_export_write_time < absl::Milliseconds(100) || max_export_write_time > absl::Hours(1)) {
    return absl::InvalidArgumentError("max_export_write_time must be between 100ms and 1h");
  }
  return absl::OkStatus();
}

}  // namespace policy::audit
