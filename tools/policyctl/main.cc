// policyctl: the operators' command line, a client of the edge (its Decide and admin APIs).
//
//   policyctl [global flags] decide --model=gpt-4o --message="..." [--residency=eu] ...
//   policyctl keys create --owner=bob --project=support-eu [--request_id=R]
//   policyctl keys rotate KEY_ID [--overlap=24h] [--request_id=R] | keys revoke KEY_ID
//   policyctl keys list [--project=P] [--owner=ID [--owner_type=service_account]]
//   policyctl members remove MEMBER_ID [--request_id=R] | members list
//   policyctl invitations create --email=E --role=R [--projects=P] [--request_id=R]
//   policyctl org plan FILE | org apply FILE [--plan_fingerprint=...] | org sync-group GROUP FILE
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
//
// One file per command group (keys.cc, audit.cc, ...), what they share in cli.h, the usage
// and the flags each verb takes in usage.cc.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/text/utf8.h"
#include "tools/policyctl/cli.h"

namespace policy::policyctl {
namespace {

// Whether `name` is a switch: a flag that takes no value (`--zdr`, `--zdr=false`).
bool IsSwitch(absl::string_view name) {
  return name == "return_mapping" || name == "include_removed" || name == "include_archived" ||
         name == "zdr" || name == "private_link" || name == "cached" || name == "disabled" ||
         name == "allow_empty" || name == "detailed_exit_code";
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
