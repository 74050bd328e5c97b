// Folding: how a key's text becomes what the shard map compares, written down once so that
// "ábaco", "Ábaco" and "a\u0301baco" land together and no key lands by an accident of byte
// order. man/shard-route.1 ("FOLDING") prints the same rules and table.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace shard_route {

/// What a key's first character folds to.
struct FirstLetter {
  enum class Kind { letter, digit, empty, other };
  Kind kind = Kind::other;
  char letter = 0;      ///< 'A'..'Z' when kind is letter
  std::string folded;   ///< the first character after NFC and case folding (UTF-8)
  std::string_view rule;  ///< which rule decided: for explain -v and the tests
};

/// One line of the table for Latin letters that do not decompose into a base letter and
/// marks: the letter (case-folded) and the A-Z letter it sorts with.
struct SpecialLetter {
  std::string_view folded;
  char letter;
  std::string_view name;
};

/// The table, in the order the man page prints it.
inline constexpr std::array<SpecialLetter, 14> kSpecialLetters{{
    {"ß", 'S', "sharp s (case folding makes it \"ss\" first)"},
    {"æ", 'A', "ash"},
    {"ð", 'D', "eth"},
    {"đ", 'D', "d with stroke"},
    {"ħ", 'H', "h with stroke"},
    {"ı", 'I', "dotless i"},
    {"ĸ", 'K', "kra"},
    {"ł", 'L', "l with stroke"},
    {"ŋ", 'N', "eng"},
    {"ø", 'O', "o with stroke"},
    {"œ", 'O', "ligature oe"},
    {"þ", 'T', "thorn"},
    {"ŧ", 'T', "t with stroke"},
    {"ƒ", 'F', "f with hook"},
}};

/// Folds the first character of `key`, in this order:
///   1. empty key: kind empty.
///   2. the first character with the combining marks after it is put in NFC, then
///      case-folded (Unicode full case folding): "Á", "á" and "a\u0301" all become "á".
///   3. a-z: that letter, upper-cased (rule "ascii").
///   4. a decimal digit of any script (Unicode Nd): kind digit.
///   5. a letter whose canonical decomposition starts with a-z ("á" = a + U+0301, "ñ",
///      "ç", "ő"): that base letter (rule "decomposition").
///   6. a letter of kSpecialLetters: its letter (rule "table").
///   7. anything else (other scripts, symbols, punctuation, spaces, invalid UTF-8, fullwidth
///      forms): kind other.
/// The map may override 3-6 for single characters (its `letters:`), by `folded`.
FirstLetter fold_first_letter(std::string_view key);

/// The whole key in NFC and, when `fold_case`, Unicode full case folding; invalid UTF-8 is
/// returned unchanged (and compares byte-wise). ASCII keys take a fast path.
std::string fold_key(std::string_view key, bool nfc, bool fold_case);

/// True when every byte of `s` is ASCII.
bool is_ascii(std::string_view s);

}  // namespace shard_route
