#ifndef POLICY_COMMON_LOG_LOG_H_
#define POLICY_COMMON_LOG_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace policy {

// Structured logs: one JSON object per line on stderr, e.g.
//   {"time":"2026-11-28T10:00:00.123Z","level":"info","msg":"serving","port":"50051"}
// Thread-safe. Never pass secrets as fields: nothing here redacts.
using LogFields = std::initializer_list<std::pair<absl::string_view, absl::string_view>>;

void LogInfo(absl::string_view message, LogFields fields = {});
void LogWarning(absl::string_view message, LogFields fields = {});
void LogError(absl::string_view message, LogFields fields = {});

// Renders `text` as a JSON string literal, quotes included.
std::string JsonQuote(absl::string_view text);

}  // namespace policy

#endif  // POLICY_COMMON_LOG_LOG_H_
