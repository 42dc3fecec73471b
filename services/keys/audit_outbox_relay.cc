#include "services/keys/audit_outbox_relay.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"

namespace policy::keys {

AuditOutboxRelay::AuditOutboxRelay(KeyStore* store, KeyEventDestination* destination,
                                   AuditOutboxRelayOptions options, prometheus::Registry* registry)
    : store_(store), destination_(destination), options_(options) {
  if (registry != nullptr) {
    pending_ = &prometheus::BuildGauge()
                    .Name("policy_keys_audit_events_pending")
                    .Help("Key lifecycle events in the outbox waiting for the audit ledger.")
                    .Register(*registry)
                    .Add({});
    failed_ = &prometheus::BuildGauge()
                   .Name("policy_keys_audit_outbox_failed")
                   .Help(
                       "Key lifecycle events the audit service refused for good, kept in the "
                       "outbox marked failed for an operator.")
                   .Register(*registry)
                   .Add({});
    results_ = &prometheus::BuildCounter()
                    .Name("policy_keys_audit_events_total")
                    .Help(
                        "Key lifecycle events sent to the audit ledger, by result: recorded, "
                        "duplicate (recorded before), refused (kept in the outbox as failed).")
                    .Register(*registry);
  }
}

AuditOutboxRelay::~AuditOutboxRelay() { Stop(); }

void AuditOutboxRelay::Start() {
  thread_ = std::thread([this] { Run(); });
}

void AuditOutboxRelay::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  destination_->Cancel();
  if (thread_.joinable()) thread_.join();
}

bool AuditOutboxRelay::Wait(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopping_), d);
  return !stopping_;
}

Delivery AuditOutboxRelay::Handle(const OutboxEvent& entry) {
  Delivery delivery = destination_->Deliver(entry.event);
  const std::string sequence = absl::StrCat(entry.sequence);
  const LogFields fields = {{"sequence", sequence},
                            {"event", EventTypeName(entry.event.type)},
                            {"key_id", entry.event.key_id},
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
      LogError("the audit service refused a key event; it stays in the outbox marked failed",
               fields);
      if (results_ != nullptr) results_->Add({{"result", "refused"}}).Increment();
      break;
    case Delivery::Result::kRetry:
      // Once per outage, not once per attempt.
      if (outage_began) LogWarning("audit service unavailable for key events; retrying", fields);
      break;
  }
  return delivery;
}

absl::StatusOr<OutboxDrain> AuditOutboxRelay::DrainOnce() {
  absl::StatusOr<OutboxDrain> drain = store_->DrainOutbox(
      options_.batch, [this](const OutboxEvent& entry) { return Handle(entry); });
  absl::MutexLock lock(&mu_);
  if (!drain.ok()) {
    if (!store_failing_) {
      LogWarning("cannot read the key events outbox; retrying",
                 {{"status", drain.status().ToString()}});
    }
    store_failing_ = true;
    return drain;
  }
  store_failing_ = false;
  if (pending_ != nullptr) pending_->Set(static_cast<double>(drain->pending));
  if (failed_ != nullptr) failed_->Set(static_cast<double>(drain->failed));
  return drain;
}

bool AuditOutboxRelay::Flush(absl::Duration timeout) {
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

void AuditOutboxRelay::Run() {
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

}  // namespace policy::keys
