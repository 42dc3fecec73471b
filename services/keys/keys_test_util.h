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

// The events in `store`'s outbox, oldest first.
inline std::vector<KeyEvent> OutboxEvents(KeyStore& store) {
  std::vector<KeyEvent> events;
  absl::StatusOr<std::vector<OutboxEvent>> outbox = store.ReadOutbox(1 << 20);
  if (!outbox.ok()) return events;
  for (const OutboxEvent& entry : *outbox) events.push_back(entry.event);
  return events;
}

inline std::vector<KeyEvent::Type> OutboxTypes(KeyStore& store) {
  std::vector<KeyEvent::Type> types;
  for (const KeyEvent& event : OutboxEvents(store)) types.push_back(event.type);
  return types;
}

// The keys domain wired in memory: a store, a lifecycle and a verifier watching the store,
// with `keys` project keys issued up front (their secrets in `secrets`).
struct InMemoryKeys {
  InMemoryKeys(Clock* clock, int keys, absl::Duration max_staleness = absl::InfiniteDuration())
      : pepper(TestPepper()),
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
