#include "services/pii/pii_config.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/pii/anonymizer.h"

namespace policy::pii {

int64_t PiiConfig::ScanBytesInFlight() const {
  if (max_scan_bytes_in_flight != 0) return max_scan_bytes_in_flight;
  return std::max({int64_t{8} << 20, max_request_bytes, max_document_bytes});
}

void PiiConfig::Register(config::Parser& p) {
  server.Register(p);
  p.AddString("recognizers_file", &recognizers_file,
              "YAML file of custom recognizers (empty: built-ins only)");
  p.AddString("pseudonym_key", &pseudonym_key,
              "secret (>= 32 bytes) keying per-project pseudonyms; empty disables OPERATOR_HASH",
              config::Sensitivity::kSecret);
  p.AddInt("max_request_bytes", &max_request_bytes, "largest total of a request's texts");
  p.AddInt("max_messages", &max_messages, "most messages in one request");
  p.AddInt("max_document_bytes", &max_document_bytes, "largest document RedactDocument accepts");
  p.AddInt("max_documents", &max_documents,
           "RedactDocument streams held at once (more get RESOURCE_EXHAUSTED)");
  p.AddDuration("max_document_time", &max_document_time,
                "longest a RedactDocument stream may hold its place (then it is cancelled)");
  p.AddInt(
      "max_scan_bytes_in_flight", &max_scan_bytes_in_flight,
      "text scanned at once by Scan, Redact, RedactDocument (more: RESOURCE_EXHAUSTED; 0: auto)");
  p.AddInt("scan_threads", &scan_threads, "threads that scan Scan's and Redact's texts (0: cores)");
  p.AddInt("max_regex_memory_bytes", &max_regex_memory_bytes,
           "memory budget of all compiled patterns together");
}

absl::Status PiiConfig::Validate() const {
  if (absl::Status s = server.Validate(); !s.ok()) return s;
  if (!pseudonym_key.empty() && pseudonym_key.size() < PseudonymKeys::kMinMasterKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("pseudonym_key must be at least ", PseudonymKeys::kMinMasterKeyBytes,
                     " bytes (POLICY_PII_PSEUDONYM_KEY; openssl rand -hex 32)"));
  }
  constexpr int64_t kMaxBytes = int64_t{256} << 20;
  if (max_request_bytes < 1 || max_request_bytes > kMaxBytes || max_document_bytes < 1 ||
      max_document_bytes > kMaxBytes * 4) {
    return absl::InvalidArgumentError(
        "max_request_bytes must be in [1, 256 MiB] and max_document_bytes in [1, 1 GiB]");
  }
  if (max_messages < 1) return absl::InvalidArgumentError("max_messages must be positive");
  if (max_documents < 1) return absl::InvalidArgumentError("max_documents must be positive");
  if (max_document_time <= absl::ZeroDuration() || max_document_time > absl::Hours(1)) {
    return absl::InvalidArgumentError("max_document_time must be more than 0s and at most 1h");
  }
  if (max_scan_bytes_in_flight != 0 &&
      (max_scan_bytes_in_flight < std::max(max_request_bytes, max_document_bytes) ||
       max_scan_bytes_in_flight > kMaxBytes * 16)) {
    return absl::InvalidArgumentError(
        "max_scan_bytes_in_flight must be 0 (automatic) or at least max_request_bytes and "
        "max_document_bytes (else such a request could never be scanned), and at most 4 GiB");
  }
  if (scan_threads < 0 || scan_threads > 256) {
    return absl::InvalidArgumentError("scan_threads must be in [0, 256] (0: one per core)");
  }
  if (max_regex_memory_bytes < (1 << 20)) {
    return absl::InvalidArgumentError("max_regex_memory_bytes must be at least 1 MiB");
  }
  return absl::OkStatus();
}

}  // namespace policy::pii
