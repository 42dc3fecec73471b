#ifndef POLICY_SERVICES_AUDIT_POSTGRES_LEDGER_STORE_H_
#define POLICY_SERVICES_AUDIT_POSTGRES_LEDGER_STORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/pg/pool.h"
#include "services/audit/ledger_store.h"

namespace policy::audit {

// LedgerStore in PostgreSQL (schema `audit`, see migrations/). Every transaction runs as
// `role` (SET LOCAL ROLE), which may only read and insert ledger rows; triggers refuse
// UPDATE, DELETE and TRUNCATE of them even to the tables' owner.
//
// Appends to a ledger are serialised across replicas by a transaction-scoped advisory lock
// on the ledger, and ordered against DeleteSubjectKey by another (shared by appends, exclusive
// for the deletion; migrations/006_subject_keys_with_entries.sql). Each store keeps every ledger's
// compact tree (merkle.h) in memory and reloads it (one query for the frontier's hashes) only when
// the ledger grew through another store; the cache changes only once a transaction has committed.
// The role migrations/001_audit.sql grants INSERT and SELECT on the ledger tables.
inline constexpr char kWriterRole[] = "policy_audit_writer";
// The NOLOGIN group role of a login role that may not rewrite the ledger
// (migrations/005_runtime_role.sql): it reads, and writes only through the SECURITY DEFINER
// functions (and creates ledgers, destroys subject keys).
inline constexpr char kRuntimeRole[] = "policy_audit_runtime";

class PostgresLedgerStore : public LedgerStore {
 public:
  // `role` empty: transactions run as the pool's login role (no SET ROLE).
  explicit PostgresLedgerStore(pg::Pool* pool, std::string role = kWriterRole);

  // OK when the pool's login role can SET ROLE `role` and `role` holds the migration's
  // grants; FAILED_PRECONDITION giving the SQL an administrator must run otherwise.
  static absl::Status CheckRole(pg::Pool* pool, const std::string& role);

  // The role the store's transactions should switch to: "" when the login role is a member
  // of kRuntimeRole and may not become kWriterRole (it runs as itself, with the runtime
  // role's privileges); kWriterRole otherwise (the login role owns the tables: a
  // single-user set-up, which a compromised process can rewrite).
  static absl::StatusOr<std::string> TransactionRole(pg::Pool* pool);

  absl::StatusOr<std::vector<AppendOutcome>> Append(std::vector<Entry> entries,
                                                    std::vector<SubjectKey> new_keys) override;
  absl::StatusOr<uint64_t> Size(const LedgerRef& ledger) override;
  absl::StatusOr<std::vector<LedgerSize>> ListLedgers() override;
  absl::StatusOr<std::vector<Entry>> ReadRange(const LedgerRef& ledger, uint64_t from,
                                               size_t limit) override;
  // Reads and visits one row at a time, so that a row that cannot be read back (DATA_LOSS,
  // naming it) comes after every entry before it was visited.
  absl::Status ForEachEntry(const LedgerRef& ledger, uint64_t from,
                            const std::function<bool(const Entry&)>& visit) override;
  absl::StatusOr<Entry> FindRequest(const LedgerRef& ledger,
                                    const std::string& request_id) override;
  absl::StatusOr<std::vector<Entry>> Query(const EntryFilter& filter) override;
  absl::StatusOr<std::vector<Entry>> EntriesOfSubject(const std::string& ref,
                                                      const std::optional<SubjectCursor>& after,
                                                      size_t limit) override;
  absl::StatusOr<absl::flat_hash_map<NodeId, Hash>> NodeHashes(
      const LedgerRef& ledger, absl::Span<const NodeId> nodes) override;
  absl::Status AddCheckpoint(const Checkpoint& checkpoint) override;
  absl::StatusOr<Checkpoint> GetCheckpoint(const LedgerRef& ledger, uint64_t tree_size) override;
  absl::StatusOr<std::vector<Checkpoint>> ListCheckpoints(const LedgerRef& ledger) override;
  absl::StatusOr<std::vector<Checkpoint>> ListCheckpointsAfter(const LedgerRef& ledger,
                                                               std::optional<uint64_t> after_size,
                                                               size_t limit) override;
  absl::StatusOr<absl::flat_hash_map<std::string, SubjectKey>> FindSubjectKeys(
      const std::vector<std::string>& locators) override;
  absl::StatusOr<SubjectKey> GetSubjectKey(const std::string& locator) override;
  absl::StatusOr<absl::flat_hash_map<std::string, SubjectKey>> SubjectKeysByRef(
      const std::vector<std::string>& refs) override;
  absl::StatusOr<bool> DeleteSubjectKey(const std::string& locator) override;
  absl::Status RecordForgotten(const std::string& locator, absl::Time at) override;
  absl::StatusOr<absl::flat_hash_map<std::string, absl::Time>> FindForgotten(
      const std::vector<std::string>& locators) override;
  absl::StatusOr<int64_t> PurgeForgotten(absl::Time before) override;

 private:
  struct CachedLedger {
    int64_t id = 0;
    std::optional<CompactTree> tree;  // As committed, at some size; absent until loaded.
  };

  // Appends `entries`, and the keys of `new_keys` they name, in one statement
  // (migrations/006_subject_keys_with_entries.sql) when they all go to one ledger whose id and
  // committed tree this store holds; nullopt when that cannot be done, the ledger having moved
  // on or a request id being taken, and nothing was written.
  std::optional<absl::StatusOr<std::vector<AppendOutcome>>> AppendInOneStatement(
      const std::vector<Entry>& entries, const std::vector<SubjectKey>& new_keys);
  // Holds `keys` (by locator) as found in the database: Append checks they still exist.
  void HoldSubjectKeys(absl::flat_hash_map<std::string, SubjectKey> keys) ABSL_LOCKS_EXCLUDED(mu_);
  // Holds the keys of `new_keys` a committed Append stored: all but those of `not_stored` (by
  // pseudonym), which no appended entry named.
  void HoldStoredKeys(const std::vector<SubjectKey>& new_keys,
                      const absl::flat_hash_map<std::string, SubjectKey>& not_stored)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The distinct pseudonyms in `entries` whose keys this store handed out.
  std::vector<std::string> KeyedRefs(absl::Span<const Entry> entries);
  // Drops every subject key this store holds (not their pseudonyms), and returns the error
  // Append gives when one of them turned out destroyed.
  absl::Status KeyDestroyed();
  // Runs `body` in a transaction under role_.
  absl::Status Transact(const std::function<absl::Status(pqxx::work&)>& body);
  // The ledger's id; nullopt when it has none yet (nothing was ever stored for it).
  std::optional<int64_t> FindLedgerId(pqxx::work& tx, const LedgerRef& ledger);
  // The ledger's id, inserting its row when missing (not cached: the caller does so once
  // the transaction has committed).
  int64_t EnsureLedgerId(pqxx::work& tx, const LedgerRef& ledger);
  // The committed tree of `ledger` when the cache holds one of `size` entries.
  std::optional<CompactTree> CachedTree(const LedgerRef& ledger, uint64_t size);
  void CacheLedger(const LedgerRef& ledger, int64_t id, const CompactTree* tree);

  // Held by AppendInOneStatement from reading a ledger's cached tree until the cache has the
  // appended one, so that this store's writers seal each batch onto the one before.
  absl::Mutex& LedgerMutex(const LedgerRef& ledger);

  pg::Pool* const pool_;
  const std::string role_;
  absl::Mutex mu_;
  absl::flat_hash_map<LedgerRef, CachedLedger> ledgers_ ABSL_GUARDED_BY(mu_);
  absl::node_hash_map<LedgerRef, absl::Mutex> ledger_mutexes_ ABSL_GUARDED_BY(mu_);
  // The subject keys FindSubjectKeys found and Append stored, by locator (dropped once one
  // turns out destroyed), and the pseudonyms of every key it handed out (kept after: each key's
  // pseudonym is its own), in two generations of bounded size. Append checks that the keys of
  // the pseudonyms it writes are still stored, so that an entry is never stored under a key
  // destroyed (by any replica) before it committed.
  absl::flat_hash_map<std::string, SubjectKey> subject_keys_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> subject_refs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> older_subject_refs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_POSTGRES_LEDGER_STORE_H_
