// policyctl org: plan, apply and export the declarative organisation file.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/text/utf8.h"
#include "tools/policyctl/cli.h"

namespace policy::policyctl {

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

}  // namespace policy::policyctl
