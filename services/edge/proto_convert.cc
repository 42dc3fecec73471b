#include "services/edge/proto_convert.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace policy::edge {

std::string AuditIdOf(const audit::v1::Entry& entry) {
  return absl::StrCat(entry.ledger().project(), "/", entry.ledger().environment(), "/",
                      entry.index());
}

std::string EnvironmentName(keys::v1::Environment e) {
  // The enum's own names, ENVIRONMENT_PRODUCTION and so on, lower-cased without the prefix.
  if (e == keys::v1::ENVIRONMENT_UNSPECIFIED || !keys::v1::Environment_IsValid(e)) return "";
  return absl::AsciiStrToLower(absl::StripPrefix(keys::v1::Environment_Name(e), "ENVIRONMENT_"));
}

}  // namespace policy::edge
