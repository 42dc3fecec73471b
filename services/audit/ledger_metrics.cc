#include "services/audit/ledger_metrics.h"

#include <map>
#include <string>

namespace policy::audit {

LedgerMetrics::LedgerMetrics(prometheus::Registry& registry)
    : entries_(prometheus::BuildGauge()
                   .Name("policy_audit_ledger_entries")
                   .Help("Entries appended to the ledger.")
                   .Register(registry)),
      unsigned_(prometheus::BuildGauge()
                    .Name("policy_audit_unsigned_entries")
                    .Help("Entries of the ledger that no signed checkpoint covers yet.")
                    .Register(registry)),
      checkpoint_age_(prometheus::BuildGauge()
                          .Name("policy_audit_checkpoint_age_seconds")
                          .Help("Time since the ledger's newest checkpoint was signed (for "
                                "a ledger never signed: since it was first seen with "
                                "entries).")
                          .Register(registry)),
      refusals_(prometheus::BuildCounter()
                    .Name("policy_audit_checkpoint_refusals_total")
                    .Help("Rounds in which the checkpoint signer refused to sign the ledger: "
                          "its entries or checkpoints are not what was signed.")
                    .Register(registry)) {}

void LedgerMetrics::Update(const std::vector<LedgerOverview>& ledgers, absl::Time now) {
  for (const LedgerOverview& l : ledgers) {
    const std::map<std::string, std::string> labels = {{"project", l.ledger.project},
                                                       {"environment", l.ledger.environment}};
    entries_.Add(labels).Set(static_cast<double>(l.size));
    // Every ledger's series from 0, so that increase() sees its first refusal.
    prometheus::Counter& refusals = refusals_.Add(labels);
    if (!l.refused.empty()) refusals.Increment();
    const uint64_t covered = l.latest_checkpoint ? l.latest_checkpoint->tree_size : 0;
    unsigned_.Add(labels).Set(static_cast<double>(l.size > covered ? l.size - covered : 0));
    if (l.latest_checkpoint) {
      unsigned_since_.erase(l.ledger);
      checkpoint_age_.Add(labels).Set(absl::ToDoubleSeconds(now - l.latest_checkpoint->time));
    } else if (l.size > 0) {
      const absl::Time since = unsigned_since_.try_emplace(l.ledger, now).first->second;
      checkpoint_age_.Add(labels).Set(absl::ToDoubleSeconds(now - since));
    }
  }
}

absl::Status SignCheckpointsAndUpdate(AuditLedger& ledger, LedgerMetrics& metrics,
                                      std::vector<LedgerOverview>& ledgers, absl::Time now) {
  const absl::StatusOr<int> signed_count = ledger.SignCheckpoints(&ledgers);
  metrics.Update(ledgers, now);
  return signed_count.status();
}

}  // namespace policy::audit
