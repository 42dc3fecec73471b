#ifndef POLICY_COMMON_LEDGER_OUTBOX_H_
#define POLICY_COMMON_LEDGER_OUTBOX_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/ledger/ledger_record.h"

namespace policy::ledger {

// What became of one attempt to deliver a record.
struct Delivery {
  enum class Result {
    kRecorded,   // Taken.
    kDuplicate,  // Taken before (the same record delivered again).
    kRetry,      // Not taken now (the destination is unreachable, slow or stopping).
    kRefused,    // Never taken: retrying would be refused again.
  };
  Result result = Result::kRecorded;
  std::string error;  // kRetry and kRefused: why, for logs and the outbox.
};

// Where records end up: the audit ledger (audit_ledger_client.h), or the log.
class LedgerDestination {
 public:
  virtual ~LedgerDestination() = default;
  // Delivers `record` of a change made at `occurred_at` (when its store wrote it), blocking
  // for at most the destination's own timeout. Safe to call again with the same record: a
  // destination records each request id once.
  virtual Delivery Deliver(const LedgerRecord& record, absl::Time occurred_at) = 0;
  // From any thread: the Deliver in progress and every later one return kRetry promptly.
  virtual void Cancel() {}
};

// Writes each record as a structured log line; always kRecorded.
class LogLedgerDestination : public LedgerDestination {
 public:
  Delivery Deliver(const LedgerRecord& record, absl::Time occurred_at) override;
};

// A record in an outbox.
struct OutboxEntry {
  // Increases with every record written; records written by one change, or by changes that
  // committed one after the other, are numbered in that order.
  int64_t sequence = 0;
  LedgerRecord record;
  // When the store wrote the record, with its change.
  absl::Time occurred_at;
  int attempts = 0;        // Deliveries tried and not taken.
  std::string last_error;  // Why the last one was not taken.
  bool failed = false;     // Refused for good: kept, never handed out again.
  bool operator==(const OutboxEntry&) const = default;
};

// The last_error of a failed entry whose actor, subject or both were erased (a store's
// EraseFromFailed): `last_error` with a note of which.
std::string ErasedNote(absl::string_view last_error, bool actor, bool subject);

// Decides what becomes of one entry (see Outbox::Drain).
using OutboxHandler = std::function<Delivery(const OutboxEntry&)>;

// What one Drain did.
struct OutboxDrain {
  bool busy = false;   // Another drain held the outbox; nothing was handed out.
  int delivered = 0;   // Deleted (kRecorded or kDuplicate).
  int refused = 0;     // Marked failed.
  bool retry = false;  // Stopped at an entry to retry later.
  // Counted at the end of the drain: entries still to deliver, and entries marked failed.
  int64_t pending = 0;
  int64_t failed = 0;
};

// The records a store committed with its changes (the transactional outbox): a store writes
// a change's records in the same step as the change, so a change that returned OK has its
// records and one that failed has none. Thread-safe.
class Outbox {
 public:
  virtual ~Outbox() = default;

  // Hands the entries not marked failed to `handle`, one at a time in sequence order, at
  // most `limit` of them, and records each answer: kRecorded and kDuplicate delete the entry;
  // kRefused marks it failed with the error (it stays, and is not handed out again); kRetry
  // counts the attempt, keeps the error and ends the drain there, so that no later entry
  // overtakes it. Drains exclude each other across every replica sharing the outbox: a drain
  // that finds another in progress returns at once with `busy`. `handle` may block (it talks
  // to the audit service) and may see an entry again after a crash or a lost connection
  // between its answer and the outbox's record of it.
  virtual absl::StatusOr<OutboxDrain> Drain(int limit, const OutboxHandler& handle) = 0;

  // Every entry, failed ones included, in sequence order, at most `limit`.
  virtual absl::StatusOr<std::vector<OutboxEntry>> Read(int limit) = 0;
};

}  // namespace policy::ledger

#endif  // POLICY_COMMON_LEDGER_OUTBOX_H_
