#include "services/edge/downstream_health.h"

#include <string>

#include "absl/time/clock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"

namespace policy::edge {

DownstreamHealth::DownstreamHealth(const DownstreamChannels& c, EdgeMetrics* metrics,
                                   absl::Duration interval)
    : services_({{"keys", c.keys},
                 {"authz", c.authz},
                 {"pii", c.pii},
                 {"region", c.region},
                 {"audit", c.audit}}),
      metrics_(metrics),
      interval_(interval),
      thread_([this] { Loop(); }) {}

DownstreamHealth::~DownstreamHealth() {
  stop_.Notify();
  thread_.join();
}

bool DownstreamHealth::Serving(grpc::Channel& channel, absl::Duration timeout) {
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
  if (!status.ok()) return false;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes == std::string("\x08\x01", 2);
}

void DownstreamHealth::Loop() {
  do {
    bool all = true;
    for (const auto& [name, channel] : services_) {
      const bool up = Serving(*channel, interval_);
      if (metrics_ != nullptr) metrics_->SetDependencyUp(name, up);
      all = all && up;
    }
    ready_.store(all, std::memory_order_release);
  } while (!stop_.WaitForNotificationWithTimeout(interval_));
}

}  // namespace policy::edge
