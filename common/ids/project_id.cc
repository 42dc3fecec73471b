#include "common/ids/project_id.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace policy::ids {
namespace {

bool IsProjectIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

}  // namespace

bool IsProjectId(absl::string_view id) {
  return !id.empty() && id.size() <= kMaxProjectIdBytes &&
         std::all_of(id.begin(), id.end(), IsProjectIdChar);
}

absl::Status ValidateProjectId(absl::string_view id, absl::string_view field) {
  if (id.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  if (id.size() > kMaxProjectIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": longer than ", kMaxProjectIdBytes, " bytes"));
  }
  if (!std::all_of(id.begin(), id.end(), IsProjectIdChar)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": a project id has only lowercase letters, digits, '-' and '_' (",
                     "[a-z0-9_-]{1,", kMaxProjectIdBytes, "})"));
  }
  return absl::OkStatus();
}

}  // namespace policy::ids
