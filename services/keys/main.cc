// The keys service binary: configuration, store, verifier, lifecycle, server.
#include <cstdio>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/clock/clock.h"
#include "common/config/config.h"
#include "common/ledger/audit_ledger_client.h"
#include "common/ledger/outbox_relay.h"
#include "common/log/failure_log.h"
#include "common/log/log.h"
#include "common/metrics/staleness_gauge.h"
#include "common/pg/pool.h"
#include "common/pg/privileges.h"
#include "common/pg/storage_options.h"
#include "common/server/blocking_pool.h"
#include "common/server/server_runner.h"
#include "common/tls/tls_options.h"
#include "prometheus/gauge.h"
#include "services/keys/key_lifecycle.h"
#include "services/keys/key_verifier.h"
#include "services/keys/keys_config.h"
#include "services/keys/keys_migrations.h"
#include "services/keys/keys_service.h"
#include "services/keys/memory_key_store.h"
#include "services/keys/postgres_key_store.h"

namespace policy::keys {
namespace {

int Fail(const absl::Status& status) {
  LogError("keys failed", {{"status", status.ToString()}});
  return 1;
}

int Main(int argc, char** argv) {
  server::PrepareServerProcess();
  KeysConfig config;
  absl::StatusOr<bool> run = config::LoadServiceConfig("keys", argc, argv, config);
  if (!run.ok()) return Fail(run.status());
  if (!*run) return 0;

  Clock* clock = Clock::Real();
  std::unique_ptr<pg::Pool> pool;
  std::unique_ptr<KeyStore> store;
  absl::StatusOr<bool> done = pg::PrepareSchema(config.storage, "keys", Migrations());
  if (!done.ok()) return Fail(done.status());
  if (*done) return 0;
  if (config.storage.postgres()) {
    pool = std::make_unique<pg::Pool>(config.storage.pool_options());
    if (absl::Status s = pg::RetryWhileUnavailable(
            [&] { return pg::CheckPrivileges(pool.get(), "keys", PostgresKeyStore::Privileges()); },
            config.storage.database_start_wait);
        !s.ok()) {
      return Fail(s);
    }
    store = std::make_unique<PostgresKeyStore>(pool.get(), clock, config.storage.watch_heartbeat,
                                               config.max_clock_skew);
  } else {
    store = std::make_unique<MemoryKeyStore>(clock);
  }

  absl::StatusOr<std::unique_ptr<Pepper>> pepper = Pepper::Create(config.pepper);
  if (!pepper.ok()) return Fail(pepper.status());
  server::ServerRunner runner(config.server);
  // The store's outbox holds each change's ledger records; the relay takes them to the audit
  // ledger or, without an audit target, to the log. Every replica sharing a database needs
  // the same audit_target.
  std::unique_ptr<ledger::LedgerDestination> destination = ledger::OpenLedgerDestination(
      config.audit_target, tls::ChannelCredentials(config.server.tls));
  ledger::OutboxRelay relay(&store->outbox(), destination.get(), ledger::OutboxRelayOptions{},
                            "keys", &runner.metrics_registry());
  KeyLifecycle lifecycle(store.get(), pepper->get(), clock, config.policy);

  if (!config.bootstrap_admin.empty()) {
    absl::StatusOr<IssuedKey> admin =
        lifecycle.BootstrapAdmin(Principal{PrincipalType::kMember, config.bootstrap_admin});
    if (!admin.ok()) return Fail(admin.status());
    std::printf("key_id=%s\nsecret=%s\n", admin->key.key_id.c_str(), admin->secret.c_str());
    if (!relay.Flush(absl::Seconds(10))) {
      LogWarning(config.storage.postgres()
                     ? "the admin key's creation waits in the outbox for the audit ledger"
                     : "the admin key's creation was not recorded in the audit ledger");
    }
    return 0;
  }
  relay.Start();

  KeyVerifier verifier(pepper->get(), clock, config.storage.max_staleness);
  store->Watch(&verifier);
  server::BlockingPool blocking(static_cast<int>(config.blocking_threads),
                                static_cast<int>(config.blocking_queue));
  KeysService service(&lifecycle, &verifier, &blocking, clock, &runner.metrics_registry(),
                      KeysServiceOptions{.reveal_denial_reasons = config.reveal_denial_reasons});
  runner.AddService(&service, v1::KeyService::service_full_name());

  auto& cache_entries = prometheus::BuildGauge()
                            .Name("policy_keys_cache_entries")
                            .Help("Keys held in the verification cache.")
                            .Register(runner.metrics_registry())
                            .Add({});
  auto& cache_in_sync = prometheus::BuildGauge()
                            .Name("policy_keys_cache_in_sync")
                            .Help(
                                "1 while the verification cache is within its staleness "
                                "bound, 0 while verification fails closed.")
                            .Register(runner.metrics_registry())
                            .Add({});
  metrics::StalenessGauge cache_staleness(
      runner.metrics_registry(), "policy_keys_cache_staleness_seconds",
      "Time since the verification cache last proved itself in sync with PostgreSQL; -1 "
      "before the first load.");
  auto& expiring = prometheus::BuildGauge()
                       .Name("policy_keys_expiring_soon")
                       .Help(
                           "Active keys that expire within rotation_warning (the rotation "
                           "report's warnings).")
                       .Register(runner.metrics_registry())
                       .Add({});
  runner.SetReadinessProbe([&] {
    const bool in_sync = verifier.InSync();
    cache_in_sync.Set(in_sync ? 1 : 0);
    cache_staleness.Set(verifier.Staleness());
    cache_entries.Set(static_cast<double>(verifier.size()));
    return in_sync;
  });

  absl::Notification stop_sweeping;
  std::thread sweeper([&] {
    FailureLog failures("sweep failed", "sweep works again");
    while (!stop_sweeping.WaitForNotificationWithTimeout(config.sweep_interval)) {
      failures.Observe(lifecycle.Sweep());
      expiring.Set(
          static_cast<double>(verifier.CountExpiringWithin(config.policy.rotation_warning)));
    }
  });

  absl::Status served = runner.RunUntilSignal();
  stop_sweeping.Notify();
  sweeper.join();
  store->StopWatching();
  // PostgreSQL keeps undelivered records for the next relay; memory loses them with the process.
  if (!config.storage.postgres() && !relay.Flush(absl::Seconds(5))) {
    LogError("the audit service did not take every key event's record before shutdown");
  }
  relay.Stop();
  if (!served.ok()) return Fail(served);
  return 0;
}

}  // namespace
}  // namespace policy::keys

int main(int argc, char** argv) { return policy::keys::Main(argc, argv); }
