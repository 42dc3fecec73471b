// The gRPC surface in process: a real server and channel on 127.0.0.1.
#include "services/pii/pii_service.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "common/server/server_runner.h"
#include "common/status/grpc_status.h"
#include "common/status/status.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/pii/scan_budget.h"

namespace policy::pii {
namespace {

using ::testing::HasSubstr;

class PiiServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { StartWith(Limits(absl::Seconds(30))); }

  // Small limits, with `max_document_time` long enough (30 s) for any document a test
  // streams, or short (2 s) for the test of a stream that holds its place.
  static PiiLimits Limits(absl::Duration max_document_time) {
    return PiiLimits{.max_request_bytes = 4096,
                     .max_messages = 8,
                     .max_document_bytes = 1 << 16,
                     .max_documents = 2,
                     .max_document_time = max_document_time};
  }
  void TearDown() override { runner_->Shutdown(); }

  // (Re)starts the service with `limits`.
  void StartWith(const PiiLimits& limits) {
    if (runner_ != nullptr) runner_->Shutdown();
    stub_.reset();
    service_.reset();
    runner_.reset();
    absl::StatusOr<std::vector<RecognizerSpec>> custom = ParseRecognizersYaml(
        "recognizers:\n"
        "  - name: employee_id\n"
        "    entity_type: EMPLOYEE_ID\n"
        "    pattern: 'EMP-[0-9]{6}'\n"
        "    score: 0.9\n");
    ASSERT_TRUE(custom.ok()) << custom.status();
    absl::StatusOr<std::unique_ptr<Detector>> detector = Detector::Create(*custom);
    ASSERT_TRUE(detector.ok()) << detector.status();
    engine_ = std::make_unique<PiiEngine>(*std::move(detector),
                                          *PseudonymKeys::Create(std::string(32, 'm')), limits);
    server::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    runner_ = std::make_unique<server::ServerRunner>(options);
    service_ = std::make_unique<PiiService>(engine_.get(), &runner_->metrics_registry());
    runner_->AddService(service_.get(), v1::PiiService::service_full_name());
    ASSERT_TRUE(runner_->Start().ok());
    stub_ = v1::PiiService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(runner_->grpc_port()), grpc::InsecureChannelCredentials()));
  }

  static v1::ChatMessage* Add(google::protobuf::RepeatedPtrField<v1::ChatMessage>* messages,
                              const std::string& role, const std::string& content) {
    v1::ChatMessage* m = messages->Add();
    m->set_role(role);
    m->set_content(content);
    return m;
  }

  grpc::Status Redact(const v1::RedactRequest& request, v1::RedactResponse* response) {
    grpc::ClientContext context;
    return stub_->Redact(&context, request, response);
  }

  // Streams `document` in chunks cut at `cuts` (byte offsets, increasing).
  grpc::Status RedactDocument(const std::string& document, const std::vector<size_t>& cuts,
                              const v1::RedactDocumentOptions& options,
                              v1::RedactDocumentResponse* response) {
    grpc::ClientContext context;
    auto writer = stub_->RedactDocument(&context, response);
    size_t begin = 0;
    std::vector<size_t> ends = cuts;
    ends.push_back(document.size());
    for (size_t i = 0; i < ends.size(); ++i) {
      v1::RedactDocumentRequest chunk;
      if (i == 0) *chunk.mutable_options() = options;
      chunk.set_chunk(document.substr(begin, ends[i] - begin));
      begin = ends[i];
      if (!writer->Write(chunk)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  std::unique_ptr<PiiEngine> engine_;
  std::unique_ptr<server::ServerRunner> runner_;
  std::unique_ptr<PiiService> service_;
  std::unique_ptr<v1::PiiService::Stub> stub_;
};

TEST_F(PiiServiceTest, ScanReportsFindingsPerMessageWithoutChangingText) {
  v1::ScanRequest request;
  Add(request.mutable_messages(), "system", "You are a helpful assistant.");
  Add(request.mutable_messages(), "user", "My card is 4111 1111 1111 1111, badge EMP-123456.");
  v1::ScanResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->Scan(&context, request, &response).ok());
  ASSERT_EQ(response.findings_size(), 2);
  const v1::Finding& card = response.findings(0);
  EXPECT_EQ(card.entity_type(), "CREDIT_CARD");
  EXPECT_EQ(card.message_index(), 1u);
  EXPECT_EQ(request.messages(1).content().substr(card.begin(), card.end() - card.begin()),
            "4111 1111 1111 1111");
  EXPECT_EQ(card.input_begin(), card.begin());
  EXPECT_EQ(card.input_end(), card.end());
  EXPECT_GT(card.score(), 0.5);
  EXPECT_FALSE(card.recognizer().empty());
  EXPECT_EQ(response.findings(1).entity_type(), "EMPLOYEE_ID");
  EXPECT_EQ(response.findings(1).recognizer(), "employee_id");
  EXPECT_EQ(response.counts().at("CREDIT_CARD"), 1);
  EXPECT_EQ(response.data_class(), v1::DATA_CLASS_PII);
}

TEST_F(PiiServiceTest, ScanCanBeLimitedToSomeTypes) {
  v1::ScanRequest request;
  Add(request.mutable_messages(), "user", "card 4111 1111 1111 1111, mail a.b@example.com");
  request.mutable_options()->add_entity_types("EMAIL_ADDRESS");
  v1::ScanResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->Scan(&context, request, &response).ok());
  ASSERT_EQ(response.findings_size(), 1);
  EXPECT_EQ(response.findings(0).entity_type(), "EMAIL_ADDRESS");
}

// A threshold, per request (Scan) or per policy (Redact), drops findings scoring below it.
TEST_F(PiiServiceTest, AThresholdDropsFindingsScoringBelowIt) {
  const std::string text = "Call 212-555-0143 or mail jane@example.com, from 10.1.2.3.";
  // Every finding, whatever its score, to find one scoring below 1.
  v1::ScanRequest scan;
  Add(scan.mutable_messages(), "user", text);
  scan.mutable_options()->set_min_score(0);
  v1::ScanResponse all;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->Scan(&context, scan, &all).ok());
  }
  const v1::Finding* below_one = nullptr;
  for (const v1::Finding& f : all.findings()) {
    if (f.score() < 0.99 && below_one == nullptr) below_one = &f;
  }
  ASSERT_NE(below_one, nullptr) << all.DebugString();
  const std::string value = text.substr(below_one->begin(), below_one->end() - below_one->begin());
  const auto scanned_at = [&](double min_score) {
    scan.mutable_options()->set_min_score(min_score);
    v1::ScanResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(stub_->Scan(&context, scan, &response).ok());
    for (const v1::Finding& f : response.findings()) {
      if (f.begin() == below_one->begin()) return true;
    }
    return false;
  };
  EXPECT_TRUE(scanned_at(below_one->score()));
  EXPECT_FALSE(scanned_at(below_one->score() + 0.005)) << value;

  const auto redacted_at = [&](double min_score) {
    v1::RedactRequest request;
    Add(request.mutable_messages(), "user", text);
    request.mutable_policy()->mutable_default_rule()->set_operator_(v1::OPERATOR_PLACEHOLDER);
    request.mutable_policy()->set_min_score(min_score);
    v1::RedactResponse response;
    EXPECT_TRUE(Redact(request, &response).ok());
    return !absl::StrContains(response.messages(0).content(), value);
  };
  EXPECT_TRUE(redacted_at(below_one->score()));
  EXPECT_FALSE(redacted_at(below_one->score() + 0.005)) << value;
}

TEST_F(PiiServiceTest, RedactAppliesThePolicyAndReturnsARestorableMapping) {
  v1::RedactRequest request;
  Add(request.mutable_messages(), "user", "Email jane@example.com, SSN 536-22-8726.");
  Add(request.mutable_messages(), "assistant", "Noted jane@example.com.");
  v1::RedactionPolicy* policy = request.mutable_policy();
  v1::EntityRule* email = policy->add_rules();
  email->set_entity_type("EMAIL_ADDRESS");
  email->set_operator_(v1::OPERATOR_PLACEHOLDER);
  v1::EntityRule* ssn = policy->add_rules();
  ssn->set_entity_type("US_SSN");
  ssn->set_operator_(v1::OPERATOR_MASK);
  request.set_return_mapping(true);
  v1::RedactResponse response;
  ASSERT_TRUE(Redact(request, &response).ok());
  ASSERT_EQ(response.messages_size(), 2);
  EXPECT_EQ(response.messages(0).role(), "user");
  EXPECT_EQ(response.messages(0).content(), "Email <EMAIL_ADDRESS_1>, SSN ***-**-8726.");
  EXPECT_EQ(response.messages(1).content(), "Noted <EMAIL_ADDRESS_1>.");
  ASSERT_EQ(response.findings_size(), 3);
  const v1::Finding& masked = response.findings(1);
  EXPECT_EQ(masked.operator_(), v1::OPERATOR_MASK);
  EXPECT_EQ(response.messages(0).content().substr(masked.begin(), masked.end() - masked.begin()),
            "***-**-8726");
  // Where each value was in the messages as sent.
  EXPECT_EQ(request.messages(0).content().substr(masked.input_begin(),
                                                 masked.input_end() - masked.input_begin()),
            "536-22-8726");
  const v1::Finding& second_email = response.findings(2);
  EXPECT_EQ(second_email.message_index(), 1u);
  EXPECT_EQ(request.messages(1).content().substr(
                second_email.input_begin(), second_email.input_end() - second_email.input_begin()),
            "jane@example.com");
  EXPECT_FALSE(response.report().blocked());
  EXPECT_EQ(response.report().counts().at("EMAIL_ADDRESS"), 2);
  ASSERT_EQ(response.mapping_size(), 1);
  EXPECT_EQ(response.mapping(0).value(), "jane@example.com");

  v1::RestoreRequest restore;
  restore.set_text("I wrote to <EMAIL_ADDRESS_1> and <EMAIL_ADDRESS_7>.");
  *restore.mutable_mapping() = response.mapping();
  v1::RestoreResponse restored;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->Restore(&context, restore, &restored).ok());
  EXPECT_EQ(restored.text(), "I wrote to jane@example.com and <EMAIL_ADDRESS_7>.");
}

TEST_F(PiiServiceTest, AMappingIsReturnedOnlyWhenAskedFor) {
  v1::RedactRequest request;
  Add(request.mutable_messages(), "user", "jane@example.com");
  request.mutable_policy()->mutable_default_rule()->set_operator_(v1::OPERATOR_PLACEHOLDER);
  v1::RedactResponse response;
  ASSERT_TRUE(Redact(request, &response).ok());
  EXPECT_EQ(response.messages(0).content(), "<EMAIL_ADDRESS_1>");
  EXPECT_EQ(response.mapping_size(), 0);
}

TEST_F(PiiServiceTest, FindingsAreLeftOutWhenOnlyTheCountsAreWanted) {
  v1::RedactRequest request;
  Add(request.mutable_messages(), "user", "jane@example.com, joe@example.com");
  request.mutable_policy()->mutable_default_rule()->set_operator_(v1::OPERATOR_PLACEHOLDER);
  request.set_omit_findings(true);
  v1::RedactResponse response;
  ASSERT_TRUE(Redact(request, &response).ok());
  EXPECT_EQ(response.messages(0).content(), "<EMAIL_ADDRESS_1>, <EMAIL_ADDRESS_2>");
  EXPECT_EQ(response.findings_size(), 0);
  EXPECT_EQ(response.report().counts().at("EMAIL_ADDRESS"), 2);
  request.set_omit_findings(false);
  response.Clear();
  ASSERT_TRUE(Redact(request, &response).ok());
  EXPECT_EQ(response.findings_size(), 2);
}

TEST(ScanBudgetTest, AdmitsUpToItsBytesAndTakesBackWhatTicketsHeld) {
  ScanBudget budget(4096);
  absl::StatusOr<ScanBudget::Ticket> first = budget.Admit(3000);
  ASSERT_TRUE(first.ok());
  // An empty request counts ScanBudget::kMinCharge.
  absl::StatusOr<ScanBudget::Ticket> second = budget.Admit(0);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(budget.in_flight(), 3000 + ScanBudget::kMinCharge);
  absl::StatusOr<ScanBudget::Ticket> refused = budget.Admit(100);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("max_scan_bytes_in_flight (4096)"));
  { ScanBudget::Ticket moved = *std::move(first); }
  EXPECT_EQ(budget.in_flight(), ScanBudget::kMinCharge);
  EXPECT_TRUE(budget.Admit(3000).ok());
  EXPECT_EQ(budget.in_flight(), ScanBudget::kMinCharge);
  EXPECT_EQ(budget.Admit(5000).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(ScanBudgetTest, ConcurrentAdmissionsNeverPassTheBudget) {
  ScanBudget budget(10 * ScanBudget::kMinCharge);
  std::atomic<size_t> most{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        absl::StatusOr<ScanBudget::Ticket> ticket = budget.Admit(3 * ScanBudget::kMinCharge);
        const size_t now = budget.in_flight();
        size_t seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_LE(most.load(), 10 * ScanBudget::kMinCharge);
  EXPECT_EQ(budget.in_flight(), 0u);
}

TEST_F(PiiServiceTest, ScansBeyondTheBytesInFlightAreRefusedNamingTheSetting) {
  // A budget smaller than one request: every scan is refused, before any work.
  StartWith(PiiLimits{.max_request_bytes = 1 << 16, .max_scan_bytes_in_flight = 2048});
  v1::RedactRequest redact;
  Add(redact.mutable_messages(), "user", std::string(4096, 'a') + " jane@example.com");
  v1::RedactResponse redacted;
  grpc::Status status = Redact(redact, &redacted);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("max_scan_bytes_in_flight (2048)"));
  v1::ScanRequest scan;
  *scan.mutable_messages() = redact.messages();
  v1::ScanResponse scanned;
  grpc::ClientContext context;
  status = stub_->Scan(&context, scan, &scanned);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("max_scan_bytes_in_flight"));
  v1::RedactDocumentResponse document;
  status = RedactDocument(redact.messages(0).content(), {100}, {}, &document);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("max_scan_bytes_in_flight"));
  // Within the budget, the same service scans; refusals held nothing.
  redact.mutable_messages(0)->set_content("jane@example.com");
  EXPECT_TRUE(Redact(redact, &redacted).ok());
  EXPECT_EQ(redacted.report().counts().at("EMAIL_ADDRESS"), 1);
}

TEST_F(PiiServiceTest, ManyConcurrentScansAllAnswerAndTheBudgetIsGivenBack) {
  StartWith(PiiLimits{
      .max_request_bytes = 1 << 16, .max_scan_bytes_in_flight = 1 << 17, .scan_threads = 2});
  std::string dense;
  for (int i = 0; dense.size() < 60000; ++i) absl::StrAppend(&dense, "u", i, "@example.com ");
  std::vector<std::thread> callers;
  std::atomic<int> ok{0}, exhausted{0}, other{0};
  for (int t = 0; t < 8; ++t) {
    callers.emplace_back([&] {
      v1::RedactRequest request;
      Add(request.mutable_messages(), "user", dense);
      request.set_omit_findings(true);
      v1::RedactResponse response;
      grpc::Status status = Redact(request, &response);
      if (status.ok()) {
        ++ok;
      } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        ++exhausted;
      } else {
        ++other;
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_GE(ok.load(), 1);
  EXPECT_EQ(ok.load() + exhausted.load(), 8);
  // The service scans on afterwards.
  v1::RedactRequest request;
  Add(request.mutable_messages(), "user", dense);
  v1::RedactResponse response;
  EXPECT_TRUE(Redact(request, &response).ok());
}

TEST_F(PiiServiceTest, ABlockingTypeBlocksTheRequestAndRedactsEverything) {
  v1::RedactRequest request;
  Add(request.mutable_messages(), "user", "key AKIAIOSFODNN7EXAMPLE and mail jane@example.com");
  v1::EntityRule* aws = request.mutable_policy()->add_rules();
  aws->set_entity_type("AWS_ACCESS_KEY");
  aws->set_action(v1::ACTION_BLOCK);
  v1::EntityRule* email = request.mutable_policy()->add_rules();
  email->set_entity_type("EMAIL_ADDRESS");
  email->set_action(v1::ACTION_ALLOW);
  v1::RedactResponse response;
  ASSERT_TRUE(Redact(request, &response).ok());
  EXPECT_TRUE(response.report().blocked());
  ASSERT_EQ(response.report().blocking_types_size(), 1);
  EXPECT_EQ(response.report().blocking_types(0), "AWS_ACCESS_KEY");
  EXPECT_THAT(response.messages(0).content(), HasSubstr("[AWS_ACCESS_KEY_REDACTED]"));
  EXPECT_THAT(response.messages(0).content(), HasSubstr("jane@example.com"));  // Allowed.
  EXPECT_EQ(response.findings(1).action(), v1::ACTION_ALLOW);
}

TEST_F(PiiServiceTest, KeyedHashesArePerProject) {
  auto redact = [&](const std::string& project) {
    v1::RedactRequest request;
    Add(request.mutable_messages(), "user", "jane@example.com");
    request.mutable_policy()->mutable_default_rule()->set_operator_(v1::OPERATOR_HASH);
    request.set_project_id(project);
    v1::RedactResponse response;
    EXPECT_TRUE(Redact(request, &response).ok());
    return response.messages(0).content();
  };
  const std::string eu = redact("support-eu");
  EXPECT_THAT(eu, HasSubstr("<EMAIL_ADDRESS_"));
  EXPECT_EQ(redact("support-eu"), eu);
  EXPECT_NE(redact("billing-us"), eu);
}

TEST_F(PiiServiceTest, BadInputIsInvalidArgumentNamingTheProblem) {
  struct Case {
    std::string name;
    std::function<void(v1::RedactRequest&)> edit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"not utf-8", [](v1::RedactRequest& r) { Add(r.mutable_messages(), "user", "ok\xc3("); },
       "messages[0]: not valid UTF-8 at byte 2"},
      {"too large",
       [](v1::RedactRequest& r) { Add(r.mutable_messages(), "user", std::string(5000, 'a')); },
       "more than the limit of 4096"},
      {"too many",
       [](v1::RedactRequest& r) {
         for (int i = 0; i < 9; ++i) Add(r.mutable_messages(), "user", "x");
       },
       "9 texts, more than the limit of 8"},
      {"unknown type",
       [](v1::RedactRequest& r) { r.mutable_policy()->add_rules()->set_entity_type("PASSPORT"); },
       "unknown entity type 'PASSPORT'"},
      {"bad type name",
       [](v1::RedactRequest& r) { r.mutable_policy()->add_rules()->set_entity_type("us ssn"); },
       "policy.rules[0].entity_type"},
      {"unknown operator",
       [](v1::RedactRequest& r) {
         v1::EntityRule* rule = r.mutable_policy()->add_rules();
         rule->set_entity_type("US_SSN");
         rule->set_operator_(static_cast<v1::Operator>(42));
       },
       "policy.rules[0].operator: 42 is not a known operator"},
      {"unknown action",
       [](v1::RedactRequest& r) {
         r.mutable_policy()->mutable_default_rule()->set_action(static_cast<v1::Action>(9));
       },
       "policy.default_rule.action: 9 is not a known action"},
      {"two rules for a type",
       [](v1::RedactRequest& r) {
         r.mutable_policy()->add_rules()->set_entity_type("US_SSN");
         r.mutable_policy()->add_rules()->set_entity_type("US_SSN");
       },
       "policy.rules[1]: a second rule for US_SSN"},
      {"hash without project",
       [](v1::RedactRequest& r) {
         r.mutable_policy()->mutable_default_rule()->set_operator_(v1::OPERATOR_HASH);
       },
       "project_id is required"},
      {"class unspecified",
       [](v1::RedactRequest& r) { r.mutable_policy()->add_classes()->set_entity_type("US_SSN"); },
       "policy.classes[0].data_class: a data class is required"},
  };
  for (const Case& c : cases) {
    v1::RedactRequest request;
    c.edit(request);
    v1::RedactResponse response;
    grpc::Status status = Redact(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.name;
    // Only a refusal of the policy itself says so, and names a policy field.
    const bool of_policy = absl::StartsWith(status.error_message(), "policy.");
    EXPECT_EQ(
        ReasonOf(FromGrpcStatus(status)),
        of_policy ? std::optional<std::string>(std::string(kReasonPolicyInvalid)) : std::nullopt)
        << c.name;
  }

  v1::ScanRequest scan;
  scan.mutable_options()->add_entity_types("PASSPORT");
  v1::ScanResponse scanned;
  grpc::ClientContext context;
  grpc::Status status = stub_->Scan(&context, scan, &scanned);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("options.entity_types[0]"));

  v1::RestoreRequest restore;
  restore.set_text("<X_1>");
  v1::PlaceholderEntry* entry = restore.add_mapping();
  entry->set_placeholder("<X_01>");
  entry->set_entity_type("X");
  v1::RestoreResponse restored;
  grpc::ClientContext restore_context;
  status = stub_->Restore(&restore_context, restore, &restored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("mapping"));

  // A value that is not UTF-8 would make an answer that is not.
  entry->set_placeholder("<X_1>");
  entry->set_value("\xff");
  grpc::ClientContext not_utf8;
  status = stub_->Restore(&not_utf8, restore, &restored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("mapping[0].value: not valid UTF-8"));
  // Values beyond the request limit (4 KiB here), or an answer restored past twice it.
  entry->set_value(std::string(5000, 'v'));
  grpc::ClientContext too_much;
  status = stub_->Restore(&too_much, restore, &restored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("mapping: the values are more than 4096"));
  entry->set_value(std::string(1000, 'v'));
  restore.set_text("<X_1><X_1><X_1><X_1><X_1><X_1><X_1><X_1><X_1>");
  grpc::ClientContext too_long;
  status = stub_->Restore(&too_long, restore, &restored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("restored, it would be more than 8192 bytes"));
  restore.set_text("<X_1><X_1>");
  grpc::ClientContext fits;
  ASSERT_TRUE(stub_->Restore(&fits, restore, &restored).ok());
  EXPECT_EQ(restored.text().size(), 2000u);
}

TEST_F(PiiServiceTest, ADocumentFindsValuesThatStraddleChunks) {
  const std::string document =
      "Résumé of the case: the customer's card 4111 1111 1111 1111 was charged twice; "
      "reach them at jane.doe@example.com or 212-555-0123.";
  v1::RedactDocumentOptions options;
  options.mutable_policy()->mutable_default_rule()->set_operator_(v1::OPERATOR_REPLACE);
  options.set_return_mapping(true);

  v1::RedactDocumentResponse whole;
  ASSERT_TRUE(RedactDocument(document, {}, options, &whole).ok());
  EXPECT_EQ(whole.chunks(), 1u);
  EXPECT_THAT(whole.content(), HasSubstr("<CREDIT_CARD>"));
  EXPECT_THAT(whole.content(), HasSubstr("<EMAIL_ADDRESS>"));

  // Cut inside "é" (byte 2), inside the card, inside the address and inside the phone.
  const size_t card = document.find("1111 1111");
  const size_t mail = document.find("doe@");
  const size_t phone = document.find("555-");
  v1::RedactDocumentResponse chunked;
  ASSERT_TRUE(RedactDocument(document, {2, card + 3, mail + 2, phone + 1}, options, &chunked).ok());
  EXPECT_EQ(chunked.chunks(), 5u);
  EXPECT_EQ(chunked.document_bytes(), document.size());
  EXPECT_EQ(chunked.content(), whole.content());
  // A first message with the options alone is no chunk.
  v1::RedactDocumentResponse options_first;
  ASSERT_TRUE(RedactDocument(document, {0, card + 3}, options, &options_first).ok());
  EXPECT_EQ(options_first.chunks(), 2u);
  EXPECT_EQ(options_first.content(), whole.content());
  EXPECT_EQ(chunked.findings_size(), whole.findings_size());
  EXPECT_EQ(chunked.report().counts().at("CREDIT_CARD"), 1);

  // Every single-byte chunking gives the same answer too.
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < document.size(); ++i) every_byte.push_back(i);
  v1::RedactDocumentResponse bytewise;
  ASSERT_TRUE(RedactDocument(document, every_byte, options, &bytewise).ok());
  EXPECT_EQ(bytewise.content(), whole.content());
}

TEST_F(PiiServiceTest, ADocumentIsCheckedWhole) {
  v1::RedactDocumentResponse response;
  grpc::Status status = RedactDocument(std::string(70000, 'a'), {30000, 60000}, {}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("more than the limit of 65536 bytes"));

  status = RedactDocument("caf\xc3\xa9 \xe2\x82", {4}, {}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("document[0]: not valid UTF-8 at byte 6"));

  // Options only in the first message.
  grpc::ClientContext context;
  v1::RedactDocumentResponse late;
  auto writer = stub_->RedactDocument(&context, &late);
  v1::RedactDocumentRequest chunk;
  chunk.set_chunk("hello");
  writer->Write(chunk);
  chunk.mutable_options()->set_project_id("p");
  writer->Write(chunk);
  writer->WritesDone();
  status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("only the first message"));
}

TEST_F(PiiServiceTest, DocumentsHeldAtOnceAreBounded) {
  // Two open streams (the limit here) hold their slots, as their initial metadata says; a
  // third is refused at once.
  grpc::ClientContext first_context, second_context, third_context;
  v1::RedactDocumentResponse first_response, second_response, third_response;
  auto first = stub_->RedactDocument(&first_context, &first_response);
  first->WaitForInitialMetadata();
  auto second = stub_->RedactDocument(&second_context, &second_response);
  second->WaitForInitialMetadata();
  v1::RedactDocumentRequest chunk;
  chunk.set_chunk("call 212-555-0123");
  ASSERT_TRUE(first->Write(chunk));
  ASSERT_TRUE(second->Write(chunk));
  auto third = stub_->RedactDocument(&third_context, &third_response);
  third->WritesDone();
  grpc::Status status = third->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("already 2 documents in progress"));
  // Finished streams give their slots back (once the server is done with them, which may be
  // a moment after the client has its answer).
  first->WritesDone();
  ASSERT_TRUE(first->Finish().ok());
  second->WritesDone();
  ASSERT_TRUE(second->Finish().ok());
  v1::RedactDocumentResponse response;
  status = RedactDocument("call 212-555-0123", {5}, {}, &response);
  for (int i = 0; i < 100 && status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    status = RedactDocument("call 212-555-0123", {5}, {}, &response);
  }
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.chunks(), 2u);
}

TEST_F(PiiServiceTest, AStreamThatHoldsItsPlaceTooLongIsCancelledAndGivesItBack) {
  StartWith(Limits(absl::Seconds(2)));
  // Both places (the limit here) taken by streams that send nothing.
  grpc::ClientContext first_context, second_context;
  v1::RedactDocumentResponse first_response, second_response;
  auto first = stub_->RedactDocument(&first_context, &first_response);
  first->WaitForInitialMetadata();
  auto second = stub_->RedactDocument(&second_context, &second_response);
  second->WaitForInitialMetadata();
  const absl::Time start = absl::Now();
  const grpc::Status ended = first->Finish();  // Returns once the server ends the stream.
  const absl::Duration held = absl::Now() - start;
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::CANCELLED) << ended.error_message();
  EXPECT_GE(held, absl::Milliseconds(1500));
  EXPECT_LT(held, absl::Seconds(10));
  EXPECT_EQ(second->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // Their places are back.
  v1::RedactDocumentResponse response;
  grpc::Status status = RedactDocument("call 212-555-0123", {5}, {}, &response);
  for (int i = 0; i < 100 && status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    status = RedactDocument("call 212-555-0123", {5}, {}, &response);
  }
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.chunks(), 2u);
}

TEST_F(PiiServiceTest, ListEntityTypesNamesBuiltinAndCustomTypes) {
  v1::ListEntityTypesResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->ListEntityTypes(&context, {}, &response).ok());
  std::map<std::string, const v1::EntityTypeInfo*> by_type;
  for (const v1::EntityTypeInfo& info : response.entity_types())
    by_type[info.entity_type()] = &info;
  for (const char* type :
       {"US_SSN", "CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS",
        "OPENAI_API_KEY", "AWS_ACCESS_KEY", "PRIVATE_KEY", "POLICY_SUITE_KEY", "EMPLOYEE_ID"}) {
    ASSERT_TRUE(by_type.count(type)) << type;
  }
  EXPECT_TRUE(by_type["EMPLOYEE_ID"]->custom());
  EXPECT_FALSE(by_type["US_SSN"]->custom());
  EXPECT_EQ(by_type["US_SSN"]->default_class(), v1::DATA_CLASS_PII);
  EXPECT_EQ(by_type["MEDICAL_LICENSE"]->default_class(), v1::DATA_CLASS_PHI);
  EXPECT_EQ(by_type["AWS_ACCESS_KEY"]->default_class(), v1::DATA_CLASS_INTERNAL);
}

}  // namespace
}  // namespace policy::pii
