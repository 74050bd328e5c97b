// Folding, rule by rule and the table line by line, as shard-route(1) documents it.
#include "shard-route/fold.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace shard_route {
namespace {

using Kind = FirstLetter::Kind;

void expect_letter(std::string_view key, char letter, std::string_view rule) {
  FirstLetter f = fold_first_letter(key);
  EXPECT_EQ(f.kind, Kind::letter) << key;
  EXPECT_EQ(f.letter, letter) << key;
  EXPECT_EQ(f.rule, rule) << key;
}

void expect_kind(std::string_view key, Kind kind) {
  EXPECT_EQ(fold_first_letter(key).kind, kind) << key;
}

TEST(ShardRouteFold, AsciiLettersInEitherCase) {
  for (char c = 'A'; c <= 'Z'; ++c) {
    expect_letter(std::string(1, c) + "x", c, "ascii");
    expect_letter(std::string(1, static_cast<char>(c - 'A' + 'a')), c, "ascii");
  }
}

TEST(ShardRouteFold, AccentedLettersFoldToTheirBaseInAnyForm) {
  expect_letter("ábaco", 'A', "decomposition");
  expect_letter("Ábaco", 'A', "decomposition");
  // NFD input: a + COMBINING ACUTE is the same key as á.
  expect_letter("a\xcc\x81" "baco", 'A', "decomposition");
  expect_letter("A\xcc\x81" "BACO", 'A', "decomposition");
  expect_letter("Ñandú", 'N', "decomposition");
  expect_letter("ñandú", 'N', "decomposition");
  expect_letter("Çedilla", 'C', "decomposition");
  expect_letter("Őrség", 'O', "decomposition");
  expect_letter("Ÿ", 'Y', "decomposition");
  expect_letter("Žižkov", 'Z', "decomposition");
  expect_letter("Éclair", 'E', "decomposition");
  // Case folding first: Turkish dotted capital I folds to i + dot above.
  expect_letter("İstanbul", 'I', "ascii");
  // Full case folding makes ß "ss" before the table is reached.
  expect_letter("ßtraße", 'S', "ascii");
  expect_letter("ẞ", 'S', "ascii");
}

TEST(ShardRouteFold, TableLineByLine) {
  // Every line of the table the man page prints, in lower and (where there is one) upper case.
  const std::vector<std::pair<std::string, char>> upper = {
      {"Æ", 'A'}, {"Ð", 'D'}, {"Đ", 'D'}, {"Ħ", 'H'}, {"Ł", 'L'},
      {"Ŋ", 'N'}, {"Ø", 'O'}, {"Œ", 'O'}, {"Þ", 'T'}, {"Ŧ", 'T'}, {"Ƒ", 'F'}};
  for (const auto& row : kSpecialLetters) {
    FirstLetter f = fold_first_letter(std::string(row.folded) + "rest");
    EXPECT_EQ(f.kind, Kind::letter) << row.folded;
    EXPECT_EQ(f.letter, row.letter) << row.folded;
    EXPECT_EQ(f.rule, row.folded == "ß" ? "ascii" : "table") << row.folded;
  }
  for (const auto& [key, letter] : upper) expect_letter(key, letter, "table");
}

// The man page prints the table the code uses, line for line.
TEST(ShardRouteFold, ManPageCarriesTheTable) {
  std::ifstream in(ENVKIT_SOURCE_DIR "/man/shard-route.1");
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  auto begin = text.find(".\\\" BEGIN folding-table");
  auto end = text.find(".\\\" END folding-table");
  ASSERT_NE(begin, std::string::npos);
  ASSERT_NE(end, std::string::npos);
  begin = text.find('\n', begin) + 1;
  std::string expected;
  for (const auto& row : kSpecialLetters) {
    expected += std::string(row.folded) + "  " + row.letter + "  " + std::string(row.name) + "\n";
  }
  EXPECT_EQ(text.substr(begin, end - begin), expected);
}

TEST(ShardRouteFold, DigitsEmptyAndOtherScripts) {
  expect_kind("42", Kind::digit);
  expect_kind("0", Kind::digit);
  expect_kind("\xd9\xa3", Kind::digit);  // ARABIC-INDIC DIGIT THREE
  expect_kind("", Kind::empty);
  expect_kind("Ωmega", Kind::other);
  expect_kind("Москва", Kind::other);
  expect_kind("東京", Kind::other);
  expect_kind(" leading space", Kind::other);
  expect_kind("-dash", Kind::other);
  expect_kind("\xef\xbc\xa1", Kind::other);  // FULLWIDTH A: compatibility forms stay other
  expect_kind("\xff\xfe", Kind::other);     // invalid UTF-8
  EXPECT_EQ(fold_first_letter("\xff").rule, "invalid UTF-8");
}

TEST(ShardRouteFold, WholeKeys) {
  EXPECT_EQ(fold_key("ABC", true, true), "abc");
  EXPECT_EQ(fold_key("ABC", true, false), "ABC");
  EXPECT_EQ(fold_key("A\xcc\x81" "baco", true, true), "ábaco");
  EXPECT_EQ(fold_key("Ábaco", true, true), fold_key("a\xcc\x81" "baco", true, true));
  EXPECT_EQ(fold_key("Straße", true, true), "strasse");
  EXPECT_EQ(fold_key("a\xcc\x81", false, false), "a\xcc\x81");
  EXPECT_EQ(fold_key("\xff" "AB", true, true), "\xff" "AB");  // invalid UTF-8: unchanged
}

}  // namespace
}  // namespace shard_route
