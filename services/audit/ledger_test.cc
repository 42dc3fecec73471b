#include "services/audit/ledger.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "common/clock/clock.h"
#include "common/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/audit/append_batcher.h"
#include "services/audit/memory_ledger_store.h"

namespace policy::audit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

const LedgerRef kProd{"proj-prod", "production"};
const LedgerRef kOrg{};

class LedgerTest : public ::testing::Test {
 protected:
  LedgerTest()
      : signer_(CheckpointSigner::Create(std::string(32, '\x07')).value()),
        subjects_(SubjectCipher::Create(std::string(32, '\x09')).value()),
        ledger_(&store_, subjects_.get(), signer_.get(), &clock_) {}

  EntryInput Call(const std::string& actor, int64_t tokens, const std::string& request_id = "") {
    EntryInput in;
    in.action = Action::kApiCall;
    in.actor = actor;
    in.ledger = kProd;
    in.model = "gpt-4.1";
    in.tokens = tokens;
    in.request_id = request_id;
    return in;
  }

  Entry AppendOk(const EntryInput& in) {
    absl::StatusOr<AppendOutcome> out = ledger_.Append(in);
    EXPECT_TRUE(out.ok()) << out.status();
    clock_.Advance(absl::Seconds(1));
    return out.ok() ? out->entry : Entry{};
  }

  FakeClock clock_;
  MemoryLedgerStore store_;
  std::unique_ptr<CheckpointSigner> signer_;
  std::unique_ptr<SubjectCipher> subjects_;
  AuditLedger ledger_;
};

TEST_F(LedgerTest, AppendsStorePseudonymsNeverIdentifiers) {
  const Entry e = AppendOk(Call("alice@example.com", 10));
  EXPECT_EQ(e.index, 0u);
  EXPECT_EQ(e.actor.ref.size(), 32u);
  EXPECT_EQ(e.actor.sealed.find("alice"), std::string::npos);
  EXPECT_EQ(EncodeLeafData(e).find("alice"), std::string::npos);
  // The same actor gets the same pseudonym; another actor another one.
  EXPECT_EQ(AppendOk(Call("alice@example.com", 1)).actor.ref, e.actor.ref);
  EXPECT_NE(AppendOk(Call("bob@example.com", 1)).actor.ref, e.actor.ref);
}

TEST_F(LedgerTest, RetriedAppendReturnsTheFirstEntry) {
  const Entry first = AppendOk(Call("alice@example.com", 10, "req-42"));
  absl::StatusOr<AppendOutcome> retry = ledger_.Append(Call("alice@example.com", 10, "req-42"));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->duplicate);
  EXPECT_EQ(retry->entry, first);
  EXPECT_EQ(store_.Size(kProd).value(), 1u);
  absl::StatusOr<AppendOutcome> reused = ledger_.Append(Call("alice@example.com", 11, "req-42"));
  EXPECT_EQ(reused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(reused.status().message(), HasSubstr("req-42"));
}

TEST_F(LedgerTest, QueryRevealsIdentifiersFiltersAndPagesAndIsRecorded) {
  for (int i = 0; i < 5; ++i) AppendOk(Call(i % 2 ? "bob@example.com" : "alice@example.com", i));
  QuerySpec spec;
  spec.ledger = kProd;
  spec.actor = "alice@example.com";
  spec.page_size = 2;
  absl::StatusOr<QueryPage> page = ledger_.Query(spec, "auditor@example.com");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[0].actor, "alice@example.com");
  EXPECT_EQ(page->entries[1].entry.index, 2u);
  ASSERT_TRUE(page->next_index.has_value());
  spec.after_index = *page->next_index;
  page = ledger_.Query(spec, "auditor@example.com");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].entry.index, 4u);
  EXPECT_FALSE(page->next_index.has_value());
  // Both reads are in the ledger, naming the reader.
  spec = QuerySpec{};
  spec.ledger = kProd;
  spec.action = Action::kAuditRead;
  page = ledger_.Query(spec, "auditor@example.com");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[0].actor, "auditor@example.com");
  EXPECT_EQ(ledger_.Query(spec, "").status().code(), absl::StatusCode::kInvalidArgument);
  spec.page_size = 5000;
  EXPECT_EQ(ledger_.Query(spec, "a").status().code(), absl::StatusCode::kInvalidArgument);
  // An actor no entry can name (longer than an identifier, not UTF-8) is a mistake, named.
  spec.page_size = 10;
  for (const std::string& actor :
       {std::string(kMaxIdentifierBytes + 1, 'a'), std::string("\xff")}) {
    spec.actor = actor;
    absl::StatusOr<QueryPage> bad = ledger_.Query(spec, "a");
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
    EXPECT_THAT(bad.status().message(), HasSubstr("actor"));
  }
  // So is a requester no entry can name, under its own name.
  spec.actor.clear();
  for (const std::string& requester :
       {std::string(kMaxIdentifierBytes + 1, 'a'), std::string("a\0b", 3), std::string("\xff")}) {
    absl::Status bad = ledger_.Query(spec, requester).status();
    EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(bad.message()), ::testing::StartsWith("requested_by: ")) << bad;
  }
}

TEST_F(LedgerTest, PagingOneAtATimeEndsWithTheEntriesPresentAtTheFirstPage) {
  for (int i = 0; i < 3; ++i) AppendOk(Call("svc-a", i));
  QuerySpec spec;
  spec.ledger = kProd;
  spec.page_size = 1;
  std::vector<uint64_t> indexes;
  for (int pages = 0;; ++pages) {
    ASSERT_LT(pages, 10) << "paging does not end";
    absl::StatusOr<QueryPage> page = ledger_.Query(spec, "auditor@example.com");
    ASSERT_TRUE(page.ok()) << page.status();
    for (const RevealedEntry& e : page->entries) indexes.push_back(e.entry.index);
    if (!page->next_index.has_value()) break;
    spec.after_index = *page->next_index;
    spec.end_index = page->end_index;
    clock_.Advance(absl::Seconds(1));
  }
  EXPECT_THAT(indexes, ElementsAre(0, 1, 2));
  // Each page was recorded all the same.
  EXPECT_EQ(store_.Size(kProd).value(), 6u);
}

TEST_F(LedgerTest, ProofsVerifyAgainstSignedCheckpoints) {
  for (int i = 0; i < 11; ++i) AppendOk(Call("svc-a", i, absl::StrCat("r", i)));
  ASSERT_EQ(ledger_.SignCheckpoints().value(), 1);
  absl::StatusOr<Checkpoint> first = ledger_.GetCheckpoint(kProd, 0);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->tree_size, 11u);
  EXPECT_TRUE(VerifyCheckpoint(*first, ledger_.public_key()));
  EXPECT_EQ(ledger_.SignCheckpoints().value(), 0);  // Nothing grew.

  // An entry appended after the checkpoint has no proof yet.
  AppendOk(Call("svc-a", 99, "late"));
  EXPECT_EQ(ledger_.ProveInclusion(kProd, std::nullopt, "late", 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  for (uint64_t i = 0; i < 11; ++i) {
    absl::StatusOr<InclusionProof> p = ledger_.ProveInclusion(kProd, i, "", 0);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->entry.index, i);
    EXPECT_TRUE(VerifyInclusion(EntryLeafHash(p->entry), i, p->checkpoint.tree_size, p->proof,
                                p->checkpoint.root))
        << i;
  }
  absl::StatusOr<InclusionProof> by_request = ledger_.ProveInclusion(kProd, std::nullopt, "r5", 0);
  ASSERT_TRUE(by_request.ok());
  EXPECT_EQ(by_request->entry.index, 5u);
  EXPECT_EQ(by_request->entry.actor.sealed.find("svc-a"), std::string::npos);

  for (int i = 0; i < 6; ++i) AppendOk(Call("svc-b", i));
  ASSERT_EQ(ledger_.SignCheckpoints().value(), 1);
  absl::StatusOr<ConsistencyProof> c = ledger_.ProveConsistency(kProd, 11, 0);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->from.has_value());
  EXPECT_EQ(c->to.tree_size, 18u);
  EXPECT_TRUE(VerifyConsistency(11, 18, c->from->root, c->to.root, c->proof));
  EXPECT_EQ(ledger_.ProveConsistency(kProd, 19, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ledger_.ProveInclusion(kProd, 500, "", 0).status().code(), absl::StatusCode::kNotFound);
  // An entry past the checkpoint the caller names can never be proven against it.
  const absl::Status past = ledger_.ProveInclusion(kProd, 15, "", 11).status();
  EXPECT_EQ(past.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(past.message(),
            "tree_size: entry 15 is not in the tree of size 11; name a larger checkpoint, or 0 "
            "for the newest");
  EXPECT_TRUE(ledger_.ProveInclusion(kProd, 15, "", 18).ok());
}

// A store whose whole list of checkpoints is refused: what reads a page must not need it.
class PagedCheckpointsStore : public MemoryLedgerStore {
 public:
  bool refuse_whole_list = false;
  absl::StatusOr<std::vector<Checkpoint>> ListCheckpoints(const LedgerRef& ledger) override {
    if (refuse_whole_list) return absl::InternalError("the whole list was read");
    return MemoryLedgerStore::ListCheckpoints(ledger);
  }
};

TEST(LedgerCheckpointsTest, APageOfCheckpointsReadsThatPageOnly) {
  auto signer = CheckpointSigner::Create(std::string(32, '\x07')).value();
  auto subjects = SubjectCipher::Create(std::string(32, '\x09')).value();
  FakeClock clock;
  PagedCheckpointsStore store;
  AuditLedger ledger(&store, subjects.get(), signer.get(), &clock);
  EntryInput in;
  in.action = Action::kApiCall;
  in.actor = "svc-a";
  in.ledger = kProd;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(ledger.Append(in).ok());
    ASSERT_TRUE(ledger.SignCheckpoints().ok());
  }
  store.refuse_whole_list = true;
  std::vector<uint64_t> sizes;
  uint64_t after = 0;
  for (int pages = 0;; ++pages) {
    ASSERT_LT(pages, 5) << "paging does not end";
    absl::StatusOr<CheckpointPage> page = ledger.ListCheckpoints(kProd, after, 2);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const Checkpoint& c : page->checkpoints) sizes.push_back(c.tree_size);
    if (page->next_after_size == 0) break;
    after = page->next_after_size;
  }
  EXPECT_THAT(sizes, ElementsAre(1, 2, 3));
  EXPECT_THAT(ledger.ListCheckpoints(kProd, 3, 2).value().checkpoints, IsEmpty());
  EXPECT_THAT(ledger.ListCheckpoints(kProd, 1, 2).value().checkpoints, testing::SizeIs(2));
  EXPECT_EQ(ledger.ListCheckpoints(kProd, 0, 2).value().next_after_size, 2u);
  EXPECT_EQ(ledger.ListCheckpoints(kProd, 1, 2).value().next_after_size, 0u);
  EXPECT_EQ(ledger.ListCheckpoints(kProd, 0, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ledger.ListCheckpoints(kProd, 0, kMaxPageSize + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LedgerTest, SigningReportsEveryLedgerWithItsNewestCheckpoint) {
  for (int i = 0; i < 3; ++i) AppendOk(Call("svc-a", i));
  std::vector<LedgerOverview> ledgers;
  ASSERT_EQ(ledger_.SignCheckpoints(&ledgers).value(), 1);
  ASSERT_EQ(ledgers.size(), 1u);
  EXPECT_EQ(ledgers[0].ledger, kProd);
  EXPECT_EQ(ledgers[0].size, 3u);
  ASSERT_TRUE(ledgers[0].latest_checkpoint.has_value());
  EXPECT_EQ(ledgers[0].latest_checkpoint->tree_size, 3u);

  AppendOk(Call("svc-a", 3));
  ASSERT_EQ(ledger_.SignCheckpoints(&ledgers).value(), 1);
  ASSERT_EQ(ledgers.size(), 1u);
  EXPECT_EQ(ledgers[0].size, 4u);
  EXPECT_EQ(ledgers[0].latest_checkpoint->tree_size, 4u);
  ASSERT_EQ(ledger_.SignCheckpoints(&ledgers).value(), 0);  // Nothing grew: the newest is kept.
  ASSERT_EQ(ledgers.size(), 1u);
  EXPECT_EQ(ledgers[0].latest_checkpoint->tree_size, 4u);
}

TEST_F(LedgerTest, ASubjectsPageEndsBeforeItsBytesPassTheBound) {
  // Entries as large as entries may be: 32 metadata values of 1 KiB each.
  EntryInput big = Call("dora@example.com", 1);
  for (size_t i = 0; i < kMaxMetadataPairs; ++i) {
    big.metadata[absl::StrCat("k", i)] = std::string(kMaxMetadataValueBytes, 'v');
  }
  const int kEntries = 70;  // About 2.3 MB in all.
  for (int i = 0; i < kEntries; ++i) AppendOk(big);

  std::vector<uint64_t> seen;
  std::optional<SubjectResume> next;
  int pages = 0;
  do {
    absl::StatusOr<SubjectPage> page =
        ledger_.ExportSubject("dora@example.com", "dpo@example.com", next, kMaxPageSize);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_FALSE(page->entries.empty());
    size_t bytes = 0;
    for (const RevealedEntry& e : page->entries) {
      seen.push_back(e.entry.index);
      for (const auto& [key, value] : e.entry.metadata) bytes += key.size() + value.size();
    }
    EXPECT_LE(bytes, kSubjectPageBytes);
    next = page->next;
    ++pages;
  } while (next.has_value() && pages < 10);
  EXPECT_GE(pages, 3);
  // Every entry once, in order (each page's record of the export comes after them and is
  // not part of it).
  ASSERT_EQ(seen.size(), static_cast<size_t>(kEntries));
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_LT(seen[i - 1], seen[i]);
}

TEST_F(LedgerTest, AWalkWhoseCallerGaveUpStopsCancelled) {
  for (int i = 0; i < 3; ++i) AppendOk(Call("alice@example.com", i));
  ASSERT_TRUE(ledger_.SignCheckpoints().ok());
  int asked = 0;
  const auto stays = [&] {
    ++asked;
    return false;
  };
  absl::StatusOr<IntegrityReport> verified = ledger_.Verify(kProd, stays);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_TRUE(verified->valid);
  EXPECT_GT(asked, 0);
  const auto gone = [] { return true; };
  absl::StatusOr<IntegrityReport> stopped = ledger_.Verify(kProd, gone);
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(stopped.status().message(), HasSubstr("its caller gave up"));
  absl::StatusOr<ComplianceSummary> summary =
      ledger_.Summarize(kProd, std::nullopt, std::nullopt, "auditor@example.com", gone);
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(
      ledger_.Summarize(kProd, std::nullopt, std::nullopt, "auditor@example.com", stays).ok());
  // A walk whose caller goes midway stops at the next look, a few thousand entries on.
  for (int i = 0; i < 5000; ++i) AppendOk(Call("alice@example.com", i));
  ASSERT_TRUE(ledger_.SignCheckpoints().ok());
  int looks = 0;
  // The checkpoints read twice and entry 0 pass; the look at entry 4096 finds the caller gone.
  const auto goes_later = [&] { return ++looks > 3; };
  stopped = ledger_.Verify(kProd, goes_later);
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(stopped.status().message(), HasSubstr("stopped at entry 4096"));
}

TEST_F(LedgerTest, ForgetSubjectShredsIdentifiersButTheLedgerStillVerifies) {
  EntryInput removal;
  removal.action = Action::kMemberRemoved;
  removal.actor = "owner@example.com";
  removal.subject = "carol@example.com";
  removal.ledger = kProd;
  AppendOk(removal);
  AppendOk(Call("carol@example.com", 5));
  ASSERT_TRUE(ledger_.SignCheckpoints().ok());

  absl::StatusOr<SubjectPage> before =
      ledger_.ExportSubject("carol@example.com", "dpo@example.com", std::nullopt, kMaxPageSize);
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_EQ(before->entries.size(), 2u);
  EXPECT_FALSE(before->next.has_value());
  EXPECT_EQ(before->entries[0].subject, "carol@example.com");
  EXPECT_EQ(before->entries[1].actor, "carol@example.com");
  // Her copy names her alone: the owner who removed her is another person, left unopened (his
  // pseudonym and sealed identifier are there, as in every entry).
  EXPECT_EQ(before->entries[0].actor, "");
  EXPECT_EQ(before->entries[0].entry.actor.ref.size(), 32u);
  // Page by page, one entry each: what named carol at the first page, the record of the
  // export above included, and not the records of these pages.
  absl::StatusOr<SubjectPage> first =
      ledger_.ExportSubject("carol@example.com", "dpo@example.com", std::nullopt, 1);
  ASSERT_TRUE(first.ok() && first->next.has_value());
  EXPECT_EQ(first->entries[0].entry.index, before->entries[0].entry.index);
  absl::StatusOr<SubjectPage> second =
      ledger_.ExportSubject("carol@example.com", "dpo@example.com", first->next, 1);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->entries.size(), 1u);
  EXPECT_EQ(second->entries[0].entry.ledger, before->entries[1].entry.ledger);
  EXPECT_EQ(second->entries[0].entry.index, before->entries[1].entry.index);
  absl::StatusOr<SubjectPage> third =
      ledger_.ExportSubject("carol@example.com", "dpo@example.com", second->next, 1);
  ASSERT_TRUE(third.ok());
  ASSERT_EQ(third->entries.size(), 1u);
  EXPECT_EQ(third->entries[0].entry.action, Action::kSubjectAccessExported);
  EXPECT_EQ(third->entries[0].entry.index, 0u);
  EXPECT_FALSE(third->next.has_value());
  EXPECT_EQ(ledger_.ExportSubject("carol@example.com", "dpo", std::nullopt, 0).status().code(),
            absl::StatusCode::kInvalidArgument);

  absl::StatusOr<ForgetResult> forgotten =
      ledger_.Forget("carol@example.com", "dpo@example.com", "forget-carol");
  ASSERT_TRUE(forgotten.ok()) << forgotten.status();
  EXPECT_TRUE(forgotten->forgotten);
  EXPECT_EQ(forgotten->entry.action, Action::kSubjectForgotten);

  // Nobody can link the entries to carol any more; the owner is still named.
  EXPECT_THAT(
      ledger_.ExportSubject("carol@example.com", "dpo@example.com", std::nullopt, kMaxPageSize)
          .value()
          .entries,
      IsEmpty());
  absl::StatusOr<std::vector<RevealedEntry>> all = ledger_.Export(kProd, 0, 10, "dpo", false);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].actor, "owner@example.com");
  EXPECT_EQ((*all)[0].subject, "");
  EXPECT_EQ((*all)[1].actor, "");
  QuerySpec by_carol;
  by_carol.ledger = kProd;
  by_carol.actor = "carol@example.com";
  EXPECT_THAT(ledger_.Query(by_carol, "dpo").value().entries, IsEmpty());

  absl::StatusOr<IntegrityReport> report = ledger_.Verify(kProd);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->valid) << report->problem;
  EXPECT_EQ(report->checkpoints_checked, 1u);

  // The requests themselves are in the organisation's ledger.
  absl::StatusOr<std::vector<RevealedEntry>> org = ledger_.Export(kOrg, 0, 10, "dpo", false);
  ASSERT_TRUE(org.ok());
  std::vector<Action> actions;
  for (const RevealedEntry& e : *org) actions.push_back(e.entry.action);
  // Each page exported is recorded: four before the forgetting, one after.
  EXPECT_THAT(actions, ElementsAre(Action::kSubjectAccessExported, Action::kSubjectAccessExported,
                                   Action::kSubjectAccessExported, Action::kSubjectAccessExported,
                                   Action::kSubjectForgotten, Action::kSubjectAccessExported));
  // A second request changes nothing and says so.
  EXPECT_FALSE(ledger_.Forget("carol@example.com", "dpo@example.com", "").value().forgotten);
  // A later entry about carol gets a new, unlinkable pseudonym.
  EXPECT_NE(AppendOk(Call("carol@example.com", 1)).actor.ref, before->entries[1].entry.actor.ref);
}

TEST_F(LedgerTest, ARetriedForgetReturnsTheFirstRecord) {
  AppendOk(Call("carol@example.com", 5));
  absl::StatusOr<ForgetResult> first =
      ledger_.Forget("carol@example.com", "dpo@example.com", "forget-1");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->forgotten);
  const uint64_t org_size = store_.Size(kOrg).value();

  absl::StatusOr<ForgetResult> retry =
      ledger_.Forget("carol@example.com", "dpo@example.com", "forget-1");
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->forgotten);
  EXPECT_EQ(retry->entry.index, first->entry.index);
  EXPECT_EQ(retry->entry.leaf_hash, first->entry.leaf_hash);
  EXPECT_EQ(store_.Size(kOrg).value(), org_size);

  // The id of another request is refused, whatever it was.
  EntryInput org_call = Call("svc", 1, "call-7");
  org_call.ledger = kOrg;
  AppendOk(org_call);
  absl::StatusOr<ForgetResult> reused = ledger_.Forget("carol@example.com", "dpo", "call-7");
  EXPECT_EQ(reused.status().code(), absl::StatusCode::kFailedPrecondition) << reused.status();
  EXPECT_THAT(reused.status().message(), HasSubstr("api_call"));
}

TEST_F(LedgerTest, TheRecordOfAForgettingKeepsNoRequestIdNamingTheSubject) {
  AppendOk(Call("carol@example.com", 5));
  // A request id a person chose may name the subject; the record must not.
  absl::StatusOr<ForgetResult> first =
      ledger_.Forget("carol@example.com", "dpo@example.com", "erase-carol.example.com");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->forgotten);
  EXPECT_THAT(first->entry.request_id, Not(HasSubstr("carol")));
  EXPECT_FALSE(first->entry.request_id.empty());
  absl::StatusOr<std::vector<RevealedEntry>> org = ledger_.Export(kOrg, 0, 100, "dpo", false);
  ASSERT_TRUE(org.ok());
  for (const RevealedEntry& e : *org) {
    EXPECT_THAT(e.entry.request_id, Not(HasSubstr("carol")));
    EXPECT_EQ(EncodeLeafData(e.entry).find("carol"), std::string::npos);
  }
  // Still idempotent on the caller's id.
  absl::StatusOr<ForgetResult> retry =
      ledger_.Forget("carol@example.com", "dpo@example.com", "erase-carol.example.com");
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->forgotten);
  EXPECT_EQ(retry->entry.index, first->entry.index);
  EXPECT_EQ(store_.Size(kOrg).value(), first->entry.index + 1);
  // The caller's id is checked as Append checks one.
  EXPECT_EQ(ledger_.Forget("dave@example.com", "dpo", "erase dave").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LedgerTest, ARetriedForgetFinishesWhatTheFirstAttemptStarted) {
  AppendOk(Call("carol@example.com", 5));
  // The first attempt recorded the request, then stopped before destroying the key.
  EntryInput record;
  record.action = Action::kSubjectForgotten;
  record.actor = "dpo@example.com";
  record.subject = "carol@example.com";
  record.request_id = "forget-2";
  const Entry recorded = AppendOk(record);
  ASSERT_EQ(ledger_.ExportSubject("carol@example.com", "dpo", std::nullopt, kMaxPageSize)
                .value()
                .entries.size(),
            2u);

  absl::StatusOr<ForgetResult> retry =
      ledger_.Forget("carol@example.com", "dpo@example.com", "forget-2");
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->forgotten);
  EXPECT_EQ(retry->entry.index, recorded.index);
  EXPECT_THAT(
      ledger_.ExportSubject("carol@example.com", "dpo", std::nullopt, kMaxPageSize).value().entries,
      IsEmpty());

  // The same id cannot forget someone else.
  AppendOk(Call("dave@example.com", 5));
  absl::StatusOr<ForgetResult> other =
      ledger_.Forget("dave@example.com", "dpo@example.com", "forget-2");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition) << other.status();
  EXPECT_EQ(ledger_.ExportSubject("dave@example.com", "dpo", std::nullopt, kMaxPageSize)
                .value()
                .entries.size(),
            1u);
}

TEST_F(LedgerTest, ARequestIdForgettingOneSubjectForgetsNoOther) {
  AppendOk(Call("carol@example.com", 5));
  AppendOk(Call("erin@example.com", 5));
  ASSERT_TRUE(ledger_.Forget("carol@example.com", "dpo", "forget-3").value().forgotten);
  // Dave never had a key, and Carol's is gone: the record keeps nothing that could tell them
  // apart (it would let the master key's holder test guesses of whom it forgot). Nothing names
  // Dave; the first record answers, and nothing more is forgotten or recorded.
  absl::StatusOr<ForgetResult> dave = ledger_.Forget("dave@example.com", "dpo", "forget-3");
  ASSERT_TRUE(dave.ok()) << dave.status();
  EXPECT_EQ(dave->entry.request_id, subjects_->ForgetRequestId("forget-3"));
  EXPECT_EQ(dave->entry.subject.ref.size(), 32u);  // Carol's pseudonym, opened by no key.
  EXPECT_FALSE(dave->entry.metadata.contains("request_binding"));
  absl::StatusOr<ForgetResult> erin = ledger_.Forget("erin@example.com", "dpo", "forget-3");
  EXPECT_EQ(erin.status().code(), absl::StatusCode::kFailedPrecondition) << erin.status();
  EXPECT_THAT(
      ledger_.ExportSubject("erin@example.com", "dpo", std::nullopt, kMaxPageSize).value().entries,
      Not(IsEmpty()));
  EXPECT_TRUE(ledger_.Forget("carol@example.com", "dpo", "forget-3").ok());

  // The first subject had no key: another subject with a key is not forgotten by its id.
  ASSERT_FALSE(ledger_.Forget("nobody@example.com", "dpo", "forget-4").value().forgotten);
  absl::StatusOr<ForgetResult> other = ledger_.Forget("erin@example.com", "dpo", "forget-4");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition) << other.status();
  EXPECT_THAT(
      ledger_.ExportSubject("erin@example.com", "dpo", std::nullopt, kMaxPageSize).value().entries,
      Not(IsEmpty()));
  EXPECT_TRUE(ledger_.Forget("nobody@example.com", "dpo", "forget-4").ok());
}

// Records of changes made before a forgetting that arrive after it (another service's outbox
// delivering late) name the person for nobody: no key, old or new, opens them, and none is
// made for them; a change made after the forgetting names them under a new key.
TEST_F(LedgerTest, LateRecordsOfChangesBeforeAForgettingNameNobody) {
  AppendOk(Call("carol@example.com", 5));
  const absl::Time removed = clock_.Now();  // When authz removed her, say.
  clock_.Advance(absl::Seconds(3));
  ASSERT_TRUE(ledger_.Forget("carol@example.com", "dpo", "forget-carol").value().forgotten);
  clock_.Advance(absl::Seconds(3));

  EntryInput removal;
  removal.action = Action::kMemberRemoved;
  removal.actor = "owner@example.com";
  removal.subject = "carol@example.com";
  removal.ledger = kProd;
  removal.request_id = "authz:member-removed:1";
  removal.occurred_at = removed;
  const Entry late = AppendOk(removal);
  EXPECT_EQ(late.subject.ref.size(), 32u);
  EXPECT_EQ(late.subject.sealed, "");
  EXPECT_FALSE(late.actor.sealed.empty());  // The owner, not forgotten, is named as ever.
  const std::string locator = subjects_->Locator("carol@example.com");
  EXPECT_EQ(store_.GetSubjectKey(locator).status().code(), absl::StatusCode::kNotFound);
  // Delivered again, it is the same entry.
  absl::StatusOr<AppendOutcome> again = ledger_.Append(removal);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->entry.index, late.index);
  // Each such entry has a pseudonym of its own: nothing links them to each other.
  EntryInput call = Call("carol@example.com", 7, "keys:used:1");
  call.occurred_at = removed - absl::Seconds(1);
  const Entry late_call = AppendOk(call);
  EXPECT_EQ(late_call.actor.sealed, "");
  EXPECT_NE(late_call.actor.ref, late.subject.ref);
  EXPECT_EQ(store_.GetSubjectKey(locator).status().code(), absl::StatusCode::kNotFound);

  // A change made after the forgetting names her again, under a new key; a late record of
  // before still names nobody, and leaves that key alone.
  EntryInput rejoined = removal;
  rejoined.action = Action::kMemberAdded;
  rejoined.request_id = "authz:member-added:2";
  rejoined.occurred_at = clock_.Now() - absl::Seconds(1);
  const Entry named = AppendOk(rejoined);
  EXPECT_FALSE(named.subject.sealed.empty());
  const SubjectKey key = store_.GetSubjectKey(locator).value();
  EntryInput later = removal;
  later.request_id = "authz:member-removed:0";
  const Entry late_again = AppendOk(later);
  EXPECT_EQ(late_again.subject.sealed, "");
  EXPECT_NE(late_again.subject.ref, named.subject.ref);
  EXPECT_EQ(store_.GetSubjectKey(locator).value(), key);

  absl::StatusOr<std::vector<RevealedEntry>> all = ledger_.Export(kProd, 0, 10, "dpo", false);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ((*all)[1].actor, "owner@example.com");
  EXPECT_EQ((*all)[1].subject, "");
  EXPECT_EQ((*all)[2].actor, "");
  EXPECT_EQ((*all)[3].subject, "carol@example.com");
  EXPECT_EQ((*all)[4].subject, "");
  EXPECT_THAT(
      ledger_.ExportSubject("carol@example.com", "dpo", std::nullopt, kMaxPageSize).value().entries,
      ElementsAre(
          ::testing::Field(&RevealedEntry::entry, ::testing::Field(&Entry::index, named.index))));
  // Sealed for nobody is accounted for; the ledger verifies.
  absl::StatusOr<ComplianceSummary> summary =
      ledger_.Summarize(kProd, std::nullopt, std::nullopt, "auditor");
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->unaccounted_subjects, 0u);
  EXPECT_TRUE(summary->integrity.valid) << summary->integrity.problem;

  // Once the forgetting expires, a record that late names her again.
  clock_.Advance(absl::Hours(2));
  EXPECT_EQ(ledger_.PurgeForgotten(absl::Hours(1)).value(), 1);
  later.request_id = "authz:member-removed:-1";
  EXPECT_FALSE(AppendOk(later).subject.sealed.empty());
}

// A record delivered late names nobody for a forgetting that happened while it was being
// sealed: the key made for it without seeing the forgetting is refused, and the batch sealed
// again.
TEST(ForgettingRaceTest, AKeyMadeBeforeAForgettingItDidNotSeeIsNotStored) {
  // A store that forgets the subject between the batch's look-up and its append, once.
  class ForgettingStore : public MemoryLedgerStore {
   public:
    std::string locator;
    absl::Time at;
    int appends = 0;
    absl::StatusOr<std::vector<AppendOutcome>> Append(std::vector<Entry> entries,
                                                      std::vector<SubjectKey> new_keys) override {
      if (appends++ == 0) RETURN_IF_ERROR(RecordForgotten(locator, at));
      return MemoryLedgerStore::Append(std::move(entries), std::move(new_keys));
    }
  };
  ForgettingStore store;
  FakeClock clock;
  auto signer = CheckpointSigner::Create(std::string(32, '\x07')).value();
  auto subjects = SubjectCipher::Create(std::string(32, '\x09')).value();
  AuditLedger ledger(&store, subjects.get(), signer.get(), &clock);
  store.locator = subjects->Locator("carol@example.com");
  store.at = clock.Now();
  EntryInput in;
  in.action = Action::kMemberRemoved;
  in.actor = "owner@example.com";
  in.subject = "carol@example.com";
  in.request_id = "authz:member-removed:1";
  in.occurred_at = clock.Now() - absl::Seconds(1);
  clock.Advance(absl::Seconds(1));
  absl::StatusOr<AppendOutcome> out = ledger.Append(in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(store.appends, 2);
  EXPECT_EQ(out->entry.subject.sealed, "");
  EXPECT_EQ(store.GetSubjectKey(store.locator).status().code(), absl::StatusCode::kNotFound);
  // The owner's key was made again, with the second sealing.
  EXPECT_TRUE(store.GetSubjectKey(subjects->Locator("owner@example.com")).ok());
}

// A store whose appends fail with `status`, counting them.
class FailingAppendStore : public MemoryLedgerStore {
 public:
  explicit FailingAppendStore(absl::Status status) : status_(std::move(status)) {}
  absl::StatusOr<std::vector<AppendOutcome>> Append(std::vector<Entry>,
                                                    std::vector<SubjectKey>) override {
    ++appends;
    return status_;
  }
  int appends = 0;

 private:
  const absl::Status status_;
};

TEST(AppendBatchTest, OnlyAFailureOfTheBatchsContentIsRetriedLedgerByLedger) {
  auto signer = CheckpointSigner::Create(std::string(32, '\x07')).value();
  auto subjects = SubjectCipher::Create(std::string(32, '\x09')).value();
  FakeClock clock;
  std::vector<EntryInput> batch(3);
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i].action = Action::kApiCall;
    batch[i].actor = "alice";
    batch[i].ledger = LedgerRef{i == 0 ? "proj-a" : "proj-b", "production"};
  }
  // A commit whose outcome is unknown, or a database away or busy: appending the ledgers
  // again could record them twice, or only add load.
  for (absl::Status failure :
       {absl::UnknownError("commit outcome unknown"), absl::UnavailableError("down"),
        absl::ResourceExhaustedError("busy"), absl::DeadlineExceededError("late")}) {
    FailingAppendStore store(failure);
    AuditLedger ledger(&store, subjects.get(), signer.get(), &clock);
    EXPECT_EQ(ledger.AppendBatch(batch).status().code(), failure.code());
    EXPECT_EQ(store.appends, 1) << failure;
  }
  // What one ledger holds: each ledger on its own, the failure its entries' outcome.
  FailingAppendStore damaged(absl::DataLossError("ledger damaged"));
  AuditLedger ledger(&damaged, subjects.get(), signer.get(), &clock);
  absl::StatusOr<std::vector<AppendOutcome>> outcomes = ledger.AppendBatch(batch);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  EXPECT_EQ(damaged.appends, 3);  // The batch, then each of the two ledgers.
  for (const AppendOutcome& outcome : *outcomes) {
    EXPECT_EQ(outcome.status.code(), absl::StatusCode::kDataLoss);
  }
}

// The subject keys a batch makes are the store's to keep with its entries: a batch whose
// append fails leaves none, whatever the failure.
TEST(AppendBatchTest, AFailedAppendLeavesNoSubjectKey) {
  auto signer = CheckpointSigner::Create(std::string(32, '\x07')).value();
  auto subjects = SubjectCipher::Create(std::string(32, '\x09')).value();
  FakeClock clock;
  EntryInput in;
  in.action = Action::kMemberAdded;
  in.actor = "owner@example.com";
  in.subject = "dave@example.com";
  in.ledger = LedgerRef{"proj-a", "production"};
  for (absl::Status failure :
       {absl::UnavailableError("down"), absl::DataLossError("ledger damaged"),
        absl::AbortedError("a key was destroyed meanwhile")}) {
    FailingAppendStore store(failure);
    AuditLedger ledger(&store, subjects.get(), signer.get(), &clock);
    EXPECT_EQ(ledger.Append(in).status().code(), failure.code());
    for (const std::string& who : {in.actor, in.subject}) {
      EXPECT_TRUE(absl::IsNotFound(store.GetSubjectKey(subjects->Locator(who)).status()))
          << failure << ": " << who;
    }
  }
}

TEST_F(LedgerTest, SubjectsAreBoundAsInAppend) {
  const std::string huge(1 << 20, 's');
  for (const std::string& subject :
       {huge, std::string(kMaxIdentifierBytes + 1, 's'), std::string("a\0b", 3)}) {
    absl::Status forget = ledger_.Forget(subject, "dpo", "").status();
    EXPECT_EQ(forget.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(forget.message(), HasSubstr("subject"));
    EXPECT_LT(forget.message().size(), 200u);
    EXPECT_EQ(ledger_.ExportSubject(subject, "dpo", std::nullopt, kMaxPageSize).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(
      ledger_.Forget("carol", "dpo", std::string(kMaxRequestIdBytes + 1, 'r')).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ledger_.Forget(std::string(kMaxIdentifierBytes, 's'), "dpo", "").ok());
}

TEST_F(LedgerTest, SummaryOfAPeriodEndingBeforeItStartsIsInvalid) {
  const absl::Time start = clock_.Now();
  absl::StatusOr<ComplianceSummary> s =
      ledger_.Summarize(kProd, start, start - absl::Seconds(1), "auditor@example.com");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("end_time"));
  EXPECT_TRUE(ledger_.Summarize(kProd, start, start, "auditor@example.com").ok());
}

TEST_F(LedgerTest, SummaryTotalsTheLargestTokensExactly) {
  AppendOk(Call("svc-a", kMaxTokens));
  AppendOk(Call("svc-a", kMaxTokens));
  EXPECT_EQ(ledger_.Append(Call("svc-a", std::numeric_limits<int64_t>::max())).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<ComplianceSummary> s =
      ledger_.Summarize(kProd, std::nullopt, std::nullopt, "auditor@example.com");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->total_tokens, 2 * kMaxTokens);
}

TEST_F(LedgerTest, SummaryCountsThePeriodAndReportsIntegrity) {
  const absl::Time start = clock_.Now();
  AppendOk(Call("svc-a", 100));
  EntryInput violation = Call("svc-a", 0);
  violation.action = Action::kPolicyViolation;
  violation.outcome = Outcome::kBlocked;
  AppendOk(violation);
  AppendOk(Call("svc-b", 50));
  absl::StatusOr<ComplianceSummary> s =
      ledger_.Summarize(kProd, start, std::nullopt, "auditor@example.com");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->total_entries, 3u);
  EXPECT_EQ(s->total_tokens, 150);
  EXPECT_EQ(s->policy_violations, 1u);
  EXPECT_EQ(s->action_breakdown.at("api_call"), 2u);
  EXPECT_EQ(s->period_start, start);
  EXPECT_TRUE(s->integrity.valid);
  EXPECT_EQ(s->integrity.entries_checked, 3u);
  // The summary itself was recorded.
  EXPECT_EQ(store_.Size(kProd).value(), 4u);
}

TEST_F(LedgerTest, SummaryTokensAreTheTokensUsedNotTheEstimatesDecisionsWereAskedAbout) {
  // The edge records a decision with the caller's estimate, then the call's usage (api_call)
  // with the tokens it used: one request, counted once.
  EntryInput allow = Call("svc-a", 100);
  allow.action = Action::kDecisionAllow;
  AppendOk(allow);
  AppendOk(Call("svc-a", 80));
  EntryInput deny = Call("svc-a", 50);
  deny.action = Action::kDecisionDeny;
  deny.outcome = Outcome::kBlocked;
  deny.metadata = {{"reason", "MODEL_NOT_ALLOWED"}};
  AppendOk(deny);  // Refused: nothing was used.
  absl::StatusOr<ComplianceSummary> s =
      ledger_.Summarize(kProd, std::nullopt, std::nullopt, "auditor@example.com");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->total_tokens, 80);
  EXPECT_EQ(s->total_entries, 3u);
}

TEST_F(LedgerTest, SummaryPeriodIsTheEarliestAndLatestTimeWhateverTheOrderOfIndexes) {
  // Two replicas whose clocks differ a little append to one ledger: index order is not time
  // order.
  const absl::Time t = clock_.Now();
  AppendOk(Call("svc-a", 1));  // t
  clock_.Set(t + absl::Seconds(5));
  AppendOk(Call("svc-a", 1));  // t + 5 s
  clock_.Set(t - absl::Seconds(2));
  AppendOk(Call("svc-a", 1));  // t - 2 s
  clock_.Set(t + absl::Seconds(1));
  AppendOk(Call("svc-a", 1));  // t + 1 s
  absl::StatusOr<ComplianceSummary> s =
      ledger_.Summarize(kProd, std::nullopt, std::nullopt, "auditor@example.com");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->period_start, t - absl::Seconds(2));
  EXPECT_EQ(s->period_end, t + absl::Seconds(5));
}

TEST_F(LedgerTest, SummaryCountsDeniesRefusedByPolicyAsViolations) {
  auto deny = [&](const std::string& reason) {
    EntryInput in = Call("svc-a", 10);
    in.action = Action::kDecisionDeny;
    in.outcome = Outcome::kBlocked;
    in.metadata = {{"key_id", "k1"}, {"reason", reason}};
    AppendOk(in);
  };
  for (const char* reason : {"PII_BLOCKED", "MODEL_NOT_ALLOWED", "IP_NOT_ALLOWED",
                             "PERMISSION_DENIED", "NO_COMPLIANT_REGION", "KEY_SCOPE"}) {
    deny(reason);
  }
  deny("RATE_LIMITED");  // Quota, not policy.
  EntryInput allow = Call("svc-a", 10);
  allow.action = Action::kDecisionAllow;
  AppendOk(allow);
  EntryInput violation = Call("svc-a", 0);
  violation.action = Action::kPolicyViolation;
  AppendOk(violation);
  absl::StatusOr<ComplianceSummary> s =
      ledger_.Summarize(kProd, std::nullopt, std::nullopt, "auditor@example.com");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->policy_violations, 7u);
  EXPECT_EQ(s->action_breakdown.at("decision_deny"), 7u);
  EXPECT_EQ(s->denials_by_reason.at("PII_BLOCKED"), 1u);
  EXPECT_EQ(s->denials_by_reason.at("RATE_LIMITED"), 1u);
  EXPECT_EQ(s->denials_by_reason.size(), 7u);
}

TEST_F(LedgerTest, SummarySaysWhereAllowedCallsWentAndWithinWhichResidency) {
  auto allow = [&](const std::string& region, const std::string& residency) {
    EntryInput in = Call("svc-a", 10);
    in.action = Action::kDecisionAllow;
    in.metadata = {{"key_id", "k1"}, {"endpoint", "ep-" + region}, {"region", region}};
    if (!residency.empty()) {
      in.metadata["residency"] = residency;
      in.metadata["data_class"] = "pii";
      in.metadata["api"] = "embeddings";
    }
    AppendOk(in);
  };
  allow("westeurope", "eu");
  allow("westeurope", "eu");
  allow("swedencentral", "eu");
  allow("eastus", "");
  // Two allowed with values a rule let through, one of them recorded malformed in part.
  EntryInput sent = Call("svc-a", 10);
  sent.action = Action::kDecisionAllow;
  sent.metadata = {{"key_id", "k1"}, {"region", "eastus"}, {"pii_allowed", "EMAIL_ADDRESS=2"}};
  AppendOk(sent);
  sent.metadata["pii_allowed"] = "EMAIL_ADDRESS=1,IP_ADDRESS=3,BROKEN,=4,US_SSN=x";
  AppendOk(sent);
  AppendOk(Call("svc-a", 10));  // An api_call: no decision.
  absl::StatusOr<ComplianceSummary> s =
      ledger_.Summarize(kProd, std::nullopt, std::nullopt, "auditor@example.com");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->allowed_by_region, (std::map<std::string, uint64_t>{
                                      {"eastus", 3}, {"swedencentral", 1}, {"westeurope", 2}}));
  EXPECT_EQ(s->allowed_by_residency, (std::map<std::string, uint64_t>{{"eu", 3}, {"none", 3}}));
  EXPECT_EQ(s->allowed_by_data_class,
            (std::map<std::string, uint64_t>{{"pii", 3}, {"unknown", 3}}));
  EXPECT_EQ(s->allowed_by_api,
            (std::map<std::string, uint64_t>{{"chat.completions", 3}, {"embeddings", 3}}));
  EXPECT_EQ(s->pii_allowed_by_type,
            (std::map<std::string, uint64_t>{{"EMAIL_ADDRESS", 3}, {"IP_ADDRESS", 3}}));
  EXPECT_TRUE(s->denials_by_reason.empty());
}

TEST_F(LedgerTest, ReadsOfALedgerThatDoesNotExistCreateNothing) {
  const LedgerRef typo{"proj-prdo", "production"};
  AppendOk(Call("svc-a", 10));
  QuerySpec spec;
  spec.ledger = typo;
  absl::StatusOr<QueryPage> page = ledger_.Query(spec, "auditor@example.com");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(page->entries, IsEmpty());
  EXPECT_FALSE(page->next_index.has_value());
  spec.actor = "svc-a";
  EXPECT_TRUE(ledger_.Query(spec, "auditor@example.com").ok());
  absl::StatusOr<ComplianceSummary> s =
      ledger_.Summarize(typo, std::nullopt, std::nullopt, "auditor@example.com");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->total_entries, 0u);
  EXPECT_TRUE(s->integrity.valid);
  absl::StatusOr<std::vector<RevealedEntry>> exported =
      ledger_.Export(typo, 0, 100, "auditor@example.com", /*record=*/true);
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_THAT(*exported, IsEmpty());
  // Only the ledger written to exists.
  absl::StatusOr<std::vector<LedgerOverview>> ledgers = ledger_.ListLedgers();
  ASSERT_TRUE(ledgers.ok());
  ASSERT_EQ(ledgers->size(), 1u);
  EXPECT_EQ((*ledgers)[0].ledger, kProd);
  EXPECT_EQ(store_.Size(typo).value(), 0u);
  // Reads of a ledger that exists are recorded in it.
  ASSERT_TRUE(ledger_.Export(kProd, 0, 100, "auditor@example.com", true).ok());
  EXPECT_EQ(store_.Size(kProd).value(), 2u);
}

TEST_F(LedgerTest, BatcherCommitsConcurrentAppendsOnceEach) {
  for (int writers : {1, 3}) {
    SCOPED_TRACE(absl::StrCat(writers, " writers"));
    const LedgerRef ledger{absl::StrCat("proj-w", writers), "production"};
    AppendBatcher batcher(&ledger_, 16, 10000, writers);
    constexpr int kThreads = 4, kPerThread = 250;
    std::atomic<int> ok{0}, duplicates{0};
    absl::BlockingCounter done(kThreads * kPerThread * 2);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          // Every request is sent twice, as a client retrying would.
          for (int copy = 0; copy < 2; ++copy) {
            EntryInput in = Call("svc", i, absl::StrCat("t", t, "-", i));
            in.ledger = ledger;
            batcher.Submit(std::move(in), [&](absl::StatusOr<AppendOutcome> out) {
              if (out.ok()) ++(out->duplicate ? duplicates : ok);
              done.DecrementCount();
            });
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    done.Wait();
    EXPECT_EQ(ok.load(), kThreads * kPerThread);
    EXPECT_EQ(duplicates.load(), kThreads * kPerThread);
    EXPECT_EQ(store_.Size(ledger).value(), static_cast<uint64_t>(kThreads * kPerThread));
    EXPECT_TRUE(ledger_.Verify(ledger).value().valid);
  }
}

TEST_F(LedgerTest, BatcherRefusesWhenItsQueueIsFull) {
  // A queue of one behind a writer that is kept busy: some of many submits must be refused.
  AppendBatcher batcher(&ledger_, 1, 1);
  std::atomic<int> refused{0};
  absl::BlockingCounter done(200);
  for (int i = 0; i < 200; ++i) {
    batcher.Submit(Call("svc", i), [&](absl::StatusOr<AppendOutcome> out) {
      if (out.status().code() == absl::StatusCode::kResourceExhausted) ++refused;
      done.DecrementCount();
    });
  }
  done.Wait();
  EXPECT_GT(refused.load(), 0);
  EXPECT_EQ(store_.Size(kProd).value(), static_cast<uint64_t>(200 - refused.load()));
}

TEST_F(LedgerTest, BatcherWritesNothingForACallerWhoseDeadlinePassed) {
  AppendBatcher batcher(&ledger_, 16, 100);
  absl::Notification expired, written;
  absl::Status expired_status;
  batcher.Submit(
      Call("svc", 1, "gave-up"),
      [&](absl::StatusOr<AppendOutcome> out) {
        expired_status = out.status();
        expired.Notify();
      },
      absl::Now() - absl::Milliseconds(1));
  batcher.Submit(
      Call("svc", 2, "waits"),
      [&](absl::StatusOr<AppendOutcome> out) {
        EXPECT_TRUE(out.ok()) << out.status();
        written.Notify();
      },
      absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(expired.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(written.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(expired_status.code(), absl::StatusCode::kDeadlineExceeded) << expired_status;
  EXPECT_THAT(expired_status.message(), HasSubstr("nothing was recorded"));
  EXPECT_EQ(store_.Size(kProd).value(), 1u);
  EXPECT_EQ(ledger_.FindRequest(kProd, "gave-up").status().code(), absl::StatusCode::kNotFound);
}

// A store whose entries and checkpoints past a size can be hidden, as a database restored from
// an older backup (or truncated together with its checkpoints) would show them.
class RollbackStore : public MemoryLedgerStore {
 public:
  void RollBackTo(uint64_t size) { visible_ = size; }

  absl::StatusOr<uint64_t> Size(const LedgerRef& ledger) override {
    ASSIGN_OR_RETURN(uint64_t size, MemoryLedgerStore::Size(ledger));
    return std::min(size, visible_);
  }
  absl::StatusOr<std::vector<LedgerSize>> ListLedgers() override {
    ASSIGN_OR_RETURN(std::vector<LedgerSize> ledgers, MemoryLedgerStore::ListLedgers());
    for (LedgerSize& l : ledgers) l.size = std::min(l.size, visible_);
    return ledgers;
  }
  absl::StatusOr<std::vector<Entry>> ReadRange(const LedgerRef& ledger, uint64_t from,
                                               size_t limit) override {
    if (from >= visible_) return std::vector<Entry>{};
    return MemoryLedgerStore::ReadRange(ledger, from, std::min<uint64_t>(limit, visible_ - from));
  }
  absl::Status ForEachEntry(const LedgerRef& ledger, uint64_t from,
                            const std::function<bool(const Entry&)>& visit) override {
    return LedgerStore::ForEachEntry(ledger, from, visit);  // Through ReadRange.
  }
  absl::StatusOr<Checkpoint> GetCheckpoint(const LedgerRef& ledger, uint64_t tree_size) override {
    if (tree_size > visible_) return absl::NotFoundError("rolled back");
    if (tree_size == 0) {
      ASSIGN_OR_RETURN(std::vector<Checkpoint> all, ListCheckpoints(ledger));
      if (all.empty()) return absl::NotFoundError("no checkpoint");
      return all.back();
    }
    return MemoryLedgerStore::GetCheckpoint(ledger, tree_size);
  }
  absl::StatusOr<std::vector<Checkpoint>> ListCheckpoints(const LedgerRef& ledger) override {
    ASSIGN_OR_RETURN(std::vector<Checkpoint> all, MemoryLedgerStore::ListCheckpoints(ledger));
    std::erase_if(all, [&](const Checkpoint& c) { return c.tree_size > visible_; });
    return all;
  }
  absl::StatusOr<std::vector<Checkpoint>> ListCheckpointsAfter(const LedgerRef& ledger,
                                                               std::optional<uint64_t> after_size,
                                                               size_t limit) override {
    ASSIGN_OR_RETURN(std::vector<Checkpoint> page,
                     MemoryLedgerStore::ListCheckpointsAfter(ledger, after_size, limit));
    std::erase_if(page, [&](const Checkpoint& c) { return c.tree_size > visible_; });
    return page;
  }

 private:
  uint64_t visible_ = std::numeric_limits<uint64_t>::max();
};

TEST(LedgerRollbackTest, TheSignerRemembersWhatItSignedAcrossARollback) {
  auto signer = CheckpointSigner::Create(std::string(32, '\x07')).value();
  auto subjects = SubjectCipher::Create(std::string(32, '\x09')).value();
  FakeClock clock;
  RollbackStore store;
  AuditLedger ledger(&store, subjects.get(), signer.get(), &clock);
  auto append = [&](int n) {
    for (int i = 0; i < n; ++i) {
      EntryInput in;
      in.actor = "svc-a";
      in.ledger = kProd;
      in.request_id = absl::StrCat("req-", store.Size(kProd).value());
      ASSERT_TRUE(ledger.Append(in).ok());
    }
  };
  append(10);
  ASSERT_EQ(ledger.SignCheckpoints().value(), 1);
  append(5);
  ASSERT_EQ(ledger.SignCheckpoints().value(), 1);
  store.RollBackTo(10);
  // Every row and checkpoint left agrees with every other: only the remembered head differs.
  std::vector<LedgerOverview> overview;
  const absl::StatusOr<int> signed_count = ledger.SignCheckpoints(&overview);
  EXPECT_EQ(signed_count.status().code(), absl::StatusCode::kDataLoss);
  ASSERT_EQ(overview.size(), 1u);
  EXPECT_THAT(overview[0].refused,
              HasSubstr("it holds 10 entries, fewer than the head this audit process signed or "
                        "saw signed (size 15"));
  const IntegrityReport r = ledger.Verify(kProd).value();
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 10u);
  EXPECT_THAT(r.problem, HasSubstr("the head this audit process signed or saw signed"));
  // A process that remembers nothing cannot tell (docs/audit.md: what the ledger guarantees).
  AuditLedger restarted(&store, subjects.get(), signer.get(), &clock);
  EXPECT_TRUE(restarted.Verify(kProd).value().valid);
}

TEST_F(LedgerTest, AnEntryWithoutTheServicesMacIsNotSigned) {
  AppendOk(Call("alice@example.com", 1));
  ASSERT_EQ(ledger_.SignCheckpoints().value(), 1);
  AppendOk(Call("alice@example.com", 2));
  // Written by someone without the key.
  store_.AuthenticateWith(std::make_shared<const EntryAuthenticator>(std::string(32, '\x01')));
  AppendOk(Call("mallory@example.com", 3));
  std::vector<LedgerOverview> overview;
  EXPECT_EQ(ledger_.SignCheckpoints(&overview).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(overview[0].refused, HasSubstr("entry 2: its MAC is not the audit service's"));
  EXPECT_EQ(store_.GetCheckpoint(kProd, 0).value().tree_size, 1u);
  IntegrityReport r = ledger_.Verify(kProd).value();
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 2u);
  store_.AuthenticateWith(nullptr);
  AppendOk(Call("mallory@example.com", 4));
  r = ledger_.Verify(kProd).value();
  EXPECT_EQ(r.first_bad_index, 2u);
}

// Signing-key rotation: a ledger signed under key A is continued under key B, with A's public
// key among the previous keys.
class RotationTest : public ::testing::Test {
 protected:
  RotationTest()
      : a_(CheckpointSigner::Create(std::string(32, '\x07')).value()),
        b_(CheckpointSigner::Create(std::string(32, '\x08')).value()),
        subjects_(SubjectCipher::Create(std::string(32, '\x09')).value()) {}

  void Append(AuditLedger& ledger, int n) {
    for (int i = 0; i < n; ++i) {
      EntryInput in;
      in.action = Action::kApiCall;
      in.actor = "svc-a";
      in.ledger = kProd;
      in.request_id = absl::StrCat("req-", store_.Size(kProd).value());
      ASSERT_TRUE(ledger.Append(in).ok());
    }
  }

  FakeClock clock_;
  MemoryLedgerStore store_;
  std::unique_ptr<CheckpointSigner> a_, b_;
  std::unique_ptr<SubjectCipher> subjects_;
};

TEST_F(RotationTest, ALedgerSignedUnderAnEarlierKeyIsContinuedAndVerifies) {
  {
    AuditLedger under_a(&store_, subjects_.get(), a_.get(), &clock_);
    Append(under_a, 5);
    ASSERT_EQ(under_a.SignCheckpoints().value(), 1);
    Append(under_a, 3);  // Not signed before the rotation.
  }
  AuditLedger under_b(&store_, subjects_.get(), b_.get(), &clock_, {a_->public_key()});
  IntegrityReport r = under_b.Verify(kProd).value();
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.checkpoints_by_key, (std::map<std::string, uint64_t>{{a_->key_id(), 1}}));
  // B signs over what A signed, and goes on.
  ASSERT_EQ(under_b.SignCheckpoints().value(), 1);
  EXPECT_EQ(store_.GetCheckpoint(kProd, 0).value().key_id, b_->key_id());
  Append(under_b, 2);
  ASSERT_EQ(under_b.SignCheckpoints().value(), 1);
  r = under_b.Verify(kProd).value();
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.entries_checked, 10u);
  EXPECT_EQ(r.checkpoints_by_key,
            (std::map<std::string, uint64_t>{{a_->key_id(), 1}, {b_->key_id(), 2}}));
  // Proofs across the rotation: an entry A signed, against B's newest checkpoint, and B's tree
  // consistent with A's.
  absl::StatusOr<InclusionProof> p = under_b.ProveInclusion(kProd, 2, "", 0);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(VerifyInclusion(EntryLeafHash(p->entry), 2, 10, p->proof, p->checkpoint.root));
  absl::StatusOr<ConsistencyProof> c = under_b.ProveConsistency(kProd, 5, 0);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->from.has_value());
  EXPECT_TRUE(VerifyCheckpoint(*c->from, a_->public_key()));
  EXPECT_TRUE(VerifyCheckpoint(c->to, b_->public_key()));
  EXPECT_TRUE(VerifyConsistency(5, 10, c->from->root, c->to.root, c->proof));
  // A process that does not trust A any more: INVALID, naming A's key id.
  AuditLedger b_only(&store_, subjects_.get(), b_.get(), &clock_);
  r = b_only.Verify(kProd).value();
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 0u);
  EXPECT_THAT(r.problem, HasSubstr(absl::StrCat("the checkpoint of size 5 does not carry a valid "
                                                "signature of a trusted key: it names signing key ",
                                                a_->key_id(), ", an unknown key")));
}

TEST_F(RotationTest, WithoutTheEarlierKeyTheLedgerIsInvalidAndNotContinued) {
  {
    AuditLedger under_a(&store_, subjects_.get(), a_.get(), &clock_);
    Append(under_a, 5);
    ASSERT_EQ(under_a.SignCheckpoints().value(), 1);
  }
  AuditLedger under_b(&store_, subjects_.get(), b_.get(), &clock_);
  Append(under_b, 1);
  const IntegrityReport r = under_b.Verify(kProd).value();
  EXPECT_FALSE(r.valid);
  EXPECT_THAT(r.problem,
              HasSubstr(absl::StrCat("it names signing key ", a_->key_id(),
                                     ", an unknown key (trusted: ", b_->key_id(), " (current))")));
  std::vector<LedgerOverview> overview;
  EXPECT_EQ(under_b.SignCheckpoints(&overview).status().code(), absl::StatusCode::kDataLoss);
  ASSERT_EQ(overview.size(), 1u);
  EXPECT_THAT(overview[0].refused, HasSubstr(a_->key_id()));
  EXPECT_EQ(store_.GetCheckpoint(kProd, 0).value().key_id, a_->key_id());
}

TEST_F(RotationTest, ACheckpointForgedWithAnUnknownKeyIsInvalid) {
  AuditLedger under_b(&store_, subjects_.get(), b_.get(), &clock_, {a_->public_key()});
  Append(under_b, 4);
  ASSERT_EQ(under_b.SignCheckpoints().value(), 1);
  Append(under_b, 2);
  // Someone holding neither key signs the true root of 6 entries.
  auto forger = CheckpointSigner::Create(std::string(32, '\x0f')).value();
  std::vector<Hash> leaves;
  const std::vector<Entry> stored = store_.ReadRange(kProd, 0, 6).value();
  for (const Entry& e : stored) leaves.push_back(e.leaf_hash);
  ASSERT_TRUE(
      store_.AddCheckpoint(forger->Sign(kProd, 6, RootOf(leaves), clock_.Now()).value()).ok());
  AuditLedger restarted(&store_, subjects_.get(), b_.get(), &clock_, {a_->public_key()});
  const IntegrityReport r = restarted.Verify(kProd).value();
  EXPECT_FALSE(r.valid);
  EXPECT_THAT(r.problem, HasSubstr(absl::StrCat("the checkpoint of size 6 does not carry a valid "
                                                "signature of a trusted key: it names signing key ",
                                                forger->key_id(), ", an unknown key")));
  Append(restarted, 1);
  std::vector<LedgerOverview> overview;
  EXPECT_EQ(restarted.SignCheckpoints(&overview).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(overview[0].refused, HasSubstr(forger->key_id()));
}

// Someone holding the retired key A and write access to the database appends entries with
// MACs of their own (under the MAC key releases before rotation derived from A) and signs a
// checkpoint of A past B's: neither the verifier nor the signer takes it as vouching for them.
TEST_F(RotationTest, ACheckpointOfTheRetiredKeyPastTheCurrentKeysVouchesForNothing) {
  {
    AuditLedger under_a(&store_, subjects_.get(), a_.get(), &clock_);
    Append(under_a, 5);
    ASSERT_EQ(under_a.SignCheckpoints().value(), 1);
  }
  {
    AuditLedger under_b(&store_, subjects_.get(), b_.get(), &clock_, {a_->public_key()});
    Append(under_b, 3);
    ASSERT_EQ(under_b.SignCheckpoints().value(), 1);
  }
  AuditLedger forger(&store_, subjects_.get(), b_.get(), &clock_, {a_->public_key()});
  store_.AuthenticateWith(
      std::make_shared<const EntryAuthenticator>(a_->DeriveKey(kLegacyEntryMacLabel)));
  Append(forger, 4);
  std::vector<Hash> leaves;
  const std::vector<Entry> stored = store_.ReadRange(kProd, 0, 12).value();
  for (const Entry& e : stored) leaves.push_back(e.leaf_hash);
  ASSERT_TRUE(store_.AddCheckpoint(a_->Sign(kProd, 12, RootOf(leaves), clock_.Now()).value()).ok());

  AuditLedger restarted(&store_, subjects_.get(), b_.get(), &clock_, {a_->public_key()});
  const IntegrityReport r = restarted.Verify(kProd).value();
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 8u);
  EXPECT_THAT(r.problem, HasSubstr(absl::StrCat("the checkpoint of size 12 was signed by earlier "
                                                "key ",
                                                a_->key_id(), " after the current key ",
                                                b_->key_id(), " took over")));
  // The service's own entry after them: the signer does not continue from A's checkpoint.
  Append(restarted, 1);  // Still under the forger's MAC key: append through the service.
  store_.AuthenticateWith(nullptr);
  AuditLedger service(&store_, subjects_.get(), b_.get(), &clock_, {a_->public_key()});
  Append(service, 1);
  std::vector<LedgerOverview> overview;
  EXPECT_EQ(service.SignCheckpoints(&overview).status().code(), absl::StatusCode::kDataLoss);
  ASSERT_EQ(overview.size(), 1u);
  EXPECT_THAT(overview[0].refused, HasSubstr("entry 8: its MAC is not the audit service's"));
  EXPECT_THAT(overview[0].refused, HasSubstr(absl::StrCat("was signed by key ", a_->key_id(),
                                                          " after this key signed one of size 8")));
  EXPECT_EQ(store_.GetCheckpoint(kProd, 0).value().tree_size, 12u);
  // Nor does it prove a forged entry against A's checkpoint.
  EXPECT_EQ(service.ProveInclusion(kProd, 9, "", 12).status().code(), absl::StatusCode::kDataLoss);
}

// The rollout that switches A for B: replicas of either configuration run side by side and
// sign in turn. Each checks the entries since its own newest checkpoint when the other's is
// newer, and the ledger verifies once B's checkpoint is the largest.
TEST_F(RotationTest, ReplicasOfBothKeysDuringTheRolloutSignInTurn) {
  AuditLedger old_replica(&store_, subjects_.get(), a_.get(), &clock_,
                          {a_->public_key(), b_->public_key()});
  AuditLedger new_replica(&store_, subjects_.get(), b_.get(), &clock_, {a_->public_key()});
  Append(old_replica, 5);
  ASSERT_EQ(old_replica.SignCheckpoints().value(), 1);
  Append(new_replica, 1);
  ASSERT_EQ(new_replica.SignCheckpoints().value(), 1);
  Append(old_replica, 2);
  ASSERT_EQ(old_replica.SignCheckpoints().value(), 1);  // A signs after B took over: late.
  Append(new_replica, 1);
  ASSERT_EQ(new_replica.SignCheckpoints().value(), 1);
  IntegrityReport r = new_replica.Verify(kProd).value();
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.checkpoints_by_key,
            (std::map<std::string, uint64_t>{{a_->key_id(), 2}, {b_->key_id(), 2}}));
  // A's late checkpoint over an entry that is not the service's: the signer refuses.
  store_.AuthenticateWith(
      std::make_shared<const EntryAuthenticator>(a_->DeriveKey(kLegacyEntryMacLabel)));
  Append(new_replica, 1);
  store_.AuthenticateWith(nullptr);
  std::vector<Hash> leaves;
  const std::vector<Entry> stored = store_.ReadRange(kProd, 0, 10).value();
  for (const Entry& e : stored) leaves.push_back(e.leaf_hash);
  ASSERT_TRUE(store_.AddCheckpoint(a_->Sign(kProd, 10, RootOf(leaves), clock_.Now()).value()).ok());
  AuditLedger restarted(&store_, subjects_.get(), b_.get(), &clock_, {a_->public_key()});
  Append(restarted, 1);
  std::vector<LedgerOverview> overview;
  EXPECT_EQ(restarted.SignCheckpoints(&overview).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(overview[0].refused, HasSubstr("entry 9: its MAC is not the audit service's"));
  r = restarted.Verify(kProd).value();
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 9u);
}

// Entries of earlier releases carry MACs under a key derived from the signing key: after a
// rotation the service cannot check them, and accepts them where a checkpoint of the earlier
// key covers them.
TEST_F(RotationTest, EntriesWithMacsOfTheEarlierSigningKeyVerifyWhereItsCheckpointsCoverThem) {
  {
    AuditLedger under_a(&store_, subjects_.get(), a_.get(), &clock_);
    store_.AuthenticateWith(
        std::make_shared<const EntryAuthenticator>(a_->DeriveKey(kLegacyEntryMacLabel)));
    Append(under_a, 5);
    ASSERT_EQ(under_a.SignCheckpoints().value(), 1);  // A still checks its own legacy MACs.
    Append(under_a, 1);                               // Not covered at the rotation.
  }
  AuditLedger under_b(&store_, subjects_.get(), b_.get(), &clock_, {a_->public_key()});
  IntegrityReport r = under_b.Verify(kProd).value();
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 5u);
  EXPECT_THAT(r.problem, HasSubstr("entry 5: its MAC is not the audit service's"));
  std::vector<LedgerOverview> overview;
  EXPECT_EQ(under_b.SignCheckpoints(&overview).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(overview[0].refused, HasSubstr("entry 5: its MAC is not the audit service's"));
  // A ledger whose whole history A signed is sound, and continued.
  MemoryLedgerStore signed_by_a;
  {
    AuditLedger under_a(&signed_by_a, subjects_.get(), a_.get(), &clock_);
    signed_by_a.AuthenticateWith(
        std::make_shared<const EntryAuthenticator>(a_->DeriveKey(kLegacyEntryMacLabel)));
    for (int i = 0; i < 5; ++i) {
      EntryInput in;
      in.actor = "svc-a";
      in.ledger = kProd;
      ASSERT_TRUE(under_a.Append(in).ok());
    }
    ASSERT_EQ(under_a.SignCheckpoints().value(), 1);
  }
  AuditLedger again(&signed_by_a, subjects_.get(), b_.get(), &clock_, {a_->public_key()});
  r = again.Verify(kProd).value();
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.entries_checked, 5u);
  EXPECT_TRUE(again.ProveInclusion(kProd, 3, "", 0).ok());
  EntryInput in;
  in.actor = "svc-b";
  in.ledger = kProd;
  ASSERT_TRUE(again.Append(in).ok());
  ASSERT_EQ(again.SignCheckpoints().value(), 1);
  r = again.Verify(kProd).value();
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.checkpoints_by_key,
            (std::map<std::string, uint64_t>{{a_->key_id(), 1}, {b_->key_id(), 1}}));
  // The same ledger without A trusted: its MACs cannot vouch for it either.
  AuditLedger b_only(&signed_by_a, subjects_.get(), b_.get(), &clock_);
  EXPECT_FALSE(b_only.Verify(kProd).value().valid);
  EXPECT_EQ(b_only.ProveInclusion(kProd, 3, "", 5).status().code(), absl::StatusCode::kDataLoss);
}

// A memory store that counts the checkpoints and entries each read hands out.
class CountingStore : public MemoryLedgerStore {
 public:
  absl::StatusOr<std::vector<Checkpoint>> ListCheckpoints(const LedgerRef& ledger) override {
    absl::StatusOr<std::vector<Checkpoint>> out = MemoryLedgerStore::ListCheckpoints(ledger);
    if (out.ok()) Note(max_checkpoints_read, out->size());
    return out;
  }
  absl::StatusOr<std::vector<Checkpoint>> ListCheckpointsAfter(const LedgerRef& ledger,
                                                               std::optional<uint64_t> after_size,
                                                               size_t limit) override {
    absl::StatusOr<std::vector<Checkpoint>> out =
        MemoryLedgerStore::ListCheckpointsAfter(ledger, after_size, limit);
    if (out.ok()) Note(max_checkpoints_read, out->size());
    return out;
  }
  absl::StatusOr<std::vector<Entry>> Query(const EntryFilter& filter) override {
    absl::StatusOr<std::vector<Entry>> out = MemoryLedgerStore::Query(filter);
    if (out.ok()) Note(max_entries_queried, out->size());
    return out;
  }
  absl::StatusOr<std::vector<Entry>> ReadRange(const LedgerRef& ledger, uint64_t from,
                                               size_t limit) override {
    absl::StatusOr<std::vector<Entry>> out = MemoryLedgerStore::ReadRange(ledger, from, limit);
    if (out.ok()) Note(max_entries_read, out->size());
    return out;
  }

  std::atomic<size_t> max_checkpoints_read{0};
  std::atomic<size_t> max_entries_read{0};     // By ReadRange.
  std::atomic<size_t> max_entries_queried{0};  // By Query.

 private:
  static void Note(std::atomic<size_t>& max, size_t n) {
    size_t seen = max.load();
    while (n > seen && !max.compare_exchange_weak(seen, n)) {
    }
  }
};

// A ledger of many checkpoints (one per entry, as a busy ledger gathers them): verification
// and summaries hold a bounded page of them at a time, whatever their number.
class ManyCheckpointsTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kEntries = 2500;

  ManyCheckpointsTest()
      : a_(CheckpointSigner::Create(std::string(32, '\x07')).value()),
        b_(CheckpointSigner::Create(std::string(32, '\x08')).value()),
        subjects_(SubjectCipher::Create(std::string(32, '\x09')).value()) {}

  // Appends kEntries entries through `ledger`, then stores a checkpoint of each size for which
  // `signer_of` names a signer.
  void Fill(AuditLedger& ledger,
            const std::function<const CheckpointSigner*(uint64_t)>& signer_of) {
    std::vector<EntryInput> inputs;
    for (uint64_t i = 0; i < kEntries; ++i) {
      EntryInput in;
      in.action = Action::kApiCall;
      in.actor = absl::StrCat("svc-", i % 7);
      in.ledger = kProd;
      in.tokens = 1;
      in.request_id = absl::StrCat("req-", i);
      inputs.push_back(std::move(in));
    }
    for (size_t from = 0; from < inputs.size(); from += 500) {
      const size_t n = std::min<size_t>(500, inputs.size() - from);
      ASSERT_TRUE(ledger.AppendBatch(absl::MakeConstSpan(inputs).subspan(from, n)).ok());
    }
    const std::vector<Entry> entries = store_.ReadRange(kProd, 0, kEntries).value();
    ASSERT_EQ(entries.size(), kEntries);
    CompactTree tree;
    for (const Entry& e : entries) {
      tree.Append(e.leaf_hash);
      if (const CheckpointSigner* signer = signer_of(tree.size()); signer != nullptr) {
        ASSERT_TRUE(
            store_
                .AddCheckpoint(signer->Sign(kProd, tree.size(), tree.Root(), clock_.Now()).value())
                .ok());
      }
    }
    store_.max_checkpoints_read = 0;
    store_.max_entries_read = 0;
  }

  FakeClock clock_;
  CountingStore store_;
  std::unique_ptr<CheckpointSigner> a_, b_;
  std::unique_ptr<SubjectCipher> subjects_;
};

TEST_F(ManyCheckpointsTest, VerifyAndSummaryReadABoundedPageOfCheckpointsAndEntries) {
  AuditLedger ledger(&store_, subjects_.get(), a_.get(), &clock_);
  Fill(ledger, [&](uint64_t) { return a_.get(); });
  IntegrityReport r = ledger.Verify(kProd).value();
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.entries_checked, kEntries);
  EXPECT_EQ(r.checkpoints_checked, kEntries);
  // Again, the newest checkpoint now the remembered head.
  r = ledger.Verify(kProd).value();
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.checkpoints_checked, kEntries);
  EXPECT_LE(store_.max_checkpoints_read, LedgerVerifier::kCheckpointPage);
  EXPECT_LE(store_.max_entries_read, 5000u);

  store_.max_checkpoints_read = 0;
  store_.max_entries_read = 0;
  absl::StatusOr<ComplianceSummary> s = ledger.Summarize(kProd, std::nullopt, std::nullopt, "a");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->total_entries, kEntries);
  EXPECT_EQ(s->total_tokens, static_cast<int64_t>(kEntries));
  EXPECT_TRUE(s->integrity.valid) << s->integrity.problem;
  EXPECT_EQ(s->integrity.checkpoints_checked, kEntries);
  EXPECT_LE(store_.max_checkpoints_read, LedgerVerifier::kCheckpointPage);
  EXPECT_LE(store_.max_entries_read, 5000u);
  EXPECT_LE(store_.max_entries_queried, kMaxPageSize);
}

TEST_F(ManyCheckpointsTest, KeyOrderIsCheckedAcrossPages) {
  // Key A signs up to 1200, then B (current) up to 2300, with A's late checkpoints among B's
  // (harmless: B's next one covers them) and one past B's largest: the ledger is INVALID
  // from 2300 on.
  AuditLedger under_b(&store_, subjects_.get(), b_.get(), &clock_, {a_->public_key()});
  Fill(under_b, [&](uint64_t size) -> const CheckpointSigner* {
    if (size <= 1200) return a_.get();
    if (size <= 2300) return size % 100 == 50 ? a_.get() : b_.get();
    return size == 2400 ? a_.get() : nullptr;
  });
  IntegrityReport r = under_b.Verify(kProd).value();
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 2300u);
  EXPECT_THAT(r.problem,
              HasSubstr(absl::StrCat("the checkpoint of size 2400 was signed by earlier "
                                     "key ",
                                     a_->key_id(), " after the current key ", b_->key_id(),
                                     " took over (its smallest "
                                     "checkpoint has size 1201) and goes "
                                     "beyond the current key's largest "
                                     "(size 2300)")));
  EXPECT_EQ(r.checkpoints_by_key[a_->key_id()], 1200u + 11u);
  EXPECT_EQ(r.checkpoints_by_key[b_->key_id()], 1100u - 11u);
  EXPECT_LE(store_.max_checkpoints_read, LedgerVerifier::kCheckpointPage);
}

TEST_F(ManyCheckpointsTest, SigningAfterALateCheckpointReadsABoundedPageToo) {
  // The newest checkpoint (2450) is a late one of the retired key A: the signer resumes from
  // B's own largest below it (2300), found a page at a time, and signs the entries since.
  AuditLedger under_b(&store_, subjects_.get(), b_.get(), &clock_, {a_->public_key()});
  Fill(under_b, [&](uint64_t size) -> const CheckpointSigner* {
    if (size <= 1200) return a_.get();
    if (size <= 2300) return b_.get();
    return size == 2450 ? a_.get() : nullptr;
  });
  std::vector<LedgerOverview> signed_ledgers;
  ASSERT_TRUE(under_b.SignCheckpoints(&signed_ledgers).ok());
  ASSERT_EQ(signed_ledgers.size(), 1u);
  ASSERT_TRUE(signed_ledgers[0].latest_checkpoint.has_value());
  EXPECT_EQ(signed_ledgers[0].latest_checkpoint->tree_size, kEntries);
  EXPECT_EQ(signed_ledgers[0].latest_checkpoint->key_id, b_->key_id());
  EXPECT_LE(store_.max_checkpoints_read, LedgerVerifier::kCheckpointPage);
}

}  // namespace
}  // namespace policy::audit
