#ifndef POLICY_SERVICES_PII_PII_CONFIG_H_
#define POLICY_SERVICES_PII_PII_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/config/config.h"
#include "common/server/server_runner.h"

namespace policy::pii {

// Everything the pii binary reads from --flags and POLICY_PII_* variables.
struct PiiConfig {
  server::ServerOptions server;
  // A YAML file of custom recognizers (see ParseRecognizersYaml); empty: built-ins only.
  std::string recognizers_file;
  // At least 32 bytes; keys the per-project pseudonyms of OPERATOR_HASH. Empty: policies that
  // hash are refused with FAILED_PRECONDITION. Changing it changes every pseudonym.
  std::string pseudonym_key;
  int64_t max_request_bytes = 1 << 20;
  int64_t max_messages = 1024;
  int64_t max_document_bytes = 8 << 20;
  int64_t max_documents = 16;
  absl::Duration max_document_time = absl::Seconds(60);
  // The text Scan, Redact and RedactDocument scan at once (each request at least 1 KiB);
  // beyond it RESOURCE_EXHAUSTED. Scanning a text dense with values holds tens of times its
  // size, so this bounds most of pii's memory. At least max_request_bytes and
  // max_document_bytes; 0: the larger of those and 8 MiB (ScanBytesInFlight).
  int64_t max_scan_bytes_in_flight = 0;
  // Threads that scan Scan's and Redact's texts, apart from gRPC's; 0: one per core.
  int64_t scan_threads = 0;
  // RE2's memory for all compiled patterns and their DFA caches together.
  int64_t max_regex_memory_bytes = 64 << 20;

  // max_scan_bytes_in_flight, or what 0 stands for.
  int64_t ScanBytesInFlight() const;

  void Register(config::Parser& parser);
  absl::Status Validate() const;
};

}  // namespace policy::pii

#endif  // POLICY_SERVICES_PII_PII_CONFIG_H_
