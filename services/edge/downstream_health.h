#ifndef POLICY_SERVICES_EDGE_DOWNSTREAM_HEALTH_H_
#define POLICY_SERVICES_EDGE_DOWNSTREAM_HEALTH_H_

#include <atomic>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "services/edge/downstream.h"
#include "services/edge/edge_metrics.h"

namespace policy::edge {

// Asks each service behind the edge for its grpc.health.v1 status (the whole server's, "")
// every `interval`, each answer within `interval`. The edge is ready while all five answer
// SERVING: an edge that cannot decide should not be sent requests. Thread-safe.
class DownstreamHealth {
 public:
  DownstreamHealth(const DownstreamChannels& channels, EdgeMetrics* metrics,
                   absl::Duration interval);
  ~DownstreamHealth();  // Stops asking.
  DownstreamHealth(const DownstreamHealth&) = delete;
  DownstreamHealth& operator=(const DownstreamHealth&) = delete;

  bool ready() const { return ready_.load(std::memory_order_acquire); }

  // Whether the server behind `channel` answers SERVING within `timeout`.
  static bool Serving(grpc::Channel& channel, absl::Duration timeout);

 private:
  void Loop();

  const std::vector<std::pair<std::string, std::shared_ptr<grpc::Channel>>> services_;
  EdgeMetrics* const metrics_;
  const absl::Duration interval_;
  std::atomic<bool> ready_{false};
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_DOWNSTREAM_HEALTH_H_
