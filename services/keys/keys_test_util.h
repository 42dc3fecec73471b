#ifndef POLICY_SERVICES_KEYS_KEYS_TEST_UTIL_H_
#define POLICY_SERVICES_KEYS_KEYS_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "common/clock/clock.h"
#include "services/keys/key_events.h"
#include "services/keys/key_lifecycle.h"
#include "services/keys/key_store.h"
#include "services/keys/key_verifier.h"
#include "services/keys/memory_key_store.h"
#include "services/keys/pepper.h"

namespace policy::keys {

inline std::unique_ptr<Pepper> TestPepper() {
  return *Pepper::Create("test-pepper-0123456789abcdef0123456789abcdef");
}

// Empties schema `keys` between PostgreSQL tests (pg::TestDatabase::Reset). Migration 006
// refuses TRUNCATE of keys.api_keys; the tables' owner turns that trigger off for this one
// transaction, so no other session ever sees it off.
inline constexpr char kResetKeysSql[] =
    "ALTER TABLE keys.api_keys DISABLE TRIGGER api_keys_never_truncated; "
    "TRUNCATE keys.api_keys, keys.requests, keys.ledger_outbox; "
    "ALTER TABLE keys.api_keys ENABLE TRIGGER api_keys_never_truncated";

// The records in `store`'s outbox, oldest first.
inline std::vector<ledger::LedgerRecord> OutboxRecords(KeyStore& store) {
  std::vector<ledger::LedgerRecord> records;
  absl::StatusOr<std::vector<ledger::OutboxEntry>> outbox = store.outbox().Read(1 << 20);
  if (!outbox.ok()) return records;
  for (const ledger::OutboxEntry& entry : *outbox) records.push_back(entry.record);
  return records;
}

// Their actions ("KEY_CREATED", ...), oldest first.
inline std::vector<std::string> OutboxActions(KeyStore& store) {
  std::vector<std::string> actions;
  for (const ledger::LedgerRecord& record : OutboxRecords(store)) actions.push_back(record.action);
  return actions;
}

// The keys domain wired in memory: a store, a lifecycle and a verifier watching the store,
// with `keys` project keys issued up front (their secrets in `secrets`).
struct InMemoryKeys {
  InMemoryKeys(Clock* clock, int keys, absl::Duration max_staleness = absl::InfiniteDuration())
      : store(clock),
        pepper(TestPepper()),
        lifecycle(&store, pepper.get(), clock, KeyPolicy{}),
        verifier(pepper.get(), clock, max_staleness) {
    store.Watch(&verifier);
    for (int i = 0; i < keys; ++i) {
      CreateKeyParams params;
      params.owner = {PrincipalType::kMember, "member-" + std::to_string(i % 500)};
      params.project = "proj-" + std::to_string(i % 20);
      params.scopes = {"chat.completions", "embeddings"};
      secrets.push_back(lifecycle.Create(params)->secret);
    }
  }
  ~InMemoryKeys() { store.StopWatching(); }

  MemoryKeyStore store;
  std::unique_ptr<Pepper> pepper;
  KeyLifecycle lifecycle;
  KeyVerifier verifier;
  std::vector<std::string> secrets;
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_KEYS_TEST_UTIL_H_
