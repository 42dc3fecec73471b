#include "services/pii/folded_text.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace policy::pii {
namespace {

TEST(FoldedTextTest, FoldsTypographicSpacesDashesAndFullWidthCharacters) {
  const std::string text =
      "a\u00A0b\u202Fc\u2009d\u2007e\u2010f\u2011g\u2012h\u2013i\u2212j"
      "\uFF10\uFF19\uFF0B\uFF0D\uFF0E\uFF20";
  ASSERT_TRUE(FoldedText::HoldsFoldable(text));
  EXPECT_EQ(FoldedText(text).text(), "a b c d e-f-g-h-i-j09+-.@");
}

TEST(FoldedTextTest, KeepsEveryOtherCharacter) {
  for (const std::string& text : std::vector<std::string>{
           "", "plain ASCII 123-45-6789",
           "Grüße — 日本語 «x» 🙂 € \u2014 \u2003 \u3000 \uFF21 \uFF11"}) {
    // U+2014 EM DASH, U+2003 EM SPACE, U+3000 IDEOGRAPHIC SPACE and U+FF21 FULLWIDTH A stay;
    // only the last text holds a foldable character (U+FF11).
    const FoldedText folded(text);
    if (text.find("\uFF11") == std::string::npos) {
      EXPECT_FALSE(FoldedText::HoldsFoldable(text)) << text;
      EXPECT_EQ(folded.text(), text);
    } else {
      EXPECT_EQ(folded.text(),
                "Grüße — 日本語 «x» 🙂 € \u2014 \u2003 \u3000 \uFF21 1");
    }
  }
  // Invalid UTF-8 and truncated sequences stay as they are.
  for (const std::string& text : {std::string("\xC2"), std::string("\xE2\x80"),
                                  std::string("\xEF\xBC"), std::string("x\xC2\xC2\xA1\xE2\x88")}) {
    EXPECT_FALSE(FoldedText::HoldsFoldable(text));
    EXPECT_EQ(FoldedText(text).text(), text);
  }
}

TEST(FoldedTextTest, MapsOffsetsBackToWholeCharacters) {
  // "１２\u00A03-4": folded "12 3-4".
  const std::string text = "x\uFF11\uFF12\u00A03\u20134";
  const FoldedText folded(text);
  ASSERT_EQ(folded.text(), "x12 3-4");
  const size_t expected[] = {0, 1, 4, 7, 9, 10, 13, 14};
  for (size_t i = 0; i <= folded.text().size(); ++i) {
    EXPECT_EQ(folded.OriginalOffset(i), expected[i]) << i;
  }
}

// The vector search over long texts: a foldable character at every position of a block, after
// ASCII and after other multi-byte characters.
TEST(FoldedTextTest, FindsFoldableCharactersAnywhereInLongTexts) {
  for (const std::string& filler : {std::string("x"), std::string("é"), std::string("—")}) {
    for (size_t at = 0; at < 140; ++at) {
      std::string text;
      while (text.size() < at) text += filler;
      const size_t begin = text.size();
      text += "\u202F";
      while (text.size() < 200) text += filler;
      ASSERT_TRUE(FoldedText::HoldsFoldable(text)) << at;
      const FoldedText folded(text);
      ASSERT_EQ(folded.text().size(), text.size() - 2);
      EXPECT_EQ(folded.text()[begin], ' ');
      EXPECT_EQ(folded.OriginalOffset(begin), begin);
      EXPECT_EQ(folded.OriginalOffset(begin + 1), begin + 3);
      EXPECT_EQ(folded.OriginalOffset(folded.text().size()), text.size());
      text.replace(begin, 3, "\u2003");  // EM SPACE: not foldable.
      EXPECT_FALSE(FoldedText::HoldsFoldable(text)) << at;
    }
  }
}

}  // namespace
}  // namespace policy::pii
