#include "common/text/caller_text.h"

#include <string>

#include "gtest/gtest.h"

namespace policy {
namespace {

TEST(QuotedTest, QuotesShortValuesWhole) {
  EXPECT_EQ(Quoted(""), "''");
  EXPECT_EQ(Quoted("support-eu"), "'support-eu'");
  EXPECT_EQ(Quoted("caf\xc3\xa9"), "'caf\xc3\xa9'");
  EXPECT_EQ(Quoted(std::string(kQuotedBytes, 'x')), "'" + std::string(kQuotedBytes, 'x') + "'");
}

TEST(QuotedTest, EscapesControlCharactersQuotesAndBytesThatAreNotUtf8) {
  EXPECT_EQ(Quoted(std::string("a\0b", 3)), "'a\\x00b'");
  EXPECT_EQ(Quoted("a\nb'c\\"), "'a\\nb\\'c\\\\'");
  EXPECT_EQ(Quoted("ok\xff"), "'ok\\xff'");
}

TEST(QuotedTest, KeepsTheFirstBytesOfALongValueAndItsSize) {
  const std::string huge(1 << 20, 'a');
  const std::string quoted = Quoted(huge);
  EXPECT_EQ(quoted, "'" + std::string(kQuotedBytes, 'a') + "\xe2\x80\xa6' (1048576 bytes)");
}

TEST(QuotedTest, NeverSplitsACharacter) {
  // A two-byte character straddling the cut is left out whole, not escaped in halves.
  const std::string value = std::string(kQuotedBytes - 1, 'a') + "\xc3\xa9" + "tail";
  EXPECT_EQ(Quoted(value), "'" + std::string(kQuotedBytes - 1, 'a') + "\xe2\x80\xa6' (" +
                               std::to_string(value.size()) + " bytes)");
  const std::string emoji = std::string(kQuotedBytes - 2, 'a') + "\xf0\x9f\x98\x80";
  EXPECT_EQ(Quoted(emoji), "'" + std::string(kQuotedBytes - 2, 'a') + "\xe2\x80\xa6' (" +
                               std::to_string(emoji.size()) + " bytes)");
}

TEST(EscapedTest, KeepsTextWholeAndEscapesWhatATerminalWouldObey) {
  EXPECT_EQ(Escaped("it's fine"), "it's fine");
  EXPECT_EQ(Escaped("red \x1b[31m\\ \xff end"), "red \\x1b[31m\\\\ \\xff end");
  EXPECT_EQ(Escaped("two\nlines\r"), "two\\nlines\\r");
  EXPECT_EQ(Escaped(std::string(100, 'a')), std::string(100, 'a'));
  // C1's CSI, a right-to-left override and a first-strong isolate; other characters kept.
  EXPECT_EQ(Escaped("a\xc2\x9b"
                    "2Jb"),
            "a\\xc2\\x9b2Jb");
  EXPECT_EQ(Escaped("x\xe2\x80\xaey\xe2\x81\xa8z"), "x\\xe2\\x80\\xaey\\xe2\\x81\\xa8z");
  // A line separator and a right-to-left mark escaped; an en dash and a per-mille sign kept.
  EXPECT_EQ(Escaped("a\xe2\x80\xa8"
                    "b\xe2\x80\x8f"
                    "c"),
            "a\\xe2\\x80\\xa8b\\xe2\\x80\\x8fc");
  EXPECT_EQ(Escaped("1\xe2\x80\x93"
                    "2 \xe2\x80\xb0"),
            "1\xe2\x80\x93"
            "2 \xe2\x80\xb0");
  EXPECT_EQ(Escaped("caf\xc3\xa9 \xe2\x82\xac \xc2\xa0"), "caf\xc3\xa9 \xe2\x82\xac \xc2\xa0");
}

TEST(CheckMaxBytesTest, NamesTheFirstFieldOverItsBound) {
  EXPECT_TRUE(CheckMaxBytes({{"id", "abc", 3}, {"project", "", 64}}).ok());
  const std::string huge(1 << 20, 'x');
  absl::Status s =
      CheckMaxBytes({{"id", "abc", 3}, {"actor.member_id", huge, 128}, {"x", huge, 1}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "actor.member_id: longer than 128 bytes");
}

}  // namespace
}  // namespace policy
