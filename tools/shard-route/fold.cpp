// Folding of keys and first letters with ICU (NFC, full case folding, canonical decomposition).
#include "shard-route/fold.hpp"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/ustring.h>
#include <unicode/utf8.h>

#include <cstring>

namespace shard_route {

namespace {

const icu::Normalizer2* nfc() {
  static const icu::Normalizer2* n = [] {
    UErrorCode status = U_ZERO_ERROR;
    return icu::Normalizer2::getNFCInstance(status);
  }();
  return n;
}

const icu::Normalizer2* nfd() {
  static const icu::Normalizer2* n = [] {
    UErrorCode status = U_ZERO_ERROR;
    return icu::Normalizer2::getNFDInstance(status);
  }();
  return n;
}

std::string utf8_of(UChar32 c) {
  char buf[4];
  int32_t i = 0;
  UBool error = false;
  U8_APPEND(reinterpret_cast<uint8_t*>(buf), i, 4, c, error);
  return error ? std::string() : std::string(buf, static_cast<size_t>(i));
}

bool valid_utf8(std::string_view s) {
  int32_t i = 0;
  const auto n = static_cast<int32_t>(s.size());
  while (i < n) {
    UChar32 c;
    U8_NEXT(reinterpret_cast<const uint8_t*>(s.data()), i, n, c);
    if (c < 0) return false;
  }
  return true;
}

}  // namespace

bool is_ascii(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

FirstLetter fold_first_letter(std::string_view key) {
  FirstLetter out;
  if (key.empty()) {
    out.kind = FirstLetter::Kind::empty;
    out.rule = "empty key";
    return out;
  }
  auto first = static_cast<unsigned char>(key[0]);
  // An ASCII first byte followed by ASCII needs no ICU: NFC and folding cannot change it.
  if (first < 0x80 && (key.size() == 1 || static_cast<unsigned char>(key[1]) < 0x80)) {
    char c = static_cast<char>(first);
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    out.folded.assign(1, c);
    if (c >= 'a' && c <= 'z') {
      out.kind = FirstLetter::Kind::letter;
      out.letter = static_cast<char>(c - 'a' + 'A');
      out.rule = "ascii";
    } else if (c >= '0' && c <= '9') {
      out.kind = FirstLetter::Kind::digit;
      out.rule = "digit";
    } else {
      out.kind = FirstLetter::Kind::other;
      out.rule = "not a letter or digit";
    }
    return out;
  }
  // The first character and the combining marks after it: NFC can only merge those.
  const auto n = static_cast<int32_t>(key.size());
  const auto* bytes = reinterpret_cast<const uint8_t*>(key.data());
  int32_t end = 0;
  UChar32 c;
  U8_NEXT(bytes, end, n, c);
  if (c < 0) {
    out.kind = FirstLetter::Kind::other;
    out.rule = "invalid UTF-8";
    return out;
  }
  while (end < n) {
    int32_t next = end;
    UChar32 mark;
    U8_NEXT(bytes, next, n, mark);
    if (mark < 0 || u_getCombiningClass(mark) == 0) break;
    end = next;
  }
  UErrorCode status = U_ZERO_ERROR;
  icu::UnicodeString text = icu::UnicodeString::fromUTF8(
      icu::StringPiece(key.data(), end));
  icu::UnicodeString normal = nfc()->normalize(text, status);
  if (U_FAILURE(status)) normal = text;
  normal.foldCase(U_FOLD_CASE_DEFAULT);
  UChar32 f = normal.char32At(0);
  out.folded = utf8_of(f);
  if (f >= 'a' && f <= 'z') {
    out.kind = FirstLetter::Kind::letter;
    out.letter = static_cast<char>(f - 'a' + 'A');
    out.rule = "ascii";
    return out;
  }
  if (u_charType(f) == U_DECIMAL_DIGIT_NUMBER) {
    out.kind = FirstLetter::Kind::digit;
    out.rule = "digit";
    return out;
  }
  icu::UnicodeString decomposition;
  if (nfd()->getDecomposition(f, decomposition) && decomposition.length() > 0) {
    UChar32 base = decomposition.char32At(0);
    if (base >= 'a' && base <= 'z') {
      out.kind = FirstLetter::Kind::letter;
      out.letter = static_cast<char>(base - 'a' + 'A');
      out.rule = "decomposition";
      return out;
    }
  }
  for (const auto& row : kSpecialLetters) {
    if (row.folded == out.folded) {
      out.kind = FirstLetter::Kind::letter;
      out.letter = row.letter;
      out.rule = "table";
      return out;
    }
  }
  out.kind = FirstLetter::Kind::other;
  out.rule = "not a Latin letter or digit";
  return out;
}

std::string fold_key(std::string_view key, bool nfc_form, bool fold_case) {
  if (is_ascii(key)) {
    std::string out(key);
    if (fold_case) {
      for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
    }
    return out;
  }
  if (!valid_utf8(key)) return std::string(key);
  icu::UnicodeString text = icu::UnicodeString::fromUTF8(icu::StringPiece(key.data(), static_cast<int32_t>(key.size())));
  if (nfc_form) {
    UErrorCode status = U_ZERO_ERROR;
    icu::UnicodeString normal = nfc()->normalize(text, status);
    if (U_SUCCESS(status)) text = normal;
  }
  if (fold_case) {
    text.foldCase(U_FOLD_CASE_DEFAULT);
    // Folding can leave a string that is not NFC (a folded letter before a mark): once more.
    if (nfc_form) {
      UErrorCode status = U_ZERO_ERROR;
      icu::UnicodeString normal = nfc()->normalize(text, status);
      if (U_SUCCESS(status)) text = normal;
    }
  }
  std::string out;
  text.toUTF8String(out);
  return out;
}

}  // namespace shard_route
