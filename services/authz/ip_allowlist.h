#ifndef POLICY_SERVICES_AUTHZ_IP_ALLOWLIST_H_
#define POLICY_SERVICES_AUTHZ_IP_ALLOWLIST_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/net/ip_address.h"

// Source-address rules for service accounts: IPv4 and IPv6 CIDR blocks (common/net) matched
// on bits.
namespace policy::authz {

using net::Cidr;
using net::FormatCidr;
using net::FormatIpAddress;
using net::IpAddress;
using net::ParseCidr;
using net::ParseIpAddress;

// The set of networks a principal may call from. An empty allowlist allows nothing; use
// 0.0.0.0/0 and ::/0 to allow everything. Immutable and thread-safe once built.
class IpAllowlist {
 public:
  static constexpr size_t kMaxEntries = 256;

  // INVALID_ARGUMENT naming the first bad entry (by index), a duplicate, or more than
  // kMaxEntries entries.
  static absl::StatusOr<IpAllowlist> Parse(const std::vector<std::string>& entries);

  bool Allows(const IpAddress& address) const;
  const std::vector<Cidr>& entries() const { return entries_; }
  bool operator==(const IpAllowlist&) const = default;

 private:
  explicit IpAllowlist(std::vector<Cidr> entries) : entries_(std::move(entries)) {}
  std::vector<Cidr> entries_;
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_IP_ALLOWLIST_H_
