#include "common/clock/clock.h"

#include "absl/time/clock.h"

namespace policy {
namespace {

class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace

Clock* Clock::Real() {
  static RealClock* const kClock = new RealClock();
  return kClock;
}

}  // namespace policy
