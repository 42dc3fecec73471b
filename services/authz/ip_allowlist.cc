#include "services/authz/ip_allowlist.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status/status.h"

namespace policy::authz {

absl::StatusOr<IpAllowlist> IpAllowlist::Parse(const std::vector<std::string>& entries) {
  ASSIGN_OR_RETURN(std::vector<Cidr> cidrs,
                   net::ParseCidrList(entries, "ip_allowlist", kMaxEntries));
  return IpAllowlist(std::move(cidrs));
}

bool IpAllowlist::Allows(const IpAddress& address) const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const Cidr& cidr) { return cidr.Contains(address); });
}

}  // namespace policy::authz
