#ifndef POLICY_TOOLS_POLICYCTL_CLI_H_
#define POLICY_TOOLS_POLICYCTL_CLI_H_

// What every policyctl command shares: its global flags and invocation, how it parses flags,
// calls the edge, shows an answer and picks its exit code (main.cc documents the codes).
#include <algorithm>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
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
#include "common/tls/tls_options.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "policy/edge/v1/admin.grpc.pb.h"
#include "policy/edge/v1/edge.grpc.pb.h"

namespace policy::policyctl {

inline constexpr int kOk = 0, kFailed = 1, kUsage = 2, kRefused = 3, kTransient = 4;

// The whole usage (usage.cc): every command and verb, the global flags, the exit codes.
extern const char kUsageText[];

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

// The item of `items` whose id is `id`; null when none is.
template <typename T>
const T* WithId(const google::protobuf::RepeatedPtrField<T>& items, const std::string& id) {
  const auto it =
      std::find_if(items.begin(), items.end(), [&](const T& item) { return item.id() == id; });
  return it == items.end() ? nullptr : &*it;
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
inline constexpr int64_t kListPageSize = 500;

// The command and verb Run is running.
Running& Current();

// `problem` on stderr with the usage of the command being run (its verb's alone when the usage
// names it; the whole usage for no or an unknown command); the usage exit code.
int Usage(const std::string& problem);

// `word` quoted for a message, unless it looks like a key: a secret pasted in the wrong place
// is not echoed.
std::string Shown(absl::string_view word);

// Whether `name` is a global flag (the only ones also read from the environment).
bool IsGlobalFlag(absl::string_view name);

// Parses `flags` into `global` and whatever `add` registers; 0 or the usage exit code.
int ParseFlags(const Invocation& in, Global& global,
               const std::function<void(config::Parser&)>& add);

// The exit code of a call that failed with `s`.
int ExitCodeOf(const grpc::Status& s);

// The call's failure on stderr (its status code and message); its exit code.
int Failed(const grpc::Status& s);

// An update's item that a list did not hold: NOT_FOUND, as the service says it.
int NoSuch(absl::string_view kind, const std::string& id);

// How every --output=json answer and JSON line is printed: proto field names, and every
// field without presence even at its default (0, false, "", [] and the zero enum), so that a
// script finds each key whatever its value.
google::protobuf::util::JsonPrintOptions JsonOptions();

// `m` as one line of JSON on stdout (JsonOptions).
void PrintJson(const google::protobuf::Message& m);

// A command's answer: `response` as JSON with --output=json, else what `text` prints; kOk.
int Show(const Global& g, const google::protobuf::Message& response,
         const std::function<void()>& text);

// The request id of the call whose answer is being shown, for Main's advice should that answer
// not reach stdout.
std::string& ShownRequestId();

// Show for a call made under `request_id` (keys create, rotate, members remove, invitations
// create, audit forget): the text names it; with --output=json, whose stdout is only the
// response (which does not hold it), stderr does, so that a script that let policyctl make
// one up can still retry without repeating.
int ShowWithRequestId(const Global& g, const google::protobuf::Message& response,
                      const std::string& request_id, const std::function<void()>& text);

// A channel to `target` with the global TLS settings.
std::shared_ptr<grpc::Channel> Channel(const Global& g, const std::string& target);

std::shared_ptr<grpc::Channel> Channel(const Global& g);  // To the edge.

// A call's context: the deadline and, for the admin API, the admin key.
std::unique_ptr<grpc::ClientContext> Context(const Global& g, bool admin);

// Registers --page_size into `*page_size`, whose value is its default (lists start it at
// kListPageSize).
void AddPageSize(config::Parser& p, int64_t* page_size);

// kUsage naming the first of `flags` ({name, value}) left empty: the usage's required flags,
// checked here so that the message names the flag, not the request field the server would.
int RequiredFlags(const std::string& what,
                  std::initializer_list<std::pair<const char*, const std::string*>> flags);

// A request id for a call a retry must not repeat: `given`, or a fresh one.
std::string RequestIdOr(const std::string& given);

// Failed; when the call may have been done without an answer reaching us (the server did not
// answer, or failed inside), also how to retry `request_id`'s call without repeating it. A
// refusal (bad input, a request id used for other parameters, a role's) gets no such advice.
int FailedRetryable(const grpc::Status& s, const std::string& request_id);

// Flags bound for int32 fields: a number out of int32's range is refused, never wrapped round
// into it (--retention_days=4294967297 would be sent as 1); 0 or the usage exit code.
int Int32Flags(std::initializer_list<std::pair<const char*, int64_t>> flags);

// Duration flags sent in whole seconds when given: a negative one, or one with a fraction of
// a second (500ms would be sent as 0), is refused rather than sent otherwise than written.
int NonNegativeFlags(std::initializer_list<std::pair<const char*, absl::Duration>> flags);

// kOk when an admin key is given, else the usage exit code saying where to give it.
int NeedAdminKey(const Global& g);

// The residency a --residency flag names, in any case: eu, us, apac or global (none
// required of a request, none promised by an endpoint); false for anything else.
bool ResidencyFlag(const std::string& name, region::v1::Residency* residency);

// One line of text per key, its secret never (only its prefix and last characters).
void PrintKey(const keys::v1::Key& k);

// "a,b,c" as {"a", "b", "c"}.
std::vector<std::string> List(const std::string& comma_separated);

// The usage of `command` (its verb `verb`'s alone when the usage names it) and the global
// flags; the whole usage when `command` is empty or unknown.
std::string CommandUsage(const std::string& command, const std::string& verb);

// Refuses a flag `command`'s verb (in.words[0], when the usage names it; a command of one
// entry, its only one) does not take, as its usage lists them: each command parses one set of
// flags for all its verbs, and a flag of another verb would otherwise be ignored without a
// word (audit verify --public_key would pass without checking a signature). Lists also take
// --page_size. Global flags go with every verb.
int CheckFlagsOfVerb(const std::string& command, const Invocation& in);

// The commands, each in a file of its own: 0, or the exit code of what failed.
int Decide(const Invocation& in);           // decide.cc
int Keys(const Invocation& in);             // keys.cc
int Members(const Invocation& in);          // members.cc
int Invitations(const Invocation& in);      // members.cc
int Org(const Invocation& in);              // org.cc
int Endpoints(const Invocation& in);        // endpoints.cc
int Projects(const Invocation& in);         // projects.cc
int EntityTypes(const Invocation& in);      // projects.cc
int ServiceAccounts(const Invocation& in);  // projects.cc
int Audit(const Invocation& in);            // audit.cc
int Health(const Invocation& in);           // health.cc

}  // namespace policy::policyctl

#endif  // POLICY_TOOLS_POLICYCTL_CLI_H_
