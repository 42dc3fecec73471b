#include "services/audit/verifier.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace policy::audit {

LedgerVerifier::LedgerVerifier(LedgerRef ledger, CheckpointKeys keys,
                               std::vector<Checkpoint> checkpoints,
                               std::optional<Checkpoint> trusted,
                               const EntryAuthenticator* authenticator, std::string trusted_name)
    : ledger_(std::move(ledger)),
      keys_(std::move(keys)),
      authenticator_(authenticator),
      trusted_name_(std::move(trusted_name)),
      trusted_(trusted) {
  // A trusted checkpoint also stored is checked (and counted) once.
  if (trusted.has_value() &&
      std::none_of(checkpoints.begin(), checkpoints.end(), [&](const Checkpoint& c) {
        return c.ledger == trusted->ledger && c.tree_size == trusted->tree_size &&
               c.root == trusted->root;
      })) {
    checkpoints.push_back(*std::move(trusted));
  }
  std::stable_sort(
      checkpoints.begin(), checkpoints.end(),
      [](const Checkpoint& a, const Checkpoint& b) { return a.tree_size < b.tree_size; });
  for (Checkpoint& c : checkpoints) {
    if (!report_.valid) break;
    if (c.ledger != ledger_) {
      Fail(0, absl::StrCat("a checkpoint of size ", c.tree_size, " is for ledger ",
                           LedgerName(c.ledger), ", not ", LedgerName(ledger_)));
      break;
    }
    absl::StatusOr<std::string> signer = keys_.SignerOf(c);
    if (!signer.ok()) {
      Fail(0, trusted_.has_value() && c == *trusted_
                  ? absl::StrCat(trusted_name_, ": ", signer.status().message())
                  : std::string(signer.status().message()));
    } else if (c.tree_size > 0) {
      checkpoints_.push_back(std::move(c));
      signers_.push_back(*std::move(signer));
    }
  }
  CheckKeyOrder();
}

void LedgerVerifier::CheckKeyOrder() {
  // The current key's smallest and largest checkpoints (checkpoints_ is sorted by size).
  std::optional<uint64_t> current_first;
  uint64_t current_largest = 0;
  for (size_t i = 0; i < checkpoints_.size(); ++i) {
    if (signers_[i] != keys_.current_key_id()) continue;
    if (!current_first.has_value()) current_first = checkpoints_[i].tree_size;
    current_largest = checkpoints_[i].tree_size;
  }
  for (size_t i = 0; i < checkpoints_.size(); ++i) {
    const std::string& key = signers_[i];
    const uint64_t size = checkpoints_[i].tree_size;
    if (key == keys_.current_key_id()) continue;
    if (!current_first.has_value() || size <= *current_first) {
      // Signed in its key's time: it vouches for the entries below it whose MAC the
      // authenticator cannot check (an earlier release's, under an earlier key).
      earlier_key_signed_size_ = std::max(earlier_key_signed_size_, size);
      continue;
    }
    const std::string why =
        absl::StrCat("the checkpoint of size ", size, " was signed by earlier key ", key,
                     " after the current key ", keys_.current_key_id(),
                     " took over (its smallest checkpoint has size ", *current_first, ")");
    late_.push_back(LateCheckpoint{size, why});
    if (size > current_largest && !late_failure_.has_value()) {
      // It vouches alone for entries the current key never signed: a retired key signed them,
      // which only whoever holds a leaked copy of it would do.
      late_failure_ = LateCheckpoint{
          current_largest,
          absl::StrCat(why, " and goes beyond the current key's largest (size ", current_largest,
                       "): a retired key signed it, so it vouches for nothing; whoever holds key ",
                       key, " may have forged it and the entries from index ", current_largest,
                       " on (treat that key as compromised)")};
    }
  }
}

void LedgerVerifier::Fail(uint64_t index, std::string problem) {
  if (!report_.valid) return;
  report_.valid = false;
  report_.first_bad_index = index;
  report_.problem = std::move(problem);
}

std::string LedgerVerifier::NameOf(const Checkpoint& c) const {
  if (trusted_.has_value() && c == *trusted_) {
    return absl::StrCat(trusted_name_, " (root ", absl::BytesToHexString(AsBytes(c.root)), ")");
  }
  return "its signed checkpoint";
}

void LedgerVerifier::CheckCheckpointsAt(uint64_t size) {
  while (report_.valid && next_checkpoint_ < checkpoints_.size() &&
         checkpoints_[next_checkpoint_].tree_size == size) {
    if (checkpoints_[next_checkpoint_].root != tree_.Root()) {
      Fail(last_matched_size_,
           absl::StrCat("the tree of size ", size, " differs from ",
                        NameOf(checkpoints_[next_checkpoint_]),
                        "; the ledger is intact up to index ", last_matched_size_));
      return;
    }
    ++report_.checkpoints_checked;
    ++report_.checkpoints_by_key[signers_[next_checkpoint_]];
    ++next_checkpoint_;
    last_matched_size_ = size;
  }
}

bool LedgerVerifier::Add(const Entry& entry) {
  if (!report_.valid) return false;
  const uint64_t expected = tree_.size();
  if (late_failure_.has_value() && expected >= late_failure_->size) {
    Fail(late_failure_->size, late_failure_->why);
    return false;
  }
  if (entry.ledger != ledger_) {
    Fail(expected,
         absl::StrCat("entry ", entry.index, " belongs to ledger ", LedgerName(entry.ledger)));
    return false;
  }
  if (entry.index != expected) {
    Fail(expected,
         entry.index > expected
             ? absl::StrCat("entry ", expected, " is missing (the next one is ", entry.index, ")")
             : absl::StrCat("entry ", entry.index, " appears again after entry ", expected - 1));
    return false;
  }
  const Hash leaf = EntryLeafHash(entry);
  if (leaf != entry.leaf_hash) {
    Fail(expected, absl::StrCat("entry ", expected, ": its fields do not match its leaf hash"));
    return false;
  }
  tree_.Append(leaf, &completed_);
  if (completed_ != entry.completed) {
    Fail(expected, absl::StrCat("entry ", expected,
                                ": its stored subtree hashes differ from the recomputed ones"));
    return false;
  }
  if (authenticator_ == nullptr) {
    ++report_.unauthenticated_entries;
  } else if (entry.mac.empty()) {
    if (seen_mac_) {
      Fail(expected, absl::StrCat("entry ", expected,
                                  " carries no MAC, but an entry before it does: the audit "
                                  "service did not write it"));
      return false;
    }
    ++report_.unauthenticated_entries;
  } else if (!authenticator_->Check(entry) && expected >= earlier_key_signed_size_) {
    std::string late;
    for (const LateCheckpoint& c : late_) {
      if (c.size > expected) {
        late = absl::StrCat("; ", c.why, ", so it does not vouch for the entry");
        break;
      }
    }
    Fail(expected, absl::StrCat("entry ", expected,
                                ": its MAC is not the audit service's: the service did not "
                                "write it as it stands",
                                late));
    return false;
  } else {
    seen_mac_ = true;
  }
  ++report_.entries_checked;
  CheckCheckpointsAt(tree_.size());
  return report_.valid;
}

void LedgerVerifier::Unreadable(absl::string_view why) {
  if (report_.valid) Fail(tree_.size(), std::string(why));
}

IntegrityReport LedgerVerifier::Finish() {
  if (report_.valid && late_failure_.has_value()) {
    Fail(std::min(late_failure_->size, tree_.size()), late_failure_->why);
  }
  if (report_.valid && next_checkpoint_ < checkpoints_.size()) {
    const Checkpoint& c = checkpoints_[next_checkpoint_];
    Fail(tree_.size(),
         trusted_.has_value() && c == *trusted_
             ? absl::StrCat("the ledger has ", tree_.size(), " entries, but ", NameOf(c),
                            " has size ", c.tree_size, ": entries from index ", tree_.size(),
                            " on are missing")
             : absl::StrCat("the ledger has ", tree_.size(), " entries, but a checkpoint of size ",
                            c.tree_size, " was signed: entries from index ", tree_.size(),
                            " on are missing"));
  }
  report_.root = tree_.Root();
  return report_;
}

}  // namespace policy::audit
