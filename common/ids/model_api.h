#ifndef POLICY_COMMON_IDS_MODEL_API_H_
#define POLICY_COMMON_IDS_MODEL_API_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

// The model APIs a decision is about, one list for every service that names them: authz's API
// permissions that send text to a model, the scopes of the keys that call them, and what a
// Decide names (DecideRequest.api) or Envoy's request path calls.
namespace policy {

// What a decision that names no API is about.
inline constexpr absl::string_view kDefaultModelApi = "chat.completions";

// "chat.completions", "completions", "embeddings", "moderations", "images.generate",
// "audio.speech", "audio.transcribe".
absl::Span<const absl::string_view> ModelApis();
bool IsModelApi(absl::string_view name);
// "chat.completions, completions, ...": every name, for messages.
std::string ModelApiNames();

}  // namespace policy

#endif  // POLICY_COMMON_IDS_MODEL_API_H_
