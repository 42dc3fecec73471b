// Verification of a stored ledger in memory (the goal: at least a million entries per second
// on one core): every entry's leaf encoded and hashed, the tree rebuilt, the stored subtree
// hashes compared and the signed checkpoints checked, as AuditLedger::Verify and
// tools/audit_verify do. Prints figures; asserts nothing about time.
//
//   <build dir>/services/audit/audit_verifier_benchmark --benchmark_min_time=1
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "common/clock/clock.h"
#include "common/crypto/crypto.h"
#include "services/audit/checkpoint.h"
#include "services/audit/entry.h"
#include "services/audit/ledger.h"
#include "services/audit/ledger_store.h"
#include "services/audit/memory_ledger_store.h"
#include "services/audit/subjects.h"
#include "services/audit/verifier.h"

namespace policy::audit {
namespace {

const LedgerRef kLedger{"support-eu", "production"};

// A ledger of `size` api_call entries shaped like the service's: sealed actor, model,
// tokens, latency, two metadata pairs, a content hash and a request id.
struct Fixture {
  std::vector<Entry> entries;
  std::vector<Checkpoint> checkpoints;  // One every 100,000 entries and one at the end.
  std::unique_ptr<CheckpointSigner> signer;
};

const Fixture& LedgerOf(size_t size) {
  static auto* fixtures = new std::map<size_t, Fixture>();
  auto [it, inserted] = fixtures->try_emplace(size);
  Fixture& f = it->second;
  if (!inserted) return f;
  f.signer = CheckpointSigner::Create(crypto::RandomBytes(32).value()).value();
  const absl::Time start = absl::FromUnixMicros(1'780'000'000'000'000);
  f.entries.reserve(size);
  for (size_t i = 0; i < size; ++i) {
    Entry e;
    e.ledger = kLedger;
    e.time = start + absl::Microseconds(static_cast<int64_t>(i) * 250);
    e.action = Action::kApiCall;
    e.actor = {crypto::RandomBytes(32).value(), crypto::RandomBytes(12 + 24 + 16).value()};
    e.model = "gpt-4o";
    e.tokens = 500 + static_cast<int64_t>(i % 3000);
    e.latency = absl::Microseconds(1200 + static_cast<int64_t>(i % 900));
    e.metadata = {{"endpoint", "azure-westeurope"}, {"decision", "allow"}};
    e.content_hash = crypto::RandomBytes(32).value();
    e.request_id = absl::StrCat("req-", i, "-7f3a9c2e51d04b8e");
    f.entries.push_back(std::move(e));
  }
  CompactTree tree;
  for (size_t done = 0; done < size;) {
    const size_t n = std::min<size_t>(100'000, size - done);
    SealEntries(tree, absl::MakeSpan(f.entries).subspan(done, n));
    done += n;
    f.checkpoints.push_back(f.signer->Sign(kLedger, done, tree.Root(), start).value());
  }
  return f;
}

// LedgerVerifier over entries already in memory: the verifier's own cost.
void BM_VerifyEntries(benchmark::State& state) {
  const Fixture& f = LedgerOf(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    LedgerVerifier verifier(kLedger, CheckpointKeys({f.signer->public_key()}), f.checkpoints);
    for (const Entry& e : f.entries) verifier.Add(e);
    IntegrityReport report = verifier.Finish().value();
    if (!report.valid) state.SkipWithError(report.problem.c_str());
    benchmark::DoNotOptimize(report);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_VerifyEntries)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->UseRealTime();

// AuditLedger::Verify over a memory store: the service's path, reading the ledger in pages
// (copying entries out of the store included).
void BM_AuditLedgerVerify(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const Fixture& f = LedgerOf(size);
  MemoryLedgerStore store;
  for (size_t done = 0; done < size; done += 100'000) {
    std::vector<Entry> batch(f.entries.begin() + done,
                             f.entries.begin() + std::min(size, done + 100'000));
    if (!store.Append(std::move(batch), {}).ok()) state.SkipWithError("append failed");
  }
  for (const Checkpoint& c : f.checkpoints) {
    if (!store.AddCheckpoint(c).ok()) state.SkipWithError("checkpoint failed");
  }
  auto subjects = SubjectCipher::Create(crypto::RandomBytes(32).value()).value();
  FakeClock clock(absl::Now());
  AuditLedger ledger(&store, subjects.get(), f.signer.get(), &clock);
  for (auto _ : state) {
    IntegrityReport report = ledger.Verify(kLedger).value();
    if (!report.valid || report.entries_checked != size) {
      state.SkipWithError(report.problem.c_str());
    }
    benchmark::DoNotOptimize(report);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_AuditLedgerVerify)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->UseRealTime();

// The leaf encoding alone: the part of a leaf's cost that is not hashing.
void BM_EncodeLeafData(benchmark::State& state) {
  const Fixture& f = LedgerOf(1'000'000);
  size_t i = 0;
  for (auto _ : state) {
    std::string data = EncodeLeafData(f.entries[i]);
    benchmark::DoNotOptimize(data);
    if (++i == f.entries.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EncodeLeafData);

}  // namespace
}  // namespace policy::audit
