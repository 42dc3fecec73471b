// Fuzz target for organisation files, which administrators write by hand: parsing never
// crashes, and a file that parses formats to text that parses back to the same declarations.
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "services/authz/org_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace policy::authz;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<OrgFile> file = ParseOrgFile(input);
  if (!file.ok()) return 0;
  OrgState state;
  state.projects = file->projects;
  state.members = file->members;
  state.service_accounts = file->service_accounts;
  state.idp_groups = file->idp_groups;
  state.Sort();
  absl::StatusOr<OrgFile> again = ParseOrgFile(FormatOrgFile(state));
  if (!again.ok()) __builtin_trap();
  OrgState reparsed;
  reparsed.projects = again->projects;
  reparsed.members = again->members;
  reparsed.service_accounts = again->service_accounts;
  reparsed.idp_groups = again->idp_groups;
  if (reparsed.projects != state.projects || reparsed.members != state.members ||
      reparsed.service_accounts != state.service_accounts ||
      reparsed.idp_groups != state.idp_groups) {
    __builtin_trap();
  }
  return 0;
}
