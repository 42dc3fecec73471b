// The audit service binary: configuration, store, ledger, batcher, checkpoint signer, server.
#include <memory>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/clock/clock.h"
#include "common/config/config.h"
#include "common/crypto/crypto.h"
#include "common/log/log.h"
#include "common/pg/pool.h"
#include "common/pg/storage_options.h"
#include "common/server/background_check.h"
#include "common/server/blocking_pool.h"
#include "common/server/server_runner.h"
#include "services/audit/append_batcher.h"
#include "services/audit/audit_config.h"
#include "services/audit/audit_migrations.h"
#include "services/audit/audit_service.h"
#include "services/audit/checkpoint.h"
#include "services/audit/ledger.h"
#include "services/audit/ledger_metrics.h"
#include "services/audit/memory_ledger_store.h"
#include "services/audit/postgres_ledger_store.h"
#include "services/audit/subjects.h"

namespace policy::audit {
namespace {

int Fail(const absl::Status& status) {
  LogError("audit failed", {{"status", status.ToString()}});
  return 1;
}

int Main(int argc, char** argv) {
  server::PrepareServerProcess();
  AuditConfig config;
  absl::StatusOr<bool> run = config::LoadServiceConfig("audit", argc, argv, config);
  if (!run.ok()) return Fail(run.status());
  if (!*run) return 0;

  absl::StatusOr<bool> done = pg::PrepareSchema(config.storage, "audit", Migrations());
  if (!done.ok()) return Fail(done.status());
  if (*done) return 0;
  std::unique_ptr<pg::Pool> pool;
  std::unique_ptr<LedgerStore> store;
  if (config.storage.postgres()) {
    pool = std::make_unique<pg::Pool>(config.storage.pool_options());
    absl::StatusOr<std::string> role = PostgresLedgerStore::TransactionRole(pool.get());
    if (!role.ok()) return Fail(role.status());
    if (absl::Status s = PostgresLedgerStore::CheckRole(pool.get(), *role); !s.ok()) {
      return Fail(s);
    }
    if (!role->empty()) {
      LogWarning("the audit service's login role can write ledger rows directly",
                 {{"role", *role}, {"instead", "log in as a member of policy_audit_runtime"}});
    }
    store = std::make_unique<PostgresLedgerStore>(pool.get(), *role);
  } else {
    store = std::make_unique<MemoryLedgerStore>();
  }

  absl::StatusOr<std::unique_ptr<CheckpointSigner>> signer =
      CheckpointSigner::Create(absl::HexStringToBytes(config.signing_key));
  if (!signer.ok()) return Fail(signer.status());
  absl::StatusOr<std::unique_ptr<SubjectCipher>> subjects =
      SubjectCipher::Create(crypto::Sha256(config.subject_key));
  if (!subjects.ok()) return Fail(subjects.status());
  // The public key, derived here from the seed (never a configured value): what operators
  // copy into previous_public_keys and the verifiers' --public_key.
  LogInfo("checkpoint signing key",
          {{"key_id", (*signer)->key_id()},
           {"public_key", absl::BytesToHexString((*signer)->public_key())}});
  // Validated with the configuration (signing_key's own seed among them refused).
  absl::StatusOr<std::vector<std::string>> previous_keys =
      CheckpointKeys::ParseHexList(config.previous_public_keys, "previous_public_keys");
  if (!previous_keys.ok()) return Fail(previous_keys.status());
  for (const std::string& key : *previous_keys) {
    if (key == (*signer)->public_key()) {
      LogInfo(
          "previous_public_keys lists the current signing key's public key: it is the "
          "current key (as during a rotation's rollout), not an earlier one",
          {{"key_id", (*signer)->key_id()}});
    }
  }

  AuditLedger ledger(store.get(), subjects->get(), signer->get(), Clock::Real(),
                     *std::move(previous_keys));
  LogInfo("checkpoints accepted from signing keys",
          {{"key_ids", ledger.checkpoint_keys().Describe()}});
  AppendBatcher batcher(&ledger, static_cast<size_t>(config.max_batch),
                        static_cast<size_t>(config.max_queued_appends),
                        static_cast<int>(config.append_writers));
  server::BlockingPool blocking(static_cast<int>(config.blocking_threads),
                                static_cast<int>(config.blocking_queue));
  server::BlockingPool verifying(
      static_cast<int>(config.verify_threads), static_cast<int>(config.verify_queue),
      absl::StrCat("already ", config.verify_queue,
                   " ledger verifications and summaries waiting (verify_queue, verify_threads); "
                   "retry later"));
  server::ServerRunner runner(config.server);
  AuditService service(&ledger, &batcher, &blocking, &verifying, &runner.metrics_registry(),
                       config.max_export_write_time);
  runner.AddService(&service, v1::AuditService::service_full_name());
  // Readiness reads what a background ping found and never waits on the database: pings run
  // on a connection of their own every 250 ms, and a ping that hangs (a stopped server) turns
  // readiness NOT_SERVING 5 s after the last successful one began.
  std::unique_ptr<pg::Pool> ping_pool;
  std::unique_ptr<server::BackgroundCheck> reachable;
  if (pool != nullptr) {
    pg::PoolOptions ping_options = config.storage.pool_options();
    ping_options.size = 1;
    ping_pool = std::make_unique<pg::Pool>(ping_options);
    reachable =
        std::make_unique<server::BackgroundCheck>([&] { return ping_pool->Ping(); }, Clock::Real(),
                                                  absl::Milliseconds(250), absl::Seconds(5));
    reachable->Start();
  }
  runner.SetReadinessProbe([&] { return reachable == nullptr || reachable->Ready(); });

  LedgerMetrics ledger_metrics(runner.metrics_registry());
  absl::Notification stop_signing;
  // Signs checkpoints, and removes expired forgettings (at most once a minute).
  std::thread signing([&] {
    std::vector<LedgerOverview> ledgers;
    absl::Time next_purge = absl::InfinitePast();
    while (!stop_signing.WaitForNotificationWithTimeout(config.checkpoint_interval)) {
      if (absl::Status s = SignCheckpointsAndUpdate(ledger, ledger_metrics, ledgers, absl::Now());
          !s.ok()) {
        LogWarning("signing checkpoints failed", {{"status", s.ToString()}});
      }
      if (absl::Now() < next_purge) continue;
      next_purge = absl::Now() + absl::Minutes(1);
      absl::StatusOr<int64_t> purged = ledger.PurgeForgotten(config.forgotten_retention);
      if (!purged.ok()) {
        LogWarning("removing expired forgettings failed", {{"status", purged.status().ToString()}});
      } else if (*purged > 0) {
        LogInfo("removed expired forgettings",
                {{"count", absl::StrCat(*purged)},
                 {"older_than", absl::FormatDuration(config.forgotten_retention)}});
      }
    }
  });

  absl::Status served = runner.RunUntilSignal();
  if (reachable != nullptr) {
    ping_pool->Close();  // A ping blocked on the database returns at once.
    reachable->Stop();
  }
  stop_signing.Notify();
  signing.join();
  if (!served.ok()) return Fail(served);
  return 0;
}

}  // namespace
}  // namespace policy::audit

int main(int argc, char** argv) { return policy::audit::Main(argc, argv); }
