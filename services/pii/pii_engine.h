#ifndef POLICY_SERVICES_PII_PII_ENGINE_H_
#define POLICY_SERVICES_PII_PII_ENGINE_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/pii/anonymizer.h"
#include "services/pii/detector.h"
#include "services/pii/finding.h"

// Detection and anonymization of whole requests (the messages of a chat, or one document),
// with the limits a service puts on what it accepts. No proto, no gRPC.
namespace policy::pii {

struct PiiLimits {
  // The texts of one request together.
  size_t max_request_bytes = 1 << 20;
  size_t max_messages = 1024;
  // One document streamed in chunks.
  size_t max_document_bytes = 8 << 20;
  // Documents held at once (each up to max_document_bytes while its chunks arrive).
  size_t max_documents = 16;
  // How long a document's stream may hold its place, from admission to its last chunk; a
  // stream still open then is cancelled, so that idle clients cannot keep every place.
  absl::Duration max_document_time = absl::Seconds(60);
  // The text being scanned at once by Scan, Redact and RedactDocument together (ScanBudget):
  // a request beyond it is refused with RESOURCE_EXHAUSTED. At least max_request_bytes and
  // max_document_bytes, so that every request the other limits accept can be scanned alone.
  size_t max_scan_bytes_in_flight = 8 << 20;
  // Threads that scan Scan's and Redact's texts, off gRPC's threads (which keep answering
  // health checks and refusals while texts are scanned); 0: one per core.
  size_t scan_threads = 0;
};

// Findings scoring below this are dropped unless a request or a policy says otherwise.
inline constexpr double kDefaultMinScore = 0.5;

// The reason (common/status WithReason) of every refusal of a request's redaction policy
// itself (RedactRequest.policy, RedactDocumentOptions.policy), whatever its field: a caller
// that sends a policy of its own configuration (the edge) tells its own misconfiguration from
// a refusal of the texts it passes on.
inline constexpr absl::string_view kReasonPolicyInvalid = "POLICY_INVALID";

// What one request asks to be done to its texts.
struct RedactionParams {
  AnonymizationPolicy policy;
  double min_score = kDefaultMinScore;
  // The project whose pseudonym key kKeyedHash uses; required when the policy hashes.
  std::string project_id;
};

// The outcome for the texts of one request.
struct Redaction {
  // Per text, in order: the detector's findings (spans into the input text, scores,
  // recognizers) and what the policy made of them (spans into the output text); the two lists
  // are parallel.
  std::vector<std::vector<Finding>> found;
  std::vector<AnonymizedText> texts;
  // The merged report and the placeholders of the whole request.
  RequestContext context;
};

class PiiEngine {
 public:
  // `pseudonym_keys` may be null: then policies that hash are refused (FAILED_PRECONDITION).
  PiiEngine(std::unique_ptr<Detector> detector, std::unique_ptr<PseudonymKeys> pseudonym_keys,
            PiiLimits limits);

  const Detector& detector() const { return *detector_; }
  // Whether policies may hash (a pseudonym key is configured).
  bool keyed_hashing() const { return pseudonym_keys_ != nullptr; }
  const PiiLimits& limits() const { return limits_; }

  // OK, or INVALID_ARGUMENT naming the problem, with `field` naming the texts ("messages"):
  // more than max_messages texts, more than `max_bytes` together, or a text that is not UTF-8
  // ("messages[2]: not valid UTF-8 at byte 17").
  absl::Status CheckTexts(absl::Span<const absl::string_view> texts, size_t max_bytes,
                          absl::string_view field) const;

  // OK, or INVALID_ARGUMENT naming the field: an entity type the detector does not know, a
  // type listed twice, a min_score outside [0, 1].
  absl::Status CheckScanOptions(const ScanOptions& options, absl::string_view field) const;

  // OK, or INVALID_ARGUMENT naming the problem: ValidatePolicy's, a rule or class for an
  // entity type the detector does not know, min_score outside [0, 1] (these name a "policy."
  // field and carry kReasonPolicyInvalid), a policy that hashes without a project id;
  // FAILED_PRECONDITION for a policy that hashes when the engine has no pseudonym keys.
  absl::Status CheckRedaction(const RedactionParams& params) const;

  // The findings of each text. REQUIRES CheckTexts and CheckScanOptions are OK.
  std::vector<std::vector<Finding>> Scan(absl::Span<const absl::string_view> texts,
                                         const ScanOptions& options) const;

  // Scans every text and applies the policy, in one request context. Runs CheckRedaction
  // first and returns its error; REQUIRES CheckTexts is OK.
  absl::StatusOr<Redaction> Redact(absl::Span<const absl::string_view> texts,
                                   const RedactionParams& params) const;

  // The class of texts holding `found` under `policy` (ScanResponse.data_class).
  static DataClass ClassOf(absl::Span<const std::vector<Finding>> found,
                           const AnonymizationPolicy& policy);

 private:
  const std::unique_ptr<Detector> detector_;
  const std::unique_ptr<PseudonymKeys> pseudonym_keys_;
  const PiiLimits limits_;
};

// Whether a finding of some type would be replaced by kKeyedHash under `policy`.
bool PolicyHashes(const AnonymizationPolicy& policy);

}  // namespace policy::pii

#endif  // POLICY_SERVICES_PII_PII_ENGINE_H_
