#ifndef POLICY_SERVICES_AUDIT_LEDGER_H_
#define POLICY_SERVICES_AUDIT_LEDGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/clock/clock.h"
#include "services/audit/checkpoint.h"
#include "services/audit/entry.h"
#include "services/audit/ledger_store.h"
#include "services/audit/subjects.h"
#include "services/audit/verifier.h"

// The audit ledgers' operations over a LedgerStore: appends with pseudonymised subjects,
// queries that reveal identifiers while their keys exist, proofs, signed checkpoints,
// verification, reports and the GDPR requests. Reads of entries are themselves recorded
// (audit_read in the ledger read; subject_forgotten and subject_access_exported in the
// organisation's ledger). A ledger exists from its first entry on; a read of one that does
// not exist (a mistyped project, say) answers as an empty ledger would, and records and
// creates nothing. Thread-safe.
namespace policy::audit {

// The checkpoints `store` (which must outlive it) holds of `ledger`, read a page at a time,
// from the smallest, size 0 included: the service never signs one, so a stored one is forged
// and a verifier must see it. A page asked for once `given_up` (optional) says the reader's
// caller has gone is CANCELLED.
class StoredCheckpoints : public CheckpointSource {
 public:
  StoredCheckpoints(LedgerStore* store, LedgerRef ledger, std::function<bool()> given_up = nullptr);
  absl::StatusOr<std::vector<Checkpoint>> Page(std::optional<uint64_t> after_size,
                                               size_t limit) override;

 private:
  LedgerStore* const store_;
  const LedgerRef ledger_;
  const std::function<bool()> given_up_;
};

// An entry with its identifiers opened; empty once the subject was forgotten.
struct RevealedEntry {
  Entry entry;
  std::string actor;
  std::string subject;
};

struct QuerySpec {
  LedgerRef ledger;
  std::optional<Action> action;
  std::string actor;  // Identifier; empty: any.
  std::optional<absl::Time> start;
  std::optional<absl::Time> end;
  uint64_t after_index = 0;
  // Entries before this index only: the ledger's size at the query's first page, so that
  // the audit_read records its pages append are not part of it. None: the size now.
  std::optional<uint64_t> end_index;
  size_t page_size = 100;
};

struct QueryPage {
  std::vector<RevealedEntry> entries;
  std::optional<uint64_t> next_index;  // Where the next page starts; none on the last page.
  uint64_t end_index = 0;              // The bound the next page keeps (QuerySpec::end_index).
};

// Where the next page of a subject export starts, and where the export ends.
struct SubjectResume {
  SubjectCursor after;  // The last entry of the page before.
  // The organisation's ledger's size at the export's first page: its entries from this index
  // on (the export's own subject_access_exported records among them) are not part of it.
  // None: its size now.
  std::optional<uint64_t> org_end;
};

// An ExportSubject page holds about this many bytes of entries at most (their encoded
// fields, identifiers and hashes), unless its first entry alone is larger.
inline constexpr size_t kSubjectPageBytes = 1 << 20;

struct SubjectPage {
  std::vector<RevealedEntry> entries;
  std::optional<SubjectResume> next;  // Where the next page starts; none on the last page.
};

struct InclusionProof {
  Entry entry;  // Its identifiers sealed, not revealed.
  Checkpoint checkpoint;
  std::vector<Hash> proof;
};

struct CheckpointPage {
  std::vector<Checkpoint> checkpoints;
  uint64_t next_after_size = 0;  // The after_size of the next page; 0 on the last page.
};

struct ConsistencyProof {
  std::optional<Checkpoint> from;
  Checkpoint to;
  std::vector<Hash> proof;
};

struct ComplianceSummary {
  std::optional<absl::Time> period_start;
  std::optional<absl::Time> period_end;
  uint64_t total_entries = 0;
  // Tokens used: of every entry but the decisions, whose tokens are estimates
  // (GetComplianceSummaryResponse.total_tokens).
  int64_t total_tokens = 0;
  // policy_violation entries, and decision_deny entries refused by policy: every reason but
  // RATE_LIMITED (GetComplianceSummaryResponse.policy_violations).
  uint64_t policy_violations = 0;
  std::map<std::string, uint64_t> action_breakdown;
  // decision_allow entries by metadata "region" ("unknown" without one) and "residency"
  // ("none" without one), and decision_deny entries by metadata "reason" ("unknown" without
  // one) (GetComplianceSummaryResponse).
  std::map<std::string, uint64_t> allowed_by_region;
  std::map<std::string, uint64_t> allowed_by_residency;
  // decision_allow entries by metadata "data_class" ("unknown" without one) and "api"
  // ("chat.completions" without one).
  std::map<std::string, uint64_t> allowed_by_data_class;
  std::map<std::string, uint64_t> allowed_by_api;
  std::map<std::string, uint64_t> denials_by_reason;
  // The counts of decision_allow entries' metadata "pii_allowed" ("TYPE=N,..."), summed by type
  // (GetComplianceSummaryResponse.pii_allowed_by_type); an item not of that form is skipped.
  std::map<std::string, uint64_t> pii_allowed_by_type;
  IntegrityReport integrity;
  // Pseudonyms the period's entries name with neither a subject key nor a subject_forgotten
  // record (GetComplianceSummaryResponse.unaccounted_subjects).
  uint64_t unaccounted_subjects = 0;
};

struct ForgetResult {
  bool forgotten = false;
  Entry entry;
};

struct LedgerOverview {
  LedgerRef ledger;
  uint64_t size = 0;
  std::optional<Checkpoint> latest_checkpoint;
  // Why SignCheckpoints refused to sign the ledger (AuditLedger::SignCheckpoints); empty when
  // it did not.
  std::string refused;
};

inline constexpr size_t kMaxPageSize = 1000;

// Tamper evidence beyond the stored rows. Each entry carries a MAC under a key derived from
// the subject master key (EntryAuthenticator, SubjectCipher::EntryMacKey), which AuditLedger
// installs in `store` on construction: entries appended through the store from then on carry
// it.
//
// Checkpoints are signed by `signer`; those signed by any of `previous_public_keys` (32 bytes
// each: the keys a rotation retired) are accepted as well, by Verify and by SignCheckpoints,
// which continues a ledger whose newest checkpoint an earlier key signed with checkpoints of
// the current key. A checkpoint an earlier key signed after the current key's first one is
// late (LedgerVerifier: key order) and vouches for nothing: SignCheckpoints then checks the
// entries from the current key's newest checkpoint on, MACs included, and refuses (DATA_LOSS)
// when one is not the service's. Each AuditLedger also remembers,
// per ledger, the newest checkpoint it signed or saw signed (the head; kept in memory only,
// so lost on restart); every checkpoint it signs is logged (ledger, size, root), a record
// outside the database.
class AuditLedger {
 public:
  AuditLedger(LedgerStore* store, const SubjectCipher* subjects, const CheckpointSigner* signer,
              Clock* clock, std::vector<std::string> previous_public_keys = {});

  // Appends validated inputs in one store transaction (AppendBatcher groups callers into
  // these). One outcome per input, in order. When that fails for a batch of several ledgers
  // because of what one of them holds (DATA_LOSS, FAILED_PRECONDITION, ...: a damaged ledger,
  // say; never an unknown commit outcome), each ledger's inputs are appended on their own: a
  // failure is then the outcome of its ledger's inputs only.
  //
  // An input whose request id its ledger holds is answered with the stored entry (duplicate)
  // when it is that request again (SameRequest) naming the people the entry names; where the
  // entry names someone forgotten since (their key destroyed: a record delivered again after
  // the erasure), nobody can tell whom, and the input may name anyone there. Otherwise its
  // outcome is FAILED_PRECONDITION. Neither answer makes a key.
  // An input under a new request id naming someone forgotten is appended under a fresh key
  // (a change made since the erasure, readable until they are forgotten again); the entries
  // of before stay sealed under the destroyed key.
  absl::StatusOr<std::vector<AppendOutcome>> AppendBatch(absl::Span<const EntryInput> inputs);
  // Validates and appends one entry on its own.
  absl::StatusOr<AppendOutcome> Append(const EntryInput& input);

  // One page of the entries matching `spec`, recorded as an audit_read in the ledger (when
  // it exists).
  absl::StatusOr<QueryPage> Query(const QuerySpec& spec, const std::string& requested_by);

  // The current signing key's public key.
  const std::string& public_key() const { return signer_->public_key(); }
  // The keys whose checkpoints are accepted: the current one first.
  const CheckpointKeys& checkpoint_keys() const { return keys_; }
  absl::StatusOr<Checkpoint> GetCheckpoint(const LedgerRef& ledger, uint64_t tree_size);
  // A page of the stored checkpoints of `ledger` of trees larger than `after_size`, by tree
  // size, smallest first: at most `page_size` (1 to kMaxPageSize), read without reading the
  // others (none for a ledger that does not exist).
  absl::StatusOr<CheckpointPage> ListCheckpoints(const LedgerRef& ledger, uint64_t after_size,
                                                 size_t page_size);
  // The entry recorded under `request_id` in `ledger`, its identifiers not revealed;
  // NOT_FOUND when there is none.
  absl::StatusOr<Entry> FindRequest(const LedgerRef& ledger, const std::string& request_id);
  // The entry at `index` (or with `request_id`), its identifiers not revealed (the leaf hash
  // does not cover them, so the proof needs none; not recorded as a read, like FindRequest),
  // and its proof against the checkpoint of `tree_size` (0: the newest). FAILED_PRECONDITION when
  // the entry is newer than the checkpoint (ask again after the next one is signed). An entry
  // whose MAC is not the service's is proved only against a checkpoint signed by a trusted key
  // (its MAC may be under the key of an earlier release; the signed root vouches for it).
  absl::StatusOr<InclusionProof> ProveInclusion(const LedgerRef& ledger,
                                                std::optional<uint64_t> index,
                                                const std::string& request_id, uint64_t tree_size);
  // `to_size` 0: the newest checkpoint's size. `to_size` must be a signed checkpoint's.
  absl::StatusOr<ConsistencyProof> ProveConsistency(const LedgerRef& ledger, uint64_t from_size,
                                                    uint64_t to_size);

  // LedgerVerifier over the stored entries and checkpoints, checking every entry's MAC and,
  // when this process remembers a head of the ledger, that the ledger still holds it (INVALID
  // naming that head otherwise: a truncation, a rewrite or the ledger's deletion, even with
  // the checkpoints covering it deleted too). A valid ledger's newest checkpoint becomes the
  // remembered head. Without a remembered head (a process just started), a ledger rewritten
  // together with its checkpoints still verifies from its signed checkpoints alone: only a
  // checkpoint kept outside the database (audit_verify --trusted_checkpoint) catches that.
  // `given_up` (optional), asked every few thousand entries, stops a walk whose caller has
  // gone (CANCELLED): a verification takes time in proportion to the whole ledger.
  absl::StatusOr<IntegrityReport> Verify(const LedgerRef& ledger,
                                         const std::function<bool()>& given_up = nullptr);
  // The entries of [start, end) counted, then the whole ledger verified (Verify, `given_up`
  // likewise: CANCELLED, nothing recorded); the read is recorded in the organisation's ledger
  // as a compliance_summary by `requested_by`.
  absl::StatusOr<ComplianceSummary> Summarize(const LedgerRef& ledger,
                                              std::optional<absl::Time> start,
                                              std::optional<absl::Time> end,
                                              const std::string& requested_by,
                                              const std::function<bool()>& given_up = nullptr);
  // Up to `limit` entries from `from_index` on. Recorded as one audit_read when `record`
  // (and the ledger exists).
  absl::StatusOr<std::vector<RevealedEntry>> Export(const LedgerRef& ledger, uint64_t from_index,
                                                    size_t limit, const std::string& requested_by,
                                                    bool record);

  // Records when the subject was forgotten (LedgerStore::RecordForgotten), destroys their key
  // and records the request in the organisation's ledger. The destruction waits for the
  // appends sealed with the key that are in progress; appends after it seal their entries
  // under a fresh key (LedgerStore::DeleteSubjectKey), except those that occurred no later
  // than the forgetting (EntryInput::occurred_at: records delivered late), sealed for nobody
  // (SealAndAppend). Idempotent on
  // `request_id`: a retry returns the first record (finishing the key's destruction if the
  // first attempt stopped short, destroying a key made since that names nothing);
  // FAILED_PRECONDITION when the id names another request, the forgetting of another subject
  // included (whether or not either subject still has a key). The record keeps
  // SubjectCipher::ForgetRequestId of the id, never the id, which may name the subject.
  absl::StatusOr<ForgetResult> Forget(const std::string& subject, const std::string& requested_by,
                                      const std::string& request_id);
  // One page of the entries naming `subject` (as actor or subject), revealing that identifier
  // only (another person an entry names is left unopened), across ledgers, in
  // SubjectOrder after `after` (none: from the first), at most `page_size` (1 to
  // kMaxPageSize) and ending before kSubjectPageBytes of entries (its first always there, so
  // that a page stays within gRPC's 4 MiB receive limit at every hop); none once the
  // subject's key is destroyed. Each page is recorded as a
  // subject_access_exported entry in the organisation's ledger; the entries that ledger
  // gained since the first page (those records among them) are not part of the export, so
  // paging ends whatever the page size.
  absl::StatusOr<SubjectPage> ExportSubject(const std::string& subject,
                                            const std::string& requested_by,
                                            const std::optional<SubjectResume>& after,
                                            size_t page_size);

  // Signs a checkpoint of every ledger that grew since its newest one; returns how many.
  // Before signing, the entries since the newest stored checkpoint are recomputed from their
  // fields and checked against their stored hashes and MACs, and that checkpoint against its
  // signature, the stored hashes and the remembered head. It refuses (DATA_LOSS, logged as an
  // error, LedgerOverview::refused set) when any check fails (a newest checkpoint signed by an
  // earlier trusted key passes; one signed by no trusted key does not), when the ledger holds fewer
  // entries than the remembered head or a stored checkpoint, when the checkpoint of the
  // remembered head is gone or holds another root, or when a remembered ledger is gone
  // altogether (shown with size 0). A ledger that cannot be signed is skipped: the others are
  // still signed, and the result is then an error naming every ledger that failed. Fills `ledgers`,
  // if given, with every ledger, its size and its newest checkpoint after signing (what the
  // service's ledger metrics show), whether or not some failed; left as it was when the ledgers
  // could not be listed.
  absl::StatusOr<int> SignCheckpoints(std::vector<LedgerOverview>* ledgers = nullptr);
  absl::StatusOr<std::vector<LedgerOverview>> ListLedgers();
  // Removes the times of forgettings older than `retention` (LedgerStore::PurgeForgotten);
  // returns how many.
  absl::StatusOr<int64_t> PurgeForgotten(absl::Duration retention);

 private:
  // AppendBatch's one attempt: seals the inputs with their subjects' keys, making the keys of
  // those without one (`making_keys`: holding making_keys_mu_), and appends them. An
  // identifier of an input that occurred no later than they were last forgotten is sealed
  // for nobody: under a random pseudonym of its own, with no sealed form and no key.
  absl::StatusOr<std::vector<AppendOutcome>> SealAndAppend(absl::Span<const EntryInput> inputs,
                                                           bool making_keys = false);
  // The entry `input` makes at `time` with these sealed identifiers.
  static Entry EntryOf(const EntryInput& input, absl::Time time, SealedSubject actor,
                       SealedSubject subject);
  // The outcome of `input`, whose request id its ledger holds for `stored`: `stored`, as a
  // duplicate, when `input` is the same request (SameRequest) with each identifier the one
  // `stored` names (by its key in `keys`, by identifier) or one nobody can tell any more
  // (`stored` names a pseudonym whose key was destroyed: someone forgotten since);
  // FAILED_PRECONDITION (RequestIdUsed) otherwise.
  absl::StatusOr<AppendOutcome> AnswerRepeat(
      Entry stored, const EntryInput& input,
      const absl::flat_hash_map<std::string, SubjectKey>& keys);
  absl::StatusOr<std::vector<RevealedEntry>> Reveal(std::vector<Entry> entries);
  absl::StatusOr<ForgetResult> RepeatForget(const std::string& subject,
                                            const std::string& request_id,
                                            const std::string& locator,
                                            const absl::StatusOr<SubjectKey>& key, Entry first);
  // Signs a checkpoint of `ledger` if it grew since its newest one (true when it did),
  // setting the overview's newest checkpoint.
  absl::StatusOr<bool> SignCheckpoint(const LedgerSize& ledger, LedgerOverview& overview);
  // The tree of `ledger`'s first `size` entries, from their stored hashes.
  absl::StatusOr<CompactTree> StoredTree(const LedgerRef& ledger, uint64_t size);
  // This key's largest checkpoint of `ledger` smaller than `size`; none when there is none.
  absl::StatusOr<std::optional<Checkpoint>> OwnNewestBefore(const LedgerRef& ledger, uint64_t size);
  // The remembered head of `ledger`; none before this process signed or saw one signed.
  std::optional<Checkpoint> RememberedHead(const LedgerRef& ledger) ABSL_LOCKS_EXCLUDED(heads_mu_);
  // Remembers `checkpoint` as the ledger's head unless a larger one is remembered.
  void Remember(const Checkpoint& checkpoint) ABSL_LOCKS_EXCLUDED(heads_mu_);
  // How many of `refs` (pseudonyms) have neither a subject key nor a subject_forgotten record
  // naming them in the organisation's ledger.
  absl::StatusOr<uint64_t> CountUnaccounted(absl::flat_hash_set<std::string> refs);
  // Whether the ledger exists: it does from its first entry on.
  absl::StatusOr<bool> Exists(const LedgerRef& ledger);
  // Appends an audit_read of `ledger` by `requested_by`. Callers first check that the ledger
  // exists: a read never creates one.
  absl::Status RecordRead(const LedgerRef& ledger, const std::string& requested_by,
                          absl::string_view what);

  LedgerStore* const store_;
  const SubjectCipher* const subjects_;
  const CheckpointSigner* const signer_;
  const CheckpointKeys keys_;
  Clock* const clock_;
  const std::shared_ptr<const EntryAuthenticator> authenticator_;
  // Held by a SealAndAppend that may make subject keys, from looking them up until its append
  // returned.
  absl::Mutex making_keys_mu_;
  absl::Mutex heads_mu_;
  absl::flat_hash_map<LedgerRef, Checkpoint> heads_ ABSL_GUARDED_BY(heads_mu_);
};

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_LEDGER_H_
