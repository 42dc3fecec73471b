#include "common/ledger/outbox_relay.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"

namespace policy::ledger {

OutboxRelay::OutboxRelay(Outbox* outbox, LedgerDestination* destination, OutboxRelayOptions options,
                         absl::string_view service, prometheus::Registry* registry)
    : outbox_(outbox), destination_(destination), options_(options), service_(service) {
  if (registry != nullptr) {
    pending_ = &prometheus::BuildGauge()
                    .Name(absl::StrCat("policy_", service, "_audit_events_pending"))
                    .Help(absl::StrCat("Records of ", service,
                                       "'s changes in its outbox, waiting for the audit ledger."))
                    .Register(*registry)
                    .Add({});
    failed_ = &prometheus::BuildGauge()
                   .Name(absl::StrCat("policy_", service, "_audit_outbox_failed"))
                   .Help(absl::StrCat("Records of ", service,
                                      "'s changes the audit service refused for good, kept in "
                                      "the outbox marked failed for an operator."))
                   .Register(*registry)
                   .Add({});
    results_ = &prometheus::BuildCounter()
                    .Name(absl::StrCat("policy_", service, "_audit_events_total"))
                    .Help(absl::StrCat("Records of ", service,
                                       "'s changes sent to the audit ledger, by result: "
                                       "recorded, duplicate (recorded before), refused (kept "
                                       "in the outbox as failed)."))
                    .Register(*registry);
  }
}

OutboxRelay::~OutboxRelay() { Stop(); }

void OutboxRelay::Start() {
  thread_ = std::thread([this] { Run(); });
}

void OutboxRelay::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  destination_->Cancel();
  if (thread_.joinable()) thread_.join();
}

bool OutboxRelay::Wait(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopping_), d);
  return !stopping_;
}

Delivery OutboxRelay::Handle(const OutboxEntry& entry) {
  Delivery delivery = destination_->Deliver(entry.record, entry.occurred_at);
  const std::string sequence = absl::StrCat(entry.sequence);
  const LogFields fields = {{"service", service_},
                            {"sequence", sequence},
                            {"action", entry.record.action},
                            {"request_id", entry.record.request_id},
                            {"error", delivery.error}};
  const bool retry = delivery.result == Delivery::Result::kRetry;
  bool outage_began = false;
  {
    absl::MutexLock lock(&mu_);
    outage_began = retry && !delivery_failing_;
    delivery_failing_ = retry;
  }
  switch (delivery.result) {
    case Delivery::Result::kRecorded:
      if (results_ != nullptr) results_->Add({{"result", "recorded"}}).Increment();
      break;
    case Delivery::Result::kDuplicate:
      if (results_ != nullptr) results_->Add({{"result", "duplicate"}}).Increment();
      break;
    case Delivery::Result::kRefused:
      LogError("the audit service refused a record; it stays in the outbox marked failed", fields);
      if (results_ != nullptr) results_->Add({{"result", "refused"}}).Increment();
      break;
    case Delivery::Result::kRetry:
      // Once per outage, not once per attempt.
      if (outage_began) LogWarning("audit service unavailable for records; retrying", fields);
      break;
  }
  return delivery;
}

absl::StatusOr<OutboxDrain> OutboxRelay::DrainOnce() {
  absl::StatusOr<OutboxDrain> drain =
      outbox_->Drain(options_.batch, [this](const OutboxEntry& entry) { return Handle(entry); });
  absl::MutexLock lock(&mu_);
  if (!drain.ok()) {
    if (!outbox_failing_) {
      LogWarning("cannot read the audit outbox; retrying",
                 {{"service", service_}, {"status", drain.status().ToString()}});
    }
    outbox_failing_ = true;
    return drain;
  }
  outbox_failing_ = false;
  if (pending_ != nullptr) pending_->Set(static_cast<double>(drain->pending));
  if (failed_ != nullptr) failed_->Set(static_cast<double>(drain->failed));
  return drain;
}

bool OutboxRelay::Flush(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration backoff = options_.min_backoff;
  for (;;) {
    absl::StatusOr<OutboxDrain> drain = DrainOnce();
    if (drain.ok() && !drain->busy && drain->pending == 0) return true;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration() || !Wait(std::min(backoff, left))) return false;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

void OutboxRelay::Run() {
  absl::Duration backoff = options_.min_backoff;
  for (;;) {
    absl::StatusOr<OutboxDrain> drain = DrainOnce();
    absl::Duration pause = options_.poll_interval;
    if (!drain.ok() || drain->retry) {
      pause = backoff;
      backoff = std::min(backoff * 2, options_.max_backoff);
    } else {
      backoff = options_.min_backoff;
      // A full batch: more may be waiting.
      if (!drain->busy && drain->delivered + drain->refused >= options_.batch) {
        pause = absl::ZeroDuration();
      }
    }
    if (!Wait(pause)) return;
  }
}

}  // namespace policy::ledger
