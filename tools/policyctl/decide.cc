// policyctl decide: a request tried through the edge.
#include <cstdio>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/data_class/data_class_proto.h"
#include "common/proto/well_known.h"
#include "common/text/caller_text.h"
#include "tools/policyctl/cli.h"

namespace policy::policyctl {

int Decide(const Invocation& in) {
  Global g;
  std::string model, message, system, residency, source_ip, request_id, api;
  int64_t tokens = 256;
  bool return_mapping = false;
  if (int rc = ParseFlags(
          in, g,
          [&](config::Parser& p) {
            p.AddString("model", &model, "the model");
            p.AddString("api", &api, "the model API called (default chat.completions)");
            p.AddString("message", &message, "the user message");
            p.AddString("system", &system, "a system message before it");
            p.AddString("residency", &residency, "eu, us, apac, global or empty (none of its own)");
            p.AddString("source_ip", &source_ip, "the caller's address");
            p.AddInt("tokens", &tokens, "estimated tokens");
            p.AddString("request_id", &request_id, "the decision's request id");
            p.AddBool("return_mapping", &return_mapping, "return the placeholder mapping");
          });
      rc != kOk) {
    return rc;
  }
  if (g.api_key.empty())
    return Usage("decide needs an API key: POLICY_POLICYCTL_API_KEY or --api_key");
  if (!in.words.empty()) return Usage("decide takes no positional arguments");
  if (int rc = RequiredFlags("decide", {{"model", &model}, {"message", &message}}); rc != kOk) {
    return rc;
  }
  edge::v1::DecideRequest request;
  request.set_api_key(g.api_key);
  request.set_model(model);
  request.set_api(api);
  request.set_source_ip(source_ip);
  request.set_estimated_tokens(tokens);
  request.set_request_id(request_id);
  request.set_return_mapping(return_mapping);
  if (!system.empty()) {
    auto* m = request.add_messages();
    m->set_role("system");
    m->set_content(system);
  }
  auto* m = request.add_messages();
  m->set_role("user");
  m->set_content(message);
  if (!residency.empty()) {
    region::v1::Residency r;
    if (!ResidencyFlag(residency, &r)) return Usage("--residency must be eu, us, apac or global");
    request.set_residency(r);
  }
  edge::v1::DecideResponse response;
  auto stub = edge::v1::EdgeService::NewStub(Channel(g));
  if (grpc::Status s = stub->Decide(Context(g, false).get(), request, &response); !s.ok()) {
    return Failed(s);
  }
  const bool allowed = response.verdict() == edge::v1::VERDICT_ALLOW;
  if (g.json()) {
    PrintJson(response);
  } else if (allowed) {
    std::printf("ALLOW  endpoint %s (%s)  audit %s  request %s\n", response.endpoint().id().c_str(),
                response.endpoint().region().c_str(), response.audit_id().c_str(),
                response.request_id().c_str());
    // What was found (counts, never values) and the class the request was routed as.
    const std::map<std::string, int64_t> found(response.pii_counts().begin(),
                                               response.pii_counts().end());
    std::vector<std::string> counts;
    for (const auto& [type, count] : found) counts.push_back(absl::StrCat(type, " ", count));
    std::printf(
        "  data class %s%s%s\n",
        std::string(DataClassProtoName(response.data_class(), DataClass::kInternal)).c_str(),
        counts.empty() ? "" : "; found ", absl::StrJoin(counts, ", ").c_str());
    for (const auto& message : response.messages()) {
      std::printf("  %s: %s\n", Escaped(message.role()).c_str(),
                  Escaped(message.content()).c_str());
    }
    for (const auto& entry : response.mapping()) {
      std::printf("  %s = %s\n", Escaped(entry.placeholder()).c_str(),
                  Escaped(entry.value()).c_str());
    }
  } else {
    std::string retry;
    if (response.has_retry_after()) {
      absl::StatusOr<absl::Duration> after = proto::DurationFromProto(response.retry_after(), "");
      if (after.ok()) {
        retry = absl::StrCat("  retry after ",
                             absl::FormatDuration(absl::Ceil(*after, absl::Milliseconds(1))));
      }
    }
    std::printf("DENY   %s: %s%s  audit %s\n", Escaped(response.reason()).c_str(),
                Escaped(response.message()).c_str(), retry.c_str(), response.audit_id().c_str());
  }
  return allowed ? kOk : kRefused;
}

}  // namespace policy::policyctl
