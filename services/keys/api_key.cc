#include "services/keys/api_key.h"

#include <array>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "common/ids/api_key_prefix.h"
#include "common/text/utf8.h"

namespace policy::keys {
namespace {

constexpr absl::string_view kAlphabet =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr absl::string_view kKeyIdPrefix = "key_";

constexpr std::array<std::pair<KeyKind, absl::string_view>, 3> kPrefixes = {
    {{KeyKind::kProject, ids::kProjectKeyPrefix},
     {KeyKind::kServiceAccount, ids::kServiceAccountKeyPrefix},
     {KeyKind::kAdmin, ids::kAdminKeyPrefix}}};

// Verification parses every presented key, so the character checks are table lookups rather
// than branches on random input.
constexpr std::array<bool, 256> kIsBase62 = [] {
  std::array<bool, 256> table{};
  for (char c : kAlphabet) table[static_cast<unsigned char>(c)] = true;
  return table;
}();

// Big-endian base62 of `bytes`, left-padded with '0' to exactly `width` characters.
std::string Base62(absl::string_view bytes, size_t width) {
  std::string digits(bytes);  // Repeated division of a big-endian base-256 number.
  std::string out(width, '0');
  for (size_t position = width; position-- > 0;) {
    int remainder = 0;
    for (char& d : digits) {
      int value = remainder * 256 + static_cast<unsigned char>(d);
      d = static_cast<char>(value / 62);
      remainder = value % 62;
    }
    out[position] = kAlphabet[remainder];
  }
  return out;
}

// CRC-32C (Castagnoli), the checksum with a CPU instruction on x86-64 (SSE4.2): on the
// verification path it costs a few nanoseconds instead of a table walk.
constexpr std::array<uint32_t, 256> kCrc32cTable = [] {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
    table[i] = crc;
  }
  return table;
}();

uint32_t Crc32cPortable(absl::string_view data) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char c : data) crc = (crc >> 8) ^ kCrc32cTable[(crc ^ c) & 0xff];
  return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(absl::string_view data) {
  uint64_t crc = 0xffffffffu;
  size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, data.data() + i, sizeof(word));
    crc = _mm_crc32_u64(crc, word);
  }
  uint32_t crc32 = static_cast<uint32_t>(crc);
  for (; i < data.size(); ++i) crc32 = _mm_crc32_u8(crc32, static_cast<uint8_t>(data[i]));
  return ~crc32;
}
#endif

uint32_t Crc32c(absl::string_view data) {
#if defined(__x86_64__)
  static const bool kHardware = __builtin_cpu_supports("sse4.2");
  if (kHardware) return Crc32cSse42(data);
#endif
  return Crc32cPortable(data);
}

// CRC-32C of `body` as six base62 characters.
std::array<char, kChecksumChars> Checksum(absl::string_view body) {
  uint32_t crc = Crc32c(body);
  std::array<char, kChecksumChars> out;
  for (size_t position = kChecksumChars; position-- > 0;) {
    out[position] = kAlphabet[crc % 62];
    crc /= 62;
  }
  return out;
}

absl::string_view View(const std::array<char, kChecksumChars>& a) {
  return absl::string_view(a.data(), a.size());
}

}  // namespace

std::string ParsedSecret::key_id() const { return absl::StrCat(kKeyIdPrefix, id_part); }

absl::string_view PrefixOf(KeyKind kind) {
  for (const auto& [k, prefix] : kPrefixes) {
    if (k == kind) return prefix;
  }
  return "";
}

absl::StatusOr<ParsedSecret> ParseSecret(absl::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("api key is empty");
  if (text.size() > kMaxSecretBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("api key is longer than ", kMaxSecretBytes, " bytes"));
  }
  if (!IsUtf8(text)) return absl::InvalidArgumentError("api key is not valid UTF-8");
  const std::pair<KeyKind, absl::string_view>* match = nullptr;
  for (const auto& entry : kPrefixes) {
    if (absl::StartsWith(text, entry.second)) match = &entry;
  }
  if (match == nullptr) {
    return absl::InvalidArgumentError(
        "api key has an unknown prefix (expected psk_proj_, psk_svc_ or psk_admin_)");
  }
  absl::string_view rest = text.substr(match->second.size());
  if (rest.size() != kKeyIdChars + kSecretChars + kChecksumChars) {
    return absl::InvalidArgumentError("api key has the wrong length");
  }
  bool alphabet_ok = true;
  for (char c : rest) alphabet_ok &= kIsBase62[static_cast<unsigned char>(c)];
  if (!alphabet_ok) return absl::InvalidArgumentError("api key has invalid characters");
  absl::string_view body = text.substr(0, text.size() - kChecksumChars);
  if (View(Checksum(body)) != text.substr(body.size())) {
    return absl::InvalidArgumentError("api key checksum does not match (mistyped or truncated?)");
  }
  return ParsedSecret{match->first, rest.substr(0, kKeyIdChars),
                      rest.substr(kKeyIdChars, kSecretChars)};
}

absl::StatusOr<NewSecret> GenerateSecret(KeyKind kind) {
  absl::StatusOr<std::string> id_bytes = crypto::RandomBytes(12);
  if (!id_bytes.ok()) return id_bytes.status();
  absl::StatusOr<std::string> secret_bytes = crypto::RandomBytes(32);
  if (!secret_bytes.ok()) return secret_bytes.status();
  std::string id = Base62(*id_bytes, kKeyIdChars);
  std::string body = absl::StrCat(PrefixOf(kind), id, Base62(*secret_bytes, kSecretChars));
  return NewSecret{absl::StrCat(kKeyIdPrefix, id), absl::StrCat(body, View(Checksum(body)))};
}

namespace {

// How a secret is shown: its prefix (possibly empty), an ellipsis and the last four characters
// of the rest, which listings show; a rest of four characters or fewer shows nothing.
std::string Shortened(absl::string_view prefix, absl::string_view rest) {
  return absl::StrCat(prefix, "...", rest.size() > 4 ? rest.substr(rest.size() - 4) : "");
}

}  // namespace

std::string RedactSecret(absl::string_view secret) {
  for (const auto& [kind, prefix] : kPrefixes) {
    if (absl::StartsWith(secret, prefix)) return Shortened(prefix, secret.substr(prefix.size()));
  }
  return "...";
}

// No word in a reason is this long a base62 run, but a secret's random part is (43).
constexpr size_t kBareSecretRun = 32;

std::string RedactSecretsIn(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    absl::string_view prefix;
    for (const auto& [kind, p] : kPrefixes) {
      if (absl::StartsWith(text.substr(i), p)) prefix = p;
    }
    if (prefix.empty()) {
      // A secret pasted without its prefix (or only its secret part): a long base62 run at
      // the start of a word.
      size_t end = i;
      while (end < text.size() && kIsBase62[static_cast<unsigned char>(text[end])]) ++end;
      const bool word_start = i == 0 || !kIsBase62[static_cast<unsigned char>(text[i - 1])];
      if (word_start && end - i >= kBareSecretRun) {
        out += Shortened("", text.substr(i, end - i));
        i = end;
      } else {
        out.push_back(text[i++]);
      }
      continue;
    }
    size_t end = i + prefix.size();
    while (end < text.size() && kIsBase62[static_cast<unsigned char>(text[end])]) ++end;
    out += Shortened(prefix, text.substr(i + prefix.size(), end - i - prefix.size()));
    i = end;
  }
  return out;
}

}  // namespace policy::keys
