// policyctl keys: create, rotate, revoke, list, report, inventory.
#include <cstdio>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/proto/well_known.h"
#include "tools/policyctl/cli.h"

namespace policy::policyctl {

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
            p.AddDuration("ttl", &ttl,
                          "the key's lifetime, whole seconds, at least 1s (default: a service "
                          "account's maximum key lifetime, else the server's; rotate: the old "
                          "key's)");
            p.AddDuration("overlap", &overlap,
                          "rotate: how long both keys verify (default 24h; 0s: the old key "
                          "stops at once)");
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
    if (in.Given("ttl")) request.mutable_ttl()->set_seconds(absl::ToInt64Seconds(ttl));
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
      if (in.Given("overlap")) {
        request.mutable_overlap()->set_seconds(absl::ToInt64Seconds(overlap));
      }
      if (in.Given("ttl")) request.mutable_ttl()->set_seconds(absl::ToInt64Seconds(ttl));
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

}  // namespace policy::policyctl
