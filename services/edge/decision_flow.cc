#include "services/edge/decision_flow.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/client/channel.h"
#include "common/crypto/crypto.h"
#include "common/data_class/data_class_proto.h"
#include "common/ids/model_api.h"
#include "common/ledger/ledger_record.h"
#include "common/log/log.h"
#include "common/pii_rule/pii_rule_proto.h"
#include "common/proto/well_known.h"
#include "common/residency/residency_proto.h"
#include "common/status/grpc_status.h"
#include "common/status/status.h"
#include "common/text/caller_text.h"
#include "google/protobuf/arena.h"
#include "services/edge/conventions.h"
#include "services/edge/downstream_status.h"
#include "services/edge/proto_convert.h"

namespace policy::edge {
namespace {

using grpc::Status;
using grpc::StatusCode;

constexpr size_t kMaxModelBytes = 128;
constexpr absl::Duration kRefundTimeout = absl::Seconds(2);

// A decision entry's metadata: the caller's estimate, when the prompt's size raised it.
constexpr char kRequestedTokens[] = "requested_tokens";

constexpr char kHeaderAuditId[] = "x-policy-audit-id";
constexpr char kHeaderRequestId[] = "x-policy-request-id";
constexpr char kHeaderZeroDataRetention[] = "x-policy-zero-data-retention";

// A model's name, as authz names models: 1 to 128 bytes of [A-Za-z0-9._:/-].
absl::Status CheckModel(absl::string_view model) {
  if (model.empty()) return absl::InvalidArgumentError("model: required");
  if (model.size() > kMaxModelBytes) return absl::InvalidArgumentError("model: at most 128 bytes");
  for (char c : model) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-' &&
        c != ':' && c != '/') {
      return absl::InvalidArgumentError(
          "model: only letters, digits and . _ - : / are allowed in a model's name");
    }
  }
  return CheckNoSecret(model, "model");
}

// The model API a decision entry names (entries recorded before decisions named one were all
// chat completions).
absl::string_view RecordedApi(const audit::v1::Entry& entry) {
  auto it = entry.metadata().find("api");
  return it == entry.metadata().end() ? kDefaultModelApi : absl::string_view(it->second);
}

// A decision entry's metadata value `name`; empty when it has none.
std::string Recorded(const audit::v1::Entry& entry, const char* name) {
  auto it = entry.metadata().find(name);
  return it == entry.metadata().end() ? "" : it->second;
}

// The refusal of a key whose denial budget is spent, `retry_after` before it holds a unit.
Status TooManyDenials(absl::Duration retry_after) {
  return WithRetryDelay(
      EdgeStatus(WithReason(absl::ResourceExhaustedError(
                                absl::StrCat("too many denied requests for this key; retry after ",
                                             RetryAfterSeconds(retry_after), " s")),
                            kTooManyDenials)),
      retry_after);
}

authz::v1::PrincipalKind PrincipalKindOf(const keys::v1::Principal& owner) {
  return owner.type() == keys::v1::PRINCIPAL_TYPE_SERVICE_ACCOUNT
             ? authz::v1::PRINCIPAL_KIND_SERVICE_ACCOUNT
             : authz::v1::PRINCIPAL_KIND_MEMBER;
}

template <typename T>
T* New(google::protobuf::Arena* arena) {
  return google::protobuf::Arena::CreateMessage<T>(arena);
}

// The state of one call: its arena, its downstream calls' contexts and messages. Deletes
// itself when it finishes.
class Flow {
 protected:
  Flow(Downstream* downstream, google::protobuf::Arena* arena, absl::Time deadline,
       Downstream::Done done)
      : downstream_(downstream),
        arena_(arena != nullptr ? arena : &own_arena_),
        deadline_(deadline),
        done_(std::move(done)) {}
  virtual ~Flow() = default;

  // A context for one more downstream call, carrying the deadline.
  grpc::ClientContext* NewContext() {
    auto* context = google::protobuf::Arena::Create<grpc::ClientContext>(arena_);
    client::SetDeadline(*context, deadline_);
    return context;
  }

  // Asks keys about `secret`; OnKey follows with key_ filled when OK. With `verified` (keys'
  // VerifyKey answer about `secret`, obtained by the caller under the same deadline), keys is
  // not asked again: OnKey follows at once with key_ = `verified`.
  //
  // `for_usage_report`: a key that expired in the last day verifies too (keys'
  // VerifyKeyRequest.for_usage_report).
  void VerifyKey(const std::string& secret, const keys::v1::VerifyKeyResponse* verified,
                 bool for_usage_report) {
    if (verified != nullptr) {
      key_ = verified;
      return OnKey(Status::OK);
    }
    auto* verify = New<keys::v1::VerifyKeyRequest>(arena_);
    verify->set_secret(secret);
    verify->set_for_usage_report(for_usage_report);
    auto* answer = New<keys::v1::VerifyKeyResponse>(arena_);
    key_ = answer;
    downstream_->VerifyKey(NewContext(), verify, answer, [this](Status s) { OnKey(std::move(s)); });
  }
  // The key's checks and what follows them, whoever verified it.
  virtual void OnKey(Status status) = 0;

  // Runs once, just before the flow answers with `status`.
  virtual void BeforeAnswer(const Status& status) { (void)status; }
  // What the caller is answered when the flow ends with `status`: `status` itself unless a
  // flow says otherwise.
  virtual Status Answered(Status status) const { return status; }

  void Finish(Status status) {
    BeforeAnswer(status);
    status = Answered(std::move(status));
    Downstream::Done done = std::move(done_);
    delete this;
    done(std::move(status));
  }

  Downstream* const downstream_;
  google::protobuf::Arena own_arena_;  // When the response has no arena.
  google::protobuf::Arena* const arena_;
  const absl::Time deadline_;
  const keys::v1::VerifyKeyResponse* key_ = nullptr;

 private:
  Downstream::Done done_;
};

class DecideFlow final : public Flow {
 public:
  DecideFlow(Downstream* downstream, const FlowOptions* options, const v1::DecideRequest* request,
             v1::DecideResponse* response, absl::Time deadline, Downstream::Done done,
             const keys::v1::VerifyKeyResponse* verified_key)
      : Flow(downstream, response->GetArena(), deadline, std::move(done)),
        options_(options),
        request_(request),
        response_(response),
        verified_key_(verified_key) {}

  void Start() {
    if (absl::Status s = ValidateDecideRequest(*request_); !s.ok()) return Finish(EdgeStatus(s));
    request_id_ = request_->request_id();
    if (request_id_.empty()) {
      absl::StatusOr<std::string> random = crypto::RandomBytes(16);
      if (!random.ok()) return Finish(Status(StatusCode::UNAVAILABLE, "no request id drawn"));
      request_id_ = absl::StrCat("edge-", absl::BytesToHexString(*random));
    }
    response_->set_request_id(request_id_);
    response_->set_api(std::string(Api()));
    size_t prompt_bytes = 0;
    for (const pii::v1::ChatMessage& m : request_->messages()) prompt_bytes += m.content().size();
    estimated_tokens_ = std::max(request_->estimated_tokens(), PromptTokens(prompt_bytes));
    response_->set_estimated_tokens(estimated_tokens_);
    VerifyKey(request_->api_key(), verified_key_, /*for_usage_report=*/false);
  }

 private:
  void OnKey(Status s) override {
    if (!s.ok()) return Finish(KeyFailure(s, deadline_));
    const keys::v1::Key& key = key_->key();
    // Refused at the door: no decision, so nothing reserved and nothing recorded.
    if (Status refused = CheckDenialBudget(*options_, key); !refused.ok()) {
      return Finish(std::move(refused));
    }
    if (key.kind() == keys::v1::KEY_KIND_ADMIN || key.project().empty()) {
      return Deny("KEY_SCOPE", "admin keys cannot be used for model calls");
    }
    bool scoped = false;
    for (const std::string& scope : key.scopes()) scoped |= scope == Api();
    if (!scoped) return Deny("KEY_SCOPE", absl::StrCat("the key does not grant ", Api()));
    auto* check = New<authz::v1::CheckRequest>(arena_);
    check->mutable_principal()->set_kind(PrincipalKindOf(key.owner()));
    check->mutable_principal()->set_id(key.owner().id());
    check->set_project(key.project());
    check->set_action(std::string(Api()));
    check->set_model(request_->model());
    check->set_source_ip(request_->source_ip());
    check->set_estimated_tokens(estimated_tokens_);
    check->set_residency(request_->residency());
    check_ = New<authz::v1::CheckResponse>(arena_);

    // The project's rules as last seen; the check states those in force.
    if (options_->known_pii_rules != nullptr) {
      known_rules_ = options_->known_pii_rules->Find(key.project());
    }
    pending_.store(2, std::memory_order_relaxed);
    downstream_->Check(NewContext(), check, check_, [this](Status s) {
      check_status_ = std::move(s);
      Joined();
    });
    Redact(known_rules_ != nullptr ? *known_rules_ : authz::v1::PiiPolicy::default_instance());
  }

  // Asks pii to redact the messages under the deployment's policy with `project_rules`; Joined
  // follows.
  void Redact(const authz::v1::PiiPolicy& project_rules) {
    auto* redact = New<pii::v1::RedactRequest>(arena_);
    *redact->mutable_messages() = request_->messages();
    first_project_rule_ = ApplyProjectRules(options_->redaction, project_rules,
                                            options_->forwards_as_sent, redact->mutable_policy());
    redact->set_project_id(key_->key().project());
    redact->set_return_mapping(request_->return_mapping());
    redact->set_omit_findings(true);  // Only the report's counts are used.
    redacted_with_ = &project_rules;
    redacted_under_ = &redact->policy();
    redaction_ = New<pii::v1::RedactResponse>(arena_);
    downstream_->Redact(NewContext(), redact, redaction_, [this](Status s) {
      redact_status_ = std::move(s);
      Joined();
    });
  }

  // Runs once both the check and the redaction have answered.
  void Joined() {
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (!check_status_.ok()) return Finish(DownstreamFailure("authz", check_status_, deadline_));
    // The project's rules changed since they were last seen (or were never seen): the
    // redaction, whatever it answered, is done again with those the check states.
    if (!SameRules(check_->pii(), *redacted_with_)) {
      if (options_->known_pii_rules != nullptr) {
        options_->known_pii_rules->Remember(key_->key().project(), check_->pii());
      }
      if (options_->repeated_redactions != nullptr) options_->repeated_redactions->Increment();
      pending_.store(1, std::memory_order_relaxed);
      return Redact(check_->pii());
    }
    if (!redact_status_.ok()) {
      const bool project_rule =
          RefusesProjectRule(redact_status_.error_message(), *redacted_under_, first_project_rule_);
      Status failure = RedactFailure(redact_status_, deadline_, project_rule);
      if (project_rule && failure.error_code() == StatusCode::FAILED_PRECONDITION &&
          options_->project_rules_refused != nullptr) {
        options_->project_rules_refused->Increment();
      }
      return Finish(std::move(failure));
    }
    const pii::v1::ContentReport& report = redaction_->report();
    for (const auto& [type, count] : report.counts())
      (*response_->mutable_pii_counts())[type] = count;
    response_->set_data_class(DataClassToProto(DataClassOfRequest()));
    if (check_->verdict() != authz::v1::VERDICT_ALLOW) {
      if (check_->has_retry_after()) *response_->mutable_retry_after() = check_->retry_after();
      if (check_->reason() == "RESIDENCY_NOT_ALLOWED") {
        return Deny(
            check_->reason(),
            absl::StrCat("the request requires ", ResidencyProtoName(request_->residency()),
                         "; the project's data policy keeps its calls in ",
                         ResidencyProtoName(check_->residency()), " (rule project.residency)"));
      }
      return Deny(check_->reason().empty() ? "PERMISSION_DENIED" : check_->reason(),
                  absl::StrCat("refused by rule ", check_->rule()));
    }
    Admitted();
  }

  // The model API the request calls.
  absl::string_view Api() const {
    return request_->api().empty() ? kDefaultModelApi : absl::string_view(request_->api());
  }

  // The class of the request's data: the more sensitive of what pii found (its report, under
  // a base class of PUBLIC; a report that states none, or an unknown class, is taken as the
  // most sensitive) and the project's data class (INTERNAL when authz states none).
  DataClass DataClassOfRequest() const {
    const DataClass found =
        DataClassFromProto(redaction_->report().data_class(), DataClass::kPhi, "data_class")
            .value_or(DataClass::kPhi);
    const DataClass project =
        DataClassFromProto(check_->data_class(), DataClass::kInternal, "data_class")
            .value_or(DataClass::kPhi);
    return MoreSensitive(found, project);
  }

  // What follows authz's ALLOW (or, for a retry, an earlier attempt's recorded ALLOW).
  void Admitted() {
    const pii::v1::ContentReport& report = redaction_->report();
    if (report.blocked()) {
      return Deny("PII_BLOCKED", absl::StrCat("the messages hold data the policy blocks: ",
                                              absl::StrJoin(report.blocking_types(), ", ")));
    }
    if (Status s = CheckAnswerSize(); !s.ok()) return Finish(std::move(s));
    auto* route = New<region::v1::RouteRequest>(arena_);
    route->set_residency(RequiredResidency());
    route->set_data_class(response_->data_class());
    route->set_model(request_->model());
    route->set_preference(request_->preference());
    route->set_require_zero_data_retention(check_->zero_data_retention());
    route->set_request_id(request_id_);
    // A retry of a recorded ALLOW goes where it went, or nowhere.
    route->set_endpoint_id(recorded_endpoint_);
    route_ = New<region::v1::RouteResponse>(arena_);
    downstream_->Route(NewContext(), route, route_, [this](Status s) { OnRoute(std::move(s)); });
  }

  // Where the request must be routed: the residency it requires, or else the one its
  // project's data policy keeps its calls in (authz refused any other).
  region::v1::Residency RequiredResidency() const {
    const region::v1::Residency asked = request_->residency();
    if (asked != region::v1::RESIDENCY_UNSPECIFIED && asked != region::v1::RESIDENCY_GLOBAL) {
      return asked;
    }
    return check_ != nullptr ? check_->residency() : region::v1::RESIDENCY_UNSPECIFIED;
  }

  // RequiredResidency as an ALLOW's ledger entry records it: its name, empty for anywhere.
  std::string RequiredResidencyRecorded() const {
    const absl::string_view required = ResidencyProtoName(RequiredResidency());
    return required == "global" ? "" : std::string(required);
  }

  // OK when an ALLOW would fit FlowOptions::max_answer_bytes; else INVALID_ARGUMENT naming
  // return_mapping when the mapping is asked for, messages otherwise.
  Status CheckAnswerSize() const {
    // Each element's tag and length at most, and what else an ALLOW carries (endpoint,
    // headers, ids, counts) at most.
    constexpr size_t kFieldOverhead = 6;
    constexpr size_t kRestOfAnswer = 16 << 10;
    size_t messages = 0;
    for (const pii::v1::ChatMessage& m : redaction_->messages()) {
      messages += m.ByteSizeLong() + kFieldOverhead;
    }
    size_t mapping = 0;
    if (request_->return_mapping()) {
      for (const pii::v1::PlaceholderEntry& e : redaction_->mapping()) {
        mapping += e.ByteSizeLong() + kFieldOverhead;
      }
    }
    const size_t answer = messages + mapping + kRestOfAnswer;
    const size_t limit = options_->max_answer_bytes;
    if (answer <= limit) return Status::OK;
    if (request_->return_mapping() && messages + kRestOfAnswer <= limit) {
      return Status(
          StatusCode::INVALID_ARGUMENT,
          absl::StrCat("return_mapping: the answer would be about ", answer,
                       " bytes with the placeholder mapping (", mapping,
                       "), more than the edge's max_answer_bytes (", limit,
                       "), gRPC clients' default receive limit; ask without return_mapping or "
                       "send fewer values at once"));
    }
    return Status(StatusCode::INVALID_ARGUMENT,
                  absl::StrCat("messages: the redacted messages would make an answer of about ",
                               answer, " bytes, more than the edge's max_answer_bytes (", limit,
                               "), gRPC clients' default receive limit; send a shorter prompt"));
  }

  void OnRoute(Status s) {
    if (!s.ok()) return Finish(DownstreamFailure("region", s, deadline_));
    if (!recorded_endpoint_.empty()) {
      // The ledger holds this request's ALLOW: it cannot be denied, nor routed elsewhere.
      if (route_->decision() != region::v1::DECISION_ROUTED) {
        return Finish(Status(
            StatusCode::FAILED_PRECONDITION,
            absl::StrCat("request_id: the decision under this id routed to ", recorded_endpoint_,
                         ", which no longer takes the request; a new request "
                         "needs a new id")));
      }
      route_->set_failover(Recorded(earlier_->entry(), "failover") == "true");
    } else if (route_->decision() != region::v1::DECISION_ROUTED) {
      // region's reason leads with the code the response names already.
      return Deny("NO_COMPLIANT_REGION",
                  std::string(absl::StripPrefix(route_->reason(), "NO_COMPLIANT_REGION: ")));
    }
    Record(/*allow=*/true);
  }

  void Deny(std::string reason, std::string message) {
    response_->set_verdict(v1::VERDICT_DENY);
    response_->set_reason(std::move(reason));
    response_->set_message(std::move(message));
    Record(/*allow=*/false);
  }

  // Appends the decision to the ledger of the key's project and environment; answers once it
  // is durable.
  // "TYPE=N" of each type found whose values the redaction left as sent (their rule allows
  // them), sorted.
  std::vector<std::string> AllowedPii() const {
    std::vector<std::string> allowed;
    for (const auto& [type, count] : response_->pii_counts()) {
      if (RuleFor(*redacted_under_, type).action() == pii::v1::ACTION_ALLOW) {
        allowed.push_back(absl::StrCat(type, "=", count));
      }
    }
    std::sort(allowed.begin(), allowed.end());
    return allowed;
  }

  void Record(bool allow) {
    if (allow && !recorded_endpoint_.empty()) {
      // A retry answers with the messages redacted now: it may not send as is what its
      // recorded ALLOW says was redacted (the project's rules let more through since).
      absl::flat_hash_set<std::string> sent_before;
      for (absl::string_view item :
           absl::StrSplit(Recorded(earlier_->entry(), "pii_allowed"), ',', absl::SkipEmpty())) {
        sent_before.insert(std::string(item.substr(0, item.find('='))));
      }
      for (const std::string& item : AllowedPii()) {
        const std::string type = item.substr(0, item.find('='));
        if (!sent_before.contains(type)) {
          return Finish(
              Status(StatusCode::FAILED_PRECONDITION,
                     absl::StrCat("request_id: the decision under this id redacted ", type,
                                  ", which the project's PII rules now let through as sent; a new "
                                  "request needs a new id")));
        }
      }
    }
    const keys::v1::Key& key = key_->key();
    auto* append = New<audit::v1::AppendRequest>(arena_);
    audit::v1::EntryInput* entry = append->mutable_entry();
    entry->set_action(allow ? audit::v1::ACTION_DECISION_ALLOW : audit::v1::ACTION_DECISION_DENY);
    entry->set_actor(key.owner().id());
    entry->set_project(key.project());
    if (!key.project().empty()) entry->set_environment(EnvironmentName(key.environment()));
    entry->set_model(request_->model());
    entry->set_tokens(estimated_tokens_);
    entry->set_outcome(allow ? audit::v1::OUTCOME_SUCCESS : audit::v1::OUTCOME_BLOCKED);
    entry->set_request_id(DecisionEntryId(request_id_));
    entry->set_content_hash(ContentHash());
    auto& metadata = *entry->mutable_metadata();
    metadata["key_id"] = key.key_id();
    metadata["api"] = std::string(Api());
    // The caller's own estimate, when the prompt's size raised it: a usage report may name it.
    if (estimated_tokens_ != request_->estimated_tokens()) {
      metadata[kRequestedTokens] = absl::StrCat(request_->estimated_tokens());
    }
    if (!allow) metadata["reason"] = response_->reason();
    if (allow && !recorded_endpoint_.empty()) {
      // A retry of a recorded ALLOW, routed where it went: recorded as it was.
      for (const char* name :
           {"endpoint", "region", "residency", "data_class", "failover", "pii_allowed"}) {
        if (std::string value = Recorded(earlier_->entry(), name); !value.empty()) {
          metadata[name] = std::move(value);
        }
      }
      // An entry recorded before decisions named their API (a chat completion, as this one
      // is: RecordedApi) is recorded again as it was.
      if (Recorded(earlier_->entry(), "api").empty()) metadata.erase("api");
    } else if (allow) {
      metadata["endpoint"] = route_->endpoint().id();
      metadata["region"] = route_->endpoint().region();
      // Where the call had to stay, when anywhere would not do.
      if (std::string required = RequiredResidencyRecorded(); !required.empty()) {
        metadata["residency"] = std::move(required);
      }
      // The class it was routed under.
      metadata["data_class"] =
          std::string(DataClassProtoName(response_->data_class(), DataClass::kInternal));
      if (route_->failover()) metadata["failover"] = "true";
    }
    if (response_->pii_counts_size() > 0) {
      std::vector<std::string> counts;
      for (const auto& [type, count] : response_->pii_counts()) {
        counts.push_back(absl::StrCat(type, "=", count));
      }
      std::sort(counts.begin(), counts.end());
      metadata["pii_counts"] = absl::StrJoin(counts, ",");
    }
    // Of a new ALLOW (a retry's is recorded as it was, above), the values that go out as sent.
    if (allow && recorded_endpoint_.empty()) {
      if (const std::vector<std::string> allowed = AllowedPii(); !allowed.empty()) {
        metadata["pii_allowed"] = absl::StrJoin(allowed, ",");
      }
    }
    appended_ = New<audit::v1::AppendResponse>(arena_);
    allow_ = allow;
    downstream_->Append(NewContext(), append, appended_,
                        [this](Status s) { OnRecorded(std::move(s)); });
  }

  void OnRecorded(Status s) {
    append_status_ = s;
    // A retry that authz refused for the rate limit while the ledger holds this request id
    // for another entry: the earlier attempt's ALLOW may be that entry (its append's outcome
    // was unknown to the caller, and its reservation, kept for it, is what limits the retry).
    if (s.error_code() == StatusCode::FAILED_PRECONDITION && !allow_ && !rechecked_ &&
        check_ != nullptr && check_->verdict() != authz::v1::VERDICT_ALLOW &&
        response_->reason() == "RATE_LIMITED") {
      return LookUpEarlierDecision();
    }
    // An ALLOW the ledger holds for another entry: the earlier attempt's ALLOW, routed
    // elsewhere than this attempt (region's choice may change between attempts), may be it.
    if (s.error_code() == StatusCode::FAILED_PRECONDITION && allow_ && !rechecked_) {
      return LookUpEarlierDecision();
    }
    if (!s.ok()) return Finish(LedgerFailure(s, "request_id", deadline_));
    const std::string audit_id = AuditIdOf(appended_->entry());
    response_->set_audit_id(audit_id);
    if (allow_) {
      response_->set_verdict(v1::VERDICT_ALLOW);
      response_->mutable_messages()->Swap(redaction_->mutable_messages());
      if (request_->return_mapping())
        response_->mutable_mapping()->Swap(redaction_->mutable_mapping());
      response_->mutable_endpoint()->Swap(route_->mutable_endpoint());
      response_->set_failover(route_->failover());
      response_->set_message(route_->reason());
      auto& headers = *response_->mutable_headers();
      headers[kHeaderAuditId] = audit_id;
      headers[kHeaderRequestId] = request_id_;
      headers[kHeaderZeroDataRetention] =
          KeepsNothing(PromisesFromProto(response_->endpoint().capabilities())) ? "true" : "false";
    }
    Finish(Status::OK);
  }

  // Reads the entry the ledger holds under this request id. When it is this key's ALLOW of
  // these messages, model and tokens, the decision was made before: it goes on as allowed
  // (region routes it, and recording it again must find the same entry, which answers it as a
  // retry), rather than telling the caller its own retry is another request. Anything else
  // stays the caller's reuse of an id.
  void LookUpEarlierDecision() {
    rechecked_ = true;
    const keys::v1::Key& key = key_->key();
    auto* get = New<audit::v1::GetEntryRequest>(arena_);
    get->mutable_ledger()->set_project(key.project());
    get->mutable_ledger()->set_environment(EnvironmentName(key.environment()));
    get->set_request_id(DecisionEntryId(request_id_));
    earlier_ = New<audit::v1::GetEntryResponse>(arena_);
    downstream_->GetEntry(NewContext(), get, earlier_,
                          [this](Status s) { OnEarlierDecision(std::move(s)); });
  }

  void OnEarlierDecision(Status s) {
    if (!s.ok()) return Finish(LedgerFailure(append_status_, "request_id", deadline_));
    const audit::v1::Entry& earlier = earlier_->entry();
    auto key_id = earlier.metadata().find("key_id");
    const bool same_request =
        key_id != earlier.metadata().end() && key_id->second == key_->key().key_id() &&
        earlier.model() == request_->model() && earlier.tokens() == estimated_tokens_ &&
        earlier.content_hash() == ContentHash() && RecordedApi(earlier) == Api();
    // This request, denied under this id before (rate limited, say) and allowed now: its id
    // holds that DENY for good.
    if (same_request && earlier.action() == audit::v1::ACTION_DECISION_DENY) {
      auto reason = earlier.metadata().find("reason");
      return Finish(Status(
          StatusCode::FAILED_PRECONDITION,
          absl::StrCat("request_id: this request was denied under this id (",
                       reason != earlier.metadata().end() ? reason->second : "DENY",
                       ") and a decision is final for its id; retry it under a new request id")));
    }
    // A retry stating a residency its recorded ALLOW did not have to stay in is another
    // request, not one to send where its first attempt went. (One stating none goes where the
    // first went if that still complies: region checks it.)
    const region::v1::Residency asked = request_->residency();
    const bool states_other_residency = asked != region::v1::RESIDENCY_UNSPECIFIED &&
                                        asked != region::v1::RESIDENCY_GLOBAL &&
                                        Recorded(earlier, "residency") != ResidencyProtoName(asked);
    const bool same_decision = same_request &&
                               earlier.action() == audit::v1::ACTION_DECISION_ALLOW &&
                               !states_other_residency;
    if (!same_decision) return Finish(LedgerFailure(append_status_, "request_id", deadline_));
    recorded_endpoint_ = Recorded(earlier, "endpoint");
    response_->set_verdict(v1::VERDICT_UNSPECIFIED);
    response_->clear_reason();
    response_->clear_message();
    response_->clear_retry_after();
    appended_ = nullptr;
    append_status_ = Status::OK;
    Admitted();
  }

  // A DENY answered (recorded in the ledger) takes one unit of the key's denial budget.
  //
  // A decision that authz allowed (reserving its budget) but that is not answered ALLOW, or
  // that the ledger already held (a retry: the first attempt's reservation is the one its
  // usage report settles), gives its whole reservation back: authz is told the request never
  // reached the model (refund_request), so its request unit and its estimated tokens return.
  // Not when the ledger may have recorded it after all (its append failed with an unknown
  // outcome: a retry would find it, and give its own reservation back). Best effort, off the
  // answer's path, under a report id of this attempt's own.
  void BeforeAnswer(const Status& status) override {
    if (status.ok() && response_->verdict() == v1::VERDICT_DENY &&
        options_->denial_budget != nullptr) {
      options_->denial_budget->Denied(key_->key().key_id());
    }
    const bool reserved =
        check_ != nullptr && check_status_.ok() && check_->verdict() == authz::v1::VERDICT_ALLOW;
    const bool allowed = status.ok() && response_->verdict() == v1::VERDICT_ALLOW;
    const bool retried = status.ok() && appended_ != nullptr && appended_->duplicate();
    const bool maybe_recorded =
        appended_ != nullptr && !append_status_.ok() && !Refused(append_status_.error_code());
    if (!reserved || (allowed && !retried) || maybe_recorded) return;
    absl::StatusOr<std::string> refund_id = ledger::NewRequestId("refund:");
    if (!refund_id.ok()) return;  // No id of its own: the budget comes back as its window ends.
    struct Refund {
      grpc::ClientContext context;
      authz::v1::ReportUsageRequest request;
      authz::v1::ReportUsageResponse response;
    };
    auto* refund = new Refund;
    const keys::v1::Key& key = key_->key();
    refund->request.mutable_principal()->set_kind(PrincipalKindOf(key.owner()));
    refund->request.mutable_principal()->set_id(key.owner().id());
    refund->request.set_project(key.project());
    refund->request.set_estimated_tokens(estimated_tokens_);
    refund->request.set_actual_tokens(0);
    refund->request.set_refund_request(true);
    refund->request.set_request_id(*std::move(refund_id));
    client::SetDeadline(refund->context, absl::Now() + kRefundTimeout);
    downstream_->ReportUsage(&refund->context, &refund->request, &refund->response,
                             [refund](Status) { delete refund; });
  }

  // SHA-256 over the messages as received (role and content, each length-prefixed): the
  // ledger proves what was decided on without holding it.
  std::string ContentHash() const {
    std::string data;
    for (const pii::v1::ChatMessage& m : request_->messages()) {
      absl::StrAppend(&data, m.role().size(), ":", m.role(), m.content().size(), ":", m.content());
    }
    return crypto::Sha256(data);
  }

  const FlowOptions* const options_;
  const v1::DecideRequest* const request_;
  v1::DecideResponse* const response_;
  // keys' answer about request_->api_key() when the caller verified it; else null.
  const keys::v1::VerifyKeyResponse* const verified_key_;
  std::string request_id_;
  // The caller's estimate, raised to the prompt's PromptTokens: what is reserved and recorded.
  int64_t estimated_tokens_ = 0;
  authz::v1::CheckResponse* check_ = nullptr;
  pii::v1::RedactResponse* redaction_ = nullptr;
  // The project's rules the redaction applied: known_rules_'s, none, or the check's.
  std::shared_ptr<const authz::v1::PiiPolicy> known_rules_;
  const authz::v1::PiiPolicy* redacted_with_ = nullptr;
  int first_project_rule_ = 0;  // In the redaction's policy (ApplyProjectRules).
  const pii::v1::RedactionPolicy* redacted_under_ = nullptr;  // The redaction's policy.
  region::v1::RouteResponse* route_ = nullptr;
  audit::v1::AppendResponse* appended_ = nullptr;
  audit::v1::GetEntryResponse* earlier_ = nullptr;  // The entry a retry's id names.
  bool rechecked_ = false;                          // LookUpEarlierDecision ran.
  // The endpoint of the earlier ALLOW recorded under this request id, once
  // LookUpEarlierDecision found it the same decision; empty otherwise.
  std::string recorded_endpoint_;
  Status check_status_;
  Status append_status_;  // Of the append, once it answered.
  Status redact_status_;
  std::atomic<int> pending_{0};
  bool allow_ = false;
};

class ReportUsageFlow final : public Flow {
 public:
  ReportUsageFlow(Downstream* downstream, const v1::ReportUsageRequest* request,
                  v1::ReportUsageResponse* response, absl::Time deadline, Downstream::Done done)
      : Flow(downstream, response->GetArena(), deadline, std::move(done)),
        request_(request),
        response_(response) {}

  void Start() {
    if (absl::Status s = ValidateReportUsageRequest(*request_); !s.ok()) {
      return Finish(EdgeStatus(s));
    }
    // A call decided before its key expired may finish after: its usage is still reported
    // with that key. (After a rotation, the successor reports for the key it replaced.)
    VerifyKey(request_->api_key(), /*verified=*/nullptr, /*for_usage_report=*/true);
  }

 private:
  // A key that expired since its decision (which keys takes for a usage report) reports that
  // decision's usage and nothing else: any refusal of what it reports is answered as to a key
  // that is not valid, so that no answer tells whether a key expired or was revoked. The
  // refusal itself is logged, with the key's id, for the operator.
  Status Answered(Status status) const override {
    const bool refused = status.error_code() == StatusCode::INVALID_ARGUMENT ||
                         status.error_code() == StatusCode::FAILED_PRECONDITION ||
                         status.error_code() == StatusCode::PERMISSION_DENIED;
    if (!refused || !key_verified_ || key_->key().state() != keys::v1::KEY_STATE_EXPIRED) {
      return status;
    }
    const std::string code =
        absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
    LogInfo(
        "a usage report with an expired key refused as not valid",
        {{"key_id", key_->key().key_id()}, {"code", code}, {"refusal", status.error_message()}});
    return KeyFailure(Status(StatusCode::UNAUTHENTICATED, ""), deadline_);
  }

  void OnKey(Status s) override {
    if (!s.ok()) return Finish(KeyFailure(s, deadline_));
    key_verified_ = true;
    const keys::v1::Key& key = key_->key();
    if (key.project().empty()) {
      return Finish(Status(StatusCode::PERMISSION_DENIED, "admin keys make no model calls"));
    }
    // The decision the usage is of: what it reserved and where it routed come from the
    // ledger, not from the caller.
    auto* get = New<audit::v1::GetEntryRequest>(arena_);
    get->mutable_ledger()->set_project(key.project());
    get->mutable_ledger()->set_environment(EnvironmentName(key.environment()));
    get->set_request_id(DecisionEntryId(request_->request_id()));
    decision_ = New<audit::v1::GetEntryResponse>(arena_);
    downstream_->GetEntry(NewContext(), get, decision_,
                          [this](Status s) { OnDecision(std::move(s)); });
  }

  // Checks the usage against its decision, then reconciles, reports the outcome and records.
  void OnDecision(Status s) {
    // Another key's decision is answered as none: a usage report tells a key holder nothing of
    // the project's other keys' decisions (whether they allowed, what they reserved).
    const Status none(StatusCode::FAILED_PRECONDITION,
                      "request_id: no decision of this key was made under this id");
    if (s.error_code() == StatusCode::NOT_FOUND) return Finish(none);
    if (!s.ok()) return Finish(DependencyFailure("audit", s, deadline_));
    const keys::v1::Key& key = key_->key();
    const audit::v1::Entry& decision = decision_->entry();
    auto recorded = [&decision](const char* name) { return Recorded(decision, name); };
    // The decision's own key, or its successor: usage of a call decided during a rotation's
    // overlap may be reported with the key that replaced it.
    const std::string decided_by = recorded("key_id");
    if (decided_by != key.key_id() &&
        (key.rotated_from().empty() || decided_by != key.rotated_from())) {
      return Finish(none);
    }
    if (decision.action() != audit::v1::ACTION_DECISION_ALLOW) {
      return Finish(Status(StatusCode::FAILED_PRECONDITION,
                           "request_id: the decision under this id did not allow the call"));
    }
    endpoint_ = recorded("endpoint");
    if (!request_->endpoint_id().empty() && request_->endpoint_id() != endpoint_) {
      return Finish(Status(StatusCode::INVALID_ARGUMENT,
                           absl::StrCat("endpoint_id: the decision routed to ", endpoint_)));
    }
    if (request_->model() != decision.model()) {
      return Finish(Status(StatusCode::INVALID_ARGUMENT,
                           absl::StrCat("model: the decision was for ", decision.model())));
    }
    if (request_->estimated_tokens() != 0 && request_->estimated_tokens() != decision.tokens() &&
        absl::StrCat(request_->estimated_tokens()) != recorded(kRequestedTokens)) {
      return Finish(
          Status(StatusCode::INVALID_ARGUMENT,
                 absl::StrCat("estimated_tokens: the decision estimated ", decision.tokens())));
    }
    auto* usage = New<authz::v1::ReportUsageRequest>(arena_);
    usage->mutable_principal()->set_kind(PrincipalKindOf(key.owner()));
    usage->mutable_principal()->set_id(key.owner().id());
    usage->set_project(key.project());
    usage->set_estimated_tokens(decision.tokens());
    usage->set_actual_tokens(request_->actual_tokens());
    // Applied once per decision: its ledger entry names it across every project, where a
    // caller's request id names it only within the project's ledger.
    usage->set_request_id(AuditIdOf(decision));
    usage_ = New<authz::v1::ReportUsageResponse>(arena_);

    auto* append = New<audit::v1::AppendRequest>(arena_);
    audit::v1::EntryInput* entry = append->mutable_entry();
    entry->set_action(audit::v1::ACTION_API_CALL);
    entry->set_actor(key.owner().id());
    entry->set_project(key.project());
    entry->set_environment(EnvironmentName(key.environment()));
    entry->set_model(request_->model());
    entry->set_tokens(request_->actual_tokens());
    if (request_->has_latency()) *entry->mutable_latency() = request_->latency();
    entry->set_outcome(request_->outcome() == v1::UPSTREAM_OUTCOME_SUCCESS
                           ? audit::v1::OUTCOME_SUCCESS
                           : audit::v1::OUTCOME_ERROR);
    entry->set_request_id(UsageEntryId(request_->request_id()));
    auto& metadata = *entry->mutable_metadata();
    // The decision's key, whichever of it and its successor reports: a retry with the other
    // one is the same entry.
    metadata["key_id"] = decided_by;
    if (!endpoint_.empty()) metadata["endpoint"] = endpoint_;
    if (request_->http_status() != 0)
      metadata["http_status"] = absl::StrCat(request_->http_status());
    appended_ = New<audit::v1::AppendResponse>(arena_);

    pending_.store(2, std::memory_order_relaxed);
    downstream_->ReportUsage(NewContext(), usage, usage_, [this](Status s) {
      usage_status_ = std::move(s);
      // The endpoint's health hears of the outcome once: not again on a retry, which authz
      // knows as a duplicate (one tenant's retries must not open a breaker all share).
      if (usage_status_.ok() && !usage_->duplicate()) ReportOutcome();
      Joined();
    });
    downstream_->Append(NewContext(), append, appended_, [this](Status s) {
      append_status_ = std::move(s);
      Joined();
    });
  }

  // Reports the upstream outcome to region's passive health, joined like the other calls.
  // A refusal by the endpoint itself (4xx) says nothing of its health.
  void ReportOutcome() {
    if (endpoint_.empty() || request_->outcome() == v1::UPSTREAM_OUTCOME_REJECTED) return;
    pending_.fetch_add(1, std::memory_order_relaxed);
    auto* outcome = New<region::v1::ReportOutcomeRequest>(arena_);
    outcome->set_endpoint_id(endpoint_);
    outcome->set_success(request_->outcome() == v1::UPSTREAM_OUTCOME_SUCCESS);
    if (request_->has_latency()) *outcome->mutable_latency() = request_->latency();
    outcome->set_status(request_->http_status());
    // The tenant: one project's failures alone do not open a breaker other projects use.
    outcome->set_reporter(key_->key().project());
    // A late report of a call routed before its endpoint's breaker last changed is told apart.
    if (decision_->entry().has_time()) *outcome->mutable_routed_at() = decision_->entry().time();
    downstream_->ReportOutcome(NewContext(), outcome,
                               New<region::v1::ReportOutcomeResponse>(arena_), [this](Status s) {
                                 outcome_status_ = std::move(s);
                                 Joined();
                               });
  }

  // The caller's mistake, as with a decision: the same request id with other usage.
  static Status ReportedBefore() {
    return Status(StatusCode::FAILED_PRECONDITION,
                  "request_id: this decision's usage was reported before with other values; a "
                  "decision's usage is reported once");
  }

  void Joined() {
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (!usage_status_.ok()) {
      if (usage_status_.error_code() == StatusCode::ALREADY_EXISTS) {
        return Finish(ReportedBefore());
      }
      return Finish(DownstreamFailure("authz", usage_status_, deadline_));
    }
    // An endpoint deleted since the decision has no health left to feed.
    if (!outcome_status_.ok() && outcome_status_.error_code() != StatusCode::NOT_FOUND)
      return Finish(DownstreamFailure("region", outcome_status_, deadline_));
    if (!append_status_.ok()) {
      if (append_status_.error_code() == StatusCode::FAILED_PRECONDITION ||
          append_status_.error_code() == StatusCode::ALREADY_EXISTS) {
        return Finish(ReportedBefore());
      }
      return Finish(LedgerFailure(append_status_, "request_id", deadline_));
    }
    response_->set_adjusted_tokens(usage_->adjusted_tokens());
    response_->set_duplicate(usage_->duplicate());
    response_->set_audit_id(AuditIdOf(appended_->entry()));
    Finish(Status::OK);
  }

  const v1::ReportUsageRequest* const request_;
  v1::ReportUsageResponse* const response_;
  bool key_verified_ = false;
  audit::v1::GetEntryResponse* decision_ = nullptr;
  std::string endpoint_;  // Where the decision routed the call.
  authz::v1::ReportUsageResponse* usage_ = nullptr;
  audit::v1::AppendResponse* appended_ = nullptr;
  Status usage_status_;
  Status outcome_status_;
  Status append_status_;
  std::atomic<int> pending_{0};
};

}  // namespace

absl::StatusOr<pii::v1::RedactionPolicy> MakeRedactionPolicy(
    absl::string_view op, const std::vector<std::string>& blocked_types) {
  pii::v1::RedactionPolicy policy;
  const std::optional<PiiTreatment> treatment = ParsePiiTreatment(op);
  if (!treatment.has_value() || *treatment == PiiTreatment::kBlock ||
      *treatment == PiiTreatment::kAllow) {
    return absl::InvalidArgumentError(absl::StrCat(
        "redaction_operator: '", op, "' is not one of placeholder, redact, replace, mask, hash"));
  }
  PiiRuleToProto({.entity_type = "", .treatment = *treatment}, policy.mutable_default_rule());
  for (const std::string& type : blocked_types) {
    if (!IsValidEntityType(type)) {
      return absl::InvalidArgumentError(absl::StrCat("blocked_entity_types: '", type,
                                                     "' is not an entity type name (like US_SSN)"));
    }
    pii::v1::EntityRule* blocked = policy.add_rules();
    blocked->set_entity_type(type);
    blocked->set_action(pii::v1::ACTION_BLOCK);
  }
  policy.set_base_class(pii::v1::DATA_CLASS_PUBLIC);
  return policy;
}

absl::Status CheckRedactionServable(const pii::v1::RedactionPolicy& policy,
                                    const pii::v1::ListEntityTypesResponse& known) {
  const absl::flat_hash_set<absl::string_view> detected = DetectedTypes(known);
  std::vector<std::string> problems;
  auto check = [&](absl::string_view field, const auto& entries) {
    std::vector<std::string> unknown;
    for (const auto& entry : entries) {
      if (!detected.contains(entry.entity_type())) {
        unknown.push_back(absl::StrCat("'", entry.entity_type(), "'"));
      }
    }
    if (unknown.empty()) return;
    problems.push_back(absl::StrCat(RedactionSetting(field),
                                    ": the pii service detects no entity type ",
                                    absl::StrJoin(unknown, ", ")));
  };
  check("policy.rules", policy.rules());
  check("policy.classes", policy.classes());
  auto hashes = [](const pii::v1::EntityRule& rule) {
    return Redacts(rule) && rule.operator_() == pii::v1::OPERATOR_HASH;
  };
  bool hashing = hashes(policy.default_rule());
  for (const auto& rule : policy.rules()) hashing = hashing || hashes(rule);
  if (hashing && !known.keyed_hashing()) {
    problems.push_back(
        "redaction_operator: hash, but the pii service has no pseudonym key "
        "(POLICY_PII_PSEUDONYM_KEY)");
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      absl::StrJoin(problems, "; "), " (as pii's ListEntityTypes describes what it can do)"));
}

grpc::Status CheckDenialBudget(const FlowOptions& options, const keys::v1::Key& key) {
  if (options.denial_budget == nullptr) return grpc::Status::OK;
  const absl::Duration wait = options.denial_budget->RetryAfter(key.key_id());
  if (wait <= absl::ZeroDuration()) return grpc::Status::OK;
  return TooManyDenials(wait);
}

absl::Status ValidateDecideRequest(const v1::DecideRequest& r) {
  if (r.api_key().empty()) return absl::UnauthenticatedError("api_key: required");
  if (absl::Status s = CheckModel(r.model()); !s.ok()) return s;
  if (r.messages_size() == 0) return absl::InvalidArgumentError("messages: at least one");
  if (!r.api().empty() && !IsModelApi(r.api())) {
    return absl::InvalidArgumentError(
        absl::StrCat("api: ", Quoted(r.api()), " is not a model API the edge decides on: one of ",
                     ModelApiNames()));
  }
  for (int i = 0; i < r.messages_size(); ++i) {
    if (absl::Status s = CheckRole(r.messages(i).role(), absl::StrCat("messages[", i, "].role"));
        !s.ok()) {
      return s;
    }
  }
  if (r.estimated_tokens() < 0 || r.estimated_tokens() > kMaxEstimatedTokens) {
    return absl::InvalidArgumentError("estimated_tokens: must be between 0 and 10000000");
  }
  if (!region::v1::Residency_IsValid(r.residency())) {
    return absl::InvalidArgumentError(absl::StrCat("residency: unknown value ", r.residency()));
  }
  if (!region::v1::Preference_IsValid(r.preference())) {
    return absl::InvalidArgumentError(absl::StrCat("preference: unknown value ", r.preference()));
  }
  if (absl::Status s = CheckRequestId(r.request_id(), "request_id", kMaxDecisionRequestIdBytes);
      !s.ok()) {
    return s;
  }
  return CheckNoSecret(r.request_id(), "request_id");
}

absl::Status ValidateReportUsageRequest(const v1::ReportUsageRequest& r) {
  if (r.api_key().empty()) return absl::UnauthenticatedError("api_key: required");
  if (r.request_id().empty()) return absl::InvalidArgumentError("request_id: required");
  if (absl::Status s = CheckRequestId(r.request_id(), "request_id", kMaxDecisionRequestIdBytes);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckNoSecret(r.request_id(), "request_id"); !s.ok()) return s;
  if (absl::Status s = CheckModel(r.model()); !s.ok()) return s;
  for (const auto& [field, tokens] : {std::pair{"estimated_tokens", r.estimated_tokens()},
                                      std::pair{"actual_tokens", r.actual_tokens()}}) {
    if (tokens < 0 || tokens > kMaxEstimatedTokens) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": must be between 0 and ", kMaxEstimatedTokens, ", not ", tokens));
    }
  }
  if (r.outcome() == v1::UPSTREAM_OUTCOME_UNSPECIFIED ||
      !v1::UpstreamOutcome_IsValid(r.outcome())) {
    return absl::InvalidArgumentError("outcome: SUCCESS, ERROR or REJECTED");
  }
  if (r.has_latency()) {
    // As region's ReportOutcome checks it, so that a report is refused before any of it is
    // applied.
    ASSIGN_OR_RETURN(const absl::Duration latency,
                     proto::DurationFromProto(r.latency(), "latency"));
    if (latency < absl::ZeroDuration() || latency > absl::Hours(1)) {
      return absl::InvalidArgumentError("latency: must be between 0 and 1 hour");
    }
  }
  if (r.http_status() < 0 || r.http_status() > 599) {
    return absl::InvalidArgumentError("http_status: must be between 0 and 599");
  }
  // An outcome its HTTP status contradicts would feed the endpoint's health the wrong way.
  const int status = r.http_status();
  // REJECTED says the endpoint answered with a 4xx: it names one.
  const bool contradicted =
      (r.outcome() == v1::UPSTREAM_OUTCOME_REJECTED && (status < 400 || status >= 500)) ||
      (status != 0 && ((r.outcome() == v1::UPSTREAM_OUTCOME_SUCCESS && status >= 400) ||
                       (r.outcome() == v1::UPSTREAM_OUTCOME_ERROR && status < 400)));
  if (contradicted) {
    return absl::InvalidArgumentError(absl::StrCat(
        "http_status: ", status, " contradicts outcome ", v1::UpstreamOutcome_Name(r.outcome()),
        " (SUCCESS: below 400, REJECTED: 4xx, ERROR: 4xx or 5xx; 0: none came, never with "
        "REJECTED)"));
  }
  return absl::OkStatus();
}

void StartDecide(Downstream* downstream, const FlowOptions* options,
                 const v1::DecideRequest* request, v1::DecideResponse* response,
                 absl::Time deadline, Downstream::Done done,
                 const keys::v1::VerifyKeyResponse* verified_key) {
  (new DecideFlow(downstream, options, request, response, deadline, std::move(done), verified_key))
      ->Start();
}

void StartReportUsage(Downstream* downstream, const v1::ReportUsageRequest* request,
                      v1::ReportUsageResponse* response, absl::Time deadline,
                      Downstream::Done done) {
  (new ReportUsageFlow(downstream, request, response, deadline, std::move(done)))->Start();
}

}  // namespace policy::edge
