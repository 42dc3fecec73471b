#ifndef POLICY_SERVICES_AUDIT_MEMORY_LEDGER_STORE_H_
#define POLICY_SERVICES_AUDIT_MEMORY_LEDGER_STORE_H_

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "services/audit/ledger_store.h"

namespace policy::audit {

// The ledgers in one process's memory: for tests and --store=memory.
class MemoryLedgerStore : public LedgerStore {
 public:
  absl::StatusOr<std::vector<AppendOutcome>> Append(std::vector<Entry> entries,
                                                    std::vector<SubjectKey> new_keys) override;
  absl::StatusOr<uint64_t> Size(const LedgerRef& ledger) override;
  absl::StatusOr<std::vector<LedgerSize>> ListLedgers() override;
  absl::StatusOr<std::vector<Entry>> ReadRange(const LedgerRef& ledger, uint64_t from,
                                               size_t limit) override;
  // Visits the entries in place, a chunk at a time, without holding the lock while visiting.
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
  struct Ledger {
    std::deque<Entry> entries;  // Appending moves no entry: references to them stay valid.
    CompactTree tree;
    absl::flat_hash_map<std::string, uint64_t> requests;  // request id -> index
    std::map<uint64_t, Checkpoint> checkpoints;           // by size
  };

  absl::Mutex mu_;
  std::map<LedgerRef, Ledger> ledgers_ ABSL_GUARDED_BY(mu_);  // Nodes never move either.
  absl::flat_hash_map<std::string, SubjectKey> subject_keys_ ABSL_GUARDED_BY(mu_);  // by locator
  // The pseudonyms of destroyed keys (each key's is its own): Append refuses entries naming one.
  absl::flat_hash_set<std::string> destroyed_refs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> forgotten_ ABSL_GUARDED_BY(mu_);  // by locator
};

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_MEMORY_LEDGER_STORE_H_
