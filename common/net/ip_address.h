#ifndef POLICY_COMMON_NET_IP_ADDRESS_H_
#define POLICY_COMMON_NET_IP_ADDRESS_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// IPv4 and IPv6 addresses and CIDR blocks, parsed strictly and matched on bits: authz's IP
// allowlists and the edge's trusted proxies read them the same way.
namespace policy::net {

// An IPv4 or IPv6 address. IPv4 addresses are kept as such, not mapped into IPv6.
struct IpAddress {
  bool is_v6 = false;
  std::array<uint8_t, 16> bytes{};  // The first 4 bytes for IPv4.

  int bits() const { return is_v6 ? 128 : 32; }
  bool operator==(const IpAddress&) const = default;
};

// Parses "192.0.2.1" or "2001:db8::1" strictly: the whole text is the address (no leading
// zeros, no zone ids, no spaces, no NUL or anything else after it).
// An IPv4-mapped IPv6 address ("::ffff:192.0.2.1") becomes the IPv4 address, so that IPv4
// rules apply to IPv4 clients seen on dual-stack sockets. INVALID_ARGUMENT otherwise.
absl::StatusOr<IpAddress> ParseIpAddress(absl::string_view text);
std::string FormatIpAddress(const IpAddress& address);

// A network: the first `prefix_length` bits of `network`; the rest are zero.
struct Cidr {
  IpAddress network;
  int prefix_length = 0;

  // True when `address` is of the same family and its first prefix_length bits equal the
  // network's: matching is on bits, so 10.0.0.0/12 holds 10.15.255.255 but not 10.16.0.0.
  bool Contains(const IpAddress& address) const;
  bool operator==(const Cidr&) const = default;
};

// Parses "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128). INVALID_ARGUMENT
// naming the problem for a bad address, a prefix length out of range, or host bits set
// ("10.0.0.1/8": did you mean 10.0.0.0/8?), which is almost always a typo. An IPv4-mapped
// IPv6 network ("::ffff:10.0.0.0/104") counts IPv6 bits and is the IPv4 network (10.0.0.0/8);
// with a prefix length under 96 it would reach past the mapped addresses and is refused.
absl::StatusOr<Cidr> ParseCidr(absl::string_view text);
std::string FormatCidr(const Cidr& cidr);

// `entries` parsed by ParseCidr, in order. INVALID_ARGUMENT naming `field` and the index of the
// first bad or repeated entry ("ip_allowlist[2]: ..."), or more than `max_entries` entries.
absl::StatusOr<std::vector<Cidr>> ParseCidrList(const std::vector<std::string>& entries,
                                                absl::string_view field, size_t max_entries);

}  // namespace policy::net

#endif  // POLICY_COMMON_NET_IP_ADDRESS_H_
