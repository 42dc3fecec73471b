#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/ledger/outbox.h"
#include "common/log/log.h"

namespace policy::ledger {

Delivery LogLedgerDestination::Deliver(const LedgerRecord& record, absl::Time occurred_at) {
  const std::string metadata = absl::StrJoin(record.metadata, " ", absl::PairFormatter("="));
  LogInfo(
      "ledger record",
      {{"action", record.action},
       {"actor", record.actor},
       {"project", record.project},
       {"environment", record.environment},
       {"subject", record.subject},
       {"request_id", record.request_id},
       {"metadata", metadata},
       {"occurred_at", absl::FormatTime(absl::RFC3339_full, occurred_at, absl::UTCTimeZone())}});
  return Delivery{Delivery::Result::kRecorded, ""};
}

}  // namespace policy::ledger
