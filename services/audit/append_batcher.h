#ifndef POLICY_SERVICES_AUDIT_APPEND_BATCHER_H_
#define POLICY_SERVICES_AUDIT_APPEND_BATCHER_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/audit/ledger.h"

// Group commit: appends submitted while batches commit form the next batch, so that the
// ledger's throughput is not one commit per entry. `writers` threads each commit one batch at
// a time (batches of one ledger still commit one after another, but one batch's preparation
// and round trips overlap another's commit); `done` runs on the writer, after the batch's
// transaction committed (or failed: then every entry of the batch gets the error and none is
// stored).
namespace policy::audit {

class AppendBatcher {
 public:
  using Done = std::function<void(absl::StatusOr<AppendOutcome>)>;

  // At most `max_batch` entries per transaction; at most `max_queue` waiting.
  AppendBatcher(AuditLedger* ledger, size_t max_batch, size_t max_queue, int writers = 1);
  // Finishes every submitted append, then stops.
  ~AppendBatcher();
  AppendBatcher(const AppendBatcher&) = delete;
  AppendBatcher& operator=(const AppendBatcher&) = delete;

  // `input` must be valid (ValidateEntryInput). RESOURCE_EXHAUSTED through `done`, at once,
  // when the queue is full; DEADLINE_EXCEEDED, with nothing written, when `deadline` (the
  // caller's) has passed before the entry's batch is formed: the caller has given up, so an
  // entry written then would record a decision nobody received (after a database stall, the
  // whole queue of them).
  void Submit(EntryInput input, Done done, absl::Time deadline = absl::InfiniteFuture());

 private:
  struct Pending {
    EntryInput input;
    Done done;
    absl::Time deadline;
  };
  void Run();

  AuditLedger* const ledger_;
  const size_t max_batch_;
  const size_t max_queue_;
  absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> writers_;
};

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_APPEND_BATCHER_H_
