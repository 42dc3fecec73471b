// policyctl usage: the text, and the flags and arguments each verb takes.
#include <cstdio>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tools/policyctl/cli.h"

namespace policy::policyctl {
namespace {

// Usage's kUsage exit, with the usage of `command`'s `verb` alone.
int UsageOf(const std::string& command, const std::string& verb, const std::string& problem) {
  std::fprintf(stderr, "policyctl: %s\n\n%s", problem.c_str(), CommandUsage(command, verb).c_str());
  return kUsage;
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

}  // namespace

const char kUsageText[] = R"(usage: policyctl [global flags] COMMAND [flags]

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
  org plan FILE     [--detailed_exit_code]  what applying the declarative organisation file
                    would change (FILE - reads stdin; --detailed_exit_code: exit 3 when it
                    would change anything, as a drift check)
  org apply FILE    [--plan_fingerprint, --reference]  (removed members' keys are revoked;
                    the ledger records the file's SHA-256 and --reference, a commit say)
  org export        the organisation as it stands, as a declarative file
  org sync-group GROUP FILE [--allow_empty]  (the identity provider's member e-mails of
                    GROUP, one a line, - for stdin: newcomers provisioned, leavers removed and
                    their keys revoked; no e-mail at all needs --allow_empty)
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
    signature that does not check (audit prove, audit checkpoint), changes to make (a plan
    with --detailed_exit_code),
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

}  // namespace policy::policyctl
