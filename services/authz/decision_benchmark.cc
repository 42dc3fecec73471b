// In-process authorization decisions on a snapshot of 10,000 members and 1,000 service
// accounts across 100 projects: the rules alone, and the whole Check (rules and rate
// limits). Prints decisions per second; never fails on a figure.
//   build/services/authz/authz_decision_benchmark
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/clock/clock.h"
#include "services/authz/authorizer.h"
#include "services/authz/decision.h"
#include "services/authz/memory_bucket_store.h"
#include "services/authz/org_state.h"

namespace policy::authz {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

OrgState BigOrgState() {
  std::vector<Project> projects;
  for (int p = 0; p < 100; ++p) {
    Project project;
    project.id = "proj-" + std::to_string(p);
    project.allowed_models = {"gpt-4.1", "gpt-4.1-mini", "text-embedding-3-small"};
    project.rpm_limit = project.tpm_limit = int64_t{1} << 50;
    project.member_rpm_limit = project.member_tpm_limit = int64_t{1} << 50;
    projects.push_back(project);
  }
  std::vector<Member> members;
  for (int m = 0; m < 10'000; ++m) {
    Member member;
    member.id = "user-" + std::to_string(m);
    member.email = member.id + "@company.com";
    for (int g = 0; g < 3; ++g) {
      member.grants.push_back({g == 0 ? Role::kMember : Role::kReader,
                               "proj-" + std::to_string((m + g * 7) % 100), std::nullopt});
    }
    members.push_back(member);
  }
  std::vector<ServiceAccount> accounts;
  for (int a = 0; a < 1'000; ++a) {
    ServiceAccount account;
    account.id = "sa-" + std::to_string(a);
    account.project = "proj-" + std::to_string(a % 100);
    account.permissions = {"chat.completions", "embeddings"};
    account.ip_allowlist = *IpAllowlist::Parse({"10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"});
    accounts.push_back(account);
  }
  OrgState state;
  state.version = 1;
  state.projects = std::move(projects);
  state.members = std::move(members);
  state.service_accounts = std::move(accounts);
  state.Sort();
  return state;
}

std::shared_ptr<const OrgSnapshot> BigOrg() { return SnapshotOf(BigOrgState(), kNow); }

void BM_CheckMember(benchmark::State& state) {
  static const auto org = BigOrg();
  std::vector<CheckRequest> requests;
  for (int i = 0; i < 1024; ++i) {
    CheckRequest r;
    r.principal_id = "user-" + std::to_string((i * 7919) % 10'000);
    r.project = "proj-" + std::to_string((i * 7919) % 100);
    r.action = "chat.completions";
    r.model = "gpt-4.1";
    requests.push_back(r);
  }
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(Check(*org, requests[i++ & 1023], kNow));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CheckMember);

void BM_CheckServiceAccount(benchmark::State& state) {
  static const auto org = BigOrg();
  std::vector<CheckRequest> requests;
  for (int i = 0; i < 1024; ++i) {
    CheckRequest r;
    r.principal_kind = PrincipalKind::kServiceAccount;
    r.principal_id = "sa-" + std::to_string((i * 7919) % 1'000);
    r.project = "proj-" + std::to_string((i * 7919) % 1'000 % 100);
    r.action = "embeddings";
    r.model = "text-embedding-3-small";
    r.source_ip = *ParseIpAddress(i % 2 ? "192.168.4.5" : "2001:db8::7");
    requests.push_back(r);
  }
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(Check(*org, requests[i++ & 1023], kNow));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CheckServiceAccount);

// The whole in-memory decision a Check RPC makes: the rules above on the cached snapshot,
// then the four rate limits (project and member, requests and tokens) from warm leases.
void BM_AuthorizeMemberWithRateLimits(benchmark::State& state) {
  static FakeClock clock(kNow);
  static OrgCache* const cache = [] {
    auto* c = new OrgCache(&clock, absl::InfiniteDuration());
    c->OnState(std::make_shared<const OrgState>(BigOrgState()));
    c->OnInSync(absl::InfiniteFuture());
    return c;
  }();
  static MemoryBucketStore* const buckets = new MemoryBucketStore();
  static RateLimiter* const limiter = new RateLimiter(buckets);
  static Authorizer* const authorizer = new Authorizer(cache, limiter, &clock);
  std::vector<AuthorizeRequest> requests;
  for (int i = 0; i < 1024; ++i) {
    AuthorizeRequest r;
    r.check.principal_id = "user-" + std::to_string((i * 7919) % 10'000);
    r.check.project = "proj-" + std::to_string((i * 7919) % 100);
    r.check.action = "chat.completions";
    r.check.model = "gpt-4.1";
    r.estimated_tokens = 500;
    requests.push_back(r);
  }
  for (const AuthorizeRequest& r : requests) benchmark::DoNotOptimize(authorizer->Authorize(r));
  size_t i = 0, slow = 0;
  for (auto _ : state) {
    absl::StatusOr<std::optional<Authorization>> a = authorizer->TryAuthorize(requests[i++ & 1023]);
    if (!a.ok() || !a->has_value()) ++slow;
    benchmark::DoNotOptimize(a);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["not_in_memory"] = static_cast<double>(slow);
}
BENCHMARK(BM_AuthorizeMemberWithRateLimits);

}  // namespace
}  // namespace policy::authz
