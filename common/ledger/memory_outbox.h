#ifndef POLICY_COMMON_LEDGER_MEMORY_OUTBOX_H_
#define POLICY_COMMON_LEDGER_MEMORY_OUTBOX_H_

#include <deque>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/ledger/outbox.h"

namespace policy::ledger {

// An outbox in memory, for the in-memory stores: a store adds a change's records while it
// still holds the lock under which it made the change.
class MemoryOutbox : public Outbox {
 public:
  void Add(std::vector<LedgerRecord> records);

  // Empties the actor and subject of every entry marked failed for which `erased` holds, and
  // notes it in the entry's last_error (an entry a drain marks failed later keeps what it
  // holds). The number of entries changed.
  int EraseFromFailed(absl::FunctionRef<bool(absl::string_view)> erased);

  absl::StatusOr<OutboxDrain> Drain(int limit, const OutboxHandler& handle) override;
  absl::StatusOr<std::vector<OutboxEntry>> Read(int limit) override;

 private:
  void Count(OutboxDrain& drain) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex drain_mu_;  // Held by the drain in progress.
  absl::Mutex mu_;
  int64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<OutboxEntry> entries_ ABSL_GUARDED_BY(mu_);  // In sequence order.
};

}  // namespace policy::ledger

#endif  // POLICY_COMMON_LEDGER_MEMORY_OUTBOX_H_
