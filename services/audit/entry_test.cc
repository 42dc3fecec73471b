#include "services/audit/entry.h"

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::audit {
namespace {

using ::testing::HasSubstr;

EntryInput ValidInput() {
  EntryInput in;
  in.action = Action::kApiCall;
  in.actor = "svc-chatbot-prod";
  in.ledger = LedgerRef{"proj-prod", "production"};
  in.model = "gpt-4.1";
  in.tokens = 1250;
  in.latency = absl::Microseconds(340500);
  in.metadata = {{"endpoint", "eu-west"}};
  in.content_hash = std::string(32, '\x11');
  in.request_id = "req-1";
  return in;
}

Entry SampleEntry() {
  Entry e;
  e.ledger = LedgerRef{"proj-prod", "production"};
  e.index = 7;
  e.time = absl::FromUnixMicros(1'800'000'000'123'456);
  e.action = Action::kPiiDetected;
  e.actor = SealedSubject{std::string(32, 'a'), "sealed-actor"};
  e.model = "gpt-4.1";
  e.tokens = 12;
  e.latency = absl::Microseconds(1500);
  e.outcome = Outcome::kBlocked;
  e.metadata = {{"pattern", "US_SSN"}, {"action", "redacted"}};
  e.content_hash = std::string(32, 'c');
  e.request_id = "r-7";
  e.subject = SealedSubject{std::string(32, 's'), "sealed-subject"};
  return e;
}

TEST(ActionTest, NamesRoundTrip) {
  for (int i = 0; i < kActionCount; ++i) {
    const Action a = static_cast<Action>(i);
    ASSERT_EQ(ActionFromName(ActionName(a)), a) << i;
  }
  EXPECT_EQ(ActionName(Action::kFallbackTriggered), "fallback_triggered");
  EXPECT_FALSE(ActionFromName("delete_everything").has_value());
}

TEST(ValidateEntryInputTest, AcceptsAValidEntryAndTheOrganisationLedger) {
  EXPECT_TRUE(ValidateEntryInput(ValidInput()).ok());
  EntryInput org = ValidInput();
  org.ledger = LedgerRef{};
  EXPECT_TRUE(ValidateEntryInput(org).ok());
}

TEST(ValidateEntryInputTest, NamesTheBadField) {
  struct Case {
    std::function<void(EntryInput&)> spoil;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](EntryInput& e) { e.actor.clear(); }, "entry.actor"},
      {[](EntryInput& e) { e.actor = std::string(300, 'x'); }, "entry.actor"},
      {[](EntryInput& e) { e.actor = "\xff\xfe"; }, "entry.actor"},
      {[](EntryInput& e) { e.ledger.environment = "prod"; }, "entry.environment"},
      {[](EntryInput& e) { e.ledger.project = "Proj Prod"; }, "entry.project"},
      {[](EntryInput& e) {
         e.ledger = LedgerRef{"", "production"};
       },
       "entry.environment"},
      {[](EntryInput& e) { e.ledger.project = std::string(65, 'p'); }, "entry.project"},
      {[](EntryInput& e) { e.tokens = -1; }, "entry.tokens"},
      {[](EntryInput& e) { e.tokens = kMaxTokens + 1; }, "entry.tokens"},
      {[](EntryInput& e) { e.tokens = std::numeric_limits<int64_t>::max(); }, "entry.tokens"},
      {[](EntryInput& e) { e.latency = kMaxLatency + absl::Microseconds(1); }, "entry.latency"},
      {[](EntryInput& e) { e.latency = absl::Microseconds(-1); }, "entry.latency"},
      {[](EntryInput& e) { e.metadata["Bad Key"] = "v"; }, "entry.metadata"},
      {[](EntryInput& e) { e.metadata["k"] = std::string(2000, 'v'); }, "entry.metadata[\"k\"]"},
      {[](EntryInput& e) {
         for (int i = 0; i < 40; ++i) e.metadata.emplace(absl::StrCat("k", i), "v");
       },
       "entry.metadata"},
      {[](EntryInput& e) { e.content_hash = "abc"; }, "entry.content_hash"},
      {[](EntryInput& e) { e.request_id = "has space"; }, "entry.request_id"},
      {[](EntryInput& e) { e.subject = std::string("a\0b", 3); }, "entry.subject"},
  };
  for (const Case& c : cases) {
    EntryInput in = ValidInput();
    c.spoil(in);
    absl::Status s = ValidateEntryInput(in);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(s.message(), HasSubstr(c.field)) << s.message();
  }
}

TEST(ValidateEntryInputTest, TakesTheLargestTokensAndLatency) {
  EntryInput in = ValidInput();
  in.tokens = kMaxTokens;
  in.latency = kMaxLatency;
  EXPECT_TRUE(ValidateEntryInput(in).ok());
}

TEST(ValidateLedgerTest, ProjectsFollowTheOneProjectIdRule) {
  EXPECT_TRUE(ValidateLedger({"support-eu", "production"}, "ledger").ok());
  EXPECT_TRUE(ValidateLedger({std::string(64, 'a'), "sandbox"}, "ledger").ok());
  for (const char* project : {"ML.Platform", "Probe-1", "a:b"}) {
    absl::Status s = ValidateLedger({project, "production"}, "ledger");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << project;
    EXPECT_THAT(s.message(), HasSubstr("ledger.project: ")) << project;
  }
  // A long value is not echoed whole.
  absl::Status s = ValidateLedger({"support-eu", std::string(1 << 20, 'e')}, "ledger");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(s.message().size(), 200u);
}

TEST(EncodeLeafDataTest, EveryFieldChangesTheLeaf) {
  const Entry base = SampleEntry();
  const Hash leaf = EntryLeafHash(base);
  EXPECT_EQ(EntryLeafHash(SampleEntry()), leaf);
  const std::vector<std::function<void(Entry&)>> changes = {
      [](Entry& e) { e.ledger.project = "proj-dev"; },
      [](Entry& e) { e.ledger.environment = "staging"; },
      [](Entry& e) { e.index = 8; },
      [](Entry& e) { e.time += absl::Microseconds(1); },
      [](Entry& e) { e.action = Action::kApiCall; },
      [](Entry& e) { e.actor.ref[0] = 'b'; },
      [](Entry& e) { e.actor.sealed += "x"; },
      [](Entry& e) { e.model = "gpt-4.1-mini"; },
      [](Entry& e) { e.tokens = 13; },
      [](Entry& e) { e.latency += absl::Microseconds(1); },
      [](Entry& e) { e.outcome = Outcome::kError; },
      [](Entry& e) { e.metadata["pattern"] = "CREDIT_CARD"; },
      [](Entry& e) { e.metadata["extra"] = ""; },
      [](Entry& e) { e.content_hash[5] = 'd'; },
      [](Entry& e) { e.request_id = "r-8"; },
      [](Entry& e) { e.subject = SealedSubject{}; },
      // Moving bytes between adjacent fields must not give the same encoding.
      [](Entry& e) {
        e.model = "gpt-4.1g";
        e.request_id = "r-7";
      },
  };
  for (size_t i = 0; i < changes.size(); ++i) {
    Entry changed = SampleEntry();
    changes[i](changed);
    EXPECT_NE(EntryLeafHash(changed), leaf) << "change " << i;
  }
  // The stored hashes are not part of the leaf.
  Entry with_hashes = SampleEntry();
  with_hashes.completed.push_back(Hash{});
  EXPECT_EQ(EntryLeafHash(with_hashes), leaf);
}

TEST(MetadataTest, RoundTripsAndRejectsGarbage) {
  const Metadata m = {{"a", "1"}, {"b", ""}, {"c", std::string("x\ny")}};
  absl::StatusOr<Metadata> back = DecodeMetadata(EncodeMetadata(m));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, m);
  EXPECT_EQ(DecodeMetadata("garbage").status().code(), absl::StatusCode::kDataLoss);
  std::string truncated = EncodeMetadata(m);
  truncated.pop_back();
  EXPECT_EQ(DecodeMetadata(truncated).status().code(), absl::StatusCode::kDataLoss);
}

TEST(HashesTest, RoundTripAndRejectPartialHashes) {
  std::vector<Hash> hashes(3);
  hashes[1].fill('\x42');
  absl::StatusOr<std::vector<Hash>> back = DecodeHashes(EncodeHashes(hashes));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, hashes);
  EXPECT_EQ(DecodeHashes(std::string(33, 'x')).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace policy::audit
