#include "services/pii/folded_text.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace policy::pii {
namespace {

TEST(FoldedTextTest, FoldsTypographicSpacesDashesAndFullWidthCharacters) {
  const std::string text =
      "a\u00A0b\u202Fc\u2009d\u2007e\u2010f\u2011g\u2012h\u2013i\u2212j"
      "\uFF10\uFF19\uFF0B\uFF0D\uFF0E\uFF20k\u3000l";
  ASSERT_TRUE(FoldedText::HoldsFoldable(text));
  EXPECT_EQ(FoldedText(text).text(), "a b c d e-f-g-h-i-j09+-.@k l");
}

// An e-mail address, an IBAN and an AWS key id as a Japanese input method types them.
TEST(FoldedTextTest, FoldsFullWidthLettersAndPunctuation) {
  const std::string text =
      "\uFF4A\uFF4F\uFF48\uFF4E\uFF0E\uFF53\uFF4D\uFF49\uFF54\uFF48\uFF20\uFF45\uFF58"
      "\uFF41\uFF4D\uFF50\uFF4C\uFF45\uFF0E\uFF43\uFF4F\uFF4D\u3000"
      "\uFF24\uFF25\uFF18\uFF19\u3000\uFF13\uFF17\uFF10\uFF14\u3000"
      "\uFF21\uFF2B\uFF29\uFF21\uFF3F\uFF1A\uFF0F\uFF03\uFF5E";
  ASSERT_TRUE(FoldedText::HoldsFoldable(text));
  EXPECT_EQ(FoldedText(text).text(), "john.smith@example.com DE89 3704 AKIA_:/#~");
}

// U+FF01-U+FF5E is U+0021-U+007E; the characters around the block are not folded.
TEST(FoldedTextTest, FoldsTheWholeFullWidthAsciiBlock) {
  // "x", the three-byte character `c`, "y".
  auto between_x_and_y = [](char32_t c) {
    return std::string{'x', static_cast<char>(0xE0 | (c >> 12)),
                       static_cast<char>(0x80 | ((c >> 6) & 0x3F)),
                       static_cast<char>(0x80 | (c & 0x3F)), 'y'};
  };
  for (char32_t c = 0xFF01; c <= 0xFF5E; ++c) {
    const std::string text = between_x_and_y(c);
    ASSERT_TRUE(FoldedText::HoldsFoldable(text)) << static_cast<int>(c);
    EXPECT_EQ(FoldedText(text).text(), (std::string{'x', static_cast<char>(c - 0xFEE0), 'y'}))
        << static_cast<int>(c);
  }
  // U+FF00 (unassigned), U+FF5F-U+FF65 (white parentheses, half-width CJK punctuation),
  // U+FFE0-U+FFE6 (full-width cent, pound, yen, won signs...), U+2FFF, U+3001-U+3003 (CJK
  // punctuation) and U+3040 (hiragana).
  for (const char32_t c : {0xFF00u, 0xFF5Fu, 0xFF60u, 0xFF61u, 0xFF65u, 0xFFE0u, 0xFFE5u, 0xFFE6u,
                           0x2FFFu, 0x3001u, 0x3002u, 0x3003u, 0x3041u}) {
    const std::string text = between_x_and_y(c);
    EXPECT_FALSE(FoldedText::HoldsFoldable(text)) << static_cast<int>(c);
    EXPECT_EQ(FoldedText(text).text(), text) << static_cast<int>(c);
  }
}

TEST(FoldedTextTest, KeepsEveryOtherCharacter) {
  for (const std::string& text :
       std::vector<std::string>{"", "plain ASCII 123-45-6789",
                                "Grüße — 日本語、「かな」。 «x» 🙂 € "
                                "￥ \u2014 \u2003 \uFF61 \uFF11"}) {
    // U+2014 EM DASH, U+2003 EM SPACE, U+3001 IDEOGRAPHIC COMMA, U+FFE5 FULLWIDTH YEN SIGN
    // and U+FF61 HALFWIDTH IDEOGRAPHIC FULL STOP stay; only the last text holds a foldable
    // character (U+FF11).
    const FoldedText folded(text);
    if (text.find("\uFF11") == std::string::npos) {
      EXPECT_FALSE(FoldedText::HoldsFoldable(text)) << text;
      EXPECT_EQ(folded.text(), text);
    } else {
      EXPECT_EQ(
          folded.text(),
          "Grüße — 日本語、「かな」。 «x» 🙂 € ￥ \u2014 \u2003 \uFF61 1");
    }
  }
  // Invalid UTF-8 and truncated sequences stay as they are.
  for (const std::string& text :
       {std::string("\xC2"), std::string("\xE2\x80"), std::string("\xEF\xBC"),
        std::string("\xEF\xBD"), std::string("\xE3\x80"), std::string("x\xE3\x80"),
        std::string("x\xC2\xC2\xA1\xE2\x88"), std::string("\xEF\xBC\xC2\xBD\xE3\x80\xE3")}) {
    EXPECT_FALSE(FoldedText::HoldsFoldable(text));
    EXPECT_EQ(FoldedText(text).text(), text);
  }
}

TEST(FoldedTextTest, MapsOffsetsBackToWholeCharacters) {
  // "x１２\u00A03-4\u3000Ａｂ": folded "x12 3-4 Ab".
  const std::string text = "x\uFF11\uFF12\u00A03\u20134\u3000\uFF21\uFF42";
  const FoldedText folded(text);
  ASSERT_EQ(folded.text(), "x12 3-4 Ab");
  const size_t expected[] = {0, 1, 4, 7, 9, 10, 13, 14, 17, 20, 23};
  for (size_t i = 0; i <= folded.text().size(); ++i) {
    EXPECT_EQ(folded.OriginalOffset(i), expected[i]) << i;
  }
}

// The vector search over long texts: a foldable character at every position of a block, after
// ASCII and after other multi-byte characters (some sharing its first byte), and as the last
// character.
TEST(FoldedTextTest, FindsFoldableCharactersAnywhereInLongTexts) {
  const std::vector<std::pair<std::string, char>> foldables = {
      {"\u202F", ' '}, {"\u3000", ' '}, {"\uFF21", 'A'}, {"\uFF5A", 'z'}, {"\u00A0", ' '}};
  for (const std::string& filler : {std::string("x"), std::string("é"), std::string("—"),
                                    std::string("あ"), std::string("、"), std::string("ｱ")}) {
    for (const auto& [foldable, ascii] : foldables) {
      for (size_t at = 0; at < 140; ++at) {
        for (const size_t size : {size_t{200}, at + foldable.size() + filler.size()}) {
          std::string text;
          while (text.size() < at) text += filler;
          const size_t begin = text.size();
          text += foldable;
          while (text.size() < size) text += filler;
          ASSERT_TRUE(FoldedText::HoldsFoldable(text)) << at;
          const FoldedText folded(text);
          ASSERT_EQ(folded.text().size(), text.size() - (foldable.size() - 1));
          EXPECT_EQ(folded.text()[begin], ascii);
          EXPECT_EQ(folded.OriginalOffset(begin), begin);
          EXPECT_EQ(folded.OriginalOffset(begin + 1), begin + foldable.size());
          EXPECT_EQ(folded.OriginalOffset(folded.text().size()), text.size());
          text.replace(begin, foldable.size(), "\u2003");  // EM SPACE: not foldable.
          EXPECT_FALSE(FoldedText::HoldsFoldable(text)) << at;
        }
      }
    }
  }
}

}  // namespace
}  // namespace policy::pii
