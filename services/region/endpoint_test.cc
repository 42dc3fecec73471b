#include "services/region/endpoint.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::region {
namespace {

using ::testing::HasSubstr;

Endpoint Valid() {
  Endpoint e;
  e.id = "azure-westeurope";
  e.region = "westeurope";
  e.provider = Provider::kAzure;
  e.base_url = "https://myorg-eu.openai.azure.com";
  e.deployment = "gpt-4.1-eu";
  e.residency = Residency::kEu;
  e.models = {"gpt-4.1", "gpt-4.1-mini"};
  return e;
}

TEST(EndpointTest, NamesRoundTrip) {
  for (Residency r : {Residency::kEu, Residency::kUs, Residency::kApac, Residency::kGlobal}) {
    EXPECT_EQ(ParseResidency(ResidencyName(r)), r);
  }
  for (DataClass c : {DataClass::kPhi, DataClass::kPii, DataClass::kInternal, DataClass::kPublic}) {
    EXPECT_EQ(ParseDataClass(DataClassName(c)), c);
  }
  EXPECT_EQ(ParseProvider("openai"), Provider::kOpenAi);
  EXPECT_EQ(ParseResidency("EU"), std::nullopt);
  EXPECT_EQ(ParseResidency("emea"), std::nullopt);
}

TEST(EndpointTest, ValidEndpointPasses) {
  EXPECT_TRUE(ValidateEndpoint(Valid()).ok()) << ValidateEndpoint(Valid());
  Endpoint openai = Valid();
  openai.provider = Provider::kOpenAi;
  openai.deployment = "";
  openai.base_url = "https://api.openai.com/v1";
  EXPECT_TRUE(ValidateEndpoint(openai).ok());
}

TEST(EndpointTest, BaseUrls) {
  for (const char* good :
       {"https://api.openai.com/v1", "https://a.b:8443", "https://10.0.0.7/openai",
        "https://[2001:db8::1]:443/v1", "https://[::1]", "https://host-1.example.com/a/b~c"}) {
    EXPECT_TRUE(IsValidBaseUrl(good)) << good;
  }
  for (const char* bad :
       {"", "http://api.openai.com", "https://", "https://user@host", "https://host/?q=1",
        "https://host/#frag", "https://host:0", "https://host:65536",
        "https://host:", "https://-host.com", "https://host..com", "https://ho st.com",
        "https://[2001:db8::zz]", "https://[::1", "https://host/pa th", "ftp://host"}) {
    EXPECT_FALSE(IsValidBaseUrl(bad)) << bad;
  }
}

TEST(EndpointTest, EachBadFieldIsNamed) {
  auto expect_invalid = [](Endpoint e, const std::string& field) {
    absl::Status s = ValidateEndpoint(e);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(s.message(), HasSubstr("endpoint." + field + ":"));
  };
  Endpoint e = Valid();
  e.id = "Bad Id";
  expect_invalid(e, "id");
  e = Valid();
  e.id = "";
  expect_invalid(e, "id");
  e = Valid();
  e.region = "west_europe";
  expect_invalid(e, "region");
  e = Valid();
  e.base_url = "https://user:pw@host";
  expect_invalid(e, "base_url");
  e = Valid();
  e.deployment = "";
  expect_invalid(e, "deployment");
  e = Valid();
  e.models = {};
  expect_invalid(e, "models");
  e = Valid();
  e.models = {"gpt-4.1", "gpt-4.1"};
  expect_invalid(e, "models");
  e = Valid();
  e.models = {"gpt 4"};
  expect_invalid(e, "models");
  e = Valid();
  e.priority = 0;
  expect_invalid(e, "priority");
  e = Valid();
  e.priority = kMaxPriority + 1;
  expect_invalid(e, "priority");
  e = Valid();
  e.weight = -1;
  expect_invalid(e, "weight");
  e = Valid();
  e.weight = kMaxWeight + 1;
  expect_invalid(e, "weight");
}

TEST(EndpointTest, RegistryRefusesDuplicateIds) {
  std::vector<Endpoint> endpoints = {Valid(), Valid()};
  absl::Status s = ValidateRegistry(endpoints);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("used twice"));
  endpoints[1].id = "azure-northeurope";
  EXPECT_TRUE(ValidateRegistry(endpoints).ok());
  endpoints[1].weight = 5000;
  EXPECT_THAT(ValidateRegistry(endpoints).message(), HasSubstr("azure-northeurope"));
}

}  // namespace
}  // namespace policy::region
