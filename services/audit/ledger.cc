#include "services/audit/ledger.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/crypto/crypto.h"
#include "common/log/log.h"
#include "common/status/status.h"

namespace policy::audit {
namespace {

constexpr size_t kReadChunk = 5000;
// How many entries a compliance summary reads at a time.
constexpr size_t kSummaryChunk = 500;
// How many entries a verification walks between two looks at whether its caller gave up.
constexpr uint64_t kGivenUpEvery = 4096;

// The metadata key under which subject_forgotten records of earlier releases hold
// SubjectCipher::RequestBinding of their request id and subject. Records no longer carry it:
// whoever holds the master key could test guesses of the forgotten subject against it.
constexpr absl::string_view kForgetBindingKey = "request_binding";

// `e`'s metadata value `name`, or `absent`.
std::string MetadataOr(const Entry& e, const char* name, absl::string_view absent) {
  auto it = e.metadata.find(name);
  return it == e.metadata.end() ? std::string(absent) : it->second;
}

// Whether `e` records a refusal by policy: an explicit policy_violation, or a decision_deny
// whose reason (metadata "reason", as the edge records it) is anything but RATE_LIMITED,
// which is a quota running out rather than a request the policy forbids.
bool IsPolicyViolation(const Entry& e) {
  if (e.action == Action::kPolicyViolation) return true;
  return e.action == Action::kDecisionDeny && MetadataOr(e, "reason", "") != "RATE_LIMITED";
}

// Whether `e`'s tokens were used: not a decision's, which are the estimate the decision was
// asked about (the call's usage is recorded after it, as an api_call with the tokens used; a
// refused request used none).
bool CountsTokensUsed(const Entry& e) {
  return e.action != Action::kDecisionAllow && e.action != Action::kDecisionDeny;
}

absl::Time WholeMicros(absl::Time t) { return absl::FromUnixMicros(absl::ToUnixMicros(t)); }

absl::Status CheckRequester(const std::string& requested_by) {
  if (requested_by.empty()) return absl::InvalidArgumentError("requested_by: required");
  // Checked as the read's own ledger entry will check its actor, under the request's name.
  return ValidateIdentifier(requested_by, "requested_by");
}

// `current`, then `earlier`: CheckpointKeys' order.
std::vector<std::string> CurrentThen(std::string current, std::vector<std::string> earlier) {
  earlier.insert(earlier.begin(), std::move(current));
  return earlier;
}

}  // namespace

StoredCheckpoints::StoredCheckpoints(LedgerStore* store, LedgerRef ledger,
                                     std::function<bool()> given_up)
    : store_(store), ledger_(std::move(ledger)), given_up_(std::move(given_up)) {}

absl::StatusOr<std::vector<Checkpoint>> StoredCheckpoints::Page(std::optional<uint64_t> after_size,
                                                                size_t limit) {
  if (given_up_ != nullptr && given_up_()) {
    return absl::CancelledError("verification stopped reading checkpoints: its caller gave up");
  }
  return store_->ListCheckpointsAfter(ledger_, after_size, limit);
}

AuditLedger::AuditLedger(LedgerStore* store, const SubjectCipher* subjects,
                         const CheckpointSigner* signer, Clock* clock,
                         std::vector<std::string> previous_public_keys)
    : store_(store),
      subjects_(subjects),
      signer_(signer),
      keys_(CurrentThen(signer->public_key(), std::move(previous_public_keys))),
      clock_(clock),
      authenticator_(std::make_shared<const EntryAuthenticator>(
          subjects->EntryMacKey(), signer->DeriveKey(kLegacyEntryMacLabel))) {
  store_->AuthenticateWith(authenticator_);
}

std::optional<Checkpoint> AuditLedger::RememberedHead(const LedgerRef& ledger) {
  absl::MutexLock lock(&heads_mu_);
  auto it = heads_.find(ledger);
  if (it == heads_.end()) return std::nullopt;
  return it->second;
}

void AuditLedger::Remember(const Checkpoint& checkpoint) {
  absl::MutexLock lock(&heads_mu_);
  auto [it, inserted] = heads_.try_emplace(checkpoint.ledger, checkpoint);
  if (!inserted && it->second.tree_size < checkpoint.tree_size) it->second = checkpoint;
}

absl::StatusOr<std::vector<AppendOutcome>> AuditLedger::AppendBatch(
    absl::Span<const EntryInput> inputs) {
  // ABORTED: a subject key was destroyed (the subject forgotten) between being found and
  // being used, or a concurrent batch stored a key for someone this one made a key for;
  // sealing again takes the keys as they are now.
  auto attempt = [this](absl::Span<const EntryInput> some) {
    absl::StatusOr<std::vector<AppendOutcome>> outcomes = SealAndAppend(some);
    if (absl::IsAborted(outcomes.status())) outcomes = SealAndAppend(some);
    return outcomes;
  };
  absl::StatusOr<std::vector<AppendOutcome>> outcomes = attempt(inputs);
  // Only a failure of the batch's content, known to have committed nothing, is split: not the
  // database away or busy, nor a commit whose outcome is unknown (UNKNOWN), which appending
  // again could record twice.
  const absl::StatusCode code = outcomes.status().code();
  if (outcomes.ok() ||
      (code != absl::StatusCode::kDataLoss && code != absl::StatusCode::kFailedPrecondition &&
       code != absl::StatusCode::kInvalidArgument && code != absl::StatusCode::kOutOfRange &&
       code != absl::StatusCode::kNotFound)) {
    return outcomes;
  }
  absl::flat_hash_map<LedgerRef, std::vector<size_t>> by_ledger;
  for (size_t i = 0; i < inputs.size(); ++i) by_ledger[inputs[i].ledger].push_back(i);
  if (by_ledger.size() < 2) return outcomes;
  std::vector<AppendOutcome> each(inputs.size());
  for (const auto& [ledger, indices] : by_ledger) {
    std::vector<EntryInput> group;
    group.reserve(indices.size());
    for (size_t i : indices) group.push_back(inputs[i]);
    absl::StatusOr<std::vector<AppendOutcome>> appended = attempt(group);
    for (size_t k = 0; k < indices.size(); ++k) {
      if (appended.ok()) {
        each[indices[k]] = std::move((*appended)[k]);
      } else {
        each[indices[k]].status = appended.status();
      }
    }
  }
  return each;
}

absl::StatusOr<std::vector<AppendOutcome>> AuditLedger::SealAndAppend(
    absl::Span<const EntryInput> inputs, bool making_keys) {
  std::vector<std::string> identifiers;
  for (const EntryInput& input : inputs) {
    identifiers.push_back(input.actor);
    if (!input.subject.empty()) identifiers.push_back(input.subject);
  }
  std::sort(identifiers.begin(), identifiers.end());
  identifiers.erase(std::unique(identifiers.begin(), identifiers.end()), identifiers.end());
  std::vector<std::string> locators;
  locators.reserve(identifiers.size());
  for (const std::string& identifier : identifiers) {
    locators.push_back(subjects_->Locator(identifier));
  }
  // The keys as they are; none is made before the entries that need it are known to be new.
  ASSIGN_OR_RETURN(const auto found, store_->FindSubjectKeys(locators));
  absl::flat_hash_map<std::string, SubjectKey> keys;  // by identifier
  for (size_t i = 0; i < identifiers.size(); ++i) {
    if (auto it = found.find(locators[i]); it != found.end()) keys[identifiers[i]] = it->second;
  }
  // Someone without a key: this process's batches that may make keys go one at a time, each
  // looking the keys up once the one before is stored, so that they never make two keys for
  // one person (which the store would refuse, ABORTED).
  if (!making_keys && keys.size() < identifiers.size()) {
    absl::MutexLock lock(&making_keys_mu_);
    return SealAndAppend(inputs, /*making_keys=*/true);
  }
  // When each identifier was last forgotten, for those of inputs that occurred before their
  // append (records of other services, delivered late) and those without a key (whose new
  // key the store refuses should they be forgotten meanwhile, LedgerStore::Append).
  const absl::Time now = WholeMicros(clock_->Now());
  absl::flat_hash_map<std::string, absl::Time> forgotten;  // by identifier
  {
    absl::flat_hash_set<std::string> asked;
    for (const EntryInput& input : inputs) {
      if (!input.occurred_at.has_value() || *input.occurred_at >= now) continue;
      asked.insert(input.actor);
      if (!input.subject.empty()) asked.insert(input.subject);
    }
    std::vector<std::string> asked_locators;
    for (size_t i = 0; i < identifiers.size(); ++i) {
      if (asked.contains(identifiers[i]) || !keys.contains(identifiers[i])) {
        asked_locators.push_back(locators[i]);
      }
    }
    if (!asked_locators.empty()) {
      ASSIGN_OR_RETURN(const auto times, store_->FindForgotten(asked_locators));
      for (size_t i = 0; i < identifiers.size(); ++i) {
        if (auto it = times.find(locators[i]); it != times.end()) {
          forgotten[identifiers[i]] = it->second;
        }
      }
    }
  }
  // Whether `input` names `identifier` sealed for nobody: it occurred no later than they were
  // forgotten, so that no key, old or new, ever opens it.
  auto for_nobody = [&](const EntryInput& input, const std::string& identifier) {
    if (!input.occurred_at.has_value()) return false;
    auto it = forgotten.find(identifier);
    return it != forgotten.end() && *input.occurred_at <= it->second;
  };
  auto keyed = [&](const EntryInput& input) {
    return keys.contains(input.actor) && (input.subject.empty() || keys.contains(input.subject));
  };

  // An input naming someone without a key, under a request id its ledger holds already, is
  // answered from the ledger, and makes no key: it is that request delivered again after they
  // were forgotten, or another request, refused.
  std::vector<AppendOutcome> outcomes(inputs.size());
  std::vector<size_t> fresh;  // The inputs to append.
  for (size_t i = 0; i < inputs.size(); ++i) {
    const EntryInput& input = inputs[i];
    if (!input.request_id.empty() && !keyed(input)) {
      absl::StatusOr<Entry> stored = store_->FindRequest(input.ledger, input.request_id);
      if (stored.ok()) {
        ASSIGN_OR_RETURN(outcomes[i], AnswerRepeat(*std::move(stored), input, keys));
        continue;
      }
      if (!absl::IsNotFound(stored.status())) return stored.status();
    }
    fresh.push_back(i);
  }

  // One key per identifier without one, made on first sight and stored by the append, with
  // the entries naming it (none when none of them is appended).
  std::vector<SubjectKey> new_keys;
  for (size_t i : fresh) {
    for (const std::string* identifier : {&inputs[i].actor, &inputs[i].subject}) {
      if (identifier->empty() || keys.contains(*identifier) || for_nobody(inputs[i], *identifier)) {
        continue;
      }
      ASSIGN_OR_RETURN(SubjectKey key, subjects_->NewKey(*identifier));
      if (auto it = forgotten.find(*identifier); it != forgotten.end()) {
        key.forgotten_at = it->second;
      }
      new_keys.push_back(key);
      keys.emplace(*identifier, std::move(key));
    }
  }
  // Each identifier is sealed once per batch; its entries share the sealed form. Sealed for
  // nobody, it gets a random pseudonym per entry, which links it to nothing.
  absl::flat_hash_map<std::string, SealedSubject> sealed;
  auto seal = [&](const EntryInput& input,
                  const std::string& identifier) -> absl::StatusOr<SealedSubject> {
    if (for_nobody(input, identifier)) {
      ASSIGN_OR_RETURN(std::string ref, crypto::RandomBytes(crypto::kSha256Size));
      return SealedSubject{.ref = std::move(ref), .sealed = ""};
    }
    if (auto it = sealed.find(identifier); it != sealed.end()) return it->second;
    ASSIGN_OR_RETURN(std::string key, subjects_->UnwrapKey(keys.at(identifier)));
    ASSIGN_OR_RETURN(SealedSubject s, SubjectCipher::Seal(key, identifier));
    return sealed[identifier] = std::move(s);
  };

  std::vector<Entry> entries;
  entries.reserve(fresh.size());
  for (size_t i : fresh) {
    const EntryInput& input = inputs[i];
    ASSIGN_OR_RETURN(SealedSubject actor, seal(input, input.actor));
    SealedSubject subject;
    if (!input.subject.empty()) {
      ASSIGN_OR_RETURN(subject, seal(input, input.subject));
    }
    entries.push_back(EntryOf(input, now, std::move(actor), std::move(subject)));
  }
  ASSIGN_OR_RETURN(std::vector<AppendOutcome> appended,
                   store_->Append(std::move(entries), std::move(new_keys)));
  for (size_t k = 0; k < fresh.size(); ++k) {
    const size_t i = fresh[k];
    outcomes[i] = std::move(appended[k]);
    // Its request id records an entry under other pseudonyms: that entry's subject may have
    // been forgotten since (and named again, under a new key).
    if (absl::IsFailedPrecondition(outcomes[i].status) && !inputs[i].request_id.empty()) {
      absl::StatusOr<Entry> stored = store_->FindRequest(inputs[i].ledger, inputs[i].request_id);
      if (stored.ok()) {
        ASSIGN_OR_RETURN(outcomes[i], AnswerRepeat(*std::move(stored), inputs[i], keys));
      } else if (!absl::IsNotFound(stored.status())) {
        return stored.status();
      }
    }
  }
  return outcomes;
}

Entry AuditLedger::EntryOf(const EntryInput& input, absl::Time time, SealedSubject actor,
                           SealedSubject subject) {
  Entry e;
  e.ledger = input.ledger;
  e.time = time;
  e.action = input.action;
  e.actor = std::move(actor);
  e.model = input.model;
  e.tokens = input.tokens;
  e.latency = absl::Microseconds(absl::ToInt64Microseconds(input.latency));
  e.outcome = input.outcome;
  e.metadata = input.metadata;
  e.content_hash = input.content_hash;
  e.request_id = input.request_id;
  e.subject = std::move(subject);
  return e;
}

absl::StatusOr<AppendOutcome> AuditLedger::AnswerRepeat(
    Entry stored, const EntryInput& input,
    const absl::flat_hash_map<std::string, SubjectKey>& keys) {
  // Each identifier either has the pseudonym `stored` names, under its key, or `stored` names
  // a pseudonym whose key is gone, which nobody can tell from theirs any more.
  std::vector<std::string> unmatched;
  bool same = input.subject.empty() == stored.subject.empty();
  for (const auto& [identifier, named] :
       {std::pair(&input.actor, &stored.actor), std::pair(&input.subject, &stored.subject)}) {
    if (identifier->empty() || named->empty()) continue;
    if (auto key = keys.find(*identifier); key != keys.end()) {
      ASSIGN_OR_RETURN(std::string subject_key, subjects_->UnwrapKey(key->second));
      if (SubjectCipher::Pseudonym(subject_key, *identifier) == named->ref) continue;
    }
    unmatched.push_back(named->ref);
  }
  if (!unmatched.empty()) {
    ASSIGN_OR_RETURN(auto live, store_->SubjectKeysByRef(unmatched));
    same = same && live.empty();
  }
  if (same && SameRequest(stored, EntryOf(input, stored.time, stored.actor, stored.subject))) {
    return AppendOutcome{absl::OkStatus(), std::move(stored), true};
  }
  return AppendOutcome{RequestIdUsed(input.request_id, stored.index), Entry{}, false};
}

absl::StatusOr<AppendOutcome> AuditLedger::Append(const EntryInput& input) {
  RETURN_IF_ERROR(ValidateEntryInput(input));
  ASSIGN_OR_RETURN(std::vector<AppendOutcome> outcomes,
                   AppendBatch(absl::MakeConstSpan(&input, 1)));
  if (!outcomes[0].status.ok()) return outcomes[0].status;
  return std::move(outcomes[0]);
}

absl::StatusOr<std::vector<RevealedEntry>> AuditLedger::Reveal(std::vector<Entry> entries) {
  std::vector<std::string> refs;
  for (const Entry& e : entries) {
    refs.push_back(e.actor.ref);
    if (!e.subject.empty()) refs.push_back(e.subject.ref);
  }
  std::sort(refs.begin(), refs.end());
  refs.erase(std::unique(refs.begin(), refs.end()), refs.end());
  ASSIGN_OR_RETURN(auto keys, store_->SubjectKeysByRef(refs));
  absl::flat_hash_map<std::string, std::string> key_of;  // ref -> key
  for (const auto& [ref, stored] : keys) {
    absl::StatusOr<std::string> key = subjects_->UnwrapKey(stored);
    if (key.ok()) key_of[ref] = *std::move(key);
  }
  auto open = [&](const SealedSubject& s) -> std::string {
    auto it = key_of.find(s.ref);
    if (s.empty() || it == key_of.end()) return "";
    absl::StatusOr<std::string> identifier = SubjectCipher::Open(it->second, s);
    return identifier.ok() ? *std::move(identifier) : "";
  };
  std::vector<RevealedEntry> out;
  out.reserve(entries.size());
  for (Entry& e : entries) {
    RevealedEntry r{.entry = std::move(e), .actor = "", .subject = ""};
    r.actor = open(r.entry.actor);
    r.subject = open(r.entry.subject);
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<bool> AuditLedger::Exists(const LedgerRef& ledger) {
  ASSIGN_OR_RETURN(const uint64_t size, store_->Size(ledger));
  return size > 0;
}

absl::Status AuditLedger::RecordRead(const LedgerRef& ledger, const std::string& requested_by,
                                     absl::string_view what) {
  EntryInput read;
  read.action = Action::kAuditRead;
  read.actor = requested_by;
  read.ledger = ledger;
  read.metadata["read"] = std::string(what);
  return Append(read).status();
}

absl::StatusOr<QueryPage> AuditLedger::Query(const QuerySpec& spec,
                                             const std::string& requested_by) {
  RETURN_IF_ERROR(ValidateLedger(spec.ledger, "ledger"));
  RETURN_IF_ERROR(CheckRequester(requested_by));
  if (spec.page_size == 0 || spec.page_size > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be 1 to ", kMaxPageSize, ", not ", spec.page_size));
  }
  if (spec.start.has_value() && spec.end.has_value() && *spec.end < *spec.start) {
    return absl::InvalidArgumentError("end_time: before start_time");
  }
  RETURN_IF_ERROR(ValidateIdentifier(spec.actor, "actor"));
  QueryPage page;
  ASSIGN_OR_RETURN(const uint64_t size, store_->Size(spec.ledger));
  if (size == 0) return page;  // No such ledger: nothing to read, record or create.
  page.end_index = spec.end_index.value_or(size);
  EntryFilter filter{.ledger = spec.ledger,
                     .action = spec.action,
                     .actor_ref = "",
                     .start = spec.start,
                     .end = spec.end,
                     .after_index = spec.after_index,
                     .limit = spec.page_size + 1};
  if (!spec.actor.empty()) {
    absl::StatusOr<SubjectKey> key = store_->GetSubjectKey(subjects_->Locator(spec.actor));
    if (absl::IsNotFound(key.status())) {
      RETURN_IF_ERROR(RecordRead(spec.ledger, requested_by, "query"));
      return page;  // Nothing was ever recorded about this actor, or they were forgotten.
    }
    if (!key.ok()) return key.status();
    RETURN_IF_ERROR(subjects_->UnwrapKeyOf(*key, spec.actor).status());
    filter.actor_ref = key->ref;
  }
  ASSIGN_OR_RETURN(std::vector<Entry> entries, store_->Query(filter));
  // Entries are in index order: those appended since the first page come last.
  while (!entries.empty() && entries.back().index >= page.end_index) entries.pop_back();
  if (entries.size() > spec.page_size) {
    page.next_index = entries[spec.page_size].index;
    entries.resize(spec.page_size);
  }
  ASSIGN_OR_RETURN(page.entries, Reveal(std::move(entries)));
  RETURN_IF_ERROR(RecordRead(spec.ledger, requested_by, "query"));
  return page;
}

absl::StatusOr<Checkpoint> AuditLedger::GetCheckpoint(const LedgerRef& ledger, uint64_t tree_size) {
  RETURN_IF_ERROR(ValidateLedger(ledger, "ledger"));
  return store_->GetCheckpoint(ledger, tree_size);
}

absl::StatusOr<CheckpointPage> AuditLedger::ListCheckpoints(const LedgerRef& ledger,
                                                            uint64_t after_size, size_t page_size) {
  RETURN_IF_ERROR(ValidateLedger(ledger, "ledger"));
  if (page_size < 1 || page_size > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be between 1 and ", kMaxPageSize, ", not ", page_size));
  }
  CheckpointPage page;
  // One more than a page says whether another follows.
  ASSIGN_OR_RETURN(page.checkpoints,
                   store_->ListCheckpointsAfter(ledger, after_size, page_size + 1));
  if (page.checkpoints.size() > page_size) {
    page.checkpoints.resize(page_size);
    page.next_after_size = page.checkpoints.back().tree_size;
  }
  return page;
}

absl::StatusOr<InclusionProof> AuditLedger::ProveInclusion(const LedgerRef& ledger,
                                                           std::optional<uint64_t> index,
                                                           const std::string& request_id,
                                                           uint64_t tree_size) {
  RETURN_IF_ERROR(ValidateLedger(ledger, "ledger"));
  std::optional<Entry> entry;
  if (index.has_value()) {
    ASSIGN_OR_RETURN(std::vector<Entry> found, store_->ReadRange(ledger, *index, 1));
    if (found.empty()) {
      return absl::NotFoundError(
          absl::StrCat("ledger ", LedgerName(ledger), " has no entry ", *index));
    }
    entry = std::move(found[0]);
  } else {
    if (request_id.empty()) return absl::InvalidArgumentError("index or request_id: required");
    ASSIGN_OR_RETURN(entry, store_->FindRequest(ledger, request_id));
  }
  ASSIGN_OR_RETURN(Checkpoint checkpoint, store_->GetCheckpoint(ledger, tree_size));
  if (entry->index >= checkpoint.tree_size && tree_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tree_size: entry ", entry->index, " is not in the tree of size ", tree_size,
                     "; name a larger checkpoint, or 0 for the newest"));
  }
  if (entry->index >= checkpoint.tree_size) {
    return absl::FailedPreconditionError(
        absl::StrCat("entry ", entry->index, " is newer than the checkpoint of size ",
                     checkpoint.tree_size, "; ask again once a newer checkpoint is signed"));
  }
  // Nothing stored is vouched for unchecked: the entry's fields must give its leaf hash, its
  // MAC (when it has one) must be the service's, and the stored hashes must fold to the
  // checkpoint's root.
  const std::string damaged =
      absl::StrCat("entry ", entry->index, " of ledger ", LedgerName(ledger), ": ");
  if (EntryLeafHash(*entry) != entry->leaf_hash) {
    return absl::DataLossError(
        absl::StrCat(damaged,
                     "its fields do not match its leaf hash; the ledger was changed after it was "
                     "written (VerifyLedger names the first bad index)"));
  }
  if (!entry->mac.empty() && !authenticator_->Check(*entry)) {
    // Only a checkpoint an earlier key signed in its time vouches for such an entry (its MAC
    // may be under the key of an earlier release), not one it signed after a later key took
    // over (LedgerVerifier: key order).
    StoredCheckpoints all(store_, ledger);
    ASSIGN_OR_RETURN(const uint64_t vouched,
                     LedgerVerifier(ledger, keys_, &all).earlier_key_vouched_size());
    if (!keys_.SignerOf(checkpoint).ok() || entry->index >= vouched) {
      return absl::DataLossError(
          absl::StrCat(damaged,
                       "its MAC is not the audit service's, and no checkpoint of an earlier "
                       "signing key vouches for it; the audit service did not write it as it "
                       "stands (VerifyLedger names the first bad index)"));
    }
  }
  ASSIGN_OR_RETURN(ProofPlan plan, PlanInclusionProof(entry->index, checkpoint.tree_size));
  ASSIGN_OR_RETURN(auto hashes, store_->NodeHashes(ledger, NodesOf(plan)));
  ASSIGN_OR_RETURN(std::vector<Hash> proof, AssembleProof(plan, hashes));
  if (!VerifyInclusion(entry->leaf_hash, entry->index, checkpoint.tree_size, proof,
                       checkpoint.root)) {
    return absl::DataLossError(absl::StrCat(
        damaged, "the stored hashes do not prove it in the checkpoint of size ",
        checkpoint.tree_size, "; the ledger was changed (VerifyLedger names the first bad index)"));
  }
  return InclusionProof{*std::move(entry), std::move(checkpoint), std::move(proof)};
}

absl::StatusOr<Entry> AuditLedger::FindRequest(const LedgerRef& ledger,
                                               const std::string& request_id) {
  RETURN_IF_ERROR(ValidateLedger(ledger, "ledger"));
  if (request_id.empty()) return absl::InvalidArgumentError("request_id: required");
  if (request_id.size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id: more than ", kMaxRequestIdBytes, " bytes"));
  }
  return store_->FindRequest(ledger, request_id);
}

absl::StatusOr<ConsistencyProof> AuditLedger::ProveConsistency(const LedgerRef& ledger,
                                                               uint64_t from_size,
                                                               uint64_t to_size) {
  RETURN_IF_ERROR(ValidateLedger(ledger, "ledger"));
  ASSIGN_OR_RETURN(Checkpoint to, store_->GetCheckpoint(ledger, to_size));
  if (from_size == 0 || from_size > to.tree_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("from_size: must be 1 to ", to.tree_size, ", not ", from_size));
  }
  ConsistencyProof result;
  if (absl::StatusOr<Checkpoint> from = store_->GetCheckpoint(ledger, from_size); from.ok()) {
    result.from = *std::move(from);
  }
  ASSIGN_OR_RETURN(ProofPlan plan, PlanConsistencyProof(from_size, to.tree_size));
  ASSIGN_OR_RETURN(auto hashes, store_->NodeHashes(ledger, NodesOf(plan)));
  ASSIGN_OR_RETURN(result.proof, AssembleProof(plan, hashes));
  result.to = std::move(to);
  return result;
}

absl::StatusOr<uint64_t> AuditLedger::CountUnaccounted(absl::flat_hash_set<std::string> refs) {
  // Those with a key are accounted for.
  std::vector<std::string> all(refs.begin(), refs.end());
  for (size_t from = 0; from < all.size(); from += kReadChunk) {
    const size_t to = std::min(all.size(), from + kReadChunk);
    ASSIGN_OR_RETURN(auto keys, store_->SubjectKeysByRef(std::vector<std::string>(
                                    all.begin() + from, all.begin() + to)));
    for (const auto& [ref, key] : keys) refs.erase(ref);
  }
  if (refs.empty()) return 0;
  // So are the forgotten: a subject_forgotten record's subject is the subject's pseudonym.
  EntryFilter filter{.ledger = LedgerRef{},
                     .action = Action::kSubjectForgotten,
                     .actor_ref = "",
                     .start = std::nullopt,
                     .end = std::nullopt,
                     .after_index = 0,
                     .limit = kReadChunk};
  for (;;) {
    ASSIGN_OR_RETURN(std::vector<Entry> forgotten, store_->Query(filter));
    for (const Entry& e : forgotten) refs.erase(e.subject.ref);
    if (forgotten.size() < kReadChunk || refs.empty()) break;
    filter.after_index = forgotten.back().index + 1;
  }
  return refs.size();
}

absl::StatusOr<IntegrityReport> AuditLedger::Verify(const LedgerRef& ledger,
                                                    const std::function<bool()>& given_up) {
  RETURN_IF_ERROR(ValidateLedger(ledger, "ledger"));
  StoredCheckpoints checkpoints(store_, ledger, given_up);
  LedgerVerifier verifier(ledger, keys_, &checkpoints, RememberedHead(ledger), authenticator_.get(),
                          "the head this audit process signed or saw signed");
  std::optional<uint64_t> stopped_at;
  uint64_t walked_entries = 0;
  const absl::Status walked = store_->ForEachEntry(ledger, 0, [&](const Entry& e) {
    if (given_up != nullptr && walked_entries++ % kGivenUpEvery == 0 && given_up()) {
      stopped_at = e.index;
      return false;
    }
    return verifier.Add(e);
  });
  if (stopped_at.has_value()) {
    return absl::CancelledError(
        absl::StrCat("verification stopped at entry ", *stopped_at, ": its caller gave up"));
  }
  if (absl::IsDataLoss(walked)) {
    verifier.Unreadable(walked.message());
  } else if (!walked.ok()) {
    return walked;
  }
  ASSIGN_OR_RETURN(IntegrityReport report, verifier.Finish());
  if (report.valid && verifier.newest_checked().has_value()) Remember(*verifier.newest_checked());
  return report;
}

absl::StatusOr<ComplianceSummary> AuditLedger::Summarize(const LedgerRef& ledger,
                                                         std::optional<absl::Time> start,
                                                         std::optional<absl::Time> end,
                                                         const std::string& requested_by,
                                                         const std::function<bool()>& given_up) {
  RETURN_IF_ERROR(ValidateLedger(ledger, "ledger"));
  RETURN_IF_ERROR(CheckRequester(requested_by));
  if (start.has_value() && end.has_value() && *end < *start) {
    return absl::InvalidArgumentError("end_time: before start_time");
  }
  ComplianceSummary summary;
  ASSIGN_OR_RETURN(const bool exists, Exists(ledger));
  if (!exists) {
    ASSIGN_OR_RETURN(summary.integrity, Verify(ledger, given_up));
    return summary;
  }
  EntryFilter filter{.ledger = ledger,
                     .action = std::nullopt,
                     .actor_ref = "",
                     .start = start,
                     .end = end,
                     .after_index = 0,
                     .limit = kSummaryChunk};
  absl::flat_hash_set<std::string> refs;  // The pseudonyms the entries name.
  for (;;) {
    if (given_up != nullptr && given_up()) {
      return absl::CancelledError("summary stopped: its caller gave up");
    }
    ASSIGN_OR_RETURN(std::vector<Entry> entries, store_->Query(filter));
    for (const Entry& e : entries) {
      // Entries are in index order, which is not time order when the appending replicas'
      // clocks differ: the earliest and the latest time.
      if (!summary.period_start.has_value() || e.time < *summary.period_start) {
        summary.period_start = e.time;
      }
      if (!summary.period_end.has_value() || e.time > *summary.period_end) {
        summary.period_end = e.time;
      }
      ++summary.total_entries;
      // Saturates: entries appended before kMaxTokens may hold up to INT64_MAX each.
      if (CountsTokensUsed(e)) {
        summary.total_tokens = e.tokens > std::numeric_limits<int64_t>::max() - summary.total_tokens
                                   ? std::numeric_limits<int64_t>::max()
                                   : summary.total_tokens + std::max<int64_t>(e.tokens, 0);
      }
      if (IsPolicyViolation(e)) ++summary.policy_violations;
      ++summary.action_breakdown[std::string(ActionName(e.action))];
      if (e.action == Action::kDecisionAllow) {
        ++summary.allowed_by_region[MetadataOr(e, "region", "unknown")];
        ++summary.allowed_by_residency[MetadataOr(e, "residency", "none")];
        ++summary.allowed_by_data_class[MetadataOr(e, "data_class", "unknown")];
        ++summary.allowed_by_api[MetadataOr(e, "api", "chat.completions")];
        for (absl::string_view item :
             absl::StrSplit(MetadataOr(e, "pii_allowed", ""), ',', absl::SkipEmpty())) {
          std::pair<absl::string_view, absl::string_view> type_count =
              absl::StrSplit(item, absl::MaxSplits('=', 1));
          uint64_t count = 0;
          if (!type_count.first.empty() && absl::SimpleAtoi(type_count.second, &count)) {
            uint64_t& sum = summary.pii_allowed_by_type[std::string(type_count.first)];
            sum = count > std::numeric_limits<uint64_t>::max() - sum
                      ? std::numeric_limits<uint64_t>::max()
                      : sum + count;
          }
        }
      } else if (e.action == Action::kDecisionDeny) {
        ++summary.denials_by_reason[MetadataOr(e, "reason", "unknown")];
      }
      // An identifier sealed for nobody (no sealed form) is accounted for: nobody can open it.
      for (const SealedSubject* named : {&e.actor, &e.subject}) {
        if (!named->sealed.empty()) refs.insert(named->ref);
      }
    }
    if (entries.size() < kSummaryChunk) break;
    filter.after_index = entries.back().index + 1;
  }
  ASSIGN_OR_RETURN(summary.unaccounted_subjects, CountUnaccounted(std::move(refs)));
  ASSIGN_OR_RETURN(summary.integrity, Verify(ledger, given_up));
  RETURN_IF_ERROR(RecordRead(ledger, requested_by, "compliance_summary"));
  return summary;
}

absl::StatusOr<std::vector<RevealedEntry>> AuditLedger::Export(const LedgerRef& ledger,
                                                               uint64_t from_index, size_t limit,
                                                               const std::string& requested_by,
                                                               bool record) {
  RETURN_IF_ERROR(ValidateLedger(ledger, "ledger"));
  RETURN_IF_ERROR(CheckRequester(requested_by));
  if (record) {
    ASSIGN_OR_RETURN(record, Exists(ledger));
  }
  ASSIGN_OR_RETURN(std::vector<Entry> entries, store_->ReadRange(ledger, from_index, limit));
  ASSIGN_OR_RETURN(std::vector<RevealedEntry> revealed, Reveal(std::move(entries)));
  if (record) RETURN_IF_ERROR(RecordRead(ledger, requested_by, "export"));
  return revealed;
}

absl::StatusOr<ForgetResult> AuditLedger::Forget(const std::string& subject,
                                                 const std::string& requested_by,
                                                 const std::string& request_id) {
  if (subject.empty()) return absl::InvalidArgumentError("subject: required");
  RETURN_IF_ERROR(ValidateIdentifier(subject, "subject"));
  RETURN_IF_ERROR(CheckRequester(requested_by));
  RETURN_IF_ERROR(ValidateRequestId(request_id, "request_id"));
  // The record keeps the id's digest, never the id (SubjectCipher::ForgetRequestId); records
  // of earlier releases kept the id itself, and any other entry of the organisation's ledger
  // under it makes it another request's.
  const std::string recorded_id = request_id.empty() ? "" : subjects_->ForgetRequestId(request_id);
  const std::string locator = subjects_->Locator(subject);
  auto find_key = [&]() -> absl::StatusOr<absl::StatusOr<SubjectKey>> {
    absl::StatusOr<SubjectKey> key = store_->GetSubjectKey(locator);
    if (!key.ok() && !absl::IsNotFound(key.status())) return key.status();
    return key;
  };
  if (!request_id.empty()) {
    for (const std::string* id : {&recorded_id, &request_id}) {
      absl::StatusOr<Entry> first = store_->FindRequest(LedgerRef{}, *id);
      if (first.ok()) {
        ASSIGN_OR_RETURN(absl::StatusOr<SubjectKey> key, find_key());
        return RepeatForget(subject, request_id, locator, key, *std::move(first));
      }
      if (!absl::IsNotFound(first.status())) return first.status();
    }
  }
  // First the forgetting, which waits for the appends storing keys in progress: from then on
  // no new key is made for the subject by a record of a change made before it, delivered
  // late, and the key found below is the only one (any made after it names entries of
  // requests made after the forgetting).
  RETURN_IF_ERROR(store_->RecordForgotten(locator, WholeMicros(clock_->Now())));
  ASSIGN_OR_RETURN(absl::StatusOr<SubjectKey> key, find_key());
  EntryInput record;
  record.action = Action::kSubjectForgotten;
  record.actor = requested_by;
  record.request_id = recorded_id;
  // The record names the subject only while the key lives: it is shredded with the rest.
  if (key.ok()) record.subject = subject;
  ForgetResult result;
  ASSIGN_OR_RETURN(AppendOutcome outcome, Append(record));
  result.entry = std::move(outcome.entry);
  if (key.ok()) {
    ASSIGN_OR_RETURN(result.forgotten, store_->DeleteSubjectKey(locator));
  }
  return result;
}

absl::StatusOr<int64_t> AuditLedger::PurgeForgotten(absl::Duration retention) {
  return store_->PurgeForgotten(clock_->Now() - retention);
}

absl::StatusOr<ForgetResult> AuditLedger::RepeatForget(const std::string& subject,
                                                       const std::string& request_id,
                                                       const std::string& locator,
                                                       const absl::StatusOr<SubjectKey>& key,
                                                       Entry first) {
  if (first.action != Action::kSubjectForgotten) {
    return absl::FailedPreconditionError(
        absl::StrCat("request_id: already names a ", ActionName(first.action), " entry"));
  }
  // Whether the record is this subject's: by the pseudonym below while this subject's key
  // lives (or, for records of earlier releases, by their binding). A subject without a key is
  // named by nothing in the ledger: the first record answers for it, and nothing is forgotten.
  if (auto binding = first.metadata.find(std::string(kForgetBindingKey));
      binding != first.metadata.end() &&
      binding->second != subjects_->RequestBinding(request_id, subject)) {
    return absl::FailedPreconditionError(
        "request_id: already names the forgetting of another subject");
  }
  // A key that names nothing is as good as none: one made for a new record naming the
  // subject whose append then failed, say. It is destroyed, and the first record answers. (A
  // key the first record was sealed with names that record.)
  if (key.ok()) {
    ASSIGN_OR_RETURN(std::vector<Entry> named, store_->EntriesOfSubject(key->ref, std::nullopt, 1));
    if (named.empty()) {
      RETURN_IF_ERROR(store_->DeleteSubjectKey(locator).status());
      return ForgetResult{.forgotten = !first.subject.empty(), .entry = std::move(first)};
    }
  }
  // The first request found no key, and this subject has one: another subject, or one the
  // ledger has named since; either way this id cannot forget them.
  if (first.subject.empty() && key.ok()) {
    return absl::FailedPreconditionError(
        "request_id: already names a forgetting that found no key; this subject has one, so "
        "forget them under a new request id");
  }
  ForgetResult result;
  // The first request found a key: it destroyed the key, or it stopped before and this
  // retry finishes the job, provided the record is this subject's.
  result.forgotten = !first.subject.empty();
  if (result.forgotten && key.ok()) {
    ASSIGN_OR_RETURN(std::string subject_key, subjects_->UnwrapKey(*key));
    if (SubjectCipher::Pseudonym(subject_key, subject) != first.subject.ref) {
      return absl::FailedPreconditionError(
          "request_id: already names the forgetting of another subject, or of this one before "
          "entries made since named them again; forget them under a new request id");
    }
    RETURN_IF_ERROR(store_->DeleteSubjectKey(locator).status());
  }
  result.entry = std::move(first);
  return result;
}

absl::StatusOr<SubjectPage> AuditLedger::ExportSubject(const std::string& subject,
                                                       const std::string& requested_by,
                                                       const std::optional<SubjectResume>& after,
                                                       size_t page_size) {
  if (subject.empty()) return absl::InvalidArgumentError("subject: required");
  RETURN_IF_ERROR(ValidateIdentifier(subject, "subject"));
  RETURN_IF_ERROR(CheckRequester(requested_by));
  if (page_size < 1 || page_size > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be between 1 and ", kMaxPageSize));
  }
  absl::StatusOr<SubjectKey> key = store_->GetSubjectKey(subjects_->Locator(subject));
  if (!key.ok() && !absl::IsNotFound(key.status())) return key.status();
  // Never another subject's entries: the row must be this subject's.
  if (key.ok()) RETURN_IF_ERROR(subjects_->UnwrapKeyOf(*key, subject).status());
  SubjectPage page;
  EntryInput record;
  record.action = Action::kSubjectAccessExported;
  record.actor = requested_by;
  if (key.ok()) {
    const LedgerRef org;
    uint64_t org_end = 0;
    if (after.has_value() && after->org_end.has_value()) {
      org_end = *after->org_end;
    } else {
      ASSIGN_OR_RETURN(org_end, store_->Size(org));
    }
    // One more than a page says whether another follows. Entries of the organisation's
    // ledger from org_end on are not part of the export, wherever they fall in its order.
    std::optional<SubjectCursor> from;
    if (after.has_value()) from = after->after;
    std::vector<Entry> entries;
    for (;;) {
      const size_t wanted = page_size + 1 - entries.size();
      ASSIGN_OR_RETURN(std::vector<Entry> batch, store_->EntriesOfSubject(key->ref, from, wanted));
      if (!batch.empty()) from = CursorOf(batch.back());
      for (Entry& e : batch) {
        if (e.ledger == org && e.index >= org_end) continue;
        entries.push_back(std::move(e));
      }
      if (batch.size() < wanted || entries.size() > page_size) break;
    }
    const bool over_page = entries.size() > page_size;
    if (over_page) entries.resize(page_size);
    // The page also ends before the entry that would take it past kSubjectPageBytes.
    size_t bytes = 0, kept = 0;
    for (; kept < entries.size(); ++kept) {
      const Entry& e = entries[kept];
      const size_t size = EncodeLeafData(e).size() + e.actor.sealed.size() +
                          e.subject.sealed.size() + sizeof(Hash) * (e.completed.size() + 1);
      if (kept > 0 && bytes + size > kSubjectPageBytes) break;
      bytes += size;
    }
    const bool more = over_page || kept < entries.size();
    entries.resize(kept);
    if (more) page.next = SubjectResume{.after = CursorOf(entries.back()), .org_end = org_end};
    ASSIGN_OR_RETURN(page.entries, Reveal(std::move(entries)));
    // The subject's copy names the subject alone: whoever else an entry names (who removed
    // them, whom they acted on) is another person, left unopened.
    for (RevealedEntry& e : page.entries) {
      if (e.actor != subject) e.actor.clear();
      if (e.subject != subject) e.subject.clear();
    }
    record.subject = subject;
    record.metadata["entries"] = absl::StrCat(page.entries.size());
    if (after.has_value()) record.metadata["page"] = "next";
  }
  RETURN_IF_ERROR(Append(record).status());
  return page;
}

absl::StatusOr<int> AuditLedger::SignCheckpoints(std::vector<LedgerOverview>* overviews) {
  ASSIGN_OR_RETURN(std::vector<LedgerSize> ledgers, store_->ListLedgers());
  if (overviews != nullptr) overviews->clear();
  // A ledger this process remembers a head of and the store no longer lists was deleted:
  // SignCheckpoint refuses it as one that shrank to nothing.
  {
    absl::flat_hash_map<LedgerRef, bool> listed;
    for (const LedgerSize& l : ledgers) listed[l.ledger] = true;
    absl::MutexLock lock(&heads_mu_);
    for (const auto& [ref, head] : heads_) {
      if (!listed.contains(ref)) ledgers.push_back(LedgerSize{ref, 0});
    }
  }
  int signed_count = 0;
  std::vector<std::string> failed;
  absl::Status first_failure;
  for (const LedgerSize& l : ledgers) {
    LedgerOverview overview{
        .ledger = l.ledger, .size = l.size, .latest_checkpoint = {}, .refused = {}};
    absl::StatusOr<bool> signed_one = SignCheckpoint(l, overview);
    if (!signed_one.ok()) {
      if (absl::IsDataLoss(signed_one.status())) {
        overview.refused = std::string(signed_one.status().message());
        LogError("refusing to sign a checkpoint: the ledger is not what was signed",
                 {{"ledger", LedgerName(l.ledger)}, {"problem", overview.refused}});
      } else {
        LogWarning("signing a checkpoint failed",
                   {{"ledger", LedgerName(l.ledger)}, {"status", signed_one.status().ToString()}});
      }
      failed.push_back(LedgerName(l.ledger));
      if (first_failure.ok()) first_failure = signed_one.status();
    } else if (*signed_one) {
      ++signed_count;
    }
    if (overviews != nullptr) overviews->push_back(std::move(overview));
  }
  if (!failed.empty()) {
    return absl::Status(
        first_failure.code(),
        absl::StrCat("no checkpoint signed for ", failed.size(), " of ", ledgers.size(),
                     " ledgers (", absl::StrJoin(failed, ", "), "); ", signed_count,
                     " signed; the first failure: ", first_failure.message()));
  }
  return signed_count;
}

absl::StatusOr<bool> AuditLedger::SignCheckpoint(const LedgerSize& l, LedgerOverview& overview) {
  const std::string name = LedgerName(l.ledger);
  auto refuse = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("ledger ", name, ": ", why));
  };
  auto root_hex = [](const Hash& root) { return absl::BytesToHexString(AsBytes(root)); };
  const std::optional<Checkpoint> head = RememberedHead(l.ledger);
  absl::StatusOr<Checkpoint> newest = store_->GetCheckpoint(l.ledger, 0);
  if (!newest.ok() && !absl::IsNotFound(newest.status())) return newest.status();
  if (newest.ok()) overview.latest_checkpoint = *newest;
  const uint64_t base = newest.ok() ? newest->tree_size : 0;

  // What was signed is still there: the remembered head, and the newest stored checkpoint.
  if (head.has_value()) {
    const std::string remembered =
        absl::StrCat("the head this audit process signed or saw signed (size ", head->tree_size,
                     ", root ", root_hex(head->root), ")");
    if (l.size < head->tree_size) {
      return refuse(absl::StrCat("it holds ", l.size, " entries, fewer than ", remembered,
                                 ": entries were removed"));
    }
    if (base < head->tree_size) {
      return refuse(absl::StrCat("its newest stored checkpoint has size ", base, ", less than ",
                                 remembered, ": checkpoints were removed"));
    }
    absl::StatusOr<Checkpoint> same =
        base == head->tree_size ? *newest : store_->GetCheckpoint(l.ledger, head->tree_size);
    if (!same.ok() && !absl::IsNotFound(same.status())) return same.status();
    if (!same.ok()) {
      return refuse(absl::StrCat("the checkpoint of ", remembered, " is no longer stored"));
    }
    if (same->root != head->root) {
      return refuse(absl::StrCat("its stored checkpoint of size ", head->tree_size, " has root ",
                                 root_hex(same->root), ", not that of ", remembered));
    }
  }
  // Nothing new since the remembered head, which was checked when it was remembered.
  if (head.has_value() && base == head->tree_size && l.size == base) return false;
  CompactTree tree;
  std::string newest_signer;
  if (newest.ok()) {
    absl::StatusOr<std::string> signer = keys_.SignerOf(*newest);
    if (!signer.ok()) {
      return refuse(absl::StrCat(signer.status().message(), "; it is the newest checkpoint"));
    }
    newest_signer = *std::move(signer);
    if (l.size < base) {
      return refuse(absl::StrCat("it holds ", l.size, " entries, but a checkpoint of size ", base,
                                 " was signed: entries were removed"));
    }
    // The stored hashes of its first `base` entries give the checkpoint's root.
    ASSIGN_OR_RETURN(tree, StoredTree(l.ledger, base));
    if (tree.Root() != newest->root) {
      return refuse(absl::StrCat("the stored hashes of its first ", base,
                                 " entries do not give the root of its checkpoint of that size"));
    }
    if (head.has_value() && head->tree_size < base) {
      ASSIGN_OR_RETURN(ProofPlan plan, PlanConsistencyProof(head->tree_size, base));
      ASSIGN_OR_RETURN(auto nodes_of_plan, store_->NodeHashes(l.ledger, NodesOf(plan)));
      ASSIGN_OR_RETURN(std::vector<Hash> proof, AssembleProof(plan, nodes_of_plan));
      if (!VerifyConsistency(head->tree_size, base, head->root, newest->root, proof)) {
        return refuse(absl::StrCat("its checkpoint of size ", base,
                                   " does not extend the head this audit process signed or saw "
                                   "signed (size ",
                                   head->tree_size, "): its entries were rewritten"));
      }
    }
    Remember(*newest);
  }
  if (l.size == base) return false;

  // The walk below starts at the newest checkpoint, unless an earlier key signed it after this
  // key took over (a late checkpoint, which a leaked retired key could sign: it vouches for
  // nothing): then at this key's newest checkpoint, and the entries since are checked up to
  // the late one's size too, which the tree must give.
  uint64_t from = base;
  std::string late;  // Why the walk starts before the newest checkpoint.
  if (!newest_signer.empty() && newest_signer != signer_->key_id()) {
    ASSIGN_OR_RETURN(std::optional<Checkpoint> resume, OwnNewestBefore(l.ledger, base));
    if (resume.has_value()) {
      from = resume->tree_size;
      late = absl::StrCat(" (the newest checkpoint, of size ", base, ", was signed by key ",
                          newest_signer, " after this key signed one of size ", from,
                          ": it vouches for nothing; whoever holds key ", newest_signer,
                          " may have made it)");
      ASSIGN_OR_RETURN(tree, StoredTree(l.ledger, from));
      if (tree.Root() != resume->root) {
        return refuse(absl::StrCat("the stored hashes of its first ", from,
                                   " entries do not give the root of its checkpoint of that "
                                   "size"));
      }
    }
  }

  // The entries since: recomputed from their fields, checked against their stored hashes and
  // their MACs. Entries without a MAC (stored before entries carried one) are accepted only
  // before the ledger's first entry with one.
  bool seen_mac = false;
  if (from > 0) {
    ASSIGN_OR_RETURN(std::vector<Entry> before, store_->ReadRange(l.ledger, from - 1, 1));
    seen_mac = !before.empty() && !before[0].mac.empty();
  }
  uint64_t unauthenticated = 0;
  std::string problem;
  std::vector<Hash> completed;
  const absl::Status walked = store_->ForEachEntry(l.ledger, from, [&](const Entry& e) {
    const uint64_t expected = tree.size();
    if (e.index != expected) {
      problem = absl::StrCat("entry ", expected, " is missing (the next one is ", e.index, ")");
      return false;
    }
    const Hash leaf = EntryLeafHash(e);
    if (leaf != e.leaf_hash) {
      problem = absl::StrCat("entry ", expected, ": its fields do not match its leaf hash");
      return false;
    }
    tree.Append(leaf, &completed);
    if (completed != e.completed) {
      problem = absl::StrCat("entry ", expected,
                             ": its stored subtree hashes differ from the recomputed ones");
      return false;
    }
    if (e.mac.empty()) {
      if (seen_mac) {
        problem = absl::StrCat("entry ", expected,
                               " carries no MAC, but an entry before it does: the audit service "
                               "did not write it");
        return false;
      }
      ++unauthenticated;
    } else if (!authenticator_->Check(e)) {
      problem = absl::StrCat("entry ", expected,
                             ": its MAC is not the audit service's: the service did not write it "
                             "as it stands");
      return false;
    } else {
      seen_mac = true;
    }
    if (tree.size() == base && from < base && tree.Root() != newest->root) {
      problem = absl::StrCat("the tree of its first ", base,
                             " entries does not give the root of its checkpoint of that size");
      return false;
    }
    return tree.size() < l.size;
  });
  if (absl::IsDataLoss(walked)) return refuse(walked.message());
  if (!walked.ok()) return walked;
  if (!problem.empty()) return refuse(absl::StrCat(problem, late));
  if (tree.size() < l.size) {
    return refuse(
        absl::StrCat("entry ", tree.size(), " is missing (the ledger's size is ", l.size, ")"));
  }
  if (unauthenticated > 0) {
    LogWarning("signing over entries without a MAC, stored before entries carried one",
               {{"ledger", name}, {"entries", absl::StrCat(unauthenticated)}});
  }
  ASSIGN_OR_RETURN(Checkpoint checkpoint,
                   signer_->Sign(l.ledger, l.size, tree.Root(), clock_->Now()));
  RETURN_IF_ERROR(store_->AddCheckpoint(checkpoint));
  Remember(checkpoint);
  // A record of every signed head outside the database.
  LogInfo("checkpoint signed", {{"ledger", name},
                                {"size", absl::StrCat(checkpoint.tree_size)},
                                {"root", root_hex(checkpoint.root)},
                                {"key_id", checkpoint.key_id}});
  if (!newest_signer.empty() && newest_signer != checkpoint.key_id) {
    LogInfo("the ledger's checkpoints continue under the current signing key",
            {{"ledger", name},
             {"earlier_key_id", newest_signer},
             {"key_id", checkpoint.key_id},
             {"from_size", absl::StrCat(base)}});
  }
  overview.latest_checkpoint = std::move(checkpoint);
  return true;
}

absl::StatusOr<CompactTree> AuditLedger::StoredTree(const LedgerRef& ledger, uint64_t size) {
  const std::vector<NodeId> nodes = FrontierNodes(size);
  ASSIGN_OR_RETURN(auto hashes, store_->NodeHashes(ledger, nodes));
  std::vector<Hash> frontier;
  for (const NodeId& node : nodes) frontier.push_back(hashes.at(node));
  return CompactTree::FromFrontier(size, std::move(frontier));
}

absl::StatusOr<std::optional<Checkpoint>> AuditLedger::OwnNewestBefore(const LedgerRef& ledger,
                                                                       uint64_t size) {
  // A page at a time, smallest first, keeping the largest of this key's below `size`.
  std::optional<Checkpoint> newest;
  uint64_t after = 0;
  while (after + 1 < size) {
    ASSIGN_OR_RETURN(std::vector<Checkpoint> page,
                     store_->ListCheckpointsAfter(ledger, after, LedgerVerifier::kCheckpointPage));
    if (page.empty()) break;
    after = page.back().tree_size;
    for (Checkpoint& c : page) {
      if (c.tree_size >= size) return newest;
      // The signature decides, not the key id it names.
      if (c.key_id == signer_->key_id() && VerifyCheckpoint(c, signer_->public_key())) {
        newest = std::move(c);
      }
    }
    if (page.size() < LedgerVerifier::kCheckpointPage) break;
  }
  return newest;
}

absl::StatusOr<std::vector<LedgerOverview>> AuditLedger::ListLedgers() {
  ASSIGN_OR_RETURN(std::vector<LedgerSize> ledgers, store_->ListLedgers());
  std::vector<LedgerOverview> out;
  for (LedgerSize& l : ledgers) {
    LedgerOverview o{
        .ledger = std::move(l.ledger), .size = l.size, .latest_checkpoint = {}, .refused = {}};
    absl::StatusOr<Checkpoint> newest = store_->GetCheckpoint(o.ledger, 0);
    if (newest.ok()) o.latest_checkpoint = *std::move(newest);
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace policy::audit
