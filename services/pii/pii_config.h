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
  // RE2's memory for all compiled patterns and their DFA caches together.
  int64_t max_regex_memory_bytes = 64 << 20;

  void Register(config::Parser& parser);
  absl::Status Validate() const;
};

}  // namespace policy::pii

#endif  // POLICY_SERVICES_PII_PII_CONFIG_H_
