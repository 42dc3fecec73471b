#include "services/edge/trusted_proxies.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/status/status.h"
#include "common/text/caller_text.h"

namespace policy::edge {

absl::StatusOr<TrustedProxies> TrustedProxies::Parse(const std::vector<std::string>& entries) {
  ASSIGN_OR_RETURN(std::vector<net::Cidr> cidrs,
                   net::ParseCidrList(entries, "trusted_proxies", kMaxEntries));
  return TrustedProxies(std::move(cidrs));
}

absl::StatusOr<net::IpAddress> PeerIpAddress(absl::string_view peer) {
  absl::string_view rest = peer;
  if (absl::ConsumePrefix(&rest, "ipv4:")) {
    const size_t colon = rest.rfind(':');
    return net::ParseIpAddress(rest.substr(0, colon));
  }
  if (absl::ConsumePrefix(&rest, "ipv6:")) {
    // "[addr]:port"; some gRPC versions percent-encode the brackets (and a zone's '%').
    const std::string decoded =
        absl::StrReplaceAll(rest, {{"%5B", "["}, {"%5D", "]"}, {"%5b", "["}, {"%5d", "]"}});
    absl::string_view text = decoded;
    if (absl::ConsumePrefix(&text, "[")) {
      const size_t close = text.find(']');
      if (close != absl::string_view::npos) return net::ParseIpAddress(text.substr(0, close));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("peer ", Quoted(peer), " has no IP address"));
}

absl::StatusOr<std::string> TrustedProxies::CallerAddress(absl::string_view peer,
                                                          absl::string_view stated,
                                                          absl::string_view field) const {
  if (absl::StartsWith(peer, "unix:") || absl::StartsWith(peer, "unix-abstract:")) {
    return std::string(stated);  // The same host: as trusted as loopback.
  }
  absl::StatusOr<net::IpAddress> address = PeerIpAddress(peer);
  if (!address.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat(field, ": the call's ", address.status().message(),
                     ", so the address it comes from cannot be checked"));
  }
  if (std::any_of(entries_.begin(), entries_.end(),
                  [&](const net::Cidr& cidr) { return cidr.Contains(*address); })) {
    return std::string(stated);
  }
  const std::string own = net::FormatIpAddress(*address);
  if (stated.empty()) return own;
  absl::StatusOr<net::IpAddress> claimed = net::ParseIpAddress(stated);
  if (!claimed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", claimed.status().message()));
  }
  if (!(*claimed == *address)) {
    return absl::PermissionDeniedError(absl::StrCat(
        field, ": ", net::FormatIpAddress(*claimed), " is stated by a call from ", own,
        ", which is not a trusted proxy (trusted_proxies); only the address a call comes from "
        "counts for it, so leave the field empty or state that one"));
  }
  return own;
}

}  // namespace policy::edge
