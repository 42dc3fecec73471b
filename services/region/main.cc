// The region service binary: configuration, store, registry, sync loop, server.
#include <unistd.h>

#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/client/channel.h"
#include "common/clock/clock.h"
#include "common/config/config.h"
#include "common/ledger/audit_ledger_client.h"
#include "common/ledger/outbox.h"
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
#include "services/region/endpoint_registry.h"
#include "services/region/memory_endpoint_store.h"
#include "services/region/postgres_endpoint_store.h"
#include "services/region/region_config.h"
#include "services/region/region_metrics.h"
#include "services/region/region_migrations.h"
#include "services/region/region_service.h"
#include "services/region/registry_sync.h"

namespace policy::region {
namespace {

int Fail(const absl::Status& status) {
  LogError("region failed", {{"status", status.ToString()}});
  return 1;
}

std::string DefaultReplica() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] != '\0' ? host : "region", "-", getpid());
}

int Main(int argc, char** argv) {
  server::PrepareServerProcess();
  RegionConfig config;
  absl::StatusOr<bool> run = config::LoadServiceConfig("region", argc, argv, config);
  if (!run.ok()) return Fail(run.status());
  if (!*run) return 0;

  absl::StatusOr<bool> done = pg::PrepareSchema(config.storage, "region", Migrations());
  if (!done.ok()) return Fail(done.status());
  if (*done) return 0;
  Clock* clock = Clock::Real();
  std::unique_ptr<pg::Pool> pool;
  std::unique_ptr<EndpointStore> store;
  if (config.storage.postgres()) {
    pool = std::make_unique<pg::Pool>(config.storage.pool_options());
    if (absl::Status s = pg::RetryWhileUnavailable(
            [&] {
              return pg::CheckPrivileges(pool.get(), "region", PostgresEndpointStore::Privileges());
            },
            config.storage.database_start_wait);
        !s.ok()) {
      return Fail(s);
    }
    store = std::make_unique<PostgresEndpointStore>(pool.get());
  } else {
    store = std::make_unique<MemoryEndpointStore>(clock);
  }

  EndpointRegistry registry(clock, config.breaker());
  const std::string replica = config.replica.empty() ? DefaultReplica() : config.replica;
  RegistrySync sync(store.get(), &registry, replica, clock);
  if (absl::Status s = sync.SyncOnce(); !s.ok()) {
    LogWarning("registry not loaded yet; retrying every sync interval", {{"status", s.ToString()}});
  }
  server::BlockingPool blocking(static_cast<int>(config.blocking_threads),
                                static_cast<int>(config.blocking_queue));
  server::ServerRunner runner(config.server);
  // The store's outbox holds each endpoint change's ledger record; the relay takes them to
  // the audit ledger or, without an audit target, to the log. Every replica sharing a
  // database needs the same audit_target.
  std::unique_ptr<ledger::LedgerDestination> destination;
  if (config.audit_target.empty()) {
    destination = std::make_unique<ledger::LogLedgerDestination>();
  } else {
    destination = std::make_unique<ledger::AuditLedgerClient>(
        client::OpenChannel(config.audit_target, tls::ChannelCredentials(config.server.tls)));
  }
  ledger::OutboxRelay relay(&store->outbox(), destination.get(), ledger::OutboxRelayOptions{},
                            "region", &runner.metrics_registry());
  relay.Start();
  RegionService service(
      &registry, store.get(), &sync, &blocking, clock,
      config.storage.postgres() ? config.storage.max_staleness : absl::InfiniteDuration(),
      2 * config.sync_interval);
  runner.AddService(&service, v1::RegionService::service_full_name());
  RegionMetrics metrics(runner.metrics_registry());
  metrics::StalenessGauge staleness(runner.metrics_registry(),
                                    "policy_region_registry_staleness_seconds",
                                    "Time since the endpoint registry last synced with "
                                    "PostgreSQL; -1 before the first sync.");
  // Reads only what the last finished round left (atomics): never waits for a round, so a
  // round stuck on the database turns readiness NOT_SERVING once max_staleness has passed.
  const absl::Duration ready_within =
      config.storage.postgres() ? config.storage.max_staleness : absl::InfiniteDuration();
  prometheus::Gauge& clock_offset =
      prometheus::BuildGauge()
          .Name("policy_region_clock_offset_seconds")
          .Help(
              "PostgreSQL's clock minus this replica's, as the last sync round measured it; "
              "breaker times are shared on the database's clock.")
          .Register(runner.metrics_registry())
          .Add({});
  runner.SetReadinessProbe([&] {
    staleness.Set(sync.loaded() ? clock->Now() - sync.synced_at() : absl::InfiniteDuration());
    return sync.Ready(ready_within);
  });

  absl::Notification stop_syncing;
  std::thread syncer([&] {
    FailureLog failures("registry sync failed", "registry sync works again");
    while (!stop_syncing.WaitForNotificationWithTimeout(config.sync_interval)) {
      failures.Observe(sync.SyncOnce());
      metrics.Update(registry.Health());
      clock_offset.Set(absl::ToDoubleSeconds(sync.clock_offset()));
    }
  });

  absl::Status served = runner.RunUntilSignal();
  stop_syncing.Notify();
  // A round blocked on the database (a table lock) fails at once rather than hold up the
  // exit; the outbox keeps whatever the relay had not yet sent.
  if (pool != nullptr) pool->Close();
  syncer.join();
  // PostgreSQL keeps undelivered records for the next relay; memory loses them with the
  // process.
  if (!config.storage.postgres() && !relay.Flush(absl::Seconds(5))) {
    LogError("the audit service did not take every endpoint change's record before shutdown");
  }
  relay.Stop();
  if (!served.ok()) return Fail(served);
  return 0;
}

}  // namespace
}  // namespace policy::region

int main(int argc, char** argv) { return policy::region::Main(argc, argv); }
