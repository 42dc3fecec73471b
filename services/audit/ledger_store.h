#ifndef POLICY_SERVICES_AUDIT_LEDGER_STORE_H_
#define POLICY_SERVICES_AUDIT_LEDGER_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/audit/checkpoint.h"
#include "services/audit/entry.h"
#include "services/audit/merkle.h"

namespace policy::audit {

// The result of appending one entry.
struct AppendOutcome {
  absl::Status status;  // FAILED_PRECONDITION: the request id names a different entry.
  Entry entry;          // As stored (the first one, when duplicate).
  bool duplicate = false;
};

struct EntryFilter {
  LedgerRef ledger;
  std::optional<Action> action;
  std::string actor_ref;            // Empty: any actor.
  std::optional<absl::Time> start;  // Inclusive.
  std::optional<absl::Time> end;    // Exclusive.
  uint64_t after_index = 0;         // Entries with index >= after_index.
  size_t limit = 100;
};

// A subject's key as stored: found by the locator or by the subject's pseudonym, the key
// itself wrapped under the master key.
struct SubjectKey {
  std::string locator;
  std::string ref;
  std::string wrapped;
  // A new key given to Append: when its subject was last forgotten as the batch found it
  // (FindForgotten), none when never. Not stored.
  std::optional<absl::Time> forgotten_at;
  bool operator==(const SubjectKey&) const = default;
};

struct LedgerSize {
  LedgerRef ledger;
  uint64_t size = 0;
};

// Where a subject's entries, across ledgers, stand in the order they are exported: by time,
// then ledger (project, environment, bytewise), then index.
struct SubjectCursor {
  absl::Time time;
  LedgerRef ledger;
  uint64_t index = 0;
};
SubjectCursor CursorOf(const Entry& entry);
bool SubjectOrder(const SubjectCursor& a, const SubjectCursor& b);

// Where ledgers live. Implementations: MemoryLedgerStore (tests, --store=memory) and
// PostgresLedgerStore. Thread-safe.
//
// Entries are never changed or removed once appended. Each entry is stored with its leaf hash
// and the hashes of the perfect subtrees it completes, so that any node of the tree is one
// lookup (merkle.h); the verifier never trusts these, it recomputes them.
class LedgerStore {
 public:
  virtual ~LedgerStore() = default;

  // Appends `entries` (their index and hashes are set here; the rest as given) all or
  // nothing, in order within each ledger, together with the subject keys of `new_keys` that
  // an appended entry names (by pseudonym, SubjectKey::ref): in the same transaction, so that a
  // batch that fails, or whose entries naming a key are all refused, stores no key. Appends to
  // one ledger are serialised across every process sharing the store. An entry whose request
  // id its ledger already holds is not appended: its outcome is the stored entry with
  // duplicate set, or FAILED_PRECONDITION when the stored entry records a different request
  // (SameRequest). When this returns OK, every appended entry and stored key is durable.
  //
  // ABORTED, nothing appended or stored, when a key of `new_keys` (distinct locators) has a
  // locator the store holds a key for (a concurrent batch added it) or a forgetting later
  // than its SubjectKey::forgotten_at (the subject was forgotten meanwhile), or when a subject key
  // the entries were sealed with was destroyed meanwhile (a store that keeps keys it handed out
  // checks): look the keys up again (FindSubjectKeys) and seal the entries again. Appends and
  // DeleteSubjectKey are ordered: an append sealed with a key either commits before the key is
  // destroyed or answers ABORTED, never stores entries under a key destroyed before it
  // committed.
  virtual absl::StatusOr<std::vector<AppendOutcome>> Append(std::vector<Entry> entries,
                                                            std::vector<SubjectKey> new_keys) = 0;

  virtual absl::StatusOr<uint64_t> Size(const LedgerRef& ledger) = 0;
  virtual absl::StatusOr<std::vector<LedgerSize>> ListLedgers() = 0;

  // Up to `limit` entries from index `from` on, in index order.
  virtual absl::StatusOr<std::vector<Entry>> ReadRange(const LedgerRef& ledger, uint64_t from,
                                                       size_t limit) = 0;
  // Calls `visit` with the entries from index `from` on, in index order, until it returns
  // false or the ledger's end (as it was when the walk got there). By default in ReadRange
  // chunks; a store may visit its entries where they are.
  virtual absl::Status ForEachEntry(const LedgerRef& ledger, uint64_t from,
                                    const std::function<bool(const Entry&)>& visit);
  // NOT_FOUND when the ledger holds no entry with this request id.
  virtual absl::StatusOr<Entry> FindRequest(const LedgerRef& ledger,
                                            const std::string& request_id) = 0;
  // Entries matching `filter`, in index order.
  virtual absl::StatusOr<std::vector<Entry>> Query(const EntryFilter& filter) = 0;
  // At most `limit` entries of any ledger whose actor or subject has the pseudonym `ref`, in
  // SubjectOrder, after `after` when given.
  virtual absl::StatusOr<std::vector<Entry>> EntriesOfSubject(
      const std::string& ref, const std::optional<SubjectCursor>& after, size_t limit) = 0;

  // The hashes of perfect subtrees of `ledger` (each stored with its last leaf);
  // FAILED_PRECONDITION when one lies beyond the ledger's end.
  virtual absl::StatusOr<absl::flat_hash_map<NodeId, Hash>> NodeHashes(
      const LedgerRef& ledger, absl::Span<const NodeId> nodes) = 0;

  // Stores a signed checkpoint; one of the same ledger and size already stored is kept.
  virtual absl::Status AddCheckpoint(const Checkpoint& checkpoint) = 0;
  // The checkpoint of `tree_size`, or the newest when 0; NOT_FOUND when there is none.
  virtual absl::StatusOr<Checkpoint> GetCheckpoint(const LedgerRef& ledger, uint64_t tree_size) = 0;
  // Every checkpoint of `ledger`, by tree size, smallest first.
  virtual absl::StatusOr<std::vector<Checkpoint>> ListCheckpoints(const LedgerRef& ledger) = 0;
  // At most `limit` checkpoints of `ledger` of tree sizes above `after_size` (none: every
  // size, 0 included), smallest first: a page, read without reading the others.
  virtual absl::StatusOr<std::vector<Checkpoint>> ListCheckpointsAfter(
      const LedgerRef& ledger, std::optional<uint64_t> after_size, size_t limit) = 0;

  // Subject keys (subjects.h); new ones are stored by Append, with the entries naming them.
  // The stored keys of those of `locators` that have one, by locator; none is made. A store
  // may answer from the keys it holds (as it found or stored them), so a key destroyed
  // meanwhile may be among them: an Append sealed with it answers ABORTED.
  virtual absl::StatusOr<absl::flat_hash_map<std::string, SubjectKey>> FindSubjectKeys(
      const std::vector<std::string>& locators) = 0;
  // NOT_FOUND when the locator has no key (never had one, or it was destroyed).
  virtual absl::StatusOr<SubjectKey> GetSubjectKey(const std::string& locator) = 0;
  // The keys of these pseudonyms that still exist.
  virtual absl::StatusOr<absl::flat_hash_map<std::string, SubjectKey>> SubjectKeysByRef(
      const std::vector<std::string>& refs) = 0;
  // Destroys the key; false when there was none. Waits for the appends in progress (which may
  // be storing entries sealed with it) to commit, and appends after it see it gone (Append).
  virtual absl::StatusOr<bool> DeleteSubjectKey(const std::string& locator) = 0;

  // When subjects were forgotten (tombstones): kept for a while after their keys are
  // destroyed, so that a record of a change made before a forgetting, delivered after it, is
  // not sealed for them under a new key (AuditLedger::Append). Keyed by locator.
  // Records that `locator`'s subject was forgotten at `at`; a later forgetting already
  // recorded is kept. As DeleteSubjectKey, waits for the appends in progress to commit, and
  // appends after it see the forgetting (Append).
  virtual absl::Status RecordForgotten(const std::string& locator, absl::Time at) = 0;
  // The forgetting times of those of `locators` that have one, by locator.
  virtual absl::StatusOr<absl::flat_hash_map<std::string, absl::Time>> FindForgotten(
      const std::vector<std::string>& locators) = 0;
  // Removes the forgettings recorded before `before`; returns how many.
  virtual absl::StatusOr<int64_t> PurgeForgotten(absl::Time before) = 0;

  // Entries appended from now on carry `authenticator`'s MAC (Entry::mac); null: none.
  // AuditLedger installs its own on construction.
  void AuthenticateWith(std::shared_ptr<const EntryAuthenticator> authenticator)
      ABSL_LOCKS_EXCLUDED(authenticator_mu_);

 protected:
  // What AuthenticateWith installed; null when nothing was.
  std::shared_ptr<const EntryAuthenticator> authenticator() const
      ABSL_LOCKS_EXCLUDED(authenticator_mu_);

 private:
  mutable absl::Mutex authenticator_mu_;
  std::shared_ptr<const EntryAuthenticator> authenticator_ ABSL_GUARDED_BY(authenticator_mu_);
};

// The outcome status of an entry whose request id its ledger holds for the different entry at
// `index`: FAILED_PRECONDITION naming both.
absl::Status RequestIdUsed(const std::string& request_id, uint64_t index);

// Append's ABORTED answers (seal the entries again with the keys as they are now): a key of its
// `new_keys` is stored already, a concurrent batch having added it; a key its entries were
// sealed with was destroyed meanwhile; a subject of `new_keys` was forgotten meanwhile.
absl::Status SubjectKeyAdded();
absl::Status SubjectKeyDestroyed();
absl::Status SubjectForgottenMeanwhile();

// Sets the index, leaf hash, completed hashes and (when `authenticator` is not null) MAC of
// entries appended after a tree (the stores' shared step): the tree grows by them.
void SealEntries(CompactTree& tree, absl::Span<Entry> entries,
                 const EntryAuthenticator* authenticator = nullptr);

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_LEDGER_STORE_H_
