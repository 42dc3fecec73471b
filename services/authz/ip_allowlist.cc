#include "services/authz/ip_allowlist.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace policy::authz {

absl::StatusOr<IpAllowlist> IpAllowlist::Parse(const std::vector<std::string>& entries) {
  if (entries.size() > kMaxEntries) {
    return absl::InvalidArgumentError(
        absl::StrCat("IP allowlist has ", entries.size(), " entries; at most ", kMaxEntries));
  }
  std::vector<Cidr> cidrs;
  cidrs.reserve(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    absl::StatusOr<Cidr> cidr = ParseCidr(entries[i]);
    if (!cidr.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("ip_allowlist[", i, "]: ", cidr.status().message()));
    }
    if (std::find(cidrs.begin(), cidrs.end(), *cidr) != cidrs.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("ip_allowlist[", i, "]: ", FormatCidr(*cidr), " is listed twice"));
    }
    cidrs.push_back(*cidr);
  }
  return IpAllowlist(std::move(cidrs));
}

bool IpAllowlist::Allows(const IpAddress& address) const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const Cidr& cidr) { return cidr.Contains(address); });
}

}  // namespace policy::authz
