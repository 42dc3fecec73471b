#include "services/pii/scan_budget.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace policy::pii {

ScanBudget::Ticket::~Ticket() {
  if (budget_ != nullptr) budget_->in_flight_.fetch_sub(bytes_, std::memory_order_relaxed);
}

absl::StatusOr<ScanBudget::Ticket> ScanBudget::Admit(size_t bytes) {
  const size_t charge = std::max(bytes, kMinCharge);
  size_t held = in_flight_.load(std::memory_order_relaxed);
  do {
    if (charge > max_bytes_ || held > max_bytes_ - charge) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "already scanning ", held, " bytes of text; this request's ", bytes,
          " more would pass max_scan_bytes_in_flight (", max_bytes_, "); retry later"));
    }
  } while (!in_flight_.compare_exchange_weak(held, held + charge, std::memory_order_relaxed));
  return Ticket(this, charge);
}

}  // namespace policy::pii
