#ifndef POLICY_COMMON_METRICS_STALENESS_GAUGE_H_
#define POLICY_COMMON_METRICS_STALENESS_GAUGE_H_

#include <string>

#include "absl/time/time.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace policy::metrics {

// A gauge of how far an in-memory copy of the database lags it, in seconds: the time since
// the copy last proved itself in sync, -1 before it ever did. What an operator alerts on
// before the copy's staleness bound makes the service fail closed. Thread-safe.
class StalenessGauge {
 public:
  StalenessGauge(prometheus::Registry& registry, const std::string& name, const std::string& help);

  // `behind` is absl::InfiniteDuration() before the first sync.
  void Set(absl::Duration behind);

 private:
  prometheus::Gauge& gauge_;
};

}  // namespace policy::metrics

#endif  // POLICY_COMMON_METRICS_STALENESS_GAUGE_H_
