#include "services/region/endpoint_change.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::region {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

Endpoint Us() {
  Endpoint e;
  e.id = "openai-us";
  e.region = "us-east-1";
  e.provider = Provider::kOpenAi;
  e.base_url = "https://api.openai.com";
  e.residency = Residency::kUs;
  e.models = {"o3"};
  e.enabled = false;
  return e;
}

TEST(EndpointChangeTest, AnActorIsRequiredBoundedText) {
  EXPECT_TRUE(ValidateActor("alice").ok());
  EXPECT_TRUE(ValidateActor(std::string(kMaxActorBytes, 'a')).ok());
  EXPECT_TRUE(ValidateActor("zoë@example.com").ok());
  for (const std::string& bad :
       {std::string(), std::string(kMaxActorBytes + 1, 'a'), std::string("a\0b", 3),
        std::string("\xff"), std::string("a\nb"), std::string("a\x1b[31m")}) {
    absl::Status s = ValidateActor(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad.size();
    EXPECT_THAT(std::string(s.message()), ::testing::StartsWith("actor: "));
  }
  EXPECT_THAT(std::string(ValidateActor("").message()), HasSubstr("required"));
  EXPECT_EQ(ValidateActor(std::string("a\0b", 3)).message(),
            "actor: must be UTF-8 text without control characters");
  EXPECT_THAT(std::string(ValidateActor(std::string(kMaxActorBytes + 1, 'a')).message()),
              HasSubstr("longer than 128 bytes"));
}

TEST(EndpointChangeTest, ResidenciesAreNamedAsTheLedgerHasThem) {
  EXPECT_EQ(LedgerResidencyName(Residency::kEu), "RESIDENCY_EU");
  EXPECT_EQ(LedgerResidencyName(Residency::kUs), "RESIDENCY_US");
  EXPECT_EQ(LedgerResidencyName(Residency::kApac), "RESIDENCY_APAC");
  EXPECT_EQ(LedgerResidencyName(Residency::kGlobal), "RESIDENCY_GLOBAL");
}

TEST(EndpointChangeTest, RecordsNameTheChangeTheEndpointAndTheActor) {
  const ledger::LedgerRecord created = EndpointCreatedRecord(Us(), "alice").value();
  EXPECT_EQ(created.action, "ENDPOINT_CHANGED");
  EXPECT_EQ(created.actor, "alice");
  EXPECT_EQ(created.project, "");
  EXPECT_EQ(created.environment, "");
  EXPECT_EQ(created.subject, "");
  EXPECT_THAT(created.metadata,
              UnorderedElementsAre(Pair("change", "created"), Pair("endpoint", "openai-us"),
                                   Pair("region", "us-east-1"), Pair("residency", "RESIDENCY_US"),
                                   Pair("enabled", "false")));
  Endpoint enabled = Us();
  enabled.enabled = true;
  EXPECT_THAT(EndpointUpdatedRecord(Us(), enabled, "bob").value().metadata,
              UnorderedElementsAre(Pair("change", "updated"), Pair("endpoint", "openai-us"),
                                   Pair("region", "us-east-1"), Pair("residency", "RESIDENCY_US"),
                                   Pair("enabled", "true"), Pair("fields", "enabled")));
  const ledger::LedgerRecord deleted = EndpointDeletedRecord("openai-us", "carol").value();
  EXPECT_EQ(deleted.actor, "carol");
  EXPECT_THAT(deleted.metadata,
              UnorderedElementsAre(Pair("change", "deleted"), Pair("endpoint", "openai-us")));
}

TEST(EndpointChangeTest, ChangedFieldsAreNamedInTheProtosOrder) {
  EXPECT_EQ(ChangedEndpointFields(Us(), Us()), "");
  Endpoint other = Us();
  other.weight = 5;
  other.capabilities.cached = true;
  other.base_url = "https://eu.api.openai.com";
  other.models = {"o3", "gpt-4o"};
  EXPECT_EQ(ChangedEndpointFields(Us(), other), "base_url,capabilities.cached,models,weight");
  EXPECT_EQ(ChangedEndpointFields(other, Us()), "base_url,capabilities.cached,models,weight");
  other = Us();
  other.id = "openai-us-2";
  other.provider = Provider::kAzure;
  other.deployment = "d";
  other.priority = 2;
  EXPECT_EQ(ChangedEndpointFields(Us(), other), "id,provider,deployment,priority");
}

TEST(EndpointChangeTest, EachRecordHasARequestIdOfItsOwn) {
  const std::string a = EndpointCreatedRecord(Us(), "alice").value().request_id;
  const std::string b = EndpointCreatedRecord(Us(), "alice").value().request_id;
  EXPECT_THAT(a, MatchesRegex("region:endpoint:[0-9a-f]{32}"));
  EXPECT_THAT(b, MatchesRegex("region:endpoint:[0-9a-f]{32}"));
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace policy::region
