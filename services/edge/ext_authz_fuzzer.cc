// Fuzz target for what Envoy forwards from an untrusted client: the request body (and, from
// the input's first line, a residency header or the path), read into a Decide.
#include <cstdint>
#include <string>

#include "common/ids/model_api.h"
#include "services/edge/conventions.h"
#include "services/edge/ext_authz_convert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);
  envoy::service::auth::v3::CheckRequest check;
  auto* http = check.mutable_attributes()->mutable_request()->mutable_http();
  (*http->mutable_headers())["authorization"] = "Bearer psk_proj_x";
  http->set_method("POST");
  http->set_path("/v1/chat/completions");
  // "R<residency>\n<body>" or "P<path>\n<body>": a header or the path, then the body.
  const size_t newline = body.find('\n');
  if (!body.empty() && (body[0] == 'R' || body[0] == 'P') && newline != std::string::npos) {
    const std::string value = body.substr(1, newline - 1);
    if (body[0] == 'R') {
      (*http->mutable_headers())["x-policy-residency"] = value;
    } else {
      http->set_path(value);
    }
    body.erase(0, newline + 1);
  }
  http->set_body(body);
  policy::edge::v1::DecideRequest decide;
  if (policy::edge::DecideRequestFromCheck(check, &decide).ok()) {
    // Whatever the body says, the estimate stays in range, the key is the header's and the
    // API one the edge decides on (an empty model passes here: Decide's own validation
    // refuses it).
    if (decide.estimated_tokens() < 0 ||
        decide.estimated_tokens() > policy::edge::kMaxEstimatedTokens)
      __builtin_trap();
    if (decide.api_key() != "psk_proj_x") __builtin_trap();
    if (!policy::IsModelApi(decide.api())) __builtin_trap();
  }
  return 0;
}
