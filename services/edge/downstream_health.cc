#include "services/edge/downstream_health.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "grpcpp/client_context.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "services/edge/decision_flow.h"

namespace policy::edge {

bool DependencyVerdict::Observe(bool serving) {
  if (serving) {
    missed_ = 0;
    up_ = true;
  } else if (++missed_ >= failures_) {
    up_ = false;
  }
  return up_;
}

DownstreamHealth::DownstreamHealth(const DownstreamChannels& c, EdgeMetrics* metrics,
                                   absl::Duration interval, pii::v1::RedactionPolicy redaction,
                                   int failures)
    : services_({{"keys", c.keys},
                 {"authz", c.authz},
                 {"pii", c.pii},
                 {"region", c.region},
                 {"audit", c.audit}}),
      verdicts_(services_.size(), DependencyVerdict(failures)),
      reported_up_(services_.size(), true),
      metrics_(metrics),
      interval_(interval),
      redaction_(std::move(redaction)),
      pii_(pii::v1::PiiService::NewStub(c.pii)),
      redaction_accepted_(redaction_.rules_size() == 0 && redaction_.classes_size() == 0),
      thread_([this] { Loop(); }) {}

DownstreamHealth::~DownstreamHealth() {
  stop_.Notify();
  thread_.join();
}

absl::Status DownstreamHealth::Serving(grpc::Channel& channel, absl::Duration timeout) {
  // grpc.health.v1.Health/Check with an empty HealthCheckRequest (service ""); the answer
  // is HealthCheckResponse{status = 1 (SERVING)}: field 1, varint 1.
  grpc::TemplatedGenericStub<grpc::ByteBuffer, grpc::ByteBuffer> stub(
      std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::Slice empty;
  grpc::ByteBuffer request(&empty, 1), response;
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return absl::UnavailableError("NOT_SERVING");
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  if (bytes != std::string("\x08\x01", 2)) return absl::UnavailableError("NOT_SERVING");
  return absl::OkStatus();
}

void DownstreamHealth::CheckRedaction() {
  if (redaction_.rules_size() == 0 && redaction_.classes_size() == 0 &&
      redaction_.default_rule().operator_() != pii::v1::OPERATOR_HASH) {
    if (metrics_ != nullptr) metrics_->SetConfigValid(true);
    return;
  }
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + interval_));
  pii::v1::ListEntityTypesResponse known;
  const grpc::Status listed = pii_->ListEntityTypes(&context, {}, &known);
  std::string problem;
  if (listed.ok()) {
    const absl::Status checked = CheckRedactionServable(redaction_, known);
    redaction_accepted_ = checked.ok();
    if (metrics_ != nullptr) metrics_->SetConfigValid(checked.ok());
    problem = std::string(checked.message());
  } else if (!redaction_accepted_ && redaction_problem_.empty()) {
    // Never judged yet: say why the edge stays unready, once.
    problem =
        absl::StrCat("the pii service did not list its entity types: ",
                     absl::StatusCodeToString(static_cast<absl::StatusCode>(listed.error_code())));
  } else {
    return;  // The last verdict stands.
  }
  if (problem == redaction_problem_) return;
  if (problem.empty()) {
    LogInfo("the pii service detects every entity type the edge's settings name");
  } else {
    LogError("the edge is not ready", {{"problem", problem}});
  }
  redaction_problem_ = std::move(problem);
}

void DownstreamHealth::Loop() {
  do {
    bool all = true;
    for (size_t i = 0; i < services_.size(); ++i) {
      const auto& [name, channel] = services_[i];
      const absl::Status health = Serving(*channel, interval_);
      const bool serving = health.ok();
      const bool up = verdicts_[i].Observe(serving);
      if (metrics_ != nullptr) metrics_->SetDependencyUp(name, up);
      // Each change said once: which dependency, and why it is judged down.
      if (verdicts_[i].judged() && up != reported_up_[i]) {
        reported_up_[i] = up;
        if (up) {
          LogInfo("a service the edge calls is healthy again", {{"dependency", name}});
        } else {
          LogError("a service the edge calls is unhealthy: decisions fail closed",
                   {{"dependency", name}, {"health", health.ToString()}});
        }
      }
      all = all && up;
      if (name == "pii" && serving) CheckRedaction();
    }
    ready_.store(all && redaction_accepted_, std::memory_order_release);
  } while (!stop_.WaitForNotificationWithTimeout(interval_));
}

}  // namespace policy::edge
