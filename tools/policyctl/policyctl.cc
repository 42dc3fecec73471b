// policyctl: the operators' command line, a client of the edge (its Decide and admin APIs).
//
//   policyctl [global flags] decide --model=gpt-4o --message="..." [--residency=eu] ...
//   policyctl keys create --owner=bob --project=support-eu [--request_id=R]
//   policyctl keys rotate KEY_ID [--overlap=24h] [--request_id=R] | keys revoke KEY_ID
//   policyctl keys list [--project=P] [--owner=ID [--owner_type=service_account]]
//   policyctl members remove MEMBER_ID [--request_id=R] | members list
//   policyctl invitations create --email=E --role=R [--projects=P] [--request_id=R]
//   policyctl org plan FILE | org apply FILE [--plan_fingerprint=...]
//   policyctl audit query --project=P --environment=E [--action=decision_deny] [--limit=1000]
//   policyctl audit verify --project=P --environment=E
//
// Global flags (or POLICY_POLICYCTL_<NAME>): --edge=host:port, --admin_key (better from the
// environment than the command line), --api_key (decide), --output=text|json, --timeout.
//
// Exit codes scripts can rely on: 0 done (ALLOW; the ledger verifies); 1 the call failed
// (its gRPC status on stderr; an admin call the caller's role does not allow is one,
// PERMISSION_DENIED), or its answer could not be written to stdout; 2 usage; 3 decide's answer is
// DENY, audit verify (or summary) finds the ledger invalid, or audit prove / checkpoint finds a
// proof or signature that does not check; 4 the call failed for now (UNAVAILABLE,
// DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED): the same call may succeed later, under the
// same --request_id where it takes one. With
// --output=json, stdout holds exactly the response as JSON (proto field names, every field
// without presence printed even at its default); a list's is every page's entries in one
// response; keys create, keys rotate, members remove, invitations create and audit forget name
// their request id on stderr (the response holds none), for a retry. audit query prints each page
// as it arrives, in that same one-response shape ({"entries":[...],"next_page_token":...}, the
// token empty unless --limit stopped it); should a later page fail, stdout holds the earlier pages
// unfinished (not valid JSON) and the exit code is 1. audit export and subject-export print JSON
// lines.
// `--help` anywhere prints the command's usage on stdout and exits 0 without calling anything.
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/client/channel.h"
#include "common/config/config.h"
#include "common/crypto/crypto.h"
#include "common/data_class/data_class_proto.h"
#include "common/ids/api_key_prefix.h"
#include "common/log/log.h"
#include "common/pii_rule/pii_rule_proto.h"
#include "common/proto/well_known.h"
#include "common/residency/residency_proto.h"
#include "common/text/caller_text.h"
#include "common/text/utf8.h"
#include "common/tls/tls_options.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "policy/edge/v1/admin.grpc.pb.h"
#include "policy/edge/v1/edge.grpc.pb.h"
#include "services/audit/checkpoint.h"
#include "services/audit/entry.h"
#include "services/audit/merkle.h"
#include "services/audit/proto_convert.h"

extern char** environ;

namespace policy::policyctl {
namespace {

constexpr int kOk = 0, kFailed = 1, kUsage = 2, kRefused = 3, kTransient = 4;

constexpr char kUsageText[] = R"(usage: policyctl [global flags] COMMAND [flags]

commands:
  decide            try a request: --model, --message, [--system, --api=chat.completions|
                    completions|embeddings|moderations|images.generate|audio.speech|
                    audio.transcribe (the model API called; the key's scopes must grant it),
                    --residency=eu|us|apac|global (global: none of the request's own;
                    the project's still holds), --source_ip,
                    --tokens (estimated: 256), --request_id, --return_mapping]
  keys create       --owner, [--owner_type=member|service_account, --kind=project|
                    service_account|admin (default: service_account for a service account),
                    --project (default for a service account: its own), --environment
                    (default: the holder's; production for admin keys), --scopes=a,b, --ttl,
                    --request_id]
  keys rotate ID    [--overlap=24h, --ttl, --request_id]
                    (create, rotate: a retry with the printed request id makes no second key;
                    --request_id is 1 to 100 letters, digits and _ . : -, default: a fresh one)
  keys revoke ID    [--reason]
  keys list         [--project, --owner, --owner_type=member|service_account]
  keys report       [--project]  (keys expiring soon or expired)
  keys inventory    [--project]  (every key, its age and state)
  members list      [--project, --include_removed, --email]
  members add       --id, --email, --roles=member@support-eu,reader@playground
  members set-roles ID --roles=...  (every grant the member is to hold; --roles= none)
  members remove ID [--request_id]  (a retry with the same id repeats nothing)
  invitations list | create --email, --role, [--projects, --valid_for, --request_id]
                    | revoke REF|ID  (create: a retry with the printed request id makes no
                    second invitation; it shows a fresh secret id, which replaces the first,
                    while the invitation is pending; --request_id is at most 128 bytes,
                    default: a fresh one)
  invitations accept ID --email [--member_id]  (the invitee's call: no admin key; ID is the
      secret id create shows once; lists and the ledger name invitations by REF, sha256:...)
  org plan FILE     what applying the declarative organisation file would change
  org apply FILE    [--plan_fingerprint]  (removed members' keys are revoked)
  org export        the organisation as it stands, as a declarative file
  audit query       --project, --environment, [--action=decision_deny, --actor, --start, --end
                    (RFC 3339), --limit=1000, --page_size=1000, --page_token]  (matching entries,
                    oldest first, each page printed as it arrives; at most --limit, 0: all;
                    when the limit stops the query, stderr names the --page_token that
                    continues it)
  audit verify      --project, --environment  (every audit verb: both left out, the
                    organisation's ledger: members, projects, service accounts, endpoints)
  audit summary     --project, --environment, [--start, --end]  (exit 3: integrity INVALID)
  audit export      --project, --environment  (every entry, one JSON object per line)
  audit checkpoint  --project, --environment, [--tree_size, --public_key]  (a signed tree
                    head; its signature checked against --public_key, else said unchecked;
                    --public_key takes several keys, comma-separated, after a rotation,
                    the current one first)
  audit checkpoints --project, --environment  (every signed checkpoint: its tree size, time
                    and signing key; the sizes --tree_size takes)
  audit prove       --project, --environment, --index or --request_id, [--tree_size,
                    --public_key]  (the proof checked here; the root against --public_key)
                    (the entry's inclusion proof against a signed checkpoint; a decision's
                    request id is recorded as decision:<id>)
  audit subject-export SUBJECT   every entry naming a data subject (GDPR access)
  audit forget SUBJECT [--request_id]  erase a data subject (GDPR; cannot be undone; a
                    member under their e-mail address too, and a removed member's address
                    and invitations in the organisation; an address forgets its members;
                    a retry with the printed request id repeats nothing; default: a fresh
                    one)
  projects list      [--include_archived]
  projects create   --id, --name, --environment, [--models=a,b, --rpm, --tpm (the project's
                    limits: 0, the default, allows no calls), --member_rpm, --member_tpm
                    (each member's; 0: no cap of their own), --zdr, --retention_days,
                    --residency=eu|us|apac|global (where its calls must be processed;
                    default global: anywhere), --key_holders=service_accounts|members
                    (default: service accounts only in production, members elsewhere),
                    --pii=US_SSN=block,EMAIL_ADDRESS=placeholder (the project's own rule
                    per entity type, replacing the deployment's: redact, mask, replace,
                    hash, placeholder, block or allow; "none": no rules of its own),
                    --data_class=public|internal|pii|phi (how sensitive its prompts are
                    before pii looks at them, default internal; what pii finds raises it:
                    public may use cached endpoints, pii and phi only endpoints that keep
                    nothing over a private link)]
  projects update ID [--name, --models, --rpm, --tpm, --member_rpm, --member_tpm, --zdr,
                    --retention_days, --residency, --key_holders, --pii, --data_class]  (only
                    the settings
                    given change; --pii replaces every rule of the project's;
                    refused, changing nothing, should another admin change it meanwhile)
  projects archive ID
  entity-types      the entity types pii detects (which projects' --pii rules name), each
                    with its default class, custom recognizers' marked, the types the edge
                    blocks in every project, and whether a rule may hash
  service-accounts list    [--project, --include_removed]
  service-accounts create  --id, --project, --environment, [--permissions=a,b,
                           --ip_allowlist=cidr,cidr, --rpm, --tpm, --max_key_lifetime=90d]
  service-accounts remove ID   (its keys are revoked)
  endpoints list
  endpoints create  --id, --region, --residency=eu|us|apac|global, --base_url,
                    --deployment (Azure's deployment name: required for azure, the default
                    provider), [--provider=azure|openai, --models=a,b, --zdr,
                    --private_link, --cached, --priority=1, --weight=100, --disabled]
  endpoints update ID [--region, --residency, --base_url, --deployment, --models, --zdr,
                    --private_link, --cached, --priority, --weight, --disabled]  (only the
                    settings given change, --disabled=false enables; refused, changing
                    nothing, should another admin change the endpoint meanwhile)
  endpoints delete ID
  endpoints health  breakers, latency, outcomes and failovers
  health TARGET...  grpc.health.v1 of each host:port (default: the edge), [--service];
                    exit 0 only when every one is SERVING, 4 when each other one is
                    NOT_SERVING or unreachable for now, else 1; --output=json: one object
                    per target and line, {"target", "status", "code"}

global flags (or POLICY_POLICYCTL_<NAME>): --edge=host:port (127.0.0.1:50056), --admin_key,
  --api_key, --output=text|json, --timeout=10s, --tls_ca_file (TLS to the edge),
  --tls_cert_file and --tls_key_file (a client certificate)
exit codes: 0 done, 1 the call failed (an admin call the caller's role may not make too; an
  answer that could not be written to stdout too),
  2 usage (a flag or argument the verb does not take too),
  3 a decision DENY (decide), an invalid ledger (audit verify, summary), a proof or
    signature that does not check (audit prove, audit checkpoint),
  4 failed for now (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED): the same
    call may succeed later (under the same --request_id where it takes one)
--output=json prints one JSON document on stdout when the command succeeds (or exits 3);
  on any other failure stdout holds nothing to read (discard it) and stderr says why
every list shows all its entries, asking for --page_size (default 500) per call; audit query
  shows at most --limit (default 1000) entries, asking for --page_size (default 1000) per call
flags are --name=value or --name value; a switch (--zdr, --include_removed...) is --name or
  --name=false
--help anywhere (or policyctl help [COMMAND [VERB]]) prints the usage on stdout, exits 0 and
  runs nothing
)";

struct Global {
  std::string edge = "127.0.0.1:50056";
  std::string admin_key;
  std::string api_key;
  std::string output = "text";
  absl::Duration timeout = absl::Seconds(10);
  tls::TlsOptions tls;

  void Register(config::Parser& p) {
    tls.RegisterClient(p);
    p.AddString("edge", &edge, "the edge, host:port");
    p.AddString("admin_key", &admin_key, "admin key for the admin API",
                config::Sensitivity::kSecret);
    p.AddString("api_key", &api_key, "API key for decide", config::Sensitivity::kSecret);
    p.AddString("output", &output, "text or json");
    p.AddDuration("timeout", &timeout, "deadline of each call");
  }
  bool json() const { return output == "json"; }
};

// A command's parsed invocation: positional words after the command, and its flags.
struct Invocation {
  std::vector<std::string> words;
  std::vector<std::string> flags;

  // Whether --`name` was given (as --name or --name=...): what an update changes.
  bool Given(absl::string_view name) const {
    return std::any_of(flags.begin(), flags.end(), [&](const std::string& f) {
      absl::string_view flag = f;
      return absl::ConsumePrefix(&flag, "--") && absl::ConsumePrefix(&flag, name) &&
             (flag.empty() || flag[0] == '=');
    });
  }
};

// The command and verb being run (Run sets them), whose usage alone a usage error shows.
struct Running {
  std::string command;
  std::string verb;
};
Running& Current() {
  static auto* running = new Running;
  return *running;
}

std::string CommandUsage(const std::string& command, const std::string& verb);

// `problem` on stderr with the usage of the command being run (its verb's alone when the usage
// names it; the whole usage for no or an unknown command); the usage exit code.
int Usage(const std::string& problem) {
  std::fprintf(stderr, "policyctl: %s\n\n%s", problem.c_str(),
               CommandUsage(Current().command, Current().verb).c_str());
  return kUsage;
}

// `word` quoted for a message, unless it looks like a key: a secret pasted in the wrong place
// is not echoed.
std::string Shown(absl::string_view word) {
  for (absl::string_view prefix : ids::kApiKeyPrefixes) {
    if (absl::StrContains(absl::AsciiStrToLower(word), prefix)) {
      return absl::StrCat("an argument that looks like a key (", word.size(),
                          " characters, not shown)");
    }
  }
  return absl::StrCat("'", word, "'");
}

// Whether `name` is a global flag (the only ones also read from the environment).
bool IsGlobalFlag(absl::string_view name) {
  return name == "edge" || name == "admin_key" || name == "api_key" || name == "output" ||
         name == "timeout" || absl::StartsWith(name, "tls_");
}

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

// Parses `flags` into `global` and whatever `add` registers; 0 or the usage exit code.
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

// The item of `items` whose id is `id`; null when none is.
template <typename T>
const T* WithId(const google::protobuf::RepeatedPtrField<T>& items, const std::string& id) {
  const auto it =
      std::find_if(items.begin(), items.end(), [&](const T& item) { return item.id() == id; });
  return it == items.end() ? nullptr : &*it;
}

// The exit code of a call that failed with `s`.
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

// An update's item that a list did not hold: NOT_FOUND, as the service says it.
int NoSuch(absl::string_view kind, const std::string& id) {
  return Failed(
      grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("no ", kind, " ", Shown(id))));
}

// How every --output=json answer and JSON line is printed: proto field names, and every
// field without presence even at its default (0, false, "", [] and the zero enum), so that a
// script finds each key whatever its value.
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

// A command's answer: `response` as JSON with --output=json, else what `text` prints; kOk.
int Show(const Global& g, const google::protobuf::Message& response,
         const std::function<void()>& text) {
  if (g.json()) {
    PrintJson(response);
  } else {
    text();
  }
  return kOk;
}

// Show for a call made under `request_id` (keys create, rotate, members remove, invitations
// create, audit forget):
// the text names it; with --output=json, whose stdout is only the response (which does not hold
// it), stderr does, so that a script that let policyctl make one up can still retry without
// repeating.
// The request id of the call whose answer is being shown, for Main's advice should that answer
// not reach stdout.
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

// A call's context: the deadline and, for the admin API, the admin key.
std::unique_ptr<grpc::ClientContext> Context(const Global& g, bool admin) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + g.timeout));
  if (admin) context->AddMetadata("authorization", absl::StrCat("Bearer ", g.admin_key));
  return context;
}

// Every page of a list into `all`: `call(request, &page)` asks for one page; the next page
// token is followed until the last page. `all`'s next_page_token stays empty.
template <typename Request, typename Response, typename Call>
grpc::Status ListAll(Request request, Response* all, const Call& call) {
  for (;;) {
    Response page;
    if (grpc::Status s = call(request, &page); !s.ok()) return s;
    std::string token = page.next_page_token();
    page.clear_next_page_token();
    all->MergeFrom(page);
    if (token.empty()) return grpc::Status::OK;
    if (token == request.page_token()) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "the server repeated a page token");
    }
    request.set_page_token(std::move(token));
  }
}

// Entries a list asks for per call, the most a page holds; lists show every page.
constexpr int64_t kListPageSize = 500;

void AddPageSize(config::Parser& p, int64_t* page_size) {
  p.AddInt("page_size", page_size, "list: entries per call (1..500); every page is shown");
}

// kUsage naming the first of `flags` ({name, value}) left empty: the usage's required flags,
// checked here so that the message names the flag, not the request field the server would.
int RequiredFlags(const std::string& what,
                  std::initializer_list<std::pair<const char*, const std::string*>> flags) {
  for (const auto& [name, value] : flags) {
    if (value->empty()) return Usage(absl::StrCat(what, " needs --", name));
  }
  return kOk;
}

// A request id for a call a retry must not repeat: `given`, or a fresh one.
std::string RequestIdOr(const std::string& given) {
  if (!given.empty()) return given;
  // The time for whoever reads it, random bits so that two runs at once still differ.
  absl::StatusOr<std::string> random = crypto::RandomBytes(4);
  return absl::StrCat("policyctl-", absl::ToUnixNanos(absl::Now()), "-",
                      random.ok() ? absl::BytesToHexString(*random) : "00000000");
}

// Failed; when the call may have been done without an answer reaching us (the server did not
// answer, or failed inside), also how to retry `request_id`'s call without repeating it. A
// refusal (bad input, a request id used for other parameters, a role's) gets no such advice.
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

// Flags bound for int32 fields: a number out of int32's range is refused, never wrapped round
// into it (--retention_days=4294967297 would be sent as 1); 0 or the usage exit code.
int Int32Flags(std::initializer_list<std::pair<const char*, int64_t>> flags) {
  for (const auto& [name, value] : flags) {
    if (value < std::numeric_limits<int32_t>::min() ||
        value > std::numeric_limits<int32_t>::max()) {
      return Usage(absl::StrCat("--", name, ": ", value, " is out of range"));
    }
  }
  return kOk;
}

// Duration flags whose 0 means the server's default, sent in whole seconds: a negative one,
// or one with a fraction of a second (500ms would be sent as 0), is refused rather than taken
// for that default.
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

// "  residency eu" for a project whose calls must stay in a residency; "" for anywhere.
std::string ResidencyText(region::v1::Residency r) {
  const absl::string_view name = ResidencyProtoName(r);
  if (name == "global" || name == "unknown") return "";
  return absl::StrCat("  residency ", name);
}

// "  class phi" for a project's data class other than the default (internal).
std::string DataClassText(pii::v1::DataClass c) {
  const absl::string_view name = DataClassProtoName(c, DataClass::kInternal);
  if (name == "internal") return "";
  return absl::StrCat("  class ", name);
}

// The residency a --residency flag names, in any case: eu, us, apac or global (none
// required of a request, none promised by an endpoint); false for anything else.
bool ResidencyFlag(const std::string& name, region::v1::Residency* residency) {
  const std::optional<Residency> parsed = ParseResidency(absl::AsciiStrToLower(name));
  if (!parsed.has_value()) return false;
  *residency = ResidencyToProto(*parsed);
  return true;
}

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

void PrintKey(const keys::v1::Key& k) {
  std::printf("%s  %s  owner %s  project %s  %s  %s\n", k.key_id().c_str(),
              keys::v1::KeyState_Name(k.state()).c_str(), k.owner().id().c_str(),
              k.project().empty() ? "-" : k.project().c_str(),
              keys::v1::Environment_Name(k.environment()).c_str(), k.redacted().c_str());
}

int Keys(const Invocation& in) {
  if (in.words.empty()) return Usage("keys: create, rotate, revoke, list, report or inventory");
  const std::string& verb = in.words[0];
  Global g;
  std::string owner, owner_type = "member", kind, project, environment, scopes = "chat.completions",
                     reason, request_id;
  absl::Duration ttl = absl::ZeroDuration(), overlap = absl::ZeroDuration();
  int64_t page_size = kListPageSize;
  if (int rc = ParseFlags(
          in, g,
          [&](config::Parser& p) {
            p.AddString("owner", &owner, "the key's owner");
            p.AddString("owner_type", &owner_type, "member or service_account");
            p.AddString("kind", &kind,
                        "project, service_account or admin (default: a service account's key "
                        "for a service account, else a project key)");
            p.AddString("project", &project, "the project");
            p.AddString("environment", &environment,
                        "production, staging, development, sandbox; default: the holder's "
                        "(production for admin keys)");
            p.AddString("scopes", &scopes, "comma-separated scopes");
            p.AddString("reason", &reason, "why the key is revoked");
            p.AddDuration("ttl", &ttl, "the key's lifetime; 0: the server's default");
            p.AddDuration("overlap", &overlap, "rotate: how long both keys verify; 0: 24h");
            p.AddString("request_id", &request_id,
                        "create, rotate: makes a retry return the first call's key; 1 to 100 "
                        "letters, digits and _ . : - (default: a fresh one)");
            AddPageSize(p, &page_size);
          });
      rc != kOk) {
    return rc;
  }
  if (int rc = Int32Flags({{"page_size", page_size}}); rc != kOk) return rc;
  if (int rc = NonNegativeFlags({{"ttl", ttl}, {"overlap", overlap}}); rc != kOk) return rc;
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  keys::v1::PrincipalType owner_principal_type;
  if (!keys::v1::PrincipalType_Parse(
          absl::StrCat("PRINCIPAL_TYPE_", absl::AsciiStrToUpper(owner_type)),
          &owner_principal_type) ||
      owner_principal_type == keys::v1::PRINCIPAL_TYPE_UNSPECIFIED) {
    return Usage("--owner_type must be member or service_account");
  }
  request_id = RequestIdOr(request_id);
  if (verb == "create") {
    if (int rc = RequiredFlags("keys create", {{"owner", &owner}}); rc != kOk) return rc;
    keys::v1::CreateKeyRequest request;
    request.set_request_id(request_id);
    if (kind.empty()) {
      kind = owner_principal_type == keys::v1::PRINCIPAL_TYPE_SERVICE_ACCOUNT ? "service_account"
                                                                              : "project";
    }
    keys::v1::KeyKind k;
    if (!keys::v1::KeyKind_Parse(absl::StrCat("KEY_KIND_", absl::AsciiStrToUpper(kind)), &k)) {
      return Usage("--kind must be project, service_account or admin");
    }
    request.set_kind(k);
    request.mutable_owner()->set_type(owner_principal_type);
    request.mutable_owner()->set_id(owner);
    request.set_project(project);
    // Unset, a project or service-account key gets its holder's environment (the edge fills it
    // in); an admin key has no holder to take it from.
    if (environment.empty() && k == keys::v1::KEY_KIND_ADMIN) environment = "production";
    keys::v1::Environment e = keys::v1::ENVIRONMENT_UNSPECIFIED;
    if (!environment.empty() &&
        (!keys::v1::Environment_Parse(
             absl::StrCat("ENVIRONMENT_", absl::AsciiStrToUpper(environment)), &e) ||
         e == keys::v1::ENVIRONMENT_UNSPECIFIED)) {
      return Usage("--environment must be production, staging, development or sandbox");
    }
    request.set_environment(e);
    for (absl::string_view s : absl::StrSplit(scopes, ',', absl::SkipEmpty())) {
      request.add_scopes(std::string(s));
    }
    if (ttl > absl::ZeroDuration()) request.mutable_ttl()->set_seconds(absl::ToInt64Seconds(ttl));
    keys::v1::CreateKeyResponse response;
    if (grpc::Status s = stub->CreateKey(Context(g, true).get(), request, &response); !s.ok()) {
      return FailedRetryable(s, request_id);
    }
    return ShowWithRequestId(g, response, request_id, [&] {
      PrintKey(response.key());
      std::printf(
          "secret (store it now: only a retry under this request id shows it again, for 24 h): "
          "%s\nrequest %s\n",
          response.secret().c_str(), request_id.c_str());
    });
  }
  if (verb == "rotate" || verb == "revoke") {
    if (in.words.size() != 2) return Usage(absl::StrCat("keys ", verb, " KEY_ID"));
    if (verb == "rotate") {
      keys::v1::RotateKeyRequest request;
      request.set_request_id(request_id);
      request.set_key_id(in.words[1]);
      if (overlap > absl::ZeroDuration()) {
        request.mutable_overlap()->set_seconds(absl::ToInt64Seconds(overlap));
      }
      if (ttl > absl::ZeroDuration()) request.mutable_ttl()->set_seconds(absl::ToInt64Seconds(ttl));
      keys::v1::RotateKeyResponse response;
      if (grpc::Status s = stub->RotateKey(Context(g, true).get(), request, &response); !s.ok()) {
        return FailedRetryable(s, request_id);
      }
      return ShowWithRequestId(g, response, request_id, [&] {
        PrintKey(response.old_key());
        PrintKey(response.new_key());
        std::printf(
            "secret of %s (store it now: only a retry under this request id shows it again, for 24 "
            "h): %s\nrequest %s\n",
            response.new_key().key_id().c_str(), response.secret().c_str(), request_id.c_str());
      });
    }
    keys::v1::RevokeKeyRequest request;
    request.set_key_id(in.words[1]);
    request.set_reason(reason);
    keys::v1::RevokeKeyResponse response;
    if (grpc::Status s = stub->RevokeKey(Context(g, true).get(), request, &response); !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] { PrintKey(response.key()); });
  }
  if (verb == "list") {
    keys::v1::ListKeysRequest request;
    request.set_project(project);
    request.set_page_size(static_cast<int32_t>(page_size));
    if (!owner.empty()) {
      request.mutable_owner()->set_type(owner_principal_type);
      request.mutable_owner()->set_id(owner);
    }
    keys::v1::ListKeysResponse response;
    if (grpc::Status s = ListAll(request, &response,
                                 [&](const auto& r, auto* page) {
                                   return stub->ListKeys(Context(g, true).get(), r, page);
                                 });
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      for (const keys::v1::Key& k : response.keys()) PrintKey(k);
    });
  }
  if (verb == "report") {
    keys::v1::GetRotationReportRequest request;
    request.set_project(project);
    keys::v1::GetRotationReportResponse response;
    if (grpc::Status s = stub->GetRotationReport(Context(g, true).get(), request, &response);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      for (const keys::v1::RotationReportEntry& e : response.entries()) {
        std::printf("%-8s %4lld days  ", keys::v1::Urgency_Name(e.urgency()).c_str(),
                    static_cast<long long>(e.days_remaining()));
        PrintKey(e.key());
      }
      if (response.entries().empty()) {
        absl::StatusOr<absl::Duration> window =
            proto::DurationFromProto(response.warning_window(), "");
        std::string within = "the warning window";
        if (window.ok()) {
          const int64_t days = absl::ToInt64Hours(*window) / 24;
          within = *window == absl::Hours(24 * days) ? absl::StrCat(days, " days")
                                                     : absl::FormatDuration(*window);
        }
        std::printf("no key expires within %s, none has expired\n", within.c_str());
      }
    });
  }
  if (verb == "inventory") {
    keys::v1::GetInventoryReportRequest request;
    request.set_project(project);
    keys::v1::GetInventoryReportResponse response;
    if (grpc::Status s = stub->GetInventoryReport(Context(g, true).get(), request, &response);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      for (const keys::v1::InventoryEntry& e : response.entries()) {
        std::printf("%4lld days old  ", static_cast<long long>(e.age_days()));
        PrintKey(e.key());
      }
      std::map<std::string, int64_t> sorted(response.counts_by_state().begin(),
                                            response.counts_by_state().end());
      for (const auto& [state, count] : sorted) {
        std::printf("  %-24s %lld\n", state.c_str(), static_cast<long long>(count));
      }
    });
  }
  return Usage(absl::StrCat("keys: unknown verb '", verb, "'"));
}

// "a,b,c" as {"a", "b", "c"}.
std::vector<std::string> List(const std::string& comma_separated) {
  return absl::StrSplit(comma_separated, ',', absl::SkipEmpty());
}

// "  pii EMAIL_ADDRESS=allow,US_SSN=block" for a project with rules of its own; "" without.
std::string PiiRulesText(const authz::v1::PiiPolicy& rules) {
  std::vector<std::string> texts;
  for (const pii::v1::EntityRule& rule : rules.rules()) {
    absl::StatusOr<PiiRule> parsed = PiiRuleFromProto(rule, "rule");
    texts.push_back(parsed.ok() ? FormatPiiRule(*parsed) : absl::StrCat(rule.entity_type(), "=?"));
  }
  if (texts.empty()) return "";
  return absl::StrCat("  pii ", absl::StrJoin(texts, ","));
}

// The rules a --pii flag states: TYPE=treatment, comma-separated, or "none"; false with
// `error` set for anything else.
bool PiiRulesFlag(const std::string& text, authz::v1::PiiPolicy* rules, std::string* error) {
  rules->Clear();
  if (text == "none") return true;
  std::vector<PiiRule> parsed;
  for (const std::string& item : List(text)) {
    absl::StatusOr<PiiRule> rule = ParsePiiRule(item, "--pii");
    if (!rule.ok()) {
      *error = std::string(rule.status().message());
      return false;
    }
    parsed.push_back(*std::move(rule));
  }
  if (absl::Status s = ValidatePiiRules(parsed, "--pii"); !s.ok()) {
    *error = std::string(s.message());
    return false;
  }
  if (parsed.empty()) {
    *error = "--pii: TYPE=treatment,... (US_SSN=block) or none";
    return false;
  }
  for (const PiiRule& rule : parsed) PiiRuleToProto(rule, rules->add_rules());
  return true;
}

// "owner,member@support-eu,reader@playground" as role grants.
std::vector<authz::v1::RoleGrant> Grants(const std::string& roles) {
  std::vector<authz::v1::RoleGrant> grants;
  for (absl::string_view r : absl::StrSplit(roles, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> role_project = absl::StrSplit(r, absl::MaxSplits('@', 1));
    authz::v1::RoleGrant grant;
    grant.set_role(role_project.first);
    grant.set_project(role_project.second);
    grants.push_back(std::move(grant));
  }
  return grants;
}

void PrintMember(const authz::v1::Member& m) {
  std::vector<std::string> roles;
  for (const authz::v1::RoleGrant& grant : m.grants()) {
    roles.push_back(
        absl::StrCat(grant.role(), grant.project().empty() ? "" : "@", grant.project()));
  }
  // What their identity provider's groups grant them, marked as such.
  for (const authz::v1::RoleGrant& grant : m.group_grants()) {
    roles.push_back(
        absl::StrCat(grant.role(), grant.project().empty() ? "" : "@", grant.project(), "(group)"));
  }
  std::printf("%s  %s  %s%s\n", m.id().c_str(),
              m.has_erased_at() ? "(address erased)" : m.email().c_str(),
              absl::StrJoin(roles, " ").c_str(), m.has_removed_at() ? "  (removed)" : "");
}

int Members(const Invocation& in) {
  const std::string verb = in.words.empty() ? "" : in.words[0];
  const bool list = in.words.size() == 1 && verb == "list";
  const bool add = in.words.size() == 1 && verb == "add";
  const bool with_id = in.words.size() == 2 && (verb == "remove" || verb == "set-roles");
  if (!list && !add && !with_id) {
    return Usage("members list, members add, members set-roles ID or members remove ID");
  }
  Global g;
  std::string request_id, project, id, email, roles;
  bool include_removed = false;
  int64_t page_size = kListPageSize;
  if (int rc = ParseFlags(
          in, g,
          [&](config::Parser& p) {
            p.AddString("request_id", &request_id, "remove: makes a retry repeat nothing");
            p.AddString("project", &project, "list: only members with a role in this project");
            p.AddBool("include_removed", &include_removed, "list: removed members too");
            AddPageSize(p, &page_size);
            p.AddString("id", &id, "add: the member's id");
            p.AddString("email", &email,
                        "add: the member's e-mail; list: only members with this e-mail");
            p.AddString("roles", &roles,
                        "add, set-roles: e.g. member@support-eu,reader@playground");
          });
      rc != kOk) {
    return rc;
  }
  if (int rc = Int32Flags({{"page_size", page_size}}); rc != kOk) return rc;
  // set-roles replaces every grant: without --roles it would take them all away, which a
  // script that lost the flag must not do by accident; --roles= says so on purpose.
  if (verb == "set-roles" &&
      std::none_of(in.flags.begin(), in.flags.end(), [](const std::string& f) {
        return f == "--roles" || absl::StartsWith(f, "--roles=");
      })) {
    return Usage(
        "members set-roles needs --roles, the member's every grant (--roles= takes them all "
        "away)");
  }
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  if (add || verb == "set-roles") {
    auto stub = edge::v1::AdminService::NewStub(Channel(g));
    authz::v1::Member member;
    grpc::Status status;
    if (add) {
      if (int rc = RequiredFlags("members add", {{"id", &id}, {"email", &email}}); rc != kOk) {
        return rc;
      }
      authz::v1::AddMemberRequest request;
      request.mutable_member()->set_id(id);
      request.mutable_member()->set_email(email);
      for (authz::v1::RoleGrant& grant : Grants(roles)) {
        *request.mutable_member()->add_grants() = std::move(grant);
      }
      status = stub->AddMember(Context(g, true).get(), request, &member);
    } else {
      authz::v1::SetMemberRolesRequest request;
      request.set_id(in.words[1]);
      for (authz::v1::RoleGrant& grant : Grants(roles)) *request.add_grants() = std::move(grant);
      status = stub->SetMemberRoles(Context(g, true).get(), request, &member);
    }
    if (!status.ok()) return Failed(status);
    return Show(g, member, [&] { PrintMember(member); });
  }
  if (list) {
    edge::v1::ListMembersRequest request;
    request.set_project(project);
    request.set_include_removed(include_removed);
    request.set_email(email);
    request.set_page_size(static_cast<int32_t>(page_size));
    authz::v1::ListMembersResponse response;
    auto stub = edge::v1::AdminService::NewStub(Channel(g));
    if (grpc::Status s = ListAll(request, &response,
                                 [&](const auto& r, auto* page) {
                                   return stub->ListMembers(Context(g, true).get(), r, page);
                                 });
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      for (const authz::v1::Member& m : response.members()) PrintMember(m);
    });
  }
  request_id = RequestIdOr(request_id);
  edge::v1::RemoveMemberRequest request;
  request.set_member_id(in.words[1]);
  request.set_request_id(request_id);
  edge::v1::RemoveMemberResponse response;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  if (grpc::Status s = stub->RemoveMember(Context(g, true).get(), request, &response); !s.ok()) {
    return FailedRetryable(s, request_id);
  }
  return ShowWithRequestId(g, response, request_id, [&] {
    std::printf("removed %s (request %s, ledger %s); revoked %d keys\n",
                response.member().id().c_str(), request_id.c_str(),
                // "<project>/<environment>/<index>", both empty for the organisation's ledger.
                absl::StartsWith(response.audit_id(), "//")
                    ? absl::StrCat("organisation/", response.audit_id().substr(2)).c_str()
                    : response.audit_id().c_str(),
                response.revoked_keys_size());
    for (const keys::v1::Key& k : response.revoked_keys()) PrintKey(k);
  });
}

int Invitations(const Invocation& in) {
  const std::string verb = in.words.empty() ? "" : in.words[0];
  if (!(in.words.size() == 1 && (verb == "list" || verb == "create")) &&
      !(in.words.size() == 2 && (verb == "revoke" || verb == "accept"))) {
    return Usage(
        "invitations list, invitations create, invitations revoke REF|ID or invitations accept ID");
  }
  Global g;
  std::string email, role = "member", projects, member_id, request_id;
  absl::Duration valid_for = absl::ZeroDuration();
  int64_t page_size = kListPageSize;
  if (int rc = ParseFlags(
          in, g,
          [&](config::Parser& p) {
            p.AddString("email", &email, "create: whom to invite; accept: the invitee's e-mail");
            p.AddString("member_id", &member_id,
                        "accept: the new member's id (default: member:<next number>)");
            p.AddString("role", &role, "create: owner, admin, member or reader");
            p.AddString("projects", &projects, "create: comma-separated projects (member, reader)");
            p.AddDuration("valid_for", &valid_for, "create: default 7 days, at most 30");
            p.AddString("request_id", &request_id,
                        "create: makes a retry answer the first call's invitation; at most 128 "
                        "bytes (default: a fresh one)");
            AddPageSize(p, &page_size);
          });
      rc != kOk) {
    return rc;
  }
  if (int rc = Int32Flags({{"page_size", page_size}}); rc != kOk) return rc;
  if (int rc = NonNegativeFlags({{"valid_for", valid_for}}); rc != kOk) return rc;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  if (verb == "accept") {  // The invitee's call: no admin key, the invitation's id.
    authz::v1::AcceptInvitationRequest request;
    request.set_id(in.words[1]);
    request.set_email(email);
    request.set_member_id(member_id);
    authz::v1::Member member;
    if (grpc::Status s = stub->AcceptInvitation(Context(g, false).get(), request, &member);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, member, [&] { PrintMember(member); });
  }
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  auto print = [](const authz::v1::Invitation& i) {
    std::printf("%s  %s  %s [%s]  %s\n", i.ref().c_str(), i.email().c_str(), i.role().c_str(),
                absl::StrJoin(i.projects(), ",").c_str(), i.state().c_str());
    // Only CreateInvitation's answer carries the secret id (a retry's a fresh one, which
    // replaces it); it is never shown again.
    if (!i.id().empty()) std::printf("secret id (send it to the invitee): %s\n", i.id().c_str());
  };
  if (verb == "list") {
    authz::v1::ListInvitationsRequest request;
    request.set_page_size(static_cast<int32_t>(page_size));
    authz::v1::ListInvitationsResponse response;
    if (grpc::Status s = ListAll(request, &response,
                                 [&](const auto& r, auto* page) {
                                   return stub->ListInvitations(Context(g, true).get(), r, page);
                                 });
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      for (const authz::v1::Invitation& i : response.invitations()) print(i);
    });
  }
  authz::v1::Invitation invitation;
  if (verb == "create") {
    authz::v1::CreateInvitationRequest request;
    request.set_email(email);
    request.set_role(role);
    for (const std::string& p : List(projects)) request.add_projects(p);
    if (valid_for > absl::ZeroDuration()) {
      request.mutable_valid_for()->set_seconds(absl::ToInt64Seconds(valid_for));
    }
    request_id = RequestIdOr(request_id);
    request.set_request_id(request_id);
    if (grpc::Status s = stub->CreateInvitation(Context(g, true).get(), request, &invitation);
        !s.ok()) {
      return FailedRetryable(s, request_id);
    }
    return ShowWithRequestId(g, invitation, request_id, [&] {
      print(invitation);
      std::printf("request %s\n", request_id.c_str());
    });
  }
  authz::v1::RevokeInvitationRequest request;
  request.set_id(in.words[1]);
  if (grpc::Status s = stub->RevokeInvitation(Context(g, true).get(), request, &invitation);
      !s.ok()) {
    return Failed(s);
  }
  return Show(g, invitation, [&] { print(invitation); });
}

int Org(const Invocation& in) {
  const bool exporting = in.words.size() == 1 && in.words[0] == "export";
  if (!exporting && (in.words.size() != 2 || (in.words[0] != "plan" && in.words[0] != "apply"))) {
    return Usage("org plan FILE, org apply FILE, or org export");
  }
  Global g;
  std::string fingerprint;
  if (int rc = ParseFlags(in, g,
                          [&](config::Parser& p) {
                            p.AddString("plan_fingerprint", &fingerprint,
                                        "apply: exactly the plan with this print");
                          });
      rc != kOk) {
    return rc;
  }
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  if (exporting) {
    authz::v1::ExportOrgFileRequest request;
    authz::v1::ExportOrgFileResponse response;
    if (grpc::Status s = stub->ExportOrgFile(Context(g, true).get(), request, &response); !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] { std::fputs(response.yaml().c_str(), stdout); });
  }
  std::ifstream file(in.words[1]);
  if (!file) {
    const int error = errno;
    std::fprintf(stderr, "policyctl: cannot read %s: %s\n", in.words[1].c_str(),
                 std::strerror(error));
    return kFailed;
  }
  std::stringstream yaml;
  yaml << file.rdbuf();
  // Sent as text: a file saved in Latin-1 or Windows-1252 would otherwise fail UNIMPLEMENTED
  // naming nothing.
  if (const size_t bad = FindInvalidUtf8(yaml.str()); bad != absl::string_view::npos) {
    return Usage(
        absl::StrCat(in.words[1], ": not UTF-8 (byte ", bad, " is not); save the file as UTF-8"));
  }
  if (in.words[0] == "plan") {
    edge::v1::PlanOrgFileRequest request;
    request.set_yaml(yaml.str());
    authz::v1::PlanOrgFileResponse response;
    if (grpc::Status s = stub->PlanOrgFile(Context(g, true).get(), request, &response); !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      std::printf("%s%s%d changes; apply this plan with --plan_fingerprint=%s\n",
                  response.text().c_str(),
                  response.text().empty() || response.text().back() == '\n' ? "" : "\n",
                  response.changes_size(), response.plan_fingerprint().c_str());
    });
  }
  edge::v1::ApplyOrgFileRequest request;
  request.set_yaml(yaml.str());
  request.set_plan_fingerprint(fingerprint);
  edge::v1::ApplyOrgFileResponse response;
  if (grpc::Status s = stub->ApplyOrgFile(Context(g, true).get(), request, &response); !s.ok()) {
    return Failed(s);
  }
  return Show(g, response, [&] {
    for (const authz::v1::EntityChange& c : response.changes()) {
      std::printf("%s %s %s\n", c.op().c_str(), c.kind().c_str(), c.id().c_str());
    }
    std::printf("applied: organisation version %lld, %d keys revoked\n",
                static_cast<long long>(response.org_version()), response.revoked_keys_size());
  });
}

void PrintEndpoint(const region::v1::Endpoint& e) {
  std::printf("%s  %s  %s  %s  zdr=%d private=%d cached=%d  priority %d  %s  [%s]%s\n",
              e.id().c_str(), region::v1::Residency_Name(e.residency()).c_str(), e.region().c_str(),
              e.base_url().c_str(), e.capabilities().zero_data_retention(),
              e.capabilities().private_link(), e.capabilities().cached(), e.priority(),
              region::v1::Provider_Name(e.provider()).c_str(),
              absl::StrJoin(e.models(), ",").c_str(), e.enabled() ? "" : "  (disabled)");
}

int Endpoints(const Invocation& in) {
  if (in.words.empty()) return Usage("endpoints: list, create, update, delete or health");
  const std::string& verb = in.words[0];
  Global g;
  std::string id, region_name, residency, base_url, provider = "azure", deployment, models;
  bool zdr = false, private_link = false, cached = false, disabled = false;
  int64_t priority = 1, weight = 100;
  if (int rc = ParseFlags(in, g,
                          [&](config::Parser& p) {
                            p.AddString("id", &id, "the endpoint's id");
                            p.AddString("region", &region_name, "the provider's region name");
                            p.AddString("residency", &residency, "eu, us, apac or global");
                            p.AddString("base_url", &base_url, "https://host[:port][/path]");
                            p.AddString("provider", &provider, "azure or openai");
                            p.AddString("deployment", &deployment,
                                        "Azure's deployment name; required with --provider=azure "
                                        "(the default)");
                            p.AddString("models", &models, "comma-separated models served");
                            p.AddBool("zdr", &zdr, "zero data retention");
                            p.AddBool("private_link", &private_link, "reached over a private link");
                            p.AddBool("cached", &cached, "the provider caches prompts");
                            p.AddBool("disabled", &disabled, "registered but not used");
                            p.AddInt("priority", &priority, "1 is first");
                            p.AddInt("weight", &weight, "0..1000, for weighted choice");
                          });
      rc != kOk) {
    return rc;
  }
  if (int rc = Int32Flags({{"priority", priority}, {"weight", weight}}); rc != kOk) return rc;
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  if (verb == "list") {
    region::v1::ListEndpointsResponse response;
    if (grpc::Status s = stub->ListEndpoints(Context(g, true).get(),
                                             region::v1::ListEndpointsRequest(), &response);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      for (const region::v1::Endpoint& e : response.endpoints()) PrintEndpoint(e);
    });
  }
  if (verb == "create") {
    if (int rc = RequiredFlags("endpoints create", {{"id", &id},
                                                    {"region", &region_name},
                                                    {"residency", &residency},
                                                    {"base_url", &base_url}});
        rc != kOk) {
      return rc;
    }
    region::v1::CreateEndpointRequest request;
    region::v1::Endpoint* e = request.mutable_endpoint();
    e->set_id(id);
    e->set_region(region_name);
    region::v1::Residency r;
    if (!ResidencyFlag(residency, &r)) return Usage("--residency must be eu, us, apac or global");
    e->set_residency(r);
    region::v1::Provider pr;
    if (!region::v1::Provider_Parse(absl::StrCat("PROVIDER_", absl::AsciiStrToUpper(provider)),
                                    &pr)) {
      return Usage("--provider must be azure or openai");
    }
    e->set_provider(pr);
    e->set_base_url(base_url);
    e->set_deployment(deployment);
    for (absl::string_view m : absl::StrSplit(models, ',', absl::SkipEmpty())) {
      e->add_models(std::string(m));
    }
    e->mutable_capabilities()->set_zero_data_retention(zdr);
    e->mutable_capabilities()->set_private_link(private_link);
    e->mutable_capabilities()->set_cached(cached);
    e->set_priority(static_cast<int32_t>(priority));
    e->set_weight(static_cast<int32_t>(weight));
    e->set_enabled(!disabled);
    region::v1::CreateEndpointResponse response;
    if (grpc::Status s = stub->CreateEndpoint(Context(g, true).get(), request, &response);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] { PrintEndpoint(response.endpoint()); });
  }
  if (verb == "update") {
    if (in.words.size() != 2) return Usage("endpoints update ID");
    // Read, changed by the flags given, written back with what was read as `expected`: an
    // update another admin made meanwhile is not undone (FAILED_PRECONDITION).
    region::v1::ListEndpointsResponse all;
    if (grpc::Status s =
            stub->ListEndpoints(Context(g, true).get(), region::v1::ListEndpointsRequest(), &all);
        !s.ok()) {
      return Failed(s);
    }
    const region::v1::Endpoint* found = WithId(all.endpoints(), in.words[1]);
    if (found == nullptr) return NoSuch("endpoint", in.words[1]);
    region::v1::UpdateEndpointRequest request;
    *request.mutable_expected() = *found;
    region::v1::Endpoint* e = request.mutable_endpoint();
    *e = *found;
    if (in.Given("region")) e->set_region(region_name);
    if (in.Given("residency")) {
      region::v1::Residency r;
      if (!ResidencyFlag(residency, &r)) {
        return Usage("--residency must be eu, us, apac or global");
      }
      e->set_residency(r);
    }
    if (in.Given("base_url")) e->set_base_url(base_url);
    if (in.Given("deployment")) e->set_deployment(deployment);
    if (in.Given("models")) {
      e->clear_models();
      for (absl::string_view m : absl::StrSplit(models, ',', absl::SkipEmpty())) {
        e->add_models(std::string(m));
      }
    }
    if (in.Given("zdr")) e->mutable_capabilities()->set_zero_data_retention(zdr);
    if (in.Given("private_link")) e->mutable_capabilities()->set_private_link(private_link);
    if (in.Given("cached")) e->mutable_capabilities()->set_cached(cached);
    if (in.Given("priority")) e->set_priority(static_cast<int32_t>(priority));
    if (in.Given("weight")) e->set_weight(static_cast<int32_t>(weight));
    if (in.Given("disabled")) e->set_enabled(!disabled);
    region::v1::UpdateEndpointResponse response;
    if (grpc::Status s = stub->UpdateEndpoint(Context(g, true).get(), request, &response);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] { PrintEndpoint(response.endpoint()); });
  }
  if (verb == "delete") {
    if (in.words.size() != 2) return Usage("endpoints delete ID");
    region::v1::DeleteEndpointRequest request;
    request.set_id(in.words[1]);
    region::v1::DeleteEndpointResponse response;
    if (grpc::Status s = stub->DeleteEndpoint(Context(g, true).get(), request, &response);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] { std::printf("deleted %s\n", in.words[1].c_str()); });
  }
  if (verb == "health") {
    region::v1::GetHealthReportResponse response;
    if (grpc::Status s = stub->GetHealthReport(Context(g, true).get(),
                                               region::v1::GetHealthReportRequest(), &response);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      std::printf("%llu requests, %llu blocked, %llu failovers (rate %.4f)\n",
                  static_cast<unsigned long long>(response.requests()),
                  static_cast<unsigned long long>(response.blocked()),
                  static_cast<unsigned long long>(response.failovers()), response.failover_rate());
      for (const region::v1::EndpointHealth& h : response.endpoints()) {
        std::printf(
            "%s  %s  latency %lld us  %llu routed, %llu ok, %llu failed, %llu trips withheld\n",
            h.endpoint().id().c_str(), region::v1::BreakerState_Name(h.breaker_state()).c_str(),
            static_cast<long long>(h.latency().seconds() * 1'000'000 + h.latency().nanos() / 1000),
            static_cast<unsigned long long>(h.routed()),
            static_cast<unsigned long long>(h.successes()),
            static_cast<unsigned long long>(h.failures()),
            static_cast<unsigned long long>(h.trips_withheld()));
      }
    });
  }
  return Usage(absl::StrCat("endpoints: unknown verb '", verb, "'"));
}

int Projects(const Invocation& in) {
  if (in.words.empty()) return Usage("projects: list, create, update or archive");
  const std::string& verb = in.words[0];
  Global g;
  std::string id, name, environment, models, key_holders, residency = "global", pii = "none",
                                                          data_class = "internal";
  int64_t rpm = 0, tpm = 0, member_rpm = 0, member_tpm = 0, retention_days = 0,
          page_size = kListPageSize;
  bool zdr = false, include_archived = false;
  if (int rc = ParseFlags(
          in, g,
          [&](config::Parser& p) {
            p.AddString("id", &id, "the project's id");
            p.AddString("name", &name, "its name");
            p.AddString("environment", &environment, "production, staging, development, sandbox");
            p.AddString("models", &models, "comma-separated models allowed");
            p.AddInt("rpm", &rpm, "requests per minute (0: none)");
            p.AddInt("tpm", &tpm, "tokens per minute (0: none)");
            p.AddInt("member_rpm", &member_rpm, "each member's requests per minute (0: no cap)");
            p.AddInt("member_tpm", &member_tpm, "each member's tokens per minute (0: no cap)");
            p.AddBool("zdr", &zdr, "zero data retention required");
            p.AddInt("retention_days", &retention_days, "how long data may be kept");
            p.AddString("residency", &residency,
                        "where its calls must be processed: eu, us, apac or global (anywhere)");
            p.AddString("key_holders", &key_holders,
                        "who may hold its keys: service_accounts or members (and service "
                        "accounts); default by environment");
            p.AddString("pii", &pii,
                        "its own rules for what pii finds: TYPE=treatment,... (redact, mask, "
                        "replace, hash, placeholder, block, allow) or none");
            p.AddString("data_class", &data_class,
                        "how sensitive its prompts are before pii looks at them: public, "
                        "internal, pii or phi");
            p.AddBool("include_archived", &include_archived, "list: archived projects too");
            AddPageSize(p, &page_size);
          });
      rc != kOk) {
    return rc;
  }
  if (int rc = Int32Flags({{"page_size", page_size}, {"retention_days", retention_days}});
      rc != kOk)
    return rc;
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  auto print = [&](const authz::v1::Project& p) {
    // The project's 0 allows nothing; a member's 0 is no cap of their own.
    auto limit = [](int64_t n, bool zero_is_none) {
      return n != 0 ? absl::StrCat(n) : zero_is_none ? "0 (none)" : "-";
    };
    std::printf(
        "%s  %s  %s  models [%s]  rpm %s tpm %s  per member rpm %s tpm %s  key holders: "
        "%s%s%s%s%s\n",
        p.id().c_str(), p.environment().c_str(), p.name().c_str(),
        absl::StrJoin(p.allowed_models(), ",").c_str(), limit(p.limits().rpm(), true).c_str(),
        limit(p.limits().tpm(), true).c_str(), limit(p.member_limits().rpm(), false).c_str(),
        limit(p.member_limits().tpm(), false).c_str(),
        p.key_holders() == authz::v1::KEY_HOLDERS_SERVICE_ACCOUNTS ? "service accounts" : "members",
        ResidencyText(p.data_policy().residency()).c_str(),
        PiiRulesText(p.data_policy().pii()).c_str(),
        DataClassText(p.data_policy().data_class()).c_str(), p.archived() ? "  (archived)" : "");
  };
  // The settings given, onto `p` (all of them on create).
  const bool creating = verb == "create";
  auto given = [&](absl::string_view flag) { return creating || in.Given(flag); };
  auto apply = [&](authz::v1::Project* p) -> int {
    if (given("name")) p->set_name(name);
    if (given("models")) {
      p->clear_allowed_models();
      for (const std::string& m : List(models)) p->add_allowed_models(m);
    }
    if (given("rpm")) p->mutable_limits()->set_rpm(rpm);
    if (given("tpm")) p->mutable_limits()->set_tpm(tpm);
    if (given("member_rpm")) p->mutable_member_limits()->set_rpm(member_rpm);
    if (given("member_tpm")) p->mutable_member_limits()->set_tpm(member_tpm);
    if (given("zdr")) p->mutable_data_policy()->set_zero_data_retention(zdr);
    if (given("retention_days")) {
      p->mutable_data_policy()->set_retention_days(static_cast<int32_t>(retention_days));
    }
    if (given("residency")) {
      region::v1::Residency r;
      if (!ResidencyFlag(residency, &r)) return Usage("--residency must be eu, us, apac or global");
      p->mutable_data_policy()->set_residency(r);
    }
    if (given("data_class")) {
      const std::optional<DataClass> c = ParseDataClass(absl::AsciiStrToLower(data_class));
      if (!c.has_value()) return Usage("--data_class must be public, internal, pii or phi");
      p->mutable_data_policy()->set_data_class(DataClassToProto(*c));
    }
    if (given("pii")) {
      std::string error;
      if (!PiiRulesFlag(pii, p->mutable_data_policy()->mutable_pii(), &error)) {
        return Usage(error);
      }
    }
    if (key_holders == "service_accounts") {
      p->set_key_holders(authz::v1::KEY_HOLDERS_SERVICE_ACCOUNTS);
    } else if (key_holders == "members") {
      p->set_key_holders(authz::v1::KEY_HOLDERS_MEMBERS);
    } else if (!key_holders.empty()) {
      return Usage("--key_holders must be service_accounts or members");
    }
    return kOk;
  };
  // Every project, every page.
  auto list_projects = [&](bool with_archived, authz::v1::ListProjectsResponse* response) {
    authz::v1::ListProjectsRequest request;
    request.set_include_archived(with_archived);
    request.set_page_size(static_cast<int32_t>(page_size));
    return ListAll(request, response, [&](const auto& r, auto* page) {
      return stub->ListProjects(Context(g, true).get(), r, page);
    });
  };
  if (verb == "list") {
    authz::v1::ListProjectsResponse response;
    if (grpc::Status s = list_projects(include_archived, &response); !s.ok()) return Failed(s);
    return Show(g, response, [&] {
      for (const authz::v1::Project& p : response.projects()) print(p);
    });
  }
  authz::v1::Project project;
  grpc::Status status;
  if (verb == "create") {
    if (int rc = RequiredFlags("projects create",
                               {{"id", &id}, {"name", &name}, {"environment", &environment}});
        rc != kOk) {
      return rc;
    }
    authz::v1::CreateProjectRequest request;
    authz::v1::Project* p = request.mutable_project();
    p->set_id(id);
    p->set_environment(environment);
    if (int rc = apply(p); rc != kOk) return rc;
    status = stub->CreateProject(Context(g, true).get(), request, &project);
  } else if (verb == "update") {
    if (in.words.size() != 2) return Usage("projects update ID");
    // Read, changed by the flags given, written back whole (UpdateProject replaces every
    // setting but archived).
    authz::v1::ListProjectsResponse all;
    if (grpc::Status s = list_projects(/*with_archived=*/true, &all); !s.ok()) return Failed(s);
    const authz::v1::Project* found = WithId(all.projects(), in.words[1]);
    if (found == nullptr) return NoSuch("project", in.words[1]);
    authz::v1::UpdateProjectRequest request;
    *request.mutable_expected() = *found;
    *request.mutable_project() = *found;
    if (int rc = apply(request.mutable_project()); rc != kOk) return rc;
    status = stub->UpdateProject(Context(g, true).get(), request, &project);
  } else if (verb == "archive") {
    if (in.words.size() != 2) return Usage("projects archive ID");
    authz::v1::ArchiveProjectRequest request;
    request.set_id(in.words[1]);
    status = stub->ArchiveProject(Context(g, true).get(), request, &project);
  } else {
    return Usage(absl::StrCat("projects: unknown verb '", verb, "'"));
  }
  if (!status.ok()) return Failed(status);
  return Show(g, project, [&] { print(project); });
}

int EntityTypes(const Invocation& in) {
  if (!in.words.empty()) return Usage("entity-types takes no argument");
  Global g;
  if (int rc = ParseFlags(in, g, [](config::Parser&) {}); rc != kOk) return rc;
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  edge::v1::ListEntityTypesResponse response;
  if (grpc::Status s = stub->ListEntityTypes(Context(g, true).get(),
                                             edge::v1::ListEntityTypesRequest(), &response);
      !s.ok()) {
    return Failed(s);
  }
  return Show(g, response, [&] {
    const absl::flat_hash_set<std::string> blocked(response.blocked_everywhere().begin(),
                                                   response.blocked_everywhere().end());
    for (const pii::v1::EntityTypeInfo& info : response.entity_types()) {
      const std::string name = absl::AsciiStrToLower(pii::v1::DataClass_Name(info.default_class()));
      const std::string data_class(absl::StripPrefix(name, "data_class_"));
      std::string line =
          absl::StrCat(absl::StrFormat("%-24s %-8s", info.entity_type(), data_class),
                       info.custom() ? "  custom" : "",
                       blocked.contains(info.entity_type()) ? "  blocked in every project" : "");
      absl::StripTrailingAsciiWhitespace(&line);
      std::printf("%s\n", line.c_str());
    }
    // A type the edge blocks that pii does not detect: named, as nothing can find it.
    absl::flat_hash_set<std::string> listed;
    for (const pii::v1::EntityTypeInfo& info : response.entity_types()) {
      listed.insert(info.entity_type());
    }
    for (const std::string& type : response.blocked_everywhere()) {
      if (listed.contains(type)) continue;
      std::printf("%s  blocked in every project, but pii does not detect it\n",
                  Escaped(type).c_str());
    }
    std::printf("hash: %s\n", response.keyed_hashing()
                                  ? "available (pii has a pseudonym key)"
                                  : "not available (pii has no pseudonym key)");
  });
}

int ServiceAccounts(const Invocation& in) {
  if (in.words.empty()) return Usage("service-accounts: list, create or remove");
  const std::string& verb = in.words[0];
  Global g;
  std::string id, project, environment, permissions = "chat.completions", ip_allowlist;
  int64_t rpm = 0, tpm = 0, page_size = kListPageSize;
  absl::Duration max_key_lifetime = absl::ZeroDuration();
  bool include_removed = false;
  if (int rc = ParseFlags(in, g,
                          [&](config::Parser& p) {
                            p.AddString("id", &id, "the account's id");
                            p.AddString("project", &project, "its project");
                            p.AddString("environment", &environment, "its environment");
                            p.AddString("permissions", &permissions, "comma-separated permissions");
                            p.AddString("ip_allowlist", &ip_allowlist, "comma-separated CIDRs");
                            p.AddInt("rpm", &rpm, "requests per minute (0: the project's)");
                            p.AddInt("tpm", &tpm, "tokens per minute (0: the project's)");
                            p.AddDuration("max_key_lifetime", &max_key_lifetime,
                                          "the longest its keys may live (0: the keys "
                                          "service's limit)");
                            p.AddBool("include_removed", &include_removed,
                                      "list: removed accounts too");
                            AddPageSize(p, &page_size);
                          });
      rc != kOk) {
    return rc;
  }
  if (int rc = Int32Flags({{"page_size", page_size}}); rc != kOk) return rc;
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  auto print = [&](const authz::v1::ServiceAccount& a) {
    std::printf("%s  %s/%s  [%s]  from [%s]%s\n", a.id().c_str(), a.project().c_str(),
                a.environment().c_str(), absl::StrJoin(a.permissions(), ",").c_str(),
                absl::StrJoin(a.ip_allowlist(), ",").c_str(),
                a.has_removed_at() ? "  (removed)" : "");
  };
  if (verb == "list") {
    authz::v1::ListServiceAccountsRequest request;
    request.set_project(project);
    request.set_include_removed(include_removed);
    request.set_page_size(static_cast<int32_t>(page_size));
    authz::v1::ListServiceAccountsResponse response;
    if (grpc::Status s = ListAll(request, &response,
                                 [&](const auto& r, auto* page) {
                                   return stub->ListServiceAccounts(Context(g, true).get(), r,
                                                                    page);
                                 });
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      for (const authz::v1::ServiceAccount& a : response.service_accounts()) print(a);
    });
  }
  if (verb == "create") {
    if (int rc = RequiredFlags("service-accounts create",
                               {{"id", &id}, {"project", &project}, {"environment", &environment}});
        rc != kOk) {
      return rc;
    }
    authz::v1::CreateServiceAccountRequest request;
    authz::v1::ServiceAccount* a = request.mutable_service_account();
    a->set_id(id);
    a->set_project(project);
    a->set_environment(environment);
    for (const std::string& p : List(permissions)) a->add_permissions(p);
    for (const std::string& c : List(ip_allowlist)) a->add_ip_allowlist(c);
    a->mutable_limits()->set_rpm(rpm);
    a->mutable_limits()->set_tpm(tpm);
    if (max_key_lifetime != absl::ZeroDuration()) {
      proto::SetDuration(max_key_lifetime, a->mutable_max_key_lifetime());  // authz judges it.
    }
    authz::v1::ServiceAccount created;
    if (grpc::Status s = stub->CreateServiceAccount(Context(g, true).get(), request, &created);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, created, [&] { print(created); });
  }
  if (verb == "remove") {
    if (in.words.size() != 2) return Usage("service-accounts remove ID");
    authz::v1::RemoveServiceAccountRequest request;
    request.set_id(in.words[1]);
    edge::v1::RemoveServiceAccountResponse response;
    if (grpc::Status s = stub->RemoveServiceAccount(Context(g, true).get(), request, &response);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      print(response.service_account());
      std::printf("revoked %d keys\n", response.revoked_keys_size());
    });
  }
  return Usage(absl::StrCat("service-accounts: unknown verb '", verb, "'"));
}

// Entries audit query and export ask for per call: the most the audit service's page holds
// (each query call is recorded in the ledger as one read).
constexpr int64_t kAuditPageSize = 1000;
// Entries audit query shows unless --limit says otherwise: enough to read, bounded for a
// ledger of millions.
constexpr int64_t kAuditQueryLimit = 1000;

// `text` (RFC 3339, "2026-01-31T00:00:00Z") into `out`; left unset when empty.
absl::Status TimeFlag(const std::string& text, absl::string_view flag,
                      google::protobuf::Timestamp* out) {
  if (text.empty()) return absl::OkStatus();
  absl::Time t;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &error)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, ": not an RFC 3339 time such as 2026-01-31T00:00:00Z (", error, ")"));
  }
  proto::SetTime(t, out);
  return absl::OkStatus();
}

// A ledger holds nothing until its first entry: "valid" for one that is empty may be a
// mistyped project or environment, which stderr says.
void NothingRecorded(const audit::v1::LedgerRef& ledger) {
  std::fprintf(stderr,
               "policyctl: nothing is recorded in ledger %s: is the project or environment "
               "mistyped?\n",
               ledger.project().empty() && ledger.environment().empty()
                   ? "of the organisation"
                   : absl::StrCat(ledger.project(), "/", ledger.environment()).c_str());
}

int Audit(const Invocation& in) {
  const bool about_subject =
      !in.words.empty() && (in.words[0] == "subject-export" || in.words[0] == "forget");
  if (in.words.size() != (about_subject ? 2u : 1u)) {
    return Usage(
        "audit: query, verify, summary, export, checkpoint, checkpoints, prove, subject-export "
        "SUBJECT or "
        "forget SUBJECT");
  }
  Global g;
  std::string project, environment, action, request_id;
  std::string page_token, public_key_hex, start, end, actor;
  int64_t page_size = kAuditPageSize, limit = kAuditQueryLimit, tree_size = 0, index = -1;
  if (int rc = ParseFlags(
          in, g,
          [&](config::Parser& p) {
            p.AddString("project", &project, "the ledger's project (empty: the organisation's)");
            p.AddString("environment", &environment, "the ledger's environment");
            p.AddString("action", &action, "query: only this action, e.g. decision_deny");
            p.AddString("actor", &actor, "query: only entries of this actor (a member, ...)");
            p.AddString("start", &start,
                        "query, summary: entries from this time on (RFC 3339, inclusive)");
            p.AddString("end", &end, "query, summary: entries before this time (RFC 3339)");
            p.AddInt("page_size", &page_size, "query: entries per call (1..1000)");
            p.AddInt("limit", &limit, "query: stop after this many entries; 0: every entry");
            p.AddString("page_token", &page_token,
                        "query: continue a query --limit stopped, from the token it printed");
            p.AddInt("tree_size", &tree_size, "checkpoint, prove: a checkpoint's size; 0: newest");
            p.AddInt("index", &index, "prove: the entry's index");
            p.AddString("public_key", &public_key_hex,
                        "checkpoint, prove: the audit service's Ed25519 public keys (not "
                        "private seeds; 64 hex digits each, comma-separated: the current one "
                        "first, then those a rotation retired; from its operator, never from "
                        "the server) to check the checkpoint's signature against; without it "
                        "the root is not verified");
            p.AddString("request_id", &request_id,
                        "prove: the entry's request id (a decision's is decision:<its request "
                        "id>); forget: this erasure's request id (default: a fresh one)");
          });
      rc != kOk) {
    return rc;
  }
  // A negative size would be taken for 0, the newest checkpoint: not the one asked for.
  if (tree_size < 0)
    return Usage(absl::StrCat("--tree_size: 0 (the newest) or more, not ", tree_size));
  absl::StatusOr<std::vector<std::string>> public_keys =
      audit::CheckpointKeys::ParseHexList(public_key_hex, "--public_key");
  if (!public_keys.ok()) return Usage(std::string(public_keys.status().message()));
  // What the checkpoint's signature says, checked here against --public_key only.
  auto signature_verdict = [&](const audit::v1::Checkpoint& c) -> std::pair<bool, std::string> {
    if (public_keys->empty()) {
      return {true,
              "root NOT verified against a signature (give --public_key to check it); the "
              "stored key_id " +
                  c.key_id() + " is not signed"};
    }
    absl::StatusOr<audit::Checkpoint> checkpoint = audit::CheckpointFromProto(c);
    if (!checkpoint.ok()) {
      return {false,
              absl::StrCat("the checkpoint does NOT carry a valid signature of --public_key: ",
                           checkpoint.status().message())};
    }
    absl::StatusOr<std::string> signer = audit::CheckpointKeys(*public_keys).SignerOf(*checkpoint);
    if (!signer.ok()) {
      return {false,
              absl::StrCat("the checkpoint does NOT carry a valid signature of --public_key: ",
                           signer.status().message())};
    }
    return {true, absl::StrCat("signed by --public_key (key ", *signer, ")")};
  };
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  audit::v1::LedgerRef ledger;
  ledger.set_project(project);
  ledger.set_environment(environment);
  google::protobuf::Timestamp start_time, end_time;
  if (absl::Status s = TimeFlag(start, "start", &start_time); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  if (absl::Status s = TimeFlag(end, "end", &end_time); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  if (in.words[0] == "query") {
    if (page_size < 1 || page_size > kAuditPageSize) {
      return Usage(absl::StrCat("--page_size: 1 to ", kAuditPageSize, ", not ", page_size));
    }
    if (limit < 0) return Usage(absl::StrCat("--limit: 0 (every entry) or more, not ", limit));
    audit::v1::QueryEntriesRequest request;
    *request.mutable_ledger() = ledger;
    request.set_page_token(page_token);
    if (!start.empty()) *request.mutable_start_time() = start_time;
    if (!end.empty()) *request.mutable_end_time() = end_time;
    request.set_actor(actor);
    if (!action.empty()) {
      audit::v1::Action a;
      if (!audit::v1::Action_Parse(absl::StrCat("ACTION_", absl::AsciiStrToUpper(action)), &a)) {
        return Usage(absl::StrCat("--action: unknown action '", action, "'"));
      }
      request.set_action(a);
    }
    // Each page is printed as it arrives. No page asks for more than the limit leaves, so a
    // query stopped by --limit ends on a page boundary and the server's token resumes it.
    const google::protobuf::util::JsonPrintOptions options = JsonOptions();
    int64_t shown = 0;
    std::string next_page_token;
    for (;;) {
      request.set_page_size(
          static_cast<int32_t>(limit == 0 ? page_size : std::min(page_size, limit - shown)));
      audit::v1::QueryEntriesResponse page;
      if (grpc::Status s = stub->QueryAudit(Context(g, true).get(), request, &page); !s.ok()) {
        // What was printed is incomplete (with --output=json, not a JSON document): the
        // entries shown so far are named, and the token that asks for the rest.
        std::fflush(stdout);
        const int rc = Failed(s);
        if (shown > 0) {
          std::fprintf(stderr,
                       "policyctl: the output stops after %lld entries and is incomplete; "
                       "--page_token=%s asks for the rest\n",
                       static_cast<long long>(shown), request.page_token().c_str());
        }
        return rc;
      }
      for (const audit::v1::Entry& e : page.entries()) {
        if (g.json()) {
          std::string json;
          (void)google::protobuf::util::MessageToJsonString(e, &json, options);
          std::printf("%s%s", shown == 0 ? "{\"entries\":[" : ",", json.c_str());
        } else {
          absl::StatusOr<absl::Time> time = proto::TimeFromProto(e.time(), "");
          std::printf(
              "%llu  %s  %s  %s  %s  %s\n", static_cast<unsigned long long>(e.index()),
              time.ok()
                  ? absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", *time, absl::UTCTimeZone()).c_str()
                  : "?",
              audit::v1::Action_Name(e.action()).c_str(), e.actor().c_str(), e.model().c_str(),
              e.request_id().c_str());
        }
        ++shown;
      }
      std::fflush(stdout);
      if (std::ferror(stdout)) return kFailed;  // Main says why.
      if (page.next_page_token().empty()) break;
      if (page.next_page_token() == request.page_token()) {
        return Failed(grpc::Status(grpc::StatusCode::INTERNAL, "the server repeated a page token"));
      }
      request.set_page_token(page.next_page_token());
      if (limit != 0 && shown >= limit) {
        next_page_token = page.next_page_token();
        break;
      }
    }
    if (g.json()) {
      // The whole is one QueryEntriesResponse as JSON, every field printed: entries ([] when
      // nothing matched), then next_page_token, empty unless --limit stopped the query before
      // the last entry. After printed entries, the tail is that response's JSON without its
      // leading empty entries (fields print in field-number order; entries is 1).
      audit::v1::QueryEntriesResponse tail;
      tail.set_next_page_token(next_page_token);
      std::string json;
      (void)google::protobuf::util::MessageToJsonString(tail, &json, options);
      constexpr absl::string_view kNoEntries = "{\"entries\":[],";
      if (shown == 0) {
        std::printf("%s\n", json.c_str());
      } else if (absl::StartsWith(json, kNoEntries)) {
        std::printf("],%s\n", json.substr(kNoEntries.size()).c_str());
      } else {
        return Failed(grpc::Status(grpc::StatusCode::INTERNAL,
                                   absl::StrCat("unexpected JSON of a page's end: ", json)));
      }
    }
    if (!next_page_token.empty()) {
      std::fprintf(stderr,
                   "policyctl: stopped at --limit=%lld entries; more match: --page_token=%s "
                   "continues, --limit=0 shows every entry\n",
                   static_cast<long long>(limit), next_page_token.c_str());
    }
    return kOk;
  }
  if (in.words[0] == "verify") {
    audit::v1::VerifyLedgerRequest request;
    *request.mutable_ledger() = ledger;
    audit::v1::VerifyLedgerResponse response;
    if (grpc::Status s = stub->VerifyLedger(Context(g, true).get(), request, &response); !s.ok()) {
      return Failed(s);
    }
    const audit::v1::IntegrityReport& r = response.report();
    if (g.json()) {
      PrintJson(response);
    } else if (r.valid()) {
      // The signing keys' ids, sorted, each with the checkpoints it signed.
      std::map<std::string, uint64_t> by_key(r.checkpoints_by_key().begin(),
                                             r.checkpoints_by_key().end());
      std::string keys;
      for (const auto& [key_id, count] : by_key) {
        absl::StrAppend(&keys, keys.empty() ? " (signed by key " : ", key ", key_id, ": ", count);
      }
      if (!keys.empty()) keys += ")";
      std::printf("valid: %llu entries, %llu checkpoints%s\n",
                  static_cast<unsigned long long>(r.entries_checked()),
                  static_cast<unsigned long long>(r.checkpoints_checked()), keys.c_str());
      if (r.entries_checked() == 0) NothingRecorded(ledger);
    } else {
      std::printf("INVALID at index %llu: %s\n",
                  static_cast<unsigned long long>(r.first_bad_index()), r.problem().c_str());
    }
    return r.valid() ? kOk : kRefused;
  }
  if (in.words[0] == "export") {
    // Page by page, in index order: one Entry in proto3 JSON per line, the form the audit
    // service's export and tools/audit_verify use.
    audit::v1::QueryEntriesRequest request;
    *request.mutable_ledger() = ledger;
    request.set_page_size(kAuditPageSize);
    const google::protobuf::util::JsonPrintOptions options = JsonOptions();
    for (;;) {
      audit::v1::QueryEntriesResponse response;
      if (grpc::Status s = stub->QueryAudit(Context(g, true).get(), request, &response); !s.ok()) {
        return Failed(s);
      }
      for (const audit::v1::Entry& e : response.entries()) {
        std::string line;
        (void)google::protobuf::util::MessageToJsonString(e, &line, options);
        std::printf("%s\n", line.c_str());
      }
      if (std::ferror(stdout)) return kFailed;  // Main says why.
      if (response.next_page_token().empty()) return kOk;
      request.set_page_token(response.next_page_token());
    }
  }
  if (in.words[0] == "summary") {
    audit::v1::GetComplianceSummaryRequest request;
    *request.mutable_ledger() = ledger;
    if (!start.empty()) *request.mutable_start_time() = start_time;
    if (!end.empty()) *request.mutable_end_time() = end_time;
    audit::v1::GetComplianceSummaryResponse response;
    if (grpc::Status s = stub->GetComplianceSummary(Context(g, true).get(), request, &response);
        !s.ok()) {
      return Failed(s);
    }
    const audit::v1::IntegrityReport& integrity = response.integrity();
    const int shown = Show(g, response, [&] {
      auto time_of = [](const google::protobuf::Timestamp& t) {
        absl::StatusOr<absl::Time> time = proto::TimeFromProto(t, "");
        return time.ok() ? absl::FormatTime(absl::RFC3339_full, *time, absl::UTCTimeZone()) : "?";
      };
      if (response.total_entries() > 0) {
        std::printf("from %s to %s: ", time_of(response.period_start()).c_str(),
                    time_of(response.period_end()).c_str());
      }
      const std::string verdict =
          integrity.valid() ? "valid"
                            : absl::StrCat("INVALID at index ", integrity.first_bad_index(), ": ",
                                           integrity.problem());
      std::printf(
          "%llu entries, %lld tokens, %llu policy violations, %llu unaccounted subjects, "
          "integrity %s\n",
          static_cast<unsigned long long>(response.total_entries()),
          static_cast<long long>(response.total_tokens()),
          static_cast<unsigned long long>(response.policy_violations()),
          static_cast<unsigned long long>(response.unaccounted_subjects()), verdict.c_str());
      std::map<std::string, uint64_t> sorted(response.action_breakdown().begin(),
                                             response.action_breakdown().end());
      for (const auto& [action, count] : sorted) {
        std::printf("  %-24s %llu\n", action.c_str(), static_cast<unsigned long long>(count));
      }
      // "allowed by region: eastus 1, westeurope 2", when the period has any.
      auto breakdown = [](const char* title,
                          const google::protobuf::Map<std::string, uint64_t>& counts) {
        if (counts.empty()) return;
        const std::map<std::string, uint64_t> in_order(counts.begin(), counts.end());
        std::vector<std::string> items;
        for (const auto& [name, count] : in_order) {
          items.push_back(absl::StrCat(Escaped(name), " ", count));
        }
        std::printf("%s: %s\n", title, absl::StrJoin(items, ", ").c_str());
      };
      breakdown("allowed by region", response.allowed_by_region());
      breakdown("allowed by residency", response.allowed_by_residency());
      breakdown("allowed by data class", response.allowed_by_data_class());
      breakdown("denials by reason", response.denials_by_reason());
      breakdown("personal data sent as is (a rule allowed it)", response.pii_allowed_by_type());
    });
    if (!g.json() && response.total_entries() == 0 && start.empty() && end.empty()) {
      NothingRecorded(ledger);
    }
    // As audit verify: a script must not take an invalid ledger's totals for an answer.
    return shown == kOk && !integrity.valid() ? kRefused : shown;
  }
  if (in.words[0] == "checkpoint") {
    audit::v1::GetCheckpointRequest request;
    *request.mutable_ledger() = ledger;
    request.set_tree_size(static_cast<uint64_t>(std::max<int64_t>(tree_size, 0)));
    audit::v1::GetCheckpointResponse response;
    if (grpc::Status s = stub->GetCheckpoint(Context(g, true).get(), request, &response); !s.ok()) {
      return Failed(s);
    }
    const auto [signature_ok, verdict] = signature_verdict(response.checkpoint());
    const int shown = Show(g, response, [&] {
      const audit::v1::Checkpoint& c = response.checkpoint();
      std::printf("tree size %llu  root %s  %s\n", static_cast<unsigned long long>(c.tree_size()),
                  absl::BytesToHexString(c.root_hash()).c_str(), verdict.c_str());
    });
    if (!signature_ok) {
      std::fprintf(stderr, "policyctl: %s\n", verdict.c_str());
      return kRefused;
    }
    return shown;
  }
  if (in.words[0] == "checkpoints") {
    // Every page, as one ListCheckpointsResponse.
    audit::v1::ListCheckpointsRequest request;
    *request.mutable_ledger() = ledger;
    audit::v1::ListCheckpointsResponse all;
    do {
      audit::v1::ListCheckpointsResponse page;
      if (grpc::Status s = stub->ListCheckpoints(Context(g, true).get(), request, &page); !s.ok()) {
        return Failed(s);
      }
      for (audit::v1::Checkpoint& c : *page.mutable_checkpoints()) {
        *all.add_checkpoints() = std::move(c);
      }
      if (page.next_after_size() != 0 && page.next_after_size() <= request.after_size()) {
        return Failed(grpc::Status(grpc::StatusCode::INTERNAL, "the server repeated a page"));
      }
      request.set_after_size(page.next_after_size());
    } while (request.after_size() != 0);
    return Show(g, all, [&] {
      for (const audit::v1::Checkpoint& c : all.checkpoints()) {
        absl::StatusOr<absl::Time> time = proto::TimeFromProto(c.time(), "");
        std::printf(
            "tree size %llu  %s  key %s  root %s\n", static_cast<unsigned long long>(c.tree_size()),
            time.ok() ? absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", *time, absl::UTCTimeZone()).c_str()
                      : "?",
            c.key_id().c_str(), absl::BytesToHexString(c.root_hash()).c_str());
      }
    });
  }
  if (in.words[0] == "prove") {
    audit::v1::GetInclusionProofRequest request;
    *request.mutable_ledger() = ledger;
    if ((index >= 0) == !request_id.empty()) return Usage("prove: --index or --request_id");
    if (index >= 0) {
      request.set_index(static_cast<uint64_t>(index));
    } else {
      request.set_request_id(request_id);
    }
    request.set_tree_size(static_cast<uint64_t>(std::max<int64_t>(tree_size, 0)));
    audit::v1::GetInclusionProofResponse response;
    if (grpc::Status s = stub->GetInclusionProof(Context(g, true).get(), request, &response);
        !s.ok()) {
      const int rc = Failed(s);
      if (s.error_code() == grpc::StatusCode::NOT_FOUND && !request_id.empty() &&
          !absl::StartsWith(request_id, "decision:") && !absl::StartsWith(request_id, "usage:")) {
        std::fprintf(stderr,
                     "policyctl: a decision's entry is recorded under decision:<its request id> "
                     "(--request_id=decision:%s)\n",
                     request_id.c_str());
      }
      return rc;
    }
    // Nothing the server says is taken on trust: the leaf is recomputed from the entry's
    // fields and the proof folded to the checkpoint's root here; the root is checked against
    // --public_key when given.
    std::string failure;
    absl::StatusOr<audit::Entry> entry = audit::EntryFromProto(response.entry());
    absl::StatusOr<audit::Checkpoint> checkpoint =
        audit::CheckpointFromProto(response.checkpoint());
    std::vector<audit::Hash> proof;
    for (const std::string& h : response.proof()) {
      absl::StatusOr<audit::Hash> hash = audit::HashFromBytes(h);
      if (!hash.ok()) {
        failure = "a proof hash is not 32 bytes";
        break;
      }
      proof.push_back(*hash);
    }
    if (!entry.ok()) {
      failure = absl::StrCat("the entry is malformed: ", entry.status().message());
    } else if (!checkpoint.ok()) {
      failure = absl::StrCat("the checkpoint is malformed: ", checkpoint.status().message());
    } else if (failure.empty() &&
               !audit::VerifyInclusion(audit::EntryLeafHash(*entry), entry->index,
                                       checkpoint->tree_size, proof, checkpoint->root)) {
      failure = "the proof does not fold the entry's recomputed leaf hash to the checkpoint's root";
    }
    const auto [signature_ok, verdict] = signature_verdict(response.checkpoint());
    if (failure.empty() && !signature_ok) failure = verdict;
    if (!failure.empty()) {
      // As audit checkpoint: with --output=json, exit 3 still comes with the answer.
      if (g.json()) PrintJson(response);
      std::fprintf(stderr, "policyctl: NOT PROVEN: entry %llu: %s\n",
                   static_cast<unsigned long long>(response.entry().index()), failure.c_str());
      return kRefused;
    }
    return Show(g, response, [&] {
      std::printf("entry %llu is in the tree of %llu (root %s): proof of %d hashes checked; %s\n",
                  static_cast<unsigned long long>(response.entry().index()),
                  static_cast<unsigned long long>(response.checkpoint().tree_size()),
                  absl::BytesToHexString(response.checkpoint().root_hash()).c_str(),
                  response.proof_size(), verdict.c_str());
    });
  }
  if (in.words[0] == "subject-export") {
    // Every page, as JSON lines.
    audit::v1::ExportSubjectRequest request;
    request.set_subject(in.words[1]);
    request.set_page_size(1000);
    const google::protobuf::util::JsonPrintOptions options = JsonOptions();
    do {
      audit::v1::ExportSubjectResponse response;
      if (grpc::Status s = stub->ExportSubject(Context(g, true).get(), request, &response);
          !s.ok()) {
        return Failed(s);
      }
      for (const audit::v1::Entry& e : response.entries()) {
        std::string line;
        (void)google::protobuf::util::MessageToJsonString(e, &line, options);
        std::printf("%s\n", line.c_str());
      }
      if (std::ferror(stdout)) return kFailed;  // Main says why.
      request.set_page_token(response.next_page_token());
    } while (!request.page_token().empty());
    return kOk;
  }
  if (in.words[0] == "forget") {
    request_id = RequestIdOr(request_id);
    audit::v1::ForgetSubjectRequest request;
    request.set_subject(in.words[1]);
    request.set_request_id(request_id);
    audit::v1::ForgetSubjectResponse response;
    if (grpc::Status s = stub->ForgetSubject(Context(g, true).get(), request, &response); !s.ok()) {
      return FailedRetryable(s, request_id);
    }
    return ShowWithRequestId(g, response, request_id, [&] {
      std::printf("%s; recorded as entry %llu (request %s)\n",
                  response.forgotten() ? "forgotten" : "nothing was recorded about them",
                  static_cast<unsigned long long>(response.entry().index()), request_id.c_str());
      if (response.has_email_entry()) {
        std::printf("their e-mail address: %s; recorded as entry %llu\n",
                    response.email_forgotten() ? "forgotten" : "nothing was recorded about it",
                    static_cast<unsigned long long>(response.email_entry().index()));
      }
      if (response.member_erased()) {
        std::printf("erased from the organisation: their e-mail address and invitations\n");
      }
      for (const audit::v1::ForgottenMember& m : response.members()) {
        std::printf("member %s with this address: %s; recorded as entry %llu%s\n", m.id().c_str(),
                    m.forgotten() ? "forgotten" : "nothing was recorded about them",
                    static_cast<unsigned long long>(m.entry().index()),
                    m.erased() ? "; erased from the organisation" : "");
      }
    });
  }
  return Usage(absl::StrCat("audit: unknown verb '", in.words[0], "'"));
}

// Asks each target's grpc.health.v1.Health/Check; kOk only when every one is SERVING.
int Health(const Invocation& in) {
  Global g;
  std::string service;
  if (int rc = ParseFlags(in, g,
                          [&](config::Parser& p) {
                            p.AddString("service", &service,
                                        "the service asked about (\"\" the whole server, "
                                        "\"liveness\")");
                          });
      rc != kOk) {
    return rc;
  }
  const std::vector<std::string> targets =
      in.words.empty() ? std::vector<std::string>{g.edge} : in.words;
  for (size_t i = 0; i < in.words.size(); ++i) {
    absl::Status s = client::CheckTarget(absl::StrCat("health: argument ", i + 1), in.words[i]);
    if (!s.ok()) return Usage(std::string(s.message()));
  }
  int rc = kOk;
  for (const std::string& target : targets) {
    auto stub = grpc::health::v1::Health::NewStub(Channel(g, target));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    std::unique_ptr<grpc::ClientContext> context = Context(g, /*admin=*/false);
    const grpc::Status s = stub->Check(context.get(), request, &response);
    const std::string status =
        s.ok()
            ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
            : absl::StrCat("error: ",
                           absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())),
                           ": ", s.error_message());
    // Not serving, or not reached, for now: worth asking again (exit 4); anything else (an
    // unknown service name, a server without the health service) is not (exit 1).
    const bool serving =
        s.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
    const bool for_now =
        s.ok() ? response.status() == grpc::health::v1::HealthCheckResponse::NOT_SERVING
               : ExitCodeOf(s) == kTransient;
    // A failure that is not for now outranks one that is.
    if (!serving && rc != kFailed) rc = for_now ? kTransient : kFailed;
    if (g.json()) {
      // One object per line, its keys in this order.
      std::printf("{\"target\":%s,\"status\":%s,\"code\":%s}\n", JsonQuote(target).c_str(),
                  JsonQuote(status).c_str(),
                  JsonQuote(absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())))
                      .c_str());
    } else {
      std::printf("%s\t%s\n", target.c_str(), status.c_str());
    }
  }
  return rc;
}

// One command line of the usage ("  keys create ..."), with its deeper-indented continuations.
struct UsageEntry {
  std::vector<std::string> words;  // the first line's words
  std::string text;
};

// The usage's entries of `command`, and whether one of them names `verb` (then only those).
// None when `command` is empty or unknown.
std::vector<UsageEntry> UsageEntriesOf(const std::string& command, const std::string& verb,
                                       bool* verb_named) {
  *verb_named = false;
  const absl::string_view text = kUsageText;
  const size_t commands = text.find("\ncommands:\n");
  const size_t global = text.find("\nglobal flags");
  if (command.empty() || commands == absl::string_view::npos || global == absl::string_view::npos) {
    return {};
  }
  std::vector<UsageEntry> entries;
  bool in_command = false;
  for (absl::string_view line : absl::StrSplit(text.substr(commands + 11, global - commands - 11),
                                               '\n', absl::SkipEmpty())) {
    if (line.size() > 2 && line[2] != ' ') {
      std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
      in_command = !words.empty() && words[0] == command;
      if (in_command) entries.push_back({std::move(words), ""});
    }
    if (in_command) absl::StrAppend(&entries.back().text, line, "\n");
  }
  // A verb is the word after the command, or after a "|" ("invitations list | create").
  auto names_verb = [&](const UsageEntry& e) {
    const std::vector<absl::string_view> words =
        absl::StrSplit(e.text, absl::ByAnyChar(" \n"), absl::SkipEmpty());
    for (size_t i = 1; i < words.size(); ++i) {
      if (words[i] == verb && (i == 1 || words[i - 1] == "|")) return true;
    }
    return false;
  };
  if (!verb.empty() && std::any_of(entries.begin(), entries.end(), names_verb)) {
    *verb_named = true;
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [&](const UsageEntry& e) { return !names_verb(e); }),
                  entries.end());
  }
  return entries;
}

// The usage of `command` (its verb `verb`'s alone when the usage names it) and the global
// flags; the whole usage when `command` is empty or unknown.
std::string CommandUsage(const std::string& command, const std::string& verb) {
  bool verb_named = false;
  const std::vector<UsageEntry> entries = UsageEntriesOf(command, verb, &verb_named);
  if (entries.empty()) return kUsageText;
  const absl::string_view text = kUsageText;
  // Only a verb the usage names is shown: whatever else was typed (a key pasted there) is not.
  std::string out = absl::StrCat("usage: policyctl [global flags] ", command,
                                 verb_named ? absl::StrCat(" ", verb) : "", " [flags]\n\n");
  for (const UsageEntry& e : entries) absl::StrAppend(&out, e.text);
  absl::StrAppend(&out, text.substr(text.find("\nglobal flags")));
  return out;
}

// Usage's kUsage exit, with the usage of `command`'s `verb` alone.
int UsageOf(const std::string& command, const std::string& verb, const std::string& problem) {
  std::fprintf(stderr, "policyctl: %s\n\n%s", problem.c_str(), CommandUsage(command, verb).c_str());
  return kUsage;
}

// Refuses a flag `command`'s verb (in.words[0], when the usage names it; a command of one
// entry, its only one) does not take, as its usage lists them: each command parses one set of
// flags for all its verbs, and a flag of another verb would otherwise be ignored without a
// word (audit verify --public_key would pass without checking a signature). Lists also take
// --page_size. Global flags go with every verb.
int CheckFlagsOfVerb(const std::string& command, const Invocation& in) {
  const std::string verb = in.words.empty() ? "" : in.words[0];
  bool verb_named = false;
  const std::vector<UsageEntry> entries = UsageEntriesOf(command, verb, &verb_named);
  // A verb the usage of a command of several does not name is unknown, whatever else is
  // missing.
  if (!verb.empty() && !verb_named && entries.size() > 1) {
    Current().verb.clear();
    return Usage(absl::StrCat(command, ": unknown verb ", Shown(verb)));
  }
  if (!verb_named && entries.size() != 1) return kOk;  // The command names what is wrong.
  std::set<std::string> taken;
  if (verb == "list") taken.insert("page_size");
  for (const UsageEntry& e : entries) {
    for (size_t at = e.text.find("--"); at != std::string::npos; at = e.text.find("--", at)) {
      at += 2;
      size_t end = at;
      while (end < e.text.size() && (absl::ascii_islower(e.text[end]) || e.text[end] == '_')) {
        ++end;
      }
      taken.insert(e.text.substr(at, end - at));
    }
  }
  // Arguments: the usage's upper-case words after the verb of an entry of its own (ID, FILE).
  if (verb_named && entries.size() == 1 && entries[0].words.size() > 1 &&
      entries[0].words[1] == verb) {
    size_t arguments = 0;
    for (size_t i = 2; i < entries[0].words.size(); ++i) {
      const std::string& w = entries[0].words[i];
      if (w.size() > 1 && std::all_of(w.begin(), w.end(), [](char c) {
            return absl::ascii_isupper(static_cast<unsigned char>(c)) || c == '|';
          })) {
        ++arguments;
      }
    }
    if (in.words.size() - 1 > arguments) {
      return UsageOf(command, verb,
                     absl::StrCat(command, " ", verb, " takes ", arguments,
                                  arguments == 1 ? " argument" : " arguments", ", not ",
                                  in.words.size() - 1, ": ", Shown(in.words[arguments + 1])));
    }
  }
  for (const std::string& flag : in.flags) {
    const std::string name = flag.substr(2, flag.find('=') - 2);
    if (IsGlobalFlag(name) || taken.count(name) > 0) continue;
    const std::string what = verb_named ? absl::StrCat(command, " ", verb) : command;
    return UsageOf(command, verb_named ? verb : "", absl::StrCat(what, " takes no --", name));
  }
  return kOk;
}

// Whether `name` is a switch: a flag that takes no value (`--zdr`, `--zdr=false`).
bool IsSwitch(absl::string_view name) {
  return name == "return_mapping" || name == "include_removed" || name == "include_archived" ||
         name == "zdr" || name == "private_link" || name == "cached" || name == "disabled";
}

int Run(int argc, char** argv) {
  Invocation in;
  std::string command;
  bool help = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help = true;
    } else if (absl::StartsWith(arg, "--")) {
      // `--name value` is `--name=value` for every flag but a switch.
      if (arg.find('=') == std::string::npos && !IsSwitch(absl::string_view(arg).substr(2)) &&
          i + 1 < argc && !absl::StartsWith(argv[i + 1], "--")) {
        absl::StrAppend(&arg, "=", argv[++i]);
      }
      in.flags.push_back(std::move(arg));
    } else if (command.empty()) {
      command = std::move(arg);
    } else {
      in.words.push_back(std::move(arg));
    }
  }
  // --help anywhere, or `help [COMMAND [VERB]]`: the usage on stdout, and no call is made.
  if (help || command == "help") {
    if (command == "help") {
      command = in.words.empty() ? "" : in.words[0];
      in.words.erase(in.words.begin(), in.words.begin() + std::min<size_t>(1, in.words.size()));
    }
    const std::string usage = CommandUsage(command, in.words.empty() ? "" : in.words[0]);
    std::fputs(usage.c_str(), stdout);
    return kOk;
  }
  if (command.empty()) {
    std::fputs(kUsageText, stderr);
    return kUsage;
  }
  Current() = {command, in.words.empty() ? "" : in.words[0]};
  // No argument is ever a key: one pasted as an argument is refused before anything can show
  // it.
  for (size_t i = 0; i < in.words.size(); ++i) {
    if (const std::string shown = Shown(in.words[i]); shown[0] != '\'') {
      Current().verb.clear();
      return Usage(absl::StrCat(command, ": argument ", i + 1, " is ", shown,
                                "; keys go in --api_key or --admin_key, better from the "
                                "environment"));
    }
  }
  // A flag given twice would otherwise take its last value without a word (decide's
  // --message=a --message=b sending b alone).
  std::set<std::string> given;
  for (const std::string& flag : in.flags) {
    const std::string name = flag.substr(2, flag.find('=') - 2);
    if (!given.insert(name).second) return Usage(absl::StrCat("--", name, " is given twice"));
  }
  // Every text the services take is UTF-8: a flag or an argument that is not (typed in a
  // Latin-1 terminal, say) would reach them as a message protobuf refuses to serialise, and
  // the call fail UNIMPLEMENTED naming nothing. Decide's messages are bytes (pii judges them)
  // and file names the file system's, so those are let through.
  for (const std::string& flag : in.flags) {
    const std::string name = flag.substr(2, flag.find('=') - 2);
    if (name == "message" || name == "system" || absl::StartsWith(name, "tls_")) continue;
    if (!IsUtf8(flag)) return Usage(absl::StrCat("--", name, ": not UTF-8"));
  }
  if (command != "org") {
    for (size_t i = 0; i < in.words.size(); ++i) {
      if (!IsUtf8(in.words[i])) {
        return Usage(absl::StrCat(command, ": argument ", i + 1, " is not UTF-8"));
      }
    }
  }
  if (int rc = CheckFlagsOfVerb(command, in); rc != kOk) return rc;
  if (command == "decide") return Decide(in);
  if (command == "health") return Health(in);
  if (command == "keys") return Keys(in);
  if (command == "members") return Members(in);
  if (command == "audit") return Audit(in);
  if (command == "org") return Org(in);
  if (command == "endpoints") return Endpoints(in);
  if (command == "projects") return Projects(in);
  if (command == "entity-types") return EntityTypes(in);
  if (command == "invitations") return Invitations(in);
  if (command == "service-accounts") return ServiceAccounts(in);
  return Usage(absl::StrCat("unknown command ", Shown(command)));
}

// Runs the command; an answer that could not be written whole (a full disk, a closed pipe) is
// a failure, never exit 0: a created key's secret, shown once, would be lost without a word.
// A call made under a request id can be asked again under it to be shown its answer.
int Main(int argc, char** argv) {
  // A closed pipe (`| head`) is a write that fails, exit 1 as documented, not a signal.
  std::signal(SIGPIPE, SIG_IGN);
  const int rc = Run(argc, argv);
  errno = 0;
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return rc;
  const int error = errno;
  std::fprintf(stderr, "policyctl: the answer could not be written to stdout: %s\n",
               error != 0 ? std::strerror(error) : "write error");
  if (!ShownRequestId().empty()) {
    std::fprintf(stderr,
                 "policyctl: request id %s; retry with --request_id=%s to be shown the answer "
                 "again\n",
                 ShownRequestId().c_str(), ShownRequestId().c_str());
  }
  return kFailed;
}

}  // namespace
}  // namespace policy::policyctl

int main(int argc, char** argv) { return policy::policyctl::Main(argc, argv); }
