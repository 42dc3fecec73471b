#include "common/ids/model_api.h"

#include <algorithm>
#include <array>

#include "absl/strings/str_join.h"

namespace policy {
namespace {

constexpr std::array<absl::string_view, 7> kModelApis = {
    "chat.completions", "completions",  "embeddings",       "moderations",
    "images.generate",  "audio.speech", "audio.transcribe",
};

}  // namespace

absl::Span<const absl::string_view> ModelApis() { return kModelApis; }

bool IsModelApi(absl::string_view name) {
  return std::find(kModelApis.begin(), kModelApis.end(), name) != kModelApis.end();
}

std::string ModelApiNames() { return absl::StrJoin(kModelApis, ", "); }

}  // namespace policy
