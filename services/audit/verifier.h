#ifndef POLICY_SERVICES_AUDIT_VERIFIER_H_
#define POLICY_SERVICES_AUDIT_VERIFIER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/audit/checkpoint.h"
#include "services/audit/entry.h"
#include "services/audit/merkle.h"

// Checks a ledger without trusting whoever stored it: given the entries in index order, the
// signed checkpoints and the trusted public keys (the current signing key and the earlier ones
// a rotation retired: CheckpointKeys), it recomputes every leaf hash and the tree, and
// compares them with the stored hashes and with each checkpoint's signed root. A verifier
// that remembers a checkpoint from an earlier run passes it as `trusted`: then a ledger whose
// checkpoints were deleted or rewritten along with its entries is still caught.
//
// The report names the first index at which the ledger is not what was recorded:
//  - an entry whose fields do not give its stored leaf hash (an edited field, two swapped
//    rows: the index is part of the leaf), or whose stored subtree hashes differ from the
//    recomputed ones;
//  - a missing index (a deleted row), or one out of order or twice (an inserted row);
//  - a checkpoint whose signed root differs from the recomputed tree of its size: the first
//    index after the last checkpoint that matched;
//  - a checkpoint larger than the ledger (the tail truncated): the ledger's size;
//  - a stored entry that cannot be read back at all (Unreadable): its index;
//  - given the entries' authenticator (only the audit service holds its key): an entry whose
//    MAC is not the authenticator's, or one without a MAC after an entry with one (entries
//    stored before entries carried MACs come first in their ledger). An entry whose MAC is not
//    the authenticator's is accepted when a checkpoint signed by an earlier key (not the
//    current one) in its key's time covers it: releases before this one derived the MAC key
//    from the signing key, which a rotation retired, and that checkpoint's signed root vouches
//    for the entry (a changed one fails at that checkpoint). Without an authenticator (a
//    verifier holding only the public keys), a row written with recomputed hashes after the
//    newest checkpoint cannot be told from one the service wrote.
// A checkpoint not signed by a trusted key is a problem at index 0, naming the key id it names.
//
// Key order: a checkpoint signed by an earlier key (not the current one) larger than the
// current key's smallest is late: it was signed after the current key took over, by a retired
// key. It must still match the tree, but vouches for no entry's MAC (an entry that needs it is
// named with the reason), and a late checkpoint larger than the current key's largest makes
// the ledger INVALID from that largest size on: whoever holds a leaked retired key and can
// write the database could otherwise extend or rewrite the ledger past the current key's
// checkpoints. (A late checkpoint the current key's next one covers is what a replica still on
// the old key leaves when it signs during the rollout that switches keys; it does no harm.
// During that rollout, a verifier configured as such a replica, the old key current, sees the
// new key's checkpoints as late: it may report INVALID until the old replicas are gone.)
namespace policy::audit {

struct IntegrityReport {
  bool valid = true;
  uint64_t entries_checked = 0;
  uint64_t checkpoints_checked = 0;
  uint64_t first_bad_index = 0;  // Meaningful when !valid.
  std::string problem;
  Hash root{};  // The recomputed root over the entries checked.
  // Entries checked without a MAC (stored before entries carried one); with no authenticator,
  // every entry checked.
  uint64_t unauthenticated_entries = 0;
  // Key id -> how many of the checkpoints checked it signed.
  std::map<std::string, uint64_t> checkpoints_by_key;
};

// Where a verifier reads the signed checkpoints of its ledger, a page at a time, so that it
// holds a bounded number of them whatever the ledger's size.
class CheckpointSource {
 public:
  virtual ~CheckpointSource() = default;
  // About `limit` checkpoints of tree sizes above `after_size` (none: from the smallest),
  // smallest first (any order among equal sizes); a page holds every checkpoint of its last
  // size, so it may exceed `limit` by those.
  virtual absl::StatusOr<std::vector<Checkpoint>> Page(std::optional<uint64_t> after_size,
                                                       size_t limit) = 0;
};

// Checkpoints already in memory (in any order).
class VectorCheckpointSource : public CheckpointSource {
 public:
  explicit VectorCheckpointSource(std::vector<Checkpoint> checkpoints);
  absl::StatusOr<std::vector<Checkpoint>> Page(std::optional<uint64_t> after_size,
                                               size_t limit) override;

 private:
  std::vector<Checkpoint> checkpoints_;  // By size, stably.
};

class LedgerVerifier {
 public:
  // How many checkpoints the verifier asks its source for at a time.
  static constexpr size_t kCheckpointPage = 1000;

  // `checkpoints` in any order; each must be signed by one of `keys` for `ledger`. A problem
  // with `trusted` calls it `trusted_name` ("the trusted checkpoint" unless given).
  // `authenticator`, when not null, checks each entry's MAC; it must outlive the verifier.
  LedgerVerifier(LedgerRef ledger, CheckpointKeys keys, std::vector<Checkpoint> checkpoints,
                 std::optional<Checkpoint> trusted = std::nullopt,
                 const EntryAuthenticator* authenticator = nullptr,
                 std::string trusted_name = "the trusted checkpoint");
  // The checkpoints read from `source` (which must outlive the verifier), in pages of
  // kCheckpointPage: once through all of them on construction (signatures, ledger, key
  // order), then alongside the entries. Checkpoints stored after the first read, larger than
  // every checkpoint it saw, are not checked. A failure to read them is the status of Add
  // (false) and Finish.
  LedgerVerifier(LedgerRef ledger, CheckpointKeys keys, CheckpointSource* source,
                 std::optional<Checkpoint> trusted = std::nullopt,
                 const EntryAuthenticator* authenticator = nullptr,
                 std::string trusted_name = "the trusted checkpoint");
  ~LedgerVerifier();

  // Feeds the next stored entry. Returns false once a problem is found or the checkpoints
  // could not be read (further entries are ignored).
  bool Add(const Entry& entry);

  // The next stored entry could not be read back (`why`): the ledger is bad from there.
  void Unreadable(absl::string_view why);

  // The verdict over the entries fed so far; the source's error when it failed.
  absl::StatusOr<IntegrityReport> Finish();

  // Entries below this index need no MAC of the authenticator's: the largest checkpoint an
  // earlier key signed in its key's time (not late; see Key order above); 0 when none. The
  // source's error when it failed.
  absl::StatusOr<uint64_t> earlier_key_vouched_size() const;

  // The largest checkpoint that matched the tree of its size; none before one did.
  const std::optional<Checkpoint>& newest_checked() const { return newest_checked_; }

 private:
  class Walk;
  void Fail(uint64_t index, std::string problem);
  // Reads every checkpoint once: checks its ledger and signature, and finds the key order
  // (earlier_key_signed_size_, current_first_, late_failure_).
  void Survey();
  void CheckCheckpointsAt(uint64_t size);
  // Why the first late checkpoint larger than `index` does not vouch for an entry; empty when
  // there is none.
  std::string LateNoteAfter(uint64_t index);
  // How a problem names `c`: "its signed checkpoint", or the trusted one by its name.
  std::string NameOf(const Checkpoint& c) const;
  // Whether a checkpoint signed by `key` of `size` is late (key order).
  bool IsLate(const std::string& key, uint64_t size) const;
  // Why the late checkpoint of `size` signed by `key` is late.
  std::string LateWhy(uint64_t size, const std::string& key) const;
  // The key id that signed `c`; none, the report failed naming why, when `c` is for another
  // ledger or not signed by a trusted key.
  std::optional<std::string> SignerOf(const Checkpoint& c);
  // Starts the walk of checkpoints alongside the entries, once; whether the verifier may go
  // on (no problem found, no read error).
  bool StartWalk();

  const LedgerRef ledger_;
  const CheckpointKeys keys_;
  const EntryAuthenticator* const authenticator_;
  const std::string trusted_name_;
  std::optional<Checkpoint> trusted_;
  // Owns the source of the vector constructor; null otherwise.
  std::unique_ptr<CheckpointSource> owned_source_;
  CheckpointSource* source_;
  absl::Status read_status_;  // The source's first error.
  bool seen_mac_ = false;     // An entry with a MAC was checked.
  // The largest checkpoint size the survey saw: the walk alongside the entries stops there.
  uint64_t surveyed_size_ = 0;
  // The current key's smallest checkpoint; none when it signed none.
  std::optional<uint64_t> current_first_;

  // The largest checkpoint signed by an earlier key than the current one, in its key's time
  // (not late): entries below it need no MAC of the authenticator's.
  uint64_t earlier_key_signed_size_ = 0;
  struct LateCheckpoint {
    uint64_t size = 0;  // In late_failure_, the first index it alone covers.
    std::string why;
  };
  // The first checkpoint an earlier key signed after the current key took over beyond the
  // current key's largest: the ledger is INVALID from the index it names.
  std::optional<LateCheckpoint> late_failure_;
  // The checkpoints alongside the entries, the next one first; null until the first entry.
  std::unique_ptr<Walk> walk_;
  // Reads the next checkpoint of walk_ into next_ and its signer into next_signer_ (none at
  // the walk's end).
  void Advance();
  std::optional<Checkpoint> next_;
  std::string next_signer_;
  std::optional<Checkpoint> newest_checked_;
  uint64_t last_matched_size_ = 0;
  CompactTree tree_;
  std::vector<Hash> completed_;
  IntegrityReport report_;
};

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_VERIFIER_H_
