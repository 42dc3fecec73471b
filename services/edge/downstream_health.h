#ifndef POLICY_SERVICES_EDGE_DOWNSTREAM_HEALTH_H_
#define POLICY_SERVICES_EDGE_DOWNSTREAM_HEALTH_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "policy/pii/v1/pii.grpc.pb.h"
#include "services/edge/downstream.h"
#include "services/edge/edge_metrics.h"

namespace policy::edge {

// One service's health as the edge's readiness counts it: up from its first check answered
// SERVING until `failures` checks in a row have not been (a single slow answer, as under a
// burst of large prompts, does not take the edge out of service), and down until the next
// check that is. Not thread-safe.
class DependencyVerdict {
 public:
  explicit DependencyVerdict(int failures) : failures_(failures) {}
  // Counts one check's outcome; returns up().
  bool Observe(bool serving);
  bool up() const { return up_; }
  // Whether the verdict rests on the checks: the service has answered SERVING, or `failures`
  // checks in a row have not (not so for a service never yet reached, as at start).
  bool judged() const { return up_ || missed_ >= failures_; }

 private:
  const int failures_;
  int missed_ = 0;  // Checks in a row not answered SERVING.
  bool up_ = false;
};

// Asks each service behind the edge for its grpc.health.v1 status (the whole server's, "")
// every `interval`, each answer within `interval`, and pii, while it is SERVING, which entity
// types it detects (ListEntityTypes). The edge is ready while all five count as up
// (DependencyVerdict: `failures` checks in a row not answered SERVING take a service down)
// and pii
// detects every type `redaction` names (CheckRedactionServable): an edge that cannot decide
// should not be sent requests. A refused policy is logged once per change, naming the types
// and their setting, and policy_edge_config_valid says it; while pii does not answer
// ListEntityTypes the last verdict stands (none yet: not ready). Thread-safe.
class DownstreamHealth {
 public:
  DownstreamHealth(const DownstreamChannels& channels, EdgeMetrics* metrics,
                   absl::Duration interval, pii::v1::RedactionPolicy redaction = {},
                   int failures = 3);
  ~DownstreamHealth();  // Stops asking.
  DownstreamHealth(const DownstreamHealth&) = delete;
  DownstreamHealth& operator=(const DownstreamHealth&) = delete;

  bool ready() const { return ready_.load(std::memory_order_acquire); }

  // OK when the server behind `channel` answers SERVING within `timeout`; otherwise why not
  // (the call's status, or UNAVAILABLE "NOT_SERVING").
  static absl::Status Serving(grpc::Channel& channel, absl::Duration timeout);

 private:
  void Loop();
  // Asks pii which types it detects and judges `redaction_` by the answer.
  void CheckRedaction();

  const std::vector<std::pair<std::string, std::shared_ptr<grpc::Channel>>> services_;
  std::vector<DependencyVerdict> verdicts_;  // Per service; owned by the loop's thread.
  std::vector<bool> reported_up_;            // Per service, as last logged; the loop's.
  EdgeMetrics* const metrics_;
  const absl::Duration interval_;
  const pii::v1::RedactionPolicy redaction_;
  const std::unique_ptr<pii::v1::PiiService::Stub> pii_;
  // Owned by the loop's thread: whether pii detects every type of redaction_, and the
  // problem last logged ("" when none).
  bool redaction_accepted_;
  std::string redaction_problem_;
  std::atomic<bool> ready_{false};
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_DOWNSTREAM_HEALTH_H_
