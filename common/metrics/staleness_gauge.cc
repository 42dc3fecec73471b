#include "common/metrics/staleness_gauge.h"

namespace policy::metrics {

StalenessGauge::StalenessGauge(prometheus::Registry& registry, const std::string& name,
                               const std::string& help)
    : gauge_(prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({})) {}

void StalenessGauge::Set(absl::Duration behind) {
  gauge_.Set(behind == absl::InfiniteDuration() ? -1 : absl::ToDoubleSeconds(behind));
}

}  // namespace policy::metrics
