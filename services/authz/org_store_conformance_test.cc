// One suite, every OrgStore: the memory store always, PostgreSQL whenever a test database is
// configured (always in CI: POLICY_TEST_REQUIRE_PG=1 makes a missing one fatal).
#include <algorithm>
#include <atomic>
#include <functional>
#include <pqxx/pqxx>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock/clock.h"
#include "common/pg/pool.h"
#include "common/pg/runtime_role_testing.h"
#include "common/pg/test_database.h"
#include "common/testing/eventually.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/authz/authz_migrations.h"
#include "services/authz/decision.h"
#include "services/authz/memory_org_store.h"
#include "services/authz/org_admin.h"
#include "services/authz/org_cache.h"
#include "services/authz/postgres_bucket_store.h"
#include "services/authz/postgres_org_store.h"

namespace policy::authz {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
const OrgChangeSource kSource{"alice"};

struct Backend {
  std::unique_ptr<OrgStore> store;
  // A second store on the same data, as another replica would have; null for memory.
  std::function<std::unique_ptr<OrgStore>()> replica;
  std::vector<std::shared_ptr<void>> keep_alive;
};
using BackendFactory = std::function<Backend(Clock*)>;

Backend MakeMemory(Clock*) { return Backend{std::make_unique<MemoryOrgStore>(), nullptr, {}}; }

constexpr char kResetSql[] =
    "TRUNCATE authz.role_grants, authz.members, authz.service_accounts, authz.invitations, "
    "authz.idp_groups, authz.projects, authz.ledger_outbox; UPDATE authz.org SET version = 0";

// Stores on `pool`, whose replicas log in with `url`.
Backend PostgresBackend(std::shared_ptr<pg::Pool> pool, std::string url, Clock* clock) {
  Backend backend;
  backend.store = std::make_unique<PostgresOrgStore>(pool.get(), clock, absl::Milliseconds(50));
  backend.replica = [url, clock, pool] {
    // Its own pool: a replica shares nothing but the database.
    auto own = std::make_shared<pg::Pool>(pg::PoolOptions{.url = url, .size = 4});
    struct Replica : PostgresOrgStore {
      Replica(std::shared_ptr<pg::Pool> p, Clock* c)
          : PostgresOrgStore(p.get(), c, absl::Milliseconds(50)), pool(std::move(p)) {}
      ~Replica() override { StopWatching(); }
      std::shared_ptr<pg::Pool> pool;
    };
    return std::unique_ptr<OrgStore>(new Replica(own, clock));
  };
  backend.keep_alive.push_back(pool);
  return backend;
}

Backend MakePostgres(Clock* clock) {
  const pg::TestDatabase* db = pg::TestDatabase::Get();
  // value() throws on failure, which fails the test with the status.
  return PostgresBackend(db->Reset("authz", Migrations(), kResetSql).value(), db->url(), clock);
}

// The stores logged in as the service's runtime role (migration 008), as tools/dev and the
// chart's production example run them.
Backend MakePostgresRuntime(Clock* clock) {
  const pg::TestDatabase* db = pg::TestDatabase::Get();
  return PostgresBackend(db->ResetAsRuntime("authz", Migrations(), kResetSql).value(),
                         db->RuntimeUrl("authz"), clock);
}

Project MakeProject(const std::string& id) {
  Project p;
  p.id = id;
  p.name = absl::StrCat("Project ", id);
  p.environment = Environment::kProduction;
  p.data_policy.zero_data_retention = true;
  p.data_policy.retention_days = 0;
  p.allowed_models = {"gpt-4o", "gpt-4o-mini"};
  p.rpm_limit = 600;
  p.tpm_limit = 100'000;
  p.member_rpm_limit = 60;
  p.member_tpm_limit = 10'000;
  return p;
}

Member MakeMember(const std::string& id, std::vector<RoleGrant> grants) {
  Member m;
  m.id = id;
  m.email = absl::StrCat(id, "@acme.example");
  m.grants = std::move(grants);
  return m;
}

// An organisation with one of everything, to round-trip through a store.
OrgMutation SeedOrg() {
  return [](OrgState& s) {
    s.projects = {MakeProject("support"), MakeProject("research")};
    // Both key-holder policies round-trip.
    s.projects[1].key_holders = KeyHolders::kServiceAccounts;
    s.projects[1].environment = Environment::kDevelopment;
    // A residency and none (global) round-trip; so do a data class and the default.
    s.projects[0].data_policy.residency = Residency::kEu;
    s.projects[0].data_policy.data_class = DataClass::kPhi;
    // Rules of every treatment, and none, round-trip.
    s.projects[0].data_policy.pii_rules = {
        {"CREDIT_CARD", PiiTreatment::kMask},     {"EMAIL_ADDRESS", PiiTreatment::kPlaceholder},
        {"IBAN_CODE", PiiTreatment::kHash},       {"IP_ADDRESS", PiiTreatment::kAllow},
        {"PHONE_NUMBER", PiiTreatment::kReplace}, {"US_SSN", PiiTreatment::kBlock},
        {"ZIP_CODE", PiiTreatment::kRedact}};
    s.members = {MakeMember("alice", {{Role::kOwner, "", std::nullopt}}),
                 MakeMember("bob", {{Role::kMember, "support", kNow + absl::Hours(24)},
                                    {Role::kReader, "research", std::nullopt}})};
    ServiceAccount sa;
    sa.id = "sa-support";
    sa.project = "support";
    sa.environment = Environment::kProduction;
    sa.permissions = {"chat.completions", "embeddings"};
    sa.ip_allowlist = *IpAllowlist::Parse({"10.20.0.0/16", "2001:db8:20::/48"});
    sa.rpm_limit = 300;
    sa.tpm_limit = 50'000;
    sa.max_key_lifetime = absl::Hours(24 * 30);
    s.service_accounts = {sa};
    Invitation inv;
    inv.id = InvitationDigest("inv_1");
    inv.email = "carol@acme.example";
    inv.role = Role::kReader;
    inv.projects = {"support"};
    inv.created_at = kNow;
    inv.expires_at = kNow + absl::Hours(72);
    s.invitations = {inv};
    s.idp_groups = {IdpGroup{
        "support-engineers", {{Role::kMember, "support", std::nullopt}}, {"dave@acme.example"}}};
    return absl::OkStatus();
  };
}

class RecordingObserver : public OrgStoreObserver {
 public:
  void OnState(std::shared_ptr<const OrgState> state) override {
    absl::MutexLock lock(&mu_);
    if (latest_ == nullptr || state->version > latest_->version) latest_ = std::move(state);
  }
  void OnInSync(absl::Time as_of) override {
    absl::MutexLock lock(&mu_);
    in_sync_ = std::max(in_sync_, as_of);
  }
  int64_t version() {
    absl::MutexLock lock(&mu_);
    return latest_ == nullptr ? -1 : latest_->version;
  }
  std::shared_ptr<const OrgState> latest() {
    absl::MutexLock lock(&mu_);
    return latest_;
  }

 private:
  absl::Mutex mu_;
  std::shared_ptr<const OrgState> latest_ ABSL_GUARDED_BY(mu_);
  absl::Time in_sync_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

class OrgStoreConformanceTest
    : public ::testing::TestWithParam<std::pair<std::string, BackendFactory>> {
 protected:
  void SetUp() override {
    if (absl::StartsWith(GetParam().first, "postgres") && pg::TestDatabase::Get() == nullptr) {
      GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
    }
    if (GetParam().first == "postgres_runtime" &&
        pg::TestDatabase::Get()->RuntimeUrl("authz").empty()) {
      GTEST_SKIP() << "POLICY_TEST_PG_AUTHZ_RUNTIME_URL is not set";
    }
    backend_ = GetParam().second(Clock::Real());
    store_ = backend_.store.get();
  }
  void TearDown() override {
    if (store_ != nullptr) store_->StopWatching();
  }
  // Seeds store_ with SeedOrg() and makes admin_ over it, its cache_ watching store_ (until
  // TearDown) and in sync.
  void SeedWithAdmin() {
    cache_ = std::make_unique<OrgCache>(Clock::Real(), absl::Seconds(5));
    store_->Watch(cache_.get());
    ASSERT_TRUE(store_->Mutate(SeedOrg(), kNow, kSource).ok());
    ASSERT_TRUE(CacheInSync());
    admin_ = std::make_unique<OrgAdmin>(store_, cache_.get(), Clock::Real());
  }
  bool CacheInSync() {
    return policy::testing::Eventually([&] { return cache_->InSync(); });
  }
  Backend backend_;
  OrgStore* store_ = nullptr;
  std::unique_ptr<OrgCache> cache_;
  std::unique_ptr<OrgAdmin> admin_;
};

// The request ids and actions of the outbox's records, in order.
std::vector<std::string> Actions(ledger::Outbox& outbox) {
  absl::StatusOr<std::vector<ledger::OutboxEntry>> entries = outbox.Read(1000);
  EXPECT_TRUE(entries.ok()) << entries.status();
  std::vector<std::string> actions;
  if (!entries.ok()) return actions;
  for (const ledger::OutboxEntry& e : *entries) actions.push_back(e.record.action);
  return actions;
}

TEST_P(OrgStoreConformanceTest, EachCommittedChangeWritesItsRecordsAndNothingElseDoes) {
  ASSERT_TRUE(store_->Mutate(SeedOrg(), kNow, kSource).ok());
  // Two projects, two members, a service account, an invitation and a group.
  EXPECT_EQ(Actions(store_->outbox()),
            (std::vector<std::string>{"PROJECT_CREATED", "PROJECT_CREATED", "MEMBER_ADDED",
                                      "MEMBER_ADDED", "SERVICE_ACCOUNT_CREATED",
                                      "INVITATION_CHANGED", "IDP_GROUP_CHANGED"}));
  // A mutation that fails, or changes nothing, writes nothing.
  ASSERT_FALSE(store_
                   ->Mutate(
                       [](OrgState& s) {
                         s.members[1].removed_at = kNow;
                         return absl::AbortedError("changed my mind");
                       },
                       kNow, kSource)
                   .ok());
  ASSERT_FALSE(store_
                   ->Mutate(
                       [](OrgState& s) {
                         s.members.clear();  // Refused by ValidateTransition.
                         return absl::OkStatus();
                       },
                       kNow, kSource)
                   .ok());
  ASSERT_TRUE(store_->Mutate(SeedOrg(), kNow, kSource).ok());
  EXPECT_EQ(Actions(store_->outbox()).size(), 7u);
  // A removal, under its own request id, by the source's actor.
  ASSERT_TRUE(store_
                  ->Mutate(
                      [](OrgState& s) {
                        s.FindMember("bob")->removed_at = kNow;
                        return absl::OkStatus();
                      },
                      kNow, OrgChangeSource{"carol"})
                  .ok());
  std::vector<ledger::OutboxEntry> entries = store_->outbox().Read(1000).value();
  ASSERT_EQ(entries.size(), 8u);
  const ledger::LedgerRecord& removal = entries.back().record;
  EXPECT_EQ(removal.action, "MEMBER_REMOVED");
  EXPECT_EQ(removal.actor, "carol");
  EXPECT_EQ(removal.subject, "bob");
  // Named by the removal's own random id, kept with the member: never by a digest of the
  // member's id, which anyone reading the ledger could test a guessed id against.
  const Member bob = *store_->Load().value()->FindMember("bob");
  EXPECT_THAT(bob.removal_id, MatchesRegex("[0-9a-f]{32}"));
  EXPECT_EQ(removal.request_id, absl::StrCat("authz:member-removed:", bob.removal_id));
  EXPECT_EQ(removal.request_id, MemberRemovalRequestId(bob));
  EXPECT_THAT(removal.request_id, Not(HasSubstr(ledger::ShortDigest("bob"))));
  for (size_t i = 1; i < entries.size(); ++i) {
    EXPECT_LT(entries[i - 1].sequence, entries[i].sequence);
  }
}

TEST_P(OrgStoreConformanceTest, ARemovalIdIsDrawnOnceAndKeptWhateverMutationsDo) {
  ASSERT_TRUE(store_->Mutate(SeedOrg(), kNow, kSource).ok());
  ASSERT_TRUE(
      store_
          ->Mutate(
              [](OrgState& s) {
                s.members.push_back(MakeMember("dora", {{Role::kReader, "support", std::nullopt}}));
                return absl::OkStatus();
              },
              kNow, kSource)
          .ok());
  auto remove = [&](const std::string& id) {
    return store_->Mutate(
        [&](OrgState& s) {
          s.FindMember(id)->removed_at = kNow;
          s.FindMember(id)->removal_id = "chosen-by-the-mutation";
          return absl::OkStatus();
        },
        kNow, kSource);
  };
  ASSERT_TRUE(remove("bob").ok());
  const std::string drawn = store_->Load().value()->FindMember("bob")->removal_id;
  EXPECT_THAT(drawn, MatchesRegex("[0-9a-f]{32}"));
  // A later change cannot replace it; an active member has none.
  ASSERT_TRUE(store_
                  ->Mutate(
                      [](OrgState& s) {
                        s.FindMember("bob")->removal_id = "replaced";
                        s.FindMember("dora")->removal_id = "0123456789abcdef0123456789abcdef";
                        s.FindMember("dora")->grants.clear();
                        return absl::OkStatus();
                      },
                      kNow, kSource)
                  .ok());
  std::shared_ptr<const OrgState> loaded = store_->Load().value();
  EXPECT_EQ(loaded->FindMember("bob")->removal_id, drawn);
  EXPECT_EQ(loaded->FindMember("dora")->removal_id, "");
  // Another removal draws another id.
  ASSERT_TRUE(remove("dora").ok());
  const std::string doras = store_->Load().value()->FindMember("dora")->removal_id;
  EXPECT_THAT(doras, MatchesRegex("[0-9a-f]{32}"));
  EXPECT_NE(doras, drawn);
}

TEST_P(OrgStoreConformanceTest, EverythingRoundTrips) {
  absl::StatusOr<Mutated> seeded = store_->Mutate(SeedOrg(), kNow, kSource);
  ASSERT_TRUE(seeded.ok()) << seeded.status();
  EXPECT_EQ(seeded->before->version, 0);
  EXPECT_EQ(seeded->after->version, 1);
  absl::StatusOr<std::shared_ptr<const OrgState>> loaded = store_->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(Diff(**loaded, *seeded->after).empty()) << FormatDiff(Diff(**loaded, *seeded->after));
  EXPECT_EQ((*loaded)->version, 1);
  if (backend_.replica) {
    std::unique_ptr<OrgStore> replica = backend_.replica();
    absl::StatusOr<std::shared_ptr<const OrgState>> fresh = replica->Load();
    ASSERT_TRUE(fresh.ok()) << fresh.status();
    EXPECT_TRUE(Diff(**fresh, *seeded->after).empty()) << FormatDiff(Diff(**fresh, *seeded->after));
  }
}

TEST_P(OrgStoreConformanceTest, AMutationThatChangesNothingCommitsNothing) {
  ASSERT_TRUE(store_->Mutate(SeedOrg(), kNow, kSource).ok());
  absl::StatusOr<Mutated> same = store_->Mutate(SeedOrg(), kNow, kSource);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->after->version, 1);
  EXPECT_EQ(same->after, same->before);
}

TEST_P(OrgStoreConformanceTest, ARefusedMutationWritesNothing) {
  ASSERT_TRUE(store_->Mutate(SeedOrg(), kNow, kSource).ok());
  // Removing the only owner is refused as a whole, together with the rest of the change.
  absl::StatusOr<Mutated> refused = store_->Mutate(
      [](OrgState& s) {
        s.FindProject("support")->rpm_limit = 1;
        s.FindMember("alice")->removed_at = kNow;
        return absl::OkStatus();
      },
      kNow, kSource);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("owner"));
  absl::StatusOr<std::shared_ptr<const OrgState>> loaded = store_->Load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ((*loaded)->version, 1);
  EXPECT_EQ((*loaded)->FindProject("support")->rpm_limit, 600);
  // The mutation's own error passes through unchanged.
  absl::StatusOr<Mutated> own =
      store_->Mutate([](OrgState&) { return absl::NotFoundError("no such thing"); }, kNow, kSource);
  EXPECT_EQ(own.status().code(), absl::StatusCode::kNotFound);
}

TEST_P(OrgStoreConformanceTest, AProjectsEnvironmentNeverChanges) {
  ASSERT_TRUE(store_->Mutate(SeedOrg(), kNow, kSource).ok());
  // research has no service account holding it to development; it stays there all the same.
  absl::StatusOr<Mutated> refused = store_->Mutate(
      [](OrgState& s) {
        s.FindProject("research")->environment = Environment::kProduction;
        return absl::OkStatus();
      },
      kNow, kSource);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("project 'research': environment: development cannot change to "
                        "production"));
  absl::StatusOr<std::shared_ptr<const OrgState>> loaded = store_->Load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ((*loaded)->version, 1);
  EXPECT_EQ((*loaded)->FindProject("research")->environment, Environment::kDevelopment);
  EXPECT_EQ(Actions(store_->outbox()).size(), 7u);
  // Its other settings change, the environment restated.
  absl::StatusOr<Mutated> renamed = store_->Mutate(
      [](OrgState& s) {
        Project* p = s.FindProject("research");
        p->name = "Research, renamed";
        p->environment = Environment::kDevelopment;
        return absl::OkStatus();
      },
      kNow, kSource);
  ASSERT_TRUE(renamed.ok()) << renamed.status();
  EXPECT_EQ(renamed->after->FindProject("research")->name, "Research, renamed");
}

TEST_P(OrgStoreConformanceTest, AnEmailFreedByARemovalCanBeTakenInTheSameChange) {
  ASSERT_TRUE(store_->Mutate(SeedOrg(), kNow, kSource).ok());
  absl::StatusOr<Mutated> swapped = store_->Mutate(
      [](OrgState& s) {
        s.FindMember("bob")->removed_at = kNow;
        Member again = MakeMember("bob-2", {{Role::kReader, "support", std::nullopt}});
        again.email = "bob@acme.example";
        s.members.push_back(again);
        return absl::OkStatus();
      },
      kNow, kSource);
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  absl::StatusOr<std::shared_ptr<const OrgState>> loaded = store_->Load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_TRUE((*loaded)->FindMember("bob")->removed_at.has_value());
  EXPECT_EQ((*loaded)->FindMember("bob-2")->email, "bob@acme.example");
}

TEST_P(OrgStoreConformanceTest, ConcurrentMutationsApplyOneAfterTheOther) {
  ASSERT_TRUE(store_->Mutate(SeedOrg(), kNow, kSource).ok());
  std::vector<std::unique_ptr<OrgStore>> replicas;
  std::vector<OrgStore*> stores = {store_};
  if (backend_.replica) {
    replicas.push_back(backend_.replica());
    stores.push_back(replicas.back().get());
  }
  constexpr int kPerThread = 10;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      OrgStore* store = stores[t % stores.size()];
      for (int i = 0; i < kPerThread; ++i) {
        // Each mutation reads the limit it raises: a lost update would show in the total.
        absl::StatusOr<Mutated> m = store->Mutate(
            [&](OrgState& s) {
              s.FindProject("support")->rpm_limit += 1;
              s.projects.push_back(MakeProject(absl::StrCat("p-", t, "-", i)));
              return absl::OkStatus();
            },
            kNow, kSource);
        if (!m.ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  absl::StatusOr<std::shared_ptr<const OrgState>> loaded = store_->Load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ((*loaded)->version, 1 + 4 * kPerThread);
  EXPECT_EQ((*loaded)->FindProject("support")->rpm_limit, 600 + 4 * kPerThread);
  EXPECT_EQ((*loaded)->projects.size(), 2u + 4 * kPerThread);
}

TEST_P(OrgStoreConformanceTest, ObserversSeeEveryReplicasChanges) {
  RecordingObserver local;
  store_->Watch(&local);
  absl::Cleanup stop = [&] { store_->StopWatching(); };
  ASSERT_TRUE(store_->Mutate(SeedOrg(), kNow, kSource).ok());
  // Our own change is there before Mutate returned.
  EXPECT_EQ(local.version(), 1);
  if (!backend_.replica) return;
  std::unique_ptr<OrgStore> replica = backend_.replica();
  absl::StatusOr<Mutated> remote = replica->Mutate(
      [](OrgState& s) {
        s.FindProject("support")->archived = true;
        return absl::OkStatus();
      },
      kNow, kSource);
  ASSERT_TRUE(remote.ok()) << remote.status();
  ASSERT_TRUE(policy::testing::Eventually([&] { return local.version() == 2; }));
  EXPECT_TRUE(local.latest()->FindProject("support")->archived);
}

TEST_P(OrgStoreConformanceTest, ACacheServesTheLatestSnapshot) {
  OrgCache cache(Clock::Real(), absl::Seconds(5));
  EXPECT_EQ(cache.Current().status().code(), absl::StatusCode::kUnavailable);
  store_->Watch(&cache);
  absl::Cleanup stop = [&] { store_->StopWatching(); };
  ASSERT_TRUE(store_->Mutate(SeedOrg(), kNow, kSource).ok());
  ASSERT_TRUE(policy::testing::Eventually([&] { return cache.InSync(); }));
  absl::StatusOr<OrgView> view = cache.Current();
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->state->version, 1);
  // A member of the identity-provider group holds its role in decisions.
  ASSERT_TRUE(store_
                  ->Mutate(
                      [](OrgState& s) {
                        Member dave = MakeMember("dave", {});
                        s.members.push_back(dave);
                        return absl::OkStatus();
                      },
                      kNow, kSource)
                  .ok());
  view = cache.Current();
  ASSERT_TRUE(view.ok());
  CheckRequest request;
  request.principal_id = "dave";
  request.project = "support";
  request.action = "chat.completions";
  request.model = "gpt-4o";
  absl::StatusOr<Decision> decision = Check(*view->snapshot, request, kNow);
  ASSERT_TRUE(decision.ok());
  EXPECT_TRUE(decision->allowed) << DenyReasonName(decision->reason);
}

// A create retried after its answer was lost (the deadline passed after the commit) finds what
// it made: the same content is OK with the stored object, changing and recording nothing;
// other content under the id is ALREADY_EXISTS naming the first differing field.
TEST_P(OrgStoreConformanceTest, CreatesAreIdempotentOnContent) {
  ASSERT_NO_FATAL_FAILURE(SeedWithAdmin());
  OrgAdmin& admin = *admin_;

  Project project = MakeProject("billing");
  Member member = MakeMember("erin", {{Role::kMember, "support", std::nullopt},
                                      {Role::kReader, "research", std::nullopt}});
  ServiceAccount account;
  account.id = "sa-billing";
  account.project = "support";
  account.environment = Environment::kProduction;
  account.permissions = {"embeddings", "chat.completions"};
  account.rpm_limit = 10;
  absl::StatusOr<Project> created_project = admin.CreateProject("alice", project);
  ASSERT_TRUE(created_project.ok()) << created_project.status();
  absl::StatusOr<Member> created_member = admin.AddMember("alice", member);
  ASSERT_TRUE(created_member.ok()) << created_member.status();
  absl::StatusOr<ServiceAccount> created_account = admin.CreateServiceAccount("alice", account);
  ASSERT_TRUE(created_account.ok()) << created_account.status();
  ASSERT_TRUE(CacheInSync());
  const int64_t version = store_->Load().value()->version;
  const size_t records = Actions(store_->outbox()).size();

  // The same requests again, lists in another order, by another administrator.
  std::reverse(project.allowed_models.begin(), project.allowed_models.end());
  std::reverse(member.grants.begin(), member.grants.end());
  absl::StatusOr<Project> again_project = admin.CreateProject("alice", project);
  ASSERT_TRUE(again_project.ok()) << again_project.status();
  EXPECT_EQ(*again_project, *created_project);
  absl::StatusOr<Member> again_member = admin.AddMember("alice", member);
  ASSERT_TRUE(again_member.ok()) << again_member.status();
  EXPECT_EQ(*again_member, *created_member);
  absl::StatusOr<ServiceAccount> again_account = admin.CreateServiceAccount("alice", account);
  ASSERT_TRUE(again_account.ok()) << again_account.status();
  EXPECT_EQ(*again_account, *created_account);
  EXPECT_EQ(store_->Load().value()->version, version);
  EXPECT_EQ(Actions(store_->outbox()).size(), records);

  // Other content: refused, naming the first field that differs.
  Project renamed = project;
  renamed.name = "Billing";
  renamed.rpm_limit = 1;
  absl::Status refused = admin.CreateProject("alice", renamed).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kAlreadyExists) << refused;
  EXPECT_EQ(refused.message(), "project 'billing' exists already, with a different name");
  Project limited = project;
  limited.member_tpm_limit = 1;
  refused = admin.CreateProject("alice", limited).status();
  EXPECT_EQ(refused.message(), "project 'billing' exists already, with a different member_limits");
  Member moved = member;
  moved.email = "erin@other.example";
  refused = admin.AddMember("alice", moved).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kAlreadyExists) << refused;
  EXPECT_EQ(refused.message(), "member 'erin' exists already, with a different email");
  Member fewer = member;
  fewer.grants.pop_back();
  refused = admin.AddMember("alice", fewer).status();
  EXPECT_EQ(refused.message(), "member 'erin' exists already, with a different grants");
  ServiceAccount wider = account;
  wider.permissions.pop_back();
  wider.max_key_lifetime = absl::Hours(1);
  refused = admin.CreateServiceAccount("alice", wider).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kAlreadyExists) << refused;
  EXPECT_EQ(refused.message(),
            "service account 'sa-billing' exists already, with a different permissions");
  EXPECT_EQ(store_->Load().value()->version, version);
  EXPECT_EQ(Actions(store_->outbox()).size(), records);

  // A removed member keeps its id for good: the same request does not bring them back.
  ASSERT_TRUE(admin.RemoveMember("alice", "erin").ok());
  ASSERT_TRUE(CacheInSync());
  refused = admin.AddMember("alice", member).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kAlreadyExists) << refused;
  EXPECT_EQ(refused.message(),
            "member 'erin' was removed: its id is never used again; choose "
            "another");
}

TEST_P(OrgStoreConformanceTest, AnErasedMemberIsStoredWithoutTheirAddressForGood) {
  ASSERT_NO_FATAL_FAILURE(SeedWithAdmin());
  Invitation invitation;
  invitation.email = "bob@acme.example";
  invitation.role = Role::kReader;
  invitation.projects = {"support"};
  ASSERT_TRUE(admin_->CreateInvitation("alice", invitation, absl::Hours(1)).ok());
  // The ledger refuses the invitations' records for good (to bob and to the seed's carol).
  absl::StatusOr<ledger::OutboxDrain> drain =
      store_->outbox().Drain(1000, [](const ledger::OutboxEntry& e) {
        return e.record.action == "INVITATION_CHANGED"
                   ? ledger::Delivery{ledger::Delivery::Result::kRefused, "refused"}
                   : ledger::Delivery{ledger::Delivery::Result::kRecorded, ""};
      });
  ASSERT_TRUE(drain.ok()) << drain.status();
  ASSERT_EQ(drain->failed, 2);
  ASSERT_TRUE(admin_->RemoveMember("alice", "bob").ok());
  absl::StatusOr<Member> erased = admin_->EraseMember("alice", "bob");
  ASSERT_TRUE(erased.ok()) << erased.status();

  std::vector<std::shared_ptr<const OrgState>> readers = {store_->Load().value()};
  if (backend_.replica) readers.push_back(backend_.replica()->Load().value());
  for (const std::shared_ptr<const OrgState>& state : readers) {
    const Member* bob = state->FindMember("bob");
    ASSERT_NE(bob, nullptr);
    EXPECT_EQ(bob->email, "");
    ASSERT_TRUE(bob->erased_at.has_value());
    EXPECT_EQ(absl::ToUnixMicros(*bob->erased_at), absl::ToUnixMicros(*erased->erased_at));
    // Only the seed's invitation to carol is left.
    ASSERT_EQ(state->invitations.size(), 1u);
    EXPECT_EQ(state->invitations[0].email, "carol@acme.example");
  }
  EXPECT_EQ(Actions(store_->outbox()).back(), "MEMBER_ERASED");
  // The refused record of bob's invitation no longer names the address; carol's does.
  std::vector<std::string> refused;
  const std::vector<ledger::OutboxEntry> entries = store_->outbox().Read(1000).value();
  for (const ledger::OutboxEntry& e : entries) {
    if (e.failed) refused.push_back(absl::StrCat(e.record.subject, " ", e.last_error));
  }
  EXPECT_THAT(refused,
              UnorderedElementsAre(" refused (subject erased)", "carol@acme.example refused"));
}

// A creation under a request id is one invitation with one ledger record however often it is
// retried, through this replica or another that reads it back from the store; each retry of
// the pending invitation replaces its secret id, and other content under the id is refused.
TEST_P(OrgStoreConformanceTest, AnInvitationRetriedUnderItsRequestIdIsOneInvitation) {
  ASSERT_NO_FATAL_FAILURE(SeedWithAdmin());
  OrgAdmin& admin = *admin_;
  // Another replica where the store has them: it knows the invitation only from the store.
  std::unique_ptr<OrgStore> replica = backend_.replica ? backend_.replica() : nullptr;
  OrgCache replica_cache(Clock::Real(), absl::Seconds(5));
  std::unique_ptr<OrgAdmin> replica_admin;
  if (replica != nullptr) {
    replica->Watch(&replica_cache);
    ASSERT_TRUE(policy::testing::Eventually([&] { return replica_cache.InSync(); }));
    replica_admin = std::make_unique<OrgAdmin>(replica.get(), &replica_cache, Clock::Real());
  }
  absl::Cleanup stop_replica = [&] {
    if (replica != nullptr) replica->StopWatching();
  };
  OrgAdmin& other = replica_admin != nullptr ? *replica_admin : admin;

  Invitation invitation;
  invitation.email = "erin@acme.example";
  invitation.role = Role::kMember;
  invitation.projects = {"support", "research"};
  // Nanoseconds a store may not keep: the invitation's times are cut to microseconds.
  const absl::Duration valid_for = absl::Hours(3) + absl::Nanoseconds(2'500);
  absl::StatusOr<OrgAdmin::CreatedInvitation> first =
      admin.CreateInvitation("alice", invitation, valid_for, "retry-1");
  ASSERT_TRUE(first.ok()) << first.status();
  std::reverse(invitation.projects.begin(), invitation.projects.end());
  absl::StatusOr<OrgAdmin::CreatedInvitation> second =
      other.CreateInvitation("alice", invitation, valid_for, "retry-1");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->invitation.id, first->invitation.id);
  EXPECT_EQ(second->invitation.created_at, first->invitation.created_at);
  EXPECT_EQ(second->invitation.expires_at, first->invitation.expires_at);
  EXPECT_NE(second->secret_id, first->secret_id);
  absl::StatusOr<OrgAdmin::CreatedInvitation> third =
      admin.CreateInvitation("alice", invitation, valid_for, "retry-1");
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->invitation.id, first->invitation.id);
  EXPECT_EQ(third->invitation, *store_->Load().value()->FindInvitation(first->invitation.id));
  invitation.role = Role::kReader;
  const absl::Status refused =
      other.CreateInvitation("alice", invitation, valid_for, "retry-1").status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kAlreadyExists) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("role"));

  // As the store keeps it: digests only, and the same from every replica.
  std::shared_ptr<const OrgState> stored = store_->Load().value();
  const Invitation* kept = stored->FindInvitation(first->invitation.id);
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(kept->secret_digest, InvitationDigest(third->secret_id));
  EXPECT_EQ(kept->request_digest, InvitationRequestDigest("retry-1"));
  EXPECT_EQ(kept->created_by, "alice");
  if (replica != nullptr) {
    EXPECT_EQ(*replica->Load().value()->FindInvitation(first->invitation.id), *kept);
  }
  // Only the newest secret id accepts it; the others are unknown ids.
  for (const std::string& replaced : {first->secret_id, second->secret_id}) {
    EXPECT_EQ(other.AcceptInvitation(replaced, "erin@acme.example", "").status().code(),
              absl::StatusCode::kNotFound);
  }
  ASSERT_TRUE(other.AcceptInvitation(third->secret_id, "erin@acme.example", "erin").ok());
  invitation.role = Role::kMember;
  absl::StatusOr<OrgAdmin::CreatedInvitation> accepted =
      admin.CreateInvitation("alice", invitation, valid_for, "retry-1");
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ(accepted->secret_id, "");
  EXPECT_EQ(accepted->invitation.state, InvitationState::kAccepted);

  // One record of the creation, one of the acceptance: the retries recorded nothing.
  std::vector<std::string> changes;
  absl::StatusOr<std::vector<ledger::OutboxEntry>> entries = store_->outbox().Read(1000);
  ASSERT_TRUE(entries.ok()) << entries.status();
  for (const ledger::OutboxEntry& e : *entries) {
    if (e.record.action != "INVITATION_CHANGED") continue;
    if (e.record.metadata.at("invitation") != InvitationRef(first->invitation)) continue;
    changes.push_back(e.record.metadata.at("change"));
  }
  EXPECT_EQ(changes, (std::vector<std::string>{"created", "accepted"}));
}

// A new database named after `label` with authz's migrations applied up to, not including,
// the one named `migration`, as a release before it left the schema; empty when there is no
// test database. Fails the test when `migration` is not one of authz's.
std::string DatabaseBefore(absl::string_view label, absl::string_view migration) {
  const pg::TestDatabase* db = pg::TestDatabase::Get();
  if (db == nullptr) return "";
  const std::string url = db->CreateDatabase(std::string(label));
  const std::vector<pg::Migration>& all = Migrations();
  const auto next = std::find_if(all.begin(), all.end(), [&](const pg::Migration& m) {
    return absl::string_view(m.name) == migration;
  });
  EXPECT_NE(next, all.end()) << migration;
  const absl::Status migrated =
      pg::ApplyMigrations(url, "authz", std::vector<pg::Migration>(all.begin(), next));
  EXPECT_TRUE(migrated.ok()) << migrated;
  return url;
}

// An OrgAdmin over a PostgresOrgStore on `url`, its cache following the store's changes, as a
// replica runs them. Ready() once the cache holds the database's state.
struct AdminOverDatabase {
  explicit AdminOverDatabase(const std::string& url)
      : pool(pg::PoolOptions{.url = url, .size = 2}),
        store(&pool, &clock, absl::Milliseconds(50)),
        cache(&clock, absl::Seconds(1)),
        admin(&store, &cache, &clock) {
    store.Watch(&cache);
  }
  ~AdminOverDatabase() { store.StopWatching(); }
  bool Ready() {
    return policy::testing::Eventually([&] { return cache.Current().ok(); });
  }

  Clock& clock = *Clock::Real();
  pg::Pool pool;
  PostgresOrgStore store;
  OrgCache cache;
  OrgAdmin admin;
};

// Invitations are stored by the digest of their secret id; one stored with its plain id
// before migration 006 is rewritten to its digest and still accepted with that id.
TEST(PostgresInvitationsTest, TheTableHoldsNoSecretIdAndOldInvitationsStillWork) {
  const std::string url = DatabaseBefore("invitations", "invitation_digests");
  if (url.empty()) GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
  ASSERT_FALSE(HasFailure());
  const std::vector<pg::Migration>& all = Migrations();
  {
    pqxx::connection c(url);
    pqxx::work tx(c);
    tx.exec(
        "INSERT INTO authz.projects (id, name, environment, archived, zero_data_retention, "
        "retention_days, allowed_models, rpm_limit, tpm_limit, member_rpm_limit, "
        "member_tpm_limit) VALUES ('support', 'Support', 'production', false, true, 0, '{}', 0, "
        "0, 0, 0)");
    tx.exec(
        "INSERT INTO authz.members (id, email, provisioned_by) "
        "VALUES ('olivia', 'olivia@acme.example', '')");
    tx.exec(
        "INSERT INTO authz.role_grants (member_id, role, project) VALUES ('olivia', 'owner', '')");
    tx.exec(
        "INSERT INTO authz.invitations (id, email, role, projects, created_at, expires_at, state) "
        "VALUES ('inv_0123456789abcdef01234567', 'nora@acme.example', 'reader', '{support}', "
        "now(), now() + interval '1 day', 'pending')");
    tx.commit();
  }
  ASSERT_TRUE(pg::ApplyMigrations(url, "authz", all).ok());
  auto count = [&](const std::string& where) {
    pqxx::connection c(url);
    pqxx::work tx(c);
    return tx.exec1("SELECT count(*) FROM authz.invitations WHERE " + where)[0].as<int>();
  };
  EXPECT_EQ(count("id LIKE 'inv\\_%'"), 0);
  EXPECT_EQ(count("id = '" + InvitationDigest("inv_0123456789abcdef01234567") + "'"), 1);

  AdminOverDatabase database(url);
  ASSERT_TRUE(database.Ready());
  OrgAdmin& admin = database.admin;
  absl::StatusOr<Member> nora =
      admin.AcceptInvitation("inv_0123456789abcdef01234567", "nora@acme.example", "nora");
  ASSERT_TRUE(nora.ok()) << nora.status();

  Invitation invitation;
  invitation.email = "omar@acme.example";
  invitation.role = Role::kReader;
  invitation.projects = {"support"};
  absl::StatusOr<OrgAdmin::CreatedInvitation> created =
      admin.CreateInvitation("olivia", invitation, absl::Hours(1));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(count("strpos(id, '" + created->secret_id + "') > 0"), 0);
  EXPECT_EQ(count("id = '" + InvitationDigest(created->secret_id) + "'"), 1);
  absl::StatusOr<Member> omar = admin.AcceptInvitation(created->secret_id, "omar@acme.example", "");
  EXPECT_TRUE(omar.ok()) << omar.status();
  // The database refuses a plain id, whoever writes it.
  pqxx::connection c(url);
  pqxx::work tx(c);
  EXPECT_THROW(tx.exec("INSERT INTO authz.invitations (id, email, role, projects, created_at, "
                       "expires_at, state) VALUES ('inv_plain', 'x@acme.example', 'admin', '{}', "
                       "now(), now(), 'pending')"),
               pqxx::check_violation);
}

// Invitations stored before migration 010 keep working: accepted with the secret id their key
// digests, never the answer to a retry; creations from then on keep their request id and
// newest secret id as digests, which the database checks whoever writes them.
TEST(PostgresInvitationsTest, InvitationsFromBeforeRequestIdsStillWork) {
  const std::string url = DatabaseBefore("invitation_requests", "invitation_requests");
  if (url.empty()) GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
  ASSERT_FALSE(HasFailure());
  {
    pqxx::connection c(url);
    pqxx::work tx(c);
    tx.exec(
        "INSERT INTO authz.projects (id, name, environment, archived, zero_data_retention, "
        "retention_days, allowed_models, rpm_limit, tpm_limit, member_rpm_limit, "
        "member_tpm_limit) VALUES ('support', 'Support', 'production', false, false, 0, "
        "'{gpt-4o}', 0, 0, 0, 0)");
    tx.exec(
        "INSERT INTO authz.members (id, email, removed_at, provisioned_by) VALUES "
        "('olivia', 'olivia@acme.example', NULL, '')");
    tx.exec(
        "INSERT INTO authz.role_grants (member_id, role, project) VALUES ('olivia', 'owner', '')");
    tx.exec_params(
        "INSERT INTO authz.invitations (id, email, role, projects, created_at, expires_at, "
        "state) VALUES ($1, 'nora@acme.example', 'reader', '{support}', now(), "
        "now() + interval '1 day', 'pending')",
        InvitationDigest("inv_0123456789abcdef01234567"));
    tx.commit();
  }
  ASSERT_TRUE(pg::ApplyMigrations(url, "authz", Migrations()).ok());

  AdminOverDatabase database(url);
  ASSERT_TRUE(database.Ready());
  PostgresOrgStore& store = database.store;
  OrgAdmin& admin = database.admin;
  const Invitation* old =
      store.Load().value()->FindInvitation(InvitationDigest("inv_0123456789abcdef01234567"));
  ASSERT_NE(old, nullptr);
  EXPECT_EQ(old->secret_digest, "");
  EXPECT_EQ(old->request_digest, "");
  EXPECT_EQ(old->created_by, "");

  Invitation invitation;
  invitation.email = "omar@acme.example";
  invitation.role = Role::kReader;
  invitation.projects = {"support"};
  absl::StatusOr<OrgAdmin::CreatedInvitation> created =
      admin.CreateInvitation("olivia", invitation, absl::Hours(1), "upgrade-1");
  ASSERT_TRUE(created.ok()) << created.status();
  absl::StatusOr<OrgAdmin::CreatedInvitation> retried =
      admin.CreateInvitation("olivia", invitation, absl::Hours(1), "upgrade-1");
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->invitation.id, created->invitation.id);
  EXPECT_EQ(store.Load().value()->invitations.size(), 2u);
  EXPECT_TRUE(
      admin.AcceptInvitation("inv_0123456789abcdef01234567", "nora@acme.example", "nora").ok());
  EXPECT_EQ(admin.AcceptInvitation(created->secret_id, "omar@acme.example", "").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(admin.AcceptInvitation(retried->secret_id, "omar@acme.example", "").ok());

  pqxx::connection c(url);
  auto count = [&](const std::string& where) {
    pqxx::work tx(c);
    return tx.exec1("SELECT count(*) FROM authz.invitations WHERE " + where)[0].as<int>();
  };
  EXPECT_EQ(count("request_digest = '" + InvitationRequestDigest("upgrade-1") + "'"), 1);
  EXPECT_EQ(count("secret_digest = '" + InvitationDigest(retried->secret_id) + "'"), 1);
  EXPECT_EQ(count("strpos(request_digest || secret_digest || id, 'upgrade-1') > 0"), 0);
  EXPECT_EQ(count("strpos(request_digest || secret_digest || id, 'inv_') > 0"), 0);
  // The database refuses a plain request id, whoever writes it.
  pqxx::work tx(c);
  EXPECT_THROW(tx.exec("UPDATE authz.invitations SET request_digest = 'upgrade-1'"),
               pqxx::check_violation);
}

// A member removed by the release before removal ids (migration 009) keeps the request id
// their record was written under, the digest of their id, wherever the service names it; a
// member removed now gets a drawn one.
TEST(PostgresRemovalIdsTest, AMemberRemovedBeforeTheMigrationKeepsTheirRecordsName) {
  const std::string url = DatabaseBefore("removal_ids", "member_removal_ids");
  if (url.empty()) GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
  ASSERT_FALSE(HasFailure());
  const std::vector<pg::Migration>& all = Migrations();
  {
    pqxx::connection c(url);
    pqxx::work tx(c);
    tx.exec(
        "INSERT INTO authz.members (id, email, removed_at, provisioned_by) VALUES "
        "('olivia', 'olivia@acme.example', NULL, ''), "
        "('rita', 'rita@acme.example', now() - interval '1 day', ''), "
        "('mia', 'mia@acme.example', NULL, '')");
    tx.exec(
        "INSERT INTO authz.role_grants (member_id, role, project) VALUES ('olivia', 'owner', '')");
    tx.commit();
  }
  ASSERT_TRUE(pg::ApplyMigrations(url, "authz", all).ok());

  AdminOverDatabase database(url);
  ASSERT_TRUE(database.Ready());
  PostgresOrgStore& store = database.store;
  OrgAdmin& admin = database.admin;
  bool removed_now = true;
  absl::StatusOr<Member> rita = admin.RemoveMember("olivia", "rita", &removed_now);
  ASSERT_TRUE(rita.ok()) << rita.status();
  EXPECT_FALSE(removed_now);
  EXPECT_EQ(rita->removal_id, "");
  EXPECT_EQ(MemberRemovalRequestId(*rita),
            absl::StrCat("authz:member-removed:", ledger::ShortDigest("rita")));
  absl::StatusOr<Member> mia = admin.RemoveMember("olivia", "mia", &removed_now);
  ASSERT_TRUE(mia.ok()) << mia.status();
  EXPECT_TRUE(removed_now);
  EXPECT_THAT(mia->removal_id, MatchesRegex("[0-9a-f]{32}"));
  // Still as drawn after a change that reads the state back from the database.
  ASSERT_TRUE(admin.AddMember("olivia", MakeMember("zoe", {})).ok());
  EXPECT_EQ(store.Load().value()->FindMember("mia")->removal_id, mia->removal_id);
  EXPECT_EQ(store.Load().value()->FindMember("rita")->removal_id, "");
  // The database refuses a removal id that is not 32 hex digits, whoever writes it.
  pqxx::connection c(url);
  pqxx::work tx(c);
  EXPECT_THROW(tx.exec("UPDATE authz.members SET removal_id = 'rita' WHERE id = 'rita'"),
               pqxx::check_violation);
}

// Migration 008 grants policy_authz_runtime what PostgresOrgStore's and PostgresBucketStore's
// statements need and no more: the runtime login role passes the start-up checks and cannot
// change the schema.
TEST(AuthzRuntimeRoleTest, HoldsWhatTheStoresNeedAndNothingMore) {
  const pg::TestDatabase* db = pg::TestDatabase::Get();
  if (db == nullptr) GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
  const std::string runtime = db->RuntimeUrl("authz");
  if (runtime.empty()) GTEST_SKIP() << "POLICY_TEST_PG_AUTHZ_RUNTIME_URL is not set";
  ASSERT_TRUE(db->Reset("authz", Migrations(), kResetSql).ok());
  std::vector<pg::Privilege> needed = PostgresOrgStore::Privileges();
  for (pg::Privilege& p : PostgresBucketStore::Privileges()) needed.push_back(std::move(p));
  pg::ExpectLeastPrivilegedRuntimeRole(*db, runtime, "authz", Migrations(), needed);
}

INSTANTIATE_TEST_SUITE_P(
    Stores, OrgStoreConformanceTest,
    ::testing::Values(std::make_pair(std::string("memory"), BackendFactory(MakeMemory)),
                      std::make_pair(std::string("postgres"), BackendFactory(MakePostgres)),
                      std::make_pair(std::string("postgres_runtime"),
                                     BackendFactory(MakePostgresRuntime))),
    [](const auto& info) { return info.param.first; });

}  // namespace
}  // namespace policy::authz
