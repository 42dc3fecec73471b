#include "common/server/library_logs.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/log/failure_log.h"
#include "common/log/log.h"
#include "google/protobuf/stubs/logging.h"
#include "grpc/support/log.h"

namespace policy::server {
namespace {

enum class Level { kInfo, kWarning, kError };

void Emit(Level level, absl::string_view message, LogFields fields) {
  switch (level) {
    case Level::kInfo:
      LogInfo(message, fields);
      return;
    case Level::kWarning:
      LogWarning(message, fields);
      return;
    case Level::kError:
      LogError(message, fields);
      return;
  }
}

void Write(LogBudget& budget, Level level, absl::string_view source, absl::string_view file,
           int line, absl::string_view message) {
  int64_t dropped = 0;
  if (!budget.Take(absl::Now(), &dropped)) return;
  const std::string at = absl::StrCat(file, ":", line);
  const absl::string_view text = absl::StripTrailingAsciiWhitespace(message);
  if (dropped == 0) {
    Emit(level, text, {{"source", source}, {"at", at}});
  } else {
    Emit(level, text, {{"source", source}, {"at", at}, {"dropped", absl::StrCat(dropped)}});
  }
}

LogBudget& ProtobufBudget() {
  static LogBudget* budget = new LogBudget(kLibraryLinesPerSecond, absl::Seconds(1));
  return *budget;
}

LogBudget& GrpcBudget() {
  static LogBudget* budget = new LogBudget(kLibraryLinesPerSecond, absl::Seconds(1));
  return *budget;
}

void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  const Level ours = level == google::protobuf::LOGLEVEL_INFO      ? Level::kInfo
                     : level == google::protobuf::LOGLEVEL_WARNING ? Level::kWarning
                                                                   : Level::kError;
  Write(ProtobufBudget(), ours, "protobuf", file, line, message);
}

void GrpcLog(gpr_log_func_args* args) {
  const Level ours = args->severity == GPR_LOG_SEVERITY_DEBUG  ? Level::kInfo
                     : args->severity == GPR_LOG_SEVERITY_INFO ? Level::kInfo
                                                               : Level::kError;
  Write(GrpcBudget(), ours, "grpc", args->file, args->line, args->message);
}

}  // namespace

void RouteLibraryLogs() {
  ProtobufBudget();
  GrpcBudget();
  google::protobuf::SetLogHandler(&ProtobufLog);
  gpr_set_log_function(&GrpcLog);
}

}  // namespace policy::server
