#include "services/audit/ledger_store.h"

namespace policy::audit {

void SealEntries(CompactTree& tree, absl::Span<Entry> entries) {
  for (Entry& entry : entries) {
    entry.index = tree.size();
    entry.leaf_hash = EntryLeafHash(entry);
    tree.Append(entry.leaf_hash, &entry.completed);
  }
}

}  // namespace policy::audit
