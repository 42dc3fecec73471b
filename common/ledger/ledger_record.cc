#include "common/ledger/ledger_record.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto/crypto.h"

namespace policy::ledger {

absl::StatusOr<std::string> NewRequestId(absl::string_view prefix) {
  absl::StatusOr<std::string> random = crypto::RandomBytes(16);
  if (!random.ok()) return random.status();
  return absl::StrCat(prefix, absl::BytesToHexString(*random));
}

std::string ShortDigest(absl::string_view text) {
  return absl::BytesToHexString(crypto::Sha256(text)).substr(0, 32);
}

std::string RemovalRequestId(absl::string_view service, absl::string_view kind,
                             absl::string_view removal) {
  return absl::StrCat(service, ":", kind, "-removed:", removal);
}

std::string EncodeMetadata(const std::map<std::string, std::string>& metadata) {
  std::string text;
  for (const auto& [key, value] : metadata) {
    absl::StrAppend(&text, absl::CEscape(key), "\t", absl::CEscape(value), "\n");
  }
  return text;
}

absl::StatusOr<std::map<std::string, std::string>> DecodeMetadata(absl::string_view text) {
  std::map<std::string, std::string> metadata;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> parts = absl::StrSplit(line, '\t');
    std::string key, value;
    if (parts.size() != 2 || !absl::CUnescape(parts[0], &key) ||
        !absl::CUnescape(parts[1], &value)) {
      return absl::DataLossError(absl::StrCat("ledger record metadata: malformed line \"",
                                              absl::CEscape(line.substr(0, 64)), "\""));
    }
    metadata.emplace(std::move(key), std::move(value));
  }
  return metadata;
}

}  // namespace policy::ledger
