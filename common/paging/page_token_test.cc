#include "common/paging/page_token.h"

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::paging {
namespace {

using ::testing::HasSubstr;

TEST(PageTokenTest, APositionComesBackUnderTheSameFilters) {
  const std::string position("2024:key_\x1f/.\0any", 15);
  const std::string token = EncodePageToken(position, {"project", "", "removed"});
  absl::StatusOr<std::string> decoded = DecodePageToken(token, {"project", "", "removed"});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, position);
  EXPECT_EQ(*DecodePageToken(EncodePageToken("", {}), {}), "");
}

TEST(PageTokenTest, ATokenIsRefusedUnderOtherFilters) {
  const std::string token = EncodePageToken("42", {"project", "", "removed"});
  for (const auto& other :
       std::vector<std::vector<absl::string_view>>{{"project", "", ""},
                                                   {"project", "removed", ""},
                                                   {"other", "", "removed"},
                                                   {"project", ""},
                                                   {"project", "", "removed", ""},
                                                   {}}) {
    absl::StatusOr<std::string> decoded = DecodePageToken(token, other);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(decoded.status().message(), HasSubstr("page_token: issued for other filters"));
  }
  // Filters that join to the same bytes are still other filters.
  EXPECT_FALSE(DecodePageToken(EncodePageToken("1", {"ab", "c"}), {"a", "bc"}).ok());
}

TEST(PageTokenTest, ATokenThisCodeDidNotMakeIsRefused) {
  const std::string token = EncodePageToken("42", {});
  std::string raw;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(token, &raw));
  std::string other_version = raw;
  other_version[0] = 'x';
  for (const std::string& forged :
       {std::string("not a token"), std::string("v1:abc"), absl::WebSafeBase64Escape("v1:42"),
        absl::WebSafeBase64Escape(raw.substr(0, 5)), absl::WebSafeBase64Escape(other_version)}) {
    absl::StatusOr<std::string> decoded = DecodePageToken(forged, {});
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument) << forged;
    EXPECT_THAT(decoded.status().message(), HasSubstr("not a token this service issued"));
  }
  EXPECT_EQ(InvalidPageToken().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace policy::paging
