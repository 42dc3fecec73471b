#ifndef POLICY_SERVICES_PII_ANONYMIZER_H_
#define POLICY_SERVICES_PII_ANONYMIZER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/crypto/crypto.h"
#include "common/data_class/data_class.h"
#include "common/pii_rule/pii_rule.h"
#include "services/pii/finding.h"

// What happens to the personal data and secrets the detection engine finds in a prompt: each
// finding is redacted by its type's operator, blocks the request, or is allowed and recorded;
// the text is classified (public, internal, PII, PHI) for region routing; counts per type are
// reported without the values. No proto, no gRPC.
namespace policy::pii {

// How a redacted value is replaced in the output text.
enum class Operator {
  kRedact,           // "[US_SSN_REDACTED]".
  kMask,             // "***-**-6789": all but the last four characters become '*'.
  kReplaceWithType,  // "<US_SSN>".
  kKeyedHash,        // "<US_SSN_0f3a9c2b71de>": a per-project pseudonym (PseudonymKey).
  kPlaceholder,      // "<US_SSN_1>": numbered within one request, restorable (Restore).
};

// "redact", "mask", "replace", "hash", "placeholder"; INVALID_ARGUMENT naming any other name.
absl::StatusOr<Operator> OperatorByName(absl::string_view name);
absl::string_view OperatorName(Operator op);

// What a policy does with a finding of one type.
enum class Action {
  kRedact,  // Replace the value by the type's operator.
  kBlock,   // Refuse the whole request.
  kAllow,   // Leave the value in place and record it (counts, classification).
};

// "redact", "block", "allow"; INVALID_ARGUMENT naming any other name.
absl::StatusOr<Action> ActionByName(absl::string_view name);
absl::string_view ActionName(Action action);

// How sensitive a text is (DataClass, common/data_class), for routing it to a region: the
// class of a text is the most sensitive of what it holds.

// "public", "internal", "pii", "phi"; INVALID_ARGUMENT naming any other name.
absl::StatusOr<DataClass> DataClassByName(absl::string_view name);

// Entity type names (IsValidEntityType, common/pii_rule) are written into the output text
// ("[US_SSN_REDACTED]") and cannot carry anything else.

// The class of an entity type when the policy does not set one: personal data (US_SSN,
// US_ITIN, CREDIT_CARD, IBAN_CODE, EMAIL_ADDRESS, PHONE_NUMBER, IP_ADDRESS, UK_NHS, UK_NINO,
// ES_NIF, ES_NIE, IT_FISCAL_CODE, PL_PESEL, FI_PERSONAL_IDENTITY_CODE,
// SE_PERSONAL_IDENTITY_NUMBER, NL_BSN, FR_NIR, DE_TAX_ID, DE_HEALTH_INSURANCE_NUMBER,
// BE_NATIONAL_NUMBER, IE_PPSN, DK_CPR, AT_SOCIAL_INSURANCE_NUMBER, PT_TAX_ID,
// IDENTITY_DOCUMENT_MRZ, EU_VAT_NUMBER (a sole trader's is personal), CRYPTO) is kPii,
// MEDICAL_LICENSE is kPhi, secrets (POLICY_SUITE_KEY, OPENAI_API_KEY, AWS_ACCESS_KEY, GITHUB_TOKEN,
// SLACK_TOKEN, JWT, GOOGLE_API_KEY, STRIPE_API_KEY, GITLAB_TOKEN, HUGGINGFACE_TOKEN, NPM_TOKEN,
// SENDGRID_API_KEY, AZURE_STORAGE_KEY, GROQ_API_KEY, XAI_API_KEY, GOOGLE_OAUTH_CLIENT_SECRET,
// GOOGLE_OAUTH_TOKEN, PYPI_TOKEN, DOCKER_HUB_TOKEN, WEBHOOK_SIGNING_SECRET, TELEGRAM_BOT_TOKEN,
// SLACK_WEBHOOK_URL, AZURE_SHARED_ACCESS_KEY, AZURE_SAS_TOKEN, PERPLEXITY_API_KEY,
// REPLICATE_API_TOKEN, LANGSMITH_API_KEY, DATABRICKS_TOKEN, ATLASSIAN_API_TOKEN, VAULT_TOKEN,
// AZURE_CLIENT_SECRET, DIGITALOCEAN_TOKEN, POSTMAN_API_KEY, GRAFANA_TOKEN, DISCORD_BOT_TOKEN,
// DISCORD_WEBHOOK_URL, SECRET, PRIVATE_KEY, URL_CREDENTIALS) are kInternal, and any other (custom)
// type is kPii, since a type someone bothered to configure is most likely personal.
DataClass DefaultDataClass(absl::string_view entity_type);

struct EntityRule {
  Action action = Action::kRedact;
  Operator op = Operator::kRedact;  // Used when action is kRedact.
  bool operator==(const EntityRule&) const = default;
};

// What to do with each entity type and how to classify it. Immutable once built; share it
// across threads freely.
struct AnonymizationPolicy {
  // The rule of each listed entity type.
  absl::flat_hash_map<std::string, EntityRule> rules;
  // The rule of every type not in `rules`: redact, so that a type the policy does not know
  // (a new recognizer, a custom type) never passes through unnoticed.
  EntityRule default_rule;
  // The class of each listed entity type, overriding DefaultDataClass.
  absl::flat_hash_map<std::string, DataClass> classes;
  // The class of a text with no finding: internal, since nothing says a text is public.
  DataClass base_class = DataClass::kInternal;

  const EntityRule& RuleFor(absl::string_view entity_type) const;
  DataClass ClassOf(absl::string_view entity_type) const;
};

// OK, or INVALID_ARGUMENT naming the first problem: a type name in `rules` or `classes` that
// is not a valid entity type, or an action, operator or class out of its enum's range.
absl::Status ValidatePolicy(const AnonymizationPolicy& policy);

// One project's pseudonym key: the pseudonym of `value` of type T is
//   "<T_" + hex(HMAC-SHA-256(project_key, T + "\0" + value))[0:12] + ">"
// so that the same value always gets the same pseudonym within the project, the same value
// of two types gets two, and nobody without the key can reverse or even test a guess.
// 12 hex characters are 48 bits: among n distinct values of one type in one project, two
// share a pseudonym with probability about n^2 / 2^49 (1 in 560 for a million values; even
// odds at about 20 million). Immutable and thread-safe.
class PseudonymKey {
 public:
  static constexpr size_t kHexChars = 12;

  // The project key is HMAC-SHA-256(master_key, "policy-suite pii pseudonym v1\0" +
  // project_id). INVALID_ARGUMENT for a master key shorter than 32 bytes or a project id
  // that is empty or longer than 256 bytes. PseudonymKeys caches these.
  static absl::StatusOr<std::shared_ptr<const PseudonymKey>> Derive(absl::string_view master_key,
                                                                    absl::string_view project_id);

  // The pseudonym above. REQUIRES IsValidEntityType(entity_type).
  std::string Pseudonym(absl::string_view entity_type, absl::string_view value) const;
  // The same, appended to `out` without other allocation (the hot path).
  void AppendPseudonym(absl::string_view entity_type, absl::string_view value,
                       std::string& out) const;

 private:
  friend class PseudonymKeys;
  explicit PseudonymKey(absl::string_view project_key) : mac_(project_key) {}
  // The key of `project_id` under the master key `master`; the id must have been checked.
  static std::shared_ptr<const PseudonymKey> FromMaster(const crypto::HmacSha256& master,
                                                        absl::string_view project_id);

  const crypto::HmacSha256 mac_;
};

// The master key (from the service's configuration) and the project keys derived from it,
// cached. Thread-safe.
class PseudonymKeys {
 public:
  static constexpr size_t kMinMasterKeyBytes = 32;
  // Beyond this many cached projects the cache starts over; deriving a key costs two HMACs.
  static constexpr size_t kMaxCachedProjects = 4096;

  // INVALID_ARGUMENT for a master key shorter than kMinMasterKeyBytes.
  static absl::StatusOr<std::unique_ptr<PseudonymKeys>> Create(absl::string_view master_key);

  // The key of `project_id` (PseudonymKey::Derive); INVALID_ARGUMENT for a project id that is
  // empty or longer than 256 bytes.
  absl::StatusOr<std::shared_ptr<const PseudonymKey>> ForProject(absl::string_view project_id);

 private:
  explicit PseudonymKeys(absl::string_view master_key) : master_(master_key) {}

  const crypto::HmacSha256 master_;  // Keyed with the master key; the key itself is not kept.
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const PseudonymKey>> cache_ ABSL_GUARDED_BY(mu_);
};

// One placeholder issued in a request and the value it stands for.
struct PlaceholderEntry {
  std::string placeholder;  // "<EMAIL_ADDRESS_1>".
  std::string entity_type;  // "EMAIL_ADDRESS".
  std::string value;        // The original value: as sensitive as the text it came from.
  bool operator==(const PlaceholderEntry&) const = default;
};

// The placeholders of one request: "<T_n>" numbers the distinct values of type T from 1 in
// order of first occurrence, and the same value of the same type always gets the same
// placeholder. Not thread-safe (a request is handled by one thread at a time).
class PlaceholderMapping {
 public:
  PlaceholderMapping() = default;
  PlaceholderMapping(const PlaceholderMapping& other);
  PlaceholderMapping& operator=(const PlaceholderMapping& other);
  // Moving keeps the entries in place (std::deque), so the indexes stay valid.
  PlaceholderMapping(PlaceholderMapping&&) = default;
  PlaceholderMapping& operator=(PlaceholderMapping&&) = default;

  // A mapping from entries issued earlier, e.g. returned by a caller restoring an answer in a
  // later call; new placeholders continue each type's numbering. INVALID_ARGUMENT when a
  // placeholder is not "<" + entity_type + "_" + n + ">" (n a decimal from 1, no leading
  // zero), the type is not a valid entity type, or a placeholder or a (type, value) pair is
  // listed twice.
  static absl::StatusOr<PlaceholderMapping> FromEntries(std::vector<PlaceholderEntry> entries);

  // The placeholder of `value` of `entity_type`, issued on first sight; the reference lives as
  // long as the mapping. REQUIRES IsValidEntityType(entity_type).
  const std::string& PlaceholderFor(absl::string_view entity_type, absl::string_view value);

  // Numbers new placeholders of each type past every placeholder-shaped "<TYPE_n>" in `text`
  // (already redacted history a chat sends again), so that no new placeholder repeats one
  // standing for another value there.
  void SkipNumbersUsedIn(absl::string_view text);

  // The value `placeholder` stands for, or null when this mapping did not issue it.
  const std::string* ValueOf(absl::string_view placeholder) const;

  // Every placeholder, in the order issued.
  const std::deque<PlaceholderEntry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }

 private:
  // Adds `entry` to the indexes; false when its placeholder or (type, value) is there already.
  bool Index(const PlaceholderEntry& entry);

  // A deque, so that entries never move and the indexes can point into them.
  std::deque<PlaceholderEntry> entries_;
  absl::flat_hash_map<std::pair<absl::string_view, absl::string_view>, const PlaceholderEntry*>
      by_value_;  // (entity_type, value).
  absl::flat_hash_map<absl::string_view, const PlaceholderEntry*> by_placeholder_;
  absl::flat_hash_map<std::string, int64_t> last_number_;  // Per type.
};

// `text` (typically an LLM's answer) with every placeholder `mapping` issued put back to its
// original value. Everything else is left alone, including placeholder-shaped text the
// mapping did not issue ("<EMAIL_ADDRESS_9>"). One pass from left to right: a restored value
// is not scanned again. Text the caller wrote that looks exactly like an issued placeholder is
// restored too: the caller cannot be told apart from the model here. INVALID_ARGUMENT when
// the restored text would exceed `max_bytes` (a short text of many placeholders for long
// values would otherwise grow without bound).
absl::StatusOr<std::string> Restore(absl::string_view text, const PlaceholderMapping& mapping,
                                    size_t max_bytes);

// The largest RestoreRequest on the wire that carries a text of at most `max_request_bytes`
// and a mapping Redact issued for a request of at most `max_request_bytes`, when the
// detector knows `entity_types` types, the longest `longest_entity_type` bytes long: the
// text, the values (at most max_request_bytes together, as Restore checks) and, per entry,
// its placeholder, its type name and their proto framing. A mapping holds one entry per
// distinct (type, value); a value takes at least one byte of the request, and at most 256
// values of a type are one byte long, so there are at most 256 * entity_types +
// max_request_bytes / 2 entries. What a server must be able to receive for Restore to admit
// every mapping of its own Redact (pii's receive limit).
size_t MaxRestoreRequestBytes(size_t max_request_bytes, size_t entity_types,
                              size_t longest_entity_type);

// What a text, or a whole request, holds, without the values.
struct ContentReport {
  // Whether a finding's rule is kBlock, and the types whose rule it is (sorted, unique).
  bool blocked = false;
  std::vector<std::string> blocking_types;
  // Findings per entity type, whatever was done with them.
  std::map<std::string, int64_t, std::less<>> counts;
  // The maximum of the policy's base_class and the classes of all findings (redacted,
  // allowed or blocked alike). kPublic for a request before its first text.
  DataClass data_class = DataClass::kPublic;
  bool operator==(const ContentReport&) const = default;
};

// What was done with one finding.
struct AppliedFinding {
  std::string entity_type;
  Action action = Action::kRedact;
  // The operator that replaced the value: the rule's for kRedact, kRedact for a blocked value
  // (the text of a blocked request is not to be sent, but stays safe to log), none for kAllow.
  std::optional<Operator> op;
  // The span [begin, end) in the output text: the replacement, or the allowed value.
  size_t begin = 0;
  size_t end = 0;
};

struct AnonymizedText {
  std::string text;
  std::vector<AppliedFinding> findings;  // One per input finding, in the same order.
  ContentReport report;
};

// The state of one request, which may hold several texts (the messages of a chat): their
// placeholders share one numbering and one mapping, and their reports add up. Not
// thread-safe.
class RequestContext {
 public:
  // `pseudonym_key` is the request's project key for kKeyedHash; without one, a finding to
  // be hashed fails the call with FAILED_PRECONDITION.
  explicit RequestContext(std::shared_ptr<const PseudonymKey> pseudonym_key = nullptr)
      : pseudonym_key_(std::move(pseudonym_key)) {}

  // The texts anonymized so far, their merged report and the placeholders issued.
  int64_t texts() const { return texts_; }
  const ContentReport& report() const { return report_; }
  const PlaceholderMapping& placeholders() const { return placeholders_; }

  // New placeholders are numbered past those in `text` (PlaceholderMapping::SkipNumbersUsedIn).
  // Anonymize does this for the text it is given; a caller holding all of a request's texts
  // calls it for each before the first Anonymize, so that a placeholder in a later text is
  // not issued again for another value in an earlier one.
  void SkipPlaceholderNumbersUsedIn(absl::string_view text) {
    placeholders_.SkipNumbersUsedIn(text);
  }

 private:
  friend absl::StatusOr<AnonymizedText> Anonymize(absl::string_view text,
                                                  absl::Span<const Finding> findings,
                                                  const AnonymizationPolicy& policy,
                                                  RequestContext& context);

  std::shared_ptr<const PseudonymKey> pseudonym_key_;
  PlaceholderMapping placeholders_;
  ContentReport report_;
  int64_t texts_ = 0;
};

// Applies `policy` to the `findings` in `text` (UTF-8) and adds the outcome to `context`.
// Findings must be as the detection engine returns them: each a valid entity type, a
// non-empty span within the text whose ends fall on UTF-8 character boundaries, sorted by
// position and not overlapping; INVALID_ARGUMENT naming the first finding that is not.
// FAILED_PRECONDITION when a finding is to be hashed and the context has no pseudonym key.
// On error `context` is unchanged. Text outside the findings is copied unchanged, so when
// `text` is valid UTF-8 so is the output. REQUIRES ValidatePolicy(policy) is OK.
absl::StatusOr<AnonymizedText> Anonymize(absl::string_view text, absl::Span<const Finding> findings,
                                         const AnonymizationPolicy& policy,
                                         RequestContext& context);

}  // namespace policy::pii

#endif  // POLICY_SERVICES_PII_ANONYMIZER_H_
