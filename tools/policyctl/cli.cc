// policyctl helpers every command shares (cli.h).
#include "tools/policyctl/cli.h"

#include <cstdio>
#include <limits>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/client/channel.h"
#include "common/crypto/crypto.h"
#include "common/ids/api_key_prefix.h"
#include "common/residency/residency_proto.h"

extern char** environ;

namespace policy::policyctl {
namespace {

// The environment's POLICY_POLICYCTL_<NAME> of global flags. A command's own flag is never
// read from it (a leftover POLICY_POLICYCTL_REQUEST_ID would make every later create a
// retry of the first): such a variable is named on stderr and ignored.
std::map<std::string, std::string> Environment() {
  constexpr absl::string_view kPrefix = "POLICY_POLICYCTL_";
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = entry.substr(0, eq);
    if (absl::StartsWith(name, kPrefix) &&
        !IsGlobalFlag(absl::AsciiStrToLower(name.substr(kPrefix.size())))) {
      std::fprintf(stderr,
                   "policyctl: ignoring %s: only the global flags are read from the "
                   "environment\n",
                   name.c_str());
      continue;
    }
    env[name] = entry.substr(eq + 1);
  }
  return env;
}

}  // namespace

Running& Current() {
  static auto* running = new Running;
  return *running;
}

int Usage(const std::string& problem) {
  std::fprintf(stderr, "policyctl: %s\n\n%s", problem.c_str(),
               CommandUsage(Current().command, Current().verb).c_str());
  return kUsage;
}

std::string Shown(absl::string_view word) {
  for (absl::string_view prefix : ids::kApiKeyPrefixes) {
    if (absl::StrContains(absl::AsciiStrToLower(word), prefix)) {
      return absl::StrCat("an argument that looks like a key (", word.size(),
                          " characters, not shown)");
    }
  }
  return absl::StrCat("'", word, "'");
}

bool IsGlobalFlag(absl::string_view name) {
  return name == "edge" || name == "admin_key" || name == "api_key" || name == "output" ||
         name == "timeout" || absl::StartsWith(name, "tls_");
}

int ParseFlags(const Invocation& in, Global& global,
               const std::function<void(config::Parser&)>& add) {
  config::Parser parser("policyctl");
  global.Register(parser);
  add(parser);
  if (absl::Status s = parser.Parse(in.flags, Environment()); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  // Main answers --help before any command runs; should one reach here, it runs nothing.
  if (parser.help_requested()) return Usage("--help takes no other action");
  if (global.output != "text" && global.output != "json") {
    return Usage("--output must be text or json");
  }
  // Every call would fail DEADLINE_EXCEEDED, or on a channel that cannot be made, naming
  // neither setting.
  if (global.timeout <= absl::ZeroDuration()) {
    return Usage(
        absl::StrCat("--timeout must be positive, not ", absl::FormatDuration(global.timeout)));
  }
  if (global.edge.empty()) return Usage("--edge (or POLICY_POLICYCTL_EDGE) is empty");
  // A port out of range would otherwise be dialled modulo 65536: another service.
  if (absl::Status s = client::CheckTarget("--edge", global.edge); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  if (absl::Status s = global.tls.Validate(); !s.ok()) return Usage(std::string(s.message()));
  // A key read from a file or a Kubernetes secret often ends in a newline: keys never hold
  // white space, so it is dropped. Any other byte a key never holds is refused here, without
  // showing the key: sent as metadata, gRPC would abort the process and print it whole.
  for (auto [name, key] : {std::pair<const char*, std::string*>{"admin_key", &global.admin_key},
                           {"api_key", &global.api_key}}) {
    absl::StripAsciiWhitespace(key);
    if (std::any_of(key->begin(), key->end(),
                    [](char c) { return !absl::ascii_isgraph(static_cast<unsigned char>(c)); })) {
      return Usage(absl::StrCat("--", name, " (or POLICY_POLICYCTL_", absl::AsciiStrToUpper(name),
                                ") holds a character no key has: a space, a control character "
                                "or a non-ASCII byte (the key is not shown)"));
    }
  }
  return kOk;
}

int ExitCodeOf(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::ABORTED:
      return kTransient;  // The same call may succeed later.
    default:
      return kFailed;
  }
}

int Failed(const grpc::Status& s) {
  std::fprintf(stderr, "policyctl: %s: %s\n",
               absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())).c_str(),
               s.error_message().c_str());
  return ExitCodeOf(s);
}

int NoSuch(absl::string_view kind, const std::string& id) {
  return Failed(
      grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("no ", kind, " ", Shown(id))));
}

google::protobuf::util::JsonPrintOptions JsonOptions() {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  return options;
}

void PrintJson(const google::protobuf::Message& m) {
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(m, &json, JsonOptions());
  std::printf("%s\n", json.c_str());
}

int Show(const Global& g, const google::protobuf::Message& response,
         const std::function<void()>& text) {
  if (g.json()) {
    PrintJson(response);
  } else {
    text();
  }
  return kOk;
}

std::string& ShownRequestId() {
  static auto* id = new std::string;
  return *id;
}

int ShowWithRequestId(const Global& g, const google::protobuf::Message& response,
                      const std::string& request_id, const std::function<void()>& text) {
  if (g.json()) std::fprintf(stderr, "policyctl: request id %s\n", request_id.c_str());
  ShownRequestId() = request_id;
  return Show(g, response, text);
}

std::shared_ptr<grpc::Channel> Channel(const Global& g, const std::string& target) {
  return grpc::CreateChannel(target, tls::ChannelCredentials(g.tls));
}

std::shared_ptr<grpc::Channel> Channel(const Global& g) { return Channel(g, g.edge); }

std::unique_ptr<grpc::ClientContext> Context(const Global& g, bool admin) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + g.timeout));
  if (admin) context->AddMetadata("authorization", absl::StrCat("Bearer ", g.admin_key));
  return context;
}

void AddPageSize(config::Parser& p, int64_t* page_size) {
  p.AddInt("page_size", page_size, "list: entries per call (1..500); every page is shown");
}

int RequiredFlags(const std::string& what,
                  std::initializer_list<std::pair<const char*, const std::string*>> flags) {
  for (const auto& [name, value] : flags) {
    if (value->empty()) return Usage(absl::StrCat(what, " needs --", name));
  }
  return kOk;
}

std::string RequestIdOr(const std::string& given) {
  if (!given.empty()) return given;
  // The time for whoever reads it, random bits so that two runs at once still differ.
  absl::StatusOr<std::string> random = crypto::RandomBytes(4);
  return absl::StrCat("policyctl-", absl::ToUnixNanos(absl::Now()), "-",
                      random.ok() ? absl::BytesToHexString(*random) : "00000000");
}

int FailedRetryable(const grpc::Status& s, const std::string& request_id) {
  const int rc = Failed(s);
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      std::fprintf(stderr, "policyctl: request id %s; retry with --request_id=%s\n",
                   request_id.c_str(), request_id.c_str());
      break;
    default:
      break;
  }
  return rc;
}

int Int32Flags(std::initializer_list<std::pair<const char*, int64_t>> flags) {
  for (const auto& [name, value] : flags) {
    if (value < std::numeric_limits<int32_t>::min() ||
        value > std::numeric_limits<int32_t>::max()) {
      return Usage(absl::StrCat("--", name, ": ", value, " is out of range"));
    }
  }
  return kOk;
}

int NonNegativeFlags(std::initializer_list<std::pair<const char*, absl::Duration>> flags) {
  for (const auto& [name, value] : flags) {
    if (value < absl::ZeroDuration()) {
      return Usage(
          absl::StrCat("--", name, ": must not be negative, not ", absl::FormatDuration(value)));
    }
    if (value % absl::Seconds(1) != absl::ZeroDuration()) {
      return Usage(absl::StrCat("--", name, ": whole seconds, not ", absl::FormatDuration(value)));
    }
  }
  return kOk;
}

int NeedAdminKey(const Global& g) {
  return g.admin_key.empty() ? Usage(
                                   "an admin key is needed: POLICY_POLICYCTL_ADMIN_KEY or "
                                   "--admin_key")
                             : kOk;
}

bool ResidencyFlag(const std::string& name, region::v1::Residency* residency) {
  const std::optional<Residency> parsed = ParseResidency(absl::AsciiStrToLower(name));
  if (!parsed.has_value()) return false;
  *residency = ResidencyToProto(*parsed);
  return true;
}

void PrintKey(const keys::v1::Key& k) {
  std::printf("%s  %s  owner %s  project %s  %s  %s\n", k.key_id().c_str(),
              keys::v1::KeyState_Name(k.state()).c_str(), k.owner().id().c_str(),
              k.project().empty() ? "-" : k.project().c_str(),
              keys::v1::Environment_Name(k.environment()).c_str(), k.redacted().c_str());
}

std::vector<std::string> List(const std::string& comma_separated) {
  return absl::StrSplit(comma_separated, ',', absl::SkipEmpty());
}

}  // namespace policy::policyctl
