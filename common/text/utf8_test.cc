#include "common/text/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace policy {
namespace {

constexpr size_t kValid = absl::string_view::npos;

TEST(Utf8Test, AcceptsWellFormedText) {
  EXPECT_EQ(FindInvalidUtf8(""), kValid);
  EXPECT_EQ(FindInvalidUtf8("plain ascii text that is longer than eight bytes"), kValid);
  EXPECT_EQ(FindInvalidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), kValid);  // é € 😀
  EXPECT_EQ(FindInvalidUtf8("\xf4\x8f\xbf\xbf"), kValid);                           // U+10FFFF
  EXPECT_EQ(FindInvalidUtf8("\xed\x9f\xbf"), kValid);                               // U+D7FF
}

TEST(Utf8Test, NamesTheFirstBadByte) {
  EXPECT_EQ(FindInvalidUtf8("abc\xff"), 3u);
  EXPECT_EQ(FindInvalidUtf8("0123456789\x80xyz"), 10u);        // Lone continuation byte.
  EXPECT_EQ(FindInvalidUtf8("ab\xc3"), 2u);                    // Cut off by the end.
  EXPECT_EQ(FindInvalidUtf8("ab\xe2\x82z"), 2u);               // Cut off by an ASCII byte.
  EXPECT_EQ(FindInvalidUtf8("\xc0\xaf"), 0u);                  // Overlong '/'.
  EXPECT_EQ(FindInvalidUtf8("x\xe0\x80\xaf"), 1u);             // Overlong, three bytes.
  EXPECT_EQ(FindInvalidUtf8("xy\xf0\x80\x80\xaf"), 2u);        // Overlong, four bytes.
  EXPECT_EQ(FindInvalidUtf8("\xed\xa0\x80"), 0u);              // Surrogate U+D800.
  EXPECT_EQ(FindInvalidUtf8("ok \xf4\x90\x80\x80"), 3u);       // Past U+10FFFF.
  EXPECT_EQ(FindInvalidUtf8("\xf8\x88\x80\x80\x80"), 0u);      // Five-byte form.
  EXPECT_EQ(FindInvalidUtf8(std::string("a\0b\xfe", 4)), 3u);  // NUL is valid UTF-8.
}

TEST(Utf8Test, EveryTruncationOfAValidTextIsCaughtAtItsCut) {
  const std::string text = "r\xc3\xa9sum\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80!";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    const absl::string_view prefix(text.data(), cut);
    const size_t bad = FindInvalidUtf8(prefix);
    if (bad != kValid) {
      // The only problem a prefix can have is its last character, cut short.
      EXPECT_LT(bad, cut);
      EXPECT_GE(bad + 4, cut) << cut;
      EXPECT_EQ(FindInvalidUtf8(prefix.substr(0, bad)), kValid);
    }
  }
}

}  // namespace
}  // namespace policy
