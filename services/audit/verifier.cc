#include "services/audit/verifier.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace policy::audit {

VectorCheckpointSource::VectorCheckpointSource(std::vector<Checkpoint> checkpoints)
    : checkpoints_(std::move(checkpoints)) {
  std::stable_sort(
      checkpoints_.begin(), checkpoints_.end(),
      [](const Checkpoint& a, const Checkpoint& b) { return a.tree_size < b.tree_size; });
}

absl::StatusOr<std::vector<Checkpoint>> VectorCheckpointSource::Page(
    std::optional<uint64_t> after_size, size_t limit) {
  auto it =
      after_size.has_value()
          ? std::upper_bound(checkpoints_.begin(), checkpoints_.end(), *after_size,
                             [](uint64_t size, const Checkpoint& c) { return size < c.tree_size; })
          : checkpoints_.begin();
  std::vector<Checkpoint> out;
  for (; it != checkpoints_.end(); ++it) {
    if (out.size() >= limit && !out.empty() && it->tree_size != out.back().tree_size) break;
    out.push_back(*it);
  }
  return out;
}

// The checkpoints of a source of sizes above `after_size` (none: from the smallest) up to
// `last_size`, by size, a page at a time, with `trusted` among them (after the stored ones of
// its size, unless one of those is it).
class LedgerVerifier::Walk {
 public:
  Walk(CheckpointSource* source, std::optional<Checkpoint> trusted,
       std::optional<uint64_t> after_size, uint64_t last_size)
      : source_(source), after_(after_size), last_(last_size) {
    if (trusted.has_value() && (!after_size.has_value() || trusted->tree_size > *after_size) &&
        trusted->tree_size <= last_size) {
      trusted_ = std::move(trusted);
    }
  }

  // The next checkpoint; none at the end.
  absl::StatusOr<std::optional<Checkpoint>> Next() {
    if (pos_ == page_.size() && !source_done_) {
      absl::StatusOr<std::vector<Checkpoint>> page = source_->Page(after_, kCheckpointPage);
      if (!page.ok()) return page.status();
      source_done_ = page->size() < kCheckpointPage;
      page_.clear();
      pos_ = 0;
      for (Checkpoint& c : *page) {
        // A source answers sizes above after_ in order; anything else is not walked.
        if ((after_.has_value() && c.tree_size <= *after_) ||
            (!page_.empty() && c.tree_size < page_.back().tree_size)) {
          continue;
        }
        if (c.tree_size > last_) {
          source_done_ = true;
          break;
        }
        page_.push_back(std::move(c));
      }
      if (page_.empty()) {
        source_done_ = true;
      } else {
        after_ = page_.back().tree_size;
      }
    }
    Checkpoint* stored = pos_ < page_.size() ? &page_[pos_] : nullptr;
    if (trusted_.has_value() && (stored == nullptr || stored->tree_size > trusted_->tree_size)) {
      std::optional<Checkpoint> out = std::move(trusted_);
      trusted_.reset();
      return out;
    }
    if (stored == nullptr) return std::optional<Checkpoint>();
    ++pos_;
    if (trusted_.has_value() && stored->ledger == trusted_->ledger &&
        stored->tree_size == trusted_->tree_size && stored->root == trusted_->root) {
      // The trusted checkpoint is stored: checked (and counted) once.
      trusted_.reset();
    }
    return std::optional<Checkpoint>(std::move(*stored));
  }

 private:
  CheckpointSource* const source_;
  std::optional<Checkpoint> trusted_;  // Still to come.
  std::optional<uint64_t> after_;      // The next page starts above this size.
  const uint64_t last_;
  bool source_done_ = false;
  std::vector<Checkpoint> page_;
  size_t pos_ = 0;
};

LedgerVerifier::LedgerVerifier(LedgerRef ledger, CheckpointKeys keys,
                               std::vector<Checkpoint> checkpoints,
                               std::optional<Checkpoint> trusted,
                               const EntryAuthenticator* authenticator, std::string trusted_name)
    : LedgerVerifier(std::move(ledger), std::move(keys), static_cast<CheckpointSource*>(nullptr),
                     std::move(trusted), authenticator, std::move(trusted_name)) {
  owned_source_ = std::make_unique<VectorCheckpointSource>(std::move(checkpoints));
  source_ = owned_source_.get();
  Survey();
}

LedgerVerifier::LedgerVerifier(LedgerRef ledger, CheckpointKeys keys, CheckpointSource* source,
                               std::optional<Checkpoint> trusted,
                               const EntryAuthenticator* authenticator, std::string trusted_name)
    : ledger_(std::move(ledger)),
      keys_(std::move(keys)),
      authenticator_(authenticator),
      trusted_name_(std::move(trusted_name)),
      trusted_(std::move(trusted)),
      source_(source) {
  if (source_ != nullptr) Survey();
}

LedgerVerifier::~LedgerVerifier() = default;

std::optional<std::string> LedgerVerifier::SignerOf(const Checkpoint& c) {
  if (c.ledger != ledger_) {
    Fail(0, absl::StrCat("a checkpoint of size ", c.tree_size, " is for ledger ",
                         LedgerName(c.ledger), ", not ", LedgerName(ledger_)));
    return std::nullopt;
  }
  absl::StatusOr<std::string> signer = keys_.SignerOf(c);
  if (!signer.ok()) {
    Fail(0, trusted_.has_value() && c == *trusted_
                ? absl::StrCat(trusted_name_, ": ", signer.status().message())
                : std::string(signer.status().message()));
    return std::nullopt;
  }
  return *std::move(signer);
}

std::string LedgerVerifier::LateWhy(uint64_t size, const std::string& key) const {
  return absl::StrCat("the checkpoint of size ", size, " was signed by earlier key ", key,
                      " after the current key ", keys_.current_key_id(),
                      " took over (its smallest checkpoint has size ", *current_first_, ")");
}

bool LedgerVerifier::IsLate(const std::string& key, uint64_t size) const {
  return key != keys_.current_key_id() && current_first_.has_value() && size > *current_first_;
}

void LedgerVerifier::Survey() {
  Walk walk(source_, trusted_, std::nullopt, std::numeric_limits<uint64_t>::max());
  uint64_t current_largest = 0;
  // The first late checkpoint since the current key's last one: beyond its largest.
  std::optional<std::pair<uint64_t, std::string>> beyond;
  for (;;) {
    absl::StatusOr<std::optional<Checkpoint>> next = walk.Next();
    if (!next.ok()) {
      read_status_ = next.status();
      return;
    }
    if (!next->has_value()) break;
    const Checkpoint& c = **next;
    std::optional<std::string> signer = SignerOf(c);
    if (!signer.has_value()) return;
    if (c.tree_size == 0) continue;
    const uint64_t size = c.tree_size;
    surveyed_size_ = size;
    if (*signer == keys_.current_key_id()) {
      if (!current_first_.has_value()) current_first_ = size;
      current_largest = size;
      beyond.reset();
    } else if (!IsLate(*signer, size)) {
      // Signed in its key's time: it vouches for the entries below it whose MAC the
      // authenticator cannot check (an earlier release's, under an earlier key).
      earlier_key_signed_size_ = std::max(earlier_key_signed_size_, size);
    } else if (!beyond.has_value() && size > current_largest) {
      beyond.emplace(size, *std::move(signer));
    }
  }
  if (beyond.has_value()) {
    // It vouches alone for entries the current key never signed: a retired key signed them,
    // which only whoever holds a leaked copy of it would do.
    late_failure_ = LateCheckpoint{
        current_largest,
        absl::StrCat(LateWhy(beyond->first, beyond->second),
                     " and goes beyond the current key's largest (size ", current_largest,
                     "): a retired key signed it, so it vouches for nothing; whoever holds key ",
                     beyond->second, " may have forged it and the entries from index ",
                     current_largest, " on (treat that key as compromised)")};
  }
}

void LedgerVerifier::Advance() {
  next_.reset();
  for (;;) {
    absl::StatusOr<std::optional<Checkpoint>> next = walk_->Next();
    if (!next.ok()) {
      read_status_ = next.status();
      return;
    }
    if (!next->has_value()) return;
    const Checkpoint& c = **next;
    // Checked again: what the survey read may have changed since.
    std::optional<std::string> signer = SignerOf(c);
    if (!signer.has_value()) return;
    if (c.tree_size == 0) continue;
    next_ = *std::move(*next);
    next_signer_ = *std::move(signer);
    return;
  }
}

std::string LedgerVerifier::LateNoteAfter(uint64_t index) {
  Walk walk(source_, trusted_, index, surveyed_size_);
  for (;;) {
    absl::StatusOr<std::optional<Checkpoint>> next = walk.Next();
    if (!next.ok() || !next->has_value()) return "";
    absl::StatusOr<std::string> signer = keys_.SignerOf(**next);
    if (signer.ok() && IsLate(*signer, (*next)->tree_size)) {
      return absl::StrCat("; ", LateWhy((*next)->tree_size, *signer),
                          ", so it does not vouch for the entry");
    }
  }
}

absl::StatusOr<uint64_t> LedgerVerifier::earlier_key_vouched_size() const {
  if (!read_status_.ok()) return read_status_;
  return earlier_key_signed_size_;
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

bool LedgerVerifier::StartWalk() {
  if (walk_ == nullptr && read_status_.ok() && report_.valid) {
    walk_ = std::make_unique<Walk>(source_, trusted_, std::nullopt, surveyed_size_);
    Advance();
  }
  return read_status_.ok() && report_.valid;
}

void LedgerVerifier::CheckCheckpointsAt(uint64_t size) {
  while (report_.valid && next_.has_value() && next_->tree_size == size) {
    if (next_->root != tree_.Root()) {
      Fail(last_matched_size_,
           absl::StrCat("the tree of size ", size, " differs from ", NameOf(*next_),
                        "; the ledger is intact up to index ", last_matched_size_));
      return;
    }
    ++report_.checkpoints_checked;
    ++report_.checkpoints_by_key[next_signer_];
    last_matched_size_ = size;
    newest_checked_ = std::move(next_);
    Advance();
  }
}

bool LedgerVerifier::Add(const Entry& entry) {
  if (walk_ == nullptr ? !StartWalk() : !report_.valid || !read_status_.ok()) return false;
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
    Fail(expected, absl::StrCat("entry ", expected,
                                ": its MAC is not the audit service's: the service did not "
                                "write it as it stands",
                                LateNoteAfter(expected)));
    return false;
  } else {
    seen_mac_ = true;
  }
  ++report_.entries_checked;
  CheckCheckpointsAt(tree_.size());
  return report_.valid && read_status_.ok();
}

void LedgerVerifier::Unreadable(absl::string_view why) {
  if (report_.valid) Fail(tree_.size(), std::string(why));
}

absl::StatusOr<IntegrityReport> LedgerVerifier::Finish() {
  StartWalk();
  if (!read_status_.ok()) return read_status_;
  if (report_.valid && late_failure_.has_value()) {
    Fail(std::min(late_failure_->size, tree_.size()), late_failure_->why);
  }
  if (report_.valid && next_.has_value()) {
    const Checkpoint& c = *next_;
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
