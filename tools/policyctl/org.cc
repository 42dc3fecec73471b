// policyctl org: plan, apply and export the declarative organisation file; sync a group.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/text/utf8.h"
#include "tools/policyctl/cli.h"

namespace policy::policyctl {

namespace {

// The contents of `path` ("-": stdin) in `text`, or kFailed said on stderr.
int ReadInput(const std::string& path, std::string* text) {
  std::stringstream read;
  if (path == "-") {
    read << std::cin.rdbuf();
  } else {
    std::ifstream file(path);
    if (!file) {
      const int error = errno;
      std::fprintf(stderr, "policyctl: cannot read %s: %s\n", path.c_str(), std::strerror(error));
      return kFailed;
    }
    read << file.rdbuf();
  }
  *text = read.str();
  return kOk;
}

// org sync-group GROUP FILE: the file's lines are the group's e-mails (blank lines and lines
// starting with # skipped).
int SyncGroup(const Global& g, const std::string& group, const std::string& path,
              bool allow_empty) {
  if (!IsUtf8(group)) return Usage("org sync-group: GROUP is not UTF-8");
  std::string text;
  if (int rc = ReadInput(path, &text); rc != kOk) return rc;
  edge::v1::SyncIdpGroupRequest request;
  request.set_group(group);
  request.set_allow_empty(allow_empty);
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    if (!IsUtf8(line)) return Usage(absl::StrCat(path, ": not UTF-8; save the file as UTF-8"));
    request.add_emails(std::string(line));
  }
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  edge::v1::SyncIdpGroupResponse response;
  if (grpc::Status s = stub->SyncIdpGroup(Context(g, true).get(), request, &response); !s.ok()) {
    return Failed(s);
  }
  return Show(g, response, [&] {
    for (const std::string& id : response.provisioned())
      std::printf("provisioned %s\n", id.c_str());
    for (const std::string& id : response.deprovisioned()) std::printf("removed %s\n", id.c_str());
    std::printf("synced: group %s, %d e-mails, organisation version %lld, %d keys revoked\n",
                Shown(group).c_str(), request.emails_size(),
                static_cast<long long>(response.org_version()), response.revoked_keys_size());
  });
}

}  // namespace

int Org(const Invocation& in) {
  const bool exporting = in.words.size() == 1 && in.words[0] == "export";
  const bool syncing = in.words.size() == 3 && in.words[0] == "sync-group";
  if (!exporting && !syncing &&
      (in.words.size() != 2 || (in.words[0] != "plan" && in.words[0] != "apply"))) {
    return Usage("org plan FILE, org apply FILE, org export, or org sync-group GROUP FILE");
  }
  Global g;
  std::string fingerprint;
  std::string reference;
  bool allow_empty = false;
  bool detailed_exit_code = false;
  if (int rc = ParseFlags(in, g,
                          [&](config::Parser& p) {
                            p.AddString("plan_fingerprint", &fingerprint,
                                        "apply: exactly the plan with this print");
                            p.AddString("reference", &reference,
                                        "apply: what the file is (a commit), for the ledger");
                            p.AddBool("allow_empty", &allow_empty,
                                      "sync-group: no e-mail removes every member");
                            p.AddBool("detailed_exit_code", &detailed_exit_code,
                                      "plan: exit 3 when the file would change anything");
                          });
      rc != kOk) {
    return rc;
  }
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  if (syncing) return SyncGroup(g, in.words[1], in.words[2], allow_empty);
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  if (exporting) {
    authz::v1::ExportOrgFileRequest request;
    authz::v1::ExportOrgFileResponse response;
    if (grpc::Status s = stub->ExportOrgFile(Context(g, true).get(), request, &response); !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] { std::fputs(response.yaml().c_str(), stdout); });
  }
  std::string yaml;
  if (int rc = ReadInput(in.words[1], &yaml); rc != kOk) return rc;
  // Sent as text: a file saved in Latin-1 or Windows-1252 would otherwise fail UNIMPLEMENTED
  // naming nothing.
  if (const size_t bad = FindInvalidUtf8(yaml); bad != absl::string_view::npos) {
    return Usage(
        absl::StrCat(in.words[1], ": not UTF-8 (byte ", bad, " is not); save the file as UTF-8"));
  }
  if (in.words[0] == "plan") {
    edge::v1::PlanOrgFileRequest request;
    request.set_yaml(yaml);
    authz::v1::PlanOrgFileResponse response;
    if (grpc::Status s = stub->PlanOrgFile(Context(g, true).get(), request, &response); !s.ok()) {
      return Failed(s);
    }
    const int shown = Show(g, response, [&] {
      std::printf("%s%s", response.text().c_str(),
                  response.text().empty() || response.text().back() == '\n' ? "" : "\n");
      for (const std::string& warning : response.warnings()) {
        std::printf("warning: %s\n", warning.c_str());
      }
      std::printf("%d changes; apply this plan with --plan_fingerprint=%s\n",
                  response.changes_size(), response.plan_fingerprint().c_str());
    });
    // A drift check's answer: the organisation is not what the file says.
    if (shown == kOk && detailed_exit_code && response.changes_size() > 0) return kRefused;
    return shown;
  }
  edge::v1::ApplyOrgFileRequest request;
  request.set_yaml(yaml);
  request.set_plan_fingerprint(fingerprint);
  request.set_reference(reference);
  edge::v1::ApplyOrgFileResponse response;
  if (grpc::Status s = stub->ApplyOrgFile(Context(g, true).get(), request, &response); !s.ok()) {
    return Failed(s);
  }
  return Show(g, response, [&] {
    std::printf("%s%sapplied: %d changes, organisation version %lld, %d keys revoked\n",
                response.text().c_str(),
                response.text().empty() || response.text().back() == '\n' ? "" : "\n",
                response.changes_size(), static_cast<long long>(response.org_version()),
                response.revoked_keys_size());
  });
}

}  // namespace policy::policyctl
