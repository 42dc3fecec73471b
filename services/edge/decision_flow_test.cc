#include "services/edge/decision_flow.h"

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/clock/clock.h"
#include "common/crypto/crypto.h"
#include "common/status/grpc_status.h"
#include "common/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/edge/denial_budget.h"
#include "services/edge/downstream_status.h"
#include "services/edge/fake_downstream.h"

namespace policy::edge {
namespace {

using ::testing::Contains;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

class DecisionFlowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.redaction = *MakeRedactionPolicy("placeholder", {"PRIVATE_KEY"});
    fake_.VerifyAsAlicesProjectKey();
    fake_.check_response.set_verdict(authz::v1::VERDICT_ALLOW);
    pii::v1::ChatMessage* redacted = fake_.redact_response.add_messages();
    redacted->set_role("user");
    redacted->set_content("Mail <EMAIL_ADDRESS_1> please");
    pii::v1::PlaceholderEntry* entry = fake_.redact_response.add_mapping();
    entry->set_placeholder("<EMAIL_ADDRESS_1>");
    entry->set_entity_type("EMAIL_ADDRESS");
    entry->set_value("jane@example.com");
    (*fake_.redact_response.mutable_report()->mutable_counts())["EMAIL_ADDRESS"] = 1;
    fake_.redact_response.mutable_report()->set_data_class(pii::v1::DATA_CLASS_PII);
    fake_.route_response.set_decision(region::v1::DECISION_ROUTED);
    fake_.route_response.set_reason("chose azure-westeurope");
    region::v1::Endpoint* endpoint = fake_.route_response.mutable_endpoint();
    endpoint->set_id("azure-westeurope");
    endpoint->set_region("westeurope");
    endpoint->mutable_capabilities()->set_zero_data_retention(true);
    audit::v1::Entry* appended = fake_.append_response.mutable_entry();
    appended->mutable_ledger()->set_project("support-eu");
    appended->mutable_ledger()->set_environment("production");
    appended->set_index(41);

    request_.set_api_key("psk_proj_secret");
    request_.set_source_ip("10.0.0.7");
    request_.set_model("gpt-4o");
    pii::v1::ChatMessage* message = request_.add_messages();
    message->set_role("user");
    message->set_content("Mail jane@example.com please");
    request_.set_estimated_tokens(500);
    request_.set_residency(region::v1::RESIDENCY_EU);
    request_.set_request_id("req-1");
  }

  struct Result {
    grpc::Status status;
    v1::DecideResponse response;
  };

  Result Decide(absl::Time deadline = absl::Now() + absl::Seconds(10)) {
    return DecideThrough(fake_, deadline);
  }

  // request_ decided with `downstream` instead of fake_.
  Result DecideThrough(FakeDownstream& downstream,
                       absl::Time deadline = absl::Now() + absl::Seconds(10)) {
    Result result;
    absl::Notification done;
    StartDecide(&downstream, &options_, &request_, &result.response, deadline, [&](grpc::Status s) {
      result.status = std::move(s);
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  }

  // request_ decided with fake_, which may hold calls: `done` is notified once it is.
  void StartDeciding(Result& result, absl::Notification& done) {
    StartDecide(&fake_, &options_, &request_, &result.response, absl::Now() + absl::Seconds(10),
                [&](grpc::Status s) {
                  result.status = std::move(s);
                  done.Notify();
                });
  }

  // The first attempt's entry as the ledger holds it (index 41, under "decision:req-1"), made
  // GetEntry's answer: what a retry finds when it looks its request id up.
  audit::v1::Entry* RecordFirstAttempt() {
    audit::v1::Entry* earlier = fake_.get_entry_response.mutable_entry();
    *earlier->mutable_ledger() = fake_.append_response.entry().ledger();
    earlier->set_index(41);
    earlier->set_action(fake_.append_request.entry().action());
    earlier->set_model(fake_.append_request.entry().model());
    earlier->set_tokens(fake_.append_request.entry().tokens());
    earlier->set_content_hash(fake_.append_request.entry().content_hash());
    *earlier->mutable_metadata() = fake_.append_request.entry().metadata();
    earlier->set_request_id("decision:req-1");
    return earlier;
  }

  // `retry` answers as fake_ did for the first attempt, but its first append is refused as
  // another entry's under the request id (index 41), and its second is the duplicate.
  void AsRetryOfTheFirstAttempt(FakeDownstream& retry) {
    retry.redact_response = fake_.redact_response;
    retry.route_response = fake_.route_response;
    retry.get_entry_response = fake_.get_entry_response;
    retry.append_response = fake_.append_response;
    retry.append_response.set_duplicate(true);
    retry.append_statuses = {grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                          "request_id decision:req-1 was already used for a "
                                          "different entry (index 41)"),
                             grpc::Status::OK};
  }

  FakeDownstream fake_;
  FlowOptions options_;
  v1::DecideRequest request_;
};

// A cache keeps prompts and answers: a call routed to a cached endpoint (public data) is not
// one with zero data retention, whatever the provider promises of its own storage.
TEST_F(DecisionFlowTest, ACachedEndpointIsNoZeroDataRetentionInTheHeaders) {
  fake_.redact_response.mutable_report()->set_data_class(pii::v1::DATA_CLASS_PUBLIC);
  fake_.route_response.mutable_endpoint()->mutable_capabilities()->set_cached(true);
  Result r = Decide();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.response.verdict(), v1::VERDICT_ALLOW);
  EXPECT_EQ(r.response.headers().at("x-policy-zero-data-retention"), "false");
}

TEST_F(DecisionFlowTest, AllowsWithRedactedMessagesEndpointHeadersAndALedgerEntry) {
  request_.set_return_mapping(true);
  Result r = Decide();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.response.verdict(), v1::VERDICT_ALLOW);
  EXPECT_EQ(r.response.reason(), "");
  ASSERT_EQ(r.response.messages_size(), 1);
  EXPECT_EQ(r.response.messages(0).content(), "Mail <EMAIL_ADDRESS_1> please");
  ASSERT_EQ(r.response.mapping_size(), 1);
  EXPECT_EQ(r.response.mapping(0).value(), "jane@example.com");
  EXPECT_EQ(r.response.endpoint().id(), "azure-westeurope");
  EXPECT_EQ(r.response.audit_id(), "support-eu/production/41");
  EXPECT_EQ(r.response.request_id(), "req-1");
  EXPECT_EQ(r.response.headers().at("x-policy-audit-id"), "support-eu/production/41");
  EXPECT_EQ(r.response.headers().at("x-policy-request-id"), "req-1");
  EXPECT_EQ(r.response.headers().at("x-policy-zero-data-retention"), "true");
  EXPECT_EQ(r.response.pii_counts().at("EMAIL_ADDRESS"), 1);
  EXPECT_EQ(r.response.data_class(), pii::v1::DATA_CLASS_PII);

  EXPECT_EQ(fake_.verify_request.secret(), "psk_proj_secret");
  EXPECT_EQ(fake_.check_request.principal().id(), "alice@example.com");
  EXPECT_EQ(fake_.check_request.principal().kind(), authz::v1::PRINCIPAL_KIND_MEMBER);
  EXPECT_EQ(fake_.check_request.project(), "support-eu");
  EXPECT_EQ(fake_.check_request.source_ip(), "10.0.0.7");
  EXPECT_EQ(fake_.check_request.estimated_tokens(), 500);
  EXPECT_EQ(fake_.redact_request.project_id(), "support-eu");
  EXPECT_EQ(fake_.redact_request.messages(0).content(), "Mail jane@example.com please");
  EXPECT_EQ(fake_.redact_request.policy().rules(0).entity_type(), "PRIVATE_KEY");
  // The edge uses pii's counts, not its list of findings (as large as many times the text).
  EXPECT_TRUE(fake_.redact_request.omit_findings());
  // Region routes by the class pii found, in the residency asked for.
  EXPECT_EQ(fake_.route_request.data_class(), pii::v1::DATA_CLASS_PII);
  EXPECT_EQ(fake_.route_request.residency(), region::v1::RESIDENCY_EU);
  EXPECT_FALSE(fake_.route_request.require_zero_data_retention());

  const audit::v1::EntryInput& entry = fake_.append_request.entry();
  EXPECT_EQ(entry.action(), audit::v1::ACTION_DECISION_ALLOW);
  EXPECT_EQ(entry.actor(), "alice@example.com");
  EXPECT_EQ(entry.project(), "support-eu");
  EXPECT_EQ(entry.environment(), "production");
  // Behind "decision:", where no service records its own events (say, "keys:key_revoked:...").
  EXPECT_EQ(entry.request_id(), "decision:req-1");
  EXPECT_EQ(entry.tokens(), 500);
  EXPECT_EQ(entry.metadata().at("endpoint"), "azure-westeurope");
  EXPECT_EQ(entry.metadata().at("pii_counts"), "EMAIL_ADDRESS=1");
  EXPECT_FALSE(entry.metadata().contains("pii_allowed"));  // Replaced by a placeholder.
  EXPECT_EQ(entry.content_hash().size(), 32u);
  // The ledger holds a hash of the content, never the content.
  for (const auto& [k, v] : entry.metadata()) EXPECT_THAT(v, Not(HasSubstr("jane@")));
  EXPECT_THAT(fake_.calls(), ElementsAre("keys.VerifyKey", "authz.Check", "pii.Redact",
                                         "region.Route", "audit.Append"));
}

// The class a request is routed under: the more sensitive of what pii found and the project's
// data class (INTERNAL when authz states none).
TEST_F(DecisionFlowTest, TheProjectsDataClassRaisesWhatPiiFoundAndNeverLowersIt) {
  struct Case {
    pii::v1::DataClass found;
    pii::v1::DataClass project;
    pii::v1::DataClass routed;
    const char* recorded;
  };
  for (const Case& c : {
           // pii asked with a base class of PUBLIC; a project that states none is INTERNAL.
           Case{pii::v1::DATA_CLASS_PUBLIC, pii::v1::DATA_CLASS_UNSPECIFIED,
                pii::v1::DATA_CLASS_INTERNAL, "internal"},
           // A public project's prompt with nothing in it may go to a cache.
           Case{pii::v1::DATA_CLASS_PUBLIC, pii::v1::DATA_CLASS_PUBLIC, pii::v1::DATA_CLASS_PUBLIC,
                "public"},
           // What pii finds still counts in a public project.
           Case{pii::v1::DATA_CLASS_PII, pii::v1::DATA_CLASS_PUBLIC, pii::v1::DATA_CLASS_PII,
                "pii"},
           // A clinical project: every prompt is health data, whatever pii recognises.
           Case{pii::v1::DATA_CLASS_PUBLIC, pii::v1::DATA_CLASS_PHI, pii::v1::DATA_CLASS_PHI,
                "phi"},
           Case{pii::v1::DATA_CLASS_PII, pii::v1::DATA_CLASS_PHI, pii::v1::DATA_CLASS_PHI, "phi"},
           Case{pii::v1::DATA_CLASS_PHI, pii::v1::DATA_CLASS_PII, pii::v1::DATA_CLASS_PHI, "phi"},
           // A class outside the enum, or none, is taken as the most sensitive.
           Case{static_cast<pii::v1::DataClass>(9), pii::v1::DATA_CLASS_PUBLIC,
                pii::v1::DATA_CLASS_PHI, "phi"},
           Case{pii::v1::DATA_CLASS_UNSPECIFIED, pii::v1::DATA_CLASS_PUBLIC,
                pii::v1::DATA_CLASS_PHI, "phi"},
       }) {
    fake_.redact_response.mutable_report()->set_data_class(c.found);
    fake_.check_response.set_data_class(c.project);
    request_.set_request_id(absl::StrCat("req-", c.found, "-", c.project));
    Result r = Decide();
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(fake_.redact_request.policy().base_class(), pii::v1::DATA_CLASS_PUBLIC);
    EXPECT_EQ(r.response.data_class(), c.routed) << c.found << " " << c.project;
    EXPECT_EQ(fake_.route_request.data_class(), c.routed) << c.found << " " << c.project;
    EXPECT_EQ(fake_.append_request.entry().metadata().at("data_class"), c.recorded);
  }
}

TEST_F(DecisionFlowTest, AProjectThatKeepsNoDataIsRoutedOnlyWhereNothingIsKept) {
  fake_.check_response.set_zero_data_retention(true);
  Result r = Decide();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_TRUE(fake_.route_request.require_zero_data_retention());
}

TEST_F(DecisionFlowTest, ARequestRequiringNoResidencyIsRoutedWithinTheProjects) {
  fake_.check_response.set_residency(region::v1::RESIDENCY_EU);
  for (region::v1::Residency asked : {region::v1::RESIDENCY_UNSPECIFIED,
                                      region::v1::RESIDENCY_GLOBAL, region::v1::RESIDENCY_EU}) {
    request_.set_residency(asked);
    request_.set_request_id(absl::StrCat("req-", asked));
    Result r = Decide();
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    // authz hears what the request asked; region routes within the project's.
    EXPECT_EQ(fake_.check_request.residency(), asked);
    EXPECT_EQ(fake_.route_request.residency(), region::v1::RESIDENCY_EU) << asked;
    EXPECT_EQ(fake_.append_request.entry().metadata().at("residency"), "eu");
  }
  // A project kept nowhere in particular: the request's residency, recorded only when one.
  fake_.check_response.set_residency(region::v1::RESIDENCY_GLOBAL);
  request_.set_residency(region::v1::RESIDENCY_UNSPECIFIED);
  request_.set_request_id("req-anywhere");
  ASSERT_TRUE(Decide().status.ok());
  EXPECT_EQ(fake_.route_request.residency(), region::v1::RESIDENCY_GLOBAL);
  EXPECT_FALSE(fake_.append_request.entry().metadata().contains("residency"));
  request_.set_residency(region::v1::RESIDENCY_US);
  request_.set_request_id("req-us");
  ASSERT_TRUE(Decide().status.ok());
  EXPECT_EQ(fake_.route_request.residency(), region::v1::RESIDENCY_US);
  EXPECT_EQ(fake_.append_request.entry().metadata().at("residency"), "us");
}

TEST_F(DecisionFlowTest, AResidencyTheProjectDoesNotKeepToIsAnAuditedDenySayingBoth) {
  request_.set_residency(region::v1::RESIDENCY_US);
  fake_.check_response.set_verdict(authz::v1::VERDICT_DENY);
  fake_.check_response.set_reason("RESIDENCY_NOT_ALLOWED");
  fake_.check_response.set_rule("project.residency");
  fake_.check_response.set_residency(region::v1::RESIDENCY_EU);
  Result r = Decide();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.response.verdict(), v1::VERDICT_DENY);
  EXPECT_EQ(r.response.reason(), "RESIDENCY_NOT_ALLOWED");
  EXPECT_EQ(r.response.message(),
            "the request requires us; the project's data policy keeps its calls in eu (rule "
            "project.residency)");
  EXPECT_EQ(fake_.append_request.entry().metadata().at("reason"), "RESIDENCY_NOT_ALLOWED");
  EXPECT_THAT(fake_.calls(), Not(Contains("region.Route")));
}

TEST_F(DecisionFlowTest, TheMappingOnlyWhenAskedFor) {
  Result r = Decide();
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.response.mapping_size(), 0);
  EXPECT_FALSE(fake_.redact_request.return_mapping());
}

TEST_F(DecisionFlowTest, DrawsARequestIdWhenNoneIsGiven) {
  request_.clear_request_id();
  Result r = Decide();
  ASSERT_TRUE(r.status.ok());
  EXPECT_THAT(r.response.request_id(), HasSubstr("edge-"));
  EXPECT_EQ(fake_.append_request.entry().request_id(), "decision:" + r.response.request_id());
  Result again = Decide();
  EXPECT_NE(again.response.request_id(), r.response.request_id());
}

TEST_F(DecisionFlowTest, AnyKeyRefusalIsUnauthenticatedAlike) {
  for (grpc::StatusCode code :
       {grpc::StatusCode::UNAUTHENTICATED, grpc::StatusCode::NOT_FOUND,
        grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::FAILED_PRECONDITION}) {
    fake_.verify_status = grpc::Status(code, "key revoked at 10:02 by bob");
    Result r = Decide();
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << code;
    EXPECT_EQ(r.status.error_message(), "API key is not valid");
  }
  // Nothing else was asked, nothing recorded.
  EXPECT_THAT(fake_.calls(), Each("keys.VerifyKey"));
}

TEST_F(DecisionFlowTest, KeysRefusingTheEdgeItselfIsADependencyFailureNotABadKey) {
  fake_.verify_status = grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                     "client certificate (edge) is not among tls_allowed_clients");
  Result r = Decide();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(r.status.error_message(), HasSubstr("keys"));
  EXPECT_THAT(fake_.calls(), ElementsAre("keys.VerifyKey"));
}

TEST_F(DecisionFlowTest, KeysDownFailsClosed) {
  fake_.verify_status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused");
  Result r = Decide();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(r.status.error_message(), HasSubstr("keys"));
  EXPECT_THAT(fake_.calls(), ElementsAre("keys.VerifyKey"));
}

TEST_F(DecisionFlowTest, EachDependencyDownFailsClosedWithoutAnAllow) {
  struct Case {
    grpc::Status FakeDownstream::*status;
    const char* service;
  };
  for (Case c :
       {Case{&FakeDownstream::check_status, "authz"}, Case{&FakeDownstream::redact_status, "pii"},
        Case{&FakeDownstream::route_status, "region"},
        Case{&FakeDownstream::append_status, "audit"}}) {
    FakeDownstream fake;
    fake.verify_response = fake_.verify_response;
    fake.check_response = fake_.check_response;
    fake.redact_response = fake_.redact_response;
    fake.route_response = fake_.route_response;
    fake.append_response = fake_.append_response;
    fake.*c.status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused");
    auto [status, response] = DecideThrough(fake);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << c.service;
    EXPECT_THAT(status.error_message(), HasSubstr(c.service));
    EXPECT_NE(response.verdict(), v1::VERDICT_ALLOW) << c.service;
    if (std::string(c.service) != "audit") {
      // Nothing was recorded as decided: the decision was never made.
      EXPECT_THAT(fake.calls(), Not(Contains("audit.Append"))) << c.service;
    }
  }
}

TEST_F(DecisionFlowTest, APassedDeadlineIsDeadlineExceeded) {
  fake_.check_status = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded");
  Result r = Decide();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(r.status.error_message(), HasSubstr("authz"));
}

TEST_F(DecisionFlowTest, CallersInputRefusedDownstreamStaysInvalidArgument) {
  fake_.check_status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "source_ip: not an IP");
  Result r = Decide();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(r.status.error_message(), "source_ip: not an IP");
}

// pii as it refuses a policy: the field in the message, the reason in the details.
grpc::Status PolicyRefusal(absl::string_view message) {
  return ToGrpcStatus(WithReason(absl::InvalidArgumentError(message), "POLICY_INVALID"),
                      "pii.policy-suite");
}

TEST_F(DecisionFlowTest, PiiRefusingTheEdgesOwnPolicyIsNotTheCallersMistake) {
  fake_.redact_status = PolicyRefusal(
      "policy.rules: unknown entity type 'AWS_ACCESS_KEYS' (ListEntityTypes names the types "
      "this deployment detects)");
  Result r = Decide();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(r.status.error_message(),
              HasSubstr("the edge's redaction policy is refused by the pii service"));
  EXPECT_THAT(r.status.error_message(), HasSubstr("setting to fix: blocked_entity_types"));
  EXPECT_THAT(r.status.error_message(), HasSubstr("'AWS_ACCESS_KEYS'"));
  EXPECT_NE(r.response.verdict(), v1::VERDICT_ALLOW);
  EXPECT_THAT(fake_.calls(), Not(Contains("audit.Append")));
}

TEST(RedactFailureTest, ThePolicyIsTheEdgesTheMessagesAreTheCallers) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  // The reason alone says it is the policy; so does a policy field alone (no details).
  grpc::Status s =
      RedactFailure(PolicyRefusal("default_rule: operator 9 is out of range"), deadline);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("setting to fix: redaction_operator"));
  s = RedactFailure(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "policy.default_rule.operator: 42 is not a known operator"),
                    deadline);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("setting to fix: redaction_operator"));
  s = RedactFailure(PolicyRefusal("policy.min_score: 2 is outside [0, 1]"), deadline);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(),
              HasSubstr("setting to fix: redaction_operator, blocked_entity_types"));

  // A policy that hashes where pii has no pseudonym key: the deployment's state, the setting
  // that asks for it named.
  s = RedactFailure(
      ToGrpcStatus(WithReason(absl::FailedPreconditionError(
                                  "policy.default_rule.operator: OPERATOR_HASH, but this "
                                  "deployment has no pseudonym key configured"),
                              "POLICY_INVALID"),
                   "pii.policy-suite"),
      deadline);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("setting to fix: redaction_operator"));
  EXPECT_THAT(s.error_message(), HasSubstr("no pseudonym key"));

  // The caller's messages refused stay the caller's mistake, word for word.
  for (const char* message : {"messages[0]: not valid UTF-8 at byte 2",
                              "messages: 5000 bytes together, more than the limit of 4096",
                              "messages: 9 texts, more than the limit of 8"}) {
    s = RedactFailure(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message), deadline);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << message;
    EXPECT_EQ(s.error_message(), message);
  }
  // Anything else is pii failing, as before.
  s = RedactFailure(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused"), deadline);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(), "the pii service could not answer (UNAVAILABLE)");
  // The dependency's own words (an address, a database's error) go to an administrator only.
  const grpc::Status database(grpc::StatusCode::UNAVAILABLE,
                              "cannot connect to the database: 10.1.2.3:5432 refused");
  EXPECT_EQ(DependencyFailure("authz", database, deadline).error_message(),
            "the authz service could not answer (UNAVAILABLE)");
  EXPECT_EQ(DependencyFailure("authz", database, deadline, /*with_detail=*/true).error_message(),
            "the authz service could not answer (UNAVAILABLE): cannot connect to the database: "
            "10.1.2.3:5432 refused");
}

TEST(RedactFailureTest, SettingsOfPolicyFields) {
  EXPECT_EQ(RedactionSetting("policy.rules[3].entity_type"), "blocked_entity_types");
  EXPECT_EQ(RedactionSetting("policy.rules: unknown entity type 'X'"), "blocked_entity_types");
  EXPECT_EQ(RedactionSetting("policy.default_rule.operator"), "redaction_operator");
  EXPECT_EQ(RedactionSetting("policy.classes[0]"), "redaction_operator, blocked_entity_types");
}

TEST_F(DecisionFlowTest, ARequestIdTheLedgerHoldsForAnotherEntryIsTheCallersMistake) {
  fake_.append_status = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                     "request_id r-1 was already used for a different entry");
  Result r = Decide();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(r.status.error_message(), HasSubstr("request_id: already used"));
  EXPECT_THAT(r.status.error_message(), Not(HasSubstr("entry")));  // Nothing of the ledger's.
  fake_.append_status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "entry.model: bad");
  EXPECT_EQ(Decide().status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// A decision whose ALLOW the ledger recorded although its answer was lost (audit crashed, or
// the deadline passed, after the append committed) is retried under its request id; its
// reservation, kept because the ledger may hold it, makes authz refuse the retry for the
// rate limit. The retry is answered with the recorded ALLOW (routed, and recorded again as a
// duplicate of the same entry), not told that its own id belongs to another request.
TEST_F(DecisionFlowTest, ARetryRateLimitedByItsOwnRecordedAllowIsAnsweredWithThatAllow) {
  ASSERT_TRUE(Decide().status.ok());  // The first attempt, whose entry the ledger holds.
  RecordFirstAttempt();

  FakeDownstream retry;
  retry.VerifyAsAlicesProjectKey();
  retry.check_response.set_verdict(authz::v1::VERDICT_DENY);
  retry.check_response.set_reason("RATE_LIMITED");
  retry.check_response.mutable_retry_after()->set_seconds(50);
  AsRetryOfTheFirstAttempt(retry);
  auto [status, response] = DecideThrough(retry);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.verdict(), v1::VERDICT_ALLOW);
  EXPECT_EQ(response.reason(), "");
  EXPECT_FALSE(response.has_retry_after());
  EXPECT_EQ(response.audit_id(), "support-eu/production/41");
  EXPECT_EQ(response.endpoint().id(), "azure-westeurope");
  EXPECT_EQ(response.messages(0).content(), "Mail <EMAIL_ADDRESS_1> please");
  EXPECT_EQ(retry.get_entry_request.request_id(), "decision:req-1");
  EXPECT_EQ(retry.get_entry_request.ledger().project(), "support-eu");
  EXPECT_EQ(retry.append_request.entry().action(), audit::v1::ACTION_DECISION_ALLOW);
  // The DENY reserved nothing: nothing is given back.
  EXPECT_THAT(retry.calls(), Not(Contains("authz.ReportUsage")));
  EXPECT_THAT(retry.calls(), Contains("region.Route"));

  // The entry is another key's, or another request's: the caller reused an id.
  for (int variant = 0; variant < 3; ++variant) {
    FakeDownstream other;
    other.VerifyAsAlicesProjectKey();
    other.check_response = retry.check_response;
    other.redact_response = fake_.redact_response;
    other.route_response = fake_.route_response;
    other.get_entry_response = fake_.get_entry_response;
    audit::v1::Entry* e = other.get_entry_response.mutable_entry();
    if (variant == 0) (*e->mutable_metadata())["key_id"] = "key-2";
    if (variant == 1) e->set_content_hash("other");
    if (variant == 2) e->set_action(audit::v1::ACTION_DECISION_DENY);
    other.append_status = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "used");
    const grpc::Status refused = DecideThrough(other).status;
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << variant;
    // The same request's DENY is named as such; anything else is a reused id.
    EXPECT_THAT(refused.error_message(),
                HasSubstr(variant == 2 ? "request_id: this request was denied under this id"
                                       : "request_id: already used"))
        << variant;
    EXPECT_THAT(other.calls(), Not(Contains("region.Route"))) << variant;
  }
}

// A request denied under its id (rate limited) and allowed when retried under it: the ledger
// holds the DENY for the id, so the retry is refused naming it and asking for a new id, and
// the reservation it made is given back.
TEST_F(DecisionFlowTest, ARetryOfADeniedRequestAllowedNowIsToldItsIdHoldsTheDeny) {
  ASSERT_TRUE(Decide().status.ok());
  audit::v1::Entry* earlier = RecordFirstAttempt();
  earlier->set_action(audit::v1::ACTION_DECISION_DENY);
  (*earlier->mutable_metadata())["reason"] = "RATE_LIMITED";

  FakeDownstream retry;
  retry.VerifyAsAlicesProjectKey();
  retry.check_response = fake_.check_response;  // ALLOW now: a reservation of its own.
  retry.redact_response = fake_.redact_response;
  retry.route_response = fake_.route_response;
  retry.get_entry_response = fake_.get_entry_response;
  retry.append_status = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "used");
  const grpc::Status refused = DecideThrough(retry).status;
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(refused.error_message(),
            "request_id: this request was denied under this id (RATE_LIMITED) and a decision is "
            "final for its id; retry it under a new request id");
  EXPECT_THAT(retry.calls(), Contains("authz.ReportUsage"));
  EXPECT_TRUE(retry.usage_request.refund_request());
}

// A retry of an ALLOW whose answer was lost, which region would now route elsewhere (another
// replica's latencies, a draw, a failover since): the ledger holds the first attempt under the
// request id, so the retry goes where that attempt went (region told so) and is answered with
// the recorded decision, not refused as another request under a used id.
TEST_F(DecisionFlowTest, ARetryRoutedElsewhereNowGoesWhereItsRecordedAllowWent) {
  ASSERT_TRUE(Decide().status.ok());  // The first attempt, routed to azure-westeurope.
  audit::v1::Entry* earlier = RecordFirstAttempt();
  (*earlier->mutable_metadata())["failover"] = "true";
  // The first attempt's project let e-mail addresses through; by the retry it no longer does.
  (*earlier->mutable_metadata())["pii_allowed"] = "EMAIL_ADDRESS=1";

  FakeDownstream retry;
  retry.VerifyAsAlicesProjectKey();
  retry.check_response = fake_.check_response;  // ALLOW: a reservation of its own.
  // The first append (of the route the preference chose now, another endpoint) is refused.
  AsRetryOfTheFirstAttempt(retry);
  auto [status, response] = DecideThrough(retry);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.verdict(), v1::VERDICT_ALLOW);
  EXPECT_EQ(response.audit_id(), "support-eu/production/41");
  EXPECT_EQ(response.endpoint().id(), "azure-westeurope");
  EXPECT_TRUE(response.failover());  // As recorded.
  // Region was told where the first attempt went; the record is the recorded one's.
  EXPECT_EQ(retry.route_request.endpoint_id(), "azure-westeurope");
  EXPECT_EQ(retry.append_request.entry().metadata().at("failover"), "true");
  EXPECT_EQ(retry.append_request.entry().metadata().at("endpoint"), "azure-westeurope");
  EXPECT_EQ(retry.append_request.entry().metadata().at("pii_allowed"), "EMAIL_ADDRESS=1");
  // The retry's own reservation is given back, as for any retry the ledger knew.
  EXPECT_THAT(retry.calls(), Contains("authz.ReportUsage"));
  EXPECT_TRUE(retry.usage_request.refund_request());
}

// A retry stating another residency than its recorded ALLOW had to stay in is another request:
// it is not sent where its first attempt went, nor told that endpoint no longer takes it.
TEST_F(DecisionFlowTest, ARetryStatingAnotherResidencyIsAnotherRequest) {
  ASSERT_TRUE(Decide().status.ok());  // EU.
  EXPECT_EQ(fake_.append_request.entry().metadata().at("residency"), "eu");
  RecordFirstAttempt();
  FakeDownstream retry;
  retry.VerifyAsAlicesProjectKey();
  retry.check_response = fake_.check_response;
  AsRetryOfTheFirstAttempt(retry);
  request_.set_residency(region::v1::RESIDENCY_US);
  auto [status, response] = DecideThrough(retry);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message(),
            "request_id: already used for a different request; a new request needs a new id");
  // Routed once, as a new request; never again to where the first attempt went.
  const std::vector<std::string> calls = retry.calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "region.Route"), 1);
  EXPECT_EQ(retry.route_request.endpoint_id(), "");
}

// The same request id for another API is another request, whatever else it repeats.
TEST_F(DecisionFlowTest, ARetryForAnotherApiIsAnotherRequest) {
  ASSERT_TRUE(Decide().status.ok());  // A chat completion.
  EXPECT_EQ(fake_.append_request.entry().metadata().at("api"), "chat.completions");
  RecordFirstAttempt();
  FakeDownstream retry;
  retry.VerifyAsAlicesProjectKey();
  retry.verify_response.mutable_key()->add_scopes("embeddings");
  retry.check_response = fake_.check_response;
  AsRetryOfTheFirstAttempt(retry);
  request_.set_api("embeddings");
  auto [status, response] = DecideThrough(retry);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("request_id"));
  // Under its first API it is the recorded ALLOW; an entry recorded before decisions named
  // their API was a chat completion.
  for (bool recorded_api : {true, false}) {
    FakeDownstream again;
    again.VerifyAsAlicesProjectKey();
    again.check_response = fake_.check_response;
    AsRetryOfTheFirstAttempt(again);
    if (!recorded_api) again.get_entry_response.mutable_entry()->mutable_metadata()->erase("api");
    request_.clear_api();
    auto [same_status, same] = DecideThrough(again);
    ASSERT_TRUE(same_status.ok()) << same_status.error_message();
    EXPECT_EQ(same.audit_id(), "support-eu/production/41") << recorded_api;
    // Recorded again as it was, so that the ledger finds it the same entry.
    EXPECT_EQ(again.append_request.entry().metadata().contains("api"), recorded_api);
  }
}

TEST_F(DecisionFlowTest, AuthzDenialIsAnAuditedDenyWithRetryAfter) {
  fake_.check_response.set_verdict(authz::v1::VERDICT_DENY);
  fake_.check_response.set_reason("RATE_LIMITED");
  fake_.check_response.set_rule("rate_limit.project.rpm");
  fake_.check_response.mutable_retry_after()->set_seconds(12);
  Result r = Decide();
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.response.verdict(), v1::VERDICT_DENY);
  EXPECT_EQ(r.response.reason(), "RATE_LIMITED");
  EXPECT_EQ(r.response.retry_after().seconds(), 12);
  EXPECT_EQ(r.response.messages_size(), 0);
  EXPECT_FALSE(r.response.has_endpoint());
  EXPECT_EQ(r.response.audit_id(), "support-eu/production/41");
  EXPECT_EQ(fake_.append_request.entry().action(), audit::v1::ACTION_DECISION_DENY);
  EXPECT_EQ(fake_.append_request.entry().outcome(), audit::v1::OUTCOME_BLOCKED);
  EXPECT_EQ(fake_.append_request.entry().metadata().at("reason"), "RATE_LIMITED");
  EXPECT_THAT(fake_.calls(), Not(Contains("region.Route")));
}

// A key that has had its burst of denials recorded is refused at the door until its budget
// refills: no authz, pii, region or audit call, so nothing reserved and nothing recorded.
class DenialBudgetFlowTest : public DecisionFlowTest {
 protected:
  void SetUp() override {
    DecisionFlowTest::SetUp();
    options_.denial_budget = &budget_;
    // A blocked model: every request of the key is denied by authz.
    fake_.check_response.set_verdict(authz::v1::VERDICT_DENY);
    fake_.check_response.set_reason("MODEL_NOT_ALLOWED");
  }

  int Calls(const std::string& name) {
    int n = 0;
    for (const std::string& call : fake_.calls()) n += call == name;
    return n;
  }

  FakeClock clock_;
  // 3 denials in a row, then one a second.
  DenialBudget budget_{DenialBudgetOptions{.per_minute = 60, .burst = 3, .max_keys = 100}, &clock_};
};

TEST_F(DenialBudgetFlowTest, AfterItsBurstOfDenialsAKeyIsRefusedBeforeAnythingIsAskedOrRecorded) {
  for (int i = 0; i < 3; ++i) {
    Result r = Decide();
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.response.verdict(), v1::VERDICT_DENY);
    EXPECT_EQ(r.response.reason(), "MODEL_NOT_ALLOWED");
  }
  EXPECT_EQ(Calls("audit.Append"), 3);
  const std::vector<std::string> before = fake_.calls();

  Result refused = Decide();
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(refused.status.error_message(),
            "too many denied requests for this key; retry after 1 s");
  EXPECT_EQ(ReasonOf(FromGrpcStatus(refused.status)), "TOO_MANY_DENIALS");
  EXPECT_EQ(RetryDelayOf(refused.status), absl::Seconds(1));
  EXPECT_EQ(refused.response.verdict(), v1::VERDICT_UNSPECIFIED);
  EXPECT_TRUE(refused.response.audit_id().empty());
  // Only the key was verified: authz (no reservation, no refund), pii, region and audit were
  // not asked.
  std::vector<std::string> after = fake_.calls();
  ASSERT_EQ(after.size(), before.size() + 1);
  EXPECT_EQ(after.back(), "keys.VerifyKey");
  EXPECT_EQ(Calls("audit.Append"), 3);

  // A request that would be allowed is refused too: the key is refused, not the request.
  fake_.check_response.set_verdict(authz::v1::VERDICT_ALLOW);
  fake_.check_response.clear_reason();
  EXPECT_EQ(Decide().status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Calls("authz.Check"), 3);
  EXPECT_EQ(Calls("pii.Redact"), 3);
}

TEST_F(DenialBudgetFlowTest, AnotherKeyIsUnaffected) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Decide().status.ok());
  ASSERT_EQ(Decide().status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  fake_.verify_response.mutable_key()->set_key_id("key-2");
  for (int i = 0; i < 3; ++i) {
    Result r = Decide();
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.response.verdict(), v1::VERDICT_DENY);
  }
  EXPECT_EQ(Decide().status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  fake_.verify_response.mutable_key()->set_key_id("key-1");
  EXPECT_EQ(Decide().status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Calls("audit.Append"), 6);
}

TEST_F(DenialBudgetFlowTest, AllowsTakeNothingFromTheBudget) {
  fake_.check_response.set_verdict(authz::v1::VERDICT_ALLOW);
  fake_.check_response.clear_reason();
  for (int i = 0; i < 10; ++i) {
    Result r = Decide();
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.response.verdict(), v1::VERDICT_ALLOW);
  }
  // The whole burst of denials is still there.
  fake_.check_response.set_verdict(authz::v1::VERDICT_DENY);
  fake_.check_response.set_reason("MODEL_NOT_ALLOWED");
  for (int i = 0; i < 3; ++i) {
    Result r = Decide();
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.response.verdict(), v1::VERDICT_DENY);
  }
  EXPECT_EQ(Decide().status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(DenialBudgetFlowTest, EveryKindOfDenyCountsAndNoFailureDoes) {
  // A rate limit, blocked content and the key's own scope are denials like any other.
  fake_.check_response.set_reason("RATE_LIMITED");
  ASSERT_EQ(Decide().response.reason(), "RATE_LIMITED");
  fake_.check_response.set_verdict(authz::v1::VERDICT_ALLOW);
  fake_.redact_response.mutable_report()->set_blocked(true);
  ASSERT_EQ(Decide().response.reason(), "PII_BLOCKED");
  // A failure to record is no DENY recorded: it takes nothing.
  fake_.append_status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "audit away");
  ASSERT_EQ(Decide().status.error_code(), grpc::StatusCode::UNAVAILABLE);
  fake_.append_status = grpc::Status::OK;
  fake_.verify_response.mutable_key()->clear_scopes();
  ASSERT_EQ(Decide().response.reason(), "KEY_SCOPE");
  EXPECT_EQ(Decide().status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(DenialBudgetFlowTest, TheBudgetRefillsWithTheClock) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Decide().status.ok());
  ASSERT_EQ(Decide().status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  clock_.Advance(absl::Milliseconds(400));
  Result r = Decide();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(RetryDelayOf(r.status), absl::Milliseconds(600));
  EXPECT_THAT(r.status.error_message(), HasSubstr("retry after 1 s"));

  clock_.Advance(absl::Milliseconds(600));  // One unit back: one more decision.
  r = Decide();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.response.verdict(), v1::VERDICT_DENY);
  EXPECT_EQ(Decide().status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  clock_.Advance(absl::Minutes(5));  // Full again: the burst, and no more.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Decide().status.ok());
  EXPECT_EQ(Decide().status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Calls("audit.Append"), 7);
}

TEST_F(DenialBudgetFlowTest, NoBudgetNoLimit) {
  options_.denial_budget = nullptr;
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(Decide().status.ok());
  EXPECT_EQ(Calls("audit.Append"), 10);
}

TEST_F(DecisionFlowTest, BlockedContentIsADeny) {
  fake_.redact_response.mutable_report()->set_blocked(true);
  fake_.redact_response.mutable_report()->add_blocking_types("PRIVATE_KEY");
  Result r = Decide();
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.response.verdict(), v1::VERDICT_DENY);
  EXPECT_EQ(r.response.reason(), "PII_BLOCKED");
  EXPECT_THAT(r.response.message(), HasSubstr("PRIVATE_KEY"));
  EXPECT_EQ(r.response.messages_size(), 0);
  EXPECT_EQ(fake_.append_request.entry().action(), audit::v1::ACTION_DECISION_DENY);
}

TEST_F(DecisionFlowTest, BudgetReservedForARequestNotAllowedIsGivenBack) {
  // Allowed: the budget stays spent, nothing reported.
  ASSERT_TRUE(Decide().status.ok());
  EXPECT_THAT(fake_.calls(), Not(Contains("authz.ReportUsage")));
  // Allowed by authz, then blocked by the content: the request unit and the estimate are
  // refunded.
  fake_.redact_response.mutable_report()->set_blocked(true);
  ASSERT_EQ(Decide().response.reason(), "PII_BLOCKED");
  EXPECT_THAT(fake_.calls(), Contains("authz.ReportUsage"));
  EXPECT_TRUE(fake_.usage_request.refund_request());
  EXPECT_EQ(fake_.usage_request.estimated_tokens(), 500);
  EXPECT_EQ(fake_.usage_request.actual_tokens(), 0);
  EXPECT_EQ(fake_.usage_request.principal().id(), "alice@example.com");
  EXPECT_EQ(fake_.usage_request.project(), "support-eu");
  EXPECT_THAT(fake_.usage_request.request_id(), HasSubstr("refund:"));
  EXPECT_LE(fake_.usage_request.request_id().size(), 128u);
}

TEST_F(DecisionFlowTest, ARequestUnitIsGivenBackWhenNoTokensWereEstimated) {
  request_.set_estimated_tokens(0);
  request_.mutable_messages(0)->set_content("Hi");  // Too short to count as a token.
  fake_.route_response.Clear();
  fake_.route_response.set_decision(region::v1::DECISION_BLOCKED);
  fake_.route_response.set_reason("NO_COMPLIANT_REGION: no healthy endpoint for residency eu");
  const Result denied = Decide();
  ASSERT_EQ(denied.response.reason(), "NO_COMPLIANT_REGION");
  EXPECT_EQ(denied.response.message(), "no healthy endpoint for residency eu");
  EXPECT_THAT(fake_.calls(), Contains("authz.ReportUsage"));
  EXPECT_TRUE(fake_.usage_request.refund_request());
  EXPECT_EQ(fake_.usage_request.estimated_tokens(), 0);
  EXPECT_EQ(fake_.usage_request.actual_tokens(), 0);
}

TEST_F(DecisionFlowTest, ARetriedDecisionGivesBackWhatItReservedAgain) {
  // The ledger already holds the decision under this request id: the first attempt's
  // reservation is the one its usage report settles, this one's is refunded, each refund
  // under an id of its own.
  fake_.append_response.set_duplicate(true);
  Result first = Decide();
  ASSERT_TRUE(first.status.ok());
  EXPECT_EQ(first.response.verdict(), v1::VERDICT_ALLOW);
  EXPECT_THAT(fake_.calls(), Contains("authz.ReportUsage"));
  EXPECT_TRUE(fake_.usage_request.refund_request());
  EXPECT_EQ(fake_.usage_request.estimated_tokens(), 500);
  EXPECT_EQ(fake_.usage_request.actual_tokens(), 0);
  const std::string refund_id = fake_.usage_request.request_id();
  EXPECT_THAT(refund_id, ::testing::StartsWith("refund:"));
  ASSERT_TRUE(Decide().status.ok());
  EXPECT_NE(fake_.usage_request.request_id(), refund_id);
}

TEST_F(DecisionFlowTest, AFailureAfterTheReservationRefundsAndAnAuthzDenialDoesNot) {
  // Whether a decision under the fake's current answers fails and gives the budget back.
  auto refunds = [&]() {
    const size_t before = fake_.calls().size();
    EXPECT_FALSE(Decide().status.ok());
    const std::vector<std::string> calls = fake_.calls();
    return std::find(calls.begin() + static_cast<std::ptrdiff_t>(before), calls.end(),
                     "authz.ReportUsage") != calls.end();
  };
  // A dependency down before the ledger: nothing was recorded, the budget comes back.
  fake_.route_status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "down");
  EXPECT_TRUE(refunds());
  fake_.route_status = grpc::Status::OK;
  // The ledger refused the append (its queue full): nothing recorded, the budget comes back.
  fake_.append_status = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full");
  EXPECT_TRUE(refunds());
  // The append's outcome is unknown (the ledger may have recorded the ALLOW, which a retry
  // would find and answer): the budget stays reserved, or it would come back twice.
  for (grpc::StatusCode unknown :
       {grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::DEADLINE_EXCEEDED,
        grpc::StatusCode::UNKNOWN}) {
    fake_.append_status = grpc::Status(unknown, "no answer");
    EXPECT_FALSE(refunds()) << unknown;
  }
  fake_.append_status = grpc::Status::OK;

  FakeDownstream denied;
  denied.verify_response = fake_.verify_response;
  denied.check_response.set_verdict(authz::v1::VERDICT_DENY);
  denied.check_response.set_reason("RATE_LIMITED");
  denied.redact_response = fake_.redact_response;
  denied.append_response = fake_.append_response;
  const v1::DecideResponse response = DecideThrough(denied).response;
  EXPECT_EQ(response.reason(), "RATE_LIMITED");
  EXPECT_THAT(denied.calls(), Not(Contains("authz.ReportUsage")));
}

TEST_F(DecisionFlowTest, NoCompliantRegionIsADeny) {
  fake_.route_response.Clear();
  fake_.route_response.set_decision(region::v1::DECISION_BLOCKED);
  fake_.route_response.set_reason("NO_COMPLIANT_REGION: no healthy endpoint for residency eu");
  Result r = Decide();
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.response.verdict(), v1::VERDICT_DENY);
  EXPECT_EQ(r.response.reason(), "NO_COMPLIANT_REGION");
  EXPECT_THAT(r.response.message(), HasSubstr("residency eu"));
  EXPECT_FALSE(r.response.has_endpoint());
}

TEST_F(DecisionFlowTest, AKeyWithoutTheScopeOrAnAdminKeyIsDenied) {
  fake_.verify_response.mutable_key()->clear_scopes();
  fake_.verify_response.mutable_key()->add_scopes("embeddings");
  Result r = Decide();
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.response.reason(), "KEY_SCOPE");
  EXPECT_EQ(r.response.message(), "the key does not grant chat.completions");
  EXPECT_THAT(fake_.calls(), Not(Contains("authz.Check")));
  // The API the request names is the one its key must grant, and the one authz decides on.
  request_.set_api("embeddings");
  request_.set_request_id("req-embeddings");
  r = Decide();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.response.verdict(), v1::VERDICT_ALLOW) << r.response.message();
  EXPECT_EQ(fake_.check_request.action(), "embeddings");
  EXPECT_EQ(fake_.append_request.entry().metadata().at("api"), "embeddings");
  EXPECT_EQ(r.response.api(), "embeddings");
  request_.clear_api();
  request_.set_request_id("req-1");

  fake_.verify_response.mutable_key()->set_kind(keys::v1::KEY_KIND_ADMIN);
  fake_.verify_response.mutable_key()->clear_project();
  r = Decide();
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.response.verdict(), v1::VERDICT_DENY);
  EXPECT_EQ(r.response.reason(), "KEY_SCOPE");
  // Recorded in the organisation's ledger.
  EXPECT_EQ(fake_.append_request.entry().project(), "");
  EXPECT_EQ(fake_.append_request.entry().environment(), "");
}

TEST_F(DecisionFlowTest, BadInputNamesTheField) {
  request_.clear_model();
  Result r = Decide();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(r.status.error_message(), HasSubstr("model"));
  request_.set_model("gpt-4o");
  request_.set_request_id("has spaces");
  r = Decide();
  EXPECT_THAT(r.status.error_message(), HasSubstr("request_id"));
  request_.set_request_id("ok");
  request_.set_estimated_tokens(-1);
  r = Decide();
  EXPECT_THAT(r.status.error_message(), HasSubstr("estimated_tokens"));
  request_.set_estimated_tokens(1);
  request_.set_residency(static_cast<region::v1::Residency>(99));
  r = Decide();
  EXPECT_THAT(r.status.error_message(), HasSubstr("residency"));
  request_.set_residency(region::v1::RESIDENCY_EU);
  // An API that is no model call (authz's files.read is a permission, not a prompt).
  for (const char* api : {"files.read", "Chat.Completions", "settings.read"}) {
    request_.set_api(api);
    r = Decide();
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << api;
    EXPECT_THAT(r.status.error_message(),
                HasSubstr(absl::StrCat("api: '", api,
                                       "' is not a model API the edge decides on: "
                                       "one of chat.completions, completions, embeddings")));
  }
  request_.clear_api();
  // Identifiers the ledger records as they are: no control bytes, no secrets.
  request_.set_model(std::string("gpt-4o\0", 7));
  r = Decide();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(r.status.error_message(), HasSubstr("model"));
  request_.set_model("psk_proj_2bX9abcdefghijklmnopq");
  r = Decide();
  EXPECT_THAT(r.status.error_message(), HasSubstr("looks like an API key"));
  request_.set_model("gpt-4o");
  request_.set_request_id("PSK_ADMIN_stolen");
  r = Decide();
  EXPECT_THAT(r.status.error_message(), HasSubstr("request_id: holds what looks like an API key"));
  // Recorded under "decision:" and the id: the id leaves room for that.
  request_.set_request_id(std::string(120, 'r'));
  r = Decide();
  EXPECT_THAT(r.status.error_message(), HasSubstr("request_id: at most 119 bytes"));
  request_.set_request_id("ok");
  request_.mutable_messages(0)->set_role(std::string(65, 'u'));
  r = Decide();
  EXPECT_THAT(r.status.error_message(), HasSubstr("messages[0].role"));
  request_.mutable_messages(0)->set_role("user");
  request_.clear_messages();
  r = Decide();
  EXPECT_THAT(r.status.error_message(), HasSubstr("messages"));
  request_.clear_api_key();
  r = Decide();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(fake_.calls(), IsEmpty());
}

// authz and pii are asked together: each is asked before the other has answered.
TEST_F(DecisionFlowTest, AuthzAndPiiAreAskedConcurrently) {
  for (const char* first : {"authz.Check", "pii.Redact"}) {
    fake_.held = {first};
    const size_t earlier_calls = fake_.calls().size();
    Result result;
    absl::Notification done;
    StartDeciding(result, done);
    // `first` has not answered, yet the other was asked (and answered) too.
    const std::vector<std::string> calls = fake_.calls();
    EXPECT_THAT(std::vector<std::string>(calls.begin() + earlier_calls, calls.end()),
                ElementsAre("keys.VerifyKey", "authz.Check", "pii.Redact"))
        << first;
    EXPECT_FALSE(done.HasBeenNotified());
    fake_.ReleaseHeld();
    done.WaitForNotification();
    ASSERT_TRUE(result.status.ok()) << first << " " << result.status.error_message();
    EXPECT_EQ(result.response.verdict(), v1::VERDICT_ALLOW) << first;
  }
}

// A project rule: `type` given `action` (and `op` when it redacts).
void AddRule(authz::v1::PiiPolicy* policy, const char* type, pii::v1::Action action,
             pii::v1::Operator op = pii::v1::OPERATOR_UNSPECIFIED) {
  pii::v1::EntityRule* rule = policy->add_rules();
  rule->set_entity_type(type);
  rule->set_action(action);
  rule->set_operator_(op);
}

// The rule of its own pii was asked to apply to `type`; null when it had none.
const pii::v1::EntityRule* OwnRule(const pii::v1::RedactionPolicy& policy, absl::string_view type) {
  const pii::v1::EntityRule* found = nullptr;
  for (const pii::v1::EntityRule& rule : policy.rules()) {
    if (rule.entity_type() != type) continue;
    EXPECT_EQ(found, nullptr) << "two rules for " << type;
    found = &rule;
  }
  return found;
}

size_t Redactions(FakeDownstream& fake) {
  const std::vector<std::string> calls = fake.calls();
  return static_cast<size_t>(std::count(calls.begin(), calls.end(), "pii.Redact"));
}

TEST_F(DecisionFlowTest, AProjectsOwnPiiRulesReplaceTheDeploymentsForTheirTypes) {
  KnownPiiRules known;
  options_.known_pii_rules = &known;
  prometheus::Counter repeated;
  options_.repeated_redactions = &repeated;
  authz::v1::PiiPolicy* rules = fake_.check_response.mutable_pii();
  AddRule(rules, "EMAIL_ADDRESS", pii::v1::ACTION_ALLOW);
  AddRule(rules, "PHONE_NUMBER", pii::v1::ACTION_REDACT, pii::v1::OPERATOR_MASK);
  AddRule(rules, "PRIVATE_KEY", pii::v1::ACTION_REDACT, pii::v1::OPERATOR_REDACT);

  // First seen: redacted under the deployment's policy beside the check, then again under
  // the project's rules the check states.
  Result r = Decide();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.response.verdict(), v1::VERDICT_ALLOW);
  EXPECT_EQ(Redactions(fake_), 2u);
  const pii::v1::RedactionPolicy& policy = fake_.redact_request.policy();
  ASSERT_NE(OwnRule(policy, "EMAIL_ADDRESS"), nullptr);
  EXPECT_EQ(OwnRule(policy, "EMAIL_ADDRESS")->action(), pii::v1::ACTION_ALLOW);
  ASSERT_NE(OwnRule(policy, "PHONE_NUMBER"), nullptr);
  EXPECT_EQ(OwnRule(policy, "PHONE_NUMBER")->operator_(), pii::v1::OPERATOR_MASK);
  // The deployment blocks private keys in every project: the project's rule cannot loosen it.
  ASSERT_NE(OwnRule(policy, "PRIVATE_KEY"), nullptr);
  EXPECT_EQ(OwnRule(policy, "PRIVATE_KEY")->action(), pii::v1::ACTION_BLOCK);
  // Every other type keeps the deployment's default.
  EXPECT_EQ(policy.default_rule().operator_(), pii::v1::OPERATOR_PLACEHOLDER);
  ASSERT_NE(known.Find("support-eu").get(), nullptr);
  EXPECT_TRUE(SameRules(*known.Find("support-eu"), *rules));
  EXPECT_EQ(repeated.Value(), 1);
  // The ledger says which values went out as sent.
  EXPECT_EQ(fake_.append_request.entry().metadata().at("pii_allowed"), "EMAIL_ADDRESS=1");

  // Known now: one redaction, with the project's rules from the start.
  request_.set_request_id("req-2");
  r = Decide();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(Redactions(fake_), 3u);
  EXPECT_EQ(repeated.Value(), 1);  // Not again.
  ASSERT_NE(OwnRule(fake_.redact_request.policy(), "EMAIL_ADDRESS"), nullptr);
  EXPECT_EQ(OwnRule(fake_.redact_request.policy(), "EMAIL_ADDRESS")->action(),
            pii::v1::ACTION_ALLOW);

  // The project's rules removed: the next decision redacts again under the deployment's
  // policy alone, and that is remembered.
  fake_.check_response.clear_pii();
  request_.set_request_id("req-3");
  r = Decide();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(Redactions(fake_), 5u);
  EXPECT_EQ(OwnRule(fake_.redact_request.policy(), "EMAIL_ADDRESS"), nullptr);
  ASSERT_NE(OwnRule(fake_.redact_request.policy(), "PRIVATE_KEY"), nullptr);
  EXPECT_EQ(OwnRule(fake_.redact_request.policy(), "PRIVATE_KEY")->action(), pii::v1::ACTION_BLOCK);
  ASSERT_NE(known.Find("support-eu").get(), nullptr);
  EXPECT_EQ(known.Find("support-eu")->rules_size(), 0);
  EXPECT_EQ(repeated.Value(), 2);
}

TEST_F(DecisionFlowTest, WithoutKnownRulesEachDecisionOfAProjectWithRulesRedactsTwice) {
  AddRule(fake_.check_response.mutable_pii(), "EMAIL_ADDRESS", pii::v1::ACTION_BLOCK);
  for (int i = 1; i <= 2; ++i) {
    request_.set_request_id(absl::StrCat("req-", i));
    Result r = Decide();
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(Redactions(fake_), 2u * i);
    ASSERT_NE(OwnRule(fake_.redact_request.policy(), "EMAIL_ADDRESS"), nullptr);
    EXPECT_EQ(OwnRule(fake_.redact_request.policy(), "EMAIL_ADDRESS")->action(),
              pii::v1::ACTION_BLOCK);
  }
}

TEST_F(DecisionFlowTest, ThePiiVerdictIsTheOneUnderTheRulesTheCheckStates) {
  KnownPiiRules known;
  options_.known_pii_rules = &known;
  // Remembered: the project allowed e-mail addresses; it blocks them now. The redaction under
  // the old rules let the request through; the one under the check's rules blocks it.
  authz::v1::PiiPolicy old_rules;
  AddRule(&old_rules, "EMAIL_ADDRESS", pii::v1::ACTION_ALLOW);
  known.Remember("support-eu", old_rules);
  AddRule(fake_.check_response.mutable_pii(), "EMAIL_ADDRESS", pii::v1::ACTION_BLOCK);
  fake_.held = {"pii.Redact"};
  Result result;
  absl::Notification done;
  StartDeciding(result, done);
  ASSERT_EQ(Redactions(fake_), 1u);
  ASSERT_NE(OwnRule(fake_.redact_request.policy(), "EMAIL_ADDRESS"), nullptr);
  EXPECT_EQ(OwnRule(fake_.redact_request.policy(), "EMAIL_ADDRESS")->action(),
            pii::v1::ACTION_ALLOW);
  // pii's answer to a redaction asked from now on (under the check's rules): blocked.
  fake_.redact_response.mutable_report()->set_blocked(true);
  fake_.redact_response.mutable_report()->add_blocking_types("EMAIL_ADDRESS");
  fake_.ReleaseHeld();  // The first redaction's answer, asked before: not blocked.
  ASSERT_EQ(Redactions(fake_), 2u);
  EXPECT_EQ(OwnRule(fake_.redact_request.policy(), "EMAIL_ADDRESS")->action(),
            pii::v1::ACTION_BLOCK);
  fake_.ReleaseHeld();
  done.WaitForNotification();
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.response.verdict(), v1::VERDICT_DENY);
  EXPECT_EQ(result.response.reason(), "PII_BLOCKED");
  EXPECT_TRUE(SameRules(*known.Find("support-eu"), fake_.check_response.pii()));
}

TEST_F(DecisionFlowTest, EnvoysCheckBlocksWhatWouldBeRedactedAndAllowsWhatTheProjectAllows) {
  options_.forwards_as_sent = true;
  authz::v1::PiiPolicy* rules = fake_.check_response.mutable_pii();
  AddRule(rules, "EMAIL_ADDRESS", pii::v1::ACTION_ALLOW);
  AddRule(rules, "PHONE_NUMBER", pii::v1::ACTION_REDACT, pii::v1::OPERATOR_MASK);
  Result r = Decide();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  const pii::v1::RedactionPolicy& policy = fake_.redact_request.policy();
  EXPECT_EQ(policy.default_rule().action(), pii::v1::ACTION_BLOCK);
  EXPECT_EQ(OwnRule(policy, "EMAIL_ADDRESS")->action(), pii::v1::ACTION_ALLOW);
  EXPECT_EQ(OwnRule(policy, "PHONE_NUMBER")->action(), pii::v1::ACTION_BLOCK);
  EXPECT_EQ(OwnRule(policy, "PRIVATE_KEY")->action(), pii::v1::ACTION_BLOCK);
}

TEST_F(DecisionFlowTest, ARetryMayNotSendAsIsWhatItsRecordedAllowRedacted) {
  ASSERT_TRUE(Decide().status.ok());  // The first attempt: the address replaced.
  RecordFirstAttempt();
  ASSERT_FALSE(fake_.get_entry_response.entry().metadata().contains("pii_allowed"));

  // By the retry, the project lets e-mail addresses through.
  FakeDownstream retry;
  retry.VerifyAsAlicesProjectKey();
  retry.check_response = fake_.check_response;
  AddRule(retry.check_response.mutable_pii(), "EMAIL_ADDRESS", pii::v1::ACTION_ALLOW);
  AsRetryOfTheFirstAttempt(retry);
  auto [status, response] = DecideThrough(retry);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("redacted EMAIL_ADDRESS"));
  EXPECT_NE(response.verdict(), v1::VERDICT_ALLOW);
  EXPECT_EQ(response.messages_size(), 0);
  // Nothing more recorded than the attempt refused as the ledger's (its reservation back).
  const std::vector<std::string> calls = retry.calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "audit.Append"), 1);
  EXPECT_THAT(calls, Contains("authz.ReportUsage"));
}

TEST_F(DecisionFlowTest, PiiRefusingAProjectsRulesIsAFailedPrecondition) {
  prometheus::Counter refused;
  options_.project_rules_refused = &refused;
  AddRule(fake_.check_response.mutable_pii(), "EMPLOYEE_ID", pii::v1::ACTION_BLOCK);
  fake_.redact_status =
      PolicyRefusal("policy.rules[1].entity_type: unknown entity type 'EMPLOYEE_ID'");
  Result r = Decide();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(r.status.error_message(), HasSubstr("the project's data_policy.pii rules"));
  EXPECT_THAT(r.status.error_message(), HasSubstr("'EMPLOYEE_ID'"));
  EXPECT_THAT(fake_.calls(), Not(Contains("audit.Append")));
  EXPECT_EQ(refused.Value(), 1);
  // A refusal of the edge's own rule (the first, PRIVATE_KEY's) stays the edge's to fix.
  fake_.redact_status = PolicyRefusal("policy.rules[0].entity_type: unknown entity type");
  request_.set_request_id("req-2");
  r = Decide();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(r.status.error_message(), HasSubstr("setting to fix: blocked_entity_types"));
  EXPECT_EQ(refused.Value(), 1);  // Not the project's.
}

TEST_F(DecisionFlowTest, ARedactionPiiRefusedUnderStaleRulesIsDoneAgainUnderTheChecks) {
  KnownPiiRules known;
  options_.known_pii_rules = &known;
  // Remembered: a rule pii refuses (its custom type was removed since); the check states the
  // project's rules as they are now, which pii takes.
  authz::v1::PiiPolicy stale;
  AddRule(&stale, "EMPLOYEE_ID", pii::v1::ACTION_BLOCK);
  known.Remember("support-eu", stale);
  AddRule(fake_.check_response.mutable_pii(), "EMAIL_ADDRESS", pii::v1::ACTION_ALLOW);
  fake_.redact_statuses = {
      PolicyRefusal("policy.rules: unknown entity type 'EMPLOYEE_ID' (ListEntityTypes ...)")};
  fake_.async = true;  // Every answer from a thread of its own.
  Result r = Decide();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.response.verdict(), v1::VERDICT_ALLOW);
  EXPECT_EQ(Redactions(fake_), 2u);
  EXPECT_EQ(OwnRule(fake_.redact_request.policy(), "EMPLOYEE_ID"), nullptr);
  EXPECT_TRUE(SameRules(*known.Find("support-eu"), fake_.check_response.pii()));
}

TEST_F(DecisionFlowTest, EveryDownstreamCallCarriesTheDecisionsDeadline) {
  const absl::Time deadline = absl::Now() + absl::Milliseconds(7'321);
  Result r = Decide(deadline);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  const auto deadlines = fake_.deadlines();
  ASSERT_EQ(deadlines.size(), 5u);
  for (const auto& [call, d] : deadlines) EXPECT_EQ(d, absl::ToChronoTime(deadline)) << call;
}

TEST_F(DecisionFlowTest, ConcurrentAnswersFromOtherThreads) {
  fake_.async = true;
  for (int i = 0; i < 200; ++i) {
    Result r = Decide();
    ASSERT_TRUE(r.status.ok()) << i;
    ASSERT_EQ(r.response.verdict(), v1::VERDICT_ALLOW) << i;
  }
}

TEST_F(DecisionFlowTest, TheEstimateIsNeverLessThanThePromptsSize) {
  // 1 MiB of prompt estimated at 1 token: counted, reserved, recorded and given back as
  // 262144 (a token per 4 bytes), so that tokens-per-minute limits count it.
  request_.mutable_messages(0)->set_content(std::string(1 << 20, 'x'));
  request_.set_estimated_tokens(1);
  Result r = Decide();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.response.estimated_tokens(), 262144);
  EXPECT_EQ(fake_.check_request.estimated_tokens(), 262144);
  EXPECT_EQ(fake_.append_request.entry().tokens(), 262144);
  EXPECT_EQ(fake_.append_request.entry().metadata().at("requested_tokens"), "1");
  fake_.redact_response.mutable_report()->set_blocked(true);
  ASSERT_EQ(Decide().response.reason(), "PII_BLOCKED");
  EXPECT_EQ(fake_.usage_request.estimated_tokens(), 262144);
  // A larger estimate stands as given.
  request_.set_estimated_tokens(300000);
  fake_.redact_response.mutable_report()->set_blocked(false);
  r = Decide();
  EXPECT_EQ(r.response.estimated_tokens(), 300000);
  EXPECT_EQ(fake_.check_request.estimated_tokens(), 300000);
  EXPECT_FALSE(fake_.append_request.entry().metadata().contains("requested_tokens"));
  // A small prompt keeps a small estimate (the fixture's 28 bytes, 500 tokens).
  request_.mutable_messages(0)->set_content("Mail jane@example.com please");
  request_.set_estimated_tokens(0);
  r = Decide();
  EXPECT_EQ(r.response.estimated_tokens(), 7);
}

TEST_F(DecisionFlowTest, AnAnswerTooLargeForClientsIsRefusedBeforeItIsRecorded) {
  // A prompt dense with values: its mapping would make the answer pass the limit.
  options_.max_answer_bytes = 64 << 10;
  for (int i = 0; i < 3000; ++i) {
    pii::v1::PlaceholderEntry* entry = fake_.redact_response.add_mapping();
    entry->set_placeholder(absl::StrCat("<EMAIL_ADDRESS_", i + 2, ">"));
    entry->set_entity_type("EMAIL_ADDRESS");
    entry->set_value(absl::StrCat("user", i, "@example.com"));
  }
  request_.set_return_mapping(true);
  Result r = Decide();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(r.status.error_message(), HasSubstr("return_mapping"));
  EXPECT_THAT(r.status.error_message(), HasSubstr("max_answer_bytes (65536)"));
  // Nothing recorded, nothing routed, the reservation given back.
  EXPECT_THAT(fake_.calls(), Not(Contains("audit.Append")));
  EXPECT_THAT(fake_.calls(), Not(Contains("region.Route")));
  EXPECT_THAT(fake_.calls(), Contains("authz.ReportUsage"));
  EXPECT_TRUE(fake_.usage_request.refund_request());
  // Without the mapping the same decision fits, and is allowed.
  request_.set_return_mapping(false);
  r = Decide();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.response.verdict(), v1::VERDICT_ALLOW);
  // Redacted messages too large on their own name the messages.
  fake_.redact_response.mutable_messages(0)->set_content(std::string(70 << 10, 'x'));
  r = Decide();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(r.status.error_message(), HasSubstr("messages: "));
}

class ReportUsageFlowTest : public DecisionFlowTest {
 protected:
  void SetUp() override {
    DecisionFlowTest::SetUp();
    usage_.set_api_key("psk_proj_secret");
    usage_.set_request_id("req-1");
    usage_.set_endpoint_id("azure-westeurope");
    usage_.set_model("gpt-4o");
    usage_.set_estimated_tokens(500);
    usage_.set_actual_tokens(320);
    usage_.mutable_latency()->set_nanos(450'000'000);
    usage_.set_outcome(v1::UPSTREAM_OUTCOME_SUCCESS);
    usage_.set_http_status(200);
    fake_.usage_response.set_adjusted_tokens(-180);
    // The decision, as the ledger holds it.
    audit::v1::Entry* decision = fake_.get_entry_response.mutable_entry();
    decision->mutable_ledger()->set_project("support-eu");
    decision->mutable_ledger()->set_environment("production");
    decision->set_index(40);
    decision->set_action(audit::v1::ACTION_DECISION_ALLOW);
    decision->set_model("gpt-4o");
    decision->set_tokens(500);
    decision->set_request_id("decision:req-1");
    decision->mutable_time()->set_seconds(1'800'000'000);
    (*decision->mutable_metadata())["key_id"] = "key-1";
    (*decision->mutable_metadata())["endpoint"] = "azure-westeurope";
  }

  grpc::Status Report(v1::ReportUsageResponse* response,
                      absl::Time deadline = absl::Now() + absl::Seconds(10)) {
    grpc::Status status;
    absl::Notification done;
    StartReportUsage(&fake_, &usage_, response, deadline, [&](grpc::Status s) {
      status = std::move(s);
      done.Notify();
    });
    done.WaitForNotification();
    return status;
  }

  v1::ReportUsageRequest usage_;
};

TEST_F(ReportUsageFlowTest, ReconcilesFeedsHealthAndRecords) {
  v1::ReportUsageResponse response;
  ASSERT_TRUE(Report(&response).ok());
  EXPECT_EQ(response.adjusted_tokens(), -180);
  EXPECT_EQ(response.audit_id(), "support-eu/production/41");
  EXPECT_EQ(fake_.usage_request.actual_tokens(), 320);
  EXPECT_FALSE(fake_.usage_request.refund_request());  // The call reached the model.
  // authz applies the report once per decision, named by its ledger entry: the same request
  // id in another project is another decision.
  EXPECT_EQ(fake_.usage_request.request_id(), "support-eu/production/40");
  EXPECT_EQ(fake_.usage_request.principal().id(), "alice@example.com");
  EXPECT_TRUE(fake_.outcome_request.success());
  EXPECT_EQ(fake_.outcome_request.latency().nanos(), 450'000'000);
  // When the call was routed, from the decision's time: a late report cannot close or re-open
  // a breaker that changed since.
  EXPECT_EQ(fake_.outcome_request.routed_at().seconds(), 1'800'000'000);
  // Reported as the key's project, the tenant: region's breakers open only on failures from
  // enough of them.
  EXPECT_EQ(fake_.outcome_request.reporter(), "support-eu");
  EXPECT_EQ(fake_.append_request.entry().action(), audit::v1::ACTION_API_CALL);
  EXPECT_EQ(fake_.append_request.entry().tokens(), 320);
  EXPECT_EQ(fake_.append_request.entry().request_id(), "usage:req-1");
}

TEST_F(ReportUsageFlowTest, EveryDownstreamCallCarriesTheReportsDeadline) {
  const absl::Time deadline = absl::Now() + absl::Milliseconds(6'543);
  v1::ReportUsageResponse response;
  ASSERT_TRUE(Report(&response, deadline).ok());
  const auto deadlines = fake_.deadlines();
  // keys, the decision's entry, authz, region and audit.
  ASSERT_EQ(deadlines.size(), 5u);
  for (const auto& [call, d] : deadlines) EXPECT_EQ(d, absl::ToChronoTime(deadline)) << call;
}

// An outcome its HTTP status contradicts is refused before anything is applied: it would feed
// the endpoint's health the wrong way.
TEST_F(ReportUsageFlowTest, AnOutcomeItsHttpStatusContradictsIsRefused) {
  for (auto [outcome, status] :
       {std::pair{v1::UPSTREAM_OUTCOME_SUCCESS, 500}, std::pair{v1::UPSTREAM_OUTCOME_SUCCESS, 404},
        std::pair{v1::UPSTREAM_OUTCOME_REJECTED, 200},
        std::pair{v1::UPSTREAM_OUTCOME_REJECTED, 503},
        // REJECTED names the 4xx the endpoint answered with.
        std::pair{v1::UPSTREAM_OUTCOME_REJECTED, 0}, std::pair{v1::UPSTREAM_OUTCOME_ERROR, 200}}) {
    usage_.set_outcome(outcome);
    usage_.set_http_status(status);
    v1::ReportUsageResponse response;
    const grpc::Status s = Report(&response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status;
    EXPECT_THAT(s.error_message(),
                HasSubstr(absl::StrCat("http_status: ", status, " contradicts outcome ")))
        << status;
  }
  EXPECT_THAT(fake_.calls(), Not(Contains("region.ReportOutcome")));
  for (auto [outcome, status] :
       {std::pair{v1::UPSTREAM_OUTCOME_SUCCESS, 0}, std::pair{v1::UPSTREAM_OUTCOME_ERROR, 0},
        std::pair{v1::UPSTREAM_OUTCOME_ERROR, 429},
        std::pair{v1::UPSTREAM_OUTCOME_REJECTED, 429}}) {
    usage_.set_outcome(outcome);
    usage_.set_http_status(status);
    v1::ReportUsageResponse response;
    EXPECT_TRUE(Report(&response).ok()) << status;
  }
}

// Each tenant reports as itself: the breaker of an endpoint several projects use opens only
// on failures from enough of them.
TEST_F(ReportUsageFlowTest, TheOutcomeIsReportedAsTheCallingKeysProject) {
  fake_.verify_response.mutable_key()->set_project("billing-us");
  usage_.set_outcome(v1::UPSTREAM_OUTCOME_ERROR);
  usage_.set_http_status(503);
  v1::ReportUsageResponse response;
  const grpc::Status s = Report(&response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(fake_.outcome_request.success());
  EXPECT_EQ(fake_.outcome_request.reporter(), "billing-us");
  EXPECT_EQ(fake_.usage_request.project(), "billing-us");
}

TEST_F(ReportUsageFlowTest, UsageMayNameTheEstimateTheCallerGaveOrTheOneCharged) {
  // The prompt's size raised the decision's estimate from 40 to 500.
  (*fake_.get_entry_response.mutable_entry()->mutable_metadata())["requested_tokens"] = "40";
  v1::ReportUsageResponse response;
  usage_.set_estimated_tokens(40);
  ASSERT_TRUE(Report(&response).ok());
  EXPECT_EQ(fake_.usage_request.estimated_tokens(), 500);
  usage_.set_estimated_tokens(500);
  ASSERT_TRUE(Report(&response).ok());
  usage_.set_estimated_tokens(41);
  grpc::Status status = Report(&response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("estimated 500"));
}

TEST_F(ReportUsageFlowTest, TheDecisionNotTheCallerSaysWhatWasReservedAndWhere) {
  // Left out, the estimate and the endpoint come from the decision in the key's ledger.
  usage_.clear_estimated_tokens();
  usage_.clear_endpoint_id();
  v1::ReportUsageResponse response;
  ASSERT_TRUE(Report(&response).ok());
  EXPECT_EQ(fake_.get_entry_request.ledger().project(), "support-eu");
  EXPECT_EQ(fake_.get_entry_request.ledger().environment(), "production");
  EXPECT_EQ(fake_.get_entry_request.request_id(), "decision:req-1");
  EXPECT_EQ(fake_.usage_request.estimated_tokens(), 500);
  EXPECT_EQ(fake_.outcome_request.endpoint_id(), "azure-westeurope");
  EXPECT_EQ(fake_.append_request.entry().metadata().at("endpoint"), "azure-westeurope");

  struct Case {
    std::function<void()> change;
    grpc::StatusCode code;
    const char* message;
  };
  audit::v1::Entry decision = fake_.get_entry_response.entry();
  for (const Case& c : std::initializer_list<Case>{
           // A request never decided: a refill of the budget for free.
           {[&] { fake_.get_entry_status = grpc::Status(grpc::StatusCode::NOT_FOUND, "none"); },
            grpc::StatusCode::FAILED_PRECONDITION, "no decision of this key"},
           {[&] {
              fake_.get_entry_response.mutable_entry()->set_action(audit::v1::ACTION_DECISION_DENY);
            },
            grpc::StatusCode::FAILED_PRECONDITION, "did not allow"},
           // Another key's DENY is answered as no decision too, not as a DENY.
           {[&] {
              fake_.get_entry_response.mutable_entry()->set_action(audit::v1::ACTION_DECISION_DENY);
              (*fake_.get_entry_response.mutable_entry()->mutable_metadata())["key_id"] = "key-2";
            },
            grpc::StatusCode::FAILED_PRECONDITION, "no decision of this key"},
           {[&] {
              (*fake_.get_entry_response.mutable_entry()->mutable_metadata())["key_id"] = "key-2";
            },
            grpc::StatusCode::FAILED_PRECONDITION, "no decision of this key"},
           // A successor of some other key is still another key.
           {[&] {
              fake_.verify_response.mutable_key()->set_rotated_from("key-0");
              (*fake_.get_entry_response.mutable_entry()->mutable_metadata())["key_id"] = "key-2";
            },
            grpc::StatusCode::FAILED_PRECONDITION, "no decision of this key"},
           // Another endpoint's health, or a smaller estimate than reserved.
           {[&] { usage_.set_endpoint_id("aws-us-east-1"); }, grpc::StatusCode::INVALID_ARGUMENT,
            "routed to azure-westeurope"},
           {[&] { usage_.set_estimated_tokens(10'000'000); }, grpc::StatusCode::INVALID_ARGUMENT,
            "estimated 500"},
           {[&] { usage_.set_model("o3-mini"); }, grpc::StatusCode::INVALID_ARGUMENT,
            "decision was for gpt-4o"},
           {[&] { fake_.get_entry_status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"); },
            grpc::StatusCode::UNAVAILABLE, "audit"}}) {
    SetUp();
    c.change();
    const size_t calls_before = fake_.calls().size();
    grpc::Status s = Report(&response);
    EXPECT_EQ(s.error_code(), c.code) << c.message;
    EXPECT_THAT(s.error_message(), HasSubstr(c.message));
    // Nothing reconciled, reported or recorded.
    const std::vector<std::string> calls = fake_.calls();
    EXPECT_THAT(std::vector<std::string>(calls.begin() + calls_before, calls.end()),
                ElementsAre("keys.VerifyKey", "audit.GetEntry"))
        << c.message;
    fake_.get_entry_status = grpc::Status::OK;
    *fake_.get_entry_response.mutable_entry() = decision;
  }
}

TEST_F(ReportUsageFlowTest, AKeyThatExpiredSinceItsDecisionStillReportsItsUsage) {
  // keys is asked to take a key that expired since; a Decide never asks it.
  fake_.verify_response.mutable_key()->set_state(keys::v1::KEY_STATE_EXPIRED);
  v1::ReportUsageResponse response;
  grpc::Status s = Report(&response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(fake_.verify_request.for_usage_report());
  EXPECT_EQ(fake_.usage_request.actual_tokens(), 320);
  EXPECT_EQ(fake_.append_request.entry().action(), audit::v1::ACTION_API_CALL);
  SetUp();
  ASSERT_TRUE(Decide().status.ok());
  EXPECT_FALSE(fake_.verify_request.for_usage_report());
}

// An expired key reports its own decisions' usage and nothing else; any other refusal of it
// is a key that is not valid, as a revoked or unknown key's is: a report tells no one which.
TEST_F(ReportUsageFlowTest, AnExpiredKeyWithNoDecisionToReportIsNotValid) {
  const audit::v1::Entry decision = fake_.get_entry_response.entry();
  for (const auto& [what, change] :
       std::initializer_list<std::pair<const char*, std::function<void()>>>{
           {"no decision",
            [&] { fake_.get_entry_status = grpc::Status(grpc::StatusCode::NOT_FOUND, "none"); }},
           {"another key's",
            [&] {
              (*fake_.get_entry_response.mutable_entry()->mutable_metadata())["key_id"] = "key-2";
            }},
           {"an admin key", [&] { fake_.verify_response.mutable_key()->clear_project(); }},
           // Its own decision, refused for what is reported of it.
           {"its own DENY",
            [&] {
              fake_.get_entry_response.mutable_entry()->set_action(audit::v1::ACTION_DECISION_DENY);
            }},
           {"another model", [&] { usage_.set_model("o3-mini"); }}}) {
    SetUp();
    fake_.verify_response.mutable_key()->set_state(keys::v1::KEY_STATE_EXPIRED);
    change();
    v1::ReportUsageResponse response;
    const grpc::Status s = Report(&response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << what;
    EXPECT_EQ(s.error_message(), "API key is not valid") << what;
    // The same refusals of a key that has not expired say what they are.
    SetUp();
    fake_.verify_response.mutable_key()->set_state(keys::v1::KEY_STATE_ACTIVE);
    change();
    EXPECT_NE(Report(&response).error_code(), grpc::StatusCode::UNAUTHENTICATED) << what;
    fake_.get_entry_status = grpc::Status::OK;
    *fake_.get_entry_response.mutable_entry() = decision;
  }
}

TEST_F(ReportUsageFlowTest, TheSuccessorOfTheDecisionsKeyMayReportItsUsage) {
  // The call was decided with key-0 during a rotation's overlap; key-1 replaced it since.
  (*fake_.get_entry_response.mutable_entry()->mutable_metadata())["key_id"] = "key-0";
  fake_.verify_response.mutable_key()->set_rotated_from("key-0");
  v1::ReportUsageResponse response;
  grpc::Status s = Report(&response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(fake_.usage_request.request_id(), "support-eu/production/40");
  // Recorded under the decision's key, so that a retry with either key is the same entry.
  EXPECT_EQ(fake_.append_request.entry().metadata().at("key_id"), "key-0");
  // Not the other way round: the old key reporting its successor's decision.
  SetUp();
  (*fake_.get_entry_response.mutable_entry()->mutable_metadata())["key_id"] = "key-2";
  fake_.verify_response.mutable_key()->set_rotated_from("");
  EXPECT_EQ(Report(&response).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

// A latency region would refuse is refused before anything is reconciled or recorded: the
// report is not half applied.
TEST_F(ReportUsageFlowTest, ALatencyRegionWouldRefuseIsRefusedFirst) {
  for (auto [seconds, nanos] :
       {std::pair<int64_t, int32_t>{3600, 1}, {0, 1'000'000'000}, {1, -1}, {-1, 0}}) {
    SCOPED_TRACE(absl::StrCat(seconds, "s ", nanos, "ns"));
    SetUp();
    usage_.mutable_latency()->set_seconds(seconds);
    usage_.mutable_latency()->set_nanos(nanos);
    v1::ReportUsageResponse response;
    const grpc::Status s = Report(&response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("latency"));
    EXPECT_THAT(fake_.calls(), IsEmpty());
  }
  SetUp();
  usage_.mutable_latency()->set_seconds(3600);
  usage_.mutable_latency()->set_nanos(0);
  v1::ReportUsageResponse response;
  EXPECT_TRUE(Report(&response).ok());
}

TEST_F(ReportUsageFlowTest, AnEndpointsOwnRefusalIsNotItsHealth) {
  usage_.set_outcome(v1::UPSTREAM_OUTCOME_REJECTED);
  usage_.set_http_status(400);
  v1::ReportUsageResponse response;
  ASSERT_TRUE(Report(&response).ok());
  EXPECT_THAT(fake_.calls(), Not(Contains("region.ReportOutcome")));
  EXPECT_EQ(fake_.append_request.entry().outcome(), audit::v1::OUTCOME_ERROR);
}

TEST_F(ReportUsageFlowTest, ARetryFeedsTheEndpointsHealthNoMore) {
  fake_.usage_response.set_duplicate(true);
  v1::ReportUsageResponse response;
  ASSERT_TRUE(Report(&response).ok());
  EXPECT_TRUE(response.duplicate());
  EXPECT_EQ(response.audit_id(), "support-eu/production/41");
  EXPECT_THAT(fake_.calls(), Contains("authz.ReportUsage"));
  EXPECT_THAT(fake_.calls(), Not(Contains("region.ReportOutcome")));
}

TEST_F(ReportUsageFlowTest, UnknownEndpointAndFailures) {
  // An endpoint deleted since the decision has no health to feed: the usage is reconciled and
  // recorded all the same.
  fake_.outcome_status = grpc::Status(grpc::StatusCode::NOT_FOUND, "no such endpoint");
  v1::ReportUsageResponse response;
  grpc::Status s = Report(&response);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.audit_id(), "support-eu/production/41");
  EXPECT_THAT(fake_.calls(), Contains("region.ReportOutcome"));
  fake_.outcome_status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "down");
  s = Report(&response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("region"));
  fake_.outcome_status = grpc::Status::OK;
  fake_.append_status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "down");
  s = Report(&response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("audit"));
  fake_.append_status = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "used");
  s = Report(&response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  const std::string reported_before =
      "request_id: this decision's usage was reported before with other values; a decision's "
      "usage is reported once";
  EXPECT_EQ(s.error_message(), reported_before);
  // authz's word for the same mistake is ALREADY_EXISTS; the caller hears one status for it.
  fake_.append_status = grpc::Status::OK;
  fake_.usage_status = grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "reported before");
  s = Report(&response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(), reported_before);
  fake_.usage_status = grpc::Status::OK;
  // A decision's id: no longer than one.
  usage_.set_request_id(std::string(120, 'r'));
  s = Report(&response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("at most 119 bytes"));
  usage_.clear_request_id();
  s = Report(&response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("request_id"));
}

TEST(RedactionPolicyTest, OperatorsAndBlockedTypes) {
  absl::StatusOr<pii::v1::RedactionPolicy> p =
      MakeRedactionPolicy("mask", {"US_SSN", "PRIVATE_KEY"});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->default_rule().operator_(), pii::v1::OPERATOR_MASK);
  ASSERT_EQ(p->rules_size(), 2);
  EXPECT_EQ(p->rules(1).entity_type(), "PRIVATE_KEY");
  EXPECT_EQ(p->rules(1).action(), pii::v1::ACTION_BLOCK);
  EXPECT_THAT(MakeRedactionPolicy("scramble", {}).status().message(),
              HasSubstr("redaction_operator"));
  EXPECT_THAT(MakeRedactionPolicy("redact", {"us-ssn"}).status().message(),
              HasSubstr("blocked_entity_types"));
}

TEST(RedactionPolicyTest, EveryTypeMustBeOnePiiDetects) {
  pii::v1::ListEntityTypesResponse known;
  for (const char* type : {"PRIVATE_KEY", "AWS_ACCESS_KEY", "EMPLOYEE_ID"}) {
    known.add_entity_types()->set_entity_type(type);
  }
  known.mutable_entity_types(2)->set_custom(true);
  // Custom recognizers' types count like built-in ones.
  EXPECT_TRUE(CheckRedactionServable(
                  *MakeRedactionPolicy("placeholder", {"PRIVATE_KEY", "EMPLOYEE_ID"}), known)
                  .ok());
  EXPECT_TRUE(CheckRedactionServable(*MakeRedactionPolicy("placeholder", {}), known).ok());

  absl::Status s = CheckRedactionServable(
      *MakeRedactionPolicy("placeholder", {"PRIVATE_KEY", "AWS_ACCESS_KEYS", "GITHUB_TOKENS"}),
      known);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("blocked_entity_types: the pii service detects no entity type "
                                     "'AWS_ACCESS_KEYS', 'GITHUB_TOKENS'"));
  EXPECT_THAT(s.message(), Not(HasSubstr("'PRIVATE_KEY'")));
}

TEST(RedactionPolicyTest, HashingNeedsAPiiWithAPseudonymKey) {
  pii::v1::ListEntityTypesResponse known;
  known.add_entity_types()->set_entity_type("PRIVATE_KEY");
  const pii::v1::RedactionPolicy hashing = *MakeRedactionPolicy("hash", {"PRIVATE_KEY"});
  absl::Status s = CheckRedactionServable(hashing, known);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("redaction_operator: hash, but the pii service has no "
                                     "pseudonym key"));
  EXPECT_TRUE(
      CheckRedactionServable(*MakeRedactionPolicy("placeholder", {"PRIVATE_KEY"}), known).ok());
  known.set_keyed_hashing(true);
  EXPECT_TRUE(CheckRedactionServable(hashing, known).ok());
}

}  // namespace
}  // namespace policy::edge
