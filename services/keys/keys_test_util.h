#ifndef POLICY_SERVICES_KEYS_KEYS_TEST_UTIL_H_
#define POLICY_SERVICES_KEYS_KEYS_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "services/keys/key_events.h"
#include "services/keys/pepper.h"

namespace policy::keys {

inline std::unique_ptr<Pepper> TestPepper() {
  return *Pepper::Create("test-pepper-0123456789abcdef0123456789abcdef");
}

// Remembers every event published.
class RecordingEventSink : public KeyEventSink {
 public:
  void Publish(const KeyEvent& event) override {
    absl::MutexLock lock(&mu_);
    events_.push_back(event);
  }
  std::vector<KeyEvent> events() const {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  std::vector<KeyEvent::Type> types() const {
    std::vector<KeyEvent::Type> out;
    for (const KeyEvent& e : events()) out.push_back(e.type);
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<KeyEvent> events_;
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_KEYS_TEST_UTIL_H_
