#include "services/pii/validators.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/crypto/crypto.h"
#include "common/ids/api_key_prefix.h"
#include "services/pii/recognizer.h"

namespace policy::pii {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }

// Whether `c` is one of `bytes`: a short set, inline (string_view::find is a library call).
bool IsOneOf(absl::string_view bytes, char c) {
  return std::any_of(bytes.begin(), bytes.end(), [c](char b) { return b == c; });
}

// Byte -> its index in `alphabet`, or -1.
constexpr std::array<int8_t, 256> IndexTable(absl::string_view alphabet) {
  std::array<int8_t, 256> table{};
  table.fill(-1);
  for (size_t i = 0; i < alphabet.size(); ++i) {
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
  }
  return table;
}

// The digits of `value`, skipping any byte of `separators`; empty when another byte occurs
// or there are more than `Digits::kCapacity` digits.
struct Digits {
  static constexpr size_t kCapacity = 40;
  std::array<char, kCapacity> digit{};
  size_t size = 0;

  int At(size_t i) const { return digit[i] - '0'; }
  // The number formed by digits [begin, begin + count).
  int Number(size_t begin, size_t count) const {
    int n = 0;
    for (size_t i = begin; i < begin + count; ++i) n = n * 10 + At(i);
    return n;
  }
  absl::string_view View() const { return absl::string_view(digit.data(), size); }
};

Digits CollectDigits(absl::string_view value, absl::string_view separators) {
  Digits digits;
  for (char c : value) {
    if (IsDigit(c)) {
      if (digits.size == Digits::kCapacity) return Digits{};
      digits.digit[digits.size++] = c;
    } else if (!IsOneOf(separators, c)) {
      return Digits{};
    }
  }
  return digits;
}

// The Luhn sum of `digits` (ASCII digits, the last one not doubled) mod 10: 0 when the last
// is their check digit.
int LuhnChecksum(absl::string_view digits) {
  int sum = 0;
  bool doubled = false;
  for (size_t i = digits.size(); i-- > 0;) {
    int d = digits[i] - '0';
    if (doubled) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    doubled = !doubled;
  }
  return sum % 10;
}

// ISO 7064 MOD 97-10: `text` (digits and capital letters, letters as 10..35) read as one number
// after `rest`, the remainder of what precedes it, mod 97.
int Mod97(absl::string_view text, int rest = 0) {
  for (char c : text) {
    rest = IsDigit(c) ? (rest * 10 + (c - '0')) % 97 : (rest * 100 + (c - 'A' + 10)) % 97;
  }
  return rest;
}

bool LuhnOfDigits(const Digits& digits) {
  return digits.size >= 2 && LuhnChecksum(digits.View()) == 0;
}

// Whether `digits` (ASCII digits) end with their ISO 7064 MOD 11,10 check digit.
bool PassesMod11_10(absl::string_view digits) {
  int check = 5;
  for (char c : digits) check = ((check == 0 ? 10 : check) * 2 % 11 + (c - '0')) % 10;
  return check == 1;
}

bool InRange(int n, int low, int high) { return n >= low && n <= high; }

// Whether a card of `length` digits starting with `d` (the digits) has a known issuer that
// issues that length.
bool IssuerAllowsLength(const Digits& d, size_t length) {
  const int p1 = d.Number(0, 1);
  const int p2 = d.Number(0, 2);
  const int p3 = d.Number(0, 3);
  const int p4 = d.Number(0, 4);
  const bool sixteen_to_nineteen = length >= 16 && length <= 19;
  if (p1 == 4) return length == 13 || length == 16 || length == 19;                 // Visa
  if (InRange(p2, 51, 55) || InRange(p4, 2221, 2720)) return length == 16;          // Mastercard
  if (p2 == 34 || p2 == 37) return length == 15;                                    // Amex
  if (p4 == 6011 || InRange(p3, 644, 649) || p2 == 65) return sixteen_to_nineteen;  // Discover
  if (InRange(p4, 3528, 3589)) return sixteen_to_nineteen;                          // JCB
  if (InRange(p3, 300, 305) || p2 == 36 || p2 == 38 || p2 == 39) {                  // Diners
    return length >= 14 && length <= 19;
  }
  if (p2 == 62) return sixteen_to_nineteen;  // UnionPay
  return false;
}

// IBAN lengths per country, from the SWIFT IBAN registry.
struct IbanCountry {
  char code[3];
  int length;
};
constexpr IbanCountry kIbanCountries[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24},
    {"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18},
    {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27},
    {"GT", 28}, {"HN", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26},
    {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20},
    {"LU", 20}, {"LV", 21}, {"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MN", 20},
    {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23}, {"PK", 24},
    {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"RU", 33}, {"SA", 24},
    {"SC", 31}, {"SD", 18}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"SO", 23}, {"ST", 25},
    {"SV", 28}, {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
    {"YE", 30},
};

constexpr size_t ShortestIban() {
  size_t shortest = 0;
  for (const IbanCountry& country : kIbanCountries) {
    const auto length = static_cast<size_t>(country.length);
    if (shortest == 0 || length < shortest) shortest = length;
  }
  return shortest;
}

int IbanLength(char a, char b) {
  for (const IbanCountry& country : kIbanCountries) {
    if (country.code[0] == a && country.code[1] == b) return country.length;
  }
  return 0;
}

// Country calling codes (ITU-T E.164 assignments). The set is prefix-free, so the code at
// the start of a compact number is unambiguous.
bool IsCountryCallingCode(absl::string_view code) {
  static constexpr const char* kSingle[] = {"1", "7"};
  static constexpr int kDouble[] = {20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46,
                                    47, 48, 49, 51, 52, 53, 54, 55, 56, 57, 58, 60, 61, 62, 63,
                                    64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98};
  struct Range {
    int low;
    int high;
  };
  static constexpr Range kTriple[] = {{211, 213}, {216, 216}, {218, 218}, {220, 258}, {260, 269},
                                      {290, 291}, {297, 299}, {350, 359}, {370, 387}, {389, 389},
                                      {420, 421}, {423, 423}, {500, 509}, {590, 599}, {670, 670},
                                      {672, 692}, {850, 850}, {852, 853}, {855, 856}, {880, 880},
                                      {886, 886}, {960, 968}, {970, 977}, {992, 996}, {998, 998}};
  if (code.empty() || code.size() > 3 || code[0] == '0') return false;
  int value = 0;
  for (char c : code) value = value * 10 + (c - '0');
  switch (code.size()) {
    case 1:
      return std::any_of(std::begin(kSingle), std::end(kSingle),
                         [&](const char* s) { return code == s; });
    case 2:
      return std::find(std::begin(kDouble), std::end(kDouble), value) != std::end(kDouble);
    default:
      return std::any_of(std::begin(kTriple), std::end(kTriple),
                         [&](const Range& r) { return InRange(value, r.low, r.high); });
  }
}

bool IsNanpOfDigits(absl::string_view digits) {
  if (digits.size() == 11 && digits[0] == '1') digits.remove_prefix(1);
  if (digits.size() != 10) return false;
  auto valid_central_office = [](absl::string_view three) {
    return three[0] >= '2' && !(three[1] == '1' && three[2] == '1');
  };
  return valid_central_office(digits.substr(0, 3)) && valid_central_office(digits.substr(3, 3));
}

// Bech32 (BIP-173) checksum polymod over `values`.
// The XOR of the BIP-173 generators each bit of a 5-bit value selects.
constexpr std::array<uint32_t, 32> MakeBech32Generators() {
  constexpr uint32_t kGenerator[] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
  std::array<uint32_t, 32> table{};
  for (uint32_t top = 0; top < 32; ++top) {
    for (int bit = 0; bit < 5; ++bit) {
      if ((top >> bit) & 1) table[top] ^= kGenerator[bit];
    }
  }
  return table;
}

uint32_t Bech32Polymod(const uint8_t* values, size_t count) {
  static constexpr std::array<uint32_t, 32> kGenerators = MakeBech32Generators();
  uint32_t checksum = 1;
  for (size_t i = 0; i < count; ++i) {
    const uint32_t top = checksum >> 25;
    checksum = (((checksum & 0x1ffffff) << 5) ^ values[i]) ^ kGenerators[top];
  }
  return checksum;
}

}  // namespace

bool PassesLuhn(absl::string_view value) { return LuhnOfDigits(CollectDigits(value, " -")); }

bool IsValidCreditCard(absl::string_view value) {
  const Digits digits = CollectDigits(value, " -");
  if (digits.size < 13 || digits.size > 19) return false;
  return IssuerAllowsLength(digits, digits.size) && LuhnOfDigits(digits);
}

bool IsValidIban(absl::string_view value) {
  std::array<char, 40> iban{};
  size_t size = 0;
  const char separator = value.find('-') != absl::string_view::npos ? '-' : ' ';
  for (char c : value) {
    if (c == separator) continue;
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (!IsDigit(c) && !IsUpper(c)) return false;
    if (size == iban.size()) return false;
    iban[size++] = c;
  }
  if (size < 5 || !IsUpper(iban[0]) || !IsUpper(iban[1]) || !IsDigit(iban[2]) ||
      !IsDigit(iban[3])) {
    return false;
  }
  if (static_cast<size_t>(IbanLength(iban[0], iban[1])) != size) return false;
  // The BBAN followed by the country code and check digits.
  const absl::string_view whole(iban.data(), size);
  return Mod97(whole.substr(0, 4), Mod97(whole.substr(4))) == 1;
}

bool IsValidEmail(absl::string_view value) {
  // File extensions that are no top-level domain: "icon@2x.png", "react@next.js".
  static constexpr absl::string_view kExtensions[] = {
      "7z",   "apk",  "avi",   "avif", "bak",  "bin",  "bmp",  "bz2",  "cfg",   "cjs",  "conf",
      "cpp",  "css",  "csv",   "deb",  "dll",  "dmg",  "doc",  "docx", "dylib", "egg",  "eot",
      "exe",  "flac", "gif",   "gz",   "h",    "heic", "hpp",  "htm",  "html",  "ico",  "ini",
      "jar",  "java", "jpeg",  "jpg",  "js",   "json", "jsx",  "kt",   "less",  "lock", "log",
      "m4a",  "map",  "mjs",   "mkv",  "mp3",  "mp4",  "mpeg", "ogg",  "otf",   "pdf",  "php",
      "png",  "ppt",  "pptx",  "rar",  "rpm",  "sass", "scss", "svg",  "tar",   "tgz",  "tif",
      "tiff", "toml", "ts",    "tsx",  "ttf",  "txt",  "vue",  "wasm", "wav",   "webm", "webp",
      "whl",  "woff", "woff2", "xls",  "xlsx", "xz",   "yaml", "yml"};
  const size_t dot = value.rfind('.');
  const size_t at = value.rfind('@');
  if (dot == absl::string_view::npos || at == absl::string_view::npos || dot < at) return false;
  // The SSH user of code hosts ("git@github.com:org/repo.git"), nobody's mailbox.
  if (absl::EqualsIgnoreCase(value.substr(0, at), "git")) return false;
  const std::string tld = absl::AsciiStrToLower(value.substr(dot + 1));
  return std::none_of(std::begin(kExtensions), std::end(kExtensions),
                      [&](absl::string_view extension) { return tld == extension; });
}

bool IsValidUsSsn(absl::string_view value) {
  const Digits d = CollectDigits(value, " -");
  if (d.size != 9) return false;
  const int area = d.Number(0, 3);
  const int group = d.Number(3, 2);
  const int serial = d.Number(5, 4);
  if (area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0) return false;
  return d.View() != "078051120" && d.View() != "219099999";
}

bool IsValidUsItin(absl::string_view value) {
  const Digits d = CollectDigits(value, " -");
  if (d.size != 9 || d.At(0) != 9) return false;
  const int group = d.Number(3, 2);
  return InRange(group, 50, 65) || InRange(group, 70, 88) || InRange(group, 90, 92) ||
         InRange(group, 94, 99);
}

bool IsValidNanpPhone(absl::string_view value) {
  if (!value.empty() && value[0] == '+') value.remove_prefix(1);
  const Digits d = CollectDigits(value, " -.()");
  return IsNanpOfDigits(d.View());
}

bool IsValidInternationalPhone(absl::string_view value) {
  if (value.size() < 2 || value[0] != '+') return false;
  value.remove_prefix(1);
  const size_t first_separator = value.find_first_of(" -.");
  // "+44 (0)20 ...": the trunk prefix is dialled only from inside the country.
  std::string without_trunk;
  if (const size_t trunk = value.find(" (0)");
      trunk != absl::string_view::npos && trunk == first_separator) {
    without_trunk = absl::StrCat(value.substr(0, trunk + 1), value.substr(trunk + 4));
    value = without_trunk;
  }
  const Digits d = CollectDigits(value, " -.");
  if (d.size == 0 || d.size > 15) return false;
  size_t code_size = 0;
  if (first_separator != absl::string_view::npos) {
    code_size = first_separator;
    if (!IsCountryCallingCode(d.View().substr(0, code_size))) return false;
  } else {
    for (size_t n = 1; n <= 3 && code_size == 0; ++n) {
      if (IsCountryCallingCode(d.View().substr(0, n))) code_size = n;
    }
    if (code_size == 0) return false;
  }
  const absl::string_view national = d.View().substr(code_size);
  if (national.size() < 7 || national.size() > 12) return false;
  return d.View().substr(0, code_size) != "1" || IsNanpOfDigits(national);
}

bool IsValidNationalPhone(absl::string_view value) {
  const Digits d = CollectDigits(value, " -./");
  return d.size >= 10 && d.size <= 12 && d.At(0) == 0 && d.At(1) != 0 && IsDigit(value[0]);
}

bool IsValidNineDigitPhone(absl::string_view value) {
  const Digits d = CollectDigits(value, " -");
  return d.size == 9 && d.At(0) >= 2 && IsDigit(value[0]);
}

bool IsValidIpv4(absl::string_view value) {
  int parts = 0;
  size_t i = 0;
  while (true) {
    const size_t start = i;
    int part = 0;
    while (i < value.size() && IsDigit(value[i]) && i - start < 3) {
      part = part * 10 + (value[i] - '0');
      ++i;
    }
    const size_t length = i - start;
    if (length == 0 || part > 255 || (length > 1 && value[start] == '0')) return false;
    ++parts;
    if (i == value.size()) break;
    if (value[i] != '.' || parts == 4) return false;
    ++i;
  }
  if (parts != 4) return false;
  // Not a host's address: unspecified, loopback, or a netmask (ones, then zeros).
  uint32_t address = 0;
  for (absl::string_view part : absl::StrSplit(value, '.')) {
    int n = 0;
    for (char c : part) n = n * 10 + (c - '0');
    address = (address << 8) | static_cast<uint32_t>(n);
  }
  if (address == 0 || (address >> 24) == 127) return false;
  const uint32_t zeros = ~address;
  return (address >> 24) != 255 || (zeros & (zeros + 1)) != 0;
}

bool IsValidIpv6(absl::string_view value) {
  char buffer[INET6_ADDRSTRLEN + 1];
  if (value.size() >= sizeof(buffer)) return false;
  if (std::none_of(value.begin(), value.end(), IsDigit)) return false;
  std::memcpy(buffer, value.data(), value.size());
  buffer[value.size()] = '\0';
  in6_addr address;
  if (inet_pton(AF_INET6, buffer, &address) != 1) return false;
  // "::2", "1::3", "10::20": Python slices and the loopback "::1" rather than addresses.
  if (value.find("::") == absl::string_view::npos) return true;
  int groups = 0;
  bool short_decimal = true;
  for (absl::string_view group : absl::StrSplit(value, ':', absl::SkipEmpty())) {
    ++groups;
    short_decimal =
        short_decimal && group.size() <= 3 && std::all_of(group.begin(), group.end(), IsDigit);
  }
  return !(groups <= 2 && short_decimal);
}

bool IsValidUkNhs(absl::string_view value) {
  const Digits d = CollectDigits(value, " -");
  if (d.size != 10) return false;
  int sum = 0;
  for (size_t i = 0; i < 9; ++i) sum += d.At(i) * static_cast<int>(10 - i);
  int check = 11 - sum % 11;
  if (check == 11) check = 0;
  return check != 10 && check == d.At(9);
}

namespace {

bool IsLeapYear(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

// Whether the calendar has day `day` of month `month` (1-12) in `year`.
bool IsDate(int year, int month, int day) {
  static constexpr int kDaysIn[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1) return false;
  return day <= kDaysIn[month - 1] + (month == 2 && IsLeapYear(year) ? 1 : 0);
}

// The check letter of a Spanish DNI or NIE over its eight-digit number.
char SpanishCheckLetter(int number) {
  static constexpr absl::string_view kLetters = "TRWAGMYFPDXBNJZSQVHLCKE";
  return kLetters[static_cast<size_t>(number % 23)];
}

// Whether `value` is exactly `digits` ASCII digits.
bool AllDigits(absl::string_view value, size_t digits) {
  return value.size() == digits && std::all_of(value.begin(), value.end(), IsDigit);
}

// `value` written compact (`size` bytes, returned as it is) or grouped: with `separator` at
// exactly the offsets `at` of the grouped form, returned without them. "" when neither.
std::string Ungrouped(absl::string_view value, size_t size, char separator,
                      std::initializer_list<size_t> at) {
  if (value.size() == size) return std::string(value);
  if (value.size() != size + at.size()) return "";
  std::string compact;
  for (size_t i = 0; i < value.size(); ++i) {
    const bool separates = std::find(at.begin(), at.end(), i) != at.end();
    if (separates != (value[i] == separator)) return "";
    if (!separates) compact.push_back(value[i]);
  }
  return compact;
}

}  // namespace

bool IsValidUkNino(absl::string_view value) {
  std::array<char, 9> c{};
  size_t n = 0;
  for (char byte : value) {
    if (byte == ' ' || byte == '-') continue;
    if (n == c.size()) return false;
    c[n++] = absl::ascii_toupper(static_cast<unsigned char>(byte));
  }
  if (n != c.size()) return false;
  if (!IsUpper(c[0]) || !IsUpper(c[1]) || IsOneOf("DFIQUV", c[0]) || IsOneOf("DFIOQUV", c[1])) {
    return false;
  }
  const absl::string_view prefix(c.data(), 2);
  for (absl::string_view never : {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}) {
    if (prefix == never) return false;
  }
  return AllDigits(absl::string_view(c.data() + 2, 6), 6) && c[8] >= 'A' && c[8] <= 'D';
}

bool IsValidEsNif(absl::string_view value) {
  if (value.size() < 9) return false;
  const char letter = absl::ascii_toupper(static_cast<unsigned char>(value.back()));
  if (!IsUpper(letter)) return false;
  absl::string_view number = value.substr(0, value.size() - 1);
  if (number.back() == '-' || number.back() == ' ') number.remove_suffix(1);
  const std::string digits = Ungrouped(number, 8, '.', {2, 6});  // "12.345.678".
  const Digits d = CollectDigits(digits, "");
  return d.size == 8 && SpanishCheckLetter(d.Number(0, 8)) == letter;
}

bool IsValidEsNie(absl::string_view value) {
  if (value.size() < 9) return false;
  const char first = absl::ascii_toupper(static_cast<unsigned char>(value[0]));
  const char letter = absl::ascii_toupper(static_cast<unsigned char>(value.back()));
  if (!IsOneOf("XYZ", first) || !IsUpper(letter)) return false;
  absl::string_view digits = value.substr(1, value.size() - 2);
  if (absl::StartsWith(digits, "-") || absl::StartsWith(digits, " ")) digits.remove_prefix(1);
  if (absl::EndsWith(digits, "-") || absl::EndsWith(digits, " ")) digits.remove_suffix(1);
  if (!AllDigits(digits, 7)) return false;
  const Digits d = CollectDigits(digits, "");
  const int number = (first - 'X') * 10'000'000 + d.Number(0, 7);
  return SpanishCheckLetter(number) == letter;
}

bool IsValidItFiscalCode(absl::string_view written) {
  // The value of each character at an odd (1-based) position, digits and letters of the
  // same index alike: 0/A 1, 1/B 0, 2/C 5, ...
  static constexpr int kOdd[26] = {1,  0,  5, 7, 9, 13, 15, 17, 19, 21, 2,  4,  18,
                                   20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23};
  static constexpr absl::string_view kOmocodia = "LMNPQRSTUV";
  static constexpr absl::string_view kMonths = "ABCDEHLMPRST";
  // Positions of digits (or their stand-ins): year, day, municipality number.
  static constexpr size_t kNumeric[] = {6, 7, 9, 10, 12, 13, 14};
  if (written.size() != 16) return false;
  std::array<char, 16> value{};
  for (size_t i = 0; i < value.size(); ++i) {
    value[i] = absl::ascii_toupper(static_cast<unsigned char>(written[i]));
  }
  for (size_t i = 0; i < value.size(); ++i) {
    const bool numeric =
        std::find(std::begin(kNumeric), std::end(kNumeric), i) != std::end(kNumeric);
    if (!numeric && !IsUpper(value[i])) return false;
  }
  // Omocodia replaces digits from the last one leftwards: the stand-ins are a suffix of the
  // numeric places, and a digit is left.
  std::array<int, 16> digit{};
  bool replaced = true;
  for (size_t k = std::size(kNumeric); k-- > 0;) {
    const size_t i = kNumeric[k];
    if (IsDigit(value[i])) {
      replaced = false;
      digit[i] = value[i] - '0';
      continue;
    }
    const size_t stand_in = kOmocodia.find(value[i]);
    if (!replaced || stand_in == absl::string_view::npos) return false;
    digit[i] = static_cast<int>(stand_in);
  }
  const size_t month = kMonths.find(value[8]);
  if (replaced || month == absl::string_view::npos) return false;
  int day = digit[9] * 10 + digit[10];
  if (day > 40) day -= 40;                                            // Women's days.
  if (!IsDate(2000, static_cast<int>(month) + 1, day)) return false;  // 2000: 29 February.
  int sum = 0;
  for (size_t i = 0; i < 15; ++i) {
    const char c = value[i];
    const int index = IsDigit(c) ? c - '0' : c - 'A';
    sum += i % 2 == 0 ? kOdd[index] : index;
  }
  return value[15] == 'A' + sum % 26;
}

bool IsValidPlPesel(absl::string_view value) {
  static constexpr int kWeights[] = {1, 3, 7, 9, 1, 3, 7, 9, 1, 3};
  if (!AllDigits(value, 11)) return false;
  const Digits d = CollectDigits(value, "");
  int sum = 0;
  for (size_t i = 0; i < 10; ++i) sum += d.At(i) * kWeights[i];
  if ((10 - sum % 10) % 10 != d.At(10)) return false;
  const int coded_month = d.Number(2, 2);
  static constexpr int kCenturyOf[] = {1900, 2000, 2100, 2200, 1800};  // By coded_month / 20.
  return IsDate(kCenturyOf[coded_month / 20] + d.Number(0, 2), coded_month % 20, d.Number(4, 2));
}

bool IsValidFiPersonalIdentityCode(absl::string_view value) {
  static constexpr absl::string_view kCheck = "0123456789ABCDEFHJKLMNPRSTUVWXY";
  if (value.size() != 11 || !AllDigits(value.substr(0, 6), 6) ||
      !AllDigits(value.substr(7, 3), 3)) {
    return false;
  }
  const char sign = absl::ascii_toupper(static_cast<unsigned char>(value[6]));
  int century;
  if (sign == '+') {
    century = 1800;
  } else if (sign == '-' || IsOneOf("YXWVU", sign)) {
    century = 1900;
  } else if (sign >= 'A' && sign <= 'F') {
    century = 2000;
  } else {
    return false;
  }
  const Digits date = CollectDigits(value.substr(0, 6), "");
  const Digits individual = CollectDigits(value.substr(7, 3), "");
  const int number = individual.Number(0, 3);
  if (number < 2 || number > 899) return false;
  if (!IsDate(century + date.Number(4, 2), date.Number(2, 2), date.Number(0, 2))) return false;
  const int64_t whole = int64_t{date.Number(0, 6)} * 1000 + number;
  return absl::ascii_toupper(static_cast<unsigned char>(value[10])) ==
         kCheck[static_cast<size_t>(whole % 31)];
}

bool IsValidFrNir(absl::string_view value) {
  std::string c = Ungrouped(value, 15, ' ', {1, 4, 7, 10, 14, 18});  // "1 85 05 78 006 084 91".
  if (c.empty()) return false;
  const char department_tens = c[5];
  const char department_units = absl::ascii_toupper(static_cast<unsigned char>(c[6]));
  const bool corsica =
      department_tens == '2' && (department_units == 'A' || department_units == 'B');
  if (corsica) c[6] = '0';
  if (!AllDigits(c, 15)) return false;
  const Digits d = CollectDigits(c, "");
  if (!IsOneOf("123478", c[0])) return false;
  const int month = d.Number(3, 2);
  if (!((month >= 1 && month <= 12) || month == 20 || (month >= 30 && month <= 42) ||
        month >= 50)) {
    return false;
  }
  if (d.Number(10, 3) == 0) return false;
  // N mod 97 over 13 digits, Corsica's "2A"/"2B" read as 19 and 18.
  int64_t n = 0;
  for (size_t i = 0; i < 13; ++i) n = n * 10 + d.At(i);
  if (corsica) n -= (department_units == 'A' ? 1'000'000 : 2'000'000);
  const int key = d.Number(13, 2);
  return key == 97 - static_cast<int>(n % 97);
}

bool IsValidNlBsn(absl::string_view value) {
  const std::string c = Ungrouped(value, 9, '.', {4, 7});  // "1234.56.782".
  if (!AllDigits(c, 9)) return false;
  const Digits d = CollectDigits(c, "");
  int sum = -d.At(8);
  for (size_t i = 0; i < 8; ++i) sum += d.At(i) * static_cast<int>(9 - i);
  return sum % 11 == 0 && d.View() != "000000000";
}

bool IsValidSePersonalIdentityNumber(absl::string_view value) {
  const Digits d = CollectDigits(value, "-+");
  if (d.size != 10 && d.size != 12) return false;
  // At most one separator, before the last four digits.
  const size_t separator = value.find_first_of("-+");
  if (separator != absl::string_view::npos &&
      (separator != value.size() - 5 ||
       value.find_first_of("-+", separator + 1) != absl::string_view::npos)) {
    return false;
  }
  const size_t from = d.size - 10;  // The century digits take no part in the check.
  int sum = 0;
  for (size_t i = 0; i < 10; ++i) {
    int digit = d.At(from + i) * (i % 2 == 0 ? 2 : 1);
    sum += digit > 9 ? digit - 9 : digit;
  }
  if (sum % 10 != 0) return false;
  const int day = d.Number(from + 4, 2);
  // In the 10-digit form '+' says the person is 100 or older: "00" is 1900, no leap year;
  // otherwise any century has the same leap years.
  const int century = value.find('+') != absl::string_view::npos ? 1900 : 2000;
  const int year = d.size == 12 ? d.Number(0, 4) : century + d.Number(0, 2);
  return IsDate(year, d.Number(from + 2, 2), day > 60 ? day - 60 : day);
}

bool IsValidDeTaxId(absl::string_view value) {
  const std::string digits = Ungrouped(value, 11, ' ', {2, 6, 10});  // "86 095 742 719".
  if (!AllDigits(digits, 11) || digits[0] == '0') return false;
  std::array<int, 10> count{};
  for (size_t i = 0; i < 10; ++i) ++count[static_cast<size_t>(digits[i] - '0')];
  int repeated = 0;
  for (int n : count) {
    if (n > 3) return false;
    repeated += n > 1 ? 1 : 0;
  }
  if (repeated != 1) return false;
  for (size_t i = 0; i + 2 < 10; ++i) {
    if (digits[i] == digits[i + 1] && digits[i] == digits[i + 2]) return false;
  }
  return PassesMod11_10(digits);
}

bool IsValidDeHealthInsuranceNumber(absl::string_view value) {
  if (value.size() != 10 || !IsUpper(value[0]) || !AllDigits(value.substr(1), 9)) return false;
  const int letter = value[0] - 'A' + 1;
  std::array<int, 10> digits{letter / 10, letter % 10};
  for (size_t i = 0; i < 8; ++i) digits[i + 2] = value[i + 1] - '0';
  int sum = 0;
  for (size_t i = 0; i < digits.size(); ++i) {
    const int product = digits[i] * (i % 2 == 0 ? 1 : 2);
    sum += product > 9 ? product - 9 : product;
  }
  return sum % 10 == value[9] - '0';
}

bool IsValidBeNationalNumber(absl::string_view value) {
  const Digits d = CollectDigits(value, " .-");
  if (d.size != 11) return false;
  const int serial = d.Number(6, 3);
  if (serial < 1 || serial > 998) return false;
  // The check over the first nine digits, or over "2" and them for people born since 2000.
  const int64_t first_nine = d.Number(0, 9);
  const int check = d.Number(9, 2);
  int century;
  if (97 - first_nine % 97 == check) {
    century = 1900;
  } else if (97 - (2'000'000'000 + first_nine) % 97 == check) {
    century = 2000;
  } else {
    return false;
  }
  int month = d.Number(2, 2);
  if (month >= 40) {
    month -= 40;  // A BIS number, sex known.
  } else if (month >= 20) {
    month -= 20;  // A BIS number, sex unknown.
  }
  const int day = d.Number(4, 2);
  if (month > 12 || day > 31) return false;
  // 0 stands for a month or day not known.
  return month == 0 || day == 0 || IsDate(century + d.Number(0, 2), month, day);
}

bool IsValidIePpsn(absl::string_view value) {
  static constexpr absl::string_view kCheck = "WABCDEFGHIJKLMNOPQRSTUV";
  std::string c;
  for (char ch : value) {
    if (ch != ' ') c.push_back(absl::ascii_toupper(static_cast<unsigned char>(ch)));
  }
  if ((c.size() != 8 && c.size() != 9) || !AllDigits(c.substr(0, 7), 7) ||
      value.find(' ') != value.rfind(' ') ||
      (value.find(' ') != absl::string_view::npos && value.find(' ') != 7)) {
    return false;
  }
  int sum = 0;
  for (size_t i = 0; i < 7; ++i) sum += (c[i] - '0') * static_cast<int>(8 - i);
  if (c.size() == 9) {
    if (!IsOneOf("ABWTX", c[8])) return false;  // H: a company's, not a person's.
    if (c[8] == 'A' || c[8] == 'B') sum += 9 * static_cast<int>(kCheck.find(c[8]));
  }
  return c[7] == kCheck[static_cast<size_t>(sum % 23)];
}

bool IsValidDkCpr(absl::string_view value) {
  const Digits d = CollectDigits(value, "- ");
  if (d.size != 10 || (value.size() == 11 && value[6] != '-' && value[6] != ' ')) return false;
  const int year = d.Number(4, 2);
  const int seventh = d.At(6);
  int century = 2000;
  if (seventh <= 3 || ((seventh == 4 || seventh == 9) && year >= 37)) {
    century = 1900;
  } else if (seventh >= 5 && seventh <= 8 && year >= 58) {
    century = 1800;
  }
  return IsDate(century + year, d.Number(2, 2), d.Number(0, 2));
}

bool IsValidAtSocialInsuranceNumber(absl::string_view value) {
  static constexpr int kWeights[] = {3, 7, 9, 0, 5, 8, 4, 2, 1, 6};
  const std::string digits = Ungrouped(value, 10, ' ', {4});  // "1237 010180".
  if (!AllDigits(digits, 10) || digits[0] == '0') return false;
  int sum = 0;
  for (size_t i = 0; i < 10; ++i) sum += (digits[i] - '0') * kWeights[i];
  return sum % 11 == digits[3] - '0';
}

bool IsValidPtTaxId(absl::string_view value) {
  const std::string digits = Ungrouped(value, 9, ' ', {3, 7});  // "123 456 789".
  if (!AllDigits(digits, 9)) return false;
  // A person's: 1, 2 or 3, or 45 for one not resident.
  if (!IsOneOf("123", digits[0]) && !absl::StartsWith(digits, "45")) return false;
  int sum = 0;
  for (size_t i = 0; i < 8; ++i) sum += (digits[i] - '0') * static_cast<int>(9 - i);
  const int rest = sum % 11;
  return digits[8] - '0' == (rest < 2 ? 0 : 11 - rest);
}

namespace {

// The value of a character of a machine-readable zone in a check digit, or -1 for a
// character no zone holds.
int MrzValue(char c) {
  if (IsDigit(c)) return c - '0';
  if (IsUpper(c)) return c - 'A' + 10;
  return c == '<' ? 0 : -1;
}

// Whether `check` is the check digit of `field` (weights 7 3 1).
bool MrzChecks(absl::string_view field, char check) {
  static constexpr int kWeights[] = {7, 3, 1};
  int sum = 0;
  for (size_t i = 0; i < field.size(); ++i) sum += MrzValue(field[i]) * kWeights[i % 3];
  return IsDigit(check) && check - '0' == sum % 10;
}

bool IsMrzLine(absl::string_view line, size_t width) {
  return line.size() == width &&
         std::all_of(line.begin(), line.end(), [](char c) { return MrzValue(c) >= 0; });
}

// Whether every character of `field` is a letter or '<' (a name, a state).
bool IsMrzAlpha(absl::string_view field) {
  return std::all_of(field.begin(), field.end(), [](char c) { return IsUpper(c) || c == '<'; });
}

// A date YYMMDD followed by its check digit.
bool IsMrzDate(absl::string_view date_and_check) {
  const absl::string_view date = date_and_check.substr(0, 6);
  if (!AllDigits(date, 6)) return false;
  const int month = (date[2] - '0') * 10 + (date[3] - '0');
  const int day = (date[4] - '0') * 10 + (date[5] - '0');
  return IsDate(2000, month, day) && MrzChecks(date, date_and_check[6]);  // 2000: a leap year.
}

bool IsMrzSex(char c) { return IsOneOf("MFX<", c); }

// The data line of a TD3 (44) or TD2 (36): document number and check, nationality, birth
// date and check, sex, expiry date and check, then (`composite`) a TD3's personal number
// and check and the composite check; a visa's has none.
bool IsMrzDataLine(absl::string_view line, bool composite) {
  if (!IsMrzLine(line, 44) && !IsMrzLine(line, 36)) return false;
  if (!MrzChecks(line.substr(0, 9), line[9]) || !IsMrzAlpha(line.substr(10, 3)) ||
      !IsMrzDate(line.substr(13, 7)) || !IsMrzSex(line[20]) || !IsMrzDate(line.substr(21, 7))) {
    return false;
  }
  if (!composite) return true;
  const size_t last = line.size() - 1;
  if (line.size() == 44) {
    const absl::string_view personal = line.substr(28, 14);
    const bool unused = personal.find_first_not_of('<') == absl::string_view::npos;
    if (unused ? !IsOneOf("<0", line[42]) : !MrzChecks(personal, line[42])) return false;
  }
  return MrzChecks(absl::StrCat(line.substr(0, 10), line.substr(13, 7), line.substr(21, last - 21)),
                   line[last]);
}

// The three lines of a TD1 identity card.
bool IsMrzTd1(absl::string_view first, absl::string_view second, absl::string_view third) {
  if (!IsMrzLine(first, 30) || !IsMrzLine(second, 30) || !IsMrzLine(third, 30) ||
      !IsOneOf("ACI", first[0]) || !IsMrzAlpha(first.substr(1, 4)) || !IsMrzAlpha(third)) {
    return false;
  }
  if (first[14] != '<') {
    if (!MrzChecks(first.substr(5, 9), first[14])) return false;
  } else {
    // A number longer than nine: its rest and its check digit open the optional data.
    size_t filler = first.find('<', 15);
    if (filler == absl::string_view::npos) filler = first.size();
    if (filler < 17 || !MrzChecks(absl::StrCat(first.substr(5, 9), first.substr(15, filler - 16)),
                                  first[filler - 1])) {
      return false;
    }
  }
  return IsMrzDate(second.substr(0, 7)) && IsMrzSex(second[7]) && IsMrzDate(second.substr(8, 7)) &&
         IsMrzAlpha(second.substr(15, 3)) &&
         MrzChecks(absl::StrCat(first.substr(5, 25), second.substr(0, 7), second.substr(8, 7),
                                second.substr(18, 11)),
                   second[29]);
}

}  // namespace

bool IsValidIdentityDocumentMrz(absl::string_view value) {
  auto skip_spaces = [](absl::string_view& v) {
    while (!v.empty() && (v[0] == ' ' || v[0] == '\t')) v.remove_prefix(1);
  };
  auto line_break = [&](absl::string_view& v) {
    absl::string_view rest = v;
    skip_spaces(rest);
    if (!absl::ConsumePrefix(&rest, "\r\n") && !absl::ConsumePrefix(&rest, "\n") &&
        !absl::ConsumePrefix(&rest, "\\r\\n") && !absl::ConsumePrefix(&rest, "\\n")) {
      return false;
    }
    v = rest;
    return true;
  };
  // The lines, without the breaks, the spaces around them and one blank line between.
  absl::string_view lines[3];
  size_t count = 0;
  while (true) {
    size_t end = 0;
    while (end < value.size() && MrzValue(value[end]) >= 0) ++end;
    if (count == 3) return false;
    lines[count++] = value.substr(0, end);
    value.remove_prefix(end);
    if (value.empty()) break;
    if (!line_break(value)) return false;
    line_break(value);  // A blank line.
    skip_spaces(value);
  }
  switch (count) {
    case 1:
      return IsMrzDataLine(lines[0], true);
    case 2: {
      const absl::string_view first = lines[0];
      const bool td3 = IsMrzLine(first, 44) && IsOneOf("PV", first[0]);
      const bool td2 = IsMrzLine(first, 36) && IsOneOf("ACIPV", first[0]);
      return (td3 || td2) && IsMrzAlpha(first) && lines[1].size() == first.size() &&
             IsMrzDataLine(lines[1], first[0] != 'V');
    }
    default:
      return IsMrzTd1(lines[0], lines[1], lines[2]);
  }
}

namespace {

// Digits weighted by `weights` (as many), summed.
int WeightedSum(absl::string_view digits, std::initializer_list<int> weights) {
  int sum = 0;
  size_t i = 0;
  for (int w : weights) sum += (digits[i++] - '0') * w;
  return sum;
}

// `digits` as a number (at most 18).
int64_t NumberOf(absl::string_view digits) {
  int64_t n = 0;
  for (char c : digits) n = n * 10 + (c - '0');
  return n;
}

bool VatAt(absl::string_view n) {
  if (n.size() != 9 || n[0] != 'U' || !AllDigits(n.substr(1), 8)) return false;
  return n[8] - '0' == (6 - LuhnChecksum(n.substr(1, 7)) + 10) % 10;
}

bool VatBe(absl::string_view n) {
  return AllDigits(n, 10) && IsOneOf("01", n[0]) && NumberOf(n) > 0 &&
         (NumberOf(n.substr(0, 8)) + NumberOf(n.substr(8))) % 97 == 0;
}

bool VatCy(absl::string_view n) {
  static constexpr int kEven[] = {1, 0, 5, 7, 9, 13, 15, 17, 19, 21};
  if (n.size() != 9 || !AllDigits(n.substr(0, 8), 8) || absl::StartsWith(n, "12")) return false;
  int sum = 0;
  for (size_t i = 0; i < 8; ++i) sum += i % 2 == 0 ? kEven[n[i] - '0'] : n[i] - '0';
  return n[8] == 'A' + sum % 26;
}

bool VatDe(absl::string_view n) { return AllDigits(n, 9) && n[0] != '0' && PassesMod11_10(n); }

bool VatDk(absl::string_view n) {
  return AllDigits(n, 8) && n[0] != '0' && WeightedSum(n, {2, 7, 6, 5, 4, 3, 2, 1}) % 11 == 0;
}

bool VatEe(absl::string_view n) {
  return AllDigits(n, 9) && WeightedSum(n, {3, 7, 1, 3, 7, 1, 3, 7, 1}) % 10 == 0;
}

bool VatEl(absl::string_view n) {
  if (!AllDigits(n, 9)) return false;
  int check = 0;
  for (size_t i = 0; i < 8; ++i) check = check * 2 + (n[i] - '0');
  return n[8] - '0' == check * 2 % 11 % 10;
}

bool VatEs(absl::string_view n) {
  if (n.size() != 9) return false;
  if (IsValidEsNif(n) || IsValidEsNie(n)) return true;
  // A CIF: an organisation's letter, seven digits, a check digit or letter.
  if (!IsOneOf("ABCDEFGHJNPQRSUVW", n[0]) || !AllDigits(n.substr(1, 7), 7)) return false;
  const int check = (10 - LuhnChecksum(absl::StrCat(n.substr(1, 7), "0"))) % 10;
  return n[8] == '0' + check || n[8] == "JABCDEFGHI"[check];
}

bool VatFi(absl::string_view n) {
  return AllDigits(n, 8) && WeightedSum(n, {7, 9, 10, 5, 8, 4, 2, 1}) % 11 == 0;
}

bool VatFr(absl::string_view n) {
  if (!AllDigits(n, 11)) return false;
  const absl::string_view siren = n.substr(2);
  return !absl::StartsWith(siren, "000") && LuhnChecksum(siren) == 0 &&
         NumberOf(n.substr(0, 2)) == (NumberOf(siren) * 100 + 12) % 97;
}

bool VatHr(absl::string_view n) { return AllDigits(n, 11) && PassesMod11_10(n); }

bool VatHu(absl::string_view n) {
  return AllDigits(n, 8) && WeightedSum(n, {9, 7, 3, 1, 9, 7, 3, 1}) % 10 == 0;
}

bool VatIe(absl::string_view n) {
  static constexpr absl::string_view kAlphabet = "WABCDEFGHIJKLMNOPQRSTUV";
  if ((n.size() != 8 && n.size() != 9) || !AllDigits(n.substr(0, 7), 7)) return false;
  const size_t second = n.size() == 9 ? kAlphabet.find(n[8]) : 0;
  if (second == absl::string_view::npos) return false;
  const int sum = WeightedSum(n, {8, 7, 6, 5, 4, 3, 2}) + 9 * static_cast<int>(second);
  return n[7] == kAlphabet[static_cast<size_t>(sum % 23)];
}

bool VatIt(absl::string_view n) {
  if (!AllDigits(n, 11) || n.substr(0, 7) == "0000000") return false;
  const int64_t province = NumberOf(n.substr(7, 3));
  return (InRange(static_cast<int>(province), 1, 100) || province == 120 || province == 121 ||
          province == 888 || province == 999) &&
         LuhnChecksum(n) == 0;
}

bool VatLt(absl::string_view n) {
  if (!(AllDigits(n, 9) && n[7] == '1') && !(AllDigits(n, 12) && n[10] == '1')) return false;
  const size_t body = n.size() - 1;
  int check = 0;
  for (size_t i = 0; i < body; ++i) check += static_cast<int>(1 + i % 9) * (n[i] - '0');
  check %= 11;
  if (check == 10) {
    check = 0;
    for (size_t i = 0; i < body; ++i) check += static_cast<int>(1 + (i + 2) % 9) * (n[i] - '0');
  }
  return n[body] - '0' == check % 11 % 10;
}

bool VatLu(absl::string_view n) {
  return AllDigits(n, 8) && NumberOf(n.substr(0, 6)) % 89 == NumberOf(n.substr(6));
}

bool VatMt(absl::string_view n) {
  return AllDigits(n, 8) && n[0] != '0' && WeightedSum(n, {3, 4, 6, 7, 8, 9, 10, 1}) % 37 == 0;
}

bool VatNl(absl::string_view n) {
  if (n.size() != 12 || !AllDigits(n.substr(0, 9), 9) || n[9] != 'B' ||
      !AllDigits(n.substr(10), 2) || n.substr(10) == "00" || n.substr(0, 9) == "000000000") {
    return false;
  }
  // A person's btw-id: ISO 7064 MOD 97-10 over "NL" and the number.
  return IsValidNlBsn(n.substr(0, 9)) || Mod97(n, Mod97("NL")) == 1;
}

bool VatPl(absl::string_view n) {
  // A tax office's code first, never 0 (Polish bonds' ISINs, "PL0000...", have one).
  return AllDigits(n, 10) && n[0] != '0' &&
         WeightedSum(n, {6, 5, 7, 2, 3, 4, 5, 6, 7, -1}) % 11 == 0;
}

bool VatPt(absl::string_view n) {
  if (!AllDigits(n, 9) || n[0] == '0') return false;
  const int sum = WeightedSum(n, {9, 8, 7, 6, 5, 4, 3, 2});
  return n[8] - '0' == (11 - sum % 11) % 11 % 10;
}

bool VatRo(absl::string_view n) {
  if (n.size() < 6 || n.size() > 10 || !AllDigits(n, n.size()) || n[0] == '0') return false;
  // The number without its check digit, zero-filled to nine digits.
  const std::string body = absl::StrCat(std::string(10 - n.size(), '0'), n.substr(0, n.size() - 1));
  return n.back() - '0' == 10 * WeightedSum(body, {7, 5, 3, 2, 1, 7, 5, 3, 2}) % 11 % 10;
}

bool VatSe(absl::string_view n) {
  return AllDigits(n, 12) && absl::EndsWith(n, "01") && LuhnChecksum(n.substr(0, 10)) == 0;
}

bool VatSi(absl::string_view n) {
  if (!AllDigits(n, 8) || n[0] == '0') return false;
  const int check = 11 - WeightedSum(n, {8, 7, 6, 5, 4, 3, 2}) % 11;
  return check != 11 && n[7] - '0' == check % 10;
}

bool VatSk(absl::string_view n) {
  // "20..." for an organisation, "10..." for a person (Slovak bonds' ISINs are "SK4...").
  return AllDigits(n, 10) && IsOneOf("12", n[0]) && n[1] == '0' && IsOneOf("234789", n[2]) &&
         NumberOf(n) % 11 == 0;
}

struct VatCountry {
  absl::string_view prefix;
  bool (*check)(absl::string_view national);
};

constexpr VatCountry kVatCountries[] = {
    {"AT", VatAt}, {"BE", VatBe}, {"CY", VatCy}, {"DE", VatDe}, {"DK", VatDk},
    {"EE", VatEe}, {"EL", VatEl}, {"ES", VatEs}, {"FI", VatFi}, {"FR", VatFr},
    {"GR", VatEl}, {"HR", VatHr}, {"HU", VatHu}, {"IE", VatIe}, {"IT", VatIt},
    {"LT", VatLt}, {"LU", VatLu}, {"MT", VatMt}, {"NL", VatNl}, {"PL", VatPl},
    {"PT", VatPt}, {"RO", VatRo}, {"SE", VatSe}, {"SI", VatSi}, {"SK", VatSk}};

}  // namespace

bool IsValidEuVatNumber(absl::string_view value) {
  if (value.size() < 2) return false;
  const absl::string_view prefix = value.substr(0, 2);
  absl::string_view written = value.substr(2);
  if (absl::StartsWith(written, " ")) written.remove_prefix(1);
  // The national part: single separators between its characters only.
  std::string national;
  for (size_t i = 0; i < written.size(); ++i) {
    const char c = written[i];
    if (IsDigit(c) || IsUpper(c)) {
      national.push_back(c);
    } else if (!IsOneOf(" .", c) || i == 0 || i + 1 == written.size() ||
               IsOneOf(" .", written[i - 1])) {
      return false;
    }
  }
  for (const VatCountry& country : kVatCountries) {
    if (country.prefix == prefix) return country.check(national);
  }
  return false;
}

bool IsValidBitcoinBase58Check(absl::string_view value) {
  static constexpr std::array<int8_t, 256> kAlphabet =
      IndexTable("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz");
  constexpr size_t kSize = 25;
  if (value.size() < 26 || value.size() > 35) return false;
  size_t leading_ones = 0;
  while (leading_ones < value.size() && value[leading_ones] == '1') ++leading_ones;
  // The number in 32-bit limbs, least significant first: 25 bytes are 200 bits, the top limb
  // holds the last 8.
  std::array<uint64_t, (kSize + 3) / 4> limbs{};
  for (char c : value) {
    const int digit = kAlphabet[static_cast<unsigned char>(c)];
    if (digit < 0) return false;
    uint64_t carry = static_cast<uint64_t>(digit);
    for (uint64_t& limb : limbs) {
      carry += 58 * limb;
      limb = carry & 0xffffffffu;
      carry >>= 32;
    }
    if (carry != 0 || limbs.back() > 0xff) return false;  // More than 25 bytes.
  }
  std::array<uint8_t, kSize> bytes{};  // Big-endian.
  for (size_t j = 0; j < kSize; ++j) {
    bytes[kSize - 1 - j] = static_cast<uint8_t>(limbs[j / 4] >> (8 * (j % 4)));
  }
  size_t leading_zero_bytes = 0;
  while (leading_zero_bytes < kSize && bytes[leading_zero_bytes] == 0) ++leading_zero_bytes;
  // Base58check writes each leading zero byte as one '1', and nothing else as a zero byte.
  if (leading_zero_bytes != leading_ones) return false;
  if (bytes[0] != 0x00 && bytes[0] != 0x05) return false;
  const absl::string_view payload(reinterpret_cast<const char*>(bytes.data()), kSize - 4);
  const std::string digest = crypto::Sha256(crypto::Sha256(payload));
  return std::memcmp(digest.data(), bytes.data() + kSize - 4, 4) == 0;
}

bool IsValidBitcoinBech32(absl::string_view value) {
  static constexpr std::array<int8_t, 256> kCharset =
      IndexTable("qpzry9x8gf2tvdw0s3jn54khce6mua7l");
  constexpr uint32_t kBech32 = 1;
  constexpr uint32_t kBech32m = 0x2bc830a3;
  if ((value.size() != 42 && value.size() != 62) || !absl::StartsWith(value, "bc1")) {
    return false;
  }
  // hrp_expand("bc"), then the data part's 5-bit values.
  std::array<uint8_t, 5 + 62> values{'b' >> 5, 'c' >> 5, 0, 'b' & 31, 'c' & 31};
  size_t count = 5;
  for (char c : value.substr(3)) {
    const int v = kCharset[static_cast<unsigned char>(c)];
    if (v < 0) return false;
    values[count++] = static_cast<uint8_t>(v);
  }
  const uint32_t polymod = Bech32Polymod(values.data(), count);
  return polymod == kBech32 || polymod == kBech32m;
}

bool IsValidDeaNumber(absl::string_view value) {
  static constexpr absl::string_view kRegistrantTypes = "ABCDEFGHJKLMPRSTX";
  if (value.size() != 9 || kRegistrantTypes.find(value[0]) == absl::string_view::npos) {
    return false;
  }
  if (!IsUpper(value[1]) && value[1] != '9') return false;
  const Digits d = CollectDigits(value.substr(2), "");
  if (d.size != 7) return false;
  const int sum = d.At(0) + d.At(2) + d.At(4) + 2 * (d.At(1) + d.At(3) + d.At(5));
  return sum % 10 == d.At(6);
}

bool IsValidPemPrivateKey(absl::string_view value) {
  constexpr absl::string_view kBegin = "-----BEGIN ";
  constexpr absl::string_view kEnd = "-----END ";
  constexpr absl::string_view kDashes = "-----";
  if (value.size() > kMaxPemBlockBytes || !absl::StartsWith(value, kBegin)) return false;
  const size_t label_end = value.find(kDashes, kBegin.size());
  if (label_end == absl::string_view::npos) return false;
  const absl::string_view label = value.substr(kBegin.size(), label_end - kBegin.size());
  if (!absl::EndsWith(label, "PRIVATE KEY") && !absl::EndsWith(label, "PRIVATE KEY BLOCK")) {
    return false;
  }
  const size_t header_size = label_end + kDashes.size();
  const absl::string_view rest = value.substr(header_size);
  if (absl::StrContains(rest, kEnd)) {
    const std::string tail = absl::StrCat(kEnd, label, kDashes);
    return rest.size() >= tail.size() && absl::EndsWith(rest, tail);
  }
  // No END line: the header, armour headers ("Version: ...") and the base64 run after them,
  // in lines that break as in a file or as "\n" in a JSON or YAML string, maybe indented.
  size_t base64 = 0;
  const std::string lines = absl::StrReplaceAll(rest, {{"\\r\\n", "\n"}, {"\\n", "\n"}});
  for (absl::string_view line : absl::StrSplit(lines, absl::ByAnyChar("\r\n"))) {
    line = absl::StripLeadingAsciiWhitespace(line);
    if (line.find(": ") != absl::string_view::npos && base64 == 0) continue;
    for (char c : line) {
      if (!IsDigit(c) && !IsUpper(c) && !(c >= 'a' && c <= 'z') && c != '+' && c != '/' &&
          c != '=') {
        return false;
      }
    }
    base64 += line.size();
  }
  return base64 >= kMinTruncatedPemBase64;
}

bool IsValidBase64PemPrivateKey(absl::string_view value) {
  if (value.size() > kMaxPemBlockBytes * 4 / 3 + 4) return false;
  absl::string_view groups = absl::StripSuffix(absl::StripSuffix(value, "="), "=");
  if (!std::all_of(groups.begin(), groups.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
      })) {
    return false;
  }
  if (groups.size() < value.size()) {
    groups = value;  // Padded: whole groups.
  } else {
    groups.remove_suffix(groups.size() % 4);  // Maybe cut: its whole groups.
  }
  std::string decoded;
  return absl::Base64Unescape(groups, &decoded) &&
         IsValidPemPrivateKey(absl::StripTrailingAsciiWhitespace(decoded));
}

namespace {

bool IsBase62(char c) { return IsDigit(c) || IsUpper(c) || (c >= 'a' && c <= 'z'); }

// Whether `value` is `prefix` followed by `min` to `max` bytes that `allowed` accepts.
template <typename Allowed>
bool IsPrefixedRun(absl::string_view value, absl::string_view prefix, size_t min, size_t max,
                   Allowed allowed) {
  if (!absl::ConsumePrefix(&value, prefix) || value.size() < min || value.size() > max) {
    return false;
  }
  return std::all_of(value.begin(), value.end(), allowed);
}

bool IsBase64Url(char c) { return IsBase62(c) || c == '_' || c == '-'; }
bool IsBase64Byte(char c) { return IsBase62(c) || c == '+' || c == '/'; }

// Whether `body`, the random part of a token, is a documentation placeholder
// ("xxxxxxxxxxxxxxxxxxxx", "0000..."): fewer than 6 distinct bytes, which a random string of
// 20 or more base62 characters has with a probability below 10^-15 (C(62,5) 5^20 / 62^20).
bool IsPlaceholder(absl::string_view body) {
  std::array<bool, 256> seen{};
  size_t distinct = 0;
  for (char c : body) {
    bool& s = seen[static_cast<unsigned char>(c)];
    distinct += !s;
    s = true;
    if (distinct >= 6) return false;
  }
  return true;
}

// Whether `value` holds a digit or '_': the detector's prefilter finds a token of 15 bytes or
// more only so (see MayHoldFinding in detector.cc). A random token of base64url characters
// long enough to be a secret lacks both with a probability below 10^-5.
bool HasDigitOrUnderscore(absl::string_view value) {
  return std::any_of(value.begin(), value.end(), [](char c) { return IsDigit(c) || c == '_'; });
}

// `prefix` then `min` to `max` bytes of `allowed` that are not a placeholder.
template <typename Allowed>
bool IsPrefixedToken(absl::string_view value, absl::string_view prefix, size_t min, size_t max,
                     Allowed allowed) {
  return IsPrefixedRun(value, prefix, min, max, allowed) &&
         !IsPlaceholder(value.substr(prefix.size()));
}

}  // namespace

bool IsValidPolicySuiteKey(absl::string_view value) {
  for (absl::string_view prefix : ids::kApiKeyPrefixes) {
    if (IsPrefixedToken(value, prefix, 66, 66, IsBase62)) return true;
  }
  return false;
}

bool IsValidOpenAiApiKey(absl::string_view value) {
  if (IsPrefixedToken(value, "sk-", 48, 48, IsBase62)) return true;
  auto allowed = [](char c) { return IsBase62(c) || c == '_' || c == '-'; };
  for (absl::string_view prefix : {"sk-proj-", "sk-svcacct-", "sk-admin-"}) {
    if (IsPrefixedRun(value, prefix, 40, 200, allowed)) {
      return !IsPlaceholder(value.substr(prefix.size()));
    }
  }
  // Other providers' "sk-" keys (Anthropic "sk-ant-api03-...", OpenRouter "sk-or-v1-...",
  // DeepSeek "sk-" + 32 hex, "sk-None-..."): a dash-separated part of 16 or more bytes
  // holding a digit and a letter, which hyphenated words do not have.
  if (!IsPrefixedRun(value, "sk-", 20, 250, allowed) || IsPlaceholder(value.substr(3)))
    return false;
  for (absl::string_view part : absl::StrSplit(value.substr(3), '-')) {
    if (part.size() >= 16 && std::any_of(part.begin(), part.end(), IsDigit) &&
        std::any_of(part.begin(), part.end(), [](char c) { return absl::ascii_isalpha(c); })) {
      return true;
    }
  }
  return false;
}

bool IsValidAwsSecretAccessKey(absl::string_view value) {
  if (value.size() != 40) return false;
  bool digit = false, upper = false, lower = false;
  for (char c : value) {
    if (IsDigit(c)) {
      digit = true;
    } else if (IsUpper(c)) {
      upper = true;
    } else if (c >= 'a' && c <= 'z') {
      lower = true;
    } else if (c != '/' && c != '+') {
      return false;
    }
  }
  return digit && upper && lower;
}

bool IsValidAwsAccessKey(absl::string_view value) {
  auto allowed = [](char c) { return IsUpper(c) || (c >= '2' && c <= '7'); };
  return IsPrefixedToken(value, "AKIA", 16, 16, allowed) ||
         IsPrefixedToken(value, "ASIA", 16, 16, allowed);
}

bool IsValidGithubToken(absl::string_view value) {
  for (absl::string_view prefix : {"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}) {
    if (IsPrefixedToken(value, prefix, 36, 36, IsBase62)) return true;
  }
  return IsPrefixedToken(value, "github_pat_", 82, 82,
                         [](char c) { return IsBase62(c) || c == '_'; });
}

bool IsValidSlackToken(absl::string_view value) {
  if (value.size() < 5 || !absl::StartsWith(value, "xox") ||
      absl::string_view("bpars").find(value[3]) == absl::string_view::npos || value[4] != '-') {
    return false;
  }
  value.remove_prefix(5);
  if (IsPlaceholder(value)) return false;
  const size_t last_dash = value.rfind('-');
  if (last_dash == absl::string_view::npos) return false;
  const absl::string_view tail = value.substr(last_dash + 1);
  if (tail.size() < 8 || tail.size() > 64 || !std::all_of(tail.begin(), tail.end(), IsBase62)) {
    return false;
  }
  size_t groups = 0;
  for (absl::string_view group : absl::StrSplit(value.substr(0, last_dash), '-')) {
    if (group.empty() || group.size() > 20 || !std::all_of(group.begin(), group.end(), IsDigit)) {
      return false;
    }
    ++groups;
  }
  return groups >= 1 && groups <= 5;
}

namespace {

constexpr size_t kLongestJwt = 16384;

}  // namespace

bool IsValidJwt(absl::string_view value) {
  if (value.size() > kLongestJwt || !HasDigitOrUnderscore(value)) return false;
  const std::vector<absl::string_view> parts = absl::StrSplit(value, '.');
  if (parts.size() != 3) return false;
  for (size_t i = 0; i < 3; ++i) {
    const absl::string_view part = parts[i];
    if (!std::all_of(part.begin(), part.end(), IsBase64Url)) return false;
    // The header and the claims are JSON objects: base64url of '{"' is "eyJ".
    if (i < 2 && (part.size() < 4 || part.size() % 4 == 1 || !absl::StartsWith(part, "eyJ"))) {
      return false;
    }
  }
  std::string header;
  if (!absl::WebSafeBase64Unescape(parts[0], &header)) return false;
  const size_t alg = header.find("\"alg\"");
  if (alg == std::string::npos) return false;
  if (!parts[2].empty()) return true;
  // Only an unsecured token ("alg": "none") has no signature: a token of another algorithm
  // cut after its second dot is two segments ending a sentence.
  absl::string_view name = absl::StripLeadingAsciiWhitespace(
      absl::string_view(header).substr(alg + std::strlen("\"alg\"")));
  return absl::ConsumePrefix(&name, ":") &&
         absl::StartsWith(absl::StripLeadingAsciiWhitespace(name), "\"none\"");
}

bool IsValidGoogleApiKey(absl::string_view value) {
  return IsPrefixedToken(value, "AIza", 35, 35, IsBase64Url);
}

bool IsValidStripeApiKey(absl::string_view value) {
  for (absl::string_view prefix : {"sk_live_", "sk_test_", "rk_live_", "rk_test_"}) {
    if (IsPrefixedToken(value, prefix, 24, 247, IsBase62)) return true;
  }
  return false;
}

bool IsValidGitlabToken(absl::string_view value) {
  for (absl::string_view prefix : {"glpat-", "gldt-", "glrt-", "glptt-"}) {
    if (!IsPrefixedToken(value, prefix, 20, 100,
                         [](char c) { return IsBase64Url(c) || c == '.'; })) {
      continue;
    }
    const absl::string_view body = value.substr(prefix.size());
    return body.front() != '.' && body.back() != '.' && !absl::StrContains(body, "..");
  }
  return false;
}

bool IsValidHuggingFaceToken(absl::string_view value) {
  if (!IsPrefixedToken(value, "hf_", 34, 34, [](char c) { return absl::ascii_isalpha(c); })) {
    return false;
  }
  return std::any_of(value.begin() + 3, value.end(), IsUpper) &&
         std::any_of(value.begin() + 3, value.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

bool IsValidNpmToken(absl::string_view value) {
  return IsPrefixedToken(value, "npm_", 36, 36, IsBase62);
}

bool IsValidSendGridApiKey(absl::string_view value) {
  if (!IsPrefixedToken(value, "SG.", 22 + 1 + 43, 22 + 1 + 43,
                       [](char c) { return IsBase64Url(c) || c == '.'; })) {
    return false;
  }
  return value.substr(3).find('.') == 22 &&
         value.substr(3 + 23).find('.') == absl::string_view::npos && HasDigitOrUnderscore(value);
}

bool IsValidAzureStorageKey(absl::string_view value) {
  if (value.size() != 88 || !absl::EndsWith(value, "==")) return false;
  const absl::string_view key = value.substr(0, 86);
  return std::all_of(key.begin(), key.end(), IsBase64Byte) &&
         std::any_of(key.begin(), key.end(), IsDigit) && !IsPlaceholder(key);
}

bool IsValidGroqApiKey(absl::string_view value) {
  return IsPrefixedToken(value, "gsk_", 52, 52, IsBase62);
}

bool IsValidXaiApiKey(absl::string_view value) {
  return IsPrefixedToken(value, "xai-", 80, 80, IsBase62);
}

bool IsValidGoogleOAuthClientSecret(absl::string_view value) {
  return IsPrefixedToken(value, "GOCSPX-", 28, 28, IsBase64Url);
}

bool IsValidGoogleOAuthToken(absl::string_view value) {
  if (!IsPrefixedToken(value, "ya29.", 30, 2048,
                       [](char c) { return IsBase64Url(c) || c == '.'; })) {
    return false;
  }
  return value.back() != '.' && !absl::StrContains(value, "..");
}

bool IsValidPypiToken(absl::string_view value) {
  // "AgEIcHlwaS5vcmc" and "AgENdGVzdC5weXBpLm9yZw" are a macaroon's first bytes in base64,
  // its location ("pypi.org", "test.pypi.org").
  return IsPrefixedToken(value, "pypi-AgEIcHlwaS5vcmc", 50, 2000, IsBase64Url) ||
         IsPrefixedToken(value, "pypi-AgENdGVzdC5weXBpLm9yZw", 50, 2000, IsBase64Url);
}

bool IsValidDockerHubToken(absl::string_view value) {
  return IsPrefixedToken(value, "dckr_pat_", 27, 27, IsBase64Url);
}

bool IsValidWebhookSigningSecret(absl::string_view value) {
  return IsPrefixedToken(value, "whsec_", 32, 88,
                         [](char c) { return IsBase62(c) || c == '+' || c == '/'; });
}

bool IsValidTelegramBotToken(absl::string_view value) {
  absl::ConsumePrefix(&value, "bot");
  const size_t colon = value.find(':');
  if (colon == absl::string_view::npos || colon < 8 || colon > 10 || value[0] == '0' ||
      !std::all_of(value.begin(), value.begin() + colon, IsDigit)) {
    return false;
  }
  return IsPrefixedToken(value.substr(colon + 1), "AA", 33, 33, IsBase64Url);
}

namespace {

// Whether `id` is a Slack id: `lead` + 8 to 12 of [0-9A-Z].
bool IsSlackId(absl::string_view id, char lead) {
  return id.size() >= 9 && id.size() <= 13 && id[0] == lead &&
         std::all_of(id.begin() + 1, id.end(), [](char c) { return IsUpper(c) || IsDigit(c); });
}

}  // namespace

bool IsValidSlackWebhookUrl(absl::string_view value) {
  if ((!absl::ConsumePrefix(&value, "https://") && !absl::ConsumePrefix(&value, "http://")) ||
      !absl::ConsumePrefix(&value, "hooks.slack.com/")) {
    return false;
  }
  const bool services = absl::ConsumePrefix(&value, "services/");
  if (!services && !absl::ConsumePrefix(&value, "workflows/") &&
      !absl::ConsumePrefix(&value, "triggers/")) {
    return false;
  }
  const std::vector<absl::string_view> parts = absl::StrSplit(value, '/');
  const absl::string_view secret = parts.back();
  if (services) {
    return parts.size() == 3 && IsSlackId(parts[0], 'T') && IsSlackId(parts[1], 'B') &&
           IsPrefixedRun(secret, "", 24, 24, IsBase62) && !IsPlaceholder(secret);
  }
  if (parts.size() < 3 || parts.size() > 4 || !IsSlackId(parts[0], 'T') ||
      !IsPrefixedRun(secret, "", 24, 64, IsBase62) || IsPlaceholder(secret)) {
    return false;
  }
  return std::all_of(parts.begin() + 1, parts.end() - 1, [](absl::string_view part) {
    return IsPrefixedRun(part, "", 1, 24, IsBase62);
  });
}

bool IsValidSlackAppToken(absl::string_view value) {
  if (!absl::ConsumePrefix(&value, "xapp-")) return false;
  const std::vector<absl::string_view> parts = absl::StrSplit(value, '-');
  if (parts.size() != 4 || parts[0].size() != 1 || !IsDigit(parts[0][0]) ||
      !IsSlackId(parts[1], 'A') || parts[2].size() < 10 || parts[2].size() > 16 ||
      !std::all_of(parts[2].begin(), parts[2].end(), IsDigit) || parts[3].size() != 64) {
    return false;
  }
  return std::all_of(parts[3].begin(), parts[3].end(),
                     [](char c) { return IsDigit(c) || (c >= 'a' && c <= 'f'); }) &&
         !IsPlaceholder(parts[3]);
}

namespace {

// Whether `value` is 32 bytes in base64: 43 of [A-Za-z0-9+/] and '=', not a placeholder.
bool IsBase64Of32Bytes(absl::string_view value) {
  return value.size() == 44 && value.back() == '=' &&
         std::all_of(value.begin(), value.end() - 1, IsBase64Byte) &&
         !IsPlaceholder(value.substr(0, 43));
}

}  // namespace

bool IsValidAzureSharedAccessKey(absl::string_view value) { return IsBase64Of32Bytes(value); }

bool IsValidAzureSasSignature(absl::string_view value) {
  if (!std::any_of(value.begin(), value.end(), IsDigit)) return false;
  std::string decoded;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '%') {
      decoded.push_back(value[i]);
      continue;
    }
    if (i + 2 >= value.size()) return false;
    const std::string code = absl::AsciiStrToUpper(value.substr(i + 1, 2));
    if (code == "2B") {
      decoded.push_back('+');
    } else if (code == "2F") {
      decoded.push_back('/');
    } else if (code == "3D") {
      decoded.push_back('=');
    } else {
      return false;
    }
    i += 2;
  }
  return IsBase64Of32Bytes(decoded);
}

namespace {

bool IsLowerHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f'); }

}  // namespace

bool IsValidPerplexityApiKey(absl::string_view value) {
  return IsPrefixedToken(value, "pplx-", 48, 48, IsBase62);
}

bool IsValidReplicateApiToken(absl::string_view value) {
  return IsPrefixedToken(value, "r8_", 37, 37, IsBase64Url);
}

bool IsValidLangSmithApiKey(absl::string_view value) {
  if (!absl::ConsumePrefix(&value, "lsv2_pt_") && !absl::ConsumePrefix(&value, "lsv2_sk_")) {
    return false;
  }
  return value.size() == 43 && IsPrefixedRun(value.substr(0, 32), "", 32, 32, IsLowerHex) &&
         value[32] == '_' && IsPrefixedRun(value.substr(33), "", 10, 10, IsLowerHex) &&
         !IsPlaceholder(value);
}

bool IsValidDatabricksToken(absl::string_view value) {
  if (!absl::ConsumePrefix(&value, "dapi")) return false;
  if (value.size() == 34 && value[32] == '-' && IsDigit(value[33])) value.remove_suffix(2);
  return IsPrefixedRun(value, "", 32, 32, IsLowerHex) &&
         std::any_of(value.begin(), value.end(), IsDigit) && !IsPlaceholder(value);
}

bool IsValidAtlassianApiToken(absl::string_view value) {
  return IsPrefixedToken(value, "ATATT3", 186, 186,
                         [](char c) { return IsBase64Url(c) || c == '='; });
}

bool IsValidVaultToken(absl::string_view value) {
  return (IsPrefixedToken(value, "hvs.", 90, 120, IsBase64Url) ||
          IsPrefixedToken(value, "hvb.", 138, 300, IsBase64Url)) &&
         std::any_of(value.begin() + 4, value.end(), IsDigit);
}

bool IsValidAzureClientSecret(absl::string_view value) {
  auto allowed = [](char c) { return IsBase62(c) || c == '_' || c == '~' || c == '.'; };
  if (value.size() < 37 || value.size() > 40 ||
      !std::all_of(value.begin(), value.begin() + 3, allowed) || !IsDigit(value[3]) ||
      value.substr(4, 2) != "Q~") {
    return false;
  }
  const absl::string_view rest = value.substr(6);
  return std::all_of(rest.begin(), rest.end(), [&](char c) { return allowed(c) || c == '-'; }) &&
         !IsPlaceholder(rest);
}

bool IsValidDigitalOceanToken(absl::string_view value) {
  for (absl::string_view prefix : {"dop_v1_", "doo_v1_", "dor_v1_"}) {
    if (IsPrefixedToken(value, prefix, 64, 64, IsLowerHex)) return true;
  }
  return false;
}

bool IsValidPostmanApiKey(absl::string_view value) {
  if (!absl::ConsumePrefix(&value, "PMAK-")) return false;
  return value.size() == 59 && IsPrefixedRun(value.substr(0, 24), "", 24, 24, IsLowerHex) &&
         value[24] == '-' && IsPrefixedRun(value.substr(25), "", 34, 34, IsLowerHex) &&
         !IsPlaceholder(value);
}

bool IsValidGrafanaToken(absl::string_view value) {
  if (!absl::ConsumePrefix(&value, "glsa_")) return false;
  return value.size() == 41 && IsPrefixedRun(value.substr(0, 32), "", 32, 32, IsBase62) &&
         value[32] == '_' && IsPrefixedRun(value.substr(33), "", 8, 8, IsLowerHex) &&
         !IsPlaceholder(value.substr(0, 32));
}

bool IsValidDiscordBotToken(absl::string_view value) {
  const std::vector<absl::string_view> parts = absl::StrSplit(value, '.');
  if (parts.size() != 3 || parts[0].size() < 23 || parts[0].size() > 27 || parts[1].size() != 6 ||
      parts[2].size() < 27 || parts[2].size() > 38 ||
      !std::all_of(value.begin(), value.end(), [](char c) { return IsBase64Url(c) || c == '.'; }) ||
      !std::any_of(value.begin(), value.end(), IsDigit) || IsPlaceholder(parts[2])) {
    return false;
  }
  std::string id;
  return absl::WebSafeBase64Unescape(parts[0], &id) && id.size() >= 17 && id.size() <= 20 &&
         id[0] != '0' && std::all_of(id.begin(), id.end(), IsDigit);
}

namespace {

// Whether a URL's password stands for one rather than being one: a variable or template
// reference ("$DB_PASSWORD", "${DB_PASSWORD}", "$(cat /run/secret)", "{{password}}",
// "%(password)s", "{password}", a format's "%s" or "{}"), a value Jasypt encrypted
// ("ENC(...)"), a placeholder ("<password>", "[token]", "password", "changeme", "****",
// "xxxxxx").
bool StandsForAPassword(absl::string_view password) {
  static constexpr absl::string_view kPlaceholders[] = {
      "password", "passwd", "pass", "pwd", "secret", "changeme", "token", "mypassword",
      "yourpassword", "your_password", "your-password", "yourtoken", "your_token", "pat",
      // The word in other languages (a message catalogue's labels), Java keystores' default.
      "passwort", "kennwort", "wachtwoord", "contraseña", "contrasena", "senha", "salasana",
      "lösenord", "hasło", "haslo", "adgangskode", "jeton", "geheimnis", "secreto", "segreto",
      "changeit",
      // Formats' placeholders.
      "%s", "%v", "{}"};
  auto enclosed = [password](absl::string_view open, absl::string_view close) {
    return password.size() > open.size() + close.size() && absl::StartsWith(password, open) &&
           absl::EndsWith(password, close);
  };
  if (enclosed("${", "}") || enclosed("$(", ")") || enclosed("{{", "}}") || enclosed("%(", ")s") ||
      enclosed("{", "}") || enclosed("<", ">") || enclosed("[", "]") || enclosed("ENC(", ")")) {
    return true;
  }
  if (password.size() >= 2 && password[0] == '$' &&
      (absl::ascii_isalpha(static_cast<unsigned char>(password[1])) || password[1] == '_') &&
      std::all_of(password.begin() + 1, password.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
      })) {
    return true;
  }
  if (password.size() >= 3 &&
      std::all_of(password.begin(), password.end(), [&](char c) { return c == password[0]; })) {
    return true;
  }
  return std::any_of(
      std::begin(kPlaceholders), std::end(kPlaceholders),
      [password](absl::string_view p) { return absl::EqualsIgnoreCase(password, p); });
}

}  // namespace

namespace {

// Whether `value` holds a placeholder of documentation or a template: "your-api-key-here",
// "INSERT_TOKEN_HERE", "sk_live_...", "REDACTED", "example123", "xxx" in one case (a random
// token's "xXx" is none: one random 40-byte base62 token in ~800 holds one in mixed case).
bool HasPlaceholderPart(absl::string_view value) {
  static constexpr absl::string_view kPlaceholderParts[] = {
      "your", "here",   "example",  "replace", "placeholder", "dummy",
      "fake", "sample", "redacted", "***",     "..."};
  if (absl::StrContains(value, "xxx") || absl::StrContains(value, "XXX")) return true;
  const std::string lower = absl::AsciiStrToLower(value);
  return std::any_of(std::begin(kPlaceholderParts), std::end(kPlaceholderParts),
                     [&](absl::string_view part) { return absl::StrContains(lower, part); });
}

// Whether `value` is a name in code ("self.token", "settings.API_KEY", "string",
// "ACCESS_TOKEN", "env::var", "$this->token", "@token"): an optional sigil ('$', '@'), then
// letters, '_', '.' and '-', and "::" or "->" between names.
bool IsNameInCode(absl::string_view value) {
  if (!value.empty() && (value[0] == '$' || value[0] == '@')) value.remove_prefix(1);
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ||
        (c == '>' && i > 0 && value[i - 1] == '-')) {
      continue;
    }
    if (c == ':' && (i + 1 == value.size() || value[i + 1] == ':')) {  // "::", or cut at it.
      ++i;
      continue;
    }
    return false;
  }
  return true;
}

// Whether `value` is a name in code or a label that names a secret rather than holding one
// ("session_token", "db-password", "API_KEY", "Mot_de_passe"): a name in
// code (letters outside ASCII too) holding the end of a secret setting's name or
// kSecretSettingWord.
bool NamesASecret(absl::string_view value) {
  std::string ascii_letters(value);
  for (char& c : ascii_letters) {
    if (static_cast<unsigned char>(c) >= 0x80) c = 'x';
  }
  if (!IsNameInCode(ascii_letters)) return false;
  const std::string lower = absl::AsciiStrToLower(value);
  if (absl::StrContains(lower, kSecretSettingWord) ||
      std::any_of(std::begin(kSecretSettingNames), std::end(kSecretSettingNames),
                  [&](absl::string_view name) { return absl::StrContains(lower, name); })) {
    return true;
  }
  return std::any_of(std::begin(kSecretKeyNames), std::end(kSecretKeyNames),
                     [&](absl::string_view name) {
                       return absl::StrContains(lower, absl::StrCat(name, "key")) ||
                              absl::StrContains(lower, absl::StrCat(name, "_key")) ||
                              absl::StrContains(lower, absl::StrCat(name, "-key"));
                     });
}

}  // namespace

// Whether `value` is a version or a range of them, as package manifests write them ("^9.0.2",
// "~1.2.0", ">=2.0", "1.x", "v3.1.4-rc.1"): '^', '~', '<', '>', '=' or 'v', then two or more
// parts of digits (or 'x', '*') joined by '.', then nothing or a pre-release or build after '-'
// or '+'.
bool IsVersion(absl::string_view value) {
  size_t i = 0;
  while (i < value.size() &&
         absl::string_view("^~<>=v").find(value[i]) != absl::string_view::npos) {
    ++i;
  }
  for (size_t parts = 1;; ++parts, ++i) {
    const size_t start = i;
    while (i < value.size() && IsDigit(value[i])) ++i;
    if (i == start) {
      if (i == value.size() || (value[i] != 'x' && value[i] != '*')) return false;
      ++i;
    }
    if (i == value.size() || value[i] == '-' || value[i] == '+') return parts >= 2;
    if (value[i] != '.') return false;
  }
}

// Whether `value` is a path of names ("./secrets/db_password.txt", "prod/db/credentials";
// "~/.ssh/id_ed25519" is none: it holds digits): '/' and, between them, names in code, the
// first part "~" or empty too; and either starting as a path does ('/', "./", "../", "~/") or
// all lowercase. A secret in base64 has a digit in some part, or both cases.
bool IsPathOfNames(absl::string_view value) {
  if (!absl::StrContains(value, '/')) return false;
  if (!absl::StartsWith(value, "/") && !absl::StartsWith(value, "./") &&
      !absl::StartsWith(value, "../") && !absl::StartsWith(value, "~/") &&
      std::any_of(value.begin(), value.end(), IsUpper)) {
    return false;
  }
  const std::vector<absl::string_view> parts = absl::StrSplit(value, '/');
  for (size_t i = 0; i < parts.size(); ++i) {
    const absl::string_view part = parts[i];
    if (part.empty() ? i != 0 : !IsNameInCode(part) && part != "~") return false;
  }
  return true;
}

// Whether `value` is a password's hash in the crypt format ("$2b$12$...", "$argon2id$...",
// "$6$..."): not the password.
bool IsPasswordHash(absl::string_view value) {
  static constexpr absl::string_view kSchemes[] = {"$2a$", "$2b$", "$2y$", "$argon2", "$1$",
                                                   "$5$",  "$6$",  "$y$",  "$pbkdf2", "$scrypt$"};
  return std::any_of(std::begin(kSchemes), std::end(kSchemes),
                     [value](absl::string_view s) { return absl::StartsWith(value, s); });
}

// Whether `value` is a label's word rather than a secret: letters only, some outside ASCII
// ("パスワード", "Zugangsschlüssel", "API密钥").
bool IsNonAsciiWord(absl::string_view value) {
  bool non_ascii = false;
  for (char c : value) {
    const unsigned char b = static_cast<unsigned char>(c);
    if (b >= 0x80) {
      non_ascii = true;
    } else if (!absl::ascii_isalpha(b)) {
      return false;
    }
  }
  return non_ascii;
}

// Whether `part` is named as code names things: lowercase letters, digits and '_' starting
// with a letter or '_' ("sha256", "read_secret_version"), or lower camel case, each capital
// followed by a lowercase letter or digit ("getApiKey", "configService"). A random token's
// parts mix cases otherwise ("wODTda1jF").
bool IsNamedAsCode(absl::string_view part) {
  if (part.empty() ||
      !(absl::ascii_islower(static_cast<unsigned char>(part[0])) || part[0] == '_')) {
    return false;
  }
  for (size_t i = 0; i < part.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(part[i]);
    if (absl::ascii_isupper(c)) {
      if (i + 1 == part.size() ||
          !(absl::ascii_islower(static_cast<unsigned char>(part[i + 1])) || IsDigit(part[i + 1]))) {
        return false;
      }
    } else if (!absl::ascii_islower(c) && !IsDigit(c) && c != '_') {
      return false;
    }
  }
  return true;
}

// Whether `value` is a dotted path in code whose parts may hold digits
// ("hashlib.sha256", "vault_client.secrets.kv.v2.read", "req.headers.authorization?.split"):
// two parts or more joined by '.' or "?.", each named as code (IsNamedAsCode), the first
// without digits.
bool IsDottedPathInCode(absl::string_view value) {
  const std::vector<absl::string_view> parts = absl::StrSplit(value, '.');
  if (parts.size() < 2) return false;
  for (size_t i = 0; i < parts.size(); ++i) {
    absl::string_view part = parts[i];
    if (i + 1 < parts.size()) absl::ConsumeSuffix(&part, "?");
    if (!IsNamedAsCode(part) || (i == 0 && std::any_of(part.begin(), part.end(), IsDigit))) {
      return false;
    }
  }
  return true;
}

bool IsValidSecretValue(absl::string_view value) {
  // A value starting with '=' follows "==", a comparison.
  return value.size() >= 6 && value.size() <= kMaxSecretValueBytes && value[0] != '=' &&
         !StandsForAPassword(value) && !std::all_of(value.begin(), value.end(), IsDigit) &&
         !HasPlaceholderPart(value) && !NamesASecret(value) && !IsVersion(value) &&
         !IsPathOfNames(value) && !IsPasswordHash(value) && !IsNonAsciiWord(value);
}

bool IsValidDiscordWebhookUrl(absl::string_view value) {
  if (!absl::ConsumePrefix(&value, "https://") && !absl::ConsumePrefix(&value, "http://")) {
    return false;
  }
  if (!absl::ConsumePrefix(&value, "ptb.")) absl::ConsumePrefix(&value, "canary.");
  if (!absl::ConsumePrefix(&value, "discord.com/api/") &&
      !absl::ConsumePrefix(&value, "discordapp.com/api/")) {
    return false;
  }
  if (value.size() >= 3 && value[0] == 'v' && IsDigit(value[1])) {
    const size_t digits = IsDigit(value[2]) ? 2 : 1;
    if (value.size() <= 1 + digits || value[1 + digits] != '/') return false;
    value.remove_prefix(2 + digits);
  }
  if (!absl::ConsumePrefix(&value, "webhooks/")) return false;
  const size_t slash = value.find('/');
  if (slash == absl::string_view::npos) return false;
  const absl::string_view id = value.substr(0, slash);
  const absl::string_view token = value.substr(slash + 1);
  return id.size() >= 17 && id.size() <= 20 && std::all_of(id.begin(), id.end(), IsDigit) &&
         IsPrefixedRun(token, "", 60, 80, IsBase64Url) && !IsPlaceholder(token) &&
         !HasPlaceholderPart(token);
}

bool IsValidUnquotedSecretValue(absl::string_view value) {
  // Nor a YAML tag ("!vault |", CloudFormation's "!Ref DbPassword").
  return !IsNameInCode(value) && !(value[0] == '!' && IsNameInCode(value.substr(1))) &&
         !IsDottedPathInCode(value) && IsValidSecretValue(value);
}

bool IsValidBasicCredentials(absl::string_view value) {
  if (value.size() < 8 || value.size() > 1024) return false;
  const absl::string_view unpadded = absl::StripSuffix(absl::StripSuffix(value, "="), "=");
  if (unpadded.size() % 4 == 1 || !std::all_of(unpadded.begin(), unpadded.end(), IsBase64Byte)) {
    return false;
  }
  std::string decoded;
  if (!absl::Base64Unescape(value, &decoded)) return false;
  if (!std::all_of(decoded.begin(), decoded.end(), [](char c) { return c >= 0x20 && c <= 0x7e; })) {
    return false;
  }
  const size_t colon = decoded.find(':');
  return colon != std::string::npos && colon > 0 && colon + 1 < decoded.size() &&
         !StandsForAPassword(absl::string_view(decoded).substr(colon + 1));
}

bool IsValidBearerToken(absl::string_view value) {
  return value.size() >= 8 && value.size() <= kMaxSecretValueBytes &&
         !std::all_of(value.begin(), value.end(), IsDigit) && !IsNameInCode(value) &&
         !HasPlaceholderPart(value);
}

bool IsValidUrlCredentials(absl::string_view value) {
  const size_t at = value.rfind('@');
  const size_t colon = value.find(':');
  if (at == absl::string_view::npos || colon == absl::string_view::npos || colon > at) {
    return false;
  }
  return !StandsForAPassword(value.substr(colon + 1, at - colon - 1));
}

bool IsValidUrlTokenUser(absl::string_view value) {
  const size_t at = value.rfind('@');
  if (at == absl::string_view::npos) return false;
  const absl::string_view user = value.substr(0, at);
  for (Validator token : {IsValidGithubToken, IsValidGitlabToken, IsValidOpenAiApiKey,
                          IsValidSlackToken, IsValidNpmToken, IsValidHuggingFaceToken,
                          IsValidStripeApiKey, IsValidGoogleApiKey, IsValidPolicySuiteKey}) {
    if (token(user)) return true;
  }
  return false;
}

namespace {

struct NamedValidator {
  const char* name;
  Validator validator;
  // The fewest bytes of a value it accepts (MinAcceptedBytes), from its checks above.
  size_t min_bytes;
};

constexpr NamedValidator kValidators[] = {
    {"atlassian_api_token", IsValidAtlassianApiToken, 6 + 186},
    {"aws_access_key", IsValidAwsAccessKey, 4 + 16},
    {"azure_client_secret", IsValidAzureClientSecret, 37},
    {"aws_secret_access_key", IsValidAwsSecretAccessKey, 40},
    {"azure_sas_signature", IsValidAzureSasSignature, 44},
    {"azure_shared_access_key", IsValidAzureSharedAccessKey, 44},
    {"azure_storage_key", IsValidAzureStorageKey, 88},
    // "-----BEGIN PRIVATE KEY-----\n" and 16 of base64, in base64.
    {"base64_pem_private_key", IsValidBase64PemPrivateKey, (28 + 16) * 4 / 3},
    {"basic_credentials", IsValidBasicCredentials, 8},
    {"bearer_token", IsValidBearerToken, 8},
    {"bitcoin_base58check", IsValidBitcoinBase58Check, 26},
    {"bitcoin_bech32", IsValidBitcoinBech32, 42},
    {"credit_card", IsValidCreditCard, 13},  // Digits.
    {"de_health_insurance_number", IsValidDeHealthInsuranceNumber, 10},
    {"at_social_insurance_number", IsValidAtSocialInsuranceNumber, 10},
    {"be_national_number", IsValidBeNationalNumber, 11},
    {"de_tax_id", IsValidDeTaxId, 11},
    {"dk_cpr", IsValidDkCpr, 10},
    {"databricks_token", IsValidDatabricksToken, 4 + 32},
    {"digitalocean_token", IsValidDigitalOceanToken, 7 + 64},
    {"discord_bot_token", IsValidDiscordBotToken, 23 + 1 + 6 + 1 + 27},
    // "http://discord.com/api/webhooks/", an id, '/', a token.
    {"discord_webhook_url", IsValidDiscordWebhookUrl, 7 + 25 + 17 + 1 + 60},
    {"docker_hub_token", IsValidDockerHubToken, 9 + 27},
    {"dea", IsValidDeaNumber, 9},
    {"email", IsValidEmail, 6},  // "a@b.cd".
    {"es_nie", IsValidEsNie, 9},
    {"eu_vat_number", IsValidEuVatNumber, 2 + 6},  // "RO" + six digits.
    {"es_nif", IsValidEsNif, 9},
    {"fi_personal_identity_code", IsValidFiPersonalIdentityCode, 11},
    {"fr_nir", IsValidFrNir, 15},
    {"github_token", IsValidGithubToken, 4 + 36},  // "ghp_" + 36.
    {"gitlab_token", IsValidGitlabToken, 5 + 20},  // "glrt-" + 20.
    {"google_api_key", IsValidGoogleApiKey, 4 + 35},
    {"google_oauth_client_secret", IsValidGoogleOAuthClientSecret, 7 + 28},
    {"google_oauth_token", IsValidGoogleOAuthToken, 5 + 30},
    {"grafana_token", IsValidGrafanaToken, 5 + 32 + 1 + 8},
    {"groq_api_key", IsValidGroqApiKey, 4 + 52},
    {"huggingface_token", IsValidHuggingFaceToken, 3 + 34},
    {"iban", IsValidIban, ShortestIban()},                      // Spaces aside.
    {"identity_document_mrz", IsValidIdentityDocumentMrz, 36},  // A TD2's data line alone.
    {"ie_ppsn", IsValidIePpsn, 8},
    {"international_phone", IsValidInternationalPhone, 9},  // '+', code, 7 national digits.
    {"ipv4", IsValidIpv4, 7},                               // "1.2.3.4".
    {"ipv6", IsValidIpv6, 3},                               // "::" and a digit.
    {"it_fiscal_code", IsValidItFiscalCode, 16},
    {"langsmith_api_key", IsValidLangSmithApiKey, 8 + 43},
    {"jwt", IsValidJwt, 8 + 1 + 4 + 1},              // "eyJhbGci" ({"alg), '.', "eyJ?", '.'.
    {"luhn", PassesLuhn, 2},                         // Digits.
    {"nanp_phone", IsValidNanpPhone, 10},            // Digits.
    {"national_phone", IsValidNationalPhone, 10},    // Digits.
    {"nine_digit_phone", IsValidNineDigitPhone, 9},  // Digits.
    {"nl_bsn", IsValidNlBsn, 9},                     // Digits.
    {"npm_token", IsValidNpmToken, 4 + 36},
    {"openai_api_key", IsValidOpenAiApiKey, 3 + 20},  // "sk-" + 20.
    // No label, no END line.
    {"pem_private_key", IsValidPemPrivateKey, 11 + 11 + 5 + 1 + kMinTruncatedPemBase64},
    {"pl_pesel", IsValidPlPesel, 11},
    {"policy_suite_key", IsValidPolicySuiteKey, 8 + 66},  // "psk_svc_" + 66.
    {"perplexity_api_key", IsValidPerplexityApiKey, 5 + 48},
    {"postman_api_key", IsValidPostmanApiKey, 5 + 59},
    {"pt_tax_id", IsValidPtTaxId, 9},
    {"pypi_token", IsValidPypiToken, 20 + 50},
    {"replicate_api_token", IsValidReplicateApiToken, 3 + 37},
    {"se_personal_identity_number", IsValidSePersonalIdentityNumber, 10},
    {"secret_value", IsValidSecretValue, 6},
    {"sendgrid_api_key", IsValidSendGridApiKey, 3 + 22 + 1 + 43},
    {"slack_app_token", IsValidSlackAppToken, 5 + 2 + 10 + 11 + 64},
    {"slack_token", IsValidSlackToken, 5 + 2 + 8},  // "xoxb-", a digit and '-', 8.
    // "http://hooks.slack.com/triggers/", a team id, '/', a part of one byte, '/', 24.
    {"slack_webhook_url", IsValidSlackWebhookUrl, 7 + 16 + 9 + 9 + 1 + 1 + 1 + 24},
    {"stripe_api_key", IsValidStripeApiKey, 8 + 24},
    {"telegram_bot_token", IsValidTelegramBotToken, 8 + 1 + 35},
    {"uk_nhs", IsValidUkNhs, 10},  // Digits.
    {"uk_nino", IsValidUkNino, 9},
    {"unquoted_secret_value", IsValidUnquotedSecretValue, 6},
    {"url_credentials", IsValidUrlCredentials, 1 + 1 + 1},  // ":p@h".
    {"url_token_user", IsValidUrlTokenUser, 15 + 1 + 1},    // A Slack token, '@', a host.
    {"us_itin", IsValidUsItin, 9},                          // Digits.
    {"us_ssn", IsValidUsSsn, 9},                            // Digits.
    {"vault_token", IsValidVaultToken, 4 + 90},
    {"webhook_signing_secret", IsValidWebhookSigningSecret, 6 + 32},
    {"xai_api_key", IsValidXaiApiKey, 4 + 80},
};

}  // namespace

Validator FindValidator(absl::string_view name) {
  for (const NamedValidator& v : kValidators) {
    if (name == v.name) return v.validator;
  }
  return nullptr;
}

bool ChecksWholeTokens(Validator validator) {
  static constexpr Validator kTokens[] = {IsValidPolicySuiteKey,    IsValidOpenAiApiKey,
                                          IsValidAwsAccessKey,      IsValidGithubToken,
                                          IsValidSlackToken,        IsValidJwt,
                                          IsValidGoogleApiKey,      IsValidStripeApiKey,
                                          IsValidGitlabToken,       IsValidHuggingFaceToken,
                                          IsValidNpmToken,          IsValidSendGridApiKey,
                                          IsValidAzureStorageKey,   IsValidGroqApiKey,
                                          IsValidXaiApiKey,         IsValidGoogleOAuthClientSecret,
                                          IsValidGoogleOAuthToken,  IsValidPypiToken,
                                          IsValidDockerHubToken,    IsValidWebhookSigningSecret,
                                          IsValidTelegramBotToken,  IsValidSlackWebhookUrl,
                                          IsValidSlackAppToken,     IsValidAzureSharedAccessKey,
                                          IsValidAzureSasSignature, IsValidPerplexityApiKey,
                                          IsValidReplicateApiToken, IsValidLangSmithApiKey,
                                          IsValidDatabricksToken,   IsValidAtlassianApiToken,
                                          IsValidVaultToken,        IsValidAzureClientSecret,
                                          IsValidDigitalOceanToken, IsValidPostmanApiKey,
                                          IsValidGrafanaToken,      IsValidDiscordBotToken,
                                          IsValidDiscordWebhookUrl};
  return validator != nullptr &&
         std::find(std::begin(kTokens), std::end(kTokens), validator) != std::end(kTokens);
}

size_t MinAcceptedBytes(Validator validator) {
  for (const NamedValidator& v : kValidators) {
    if (validator != nullptr && validator == v.validator) return v.min_bytes;
  }
  return 0;
}

std::vector<std::string> KnownValidatorNames() {
  std::vector<std::string> names;
  for (const NamedValidator& v : kValidators) names.emplace_back(v.name);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace policy::pii
