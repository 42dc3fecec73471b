#ifndef POLICY_SERVICES_AUDIT_LEDGER_METRICS_H_
#define POLICY_SERVICES_AUDIT_LEDGER_METRICS_H_

#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "services/audit/ledger.h"

namespace policy::audit {

// What an operator watches of the ledgers, one series per ledger (labels project and
// environment; the organisation's ledger has an empty project):
//   policy_audit_ledger_entries          entries appended;
//   policy_audit_unsigned_entries        entries no signed checkpoint covers yet;
//   policy_audit_checkpoint_age_seconds  time since the newest checkpoint was signed; for a
//                                        ledger never signed, since this updater first saw
//                                        it holding entries (so that one whose first
//                                        checkpoint never comes ages too);
//   policy_audit_checkpoint_refusals_total  rounds in which the signer refused to sign the
//                                        ledger because it is not what was signed
//                                        (LedgerOverview::refused): tampering, to be alerted on.
// A ledger deleted while this process remembered it is shown with 0 entries.
// Updated from the checkpoint signer's overview. Not thread-safe: one updater.
class LedgerMetrics {
 public:
  explicit LedgerMetrics(prometheus::Registry& registry);

  void Update(const std::vector<LedgerOverview>& ledgers, absl::Time now);

 private:
  prometheus::Family<prometheus::Gauge>& entries_;
  prometheus::Family<prometheus::Gauge>& unsigned_;
  prometheus::Family<prometheus::Gauge>& checkpoint_age_;
  prometheus::Family<prometheus::Counter>& refusals_;
  // Ledgers with entries and no checkpoint yet: when this updater first saw each.
  absl::flat_hash_map<LedgerRef, absl::Time> unsigned_since_;
};

// One round of the checkpoint signer: AuditLedger::SignCheckpoints, then `metrics` updated
// from its overview at `now` whether or not signing failed, so that a ledger left unsigned
// shows its unsigned entries and a growing checkpoint age. `ledgers` carries the overview
// from one round to the next (when the ledgers cannot even be listed, the last one is shown
// again). Returns SignCheckpoints' status.
absl::Status SignCheckpointsAndUpdate(AuditLedger& ledger, LedgerMetrics& metrics,
                                      std::vector<LedgerOverview>& ledgers, absl::Time now);

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_LEDGER_METRICS_H_
