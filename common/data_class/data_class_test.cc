#include "common/data_class/data_class.h"

#include "common/data_class/data_class_proto.h"
#include "gtest/gtest.h"

namespace policy {
namespace {

constexpr DataClass kAll[] = {DataClass::kPublic, DataClass::kInternal, DataClass::kPii,
                              DataClass::kPhi};

TEST(DataClassTest, NamesParseBack) {
  for (DataClass c : kAll) EXPECT_EQ(ParseDataClass(DataClassName(c)), c);
  EXPECT_EQ(DataClassName(DataClass::kPhi), "phi");
  EXPECT_EQ(ParseDataClass("PHI"), std::nullopt);
  EXPECT_EQ(ParseDataClass(""), std::nullopt);
  EXPECT_EQ(ParseDataClass("secret"), std::nullopt);
}

TEST(DataClassTest, MoreSensitiveFollowsTheOrder) {
  EXPECT_EQ(MoreSensitive(DataClass::kPublic, DataClass::kInternal), DataClass::kInternal);
  EXPECT_EQ(MoreSensitive(DataClass::kPhi, DataClass::kPii), DataClass::kPhi);
  EXPECT_EQ(MoreSensitive(DataClass::kPii, DataClass::kInternal), DataClass::kPii);
  EXPECT_EQ(MoreSensitive(DataClass::kPublic, DataClass::kPublic), DataClass::kPublic);
}

TEST(DataClassTest, WhichEndpointsMayReceiveEachClass) {
  const EndpointPromises safe{.zero_data_retention = true, .private_link = true, .cached = false};
  EXPECT_TRUE(MayReceive(DataClass::kPhi, safe));
  EXPECT_TRUE(MayReceive(DataClass::kPii, safe));
  EXPECT_TRUE(KeepsNothing(safe));
  EndpointPromises no_link = safe;
  no_link.private_link = false;
  EXPECT_FALSE(MayReceive(DataClass::kPii, no_link));
  EXPECT_TRUE(MayReceive(DataClass::kInternal, no_link));
  EXPECT_TRUE(KeepsNothing(no_link));
  EndpointPromises keeps = safe;
  keeps.zero_data_retention = false;
  EXPECT_FALSE(MayReceive(DataClass::kPhi, keeps));
  EXPECT_TRUE(MayReceive(DataClass::kInternal, keeps));
  EXPECT_FALSE(KeepsNothing(keeps));
  EndpointPromises cache = safe;
  cache.cached = true;
  EXPECT_FALSE(MayReceive(DataClass::kPii, cache));
  EXPECT_FALSE(MayReceive(DataClass::kInternal, cache));
  EXPECT_TRUE(MayReceive(DataClass::kPublic, cache));
  EXPECT_FALSE(KeepsNothing(cache));
}

TEST(DataClassTest, ProtoRoundTrips) {
  for (DataClass c : kAll) {
    absl::StatusOr<DataClass> back =
        DataClassFromProto(DataClassToProto(c), DataClass::kInternal, "data_class");
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, c);
  }
  EXPECT_EQ(DataClassToProto(DataClass::kPii), pii::v1::DATA_CLASS_PII);
}

TEST(DataClassTest, UnspecifiedIsTheCallersDefaultAndUnknownIsRefused) {
  EXPECT_EQ(*DataClassFromProto(pii::v1::DATA_CLASS_UNSPECIFIED, DataClass::kPublic, "f"),
            DataClass::kPublic);
  absl::StatusOr<DataClass> bad =
      DataClassFromProto(static_cast<pii::v1::DataClass>(9), DataClass::kInternal, "x.data_class");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "x.data_class: unknown value 9");
  EXPECT_EQ(DataClassProtoName(pii::v1::DATA_CLASS_UNSPECIFIED, DataClass::kInternal), "internal");
  EXPECT_EQ(DataClassProtoName(static_cast<pii::v1::DataClass>(9), DataClass::kInternal),
            "unknown");
}

}  // namespace
}  // namespace policy
