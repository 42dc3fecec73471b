// Durable ledger appends against a real PostgreSQL, next to a plain multi-row INSERT of the
// same rows into a table of the same shape (same columns and indexes, no triggers, no
// hashing, no idempotency probe, no lock) in the same run. Prints figures; never fails on
// them. The figures are as durable as the server's settings, which are printed first:
// measure against a cluster with fsync and synchronous_commit on (tools/dev bench starts one).
//
//   audit_append_benchmark --database=postgresql://... [--entries=50000] [--batch=1000]
//                          [--clients=1000] [--rounds=3]
//
// Phases, alternated for `rounds`:
//   service path  `clients` appends in flight through the AppendBatcher (group commit, at
//                 most `batch` entries per transaction, `writers` batches committing at once),
//                 each reply submitting the next, as concurrent Append RPCs do;
//   ledger batch  AuditLedger::AppendBatch of `batch` entries at a time, one after another;
//   plain INSERT  the rows the ledger batch stored, `batch` rows per INSERT and transaction.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/clock/clock.h"
#include "common/config/config.h"
#include "common/crypto/crypto.h"
#include "common/pg/migrations.h"
#include "common/pg/pool.h"
#include "common/pg/statement.h"
#include "services/audit/append_batcher.h"
#include "services/audit/audit_migrations.h"
#include "services/audit/checkpoint.h"
#include "services/audit/ledger.h"
#include "services/audit/postgres_ledger_store.h"
#include "services/audit/subjects.h"

namespace policy::audit {
namespace {

using SteadyClock = std::chrono::steady_clock;

struct Options {
  std::string database;
  int64_t entries = 50'000;
  int64_t batch = 1000;
  int64_t clients = 1000;
  int64_t writers = 2;
  int64_t rounds = 3;
};

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// An api_call entry as the edge records one: one of 100 members, a model, tokens, latency,
// two metadata pairs, a content hash and a request id unique to the run.
EntryInput MakeInput(const LedgerRef& ledger, const std::string& run, int64_t i) {
  EntryInput in;
  in.action = Action::kApiCall;
  in.actor = absl::StrCat("member-", i % 100, "@example.com");
  in.ledger = ledger;
  in.model = "gpt-4o";
  in.tokens = 500 + i % 3000;
  in.latency = absl::Microseconds(1200 + i % 900);
  in.metadata = {{"endpoint", "azure-westeurope"}, {"decision", "allow"}};
  in.content_hash = std::string(32, static_cast<char>(i));
  in.request_id = absl::StrCat(run, "-", i);
  return in;
}

absl::Status Exec(pg::Pool& pool, const std::string& sql) {
  return pool.Transact([&](pqxx::work& tx) {
    tx.exec(sql);
    return absl::OkStatus();
  });
}

std::string Setting(pg::Pool& pool, const std::string& name) {
  std::string value = "?";
  (void)pool.Transact([&](pqxx::work& tx) {
    value = tx.exec1("SHOW " + tx.quote_name(name))[0].c_str();
    return absl::OkStatus();
  });
  return value;
}

// `clients` appends kept in flight through the batcher, as that many concurrent Append RPCs
// on gRPC's callback API: each reply (run on a batcher's writer, as a reactor's Finish is)
// submits the next append, until `entries` were acknowledged. Returns appends per second.
absl::StatusOr<double> ServicePath(AuditLedger& ledger, const Options& o, const LedgerRef& ref,
                                   const std::string& run) {
  std::vector<EntryInput> inputs;
  inputs.reserve(static_cast<size_t>(o.entries));
  for (int64_t i = 0; i < o.entries; ++i) inputs.push_back(MakeInput(ref, run, i));
  AppendBatcher batcher(&ledger, static_cast<size_t>(o.batch), 1'000'000,
                        static_cast<int>(o.writers));
  std::atomic<int64_t> next{0};
  absl::Mutex mu;
  absl::Status first_error;
  absl::BlockingCounter acknowledged(static_cast<int>(o.entries));
  std::function<void()> submit_next = [&] {
    const int64_t i = next++;
    if (i >= o.entries) return;
    batcher.Submit(std::move(inputs[static_cast<size_t>(i)]),
                   [&](absl::StatusOr<AppendOutcome> outcome) {
                     const absl::Status status = outcome.ok() ? outcome->status : outcome.status();
                     if (!status.ok()) {
                       absl::MutexLock lock(&mu);
                       if (first_error.ok()) first_error = status;
                     }
                     submit_next();
                     acknowledged.DecrementCount();
                   });
  };
  const SteadyClock::time_point start = SteadyClock::now();
  for (int64_t c = 0; c < std::min(o.clients, o.entries); ++c) submit_next();
  acknowledged.Wait();
  const double elapsed = Seconds(SteadyClock::now() - start);
  absl::MutexLock lock(&mu);
  if (!first_error.ok()) return first_error;
  return static_cast<double>(o.entries) / elapsed;
}

// AppendBatch of `batch` inputs at a time. Returns appends per second and the stored rows.
absl::StatusOr<double> LedgerBatches(AuditLedger& ledger, const Options& o, const LedgerRef& ref,
                                     const std::string& run, std::vector<Entry>* stored) {
  std::vector<std::vector<EntryInput>> batches;
  for (int64_t i = 0; i < o.entries; i += o.batch) {
    std::vector<EntryInput>& b = batches.emplace_back();
    for (int64_t j = i; j < std::min(o.entries, i + o.batch); ++j) {
      b.push_back(MakeInput(ref, run, j));
    }
  }
  stored->clear();
  const SteadyClock::time_point start = SteadyClock::now();
  for (const std::vector<EntryInput>& b : batches) {
    absl::StatusOr<std::vector<AppendOutcome>> outcomes = ledger.AppendBatch(b);
    if (!outcomes.ok()) return outcomes.status();
    for (AppendOutcome& outcome : *outcomes) {
      if (!outcome.status.ok()) return outcome.status;
      stored->push_back(std::move(outcome.entry));
    }
  }
  return static_cast<double>(o.entries) / Seconds(SteadyClock::now() - start);
}

// The same rows, `batch` per INSERT and transaction, into bench.plain_entries.
absl::StatusOr<double> PlainInsert(pg::Pool& pool, const Options& o, const std::vector<Entry>& rows,
                                   int64_t ledger_id) {
  const SteadyClock::time_point start = SteadyClock::now();
  for (size_t i = 0; i < rows.size(); i += static_cast<size_t>(o.batch)) {
    const size_t end = std::min(rows.size(), i + static_cast<size_t>(o.batch));
    absl::Status s = pool.Transact([&](pqxx::work& tx) {
      pg::Statement insert(
          "INSERT INTO audit_bench.plain_entries (ledger_id, idx, recorded_at, action, actor_ref, "
          "actor_sealed, model, tokens, latency_us, outcome, metadata, content_hash, request_id, "
          "subject_ref, subject_sealed, leaf_hash, completed) VALUES ");
      for (size_t r = i; r < end; ++r) {
        const Entry& e = rows[r];
        insert.Sql(r == i ? "(" : ",(");
        insert.Int(ledger_id);
        insert.Sql(",").Int(static_cast<int64_t>(e.index));
        insert.Sql(",").Time(e.time);
        insert.Sql(",").Text(ActionName(e.action));
        insert.Sql(",").Bytes(e.actor.ref);
        insert.Sql(",").Bytes(e.actor.sealed);
        insert.Sql(",").Text(e.model);
        insert.Sql(",").Int(e.tokens);
        insert.Sql(",").Int(absl::ToInt64Microseconds(e.latency));
        insert.Sql(",").Text(OutcomeName(e.outcome));
        insert.Sql(",").Bytes(EncodeMetadata(e.metadata));
        insert.Sql(",").Bytes(e.content_hash);
        insert.Sql(",").Text(e.request_id);
        insert.Sql(",").Bytes(e.subject.ref);
        insert.Sql(",").Bytes(e.subject.sealed);
        insert.Sql(",").Bytes(AsBytes(e.leaf_hash));
        insert.Sql(",").Bytes(EncodeHashes(e.completed));
        insert.Sql(")");
      }
      insert.Exec(tx);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
  }
  return static_cast<double>(rows.size()) / Seconds(SteadyClock::now() - start);
}

int Main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Options o;
  config::Parser parser("audit_append_benchmark");
  parser.AddString("database", &o.database, "PostgreSQL URL (the role needs CREATE on it)");
  parser.AddInt("entries", &o.entries, "entries per phase");
  parser.AddInt("batch", &o.batch, "entries per transaction (the batcher's maximum)");
  parser.AddInt("clients", &o.clients, "service path: appends in flight");
  parser.AddInt("rounds", &o.rounds, "rounds of the three phases");
  parser.AddInt("writers", &o.writers, "service path: the batcher's writer threads");
  if (absl::Status s = parser.ParseProcess(argc, argv); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 2;
  }
  if (parser.help_requested()) {
    std::fputs(parser.Usage().c_str(), stdout);
    return 0;
  }
  if (o.database.empty() || o.entries < 1 || o.batch < 1 || o.clients < 1 || o.rounds < 1) {
    std::fprintf(stderr, "--database is required; entries, batch, clients, rounds positive\n");
    return 2;
  }
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "audit_append_benchmark: %s\n", s.ToString().c_str());
    return 1;
  };
  if (absl::Status s = pg::ApplyMigrations(o.database, "audit", Migrations()); !s.ok()) {
    return fail(s);
  }
  pg::Pool pool(pg::PoolOptions{.url = o.database, .size = 4});
  if (absl::Status s = PostgresLedgerStore::CheckRole(&pool, kWriterRole); !s.ok()) return fail(s);
  if (absl::Status s = Exec(pool,
                            "CREATE SCHEMA IF NOT EXISTS audit_bench; "
                            "CREATE TABLE IF NOT EXISTS audit_bench.plain_entries "
                            "(LIKE audit.entries INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                            "INCLUDING INDEXES)");
      !s.ok()) {
    return fail(s);
  }
  std::printf("server: fsync=%s synchronous_commit=%s wal_sync_method=%s full_page_writes=%s\n",
              Setting(pool, "fsync").c_str(), Setting(pool, "synchronous_commit").c_str(),
              Setting(pool, "wal_sync_method").c_str(), Setting(pool, "full_page_writes").c_str());
  std::printf("%lld entries per phase, %lld per transaction, %lld service-path clients\n",
              static_cast<long long>(o.entries), static_cast<long long>(o.batch),
              static_cast<long long>(o.clients));
  std::fflush(stdout);

  PostgresLedgerStore store(&pool, kWriterRole);
  auto subjects = SubjectCipher::Create(crypto::RandomBytes(32).value()).value();
  auto signer = CheckpointSigner::Create(crypto::RandomBytes(32).value()).value();
  AuditLedger ledger(&store, subjects.get(), signer.get(), Clock::Real());
  const std::string run = absl::StrCat("bench", absl::ToUnixMicros(absl::Now()));

  std::vector<double> service, batches, plain;
  std::vector<Entry> stored;
  for (int64_t round = 1; round <= o.rounds; ++round) {
    const std::string tag = absl::StrCat(run, "-", round);
    const LedgerRef service_ledger{absl::StrCat(tag, "-s"), "production"};
    const LedgerRef batch_ledger{absl::StrCat(tag, "-b"), "production"};
    absl::StatusOr<double> s = ServicePath(ledger, o, service_ledger, tag);
    if (!s.ok()) return fail(s.status());
    absl::StatusOr<double> b = LedgerBatches(ledger, o, batch_ledger, tag, &stored);
    if (!b.ok()) return fail(b.status());
    if (absl::Status t = Exec(pool, "TRUNCATE audit_bench.plain_entries"); !t.ok()) return fail(t);
    absl::StatusOr<double> p = PlainInsert(pool, o, stored, round);
    if (!p.ok()) return fail(p.status());
    std::printf(
        "round %lld  service path %8.0f appends/s  ledger batch %8.0f appends/s  plain INSERT "
        "%8.0f rows/s\n",
        static_cast<long long>(round), *s, *b, *p);
    std::fflush(stdout);
    service.push_back(*s);
    batches.push_back(*b);
    plain.push_back(*p);
  }
  const double plain_median = Median(plain);
  std::printf(
      "median   service path %.0f appends/s (%.2fx plain), ledger batch %.0f appends/s (%.2fx "
      "plain), plain INSERT %.0f rows/s\n",
      Median(service), Median(service) / plain_median, Median(batches),
      Median(batches) / plain_median, plain_median);
  (void)Exec(pool, "DROP SCHEMA audit_bench CASCADE");
  return 0;
}

}  // namespace
}  // namespace policy::audit

int main(int argc, char** argv) { return policy::audit::Main(argc, argv); }
