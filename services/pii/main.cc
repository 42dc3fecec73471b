// The pii service binary: configuration, recognizers, engine, server.
#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/config/config.h"
#include "common/log/log.h"
#include "common/server/server_runner.h"
#include "services/pii/anonymizer.h"
#include "services/pii/detector.h"
#include "services/pii/pii_config.h"
#include "services/pii/pii_engine.h"
#include "services/pii/pii_service.h"
#include "services/pii/recognizer.h"

namespace policy::pii {
namespace {

int Fail(const absl::Status& status) {
  LogError("pii failed", {{"status", status.ToString()}});
  return 1;
}

absl::StatusOr<std::vector<RecognizerSpec>> LoadRecognizers(const std::string& path) {
  if (path.empty()) return std::vector<RecognizerSpec>{};
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read recognizers_file ", path));
  std::stringstream yaml;
  yaml << in.rdbuf();
  absl::StatusOr<std::vector<RecognizerSpec>> specs = ParseRecognizersYaml(yaml.str());
  if (!specs.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", specs.status().message()));
  }
  return specs;
}

int Main(int argc, char** argv) {
  server::PrepareServerProcess();
  PiiConfig config;
  absl::StatusOr<bool> run = config::LoadServiceConfig("pii", argc, argv, config);
  if (!run.ok()) return Fail(run.status());
  if (!*run) return 0;

  absl::StatusOr<std::vector<RecognizerSpec>> custom = LoadRecognizers(config.recognizers_file);
  if (!custom.ok()) return Fail(custom.status());
  const size_t custom_count = custom->size();
  absl::StatusOr<std::unique_ptr<Detector>> detector = Detector::Create(
      *std::move(custom), DetectorOptions{.max_regex_memory_bytes = config.max_regex_memory_bytes,
                                          .trigger_prefilter = true});
  if (!detector.ok()) return Fail(detector.status());
  std::unique_ptr<PseudonymKeys> pseudonym_keys;
  if (!config.pseudonym_key.empty()) {
    absl::StatusOr<std::unique_ptr<PseudonymKeys>> keys =
        PseudonymKeys::Create(config.pseudonym_key);
    if (!keys.ok()) return Fail(keys.status());
    pseudonym_keys = *std::move(keys);
  }
  LogInfo("recognizers loaded", {{"custom", absl::StrCat(custom_count)},
                                 {"entity_types", absl::StrCat((*detector)->EntityTypes().size())},
                                 {"keyed_hash", pseudonym_keys ? "enabled" : "disabled"}});
  const PiiLimits limits{
      .max_request_bytes = static_cast<size_t>(config.max_request_bytes),
      .max_messages = static_cast<size_t>(config.max_messages),
      .max_document_bytes = static_cast<size_t>(config.max_document_bytes),
      .max_documents = static_cast<size_t>(config.max_documents),
      .max_document_time = config.max_document_time,
      .max_scan_bytes_in_flight = static_cast<size_t>(config.ScanBytesInFlight()),
      .scan_threads = static_cast<size_t>(config.scan_threads)};
  PiiEngine engine(*std::move(detector), std::move(pseudonym_keys), limits);

  // A Restore may carry, besides its text, the mapping pii's own Redact issued for a request
  // of max_request_bytes: its worst case, plus room for the rest of a message. gRPC refuses a
  // larger message itself, naming only the sizes: this limit follows max_request_bytes (up to
  // ServerOptions' bound of 1 GiB).
  size_t longest_type = 0;
  const std::vector<std::string> entity_types = engine.detector().EntityTypes();
  for (const std::string& type : entity_types) longest_type = std::max(longest_type, type.size());
  const int64_t restore_bytes = static_cast<int64_t>(MaxRestoreRequestBytes(
      static_cast<size_t>(config.max_request_bytes), entity_types.size(), longest_type));
  config.server.max_receive_message_bytes = std::min<int64_t>(
      int64_t{1} << 30,
      std::max<int64_t>(config.server.max_receive_message_bytes, restore_bytes + (64 << 10)));
  server::ServerRunner runner(config.server);
  PiiService service(&engine, &runner.metrics_registry());
  runner.AddService(&service, v1::PiiService::service_full_name());
  if (absl::Status served = runner.RunUntilSignal(); !served.ok()) return Fail(served);
  return 0;
}

}  // namespace
}  // namespace policy::pii

int main(int argc, char** argv) { return policy::pii::Main(argc, argv); }
