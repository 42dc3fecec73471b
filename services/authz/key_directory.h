#ifndef POLICY_SERVICES_AUTHZ_KEY_DIRECTORY_H_
#define POLICY_SERVICES_AUTHZ_KEY_DIRECTORY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace policy::authz {

// A key that still verifies (active, or rotated and within its overlap).
struct HeldKey {
  std::string key_id;
  std::string project;
};

// The keys service as authz sees it: which keys a member holds, so that removing the member
// can name the keys to revoke. Every decision denies a removed member's keys whether or not
// they are revoked; this only tells the caller what to clean up.
class KeyDirectory {
 public:
  virtual ~KeyDirectory() = default;

  // Every key of member `member_id` that still verifies, by key id. UNAVAILABLE when the
  // keys service cannot be reached, DEADLINE_EXCEEDED when it does not answer by `deadline`.
  virtual absl::StatusOr<std::vector<HeldKey>> KeysOf(absl::string_view member_id,
                                                      absl::Time deadline) = 0;
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_KEY_DIRECTORY_H_
