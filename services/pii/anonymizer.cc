#include "services/pii/anonymizer.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status/status.h"

namespace policy::pii {
namespace {

constexpr size_t kMaxPrintedBytes = 80;
constexpr size_t kMaxProjectIdBytes = 256;
// "policy-suite pii pseudonym v1" and its terminating NUL, which separates it from the id.
constexpr char kProjectKeyLabel[] = "policy-suite pii pseudonym v1";
// '<' + type + '_' + up to 19 digits + '>'.
constexpr size_t kMaxPlaceholderBytes = 1 + kMaxEntityTypeBytes + 1 + 19 + 1;
constexpr size_t kMaskKeptChars = 4;

constexpr std::array<absl::string_view, 5> kOperatorNames = {"redact", "mask", "replace", "hash",
                                                             "placeholder"};
constexpr std::array<absl::string_view, 3> kActionNames = {"redact", "block", "allow"};

std::string Printable(absl::string_view text) {
  return absl::CHexEscape(text.substr(0, kMaxPrintedBytes));
}

template <size_t N>
absl::StatusOr<size_t> IndexByName(const std::array<absl::string_view, N>& names,
                                   absl::string_view kind, absl::string_view name) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == name) return i;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown ", kind, " '", Printable(name), "'; expected one of ", absl::StrJoin(names, ", ")));
}

template <typename Enum, size_t N>
bool InRange(Enum value, const std::array<absl::string_view, N>& names) {
  return static_cast<size_t>(value) < names.size();
}

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

bool IsMaskSeparator(char c) { return c == '-' || c == ' ' || c == '.'; }

void AppendRedacted(absl::string_view entity_type, std::string& out) {
  out.push_back('[');
  out.append(entity_type.data(), entity_type.size());
  out.append("_REDACTED]");
}

void AppendTypeName(absl::string_view entity_type, std::string& out) {
  out.push_back('<');
  out.append(entity_type.data(), entity_type.size());
  out.push_back('>');
}

// Every character but the last kMaskKeptChars becomes '*'; separators stay where they are
// and are not counted. Characters are code points: a lead byte and its continuation bytes.
void AppendMasked(absl::string_view value, std::string& out) {
  size_t chars = 0;
  for (char c : value) chars += !IsContinuationByte(c) && !IsMaskSeparator(c);
  size_t to_mask = chars > kMaskKeptChars ? chars - kMaskKeptChars : chars;
  const size_t start = out.size();
  out.resize(start + value.size());  // A masked character never takes more bytes than it did.
  char* const begin = out.data() + start;
  char* write = begin;
  size_t i = 0;
  for (; i < value.size() && to_mask > 0; ++i) {
    const char c = value[i];
    if (IsMaskSeparator(c)) {
      *write++ = c;
    } else if (!IsContinuationByte(c)) {
      *write++ = '*';
      --to_mask;
    }
  }
  while (i < value.size() && IsContinuationByte(value[i])) ++i;  // Of the last masked one.
  std::memcpy(write, value.data() + i, value.size() - i);
  out.resize(start + static_cast<size_t>(write - begin) + (value.size() - i));
}

// "<TYPE_n>" split into TYPE and n, or false.
bool ParsePlaceholder(absl::string_view placeholder, absl::string_view& entity_type,
                      int64_t& number) {
  if (placeholder.size() < 5 || placeholder.size() > kMaxPlaceholderBytes ||
      placeholder.front() != '<' || placeholder.back() != '>') {
    return false;
  }
  const absl::string_view inner = placeholder.substr(1, placeholder.size() - 2);
  const size_t underscore = inner.rfind('_');
  if (underscore == absl::string_view::npos) return false;
  entity_type = inner.substr(0, underscore);
  const absl::string_view digits = inner.substr(underscore + 1);
  return IsValidEntityType(entity_type) && !digits.empty() && digits.size() <= 18 &&
         digits[0] != '0' && std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit) &&
         absl::SimpleAtoi(digits, &number);
}

// The entity types of one call's findings, resolved against the policy (and checked) once
// each: a few types recur many times, so a linear search beats hashing until there are many.
class TypeTable {
 public:
  struct Entry {
    absl::string_view entity_type;
    const EntityRule* rule;
    DataClass data_class;
    int64_t count;
    bool valid;  // IsValidEntityType.
  };

  explicit TypeTable(const AnonymizationPolicy& policy) : policy_(policy) {}

  uint32_t IndexOf(absl::string_view entity_type) {
    if (index_.empty()) {
      // Length and first byte first: most types differ there, and memcmp is a call.
      for (uint32_t i = 0; i < entries_.size(); ++i) {
        const absl::string_view known = entries_[i].entity_type;
        if (known.size() == entity_type.size() &&
            (known.empty() || (known[0] == entity_type[0] &&
                               std::memcmp(known.data(), entity_type.data(), known.size()) == 0))) {
          return i;
        }
      }
    } else if (auto it = index_.find(entity_type); it != index_.end()) {
      return it->second;
    }
    const auto i = static_cast<uint32_t>(entries_.size());
    entries_.push_back({entity_type, &policy_.RuleFor(entity_type), policy_.ClassOf(entity_type), 0,
                        IsValidEntityType(entity_type)});
    if (entries_.size() > kLinearSearchTypes) {
      if (index_.empty()) {
        for (uint32_t j = 0; j < entries_.size(); ++j) index_.emplace(entries_[j].entity_type, j);
      } else {
        index_.emplace(entity_type, i);
      }
    }
    return i;
  }

  Entry& operator[](uint32_t i) { return entries_[i]; }
  absl::Span<const Entry> entries() const { return entries_; }

 private:
  static constexpr size_t kLinearSearchTypes = 16;
  const AnonymizationPolicy& policy_;
  absl::InlinedVector<Entry, kLinearSearchTypes> entries_;
  absl::flat_hash_map<absl::string_view, uint32_t> index_;
};

absl::Status CheckRule(const EntityRule& rule, absl::string_view where) {
  if (!InRange(rule.action, kActionNames)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": action ", static_cast<int>(rule.action), " is out of range"));
  }
  if (!InRange(rule.op, kOperatorNames)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": operator ", static_cast<int>(rule.op), " is out of range"));
  }
  return absl::OkStatus();
}

absl::Status CheckType(absl::string_view entity_type, absl::string_view where) {
  if (IsValidEntityType(entity_type)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(where, ": entity type '", Printable(entity_type),
                                                 "' is not [A-Z][A-Z0-9_]* of 1 to ",
                                                 kMaxEntityTypeBytes, " bytes"));
}

absl::Status CheckProjectId(absl::string_view project_id) {
  if (project_id.empty() || project_id.size() > kMaxProjectIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("project id must be 1 to ", kMaxProjectIdBytes,
                                                   " bytes; got ", project_id.size()));
  }
  return absl::OkStatus();
}

absl::Status CheckMasterKey(absl::string_view master_key) {
  if (master_key.size() < PseudonymKeys::kMinMasterKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("pseudonym master key must be at least ",
                                                   PseudonymKeys::kMinMasterKeyBytes,
                                                   " bytes; got ", master_key.size()));
  }
  return absl::OkStatus();
}

// Adds `report` (of one text) to `total` (of its request).
void Merge(const ContentReport& report, ContentReport& total) {
  total.blocked = total.blocked || report.blocked;
  for (const std::string& type : report.blocking_types) {
    auto at = std::lower_bound(total.blocking_types.begin(), total.blocking_types.end(), type);
    if (at == total.blocking_types.end() || *at != type) total.blocking_types.insert(at, type);
  }
  for (const auto& [type, count] : report.counts) total.counts[type] += count;
  total.data_class = std::max(total.data_class, report.data_class);
}

}  // namespace

absl::StatusOr<Operator> OperatorByName(absl::string_view name) {
  ASSIGN_OR_RETURN(const size_t i, IndexByName(kOperatorNames, "operator", name));
  return static_cast<Operator>(i);
}

absl::string_view OperatorName(Operator op) {
  return InRange(op, kOperatorNames) ? kOperatorNames[static_cast<size_t>(op)] : "unknown";
}

absl::StatusOr<Action> ActionByName(absl::string_view name) {
  ASSIGN_OR_RETURN(const size_t i, IndexByName(kActionNames, "action", name));
  return static_cast<Action>(i);
}

absl::string_view ActionName(Action action) {
  return InRange(action, kActionNames) ? kActionNames[static_cast<size_t>(action)] : "unknown";
}

absl::StatusOr<DataClass> DataClassByName(absl::string_view name) {
  if (std::optional<DataClass> c = ParseDataClass(name); c.has_value()) return *c;
  return absl::InvalidArgumentError(absl::StrCat("unknown data class '", Printable(name),
                                                 "'; expected one of public, internal, pii, phi"));
}

bool IsDataClass(DataClass c) { return DataClassName(c) != "unknown"; }

DataClass DefaultDataClass(absl::string_view entity_type) {
  static const auto* const kClasses = new absl::flat_hash_map<absl::string_view, DataClass>{
      {"US_SSN", DataClass::kPii},
      {"US_ITIN", DataClass::kPii},
      {"CREDIT_CARD", DataClass::kPii},
      {"IBAN_CODE", DataClass::kPii},
      {"EMAIL_ADDRESS", DataClass::kPii},
      {"PHONE_NUMBER", DataClass::kPii},
      {"IP_ADDRESS", DataClass::kPii},
      {"UK_NHS", DataClass::kPii},
      {"UK_NINO", DataClass::kPii},
      {"ES_NIF", DataClass::kPii},
      {"ES_NIE", DataClass::kPii},
      {"IT_FISCAL_CODE", DataClass::kPii},
      {"PL_PESEL", DataClass::kPii},
      {"FI_PERSONAL_IDENTITY_CODE", DataClass::kPii},
      {"SE_PERSONAL_IDENTITY_NUMBER", DataClass::kPii},
      {"NL_BSN", DataClass::kPii},
      {"FR_NIR", DataClass::kPii},
      {"DE_TAX_ID", DataClass::kPii},
      {"DE_HEALTH_INSURANCE_NUMBER", DataClass::kPii},
      {"BE_NATIONAL_NUMBER", DataClass::kPii},
      {"IE_PPSN", DataClass::kPii},
      {"DK_CPR", DataClass::kPii},
      {"AT_SOCIAL_INSURANCE_NUMBER", DataClass::kPii},
      {"PT_TAX_ID", DataClass::kPii},
      {"IDENTITY_DOCUMENT_MRZ", DataClass::kPii},
      {"EU_VAT_NUMBER", DataClass::kPii},
      {"CRYPTO", DataClass::kPii},
      {"MEDICAL_LICENSE", DataClass::kPhi},
      {"POLICY_SUITE_KEY", DataClass::kInternal},
      {"OPENAI_API_KEY", DataClass::kInternal},
      {"AWS_ACCESS_KEY", DataClass::kInternal},
      {"GITHUB_TOKEN", DataClass::kInternal},
      {"SLACK_TOKEN", DataClass::kInternal},
      {"JWT", DataClass::kInternal},
      {"GOOGLE_API_KEY", DataClass::kInternal},
      {"STRIPE_API_KEY", DataClass::kInternal},
      {"GITLAB_TOKEN", DataClass::kInternal},
      {"HUGGINGFACE_TOKEN", DataClass::kInternal},
      {"NPM_TOKEN", DataClass::kInternal},
      {"SENDGRID_API_KEY", DataClass::kInternal},
      {"AZURE_STORAGE_KEY", DataClass::kInternal},
      {"GROQ_API_KEY", DataClass::kInternal},
      {"XAI_API_KEY", DataClass::kInternal},
      {"GOOGLE_OAUTH_CLIENT_SECRET", DataClass::kInternal},
      {"GOOGLE_OAUTH_TOKEN", DataClass::kInternal},
      {"PYPI_TOKEN", DataClass::kInternal},
      {"DOCKER_HUB_TOKEN", DataClass::kInternal},
      {"WEBHOOK_SIGNING_SECRET", DataClass::kInternal},
      {"TELEGRAM_BOT_TOKEN", DataClass::kInternal},
      {"SLACK_WEBHOOK_URL", DataClass::kInternal},
      {"AZURE_SHARED_ACCESS_KEY", DataClass::kInternal},
      {"AZURE_SAS_TOKEN", DataClass::kInternal},
      {"PERPLEXITY_API_KEY", DataClass::kInternal},
      {"REPLICATE_API_TOKEN", DataClass::kInternal},
      {"LANGSMITH_API_KEY", DataClass::kInternal},
      {"DATABRICKS_TOKEN", DataClass::kInternal},
      {"ATLASSIAN_API_TOKEN", DataClass::kInternal},
      {"VAULT_TOKEN", DataClass::kInternal},
      {"AZURE_CLIENT_SECRET", DataClass::kInternal},
      {"DIGITALOCEAN_TOKEN", DataClass::kInternal},
      {"POSTMAN_API_KEY", DataClass::kInternal},
      {"GRAFANA_TOKEN", DataClass::kInternal},
      {"DISCORD_BOT_TOKEN", DataClass::kInternal},
      {"DISCORD_WEBHOOK_URL", DataClass::kInternal},
      {"SECRET", DataClass::kInternal},
      {"PRIVATE_KEY", DataClass::kInternal},
      {"URL_CREDENTIALS", DataClass::kInternal},
  };
  auto it = kClasses->find(entity_type);
  return it != kClasses->end() ? it->second : DataClass::kPii;
}

const EntityRule& AnonymizationPolicy::RuleFor(absl::string_view entity_type) const {
  auto it = rules.find(entity_type);
  return it != rules.end() ? it->second : default_rule;
}

DataClass AnonymizationPolicy::ClassOf(absl::string_view entity_type) const {
  auto it = classes.find(entity_type);
  return it != classes.end() ? it->second : DefaultDataClass(entity_type);
}

absl::Status ValidatePolicy(const AnonymizationPolicy& policy) {
  for (const auto& [type, rule] : policy.rules) {
    RETURN_IF_ERROR(CheckType(type, "rules"));
    RETURN_IF_ERROR(CheckRule(rule, absl::StrCat("rules[", type, "]")));
  }
  RETURN_IF_ERROR(CheckRule(policy.default_rule, "default_rule"));
  for (const auto& [type, data_class] : policy.classes) {
    RETURN_IF_ERROR(CheckType(type, "classes"));
    if (!IsDataClass(data_class)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "classes[", type, "]: data class ", static_cast<int>(data_class), " is out of range"));
    }
  }
  if (!IsDataClass(policy.base_class)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "base_class: data class ", static_cast<int>(policy.base_class), " is out of range"));
  }
  return absl::OkStatus();
}

std::shared_ptr<const PseudonymKey> PseudonymKey::FromMaster(const crypto::HmacSha256& master,
                                                             absl::string_view project_id) {
  const std::string project_key = master.Mac(
      absl::StrCat(absl::string_view(kProjectKeyLabel, sizeof(kProjectKeyLabel)), project_id));
  return std::shared_ptr<const PseudonymKey>(new PseudonymKey(project_key));
}

absl::StatusOr<std::shared_ptr<const PseudonymKey>> PseudonymKey::Derive(
    absl::string_view master_key, absl::string_view project_id) {
  RETURN_IF_ERROR(CheckMasterKey(master_key));
  RETURN_IF_ERROR(CheckProjectId(project_id));
  return FromMaster(crypto::HmacSha256(master_key), project_id);
}

std::string PseudonymKey::Pseudonym(absl::string_view entity_type, absl::string_view value) const {
  std::string out;
  AppendPseudonym(entity_type, value, out);
  return out;
}

void PseudonymKey::AppendPseudonym(absl::string_view entity_type, absl::string_view value,
                                   std::string& out) const {
  // The MAC input is built in `out` itself, past its end, then replaced by the pseudonym.
  const size_t start = out.size();
  out.append(entity_type.data(), entity_type.size());
  out.push_back('\0');
  out.append(value.data(), value.size());
  const std::array<char, crypto::kSha256Size> digest =
      mac_.MacDigest(absl::string_view(out).substr(start));
  out.resize(start);
  out.push_back('<');
  out.append(entity_type.data(), entity_type.size());
  out.push_back('_');
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < kHexChars / 2; ++i) {
    const auto byte = static_cast<unsigned char>(digest[i]);
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 0xf]);
  }
  out.push_back('>');
}

absl::StatusOr<std::unique_ptr<PseudonymKeys>> PseudonymKeys::Create(absl::string_view master_key) {
  RETURN_IF_ERROR(CheckMasterKey(master_key));
  return std::unique_ptr<PseudonymKeys>(new PseudonymKeys(master_key));
}

absl::StatusOr<std::shared_ptr<const PseudonymKey>> PseudonymKeys::ForProject(
    absl::string_view project_id) {
  RETURN_IF_ERROR(CheckProjectId(project_id));
  {
    absl::ReaderMutexLock lock(&mu_);
    if (auto it = cache_.find(project_id); it != cache_.end()) return it->second;
  }
  std::shared_ptr<const PseudonymKey> key = PseudonymKey::FromMaster(master_, project_id);
  absl::MutexLock lock(&mu_);
  if (cache_.size() >= kMaxCachedProjects) cache_.clear();
  cache_.emplace(project_id, key);
  return key;
}

PlaceholderMapping::PlaceholderMapping(const PlaceholderMapping& other)
    : entries_(other.entries_), last_number_(other.last_number_) {
  for (const PlaceholderEntry& entry : entries_) Index(entry);
}

PlaceholderMapping& PlaceholderMapping::operator=(const PlaceholderMapping& other) {
  if (this != &other) *this = PlaceholderMapping(other);
  return *this;
}

bool PlaceholderMapping::Index(const PlaceholderEntry& entry) {
  if (!by_placeholder_.emplace(entry.placeholder, &entry).second) return false;
  if (!by_value_
           .emplace(
               std::make_pair(absl::string_view(entry.entity_type), absl::string_view(entry.value)),
               &entry)
           .second) {
    by_placeholder_.erase(entry.placeholder);
    return false;
  }
  return true;
}

absl::StatusOr<PlaceholderMapping> PlaceholderMapping::FromEntries(
    std::vector<PlaceholderEntry> entries) {
  PlaceholderMapping mapping;
  for (size_t i = 0; i < entries.size(); ++i) {
    PlaceholderEntry& entry = entries[i];
    absl::string_view type;
    int64_t number = 0;
    if (!ParsePlaceholder(entry.placeholder, type, number)) {
      return absl::InvalidArgumentError(absl::StrCat("placeholders[", i, "]: '",
                                                     Printable(entry.placeholder),
                                                     "' is not a placeholder <TYPE_n>"));
    }
    if (type != entry.entity_type) {
      return absl::InvalidArgumentError(absl::StrCat("placeholders[", i, "]: ", entry.placeholder,
                                                     " is not of type '",
                                                     Printable(entry.entity_type), "'"));
    }
    if (mapping.by_placeholder_.contains(entry.placeholder)) {
      return absl::InvalidArgumentError(
          absl::StrCat("placeholders[", i, "]: ", entry.placeholder, " is listed twice"));
    }
    if (mapping.by_value_.contains(std::make_pair(type, absl::string_view(entry.value)))) {
      return absl::InvalidArgumentError(absl::StrCat("placeholders[", i, "]: ", entry.placeholder,
                                                     " stands for a value listed before"));
    }
    int64_t& last = mapping.last_number_[type];
    last = std::max(last, number);
    mapping.Index(mapping.entries_.emplace_back(std::move(entry)));
  }
  return mapping;
}

const std::string& PlaceholderMapping::PlaceholderFor(absl::string_view entity_type,
                                                      absl::string_view value) {
  if (auto it = by_value_.find(std::make_pair(entity_type, value)); it != by_value_.end()) {
    return it->second->placeholder;
  }
  auto last = last_number_.find(entity_type);
  if (last == last_number_.end()) last = last_number_.emplace(entity_type, 0).first;
  const PlaceholderEntry& entry = entries_.emplace_back(PlaceholderEntry{
      .placeholder = absl::StrCat("<", entity_type, "_", ++last->second, ">"),
      .entity_type = std::string(entity_type),
      .value = std::string(value),
  });
  Index(entry);
  return entry.placeholder;
}

void PlaceholderMapping::SkipNumbersUsedIn(absl::string_view text) {
  for (size_t open = text.find('<'); open != absl::string_view::npos;
       open = text.find('<', open + 1)) {
    const size_t limit = std::min(text.size(), open + kMaxPlaceholderBytes);
    size_t close = open + 1;
    while (close < limit &&
           (absl::ascii_isupper(static_cast<unsigned char>(text[close])) ||
            absl::ascii_isdigit(static_cast<unsigned char>(text[close])) || text[close] == '_')) {
      ++close;
    }
    if (close >= limit || text[close] != '>') continue;
    absl::string_view type;
    int64_t number = 0;
    if (!ParsePlaceholder(text.substr(open, close + 1 - open), type, number)) continue;
    int64_t& last = last_number_[std::string(type)];
    last = std::max(last, number);
  }
}

const std::string* PlaceholderMapping::ValueOf(absl::string_view placeholder) const {
  auto it = by_placeholder_.find(placeholder);
  return it != by_placeholder_.end() ? &it->second->value : nullptr;
}

absl::StatusOr<std::string> Restore(absl::string_view text, const PlaceholderMapping& mapping,
                                    size_t max_bytes) {
  const absl::Status too_long = absl::InvalidArgumentError(
      absl::StrCat("text: restored, it would be more than ", max_bytes, " bytes"));
  if (text.size() > max_bytes) return too_long;
  if (mapping.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t copied = 0;  // text[0, copied) is in `out`.
  size_t from = 0;
  while (true) {
    const size_t open = text.find('<', from);
    if (open == absl::string_view::npos) break;
    size_t close = open + 1;
    const size_t limit = std::min(text.size(), open + kMaxPlaceholderBytes);
    while (close < limit &&
           (absl::ascii_isupper(static_cast<unsigned char>(text[close])) ||
            absl::ascii_isdigit(static_cast<unsigned char>(text[close])) || text[close] == '_')) {
      ++close;
    }
    if (close < limit && text[close] == '>') {
      if (const std::string* value = mapping.ValueOf(text.substr(open, close + 1 - open))) {
        // What is copied so far, the value, and the rest of the text at least.
        if (out.size() + (open - copied) + value->size() + (text.size() - close - 1) > max_bytes) {
          return too_long;
        }
        out.append(text.data() + copied, open - copied);
        out.append(*value);
        copied = close + 1;
      }
      from = close + 1;
    } else {
      from = std::max(open + 1, close);
    }
  }
  out.append(text.data() + copied, text.size() - copied);
  return out;
}

absl::StatusOr<AnonymizedText> Anonymize(absl::string_view text, absl::Span<const Finding> findings,
                                         const AnonymizationPolicy& policy,
                                         RequestContext& context) {
  // Everything that can fail is checked before anything changes.
  TypeTable types(policy);
  std::vector<uint32_t> type_of(findings.size());
  size_t previous_end = 0;
  for (size_t i = 0; i < findings.size(); ++i) {
    const Finding& f = findings[i];
    type_of[i] = types.IndexOf(f.entity_type);
    if (!types[type_of[i]].valid) {
      RETURN_IF_ERROR(CheckType(f.entity_type, absl::StrCat("finding ", i)));
    }
    const auto where = [&] { return absl::StrCat("finding ", i, " (", f.entity_type, ") "); };
    if (f.begin >= f.end) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "[", f.begin, ", ", f.end, ") is empty"));
    }
    if (f.end > text.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "ends at byte ", f.end, ", past the text's ", text.size()));
    }
    if (i > 0 && f.begin < previous_end) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "begins at byte ", f.begin, ", before finding ", i - 1, " ends at ",
                       previous_end, ": findings must be sorted and disjoint"));
    }
    if (IsContinuationByte(text[f.begin]) ||
        (f.end < text.size() && IsContinuationByte(text[f.end]))) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "[", f.begin, ", ", f.end, ") splits a UTF-8 character"));
    }
    previous_end = f.end;
    const EntityRule& rule = *types[type_of[i]].rule;
    if (rule.action == Action::kRedact && rule.op == Operator::kKeyedHash &&
        context.pseudonym_key_ == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat("the policy hashes ", f.entity_type,
                                                        " but the request has no pseudonym key"));
    }
  }

  context.placeholders_.SkipNumbersUsedIn(text);
  AnonymizedText result;
  std::string& out = result.text;
  out.reserve(text.size() + findings.size() * 24);
  result.findings.reserve(findings.size());
  size_t copied = 0;
  for (size_t i = 0; i < findings.size(); ++i) {
    const Finding& f = findings[i];
    TypeTable::Entry& type = types[type_of[i]];
    ++type.count;
    out.append(text.data() + copied, f.begin - copied);
    copied = f.end;
    const absl::string_view value = text.substr(f.begin, f.end - f.begin);
    AppliedFinding& applied = result.findings.emplace_back(AppliedFinding{
        .entity_type = f.entity_type,
        .action = type.rule->action,
        .op = std::nullopt,
        .begin = out.size(),
        .end = 0,
    });
    switch (type.rule->action) {
      case Action::kAllow:
        out.append(value.data(), value.size());
        break;
      case Action::kBlock:
        applied.op = Operator::kRedact;
        AppendRedacted(f.entity_type, out);
        break;
      case Action::kRedact:
        applied.op = type.rule->op;
        switch (type.rule->op) {
          case Operator::kMask:
            AppendMasked(value, out);
            break;
          case Operator::kReplaceWithType:
            AppendTypeName(f.entity_type, out);
            break;
          case Operator::kKeyedHash:
            context.pseudonym_key_->AppendPseudonym(f.entity_type, value, out);
            break;
          case Operator::kPlaceholder:
            out.append(context.placeholders_.PlaceholderFor(f.entity_type, value));
            break;
          case Operator::kRedact:
          default:  // Out of range despite ValidatePolicy: fail closed.
            applied.op = Operator::kRedact;
            AppendRedacted(f.entity_type, out);
        }
        break;
      default:  // Out of range despite ValidatePolicy: fail closed.
        applied.action = Action::kBlock;
        applied.op = Operator::kRedact;
        AppendRedacted(f.entity_type, out);
    }
    applied.end = out.size();
  }
  out.append(text.data() + copied, text.size() - copied);

  ContentReport& report = result.report;
  report.data_class = policy.base_class;
  for (const TypeTable::Entry& type : types.entries()) {
    report.counts.emplace(type.entity_type, type.count);
    report.data_class = std::max(report.data_class, type.data_class);
    if (type.rule->action != Action::kRedact && type.rule->action != Action::kAllow) {
      report.blocked = true;
      report.blocking_types.emplace_back(type.entity_type);
    }
  }
  std::sort(report.blocking_types.begin(), report.blocking_types.end());
  Merge(report, context.report_);
  ++context.texts_;
  return result;
}

size_t MaxRestoreRequestBytes(size_t max_request_bytes, size_t entity_types,
                              size_t longest_entity_type) {
  constexpr size_t kTagAndLength = 1 + 5;  // A field's tag and (at most) a varint32 length.
  const size_t entries = 256 * entity_types + max_request_bytes / 2;
  const size_t number_digits = absl::StrCat(entries).size();
  // The entry's own framing in the mapping; "<TYPE_N>" in its placeholder; the type name;
  // the value's framing (the value's bytes are counted with max_request_bytes).
  const size_t per_entry = kTagAndLength + (2 + 3 + longest_entity_type + number_digits) +
                           (2 + longest_entity_type) + kTagAndLength;
  return kTagAndLength + max_request_bytes +  // The text.
         max_request_bytes + entries * per_entry;
}

}  // namespace policy::pii
