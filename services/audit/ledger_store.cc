#include "services/audit/ledger_store.h"

#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"

namespace policy::audit {

absl::Status LedgerStore::ForEachEntry(const LedgerRef& ledger, uint64_t from,
                                       const std::function<bool(const Entry&)>& visit) {
  constexpr size_t kChunk = 5000;
  for (;;) {
    absl::StatusOr<std::vector<Entry>> entries = ReadRange(ledger, from, kChunk);
    if (!entries.ok()) return entries.status();
    for (const Entry& e : *entries) {
      if (!visit(e)) return absl::OkStatus();
    }
    if (entries->size() < kChunk) return absl::OkStatus();
    from = entries->back().index + 1;
  }
}

SubjectCursor CursorOf(const Entry& entry) {
  return SubjectCursor{entry.time, entry.ledger, entry.index};
}

bool SubjectOrder(const SubjectCursor& a, const SubjectCursor& b) {
  // std::string compares bytewise, as PostgreSQL's "C" collation does.
  return std::tie(a.time, a.ledger.project, a.ledger.environment, a.index) <
         std::tie(b.time, b.ledger.project, b.ledger.environment, b.index);
}

void LedgerStore::AuthenticateWith(std::shared_ptr<const EntryAuthenticator> authenticator) {
  absl::MutexLock lock(&authenticator_mu_);
  authenticator_ = std::move(authenticator);
}

std::shared_ptr<const EntryAuthenticator> LedgerStore::authenticator() const {
  absl::MutexLock lock(&authenticator_mu_);
  return authenticator_;
}

absl::Status RequestIdUsed(const std::string& request_id, uint64_t index) {
  return absl::FailedPreconditionError(absl::StrCat(
      "request_id ", request_id, " was already used for a different entry (index ", index, ")"));
}

absl::Status SubjectKeyAdded() {
  return absl::AbortedError(
      "a subject key the entries were sealed with was added meanwhile by another batch; seal "
      "them again");
}

absl::Status SubjectKeyDestroyed() {
  return absl::AbortedError(
      "a subject key the entries were sealed with was destroyed meanwhile; seal them again");
}

absl::Status SubjectForgottenMeanwhile() {
  return absl::AbortedError(
      "a subject the entries name was forgotten meanwhile; look their forgetting up and seal "
      "them again");
}

void SealEntries(CompactTree& tree, absl::Span<Entry> entries,
                 const EntryAuthenticator* authenticator) {
  for (Entry& entry : entries) {
    entry.index = tree.size();
    entry.leaf_hash = EntryLeafHash(entry);
    tree.Append(entry.leaf_hash, &entry.completed);
    if (authenticator != nullptr) {
      entry.mac = authenticator->Mac(entry);
    } else {
      entry.mac.clear();
    }
  }
}

}  // namespace policy::audit
