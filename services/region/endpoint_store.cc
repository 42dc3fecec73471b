#include "services/region/endpoint_store.h"

#include "absl/strings/str_cat.h"
#include "common/text/caller_text.h"

namespace policy::region {

absl::Status ValidatePublishedBreaker(const PublishedBreaker& b) {
  if (b.published_at == absl::InfinitePast() || b.published_at == absl::InfiniteFuture() ||
      b.opened_at == absl::InfiniteFuture() || b.closed_at == absl::InfiniteFuture()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "breaker of endpoint ", Quoted(b.endpoint_id),
        ": published_at must be finite, and opened_at and closed_at finite or the infinite past"));
  }
  return absl::OkStatus();
}

}  // namespace policy::region
