// Fuzz target for allowlist entries and source addresses, both supplied by callers.
#include <cstdint>
#include <string>

#include "services/authz/ip_allowlist.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace policy::authz;
  const std::string input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Cidr> cidr = ParseCidr(input);
  if (cidr.ok()) {
    // A parsed network contains itself and formats to text that parses back to it.
    if (!cidr->Contains(cidr->network)) __builtin_trap();
    absl::StatusOr<Cidr> again = ParseCidr(FormatCidr(*cidr));
    if (!again.ok() || !(*again == *cidr)) __builtin_trap();
  }
  absl::StatusOr<IpAddress> address = ParseIpAddress(input);
  if (address.ok()) {
    absl::StatusOr<IpAddress> again = ParseIpAddress(FormatIpAddress(*address));
    if (!again.ok() || !(*again == *address)) __builtin_trap();
  }
  return 0;
}
