#include "services/edge/ext_authz_convert.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/residency/residency_proto.h"
#include "common/status/grpc_status.h"
#include "common/status/status.h"
#include "common/text/caller_text.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "services/edge/conventions.h"

namespace policy::edge {
namespace {

namespace auth = envoy::service::auth::v3;
namespace core = envoy::config::core::v3;
using google::protobuf::Struct;
using google::protobuf::Value;

constexpr int64_t kDefaultCompletionTokens = 256;
// JSON nested deeper than this is refused before it is parsed (parsing deep nesting costs
// time that grows with the square of the depth).
constexpr int kMaxBodyDepth = 32;
// JSON values in a body (a chat of 1,024 messages has a few thousand): parsing is the costly
// step, so a body of more is refused before it is parsed.
constexpr size_t kMaxBodyValues = 100'000;

// INVALID_ARGUMENT when arrays and objects in `body` nest deeper than kMaxBodyDepth. One pass
// over the text, outside strings; malformed JSON is left for the parser to refuse.
// Refuses, before it is parsed, a body nested deeper than kMaxBodyDepth or with more than
// kMaxBodyValues values (counted as its containers and the commas between their items).
absl::Status CheckShape(absl::string_view body) {
  int depth = 0;
  size_t values = 1;
  bool in_string = false;
  bool escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxBodyDepth) {
        return absl::InvalidArgumentError(
            absl::StrCat("body: nested deeper than ", kMaxBodyDepth, " levels"));
      }
      ++values;
    } else if (c == ']' || c == '}') {
      --depth;
    } else if (c == ',') {
      ++values;
    }
    if (values > kMaxBodyValues) {
      return absl::InvalidArgumentError(
          absl::StrCat("body: more than ", kMaxBodyValues, " JSON values"));
    }
  }
  return absl::OkStatus();
}

// What a request's method and path say: the model API it calls and, on Azure's
// deployment paths, the deployment (which names the model when the body does not).
struct ModelCall {
  absl::string_view api;
  absl::string_view deployment;  // Empty but on "/openai/deployments/<name>/...".
};

// POST to OpenAI's "/v1/<api>", Azure's "/openai/deployments/<name>/<api>" or "/openai/v1/<api>"
// (a query string and one trailing slash aside), <api> one of the paths below, exactly as
// written; INVALID_ARGUMENT naming the method or the path otherwise.
absl::StatusOr<ModelCall> ModelCallOf(const auth::AttributeContext::HttpRequest& http) {
  if (http.method() != "POST") {
    return absl::InvalidArgumentError(
        absl::StrCat("method: ", Quoted(http.method()), ": model calls are POST"));
  }
  absl::string_view path = http.path();
  path = path.substr(0, path.find_first_of("?#"));
  absl::string_view rest = path;
  absl::ConsumeSuffix(&rest, "/");
  ModelCall call;
  if (absl::ConsumePrefix(&rest, "/openai/deployments/")) {
    const size_t slash = rest.find('/');
    call.deployment = rest.substr(0, slash);
    rest = slash == absl::string_view::npos ? "" : rest.substr(slash + 1);
    // 1 to 64 of [A-Za-z0-9._-], as Azure names deployments, not starting with a dot (no "."
    // or ".." that a normalising proxy would resolve into another path).
    const bool named = !call.deployment.empty() && call.deployment.size() <= 64 &&
                       call.deployment[0] != '.' &&
                       std::all_of(call.deployment.begin(), call.deployment.end(), [](char c) {
                         return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
                                c == '_' || c == '.';
                       });
    if (!named) rest = "";
  } else if (!absl::ConsumePrefix(&rest, "/v1/") && !absl::ConsumePrefix(&rest, "/openai/v1/")) {
    rest = "";
  }
  static constexpr std::pair<absl::string_view, absl::string_view> kApiPaths[] = {
      {"chat/completions", "chat.completions"},
      {"completions", "completions"},
      {"embeddings", "embeddings"},
      {"moderations", "moderations"},
      {"images/generations", "images.generate"},
      {"audio/speech", "audio.speech"},
  };
  for (const auto& [api_path, api] : kApiPaths) {
    if (rest == api_path) {
      call.api = api;
      return call;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("path: ", Quoted(path),
                   " calls no model API the edge decides on (/v1/, Azure's /openai/v1/ or "
                   "/openai/deployments/<name>/, then chat/completions, completions, embeddings, "
                   "moderations, images/generations or "
                   "audio/speech; an audio upload's transcription is decided through Decide)"));
}

void AppendLine(absl::string_view text, std::string* out) {
  if (!out->empty()) out->push_back('\n');
  out->append(text.data(), text.size());
}

void AppendStrings(const Value& value, std::string* out);

// Appends the strings of `fields`, but for the fields named in `taken`, to `out`, in the keys'
// order (a map's own order varies from run to run); the keys too when `with_keys` (a nested
// object's keys are data, a request's own field names are not).
void AppendFields(const google::protobuf::Map<std::string, Value>& fields,
                  std::initializer_list<absl::string_view> taken, bool with_keys,
                  std::string* out) {
  std::vector<const std::string*> keys;
  for (const auto& [key, v] : fields) {
    if (std::find(taken.begin(), taken.end(), key) == taken.end()) keys.push_back(&key);
  }
  std::sort(keys.begin(), keys.end(),
            [](const std::string* a, const std::string* b) { return *a < *b; });
  for (const std::string* key : keys) {
    if (with_keys) AppendLine(*key, out);
    AppendStrings(fields.at(*key), out);
  }
}

// Appends every string in `value`, object keys too, to `out`, one per line.
void AppendStrings(const Value& value, std::string* out) {
  switch (value.kind_case()) {
    case Value::kStringValue:
      AppendLine(value.string_value(), out);
      break;
    case Value::kListValue:
      for (const Value& v : value.list_value().values()) AppendStrings(v, out);
      break;
    case Value::kStructValue:
      AppendFields(value.struct_value().fields(), {}, /*with_keys=*/true, out);
      break;
    default:
      break;
  }
}

// Header `name` (lower case) of the request: from `headers`, or from `header_map` when Envoy
// sends that instead (encode_raw_headers), each entry's raw_value before its value and
// repeated entries joined with "," as Envoy joins them in `headers`.
std::optional<std::string> Header(const auth::AttributeContext::HttpRequest& http,
                                  absl::string_view name) {
  if (auto it = http.headers().find(std::string(name)); it != http.headers().end()) {
    return it->second;
  }
  std::optional<std::string> value;
  for (const core::HeaderValue& header : http.header_map().headers()) {
    if (header.key() != name) continue;
    const std::string& text = header.raw_value().empty() ? header.value() : header.raw_value();
    value = value.has_value() ? absl::StrCat(*value, ",", text) : text;
  }
  return value;
}

absl::Status ReadResidency(absl::string_view value, v1::DecideRequest* out) {
  const std::string name = absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
  const std::optional<Residency> residency =
      name.empty() ? Residency::kGlobal : ParseResidency(name);
  if (!residency.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("x-policy-residency: ", Quoted(name), " is not one of eu, us, apac, global"));
  }
  // global: none required.
  out->set_residency(*residency == Residency::kGlobal ? region::v1::RESIDENCY_UNSPECIFIED
                                                      : ResidencyToProto(*residency));
  return absl::OkStatus();
}

// A message's content: a string, text parts ({"type": "text", "text": ...}), or null (an
// assistant's turn that only calls tools).
absl::Status ReadContent(const Value& content, size_t index, std::string* out) {
  if (content.has_null_value()) return absl::OkStatus();
  if (content.has_string_value()) {
    *out = content.string_value();
    return absl::OkStatus();
  }
  if (!content.has_list_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("body: messages[", index, "].content must be a string or a list of parts"));
  }
  for (const Value& part : content.list_value().values()) {
    const auto& fields = part.struct_value().fields();
    auto type = fields.find("type");
    auto text = fields.find("text");
    if (type == fields.end() || type->second.string_value() != "text" || text == fields.end() ||
        !text->second.has_string_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "body: messages[", index, "].content: only text parts can be checked for personal data"));
    }
    if (!out->empty()) out->push_back('\n');
    out->append(text->second.string_value());
  }
  return absl::OkStatus();
}

// `deployment`: Azure's deployment from the path, the model when the body names none.
absl::Status ReadBody(absl::string_view body, absl::string_view deployment,
                      v1::DecideRequest* out) {
  if (body.empty()) {
    return absl::InvalidArgumentError(
        "body: empty (the ext_authz filter must forward the body: with_request_body)");
  }
  if (absl::Status s = CheckShape(body); !s.ok()) return s;
  Struct json;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(
           google::protobuf::StringPiece(body.data(), body.size()), &json, options)
           .ok()) {
    return absl::InvalidArgumentError("body: not a JSON object");
  }
  const auto& fields = json.fields();
  // On Azure's deployment paths the deployment is what is served, whatever the body says: it
  // is the model decided on, and a body naming another is refused.
  auto model = fields.find("model");
  if (model != fields.end() && !model->second.has_string_value()) {
    return absl::InvalidArgumentError("body: \"model\" must be a string");
  }
  if (!deployment.empty()) {
    if (model != fields.end() && model->second.string_value() != deployment) {
      return absl::InvalidArgumentError(absl::StrCat(
          "body: \"model\" ", Quoted(model->second.string_value()),
          " is not the deployment the path names (", Quoted(deployment), "), which is served"));
    }
    out->set_model(std::string(deployment));
  } else if (model == fields.end()) {
    return absl::InvalidArgumentError("body: \"model\" must be a string");
  } else {
    out->set_model(model->second.string_value());
  }
  // A chat completion's "messages"; other APIs (embeddings' "input", completions' "prompt")
  // have none, and their text is checked with the rest of the body below.
  auto messages = fields.find("messages");
  if (messages != fields.end() && !messages->second.has_list_value()) {
    return absl::InvalidArgumentError("body: \"messages\" must be a list");
  }
  size_t prompt_bytes = 0;
  size_t index = 0;
  std::string rest;  // Every other string in the body.
  const google::protobuf::RepeatedPtrField<Value> no_messages;
  for (const Value& m :
       messages == fields.end() ? no_messages : messages->second.list_value().values()) {
    const auto& mf = m.struct_value().fields();
    auto role = mf.find("role");
    auto content = mf.find("content");
    if (role == mf.end() || !role->second.has_string_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("body: messages[", index, "] needs a \"role\""));
    }
    pii::v1::ChatMessage* message = out->add_messages();
    message->set_role(role->second.string_value());
    std::string text;  // Absent or null content (a turn that only calls tools): no text.
    if (content != mf.end()) {
      if (absl::Status s = ReadContent(content->second, index, &text); !s.ok()) return s;
    }
    prompt_bytes += text.size();
    message->set_content(std::move(text));
    AppendFields(mf, {"role", "content"}, /*with_keys=*/false, &rest);
    ++index;
  }
  AppendFields(fields, {"model", "messages"}, /*with_keys=*/false, &rest);
  if (out->messages_size() == 0 && rest.empty()) {
    return absl::InvalidArgumentError(
        "body: no text to check: \"messages\" (chat completions), \"input\" (embeddings) or "
        "\"prompt\" (completions) must hold some");
  }
  // Whatever else the body carries (a message's name, tool calls and their arguments, tool
  // descriptions, a completion's "prompt", an embedding's "input"), checked for personal data
  // as one more message: Envoy forwards the body unchanged.
  if (!rest.empty()) {
    pii::v1::ChatMessage* message = out->add_messages();
    message->set_role("body");
    prompt_bytes += rest.size();
    message->set_content(std::move(rest));
  }
  int64_t completion = kDefaultCompletionTokens;
  for (const char* name : {"max_completion_tokens", "max_tokens"}) {
    auto it = fields.find(name);
    if (it == fields.end()) continue;
    const double v = it->second.number_value();
    if (!it->second.has_number_value() || v < 0 || v > kMaxEstimatedTokens || v != std::floor(v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("body: \"", name, "\" must be a whole number up to 10000000"));
    }
    completion = static_cast<int64_t>(v);
    break;
  }
  out->set_estimated_tokens(
      std::min<int64_t>(kMaxEstimatedTokens, completion + PromptTokens(prompt_bytes)));
  return absl::OkStatus();
}

void AddHeader(google::protobuf::RepeatedPtrField<core::HeaderValueOption>* headers,
               std::string key, std::string value) {
  core::HeaderValueOption* option = headers->Add();
  option->mutable_header()->set_key(std::move(key));
  option->mutable_header()->set_value(std::move(value));
  option->set_append_action(core::HeaderValueOption::OVERWRITE_IF_EXISTS_OR_ADD);
}

// Refuses with an HTTP status and a JSON body {"error": {"code", "message", "audit_id"}}.
void Deny(int rpc_code, envoy::type::v3::StatusCode http, absl::string_view code,
          absl::string_view message, absl::string_view audit_id, auth::CheckResponse* out) {
  out->mutable_status()->set_code(rpc_code);
  out->mutable_status()->set_message(std::string(code));
  auth::DeniedHttpResponse* denied = out->mutable_denied_response();
  denied->mutable_status()->set_code(http);
  Struct body;
  Struct* error = (*body.mutable_fields())["error"].mutable_struct_value();
  (*error->mutable_fields())["code"].set_string_value(std::string(code));
  (*error->mutable_fields())["message"].set_string_value(std::string(message));
  if (!audit_id.empty())
    (*error->mutable_fields())["audit_id"].set_string_value(std::string(audit_id));
  // A Struct of strings always prints.
  (void)google::protobuf::util::MessageToJsonString(body, denied->mutable_body());
  AddHeader(denied->mutable_headers(), "content-type", "application/json");
}

}  // namespace

std::string ApiKeyFromCheck(const auth::CheckRequest& check) {
  const auth::AttributeContext::HttpRequest& http = check.attributes().request().http();
  std::string key;
  if (std::optional<std::string> authorization = Header(http, "authorization")) {
    key = BearerToken(*authorization);
  }
  for (const absl::string_view name : {"x-api-key", "api-key"}) {
    if (!key.empty()) break;
    if (std::optional<std::string> value = Header(http, name)) key = *std::move(value);
  }
  return key;
}

absl::Status DecideRequestFromCheck(const auth::CheckRequest& check, v1::DecideRequest* out,
                                    bool* body_read) {
  if (body_read != nullptr) *body_read = false;
  const auth::AttributeContext::HttpRequest& http = check.attributes().request().http();
  out->set_api_key(ApiKeyFromCheck(check));
  absl::StatusOr<ModelCall> call = ModelCallOf(http);
  if (!call.ok()) return call.status();
  out->set_api(std::string(call->api));
  const core::Address& source = check.attributes().source().address();
  if (source.has_socket_address()) out->set_source_ip(source.socket_address().address());
  if (std::optional<std::string> residency = Header(http, "x-policy-residency")) {
    if (absl::Status s = ReadResidency(*residency, out); !s.ok()) return s;
  }
  // Decided on a part of the body, the check would let the rest through unread.
  if (std::optional<std::string> partial = Header(http, "x-envoy-auth-partial-body");
      partial.has_value() && absl::EqualsIgnoreCase(*partial, "true")) {
    return absl::InvalidArgumentError(
        "body: cut short by Envoy (x-envoy-auth-partial-body: true); the ext_authz filter "
        "must forward the whole body: with_request_body.allow_partial_message false, and "
        "max_request_bytes at least the largest request");
  }
  const absl::string_view body =
      http.body().empty() ? absl::string_view(http.raw_body()) : http.body();
  if (body_read != nullptr) *body_read = !body.empty();
  return ReadBody(body, call->deployment, out);
}

grpc::Status ToCheckResponse(const grpc::Status& status, const v1::DecideResponse& decision,
                             auth::CheckResponse* out) {
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    Deny(grpc::StatusCode::UNAUTHENTICATED, envoy::type::v3::Unauthorized, "UNAUTHENTICATED",
         status.error_message(), "", out);
    // RFC 6750: a 401 names the scheme the credentials go in.
    AddHeader(out->mutable_denied_response()->mutable_headers(), "www-authenticate", "Bearer");
    return grpc::Status::OK;
  }
  if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
    Deny(grpc::StatusCode::INVALID_ARGUMENT, envoy::type::v3::BadRequest, "INVALID_ARGUMENT",
         status.error_message(), "", out);
    return grpc::Status::OK;
  }
  if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
    Deny(grpc::StatusCode::FAILED_PRECONDITION, envoy::type::v3::Conflict, "FAILED_PRECONDITION",
         status.error_message(), "", out);
    return grpc::Status::OK;
  }
  if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    // The caller's connection is refused as it is (say, an address stated by a peer that is
    // not a trusted proxy): a denial, so that no Envoy setting lets the request through.
    Deny(grpc::StatusCode::PERMISSION_DENIED, envoy::type::v3::Forbidden, "PERMISSION_DENIED",
         status.error_message(), "", out);
    return grpc::Status::OK;
  }
  if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    // The edge refused the key at the door (too many of its requests denied of late): no
    // decision was made, and the client is told when to retry, as for a rate limit.
    const std::string reason = ReasonOf(FromGrpcStatus(status)).value_or("RESOURCE_EXHAUSTED");
    Deny(grpc::StatusCode::RESOURCE_EXHAUSTED, envoy::type::v3::TooManyRequests, reason,
         status.error_message(), "", out);
    if (std::optional<absl::Duration> delay = RetryDelayOf(status); delay.has_value()) {
      AddHeader(out->mutable_denied_response()->mutable_headers(), "retry-after",
                absl::StrCat(RetryAfterSeconds(*delay)));
    }
    return grpc::Status::OK;
  }
  if (!status.ok()) return status;  // The check failed: not a denial.
  if (decision.verdict() != v1::VERDICT_ALLOW) {
    const bool limited = decision.reason() == "RATE_LIMITED";
    Deny(limited ? grpc::StatusCode::RESOURCE_EXHAUSTED : grpc::StatusCode::PERMISSION_DENIED,
         limited ? envoy::type::v3::TooManyRequests : envoy::type::v3::Forbidden, decision.reason(),
         decision.message(), decision.audit_id(), out);
    if (limited && decision.has_retry_after()) {
      AddHeader(out->mutable_denied_response()->mutable_headers(), "retry-after",
                absl::StrCat(RetryAfterSeconds(absl::Seconds(decision.retry_after().seconds()) +
                                               absl::Nanoseconds(decision.retry_after().nanos()))));
    }
    return grpc::Status::OK;
  }
  out->mutable_status()->set_code(grpc::StatusCode::OK);
  auth::OkHttpResponse* ok = out->mutable_ok_response();
  for (const auto& [key, value] : decision.headers()) AddHeader(ok->mutable_headers(), key, value);
  AddHeader(ok->mutable_headers(), "x-policy-endpoint", decision.endpoint().id());
  AddHeader(ok->mutable_headers(), "x-policy-endpoint-url", decision.endpoint().base_url());
  for (const char* name : {"authorization", "x-api-key", "api-key", "x-policy-residency"}) {
    ok->add_headers_to_remove(name);
  }
  // The client learns its decision too, to report the call's usage (ReportUsage) under it.
  for (const char* name : {"x-policy-request-id", "x-policy-audit-id"}) {
    if (auto it = decision.headers().find(name); it != decision.headers().end()) {
      AddHeader(ok->mutable_response_headers_to_add(), name, it->second);
    }
  }
  return grpc::Status::OK;
}

}  // namespace policy::edge
