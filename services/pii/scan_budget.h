#ifndef POLICY_SERVICES_PII_SCAN_BUDGET_H_
#define POLICY_SERVICES_PII_SCAN_BUDGET_H_

#include <atomic>
#include <cstddef>

#include "absl/status/statusor.h"

namespace policy::pii {

// The bytes of text being scanned at once, bounded, so that concurrent requests dense with
// values (each scan holds several times its text in findings and answer) cannot exhaust
// the process's memory. Thread-safe.
class ScanBudget {
 public:
  // What one request counts at least, whatever its size: many empty requests hold memory
  // and threads too.
  static constexpr size_t kMinCharge = 1024;

  // Holds its bytes of the budget until destroyed. Movable.
  class Ticket {
   public:
    Ticket(Ticket&& other) noexcept : budget_(other.budget_), bytes_(other.bytes_) {
      other.budget_ = nullptr;
    }
    Ticket& operator=(Ticket&&) = delete;
    Ticket(const Ticket&) = delete;
    ~Ticket();

   private:
    friend class ScanBudget;
    Ticket(ScanBudget* budget, size_t bytes) : budget_(budget), bytes_(bytes) {}
    ScanBudget* budget_;
    size_t bytes_;
  };

  // `max_bytes`: the setting max_scan_bytes_in_flight.
  explicit ScanBudget(size_t max_bytes) : max_bytes_(max_bytes) {}

  // A ticket for a request of `bytes` (counted as at least kMinCharge), or RESOURCE_EXHAUSTED
  // naming max_scan_bytes_in_flight when the tickets held and this one would pass it.
  // REQUIRES: every ticket is destroyed before the budget.
  absl::StatusOr<Ticket> Admit(size_t bytes);

  // The bytes the tickets held now count.
  size_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

 private:
  const size_t max_bytes_;
  std::atomic<size_t> in_flight_{0};
};

}  // namespace policy::pii

#endif  // POLICY_SERVICES_PII_SCAN_BUDGET_H_
