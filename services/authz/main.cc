// The authz service binary: configuration, stores, cache, rate limiter, server.
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/client/channel.h"
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
#include "common/status/status.h"
#include "common/tls/tls_options.h"
#include "prometheus/gauge.h"
#include "services/authz/authorizer.h"
#include "services/authz/authz_config.h"
#include "services/authz/authz_migrations.h"
#include "services/authz/authz_service.h"
#include "services/authz/grpc_key_directory.h"
#include "services/authz/memory_bucket_store.h"
#include "services/authz/memory_org_store.h"
#include "services/authz/org_admin.h"
#include "services/authz/org_cache.h"
#include "services/authz/org_file.h"
#include "services/authz/postgres_bucket_store.h"
#include "services/authz/postgres_org_store.h"

namespace policy::authz {
namespace {

int Fail(const absl::Status& status) {
  LogError("authz failed", {{"status", status.ToString()}});
  return 1;
}

// Applies `path` when the organisation has no members yet; otherwise leaves it alone.
absl::Status Bootstrap(OrgStore& store, const std::string& path, Clock* clock) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  ASSIGN_OR_RETURN(OrgFile file, ParseOrgFile(text.str()));
  ASSIGN_OR_RETURN(Mutated m, store.Mutate(
                                  [&](OrgState& s) -> absl::Status {
                                    if (!s.members.empty()) return absl::OkStatus();
                                    return ApplyOrgFile(file, clock->Now(), s);
                                  },
                                  clock->Now(), OrgChangeSource{std::string(kServiceActor)}));
  if (m.after != m.before) {
    LogInfo("organisation bootstrapped", {{"file", path},
                                          {"version", absl::StrCat(m.after->version)},
                                          {"members", absl::StrCat(m.after->members.size())}});
  }
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  server::PrepareServerProcess();
  AuthzConfig config;
  absl::StatusOr<bool> run = config::LoadServiceConfig("authz", argc, argv, config);
  if (!run.ok()) return Fail(run.status());
  if (!*run) return 0;

  Clock* clock = Clock::Real();
  std::unique_ptr<pg::Pool> pool;
  std::unique_ptr<OrgStore> store;
  std::unique_ptr<BucketStore> buckets;
  absl::StatusOr<bool> done = pg::PrepareSchema(config.storage, "authz", Migrations());
  if (!done.ok()) return Fail(done.status());
  if (*done) return 0;
  if (config.storage.postgres()) {
    pool = std::make_unique<pg::Pool>(config.storage.pool_options());
    std::vector<pg::Privilege> privileges = PostgresOrgStore::Privileges();
    for (pg::Privilege& p : PostgresBucketStore::Privileges()) privileges.push_back(std::move(p));
    if (absl::Status s = pg::RetryWhileUnavailable(
            [&] { return pg::CheckPrivileges(pool.get(), "authz", privileges); },
            config.storage.database_start_wait);
        !s.ok()) {
      return Fail(s);
    }
    store = std::make_unique<PostgresOrgStore>(pool.get(), clock, config.storage.watch_heartbeat);
    buckets = std::make_unique<PostgresBucketStore>(pool.get(),
                                                    PostgresBucketStore::RefillClock::kDatabase);
  } else {
    store = std::make_unique<MemoryOrgStore>();
    buckets = std::make_unique<MemoryBucketStore>();
  }
  if (!config.bootstrap_org_file.empty()) {
    if (absl::Status s = Bootstrap(*store, config.bootstrap_org_file, clock); !s.ok()) {
      return Fail(s);
    }
  }

  OrgCache cache(clock, config.storage.max_staleness);
  store->Watch(&cache);
  RateLimiter limiter(buckets.get(), config.rate_limits);
  Authorizer authorizer(&cache, &limiter, clock);
  OrgAdmin admin(store.get(), &cache, clock);
  server::BlockingPool blocking(static_cast<int>(config.blocking_threads),
                                static_cast<int>(config.blocking_queue));
  server::ServerRunner runner(config.server);
  // The store's outbox holds each change's records; the relay takes them to the audit ledger
  // or, without an audit target, to the log.
  std::unique_ptr<ledger::LedgerDestination> destination = ledger::OpenLedgerDestination(
      config.audit_target, tls::ChannelCredentials(config.server.tls));
  ledger::OutboxRelay relay(&store->outbox(), destination.get(), ledger::OutboxRelayOptions{},
                            "authz", &runner.metrics_registry());
  relay.Start();
  std::unique_ptr<KeyDirectory> keys;
  if (!config.keys_address.empty()) {
    keys = NewGrpcKeyDirectory(
        client::OpenChannel(config.keys_address, tls::ChannelCredentials(config.server.tls)));
  }
  AuthzService service(&authorizer, &admin, &cache, keys.get(), &blocking, clock,
                       &runner.metrics_registry());
  runner.AddService(&service, v1::AuthzService::service_full_name());

  auto& in_sync = prometheus::BuildGauge()
                      .Name("policy_authz_snapshot_in_sync")
                      .Help(
                          "1 while the organisation snapshot is within its staleness bound, 0 "
                          "while decisions fail closed.")
                      .Register(runner.metrics_registry())
                      .Add({});
  metrics::StalenessGauge staleness(runner.metrics_registry(),
                                    "policy_authz_snapshot_staleness_seconds",
                                    "Time since the snapshot last proved itself in sync; -1 "
                                    "before the first load.");
  auto& version = prometheus::BuildGauge()
                      .Name("policy_authz_org_version")
                      .Help("Version of the organisation the snapshot holds.")
                      .Register(runner.metrics_registry())
                      .Add({});
  runner.SetReadinessProbe([&] {
    const bool ok = cache.InSync();
    in_sync.Set(ok ? 1 : 0);
    staleness.Set(cache.Staleness());
    version.Set(static_cast<double>(cache.version()));
    return ok;
  });

  absl::Notification stop;
  std::thread lease_returner([&] {
    FailureLog failures("returning rate-limit leases failed",
                        "returning rate-limit leases works again");
    while (!stop.WaitForNotificationWithTimeout(config.rate_limits.lease_lifetime / 2)) {
      failures.Observe(limiter.ReturnLeases(clock->Now()));
    }
  });

  absl::Status served = runner.RunUntilSignal();
  stop.Notify();
  lease_returner.join();
  if (absl::Status s = limiter.ReturnLeases(absl::InfiniteFuture()); !s.ok()) {
    LogWarning("returning rate-limit leases at shutdown failed", {{"status", s.ToString()}});
  }
  store->StopWatching();
  // PostgreSQL keeps undelivered records for the next relay; memory loses them with the
  // process.
  if (!config.storage.postgres() && !relay.Flush(absl::Seconds(5))) {
    LogError("the audit service did not take every organisation change before shutdown");
  }
  relay.Stop();
  if (!served.ok()) return Fail(served);
  return 0;
}

}  // namespace
}  // namespace policy::authz

int main(int argc, char** argv) { return policy::authz::Main(argc, argv); }
