#include "common/net/ip_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/text/caller_text.h"

namespace policy::net {
namespace {

constexpr size_t kMaxTextBytes = 64;  // Longer than any address or CIDR.

// Copies of `address` with every bit past `prefix_length` cleared.
IpAddress Masked(const IpAddress& address, int prefix_length) {
  IpAddress out = address;
  const int bytes = address.bits() / 8;
  for (int i = 0; i < bytes; ++i) {
    const int keep = std::clamp(prefix_length - 8 * i, 0, 8);
    out.bytes[i] &= static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
  }
  return out;
}

}  // namespace

absl::StatusOr<IpAddress> ParseIpAddress(absl::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("IP address is empty");
  if (text.size() > kMaxTextBytes) return absl::InvalidArgumentError("IP address is too long");
  // inet_pton reads a C string: a NUL would end the address early and hide what follows.
  if (text.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quoted(text), " is not an IPv4 or IPv6 address (it has a NUL byte)"));
  }
  const std::string buffer(text);  // inet_pton wants a terminated string.
  IpAddress address;
  if (inet_pton(AF_INET, buffer.c_str(), address.bytes.data()) == 1) return address;
  if (inet_pton(AF_INET6, buffer.c_str(), address.bytes.data()) == 1) {
    static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(address.bytes.data(), kMappedPrefix, sizeof(kMappedPrefix)) == 0) {
      IpAddress v4;
      std::memcpy(v4.bytes.data(), address.bytes.data() + 12, 4);
      return v4;
    }
    address.is_v6 = true;
    return address;
  }
  return absl::InvalidArgumentError(absl::StrCat(Quoted(text), " is not an IPv4 or IPv6 address"));
}

std::string FormatIpAddress(const IpAddress& address) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(address.is_v6 ? AF_INET6 : AF_INET, address.bytes.data(), text, sizeof(text));
  return text;
}

bool Cidr::Contains(const IpAddress& address) const {
  if (address.is_v6 != network.is_v6) return false;
  const int full_bytes = prefix_length / 8;
  if (std::memcmp(address.bytes.data(), network.bytes.data(), full_bytes) != 0) return false;
  const int rest = prefix_length % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (address.bytes[full_bytes] & mask) == network.bytes[full_bytes];
}

absl::StatusOr<Cidr> ParseCidr(absl::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("CIDR is empty");
  if (text.size() > kMaxTextBytes) return absl::InvalidArgumentError("CIDR is too long");
  const size_t slash = text.find('/');
  const absl::string_view address_text = text.substr(0, slash);
  absl::StatusOr<IpAddress> address = ParseIpAddress(address_text);
  if (!address.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("CIDR ", Quoted(text), ": ", address.status().message()));
  }
  // The prefix length counts the bits of the address as written: an IPv4-mapped IPv6
  // address (::ffff:a.b.c.d), which ParseIpAddress turns into IPv4, has 128.
  const bool written_v6 = absl::StrContains(address_text, ':');
  const int written_bits = written_v6 ? 128 : 32;
  Cidr cidr{*address, address->bits()};
  if (slash != absl::string_view::npos) {
    absl::string_view length = text.substr(slash + 1);
    const bool digits = !length.empty() && length.size() <= 3 &&
                        std::all_of(length.begin(), length.end(), absl::ascii_isdigit) &&
                        !(length.size() > 1 && length[0] == '0');
    if (!digits || !absl::SimpleAtoi(length, &cidr.prefix_length) ||
        cidr.prefix_length > written_bits) {
      return absl::InvalidArgumentError(
          absl::StrCat("CIDR ", Quoted(text), ": prefix length must be 0 to ", written_bits,
                       written_v6 ? " for an IPv6 address" : " for an IPv4 address"));
    }
    if (written_v6 && !address->is_v6) {
      // An IPv4-mapped network: its /96 to /128 are the IPv4 network's /0 to /32; a shorter
      // prefix would reach past the mapped addresses into other IPv6 ones.
      constexpr int kMappedPrefixBits = 96;
      if (cidr.prefix_length < kMappedPrefixBits) {
        return absl::InvalidArgumentError(absl::StrCat(
            "CIDR ", Quoted(text),
            ": an IPv4-mapped IPv6 network needs a prefix length of 96 to 128 (IPv4's /0 to "
            "/32); write IPv4 networks as IPv4"));
      }
      cidr.prefix_length -= kMappedPrefixBits;
    }
  }
  const IpAddress masked = Masked(cidr.network, cidr.prefix_length);
  if (!(masked == cidr.network)) {
    return absl::InvalidArgumentError(
        absl::StrCat("CIDR ", Quoted(text), " has host bits set; did you mean ",
                     FormatCidr(Cidr{masked, cidr.prefix_length}), "?"));
  }
  return cidr;
}

std::string FormatCidr(const Cidr& cidr) {
  return absl::StrCat(FormatIpAddress(cidr.network), "/", cidr.prefix_length);
}

absl::StatusOr<std::vector<Cidr>> ParseCidrList(const std::vector<std::string>& entries,
                                                absl::string_view field, size_t max_entries) {
  if (entries.size() > max_entries) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", entries.size(), " entries; at most ", max_entries));
  }
  std::vector<Cidr> cidrs;
  cidrs.reserve(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    absl::StatusOr<Cidr> cidr = ParseCidr(entries[i]);
    if (!cidr.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]: ", cidr.status().message()));
    }
    if (std::find(cidrs.begin(), cidrs.end(), *cidr) != cidrs.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]: ", FormatCidr(*cidr), " is listed twice"));
    }
    cidrs.push_back(*cidr);
  }
  return cidrs;
}

}  // namespace policy::net
