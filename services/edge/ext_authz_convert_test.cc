#include "services/edge/ext_authz_convert.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status/grpc_status.h"
#include "common/status/status.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace policy::edge {
namespace {

namespace auth = envoy::service::auth::v3;
using ::testing::HasSubstr;

constexpr char kBody[] = R"({"model": "gpt-4o", "max_tokens": 100, "messages": [
  {"role": "system", "content": "You help."},
  {"role": "user", "content": [{"type": "text", "text": "Mail jane@example.com"},
                               {"type": "text", "text": "today"}]}]})";

auth::CheckRequest Check(std::string body = kBody, std::string path = "/v1/chat/completions") {
  auth::CheckRequest check;
  auth::AttributeContext* a = check.mutable_attributes();
  a->mutable_source()->mutable_address()->mutable_socket_address()->set_address("10.20.1.7");
  auth::AttributeContext::HttpRequest* http = a->mutable_request()->mutable_http();
  http->set_method("POST");
  http->set_path(std::move(path));
  (*http->mutable_headers())["authorization"] = "Bearer psk_proj_abc";
  (*http->mutable_headers())["x-policy-residency"] = "EU";
  (*http->mutable_headers())["x-request-id"] = "7f1c2a9e-5b7d-4d2a-9c1e-3f0a8b6d2e11";
  http->set_body(std::move(body));
  return check;
}

// Envoy's messages as bytes written by hand from upstream's field numbers
// (envoy/service/auth/v3/{external_auth,attribute_context}.proto, envoy/config/core/v3,
// envoy/type/v3/http_status.proto): the messages here are wire-compatible with them.
std::string Varint(uint64_t v) {
  std::string out;
  for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>((v & 0x7f) | 0x80));
  out.push_back(static_cast<char>(v));
  return out;
}
// A length-delimited field (a string, bytes, a message or a map entry).
std::string Field(int number, const std::string& bytes) {
  return absl::StrCat(Varint((number << 3) | 2), Varint(bytes.size()), bytes);
}

TEST(ExtAuthzWireTest, ACheckRequestAsEnvoyWritesIt) {
  const std::string http =
      absl::StrCat(Field(2, "POST"),                                            // method
                   Field(3, Field(1, "authorization") + Field(2, "Bearer k")),  // headers
                   Field(4, "/v1/chat/completions"),                            // path
                   Field(11, "{}"),                                             // body
                   Field(12, "raw"));                                           // raw_body
  const std::string source = Field(1, Field(1, Field(2, "10.20.1.7")));  // address.socket_address
  const std::string attributes = Field(1, source) + Field(4, Field(2, http));  // request.http
  auth::CheckRequest check;
  ASSERT_TRUE(check.ParseFromString(Field(1, attributes)));
  const auth::AttributeContext::HttpRequest& h = check.attributes().request().http();
  EXPECT_EQ(h.method(), "POST");
  EXPECT_EQ(h.headers().at("authorization"), "Bearer k");
  EXPECT_EQ(h.path(), "/v1/chat/completions");
  EXPECT_EQ(h.body(), "{}");
  EXPECT_EQ(h.raw_body(), "raw");
  EXPECT_EQ(check.attributes().source().address().socket_address().address(), "10.20.1.7");
}

TEST(ExtAuthzWireTest, ACheckResponseAsEnvoyReadsIt) {
  auth::CheckResponse denied;
  denied.mutable_status()->set_code(7);
  denied.mutable_denied_response()->mutable_status()->set_code(envoy::type::v3::Forbidden);
  denied.mutable_denied_response()->set_body("no");
  // status{code: 7}, denied_response{status{code: 403}, body: "no"}.
  EXPECT_EQ(denied.SerializeAsString(),
            Field(1, "\x08\x07") + Field(2, Field(1, "\x08\x93\x03") + Field(3, "no")));

  auth::CheckResponse ok;
  ok.mutable_status();
  envoy::config::core::v3::HeaderValueOption* header = ok.mutable_ok_response()->add_headers();
  header->mutable_header()->set_key("x-policy-audit-id");
  header->mutable_header()->set_value("p/e/1");
  // status{}, ok_response{headers[{header{key, value}}]}.
  EXPECT_EQ(ok.SerializeAsString(),
            Field(1, "") +
                Field(3, Field(2, Field(1, Field(1, "x-policy-audit-id") + Field(2, "p/e/1")))));
}

TEST(ExtAuthzConvertTest, ReadsKeySourceBodyAndResidency) {
  v1::DecideRequest decide;
  ASSERT_TRUE(DecideRequestFromCheck(Check(), &decide).ok());
  EXPECT_EQ(decide.api_key(), "psk_proj_abc");
  EXPECT_EQ(decide.source_ip(), "10.20.1.7");
  EXPECT_EQ(decide.model(), "gpt-4o");
  EXPECT_EQ(decide.residency(), region::v1::RESIDENCY_EU);
  // Each check is a call of its own: a repeated x-request-id must not pass as a free retry.
  EXPECT_EQ(decide.request_id(), "");
  ASSERT_EQ(decide.messages_size(), 2);
  EXPECT_EQ(decide.messages(0).role(), "system");
  EXPECT_EQ(decide.messages(1).content(), "Mail jane@example.com\ntoday");
  // max_tokens plus a quarter of the prompt's 36 bytes.
  EXPECT_EQ(decide.estimated_tokens(), 100 + 36 / 4);
}

TEST(ExtAuthzConvertTest, TheKeyIsReadFromTheHeadersAlone) {
  EXPECT_EQ(ApiKeyFromCheck(Check("not json")), "psk_proj_abc");
  auth::CheckRequest x_api_key = Check("not json");
  auto& headers =
      *x_api_key.mutable_attributes()->mutable_request()->mutable_http()->mutable_headers();
  headers.erase("authorization");
  headers["x-api-key"] = "psk_proj_xyz";
  EXPECT_EQ(ApiKeyFromCheck(x_api_key), "psk_proj_xyz");
  headers.erase("x-api-key");
  EXPECT_EQ(ApiKeyFromCheck(x_api_key), "");
}

TEST(ExtAuthzConvertTest, EveryOtherStringInTheBodyIsCheckedAsOneMoreMessage) {
  // Envoy forwards the body as it came: personal data anywhere in it must be seen.
  constexpr char kBodyWithMore[] = R"({"model": "gpt-4o", "user": "u-7", "temperature": 0.2,
    "messages": [{"role": "user", "content": "Hi", "name": "jane.doe@example.com"},
                 {"role": "assistant", "content": "", "tool_calls": [{"function":
                   {"name": "lookup", "arguments": "{\"ssn\": \"219-09-9999\"}"}}]}],
    "tools": [{"type": "function", "function": {"description": "Call 212-555-0100"}}],
    "metadata": {"owner@example.com": true}})";
  v1::DecideRequest decide;
  ASSERT_TRUE(DecideRequestFromCheck(Check(kBodyWithMore), &decide).ok());
  ASSERT_EQ(decide.messages_size(), 3);
  EXPECT_EQ(decide.messages(2).role(), "body");
  // Fields in their names' order; nested objects' keys too, the request's own field names not.
  EXPECT_EQ(decide.messages(2).content(),
            "jane.doe@example.com\n"                                           // messages[0]
            "function\narguments\n{\"ssn\": \"219-09-9999\"}\nname\nlookup\n"  // messages[1]
            "owner@example.com\n"                                              // metadata
            "function\ndescription\nCall 212-555-0100\ntype\nfunction\n"       // tools
            "u-7");                                                            // user
  // The same body reads the same way every time: its hash is recorded with the decision.
  for (int i = 0; i < 5; ++i) {
    v1::DecideRequest again;
    ASSERT_TRUE(DecideRequestFromCheck(Check(kBodyWithMore), &again).ok());
    EXPECT_EQ(again.messages(2).content(), decide.messages(2).content());
  }
}

TEST(ExtAuthzConvertTest, ToolCallTurnsEmbeddingsAndCompletionsAreChecked) {
  // An assistant turn that only calls a tool has null (or no) content.
  constexpr char kToolCalls[] = R"({"model": "gpt-4o", "messages": [
      {"role": "user", "content": "Find jane"},
      {"role": "assistant", "content": null, "tool_calls": [{"function":
        {"name": "lookup", "arguments": "{\"email\": \"jane@example.com\"}"}}]},
      {"role": "assistant", "tool_calls": []},
      {"role": "tool", "content": "found"}]})";
  v1::DecideRequest decide;
  ASSERT_TRUE(DecideRequestFromCheck(Check(kToolCalls), &decide).ok());
  ASSERT_EQ(decide.messages_size(), 5);
  EXPECT_EQ(decide.messages(1).role(), "assistant");
  EXPECT_EQ(decide.messages(1).content(), "");
  EXPECT_EQ(decide.messages(2).content(), "");
  EXPECT_THAT(decide.messages(4).content(), HasSubstr("jane@example.com"));

  // Embeddings and completions carry no messages: their text is checked as the body's.
  for (const auto& [path, body] :
       {std::pair{"/v1/embeddings",
                  R"({"model": "text-embedding-3-small", "input": ["Call jane@example.com"]})"},
        std::pair{"/v1/completions", R"({"model": "gpt-3.5-turbo-instruct", "prompt":
                                         "Call jane@example.com", "max_tokens": 5})"}}) {
    v1::DecideRequest other;
    ASSERT_TRUE(DecideRequestFromCheck(Check(body, path), &other).ok()) << body;
    ASSERT_EQ(other.messages_size(), 1) << body;
    EXPECT_EQ(other.messages(0).role(), "body");
    EXPECT_EQ(other.messages(0).content(), "Call jane@example.com");
    EXPECT_GT(other.estimated_tokens(), 0);
  }
}

// The API the request calls is what authz decides on and the key's scopes must grant.
TEST(ExtAuthzConvertTest, ThePathNamesTheModelApi) {
  for (const auto& [path, api] : {
           std::pair{"/v1/chat/completions", "chat.completions"},
           std::pair{"/v1/chat/completions/", "chat.completions"},
           std::pair{"/openai/deployments/gpt-4o/chat/completions?api-version=2024-06-01",
                     "chat.completions"},
           std::pair{"/v1/completions", "completions"},
           std::pair{"/openai/deployments/gpt-4o/embeddings?api-version=2024-06-01", "embeddings"},
           std::pair{"/v1/embeddings", "embeddings"},
           std::pair{"/v1/moderations", "moderations"},
           std::pair{"/v1/images/generations", "images.generate"},
           std::pair{"/v1/audio/speech", "audio.speech"},
           std::pair{"/openai/v1/chat/completions", "chat.completions"},
       }) {
    v1::DecideRequest decide;
    absl::Status s = DecideRequestFromCheck(Check(kBody, path), &decide);
    ASSERT_TRUE(s.ok()) << path << ": " << s;
    EXPECT_EQ(decide.api(), api) << path;
  }
  // A path the edge decides on no model call for, and a request that sends no prompt.
  v1::DecideRequest decide;
  absl::Status s = DecideRequestFromCheck(Check(kBody, "/v1/files?purpose=x"), &decide);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("path: '/v1/files' calls no model API the edge decides on"));
  // Exactly as written, under OpenAI's or Azure's prefix: anything else is no model call.
  for (const char* path :
       {"/v1/completions/extra", "/v1/CHAT/completions", "/admin/chat/completions",
        "/v2/chat/completions", "/v1/audio/transcriptions", "/openai/deployments//chat/completions",
        "/openai/deployments/gpt-4o", "/openai/deployments/a b/chat/completions",
        "chat/completions", "/openai/deployments/./chat/completions",
        "/openai/deployments/../chat/completions"}) {
    bool body_read = true;
    EXPECT_EQ(DecideRequestFromCheck(Check(kBody, path), &decide, &body_read).code(),
              absl::StatusCode::kInvalidArgument)
        << path;
    EXPECT_FALSE(body_read) << path;
  }
  auth::CheckRequest get = Check(kBody, "/v1/models");
  get.mutable_attributes()->mutable_request()->mutable_http()->set_method("GET");
  s = DecideRequestFromCheck(get, &decide);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "method: 'GET': model calls are POST");
}

// Azure's bodies name no model: its deployment, in the path, does.
TEST(ExtAuthzConvertTest, AnAzureDeploymentNamesTheModelTheBodyDoesNot) {
  constexpr char kAzureBody[] = R"({"messages": [{"role": "user", "content": "hi"}]})";
  v1::DecideRequest decide;
  bool body_read = false;
  ASSERT_TRUE(
      DecideRequestFromCheck(
          Check(kAzureBody, "/openai/deployments/gpt-4o-mini/chat/completions?api-version=1"),
          &decide, &body_read)
          .ok());
  EXPECT_TRUE(body_read);
  EXPECT_EQ(decide.model(), "gpt-4o-mini");
  // The same model named in the body too; another is refused, since Azure serves the
  // deployment whatever the body says.
  ASSERT_TRUE(
      DecideRequestFromCheck(Check(kBody, "/openai/deployments/gpt-4o/chat/completions"), &decide)
          .ok());
  EXPECT_EQ(decide.model(), "gpt-4o");
  absl::Status other = DecideRequestFromCheck(
      Check(kBody, "/openai/deployments/gpt-4-big/chat/completions"), &decide, &body_read);
  EXPECT_EQ(other.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(other.message(),
            "body: \"model\" 'gpt-4o' is not the deployment the path names ('gpt-4-big'), which "
            "is served");
  EXPECT_TRUE(body_read);
  // Elsewhere the body must name it; refusing that read the body.
  absl::Status s =
      DecideRequestFromCheck(Check(kAzureBody, "/v1/chat/completions"), &decide, &body_read);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("\"model\" must be a string"));
  EXPECT_TRUE(body_read);
}

TEST(ExtAuthzConvertTest, ABodyOfTooManyValuesIsRefusedBeforeParsing) {
  auto with_values = [](size_t n) {
    std::string items = "0";
    for (size_t i = 1; i < n; ++i) items.append(",0");
    return absl::StrCat(
        R"({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "x": [)", items,
        "]}");
  };
  v1::DecideRequest decide;
  // The body, its model, messages, message, role, content and list: 7 values beside the items.
  EXPECT_TRUE(DecideRequestFromCheck(Check(with_values(99'000)), &decide).ok());
  absl::Status s = DecideRequestFromCheck(Check(with_values(100'000)), &decide);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "body: more than 100000 JSON values");
  // Commas in strings are text.
  const std::string commas =
      absl::StrCat(R"({"model": "gpt-4o", "messages": [{"role": "user", "content": ")",
                   std::string(200'000, ','), R"("}]})");
  EXPECT_TRUE(DecideRequestFromCheck(Check(commas), &decide).ok());
}

TEST(ExtAuthzConvertTest, DeepNestingIsRefusedBeforeParsing) {
  auto nested = [](int depth) {
    return absl::StrCat(R"({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                            "x": )",
                        std::string(depth, '['), std::string(depth, ']'), "}");
  };
  v1::DecideRequest decide;
  // The body's own object is the first level.
  EXPECT_TRUE(DecideRequestFromCheck(Check(nested(31)), &decide).ok());
  absl::Status s = DecideRequestFromCheck(Check(nested(32)), &decide);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("nested deeper than 32"));
  // Brackets inside strings are text, not nesting.
  const std::string in_string = absl::StrCat(R"({"model": "gpt-4o", "messages": [{"role":
    "user", "content": ")",
                                             std::string(100, '['), R"(\"{"}]})");
  EXPECT_TRUE(DecideRequestFromCheck(Check(in_string), &decide).ok());
  // A million levels are refused at once.
  s = DecideRequestFromCheck(Check(nested(1'000'000)), &decide);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

TEST(ExtAuthzConvertTest, KeyFromXApiKeyAndRawBody) {
  auth::CheckRequest check = Check();
  auto* http = check.mutable_attributes()->mutable_request()->mutable_http();
  http->mutable_headers()->erase("authorization");
  (*http->mutable_headers())["x-api-key"] = "psk_proj_xyz";
  http->set_raw_body(http->body());
  http->clear_body();
  v1::DecideRequest decide;
  ASSERT_TRUE(DecideRequestFromCheck(check, &decide).ok());
  EXPECT_EQ(decide.api_key(), "psk_proj_xyz");
  EXPECT_EQ(decide.model(), "gpt-4o");
}

TEST(ExtAuthzConvertTest, KeyFromAzuresApiKeyHeader) {
  auth::CheckRequest check = Check();
  auto* headers = check.mutable_attributes()->mutable_request()->mutable_http()->mutable_headers();
  headers->erase("authorization");
  (*headers)["api-key"] = "psk_proj_azure";
  v1::DecideRequest decide;
  ASSERT_TRUE(DecideRequestFromCheck(check, &decide).ok());
  EXPECT_EQ(decide.api_key(), "psk_proj_azure");
  // authorization first, then x-api-key.
  (*headers)["x-api-key"] = "psk_proj_x";
  EXPECT_EQ(ApiKeyFromCheck(check), "psk_proj_x");
  (*headers)["authorization"] = "Bearer psk_proj_bearer";
  EXPECT_EQ(ApiKeyFromCheck(check), "psk_proj_bearer");
}

// Envoy with encode_raw_headers sends every header in header_map (raw_value bytes, repeated
// headers as entries of their own) and none in headers.
TEST(ExtAuthzConvertTest, HeadersAreReadFromTheHeaderMapWhenEnvoySendsThatInstead) {
  auth::CheckRequest check = Check();
  auto* http = check.mutable_attributes()->mutable_request()->mutable_http();
  http->clear_headers();
  const auto add = [&](const char* key, const char* value, bool raw) {
    envoy::config::core::v3::HeaderValue* header = http->mutable_header_map()->add_headers();
    header->set_key(key);
    if (raw) {
      header->set_raw_value(value);
    } else {
      header->set_value(value);
    }
  };
  add("authorization", "Bearer psk_proj_raw", /*raw=*/true);
  add("x-policy-residency", "eu", /*raw=*/false);
  v1::DecideRequest decide;
  ASSERT_TRUE(DecideRequestFromCheck(check, &decide).ok());
  EXPECT_EQ(decide.api_key(), "psk_proj_raw");
  EXPECT_EQ(decide.residency(), region::v1::RESIDENCY_EU);
  // A header sent twice is read as Envoy joins it in headers: such a key verifies nowhere.
  add("authorization", "Bearer psk_proj_other", /*raw=*/true);
  EXPECT_EQ(ApiKeyFromCheck(check), "psk_proj_raw,Bearer psk_proj_other");
  add("x-policy-residency", "us", /*raw=*/false);
  EXPECT_THAT(DecideRequestFromCheck(check, &decide).message(),
              HasSubstr("x-policy-residency: 'eu,us'"));
}

TEST(ExtAuthzConvertTest, ABodyEnvoyCutShortIsRefusedUnread) {
  auth::CheckRequest check = Check();
  auto* headers = check.mutable_attributes()->mutable_request()->mutable_http()->mutable_headers();
  (*headers)["x-envoy-auth-partial-body"] = "false";
  v1::DecideRequest decide;
  bool body_read = false;
  ASSERT_TRUE(DecideRequestFromCheck(check, &decide, &body_read).ok());
  EXPECT_TRUE(body_read);
  (*headers)["x-envoy-auth-partial-body"] = "true";
  const absl::Status cut = DecideRequestFromCheck(check, &decide, &body_read);
  EXPECT_EQ(cut.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(cut.message(), HasSubstr("allow_partial_message"));
  // The operator's setting, not the caller's doing: no unit of the key's denial budget.
  EXPECT_FALSE(body_read);
}

TEST(ExtAuthzConvertTest, BadBodiesAndHeadersNameTheProblem) {
  struct Case {
    std::string body;
    const char* expected;
  };
  for (const Case& c :
       {Case{"", "with_request_body"}, Case{"not json", "JSON"},
        Case{R"({"messages": []})", "model"}, Case{R"({"model": "gpt-4o"})", "messages"},
        Case{R"({"model": "gpt-4o", "messages": [{"content": "hi"}]})", "messages[0]"},
        Case{R"({"model": "gpt-4o", "messages": {"role": "user"}})", "must be a list"},
        Case{R"({"model": "text-embedding-3-small", "input": [[1, 2, 3]]})", "no text to check"},
        Case{R"({"model": "gpt-4o", "messages": [{"role": "user", "content":
                               [{"type": "image_url", "image_url": {"url": "x"}}]}]})",
             "only text parts"},
        Case{R"({"model": "gpt-4o", "messages": []})", "no text to check"},
        Case{R"({"model": "gpt-4o", "max_tokens": -3, "prompt": "hi"})", "max_tokens"}}) {
    v1::DecideRequest decide;
    absl::Status s = DecideRequestFromCheck(Check(c.body), &decide);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_THAT(s.message(), HasSubstr(c.expected)) << c.body;
  }
  auth::CheckRequest check = Check();
  (*check.mutable_attributes()
        ->mutable_request()
        ->mutable_http()
        ->mutable_headers())["x-policy-residency"] = "mars";
  v1::DecideRequest decide;
  EXPECT_THAT(DecideRequestFromCheck(check, &decide).message(), HasSubstr("x-policy-residency"));
}

std::string HeaderOf(
    const google::protobuf::RepeatedPtrField<envoy::config::core::v3::HeaderValueOption>& h,
    const std::string& key) {
  for (const auto& option : h) {
    if (option.header().key() == key) return option.header().value();
  }
  return "<absent>";
}

TEST(ExtAuthzConvertTest, AllowAddsHeadersUpstreamAndRemovesCredentials) {
  v1::DecideResponse decision;
  decision.set_verdict(v1::VERDICT_ALLOW);
  (*decision.mutable_headers())["x-policy-audit-id"] = "support-eu/production/7";
  (*decision.mutable_headers())["x-policy-request-id"] = "edge-7";
  (*decision.mutable_headers())["x-policy-zero-data-retention"] = "true";
  decision.mutable_endpoint()->set_id("westeurope");
  decision.mutable_endpoint()->set_base_url("https://acme-westeurope.openai.azure.com");
  auth::CheckResponse check;
  ASSERT_TRUE(ToCheckResponse(grpc::Status::OK, decision, &check).ok());
  EXPECT_EQ(check.status().code(), 0);
  ASSERT_TRUE(check.has_ok_response());
  const auto& headers = check.ok_response().headers();
  EXPECT_EQ(HeaderOf(headers, "x-policy-audit-id"), "support-eu/production/7");
  EXPECT_EQ(HeaderOf(headers, "x-policy-endpoint"), "westeurope");
  EXPECT_EQ(HeaderOf(headers, "x-policy-endpoint-url"), "https://acme-westeurope.openai.azure.com");
  for (const auto& h : headers) {
    // A client cannot smuggle its own x-policy-* values past the edge.
    EXPECT_EQ(h.append_action(),
              envoy::config::core::v3::HeaderValueOption::OVERWRITE_IF_EXISTS_OR_ADD);
  }
  EXPECT_THAT(check.ok_response().headers_to_remove(),
              ::testing::IsSupersetOf({"authorization", "x-api-key", "api-key"}));
  // The client's response names its decision, for its usage report; nothing else is added.
  const auto& to_client = check.ok_response().response_headers_to_add();
  ASSERT_EQ(to_client.size(), 2);
  EXPECT_EQ(HeaderOf(to_client, "x-policy-request-id"), "edge-7");
  EXPECT_EQ(HeaderOf(to_client, "x-policy-audit-id"), "support-eu/production/7");
}

TEST(ExtAuthzConvertTest, DenialsCarryTheHttpStatusAndAJsonBody) {
  v1::DecideResponse decision;
  decision.set_verdict(v1::VERDICT_DENY);
  decision.set_reason("RATE_LIMITED");
  decision.set_message("refused by rule rate_limit.project.rpm");
  decision.set_audit_id("support-eu/production/8");
  decision.mutable_retry_after()->set_seconds(4);
  decision.mutable_retry_after()->set_nanos(200'000'000);
  auth::CheckResponse check;
  ASSERT_TRUE(ToCheckResponse(grpc::Status::OK, decision, &check).ok());
  EXPECT_EQ(check.status().code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(check.denied_response().status().code(), envoy::type::v3::TooManyRequests);
  EXPECT_EQ(HeaderOf(check.denied_response().headers(), "retry-after"), "5");
  google::protobuf::Struct body;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(check.denied_response().body(), &body).ok());
  const auto& error = body.fields().at("error").struct_value().fields();
  EXPECT_EQ(error.at("code").string_value(), "RATE_LIMITED");
  EXPECT_EQ(error.at("audit_id").string_value(), "support-eu/production/8");

  decision.set_reason("MODEL_NOT_ALLOWED");
  check.Clear();
  ASSERT_TRUE(ToCheckResponse(grpc::Status::OK, decision, &check).ok());
  EXPECT_EQ(check.denied_response().status().code(), envoy::type::v3::Forbidden);
  EXPECT_EQ(check.status().code(), grpc::StatusCode::PERMISSION_DENIED);

  check.Clear();
  ASSERT_TRUE(
      ToCheckResponse(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "API key is not valid"),
                      v1::DecideResponse(), &check)
          .ok());
  EXPECT_EQ(check.denied_response().status().code(), envoy::type::v3::Unauthorized);
  EXPECT_EQ(HeaderOf(check.denied_response().headers(), "www-authenticate"), "Bearer");
  check.Clear();
  ASSERT_TRUE(ToCheckResponse(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "model: required"),
                              v1::DecideResponse(), &check)
                  .ok());
  EXPECT_EQ(check.denied_response().status().code(), envoy::type::v3::BadRequest);
  // A caller refused as it calls is denied, never a failed check that Envoy may let through.
  check.Clear();
  ASSERT_TRUE(ToCheckResponse(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                           "source.address: stated by an untrusted peer"),
                              v1::DecideResponse(), &check)
                  .ok());
  EXPECT_EQ(check.denied_response().status().code(), envoy::type::v3::Forbidden);
  EXPECT_THAT(check.denied_response().body(), HasSubstr("untrusted peer"));
  check.Clear();
  ASSERT_TRUE(ToCheckResponse(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                           "request_id: already used for a different request"),
                              v1::DecideResponse(), &check)
                  .ok());
  EXPECT_EQ(check.denied_response().status().code(), envoy::type::v3::Conflict);
  EXPECT_THAT(check.denied_response().body(), HasSubstr("already used"));
}

TEST(ExtAuthzConvertTest, AKeyRefusedAtTheDoorIs429WithRetryAfterAndABody) {
  const grpc::Status refused = WithRetryDelay(
      ToGrpcStatus(WithReason(absl::ResourceExhaustedError(
                                  "too many denied requests for this key; retry after 3 s"),
                              "TOO_MANY_DENIALS"),
                   "edge.policy-suite"),
      absl::Milliseconds(2100));
  auth::CheckResponse check;
  ASSERT_TRUE(ToCheckResponse(refused, v1::DecideResponse(), &check).ok());
  EXPECT_EQ(check.status().code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(check.denied_response().status().code(), envoy::type::v3::TooManyRequests);
  EXPECT_EQ(HeaderOf(check.denied_response().headers(), "retry-after"), "3");
  google::protobuf::Struct body;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(check.denied_response().body(), &body).ok());
  const auto& error = body.fields().at("error").struct_value().fields();
  EXPECT_EQ(error.at("code").string_value(), "TOO_MANY_DENIALS");
  EXPECT_EQ(error.at("message").string_value(),
            "too many denied requests for this key; retry after 3 s");
  EXPECT_FALSE(error.contains("audit_id"));  // Nothing was recorded.
}

TEST(ExtAuthzConvertTest, AFailedCheckIsAnRpcErrorNotADenial) {
  auth::CheckResponse check;
  grpc::Status s = ToCheckResponse(grpc::Status(grpc::StatusCode::UNAVAILABLE, "audit down"),
                                   v1::DecideResponse(), &check);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_FALSE(check.has_denied_response());
  EXPECT_FALSE(check.has_ok_response());
}

}  // namespace
}  // namespace policy::edge
