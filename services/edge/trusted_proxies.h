#ifndef POLICY_SERVICES_EDGE_TRUSTED_PROXIES_H_
#define POLICY_SERVICES_EDGE_TRUSTED_PROXIES_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/net/ip_address.h"

// Whose word the edge takes for the address a call came from.
namespace policy::edge {

// The peers (Envoy, an API gateway, a sidecar) that may state a caller's address on its
// behalf: Decide's source_ip, ext_authz's source.address. Every other peer is judged by its own
// address, the one its connection comes from. Immutable and thread-safe once built.
class TrustedProxies {
 public:
  static constexpr size_t kMaxEntries = 256;

  // CIDR blocks or bare addresses (common/net). INVALID_ARGUMENT naming the first bad entry
  // as trusted_proxies[i], or more than kMaxEntries.
  static absl::StatusOr<TrustedProxies> Parse(const std::vector<std::string>& entries);

  // The address a call is judged by, given its gRPC peer (grpc::ServerContext::peer():
  // "ipv4:192.0.2.1:5000", "ipv6:[2001:db8::1]:5000", "unix:/path") and the address it states
  // in the field named `field`:
  //  - a trusted peer (its address in the list, or a Unix socket: local): `stated` as given,
  //    empty included (authz then refuses service accounts, which need an address);
  //  - any other peer: its own address (IPv4-mapped IPv6 as IPv4). It may state that same
  //    address or none; stating another is PERMISSION_DENIED naming both and this setting
  //    (a caller outside the list claiming another's address, or a proxy missing from the
  //    list: either way the decision cannot be made on the address it states), and a
  //    malformed one INVALID_ARGUMENT naming `field`;
  //  - a peer whose address cannot be read: PERMISSION_DENIED.
  absl::StatusOr<std::string> CallerAddress(absl::string_view peer, absl::string_view stated,
                                            absl::string_view field) const;

 private:
  explicit TrustedProxies(std::vector<net::Cidr> entries) : entries_(std::move(entries)) {}
  std::vector<net::Cidr> entries_;
};

// The IP address of a gRPC peer string ("ipv4:a.b.c.d:port", "ipv6:[addr]:port", brackets
// possibly percent-encoded); INVALID_ARGUMENT for other peers (Unix sockets, unknown forms).
absl::StatusOr<net::IpAddress> PeerIpAddress(absl::string_view peer);

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_TRUSTED_PROXIES_H_
