#ifndef POLICY_SERVICES_AUDIT_AUDIT_CONFIG_H_
#define POLICY_SERVICES_AUDIT_AUDIT_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/config/config.h"
#include "common/pg/storage_options.h"
#include "common/server/server_runner.h"

namespace policy::audit {

// Everything the audit binary reads from --flags and POLICY_AUDIT_* variables.
struct AuditConfig {
  server::ServerOptions server;
  pg::StorageOptions storage;
  // 64 hex digits: the Ed25519 private key seed that signs checkpoints. Not needed with
  // --migrate_only.
  std::string signing_key;
  // The public keys of earlier signing keys (64 hex digits each, comma-separated): checkpoints
  // they signed still verify, and ledgers they signed are continued under signing_key. Empty:
  // only signing_key's checkpoints are accepted. signing_key's own seed is refused here; its
  // public key is ignored (listed during a rotation). Logged by key id only.
  std::string previous_public_keys;
  // At least 32 bytes: the master key that finds and wraps the subjects' keys. Changing it
  // orphans every subject key (as if every subject were forgotten). Not needed with
  // --migrate_only.
  std::string subject_key;
  // How often tree heads of grown ledgers are signed.
  absl::Duration checkpoint_interval = absl::Seconds(5);
  int64_t max_batch = 1000;
  int64_t max_queued_appends = 20000;
  // Batches committing at once (each on a connection of its own).
  int64_t append_writers = 2;
  int64_t blocking_threads = 4;
  int64_t blocking_queue = 256;
  // Whole-ledger walks (VerifyLedger, GetComplianceSummary) run on threads of their own, so
  // that however many run, the reads decisions and usage reports wait on never queue behind
  // them; more than verify_queue waiting is RESOURCE_EXHAUSTED.
  int64_t verify_threads = 1;
  int64_t verify_queue = 8;
  // How long an export stream may wait for its reader to take one chunk (at most 1 MiB)
  // before it is stopped (ABORTED, resumable from the index the message names): a reader
  // that stops reading must not hold one of the few export slots.
  absl::Duration max_export_write_time = absl::Seconds(30);
  // How long the time a subject was forgotten is kept (LedgerStore::RecordForgotten): records
  // of changes made before a forgetting that arrive later than this after it name the person
  // again under a new key. Kept no longer because it holds a keyed digest of their identifier.
  absl::Duration forgotten_retention = absl::Hours(24 * 30);

  void Register(config::Parser& parser);
  absl::Status Validate() const;
};

// How previous_public_keys is shown (the configuration log line, --help): by key id (KeyIdOf,
// a fingerprint), never the keys themselves.
std::string DescribeKeyList(absl::string_view hex_list);

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_AUDIT_CONFIG_H_
