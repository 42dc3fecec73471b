#include "services/pii/detector.h"

#include <algorithm>
#include <atomic>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::pii {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

ScanOptions MinScore(double min_score) {
  ScanOptions options;
  options.min_score = min_score;
  return options;
}

ScanOptions OnlyTypes(std::vector<std::string> types) {
  ScanOptions options;
  options.entity_types = std::move(types);
  return options;
}

DetectorOptions Budget(int64_t bytes) {
  DetectorOptions options;
  options.max_regex_memory_bytes = bytes;
  return options;
}

RecognizerSpec Spec(std::string name, std::string type, std::string pattern, double score) {
  RecognizerSpec spec;
  spec.name = std::move(name);
  spec.entity_type = std::move(type);
  spec.pattern = std::move(pattern);
  spec.score = score;
  return spec;
}

// `spec` after `change`.
template <typename Change>
RecognizerSpec With(RecognizerSpec spec, Change change) {
  change(spec);
  return spec;
}

const Detector& Default() {
  static const Detector* detector = [] {
    absl::StatusOr<std::unique_ptr<Detector>> created = Detector::Create({});
    EXPECT_TRUE(created.ok()) << created.status();
    return created->release();
  }();
  return *detector;
}

std::unique_ptr<Detector> WithCustom(std::vector<RecognizerSpec> custom,
                                     DetectorOptions options = {}) {
  absl::StatusOr<std::unique_ptr<Detector>> created = Detector::Create(std::move(custom), options);
  EXPECT_TRUE(created.ok()) << created.status();
  return created.ok() ? std::move(*created) : nullptr;
}

std::string CreateError(std::vector<RecognizerSpec> custom, DetectorOptions options = {}) {
  absl::StatusOr<std::unique_ptr<Detector>> created = Detector::Create(std::move(custom), options);
  if (created.ok()) return "";
  EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument) << created.status();
  return std::string(created.status().message());
}

// A finding as "TYPE[begin,end) 'slice'", for readable failures.
std::string Describe(absl::string_view text, const Finding& f) {
  return absl::StrCat(f.entity_type, "[", f.begin, ",", f.end, ") '",
                      text.substr(f.begin, f.end - f.begin), "' ", f.recognizer, " ", f.score);
}

std::string DescribeAll(absl::string_view text, const std::vector<Finding>& findings) {
  std::vector<std::string> parts;
  for (const Finding& f : findings) parts.push_back(Describe(text, f));
  return absl::StrJoin(parts, "; ");
}

// The (type, slice) pairs found in `text`.
std::vector<std::pair<std::string, std::string>> Found(absl::string_view text,
                                                       const ScanOptions& options = {},
                                                       const Detector& detector = Default()) {
  std::vector<std::pair<std::string, std::string>> found;
  for (const Finding& f : detector.Scan(text, options)) {
    found.emplace_back(f.entity_type, std::string(text.substr(f.begin, f.end - f.begin)));
  }
  return found;
}

std::string RandomOf(absl::string_view alphabet, size_t n, uint32_t seed) {
  std::mt19937 random(seed);
  std::string out;
  for (size_t i = 0; i < n; ++i) out += alphabet[random() % alphabet.size()];
  return out;
}

// `ascii` as a Japanese input method types it: each of '!' to '~' as its full-width form
// (U+FF01-U+FF5E); spaces and other bytes as they are.
std::string FullWidth(absl::string_view ascii) {
  std::string out;
  for (const char c : ascii) {
    if (c < '!' || c > '~') {
      out += c;
      continue;
    }
    const char32_t wide = static_cast<char32_t>(c) + 0xFEE0;
    out += {static_cast<char>(0xE0 | (wide >> 12)), static_cast<char>(0x80 | ((wide >> 6) & 0x3F)),
            static_cast<char>(0x80 | (wide & 0x3F))};
  }
  return out;
}

// `text` with each space an U+3000 IDEOGRAPHIC SPACE.
std::string IdeographicSpaces(absl::string_view text) {
  return absl::StrReplaceAll(text, {{" ", "\u3000"}});
}

constexpr absl::string_view kBase62 =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr absl::string_view kBase64Url =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";
constexpr absl::string_view kLetters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr absl::string_view kHex = "0123456789abcdef";

// jwt.io's example token (HS256).
constexpr absl::string_view kJwt =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaW"
    "F0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

const std::string kPem = absl::StrCat(
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
    "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm\n"
    "o3qGy0t6z09AIJtH+5OeRV1be+N4cDYJKffGzDa88vQENZiRm0GRq6a+HPGQMd2k\n",
    "-----END RSA PRIVATE KEY-----");

// One value of a type in one format, with the words that must come before it.
struct Sample {
  std::string type;
  std::string context;
  std::string value;
};

std::vector<Sample> Positives() {
  return {
      {"US_SSN", "", "123-45-6789"},
      {"US_SSN", "", "123 45 6789"},
      {"US_SSN", "SSN: ", "123456789"},
      {"US_SSN", "my social security number is ", "123456789"},
      {"US_SSN", "Social-Security ", "123456789"},
      {"US_SSN", "SS# ", "123456789"},
      {"US_ITIN", "", "912-70-1234"},
      {"US_ITIN", "", "912 94 1234"},
      {"US_ITIN", "ITIN ", "912701234"},
      {"CREDIT_CARD", "", "4111111111111111"},
      {"CREDIT_CARD", "", "4111 1111 1111 1111"},
      {"CREDIT_CARD", "", "4111-1111-1111-1111"},
      {"CREDIT_CARD", "", "6500 0000 0000 0000 003"},
      {"CREDIT_CARD", "", "3782 822463 10005"},
      {"CREDIT_CARD", "", "3056-930902-5904"},
      {"CREDIT_CARD", "", "4222222222222"},
      {"CREDIT_CARD", "", "5555555555554444"},
      {"CREDIT_CARD", "", "2223003122003222"},
      {"CREDIT_CARD", "", "6221260000000000"},
      {"CREDIT_CARD", "", "3530111333300000"},
      {"IBAN_CODE", "", "DE89370400440532013000"},
      {"IBAN_CODE", "", "GB82 WEST 1234 5698 7654 32"},
      {"IBAN_CODE", "", "DE89 3704 0044 0532 0130 00"},
      {"IBAN_CODE", "", "BE68 5390 0754 7034"},
      {"IBAN_CODE", "", "NO93 8601 1117 947"},
      {"IBAN_CODE", "", "MT84MALT011000012345MTLCAST001S"},
      {"IBAN_CODE", "", "de89370400440532013000"},
      {"IBAN_CODE", "IBAN ", "de89 3704 0044 0532 0130 00"},
      {"IBAN_CODE", "", "GB82-WEST-1234-5698-7654-32"},
      {"EMAIL_ADDRESS", "", "jane.doe+tag@mail.example.co.uk"},
      {"EMAIL_ADDRESS", "", "a_b%c-d@sub-domain.example.org"},
      {"EMAIL_ADDRESS", "", "X9@ex.io"},
      {"EMAIL_ADDRESS", "", "josé@example.com"},
      {"EMAIL_ADDRESS", "", "jürgen.weiß@bank.de"},
      {"EMAIL_ADDRESS", "", "müller@example.de"},
      {"EMAIL_ADDRESS", "", "ёлка@пример.рф"},
      {"EMAIL_ADDRESS", "", "info@bücher.de"},
      {"PHONE_NUMBER", "", "(415) 555-2671"},
      {"PHONE_NUMBER", "", "415-555-2671"},
      {"PHONE_NUMBER", "", "415.555.2671"},
      {"PHONE_NUMBER", "", "415 555 2671"},
      {"PHONE_NUMBER", "", "+1 415 555 2671"},
      {"PHONE_NUMBER", "", "+1-415-555-2671"},
      {"PHONE_NUMBER", "", "1-415-555-2671"},
      {"PHONE_NUMBER", "", "+14155552671"},
      {"PHONE_NUMBER", "phone: ", "4155552671"},
      {"PHONE_NUMBER", "WhatsApp ", "4155552671"},
      {"PHONE_NUMBER", "", "+44 20 7946 0958"},
      {"PHONE_NUMBER", "", "+49 30 12345678"},
      {"PHONE_NUMBER", "", "+33 1 23 45 67 89"},
      {"PHONE_NUMBER", "", "+81 3-1234-5678"},
      {"PHONE_NUMBER", "", "+91 98765 43210"},
      {"PHONE_NUMBER", "", "+61 2 9876 5432"},
      {"PHONE_NUMBER", "", "+34 912 345 678"},
      {"PHONE_NUMBER", "", "+39 06 1234 5678"},
      {"PHONE_NUMBER", "", "+31 20 123 4567"},
      {"PHONE_NUMBER", "", "+46 8 123 456 78"},
      {"PHONE_NUMBER", "", "+353 1 234 5678"},
      {"PHONE_NUMBER", "", "+55 11 91234-5678"},
      {"PHONE_NUMBER", "", "+442079460958"},
      {"IP_ADDRESS", "", "192.0.2.1"},
      {"IP_ADDRESS", "", "10.0.0.255"},
      {"IP_ADDRESS", "", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"},
      {"IP_ADDRESS", "", "2001:db8::1"},
      {"IP_ADDRESS", "", "fe80::1"},
      {"IP_ADDRESS", "", "::ffff:192.0.2.1"},
      {"IP_ADDRESS", "", "2001:DB8:0:0:8:800:200C:417A"},
      {"IP_ADDRESS", "", "fe80::"},
      {"UK_NHS", "NHS number ", "943 476 5919"},
      {"UK_NHS", "nhs: ", "943-476-5919"},
      {"UK_NHS", "NHS ", "9434765919"},
      {"UK_NINO", "", "AB 12 34 56 C"},
      {"UK_NINO", "National Insurance number: ", "AB123456C"},
      {"UK_NINO", "NINO ", "TZ123456B"},
      {"ES_NIF", "", "12345678Z"},
      {"ES_NIF", "DNI ", "12.345.678-Z"},
      {"ES_NIF", "NIF: ", "12345678 Z"},
      {"ES_NIE", "", "X1234567L"},
      {"ES_NIE", "NIE ", "Y-1234567-X"},
      {"IT_FISCAL_CODE", "", "RSSMRA85T10A562S"},
      {"IT_FISCAL_CODE", "codice fiscale ", "RSSMRA85T10A56NH"},
      {"PL_PESEL", "PESEL: ", "44051401359"},
      {"PL_PESEL", "nr PESEL ", "02271409867"},
      {"FI_PERSONAL_IDENTITY_CODE", "hetu ", "131052-308T"},
      {"FI_PERSONAL_IDENTITY_CODE", "", "020502A123T"},
      {"FI_PERSONAL_IDENTITY_CODE", "henkilötunnus ", "020502A123T"},
      {"SE_PERSONAL_IDENTITY_NUMBER", "personnummer ", "811218-9876"},
      {"SE_PERSONAL_IDENTITY_NUMBER", "Pnr: ", "198112189876"},
      {"NL_BSN", "BSN ", "123456782"},
      {"NL_BSN", "burgerservicenummer: ", "1234.56.782"},
      {"FR_NIR", "", "1 85 05 78 006 084 91"},
      {"FR_NIR", "n° de sécurité sociale ", "185057800608491"},
      {"FR_NIR", "NIR ", "290072A12345661"},
      {"DE_TAX_ID", "Steuer-ID: ", "86095742719"},
      {"DE_TAX_ID", "IdNr ", "86 095 742 719"},
      {"DE_HEALTH_INSURANCE_NUMBER", "Krankenversichertennummer ", "A123456780"},
      {"BE_NATIONAL_NUMBER", "", "85.07.30-033.28"},
      {"BE_NATIONAL_NUMBER", "Rijksregisternummer: ", "85073003328"},
      {"BE_NATIONAL_NUMBER", "numéro national ", "17.07.30-033 84"},
      {"BE_NATIONAL_NUMBER", "INSZ ", "854730-033-17"},
      {"BE_NATIONAL_NUMBER", "NISS: ", "05 01 01 001 13"},
      {"IE_PPSN", "PPS number ", "6433435F"},
      {"IE_PPSN", "PPSN: ", "7654321PA"},
      {"IE_PPSN", "pps no. ", "1234567 t"},
      {"DK_CPR", "CPR-nr. ", "211062-5629"},
      {"DK_CPR", "cpr ", "2110625629"},
      {"AT_SOCIAL_INSURANCE_NUMBER", "SVNR ", "1237 010180"},
      {"AT_SOCIAL_INSURANCE_NUMBER", "Sozialversicherungsnummer: ", "4560150590"},
      {"PT_TAX_ID", "NIF ", "234567899"},
      {"PT_TAX_ID", "número de contribuinte ", "451 234 561"},
      {"IDENTITY_DOCUMENT_MRZ", "",
       "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<"
       "10"},
      {"IDENTITY_DOCUMENT_MRZ", "MRZ:\n",
       "P<D<<MUSTERMANN<<ERIKA<<<<<<<<<<<<<<<<<<<<<<\r\n  "
       "C01X00T478D<<6408125F2702283<<<<<<<<<<<<<<<4"},
      {"IDENTITY_DOCUMENT_MRZ", "{\"mrz\": ",
       "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\\nL898902C36UTO7408122F1204159ZE184226B<<<<<"
       "10"},
      {"IDENTITY_DOCUMENT_MRZ", "", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"},
      {"IDENTITY_DOCUMENT_MRZ", "",
       "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nD231458907UTO7408122F1204159<<<<<<<6"},
      {"IDENTITY_DOCUMENT_MRZ", "OCR:\n",
       "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\n"
       "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"},
      {"IDENTITY_DOCUMENT_MRZ", "",
       "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL8988901C4XXX4009078F96121096ZE184226B<<<<<"
       "<"},
      {"EU_VAT_NUMBER", "", "DE136695976"},
      {"EU_VAT_NUMBER", "USt-IdNr.: ", "DE 136 695 976"},
      {"EU_VAT_NUMBER", "", "ATU13585627"},
      {"EU_VAT_NUMBER", "N° TVA : ", "FR 40 303 265 045"},
      {"EU_VAT_NUMBER", "", "BE 0411.905.847"},
      {"EU_VAT_NUMBER", "BTW ", "NL004495445B01"},
      {"EU_VAT_NUMBER", "", "ESB58378431"},
      {"EU_VAT_NUMBER", "", "IE6388047V"},
      {"EU_VAT_NUMBER", "Partita IVA ", "IT00743110157"},
      {"EU_VAT_NUMBER", "NIP UE ", "PL5260250274"},
      {"EU_VAT_NUMBER", "", "RO18547290"},
      {"EU_VAT_NUMBER", "", "SE556188840401"},
      {"EU_VAT_NUMBER", "", "EL094259216"},
      {"CRYPTO", "", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"},
      {"CRYPTO", "", "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"},
      {"CRYPTO", "", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"},
      {"CRYPTO", "", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"},
      {"MEDICAL_LICENSE", "DEA ", "AB1234563"},
      {"MEDICAL_LICENSE", "prescriber registration: ", "F97654329"},
      {"POLICY_SUITE_KEY", "", "psk_proj_" + RandomOf(kBase62, 66, 1)},
      {"POLICY_SUITE_KEY", "", "psk_svc_" + RandomOf(kBase62, 66, 2)},
      {"POLICY_SUITE_KEY", "", "psk_admin_" + RandomOf(kBase62, 66, 3)},
      {"OPENAI_API_KEY", "", "sk-" + RandomOf(kBase62, 48, 4)},
      {"OPENAI_API_KEY", "", "sk-proj-" + RandomOf(absl::StrCat(kBase62, "_-"), 120, 5) + "Q"},
      {"OPENAI_API_KEY", "", "sk-svcacct-" + RandomOf(kBase62, 40, 6)},
      {"OPENAI_API_KEY", "", "sk-admin-" + RandomOf(kBase62, 200, 7)},
      {"AWS_ACCESS_KEY", "", "AKIAIOSFODNN7EXAMPLE"},
      {"AWS_ACCESS_KEY", "", "ASIA" + RandomOf("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, 8)},
      {"GITHUB_TOKEN", "", "ghp_" + RandomOf(kBase62, 36, 9)},
      {"GITHUB_TOKEN", "", "ghs_" + RandomOf(kBase62, 36, 10)},
      {"GITHUB_TOKEN", "", "github_pat_" + RandomOf(absl::StrCat(kBase62, "_"), 81, 11) + "z"},
      {"SLACK_TOKEN", "", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"},
      {"SLACK_TOKEN", "",
       "xoxp-123456789012-123456789012-123456789012-" + RandomOf(kBase62, 32, 12)},
      {"PRIVATE_KEY", "", kPem},
      {"PRIVATE_KEY", "",
       absl::StrCat("-----BEGIN PRIVATE KEY-----\n", RandomOf(kBase62, 64, 13), "\n",
                    RandomOf(kBase62, 64, 14), "\n-----END PRIVATE KEY-----")},
      {"PRIVATE_KEY", "",
       absl::StrCat("-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\n",
                    RandomOf(kBase62, 64, 15), "\n=Xy7a\n-----END PGP PRIVATE KEY BLOCK-----")},
      {"OPENAI_API_KEY", "",
       "sk-ant-api03-nUA7OHp4UC-mq-ZIhqmWaSvIJv5WlXvkGPkKp2UMr7OBUi6LnjpYk8wZbyRnH4ciCUfJWnZbnm7Y3c"
       "XXBRz7ZQ-4IrmBwAA"},
      {"OPENAI_API_KEY", "", "sk-or-v1-" + RandomOf("0123456789abcdef", 64, 16)},
      {"OPENAI_API_KEY", "", "sk-0123456789abcdef0123456789abcdef"},
      {"OPENAI_API_KEY", "", "sk-None-" + RandomOf(kBase62, 47, 17) + "7"},
      {"AWS_ACCESS_KEY", "aws_secret_access_key = ", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
      {"AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY=", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
      {"AWS_ACCESS_KEY", "\"SecretAccessKey\": ", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
      {"JWT", "", std::string(kJwt)},
      {"JWT", "Authorization: Bearer ", std::string(kJwt)},
      // An unsecured token ({"alg":"none"}): no signature after the second dot.
      {"JWT", "", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyIn0."},
      {"JWT", "",
       absl::StrCat("eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIn0.",
                    RandomOf(kBase64Url, 342, 19), "Q")},
      {"GOOGLE_API_KEY", "", "AIza" + RandomOf(kBase64Url, 34, 20) + "Q"},
      {"GOOGLE_API_KEY", "\"apiKey\": \"", "AIzaSyD-" + RandomOf(kBase62, 31, 21)},
      {"STRIPE_API_KEY", "STRIPE_SECRET_KEY=", "sk_live_" + RandomOf(kBase62, 24, 22)},
      {"STRIPE_API_KEY", "", "sk_test_" + RandomOf(kBase62, 99, 23)},
      {"STRIPE_API_KEY", "", "rk_live_" + RandomOf(kBase62, 99, 24)},
      {"GITLAB_TOKEN", "", "glpat-" + RandomOf(kBase64Url, 19, 25) + "q"},
      {"GITLAB_TOKEN", "", "glrt-" + RandomOf(kBase62, 20, 26)},
      {"GITLAB_TOKEN", "", "gldt-" + RandomOf(kBase62, 20, 27)},
      {"GITLAB_TOKEN", "", "glptt-" + RandomOf(kBase62, 40, 28)},
      {"GITLAB_TOKEN", "", "glpat-" + RandomOf(kBase62, 27, 29) + ".01.171ck2bq1"},
      {"HUGGINGFACE_TOKEN", "HF_TOKEN=", "hf_" + RandomOf(kLetters, 32, 30) + "Qq"},
      {"NPM_TOKEN", "//registry.npmjs.org/:_authToken=", "npm_" + RandomOf(kBase62, 36, 31)},
      {"SENDGRID_API_KEY", "",
       "SG." + RandomOf(kBase64Url, 21, 32) + "7." + RandomOf(kBase64Url, 42, 33) + "x"},
      // A key in base64 (a Kubernetes secret's tls.key, kubeconfig's client-key-data), whole
      // or cut.
      {"PRIVATE_KEY", "client-key-data: ",
       "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFcEFJQkFBS0NBUUVBdTFTVTFMZlZMUEhDb3pNeEgyT"
       "W80bGdPRWVQek5tMHRSZ2VMZXpWNmZmQXQwZ3VuClZUTHc3b25MUm5ycTAvSXpXN3lXUjdRa3JtQkw3alRLRW41d"
       "StxS2hid0tmQnN0SXMrYk1ZMlprcDE4Z25UeEsKLS0tLS1FTkQgUlNBIFBSSVZBVEUgS0VZLS0tLS0K"},
      {"PRIVATE_KEY", "tls.key: ",
       "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFcEFJQkFBS0NBUUVBdTFTVTFMZlZMUEhDb3pNeEgyT"
       "W80bGdPRWVQek5tMHRSZ2VMZXpWNmZmQXQwZ3VuClZUTHc3b25MUm5ycTAvSXpXN3lX"},
      {"GROQ_API_KEY", "GROQ_API_KEY=", "gsk_" + RandomOf(kBase62, 52, 80)},
      {"PERPLEXITY_API_KEY", "", "pplx-" + RandomOf(kBase62, 48, 130)},
      {"REPLICATE_API_TOKEN", "REPLICATE_API_TOKEN=", "r8_" + RandomOf(kBase62, 37, 131)},
      {"LANGSMITH_API_KEY", "",
       "lsv2_pt_" + RandomOf(kHex, 32, 132) + "_" + RandomOf(kHex, 10, 133)},
      {"DATABRICKS_TOKEN", "", "dapi" + RandomOf(kHex, 31, 134) + "7"},
      {"DATABRICKS_TOKEN", "", "dapi" + RandomOf(kHex, 31, 135) + "7-2"},
      {"ATLASSIAN_API_TOKEN", "", "ATATT3xFfGF0" + RandomOf(kBase64Url, 171, 136) + "=A1B2C3D4"},
      {"VAULT_TOKEN", "VAULT_TOKEN=", "hvs." + RandomOf(kBase64Url, 94, 137) + "7"},
      {"AZURE_CLIENT_SECRET",
       "AZURE_CLIENT_SECRET=", "Abc8Q~" + RandomOf(absl::StrCat(kBase62, "_~.-"), 33, 138) + "x"},
      {"DIGITALOCEAN_TOKEN", "", "dop_v1_" + RandomOf(kHex, 64, 139)},
      {"POSTMAN_API_KEY", "", "PMAK-" + RandomOf(kHex, 24, 140) + "-" + RandomOf(kHex, 34, 141)},
      {"GRAFANA_TOKEN", "", "glsa_" + RandomOf(kBase62, 32, 142) + "_" + RandomOf(kHex, 8, 143)},
      {"DISCORD_BOT_TOKEN", "",
       "MTA0OTQ3NjE4MzE2MzQ3NjE5Mg.GjNnRi." + RandomOf(kBase64Url, 37, 144) + "7"},
      {"DISCORD_BOT_TOKEN", "client.run(\"",
       "ODEzODQ3ODg3NjU3MTIzODQ.YA1b2c." + RandomOf(kBase64Url, 27, 145)},
      {"DISCORD_WEBHOOK_URL", "",
       "https://discord.com/api/webhooks/1234567890123456789/" + RandomOf(kBase64Url, 67, 146) +
           "Q"},
      {"DISCORD_WEBHOOK_URL", "WEBHOOK=",
       "https://canary.discordapp.com/api/v10/webhooks/81234567890123456/" +
           RandomOf(kBase64Url, 68, 147)},
      {"XAI_API_KEY", "", "xai-" + RandomOf(kBase62, 80, 81)},
      {"GOOGLE_OAUTH_CLIENT_SECRET",
       "GOOGLE_CLIENT_SECRET=", "GOCSPX-" + RandomOf(kBase64Url, 27, 82) + "q"},
      {"GOOGLE_OAUTH_TOKEN", "", "ya29.a0" + RandomOf(kBase64Url, 150, 83) + "Q"},
      {"GOOGLE_OAUTH_TOKEN", "",
       "ya29.c.b0" + RandomOf(kBase62, 40, 84) + "." + RandomOf(kBase62, 30, 85)},
      {"PYPI_TOKEN", "", "pypi-AgEIcHlwaS5vcmc" + RandomOf(kBase64Url, 160, 86) + "Q"},
      {"PYPI_TOKEN", "", "pypi-AgENdGVzdC5weXBpLm9yZw" + RandomOf(kBase64Url, 60, 87) + "Q"},
      {"DOCKER_HUB_TOKEN", "", "dckr_pat_" + RandomOf(kBase64Url, 26, 88) + "Q"},
      {"WEBHOOK_SIGNING_SECRET", "STRIPE_WEBHOOK_SECRET=", "whsec_" + RandomOf(kBase62, 32, 89)},
      {"WEBHOOK_SIGNING_SECRET", "",
       "whsec_" + RandomOf(absl::StrCat(kBase62, "+/"), 43, 90) + "q"},
      {"TELEGRAM_BOT_TOKEN", "", "123456789:AA" + RandomOf(kBase64Url, 32, 91) + "Q"},
      {"TELEGRAM_BOT_TOKEN", "https://api.telegram.org/",
       "bot7012345678:AA" + RandomOf(kBase64Url, 32, 92) + "x"},
      {"SLACK_WEBHOOK_URL", "",
       "https://hooks.slack.com/services/T0" + RandomOf("ABCDEFGHIJ0123456789", 8, 93) + "/B0" +
           RandomOf("ABCDEFGHIJ0123456789", 9, 94) + "/" + RandomOf(kBase62, 24, 95)},
      {"SLACK_WEBHOOK_URL", "",
       "https://hooks.slack.com/workflows/T0ABCDEF12/A0ABCDEF34/412345678901234567/" +
           RandomOf(kBase62, 32, 96)},
      {"SLACK_TOKEN", "",
       "xapp-1-A0ABCDEF12-1234567890123-" + RandomOf("0123456789abcdef", 64, 97)},
  };
}

// Values as word processors, PDFs, French and German locales and Japanese input methods
// write them: no-break, narrow no-break, thin and figure spaces between groups, hyphens,
// dashes and minus signs other than '-', full-width digits and signs, lowercase IBANs in
// groups, and nine-digit national numbers after a phone word.
std::vector<Sample> TypographicPositives() {
  return {
      {"CREDIT_CARD", "", "4111\u00A01111\u00A01111\u00A01111"},
      {"CREDIT_CARD", "", "4111\u202F1111\u202F1111\u202F1111"},
      {"CREDIT_CARD", "", "4111\u20091111\u20091111\u20091111"},
      {"CREDIT_CARD", "", "4111\u20071111\u20071111\u20071111"},
      {"CREDIT_CARD", "", "4111\u20131111\u20131111\u20131111"},
      {"CREDIT_CARD", "", "4111\u20111111\u20111111\u20111111"},
      {"CREDIT_CARD", "", "3782\u00A0822463\u00A010005"},
      {"CREDIT_CARD", "",
       "\uFF14\uFF11\uFF11\uFF11\uFF11\uFF11\uFF11\uFF11\uFF11\uFF11\uFF11\uFF11"
       "\uFF11\uFF11\uFF11\uFF11"},
      {"CREDIT_CARD", "",
       "\uFF14\uFF11\uFF11\uFF11 \uFF11\uFF11\uFF11\uFF11 \uFF11\uFF11\uFF11\uFF11 "
       "\uFF11\uFF11\uFF11\uFF11"},
      {"IBAN_CODE", "", "DE89\u00A03704\u00A00044\u00A00532\u00A00130\u00A000"},
      {"IBAN_CODE", "", "FR14\u202F2004\u202F1010\u202F0505\u202F0001\u202F3M02\u202F606"},
      {"IBAN_CODE", "", "de89\u00A03704\u00A00044\u00A00532\u00A00130\u00A000"},
      {"IBAN_CODE", "", "gb82 west 1234 5698 7654 32"},
      {"IBAN_CODE", "", "nl91 abna 0417 1643 00"},
      {"IBAN_CODE", "", "mt84 malt 0110 0001 2345 mtlc ast0 01s"},
      {"IBAN_CODE", "", "qa58 dohb 0000 1234 5678 90ab cdef g"},
      {"IBAN_CODE", "", "ps82 hwuc yi5s rpqg 5mok 9z24 irst q"},
      {"IBAN_CODE", "", "gb82\u202Fwest\u202F1234\u202F5698\u202F7654\u202F32"},
      {"US_SSN", "", "123\u201145\u20116789"},
      {"US_SSN", "", "123\u201045\u20106789"},
      {"US_SSN", "", "123\u201245\u20126789"},
      {"US_SSN", "", "123\u201345\u20136789"},
      {"US_SSN", "", "123\u221245\u22126789"},
      {"US_SSN", "", "123\u00A045\u00A06789"},
      {"US_SSN", "SSN ", "\uFF11\uFF12\uFF13\uFF0D\uFF14\uFF15\uFF0D\uFF16\uFF17\uFF18\uFF19"},
      {"US_SSN", "SSN ", "\uFF11\uFF12\uFF13\uFF14\uFF15\uFF16\uFF17\uFF18\uFF19"},
      {"PHONE_NUMBER", "", "(415)\u00A0555\u20132671"},
      {"PHONE_NUMBER", "", "415\u2011555\u20112671"},
      {"PHONE_NUMBER", "", "+1\u00A0415\u00A0555\u00A02671"},
      {"PHONE_NUMBER", "", "+33\u202F6\u202F12\u202F34\u202F56\u202F78"},
      {"PHONE_NUMBER", "", "+49\u00A030\u00A012345678"},
      {"PHONE_NUMBER", "",
       "\uFF0B\uFF18\uFF11 \uFF19\uFF10 \uFF11\uFF12\uFF13\uFF14 \uFF15\uFF16\uFF17\uFF18"},
      {"PHONE_NUMBER", "電話：",
       "\uFF10\uFF19\uFF10\uFF0D\uFF11\uFF12\uFF13\uFF14\uFF0D\uFF15\uFF16\uFF17\uFF18"},
      {"PHONE_NUMBER", "携帯 ", "090\u20131234\u20135678"},
      {"PHONE_NUMBER", "Tél. ", "06\u00A012\u00A034\u00A056\u00A078"},
      {"PHONE_NUMBER", "teléfono ", "612 345 678"},
      {"PHONE_NUMBER", "Telefone: ", "912 345 678"},
      {"PHONE_NUMBER", "móvil ", "612-345-678"},
      {"PHONE_NUMBER", "tel ", "912 34 56 78"},
      {"PHONE_NUMBER", "telemóvel ", "912\u00A0345\u00A0678"},
      {"EMAIL_ADDRESS", "", "jane\uFF20example.com"},
      {"EMAIL_ADDRESS", "", "jane.doe\uFF20example\uFF0Ecom"},
      {"IP_ADDRESS", "", "\uFF11\uFF19\uFF12\uFF0E\uFF10\uFF0E\uFF12\uFF0E\uFF11"},
      // Full-width letters and punctuation, ideographic spaces.
      {"EMAIL_ADDRESS", "", FullWidth("john.smith@example.com")},
      {"EMAIL_ADDRESS", "メール\u3000", FullWidth("ops+alerts@mail.example.co.uk")},
      {"IBAN_CODE", "", FullWidth("DE89 3704 0044 0532 0130 00")},
      {"IBAN_CODE", "", IdeographicSpaces(FullWidth("DE89 3704 0044 0532 0130 00"))},
      {"IBAN_CODE", "", IdeographicSpaces(FullWidth("GB82 WEST 1234 5698 7654 32"))},
      {"IBAN_CODE", "", FullWidth("GB82WEST12345698765432")},
      {"IBAN_CODE", "", FullWidth("fr14 2004 1010 0505 0001 3m02 606")},
      {"AWS_ACCESS_KEY", "", FullWidth("AKIAIOSFODNN7EXAMPLE")},
      {"AWS_ACCESS_KEY", "キー\u3000", FullWidth("AKIAIOSFODNN7EXAMPLE")},
      {"GITHUB_TOKEN", "", FullWidth("ghp_" + RandomOf(kBase62, 36, 9))},
      {"PHONE_NUMBER", "電話\u3000", "03-1234-5678"},
      {"PHONE_NUMBER", "TEL\u3000", FullWidth("090-1234-5678")},
      {"PHONE_NUMBER", "\u3000", "+81 90 1234 5678"},
      {"PHONE_NUMBER", "", "+81\u300090\u30001234\u30005678"},
      {"PHONE_NUMBER", "電話\u3000", "090\u30001234\u30005678"},
      {"PHONE_NUMBER", "phone\u3000", "(415)\u3000555-2671"},
      {"PHONE_NUMBER", FullWidth("phone") + " ", "020 7946 0958"},
      {"US_SSN", FullWidth("SSN:") + "\u3000", FullWidth("123456789")},
      {"CREDIT_CARD", "カード番号\u3000", IdeographicSpaces(FullWidth("4111 1111 1111 1111"))},
      {"IP_ADDRESS", "", FullWidth("2001:db8::8a2e:370:7334")},
  };
}

// `sample` alone, between multi-byte UTF-8 text and after each kind of punctuation: found
// once, with its exact byte offsets, and nothing else.
void ExpectFoundAloneWithExactOffsets(const Sample& sample) {
  const std::vector<std::pair<std::string, std::string>> wrappers = {
      {"", ""},  {"", "."},  {"(", ")"}, {"\"", "\","}, {"«", "»"},
      {"", ":"}, {"„", "“"}, {"", "!"},  {"", "\n"},    {"'", "';"}};
  const std::vector<std::pair<std::string, std::string>> surroundings = {
      {"", ""},
      {"Grüße aus München — 日本語のテキスト 🙂 ", " ✓ merci beaucoup, ça va."},
      {"Bitte prüfen:\n", "\nDanke 👍"}};
  for (const auto& [open, close] : wrappers) {
    for (const auto& [before, after] : surroundings) {
      const std::string prefix = absl::StrCat(before, sample.context, open);
      const std::string text = absl::StrCat(prefix, sample.value, close, after);
      const std::vector<Finding> findings = Default().Scan(text);
      ASSERT_EQ(findings.size(), 1u)
          << sample.value << " in '" << text << "': " << DescribeAll(text, findings);
      EXPECT_EQ(findings[0].entity_type, sample.type) << text;
      EXPECT_EQ(findings[0].begin, prefix.size()) << text << ": " << Describe(text, findings[0]);
      EXPECT_EQ(findings[0].end, prefix.size() + sample.value.size())
          << text << ": " << Describe(text, findings[0]);
      EXPECT_GE(findings[0].score, 0.5);
      EXPECT_LE(findings[0].score, 1.0);
      EXPECT_FALSE(findings[0].recognizer.empty());
    }
  }
}

TEST(DetectorTest, FindsEachFormatWithExactOffsets) {
  for (const Sample& sample : Positives()) ExpectFoundAloneWithExactOffsets(sample);
}

TEST(DetectorTest, FindsValuesWrittenWithTypographicCharactersWithExactOffsets) {
  for (const Sample& sample : TypographicPositives()) ExpectFoundAloneWithExactOffsets(sample);
}

// Every one-line format typed with full-width characters (its context words too), its spaces
// as they are or ideographic: found as its ASCII form is.
TEST(DetectorTest, FindsEachFormatWrittenInFullWidthCharacters) {
  for (const Sample& sample : Positives()) {
    if (sample.value.find('\n') != std::string::npos) continue;
    ExpectFoundAloneWithExactOffsets(
        {sample.type, FullWidth(sample.context), FullWidth(sample.value)});
    ExpectFoundAloneWithExactOffsets({sample.type, IdeographicSpaces(FullWidth(sample.context)),
                                      IdeographicSpaces(FullWidth(sample.value))});
  }
}

TEST(DetectorTest, KeyWithoutItsEndLineIsRedactedToTheEndOfItsBase64) {
  const std::string header = "-----BEGIN RSA PRIVATE KEY-----";
  const std::string body =
      "\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu"
      "\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm";
  const std::string text = absl::StrCat("my key:\n", header, body, "\n\nwhy does it fail?");
  EXPECT_THAT(Found(text), ElementsAre(std::make_pair("PRIVATE_KEY", header + body)))
      << DescribeAll(text, Default().Scan(text));
}

TEST(DetectorTest, KeyWithoutItsEndLineInAJsonOrYamlString) {
  const std::string json_key =
      "-----BEGIN RSA PRIVATE KEY-----\\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\\n"
      "4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7o";
  const std::string json = absl::StrCat("{\"private_key\": \"", json_key, "...\"}");
  EXPECT_THAT(Found(json), ElementsAre(std::make_pair("PRIVATE_KEY", json_key)))
      << DescribeAll(json, Default().Scan(json));
  const std::string yaml_key =
      "-----BEGIN PRIVATE KEY-----\n    MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
      "    BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj";
  // The next setting, or a question on the next line, is no line of the key.
  for (const std::string& yaml :
       {absl::StrCat("tls:\n  key: |\n    ", yaml_key, "\n\n  cert: x\n"),
        absl::StrCat("tls:\n  key: |\n    ", yaml_key, "\n  host: build.internal\n"),
        absl::StrCat("my key:\n", yaml_key, "\nWhy does ssh reject it?")}) {
    EXPECT_THAT(Found(yaml), ElementsAre(std::make_pair("PRIVATE_KEY", yaml_key)))
        << DescribeAll(yaml, Default().Scan(yaml));
  }
  // With CRLF line ends, the last line's '\r' goes with it.
  const std::string crlf = absl::StrCat("my key:\r\n", yaml_key, "\r\nWhy does ssh reject it?");
  EXPECT_THAT(Found(crlf), ElementsAre(std::make_pair("PRIVATE_KEY", yaml_key + "\r")));
}

TEST(DetectorTest, FindsMachineReadableZonesWhole) {
  const std::string td3 =
      "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10";
  const std::string td1 =
      "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\n"
      "ERIKSSON<<ANNA<MARIA<<<<<<<<<<";
  const std::string data = td3.substr(45);
  using Found_ = std::vector<std::pair<std::string, std::string>>;
  // Zones one after another, a zone after words on its first line, data lines one a line.
  EXPECT_EQ(Found(absl::StrCat(td3, "\n", td1)),
            (Found_{{"IDENTITY_DOCUMENT_MRZ", td3}, {"IDENTITY_DOCUMENT_MRZ", td1}}));
  EXPECT_EQ(Found(absl::StrCat("The passport's MRZ reads: ", td3, " (scanned).")),
            (Found_{{"IDENTITY_DOCUMENT_MRZ", td3}}));
  EXPECT_EQ(Found(absl::StrCat(data, "\n", data, "\r\n", data)),
            (Found_{{"IDENTITY_DOCUMENT_MRZ", data},
                    {"IDENTITY_DOCUMENT_MRZ", data},
                    {"IDENTITY_DOCUMENT_MRZ", data}}));
  // A name line of another document type before a valid data line: the data line alone.
  EXPECT_EQ(Found(absl::StrCat("X", td3.substr(1))), (Found_{{"IDENTITY_DOCUMENT_MRZ", data}}));
  // Lines ending in spaces (OCR, a PDF's copy), one blank line between them: the whole zone.
  const std::string spaced = absl::StrCat(td3.substr(0, 44), "  \n\n", data);
  EXPECT_EQ(Found(absl::StrCat(spaced, "  \n")), (Found_{{"IDENTITY_DOCUMENT_MRZ", spaced}}));
  // A character of the zone's alphabet glued to it: none.
  EXPECT_THAT(Found(absl::StrCat("<", data)), IsEmpty());
  EXPECT_THAT(Found(absl::StrCat(td3, "<")), IsEmpty());
  EXPECT_THAT(Found(absl::StrCat(td3, "A")), IsEmpty());
  // Redacted, the zone leaves nothing of its holder: the name line goes with it.
  const std::vector<Finding> found = Default().Scan(absl::StrCat("MRZ:\n", td1, "\nok"));
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].begin, 5u);
  EXPECT_EQ(found[0].end, 5u + td1.size());
}

TEST(DetectorTest, FindsSeveralEntitiesInOneText) {
  const std::string text =
      "Hi, I'm Zoë. Card 4111 1111 1111 1111, e-mail zoe.x@example.com; "
      "call +44 20 7946 0958 or (415) 555-2671. Server 10.0.0.1:8080, key AKIAIOSFODNN7EXAMPLE.";
  EXPECT_THAT(Found(text), ElementsAre(std::make_pair("CREDIT_CARD", "4111 1111 1111 1111"),
                                       std::make_pair("EMAIL_ADDRESS", "zoe.x@example.com"),
                                       std::make_pair("PHONE_NUMBER", "+44 20 7946 0958"),
                                       std::make_pair("PHONE_NUMBER", "(415) 555-2671"),
                                       std::make_pair("IP_ADDRESS", "10.0.0.1"),
                                       std::make_pair("AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE")))
      << DescribeAll(text, Default().Scan(text));
}

std::vector<std::string> HardNegatives() {
  return {
      // Card-shaped numbers failing Luhn or without an issuer.
      "4111111111111112",
      "4111 1111 1111 1112",
      "4111-1111-1111-1112",
      "1234567812345670",
      "9111111111111111",
      "5555555555554445",
      "3782 822463 10006",
      // IBAN-shaped with a wrong check or length.
      "DE89370400440532013001",
      "de89370400440532013001",
      "GB82-WEST-1234-5698-7654-33",
      "DE8937040044053201300",
      "GB82 WEST 1234 5698 7654 33",
      "DE89 3704 0044 0532 0130 001",
      "XX89370400440532013000",
      // SSN-shaped in invalid ranges.
      "000-12-3456",
      "666-12-3456",
      "900-12-3456",
      "912-49-1234",
      "123-00-4567",
      "123-45-0000",
      "078-05-1120",
      "219-09-9999",
      // Dates and times.
      "2024-01-15",
      "15/01/2024",
      "01-15-2024",
      "15.01.2024",
      "Jan 15, 2024",
      "14:05:33",
      "2024-01-15T14:05:33Z",
      // Order and invoice numbers.
      "ORD-88412-A",
      "#100234",
      "order 4471-22",
      "INV-2023-0042",
      "Invoice 2024/118",
      // Versions.
      "v1.2.3",
      "2.14.0",
      "10.0.19045.2965",
      "version 1.2.3.4",
      "Version 1.2.3.4",
      "ver 1.2.3.4",
      "v1.2.3.4",
      "V1.2.3.4",
      "4.18.0-305.el8",
      "1.2.3.4.5",
      "System.Runtime, Version=4.0.0.0, Culture=neutral",
      "[assembly: AssemblyVersion(\"1.0.0.0\")]",
      "<bindingRedirect oldVersion=\"0.0.0.0-13.0.0.0\" newVersion=\"13.0.0.0\"/>",
      "FileVersion: 1.2.3.4",
      "## 1.2.3.4",
      "protobuf==3.20.3.1",
      "Released 2.0.0.1",
      "section 3.1.4.1",
      "Upgrade to version 10.2.1.4 then 10.2.1.5",
      "listen on 0.0.0.0:8080",
      "curl http://127.0.0.1:9000/health",
      "netmask 255.255.255.0",
      // Identifiers.
      "123e4567-e89b-12d3-a456-426614174000",
      "3f786850e387550fdab836ed7e6dc881de23001b",
      "A1B2C3D4E5F6A7B8C9D0E1F2A3B4C5D6E7F8A9B0",
      // Prices, ZIP codes, ISBNs, percentages, integers.
      "$1,299.00",
      "94103",
      "978-3-16-148410-0",
      "45%",
      "12.5%",
      "12345678",
      "99999999",
      // Bare 9 and 10 digits without a context word.
      "123456789",
      "4155552671",
      "9434765919",
      // Words that look like other things.
      "std::vector",
      "x = arr[::2]; a[1::3]; b[10::20]",
      "a::b",
      "cafe::beef",
      "ratio 1:2:3",
      "00:1A:2B:3C:4D:5E",
      "user@localhost",
      "icon@2x.png",
      "see logo@3x.jpg and bg@2x.webp",
      "npm pack gives pkg@1.2.3.tgz",
      "built with react@next.js",
      "jane@example",
      "task-force",
      "sk-short",
      "sk-learn-compatible-estimator-api-v2",
      "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  // No context word.
      "-----BEGIN PRIVATE KEY----- and then the base64 lines",
      "AKIA-not-a-key",
      "ghp_short",
      // Tokens: a JWT header without "alg", two segments, a payload that is no JSON object, a
      // header of a length no base64 has; keys one character short or long, publishable Stripe
      // keys, documentation placeholders, environment variable names, an account key without
      // its name.
      "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlMTIz",
      "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0",
      "eyJhbGciOiJIUzI1NiJ9.MTIzNDU2Nzg5MA.c2lnbmF0dXJlMTIz",
      "eyJhbGciOiJIUzI1NiJ9x.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlMTIz",
      // Belgian, Irish, Danish, Austrian and Portuguese numbers without their words, with wrong
      // checks, impossible dates, or a company's.
      "85073003328",
      "211062-5629",
      "1237 010180",
      "234567899",
      "6433435F",
      "7654321PA",
      "85.07.30-033.29",
      "85.13.30-033.70",
      "Rijksregisternummer 85073003329",
      "PPS 6433435E",
      "PPSN 6433435IH",
      "CPR 321062-5629",
      "CPR 290223-1234",
      "SVNR 2237 010180",
      "SVNR 0237 010180",
      "NIF 501964843",
      "NIF 234567898",
      "AIza" + RandomOf(kBase62, 34, 40),
      // A token is its whole run: not a shorter piece ending at one of its '-', and a JWT with
      // a fourth segment is none.
      "AIza" + RandomOf(kBase62, 35, 57) + "-",
      "see AIza" + RandomOf(kBase62, 35, 58) + "-" + RandomOf(kBase62, 8, 59) + " there",
      std::string(kJwt) + ".eyJ4In0",
      "AIza" + RandomOf(kBase62, 36, 41),
      "pk_live_" + RandomOf(kBase62, 24, 42),
      "pk_test_" + RandomOf(kBase62, 99, 43),
      "sk_live_" + RandomOf(kBase62, 23, 44),
      "sk_prod_" + RandomOf(kBase62, 24, 45),
      "sk_live_XXXXXXXXXXXXXXXXXXXXXXXX",
      "glpat-xxxxxxxxxxxxxxxxxxxx",
      "glpat-" + RandomOf(kBase62, 19, 46),
      "hf_hub_download",
      "hf_" + RandomOf("abcdefghijklmnopqrstuvwxyz", 34, 47),
      "hf_" + RandomOf(kLetters, 33, 48),
      "npm_config_cache",
      "npm_" + RandomOf(kBase62, 35, 49),
      "npm_000000000000000000000000000000000000",
      "SG." + RandomOf(kBase62, 21, 50) + "." + RandomOf(kBase62, 43, 51),
      "SG." + RandomOf(kBase62, 22, 52) + "." + RandomOf(kBase62, 42, 53),
      RandomOf(kBase62, 86, 54) + "==",
      "AccountName=" + RandomOf(kBase62, 86, 55) + "==",
      // The session's providers: one character short or long, placeholders, names.
      "gsk_" + RandomOf(kBase62, 51, 100),
      "gsk_" + RandomOf(kBase62, 53, 101),
      "gsk_client",
      "xai-" + RandomOf(kBase62, 79, 102),
      "pip install xai-sdk; model xai-grok-2",
      "GOCSPX-" + RandomOf(kBase62, 27, 103),
      "GOCSPX-" + RandomOf(kBase62, 28, 104) + "-x",
      "ya29." + RandomOf(kBase64Url, 28, 105) + "Q",
      "ya29.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
      "pypi-AgEAAAAA" + RandomOf(kBase62, 60, 106),
      "pypi-AgEIcHlwaS5vcmc" + RandomOf(kBase62, 49, 107),
      "twine upload with pypi-upload",
      "dckr_pat_" + RandomOf(kBase62, 26, 108),
      "dckr_pat_XXXXXXXXXXXXXXXXXXXXXXXXXXX",
      "whsec_" + RandomOf(kBase62, 31, 109),
      "whsec_test",
      "1234567:AA" + RandomOf(kBase62, 33, 110),
      "12345678901:AA" + RandomOf(kBase62, 33, 111),
      "123456789:AB" + RandomOf(kBase62, 33, 112),
      "0123456789:AA" + RandomOf(kBase62, 33, 113),
      "robot123456789:AA" + RandomOf(kBase62, 33, 114),
      "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
      "https://hooks.slack.com/services/T0ABCDEF12/B0ABCDEF12/" + RandomOf(kBase62, 23, 115),
      "https://api.slack.com/apps/A0ABCDEF12/" + RandomOf(kBase62, 24, 116),
      "xapp-1-A0ABCDEF12-1234567890123-" + RandomOf("0123456789abcdef", 63, 117),
      "SharedAccessKeyName=RootManageSharedAccessKey",
      "pplx-" + RandomOf(kBase62, 47, 150),
      "r8_" + RandomOf(kBase62, 36, 151),
      "lsv2_pt_" + RandomOf(kHex, 31, 152) + "_" + RandomOf(kHex, 10, 153),
      "dapi" + RandomOf(kHex, 31, 154),
      "dapi" + RandomOf("abcdef", 32, 155),
      "ATATT3" + RandomOf(kBase62, 185, 156),
      "hvs." + RandomOf(kBase62, 89, 157),
      "hvs." + RandomOf(kLetters, 95, 158),
      "abc8Q~" + RandomOf(kBase62, 30, 159),
      "dop_v1_" + RandomOf(kHex, 63, 160),
      "PMAK-" + RandomOf(kHex, 24, 161) + "-" + RandomOf(kHex, 33, 162),
      "glsa_" + RandomOf(kBase62, 32, 163) + "_" + RandomOf(kHex, 7, 164),
      // A certificate in base64 (tls.crt), and the start of a key's base64 too short to be one.
      "tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSURkekNDQWwrZ0F3SUJBZ0lFQWdBQXVUQU5CZ2txaG"
      "tpRzl3MEJBUVVGQURCYU1Rc3dDUVlEVlFRR0V3SkoKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=",
      "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlF",
      "?signature=" + RandomOf(kBase62, 43, 119) + "%3D",
      "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
      "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END EC PRIVATE KEY-----",
      "AB1234564",
      "part AB1234563, qty 4",
      "F97654329",
      "+28 20 7946 0958",
      "Telefon +0406145643 ist ungültig, Tel. +612 345 678 auch",
      "+44 20 794",
      // Typographic characters in what holds no value: date ranges, amounts and order numbers
      // with en dashes, narrow no-break spaces and full-width digits, and nine-digit numbers
      // without a phone word.
      "2019\u20132023",
      "pages 123\u2013456",
      "2024\u201101\u201115",
      "1\u202F234,56\u00A0€",
      "12\u202F345\u202F678,90 €",
      "4111\u00A01111\u00A01111\u00A01112",
      "注文番号：\uFF11\uFF12\uFF13\uFF14\uFF15\uFF16\uFF17\uFF18\uFF19",
      "\uFF11\uFF12\uFF13\uFF14\uFF15\uFF16\uFF17\uFF18\uFF19\uFF10",
      "\uFF10\uFF11\uFF17\uFF11 \uFF12\uFF13\uFF14\uFF15\uFF16\uFF17\uFF18",
      "Order 612 345 678",
      // Machine-readable zones failing a check, a name line alone, a TD1 without its third
      // line; VAT numbers failing their check, of states not claimed, in lower case, glued.
      "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<11",
      "L898902C36UTO7408122F1204159ZE184226B<<<<<11",
      "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
      "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6",
      "L898902C36UTO7408122F1204159ZE184226B<<<<<10<",
      "DE136695977",
      "BG175074752",
      "de136695976",
      "CODE136695976",
      "DE1366959761",
      "Invoice 912-345-678",
      "Pedido 912 34 56 78",
      "de89 3704 0044 0532 0130 01",
      // The same in full-width characters and ideographic spaces: dates, times, versions,
      // order numbers, identifiers, values failing their checks.
      FullWidth("2024/01/15"),
      FullWidth("2024-01-15"),
      FullWidth("15.01.2024"),
      "２０２４年１月１５日",
      FullWidth("14:05:33"),
      FullWidth("v2.14.0"),
      FullWidth("Version 1.2.3.4"),
      IdeographicSpaces(FullWidth("version 10.0.19045.2965")),
      FullWidth("ORD-88412-A"),
      FullWidth("INV-2023-0042"),
      FullWidth("123e4567-e89b-12d3-a456-426614174000"),
      FullWidth("AKIA-not-a-key"),
      FullWidth("icon@2x.png"),
      FullWidth("std::vector"),
      IdeographicSpaces(FullWidth("4111 1111 1111 1112")),
      IdeographicSpaces(FullWidth("DE89 3704 0044 0532 0130 01")),
      FullWidth("GB82WEST12345698765433"),
      FullWidth("666-12-3456"),
      "注文番号\u3000" + FullWidth("612 345 678"),
  };
}

TEST(DetectorTest, FindsNoHardNegative) {
  for (const std::string& negative : HardNegatives()) {
    for (const std::string& text : {negative, absl::StrCat("Reference: ", negative, "."),
                                    absl::StrCat("Grüße — «", negative, "» 🙂 ok")}) {
      const std::vector<Finding> findings = Default().Scan(text, MinScore(0.0));
      EXPECT_THAT(findings, IsEmpty()) << text << ": " << DescribeAll(text, findings);
    }
  }
}

TEST(DetectorTest, BoundaryRules) {
  // Glued to letters or digits: part of a longer token.
  EXPECT_THAT(Found("x4111111111111111"), IsEmpty());
  EXPECT_THAT(Found("41111111111111111111111"), IsEmpty());
  EXPECT_THAT(Found("id123-45-6789"), IsEmpty());
  EXPECT_THAT(Found("123-45-67890"), IsEmpty());
  EXPECT_THAT(Found("XAKIAIOSFODNN7EXAMPLE"), IsEmpty());
  EXPECT_THAT(Found("AKIAIOSFODNN7EXAMPLEX"), IsEmpty());
  EXPECT_THAT(Found("10.0.0.1.5"), IsEmpty());
  EXPECT_THAT(Found("5.10.0.0.1"), IsEmpty());
  // A trailing word the pattern took is left out.
  EXPECT_THAT(Found("BE68 5390 0754 7034 EUR"),
              ElementsAre(std::make_pair("IBAN_CODE", "BE68 5390 0754 7034")));
  EXPECT_THAT(Found("at 2001:db8::1: down"),
              ElementsAre(std::make_pair("IP_ADDRESS", "2001:db8::1")));
  // Space-separated groups with digits around a grouped value make one longer number.
  EXPECT_THAT(Found("card 4111 1111 1111 1111 2024"), IsEmpty());
  EXPECT_THAT(Found("6887 4111 1111 1111 1111"), IsEmpty());
  EXPECT_THAT(Found("MC88 6887 4913 3610 2041 4516 266"), IsEmpty());
  EXPECT_THAT(Found("GB31 WEMF 4832 6768 0889 4"), IsEmpty());
  EXPECT_THAT(Found("BE68 5390 0754 7034 5"), IsEmpty());
  EXPECT_THAT(Found("+49 30 12345678 2024"), IsEmpty());
  // Words around them do not.
  EXPECT_THAT(Found("VISA 4111 1111 1111 1111 EXP 12/26"),
              ElementsAre(std::make_pair("CREDIT_CARD", "4111 1111 1111 1111")));
  EXPECT_THAT(Found("NHS NO 943 476 5919"), ElementsAre(std::make_pair("UK_NHS", "943 476 5919")));
  EXPECT_THAT(Found("4111111111111111 2024"),
              ElementsAre(std::make_pair("CREDIT_CARD", "4111111111111111")));
  // Punctuation that is not glue.
  EXPECT_THAT(Found("IP=10.0.0.1/24, mail:jo@ex.com"),
              ElementsAre(std::make_pair("IP_ADDRESS", "10.0.0.1"),
                          std::make_pair("EMAIL_ADDRESS", "jo@ex.com")));
  // A version word after the address, or further than the window before it, does not count.
  EXPECT_THAT(Found("server 10.2.1.5 runs version 2"),
              ElementsAre(std::make_pair("IP_ADDRESS", "10.2.1.5")));
  EXPECT_THAT(Found("version 2 is out. Our office gateway, which has long since moved to the new "
                    "building: 10.2.1.5"),
              ElementsAre(std::make_pair("IP_ADDRESS", "10.2.1.5")));
  // Han and Kana before an address are the words before it, not its local part.
  EXPECT_THAT(Found("请发邮件到jane@acme.com"),
              ElementsAre(std::make_pair("EMAIL_ADDRESS", "jane@acme.com")));
  // Dots before an address are punctuation, not part of it.
  EXPECT_THAT(Found("Reach out to...jane@acme.com"),
              ElementsAre(std::make_pair("EMAIL_ADDRESS", "jane@acme.com")));
  EXPECT_THAT(Found("email me at..jane@acme.com"),
              ElementsAre(std::make_pair("EMAIL_ADDRESS", "jane@acme.com")));
  EXPECT_THAT(Found(".jane@acme.com"),
              ElementsAre(std::make_pair("EMAIL_ADDRESS", "jane@acme.com")));
  EXPECT_THAT(Found("to john.doe@acme.com"),
              ElementsAre(std::make_pair("EMAIL_ADDRESS", "john.doe@acme.com")));
  // The server word before an address is not the excluded "ver ".
  EXPECT_THAT(Found("observer 10.0.0.1"), ElementsAre(std::make_pair("IP_ADDRESS", "10.0.0.1")));
  // Two entities separated by one space stay two.
  EXPECT_THAT(Found("123-45-6789 234-56-7890"),
              ElementsAre(std::make_pair("US_SSN", "123-45-6789"),
                          std::make_pair("US_SSN", "234-56-7890")));
  // Context after a number counts: this is an NHS number.
  EXPECT_THAT(Found("943 476 5919 (NHS number)"),
              ElementsAre(std::make_pair("UK_NHS", "943 476 5919")));
}

TEST(DetectorTest, ShortNumbersBesideAGroupedValueAreNotPartOfIt) {
  // An expiry date, a CVV, a count or an amount one space away.
  EXPECT_THAT(Found("Card: 4111 1111 1111 1111 12/26 123"),
              ElementsAre(std::make_pair("CREDIT_CARD", "4111 1111 1111 1111")));
  EXPECT_THAT(Found("Card 1 4111 1111 1111 1111"),
              ElementsAre(std::make_pair("CREDIT_CARD", "4111 1111 1111 1111")));
  EXPECT_THAT(Found("CVV 737 EXP 03/30 4111 1111 1111 1111"),
              ElementsAre(std::make_pair("CREDIT_CARD", "4111 1111 1111 1111")));
  EXPECT_THAT(Found("John Smith 4111 1111 1111 1111 12/26"),
              ElementsAre(std::make_pair("CREDIT_CARD", "4111 1111 1111 1111")));
  EXPECT_THAT(Found("4111 1111 1111 1111 123"),
              ElementsAre(std::make_pair("CREDIT_CARD", "4111 1111 1111 1111")));
  EXPECT_THAT(Found("4111 1111 1111 1111 12:30"),
              ElementsAre(std::make_pair("CREDIT_CARD", "4111 1111 1111 1111")));
  EXPECT_THAT(Found("amex 3782 822463 10005 04/27"),
              ElementsAre(std::make_pair("CREDIT_CARD", "3782 822463 10005")));
  EXPECT_THAT(Found("Account 2 DE89 3704 0044 0532 0130 00"),
              ElementsAre(std::make_pair("IBAN_CODE", "DE89 3704 0044 0532 0130 00")));
  EXPECT_THAT(Found("IBAN DE89 3704 0044 0532 0130 00 5000 EUR"),
              ElementsAre(std::make_pair("IBAN_CODE", "DE89 3704 0044 0532 0130 00")));
  EXPECT_THAT(Found("SSN 123 45 6789 01/02/1980"),
              ElementsAre(std::make_pair("US_SSN", "123 45 6789")));
  // Groups as long as the value's that continue the grouping still make a longer number.
  EXPECT_THAT(Found("4111 1111 1111 1111 2024."), IsEmpty());
  EXPECT_THAT(Found("1234 4111 1111 1111 1111 12/26"), IsEmpty());
  EXPECT_THAT(Found("12/26 6887 4111 1111 1111 1111"), IsEmpty());
  EXPECT_THAT(Found("DE89 3704 0044 0532 0130 0012 5000"), IsEmpty());
  EXPECT_THAT(Found("BE68 5390 0754 7034 5 EUR"), IsEmpty());
  EXPECT_THAT(Found("123 123 45 6789"), IsEmpty());
}

TEST(DetectorTest, ContextWordsMustBeNearAndStartAWord) {
  const std::string far = absl::StrCat("SSN ", std::string(64, '.'), " 123456789");
  EXPECT_THAT(Found(far), IsEmpty());
  const std::string near = absl::StrCat("SSN ", std::string(54, '.'), " 123456789");
  EXPECT_THAT(Found(near), ElementsAre(std::make_pair("US_SSN", "123456789")));
  EXPECT_THAT(Found("the hotel 4155552671"), IsEmpty());  // "tel" inside a word.
  EXPECT_THAT(Found("telephone 4155552671"),
              ElementsAre(std::make_pair("PHONE_NUMBER", "4155552671")));
  EXPECT_THAT(Found("itin 123456789"), IsEmpty());  // Not a valid ITIN, not SSN context.
}

TEST(DetectorTest, ContextWordsAfterTheValueCountOnItsLine) {
  EXPECT_THAT(Found("2125551234 is my mobile"),
              ElementsAre(std::make_pair("PHONE_NUMBER", "2125551234")));
  EXPECT_THAT(Found("123456789 is her SSN."), ElementsAre(std::make_pair("US_SSN", "123456789")));
  // Not on the next line, not beyond the window, not past another number as long.
  EXPECT_THAT(Found("2125551234\nmobile: none"), IsEmpty());
  EXPECT_THAT(Found("123456789 is not an SSN"), IsEmpty());
  EXPECT_THAT(Found("2125551234: no phone, an order number"), IsEmpty());
  EXPECT_THAT(Found(absl::StrCat("2125551234 ", std::string(32, '.'), " mobile")), IsEmpty());
  EXPECT_THAT(Found("2125551234 and 3125551234 are mobiles"),
              ElementsAre(std::make_pair("PHONE_NUMBER", "3125551234")));
}

TEST(DetectorTest, OnlyANumberAsLongCancelsAContextWord) {
  EXPECT_THAT(Found("Phone 1: 2125551234, Phone 2: 3125551234"),
              ElementsAre(std::make_pair("PHONE_NUMBER", "2125551234"),
                          std::make_pair("PHONE_NUMBER", "3125551234")));
  EXPECT_THAT(Found("SSN for employee 42: 123456789"),
              ElementsAre(std::make_pair("US_SSN", "123456789")));
  EXPECT_THAT(
      Found("Customer's social security number, as recorded in our HR system, is 123456789."),
      ElementsAre(std::make_pair("US_SSN", "123456789")));
  // The word is about the number right after it.
  EXPECT_THAT(Found("SSN 123-45-6789, ref 234567890"),
              ElementsAre(std::make_pair("US_SSN", "123-45-6789")));
  EXPECT_THAT(Found("phone (415) 555-2671 then 2125551234"),
              ElementsAre(std::make_pair("PHONE_NUMBER", "(415) 555-2671")));
}

TEST(DetectorTest, TableColumnHeadersAreContext) {
  EXPECT_THAT(
      Found("name,ssn\nJohn,123456789\nJane,234567890\nBob,345678901"),
      ElementsAre(std::make_pair("US_SSN", "123456789"), std::make_pair("US_SSN", "234567890"),
                  std::make_pair("US_SSN", "345678901")));
  const std::string csv =
      "name,ssn,phone\nJohn Smith,123456789,2125551234\nJane Doe,234567890,3125551234\n"
      "Bob Roe,345678901,4155552671\n";
  EXPECT_THAT(Found(csv), ElementsAre(std::make_pair("US_SSN", "123456789"),
                                      std::make_pair("PHONE_NUMBER", "2125551234"),
                                      std::make_pair("US_SSN", "234567890"),
                                      std::make_pair("PHONE_NUMBER", "3125551234"),
                                      std::make_pair("US_SSN", "345678901"),
                                      std::make_pair("PHONE_NUMBER", "4155552671")));
  const std::string markdown =
      "| Name | SSN | Phone |\n|------|-----|-------|\n| John | 123456789 | 2125551234 |\n"
      "| Jane | 234567890 | 3125551234 |\n";
  EXPECT_THAT(Found(markdown), ElementsAre(std::make_pair("US_SSN", "123456789"),
                                           std::make_pair("PHONE_NUMBER", "2125551234"),
                                           std::make_pair("US_SSN", "234567890"),
                                           std::make_pair("PHONE_NUMBER", "3125551234")));
  EXPECT_THAT(
      Found("id;ssn\r\n1;\"123456789\"\r\n2;\"234567890\"\r\n"),
      ElementsAre(std::make_pair("US_SSN", "123456789"), std::make_pair("US_SSN", "234567890")));
  // Another column, a value that is not a whole field, a line that is not a row, a header
  // that is the value's own line, or a table that ended: no context.
  const std::string padding = std::string(64, 'x') + ",x\n";  // Beyond the window.
  EXPECT_THAT(Found(absl::StrCat("name,id,ssn\n", padding, "John,123456789,\n")), IsEmpty());
  EXPECT_THAT(Found(absl::StrCat("name,ssn\n", padding, "John,id 123456789\nJo,234567890 x")),
              IsEmpty());
  EXPECT_THAT(Found(absl::StrCat("ssn,name\n", padding, "\n123456789,John")), IsEmpty());
  EXPECT_THAT(Found(absl::StrCat("name;ssn\n", padding, "John,123456789")), IsEmpty());
  EXPECT_THAT(Found("name,ssn\nJohn,123456789\nno rows here\nJane,234567890"),
              ElementsAre(std::make_pair("US_SSN", "123456789")));
  // Long tables keep their header.
  std::string rows = "name,phone\n";
  for (int i = 0; i < 2000; ++i) absl::StrAppend(&rows, "n", i, ",2125551234\n");
  EXPECT_EQ(Default().Scan(rows).size(), 2000u);
}

TEST(DetectorTest, ContextWordsMustBeWholeWords) {
  for (const char* prefix :
       {"telemetry id ", "callback ", "cellar ", "cellular ", "faxed ", "mobility ", "phoned "}) {
    EXPECT_THAT(Found(absl::StrCat(prefix, "2125551234")), IsEmpty()) << prefix;
  }
  EXPECT_THAT(Found("itinerary 912345678"), IsEmpty());
  EXPECT_THAT(Found("ssnx 123456789"), IsEmpty());
  for (const char* prefix :
       {"tel ", "Tel.: ", "calls: ", "cells ", "telephone ", "cellphone ", "phones: ", "PHONE#"}) {
    EXPECT_THAT(Found(absl::StrCat(prefix, "2125551234")),
                ElementsAre(std::make_pair("PHONE_NUMBER", "2125551234")))
        << prefix;
  }
  EXPECT_THAT(Found("SSNs: 123456789"), ElementsAre(std::make_pair("US_SSN", "123456789")));
}

TEST(DetectorTest, ContextRaisesTheScore) {
  const std::vector<Finding> plain_findings = Default().Scan("10.1.2.3");
  const std::vector<Finding> context_findings = Default().Scan("host 10.1.2.3");
  ASSERT_EQ(plain_findings.size(), 1u);
  ASSERT_EQ(context_findings.size(), 1u);
  const Finding& plain = plain_findings[0];
  const Finding& with_context = context_findings[0];
  EXPECT_LT(plain.score, 0.9);
  EXPECT_DOUBLE_EQ(with_context.score, std::min(1.0, plain.score + kContextBoost));
  const ScanOptions strict = MinScore(0.9);
  EXPECT_THAT(Found("10.1.2.3", strict), IsEmpty());
  EXPECT_THAT(Found("host 10.1.2.3", strict),
              ElementsAre(std::make_pair("IP_ADDRESS", "10.1.2.3")));
  // A DEA number needs its context: two letters and seven digits alone are part numbers.
  EXPECT_THAT(Found("AB1234563", MinScore(0.0)), IsEmpty());
  EXPECT_THAT(Found("DEA number AB1234563"),
              ElementsAre(std::make_pair("MEDICAL_LICENSE", "AB1234563")));
  EXPECT_THAT(Found("415-555-2671", strict), IsEmpty());
  EXPECT_THAT(Found("Mobile: 415-555-2671", strict),
              ElementsAre(std::make_pair("PHONE_NUMBER", "415-555-2671")));
}

TEST(DetectorTest, EuropeanIdentifiersNeedContextWhereTheShapeIsCommon) {
  // A compact National Insurance number, a DNI apart from its letter and a PESEL look like
  // part, order and account numbers: only with their words.
  EXPECT_THAT(Found("part AB123456C in stock", MinScore(0.0)), IsEmpty());
  EXPECT_THAT(Found("my NI number is AB123456C"),
              ElementsAre(std::make_pair("UK_NINO", "AB123456C")));
  EXPECT_THAT(Found("order 12345678 Z arrived", MinScore(0.0)), IsEmpty());
  EXPECT_THAT(Found("account 44051401359", MinScore(0.0)), IsEmpty());
  EXPECT_THAT(Found("PESEL holder, phone +44051401359"),
              ElementsAre(std::make_pair("PHONE_NUMBER", "+44051401359")));
  // Their checks: a wrong letter, a prefix never issued, a date that does not exist.
  EXPECT_THAT(Found("DNI 12345678A, NIE X1234567X", MinScore(0.0)), IsEmpty());
  EXPECT_THAT(Found("QQ 12 34 56 C and GB 12 34 56 A", MinScore(0.0)), IsEmpty());
  EXPECT_THAT(Found("RSSMRA85T10A562T and RSSMRA85F10A562S", MinScore(0.0)), IsEmpty());
  EXPECT_THAT(Found("hetu 290201A4561 or 131052-308U", MinScore(0.0)), IsEmpty());
  // As people type them: either case, other separators, after a word that says what they
  // are; not on their own.
  const std::vector<std::pair<std::string, std::string>> typed = {
      {"my national insurance no is ym204451d", "ym204451d"},
      {"NI: JG103759A", "JG103759A"},
      {"Nat. Ins. No. HT402985A", "HT402985A"},
      {"{\"ni_number\":\"JG103759A\"}", "JG103759A"},
      {"{\"nationalInsuranceNumber\":\"HT402985A\"}", "HT402985A"},
      {"NINO: CE-73-41-10-C", "CE-73-41-10-C"},
      {"NI No: WL 925318 B", "WL 925318 B"},
      {"DNI: 12345678-z", "12345678-z"},
      {"D.N.I. 12345678 Z", "12345678 Z"},
      {"NIE: X 1234567 L", "X 1234567 L"},
      {"mi nie es x1234567l", "x1234567l"},
      {"hetu 131052-308t", "131052-308t"},
  };
  for (const auto& [text, value] : typed) {
    const std::vector<std::pair<std::string, std::string>> found = Found(text);
    ASSERT_EQ(found.size(), 1u) << text;
    EXPECT_EQ(found[0].second, value) << text;
  }
  for (const char* alone : {"ref ym204451d", "ref CE-73-41-10-C", "ref 12345678-z",
                            "ref X 1234567 L", "ref x1234567l", "ref 131052-308t"}) {
    EXPECT_THAT(Found(alone, MinScore(0.0)), IsEmpty()) << alone;
  }
  // A Swedish number in a Finnish code's shape is Swedish after a Swedish word, and nothing
  // without one; a BSN and a Swedish number need their word.
  EXPECT_THAT(Found("personnummer är 120304-0272"),
              ElementsAre(std::make_pair("SE_PERSONAL_IDENTITY_NUMBER", "120304-0272")));
  EXPECT_THAT(Found("120304-0272 är mitt personnummer"),
              ElementsAre(std::make_pair("SE_PERSONAL_IDENTITY_NUMBER", "120304-0272")));
  // A Finnish code with '-' or '+' has a date-numbered reference's shape: only after its word.
  EXPECT_THAT(Found("Invoice 240315-0424, order 150324-1238", MinScore(0.0)), IsEmpty());
  EXPECT_THAT(Found("HENKILÖTUNNUS 131052-308T"),
              ElementsAre(std::make_pair("FI_PERSONAL_IDENTITY_CODE", "131052-308T")));
  // An IMEI is no NIR; a NIR of a person being registered (sex 3, 4, 7, 8) needs its word.
  EXPECT_THAT(Found("IMEI: 351504813309347", MinScore(0.0)), IsEmpty());
  EXPECT_THAT(Found("ref 385057800608488", MinScore(0.0)), IsEmpty());
  EXPECT_THAT(Found("NIR 385057800608488"),
              ElementsAre(std::make_pair("FR_NIR", "385057800608488")));
  EXPECT_THAT(Found("ref 811218-9876, order 123456782", MinScore(0.0)), IsEmpty());
  EXPECT_THAT(Found("Bestellung 86095742719, Artikel A123456780", MinScore(0.0)), IsEmpty());
  // A list after one word: each value follows a finding with only a list's separators.
  EXPECT_THAT(
      Found("NI numbers for the new starters: PX501233D, HT402985A and KC661903A."),
      ElementsAre(std::make_pair("UK_NINO", "PX501233D"), std::make_pair("UK_NINO", "HT402985A"),
                  std::make_pair("UK_NINO", "KC661903A")));
  EXPECT_THAT(Found("PESEL-e uczestników:\n02270803624\n44051401359"),
              ElementsAre(std::make_pair("PL_PESEL", "02270803624"),
                          std::make_pair("PL_PESEL", "44051401359")));
  EXPECT_THAT(Found("PESEL:\n\n17102810336\n\n32021673640\n\n44051401359"),
              ElementsAre(std::make_pair("PL_PESEL", "17102810336"),
                          std::make_pair("PL_PESEL", "32021673640"),
                          std::make_pair("PL_PESEL", "44051401359")));
  // Not after a number, a word that is no conjunction, a '/', nor between a table's cells.
  for (const char* text :
       {"PESEL 02270803624, order 12 44051401359",
        "PESEL 02270803624, then the account 44051401359", "BSN 123456782 / rek 555000114",
        "bsn,klantnr\n123456782,100000009",
        "| naam | bsn | klantnr |\n|---|---|---|\n| Jan | 123456782 | 100000009 |",
        "NI number: AB123456C, ref CE123456A", "Personnummer: 811218-9876, tel 0701234569"}) {
    const std::vector<std::pair<std::string, std::string>> found = Found(text);
    ASSERT_FALSE(found.empty()) << text;
    EXPECT_EQ(std::count_if(found.begin(), found.end(),
                            [&](const auto& f) { return f.first == found[0].first; }),
              1)
        << text;
  }
  // A codice fiscale's layout and check letter are enough in either case; a grouped National
  // Insurance number after a number is not part of it.
  // Omocodia replaces digits from the right; the day exists in its month.
  EXPECT_THAT(Found("CF RSSMRAU5T10A562P e RSSMRA85B31A562F", MinScore(0.0)), IsEmpty());
  EXPECT_THAT(Found("il mio cf è vrdlra90m52h501s"),
              ElementsAre(std::make_pair("IT_FISCAL_CODE", "vrdlra90m52h501s")));
  EXPECT_THAT(Found("EMP 1043 SN 84 21 96 B 1257L M1"),
              ElementsAre(std::make_pair("UK_NINO", "SN 84 21 96 B")));
  // A context word raises a score below 1.
  const std::vector<Finding> bare = Default().Scan("12345678Z");
  const std::vector<Finding> worded = Default().Scan("DNI 12345678Z");
  ASSERT_EQ(bare.size(), 1u);
  ASSERT_EQ(worded.size(), 1u);
  EXPECT_GT(worded[0].score, bare[0].score);
}

TEST(DetectorTest, ThresholdAndTypeFilters) {
  const std::string text = "SSN 123-45-6789, card 4111111111111111, ip 10.0.0.1, x@y.io";
  EXPECT_EQ(Found(text).size(), 4u);
  EXPECT_THAT(Found(text, OnlyTypes({"CREDIT_CARD", "EMAIL_ADDRESS"})),
              ElementsAre(std::make_pair("CREDIT_CARD", "4111111111111111"),
                          std::make_pair("EMAIL_ADDRESS", "x@y.io")));
  EXPECT_THAT(Found(text, OnlyTypes({"NO_SUCH_TYPE"})), IsEmpty());
  for (const Finding& f : Default().Scan(text)) {
    const std::vector<Finding> above = Default().Scan(text, MinScore(f.score + 1e-9));
    for (const Finding& g : above) EXPECT_GT(g.score, f.score);
    const std::vector<Finding> at = Default().Scan(text, MinScore(f.score));
    EXPECT_TRUE(std::any_of(at.begin(), at.end(), [&](const Finding& g) {
      return g.begin == f.begin && g.end == f.end;
    }));
  }
  EXPECT_THAT(Found(text, MinScore(1.01)), IsEmpty());
}

TEST(DetectorTest, OverlapsGoToHigherScoreThenLongerThenEarlier) {
  // UK_NHS (check digit, required context) beats the phone reading of the same digits.
  EXPECT_THAT(Found("NHS 943 476 5919"), ElementsAre(std::make_pair("UK_NHS", "943 476 5919")));
  EXPECT_THAT(Found("943 476 5919"), ElementsAre(std::make_pair("PHONE_NUMBER", "943 476 5919")));
  // The IPv6 address with an embedded IPv4 one is longer than the IPv4 part.
  EXPECT_THAT(Found("::ffff:10.1.2.3"),
              ElementsAre(std::make_pair("IP_ADDRESS", "::ffff:10.1.2.3")));

  auto custom = [](std::string name, std::string pattern, double score) {
    return Spec(name, "CUSTOM_" + absl::AsciiStrToUpper(name), pattern, score);
  };
  // Higher score wins whatever the length.
  auto high = WithCustom({custom("high", "-[0-9]{4} ab", 0.9)});
  EXPECT_THAT(Found("123-45-6789 ab", {}, *high),
              ElementsAre(std::make_pair("CUSTOM_HIGH", "-6789 ab")));
  // Equal scores: the longer wins.
  auto shorter = WithCustom({custom("shorter", "-[0-9]{4} ab", 0.85)});
  EXPECT_THAT(Found("123-45-6789 ab", {}, *shorter),
              ElementsAre(std::make_pair("US_SSN", "123-45-6789")));
  auto longer = WithCustom({custom("longer", "[0-9]{3}-[0-9]{2}-[0-9]{4} ab", 0.85)});
  EXPECT_THAT(Found("123-45-6789 ab", {}, *longer),
              ElementsAre(std::make_pair("CUSTOM_LONGER", "123-45-6789 ab")));
  // Equal scores and lengths: the earlier wins; the later one is dropped, not cut.
  auto tie = WithCustom({custom("left", "AB-CD", 0.7), custom("right", "CD-EF", 0.7)});
  EXPECT_THAT(Found("AB-CD-EF", {}, *tie), ElementsAre(std::make_pair("CUSTOM_LEFT", "AB-CD")));
  // A lower-scored overlap below the threshold does not hide anything.
  auto low = WithCustom({custom("low", "[0-9]{3}-[0-9]{2}-[0-9]{4} and", 0.3)});
  EXPECT_THAT(Found("123-45-6789 and", {}, *low),
              ElementsAre(std::make_pair("US_SSN", "123-45-6789")));
}

TEST(DetectorTest, CustomRecognizers) {
  auto detector = WithCustom({
      With(Spec("employee_id", "EMPLOYEE_ID", "EMP-[0-9]{6}", 0.6),
           [](RecognizerSpec& s) { s.context_words = {"employee"}; }),
      Spec("ticket", "TICKET", "ticket #([0-9]+)", 0.7),
      With(Spec("loyalty", "LOYALTY_CARD", "[0-9]{11}", 0.8),
           [](RecognizerSpec& s) { s.validator = "luhn"; }),
      With(Spec("badge", "BADGE", "[A-Z]{3}[0-9]{3}", 0.8),
           [](RecognizerSpec& s) {
             s.context_words = {"badge"};
             s.context_required = true;
           }),
      Spec("codename", "CODENAME", "(?i)bluebird", 0.9),
  });
  ASSERT_NE(detector, nullptr);
  EXPECT_THAT(detector->EntityTypes(), testing::Contains("EMPLOYEE_ID"));
  EXPECT_TRUE(detector->KnowsEntityType("TICKET"));
  EXPECT_TRUE(detector->KnowsEntityType("US_SSN"));
  EXPECT_FALSE(detector->KnowsEntityType("NOPE"));
  const std::vector<std::string> types = detector->EntityTypes();
  EXPECT_TRUE(std::is_sorted(types.begin(), types.end()));

  const std::string text =
      "EMP-123456 and ticket #4471 (79927398713 79927398710), badge XYZ123. This sentence is "
      "long enough to push ABC999 out; Bluebird.";
  std::vector<Finding> findings = detector->Scan(text);
  EXPECT_THAT(Found(text, {}, *detector), ElementsAre(std::make_pair("EMPLOYEE_ID", "EMP-123456"),
                                                      std::make_pair("TICKET", "4471"),  // Group 1.
                                                      std::make_pair("LOYALTY_CARD", "79927398713"),
                                                      std::make_pair("BADGE", "XYZ123"),
                                                      std::make_pair("CODENAME", "Bluebird")))
      << DescribeAll(text, findings);
  EXPECT_EQ(findings[0].recognizer, "employee_id");
  EXPECT_DOUBLE_EQ(findings[0].score, 0.6);
  const std::vector<Finding> with_context = detector->Scan("employee EMP-123456");
  ASSERT_EQ(with_context.size(), 1u);
  EXPECT_DOUBLE_EQ(with_context[0].score, 0.6 + kContextBoost);
  EXPECT_THAT(Found("xEMP-123456", {}, *detector), IsEmpty());  // Glued.
}

TEST(DetectorTest, CustomRecognizerErrorsNameTheRecognizer) {
  auto spec = [](std::string name, std::string pattern) { return Spec(name, "X", pattern, 0.5); };
  EXPECT_THAT(CreateError({spec("bad", "EMP-[")}),
              HasSubstr("recognizer 'bad': pattern: invalid RE2 pattern 'EMP-[': missing ]"));
  RecognizerSpec unknown_validator = spec("v", "x");
  unknown_validator.validator = "mod7";
  EXPECT_THAT(CreateError({unknown_validator}),
              HasSubstr("recognizer 'v': validator: unknown validator 'mod7'"));
  RecognizerSpec bad_score = spec("s", "x");
  bad_score.score = 2;
  EXPECT_THAT(CreateError({bad_score}), HasSubstr("recognizer 's': score: 2 is outside [0, 1]"));
  RecognizerSpec bad_type = spec("t", "x");
  bad_type.entity_type = "lower";
  EXPECT_THAT(CreateError({bad_type}), HasSubstr("recognizer 't': entity_type: 'lower'"));
  EXPECT_THAT(CreateError({spec("iban", "x")}),
              HasSubstr("recognizer 'iban': name: duplicate name"));
  EXPECT_THAT(CreateError({spec("twice", "x"), spec("twice", "y")}),
              HasSubstr("recognizer 'twice': name: duplicate name"));
  EXPECT_THAT(CreateError({spec("huge", "\\pL{1000}\\pN{1000}")}, Budget(8 << 20)),
              HasSubstr("recognizer 'huge': pattern: over its share of the memory budget"));
  EXPECT_THAT(CreateError({}, Budget(0)), HasSubstr("max_regex_memory_bytes"));
}

TEST(DetectorTest, TheCustomPrefilterTakesNoShareOfTheRecognizersBudget) {
  // Fifty small custom recognizers in a 1.6 MB budget: each pattern keeps its share (the
  // prefilter's copies come on top), so the built-ins still fit; were the copies given shares
  // of their own (as fifty more recognizers would take), IBAN_CODE's pattern would not.
  std::vector<RecognizerSpec> custom;
  for (int i = 0; i < 100; ++i) {
    custom.push_back(Spec(absl::StrCat("code_", i), absl::StrCat("CODE_", i),
                          absl::StrCat("\\bC", i, "-[0-9]{4}\\b"), 0.7));
  }
  EXPECT_FALSE(Detector::Create(custom, Budget(1600 << 10)).ok());
  custom.resize(50);
  absl::StatusOr<std::unique_ptr<Detector>> detector = Detector::Create(custom, Budget(1600 << 10));
  ASSERT_TRUE(detector.ok()) << detector.status();
  const std::vector<Finding> found = (*detector)->Scan("ticket C17-2024 and c17-9999 and C5-1");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].entity_type, "CODE_17");
}

TEST(DetectorTest, EntityTypesAreTheBuiltinOnes) {
  std::set<std::string> builtin;
  for (const RecognizerSpec& spec : BuiltinRecognizers()) builtin.insert(spec.entity_type);
  for (const RecognizerSpec& spec : NamedSecretRecognizers()) builtin.insert(spec.entity_type);
  EXPECT_THAT(Default().EntityTypes(), ElementsAreArray(builtin));
}

TEST(DetectorTest, FindsWrittenInternationalAndNationalPhoneNumbers) {
  using Found_ = std::vector<std::pair<std::string, std::string>>;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"Office: +44 (0)20 7946 0958.", "+44 (0)20 7946 0958"},
      {"+33.6.12.34.56.78", "+33.6.12.34.56.78"},
      {"Tel. 020 7946 0958", "020 7946 0958"},
      {"Handy 0171 2345678", "0171 2345678"},
      {"appelez 06 12 34 56 78 demain", "06 12 34 56 78"},
      {"phone: 030 1234567", "030 1234567"},
      {"Téléphone : 06.12.34.56.78", "06.12.34.56.78"},
      {"0171 2345678 (Handy)", "0171 2345678"},
  };
  for (const auto& [text, phone] : cases) {
    EXPECT_EQ(Found(text), (Found_{{"PHONE_NUMBER", phone}})) << text;
  }
  // Without a phone word a national number is an order or account number; dates, versions,
  // amounts and short runs are none even with one.
  for (const char* text :
       {"020 7946 0958", "Order 0171 2345678 shipped", "Ref 06 12 34 56 78", "Konto 030 1234567",
        "call on 01-15-2024", "phone 01.02.2024", "tel: v0.12.3.4", "call 0,99 EUR 0171",
        "phone 02134-1234", "call 0 800 12", "Handy 0171 234", "tel 1.2.3.4.5.6"}) {
    EXPECT_THAT(Default().Scan(text, MinScore(0.0)), IsEmpty()) << text;
  }
}

TEST(DetectorTest, FindsTokensWhereTheyArePasted) {
  const std::string jwt =
      "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJqYW5lQGV4YW1wbGUuY29tIiwiaWF0IjoxNzMzNjAw"
      "MDAwfQ.Wj3xV6KElyVmDV1RqZNnK9Hu";
  const std::string gitlab = "glpat-WoZtWN4oonMibg2mJNZj";
  const std::string npm = "npm_gkQAdnxbXgxQJdZnteHk1CAbSdfBEmhBej2U";
  const std::string hf = "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";
  const std::string text = absl::StrCat(
      "curl -H 'Authorization: Bearer ", jwt, "' https://api.example.com/v1/me\n",
      "STRIPE_SECRET_KEY=sk_live_evoQ6ARN93sQI9TxdsAXTzVi\n",
      "STRIPE_PUBLISHABLE_KEY=pk_live_kKUHIUPv97OqYzBexVtLB5VH\n", "git clone https://", gitlab,
      "@gitlab.example.com/team/app.git\n", "HF_TOKEN=", hf,
      " npm_config_cache=/tmp //registry.npmjs.org/:_authToken=", npm, "\n",
      "docs: glpat-xxxxxxxxxxxxxxxxxxxx; stripped: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.");
  EXPECT_THAT(
      Found(text),
      ElementsAre(std::make_pair("JWT", jwt),
                  std::make_pair("STRIPE_API_KEY", "sk_live_evoQ6ARN93sQI9TxdsAXTzVi"),
                  std::make_pair("URL_CREDENTIALS", gitlab + "@gitlab.example.com"),
                  std::make_pair("HUGGINGFACE_TOKEN", hf), std::make_pair("NPM_TOKEN", npm)))
      << DescribeAll(text, Default().Scan(text));
}

TEST(DetectorTest, FindsSecretsByTheNameOfTheirSetting) {
  const std::vector<std::pair<std::string, std::string>> named = {
      {"DB_PASSWORD=Sup3r!Secret", "Sup3r!Secret"},
      {"    POSTGRES_PASSWORD: pg-Sup3rSecret!", "pg-Sup3rSecret!"},
      {"spring.datasource.password=7vQ!mR2#pLx9", "7vQ!mR2#pLx9"},
      {"{\"user\": \"app\", \"password\": \"hunter2!x\"}", "hunter2!x"},
      {"client_secret = 'Zx8_aaQ-19'", "Zx8_aaQ-19"},
      {"curl -H \"X-API-Key: 3f9a0c2e7b1d4a6f\" https://api.example.com", "3f9a0c2e7b1d4a6f"},
      {"const config = { apiKey: \"q8ZrT2vLm\" };", "q8ZrT2vLm"},
      {"$db = ['password' => 'l3tme!n'];", "l3tme!n"},
      {"NEXTAUTH_SECRET=Kq9!xv0Pz\nNEXTAUTH_URL=https://app.example.com", "Kq9!xv0Pz"},
      // An AWS session token: ~1,000 bytes.
      {"aws_session_token = IQoJb3JpZ2luX2VjE" + RandomOf(kBase64Url, 900, 126) + "==\nregion",
       "IQoJb3JpZ2luX2VjE" + RandomOf(kBase64Url, 900, 126) + "=="},
      {"mot de passe (pwd=Grüße2024!)", "Grüße2024!"},
      // A subscript's assignment; a call's two arguments.
      {"os.environ[\"DB_PASSWORD\"] = \"hunter2!x\"", "hunter2!x"},
      {"$config['smtp_password'] = 'S3cr3t!';", "S3cr3t!"},
      {"ENV[\"API_TOKEN\"] = token123x", "token123x"},
      {"os.environ.setdefault(\"DB_PASSWORD\", \"hunter2!x\")", "hunter2!x"},
      {"headers.put('X-Api-Key', 'a8f5f167f44f4964e6c998dee827110c');",
       "a8f5f167f44f4964e6c998dee827110c"},
      {"req.Header.Set(\"Authorization\", \"Bearer 9f86d081884c7d659a2feaa0c55ad015\")",
       "9f86d081884c7d659a2feaa0c55ad015"},
      {"xhr.setRequestHeader('Authorization', 'Basic dXNlcjpwQHNzdzByZA==');",
       "dXNlcjpwQHNzdzByZA=="},
      {"client.DefaultRequestHeaders.Add(\"authorization\", \"Token 9f86d081884c7d659a2feaa0\");",
       "9f86d081884c7d659a2feaa0"},
      // Other string literals; an Authorization header's value in a list.
      {"const apiToken = `a43f06b3c8be6c832196a6eb533c16df`;", "a43f06b3c8be6c832196a6eb533c16df"},
      {"SECRET_KEY = b\"Xk9#mP2$vL7qzz\"", "Xk9#mP2$vL7qzz"},
      {"password = u'tR4!nZ8@wQ1eyy'", "tR4!nZ8@wQ1eyy"},
      {"req.Header = http.Header{\"Authorization\": {\"Bearer zN8vvCB5D2SrQ8AgRgBAinLna6FQ3MWq\"}}",
       "zN8vvCB5D2SrQ8AgRgBAinLna6FQ3MWq"},
      {"\"Authorization\": [\"Bearer zN8vvCB5D2SrQ8AgRgBAinLna6FQ3MWq\"]",
       "zN8vvCB5D2SrQ8AgRgBAinLna6FQ3MWq"},
  };
  for (const auto& [text, value] : named) {
    EXPECT_THAT(Found(text), ElementsAre(std::make_pair("SECRET", value))) << text;
  }
  // Names in code, types, variables, templates, placeholders, numbers, other settings.
  for (const char* text :
       {"password=password", "token: self.token", "api_key = settings.API_KEY", "password: string;",
        "\"password\": \"********\"", "PASSWORD=${DB_PASSWORD}", "password: $DB_PASSWORD",
        "\"apiKey\": \"your-api-key-here\"", "max_tokens: 128000", "token: 123456789",
        "\"password_hash\": \"$2b$12$R9h/cIPz0gi.URNNX3kh2O\"",
        "The password: must be eight characters", "api_key=REDACTED", "secret: {{ .Values.x }}",
        "passwordless: enabled", "token=sk_live_...", "apiKey: \"<YOUR_KEY>\"",
        // Calls: a list of names, a variable, an empty or stand-in value, a header whose
        // credentials are added by code, one argument, a comparison.
        "SENSITIVE = (\"password\", \"api_key\", \"token\")", "[\"token\", \"remember_me\"]",
        "fields(\"password\", \"username\")", "set(\"password\", password)",
        "getenv(\"DB_PASSWORD\", \"\")", "getenv(\"DB_PASSWORD\", \"changeme\")",
        "Header.Set(\"Authorization\", \"Bearer \" + token)",
        "headers(\"Authorization\", f\"Bearer {token}\")", "headers.get(\"Authorization\")",
        "Set(\"Authorization\", \"Bearer YOUR_TOKEN\")", "if env[\"password\"] == \"x\":",
        // Paths in code, a message catalogue's labels, names for a value, YAML tags, values
        // that say they are fake.
        "let password = env::var(\"DB_PASSWORD\")?;", "auto token = std::getenv(\"API_TOKEN\");",
        "'password' => Hash::make($data['password']),", "password => $self->{password},",
        "password = ActiveSupport::SecureRandom.hex(8)", "{\"password\": \"Passwort\"}",
        "SESSION_TOKEN = \"session_token\"", "db_password: !vault |", "Password: !Ref DbPassword",
        "api_key = \"fake-api-key-123\""}) {
    EXPECT_THAT(Found(text, MinScore(0.0)), IsEmpty()) << text;
  }
  // Go's, Pascal's and make's ":="; more names; XML elements and attribute pairs; long options;
  // curl's user.
  const std::vector<std::pair<std::string, std::string>> in_code = {
      {"password := \"S3cr3t!x\"", "S3cr3t!x"},
      {"DB_PASSWORD := S3cret#99", "S3cret#99"},
      {"\tapiToken:=\"tok_8fj3kd9s\"", "tok_8fj3kd9s"},
      {"JWT_SIGNING_KEY=8f3c2a1e9d7b6054", "8f3c2a1e9d7b6054"},
      {"\"encryptionKey\": \"correcthorsebattery\"", "correcthorsebattery"},
      {"DB_PASS=hunter2!x", "hunter2!x"},
      {"mail.pass: \"S3cr3t!x\"", "S3cr3t!x"},
      {"const smtpPass = 'pa55-w0rd';", "pa55-w0rd"},
      {"pass=S3cr3t!x", "S3cr3t!x"},
      {"<password>S3cr3t!x</password>", "S3cr3t!x"},
      {"  <spring.datasource.password>correcthorse</spring.datasource.password>", "correcthorse"},
      {"<ns:apiKey>k3y-9f8e7d6c</ns:apiKey>", "k3y-9f8e7d6c"},
      {"<smtpPass>hunter2!x</smtpPass>", "hunter2!x"},
      {"<add key=\"SmtpPassword\" value=\"S3cr3t!x\" />", "S3cr3t!x"},
      {"<property name=\"password\" value='correcthorse'/>", "correcthorse"},
      {"<param NAME=\"db.pass\"  VALUE=\"hunter2!x\"/>", "hunter2!x"},
      {"mysql --password S3cr3t!x -h db", "S3cr3t!x"},
      {"tool --api-key 'k3y-9f8e7d6c'", "k3y-9f8e7d6c"},
      {"--token \"hvs1x9abcdefgh\"", "hvs1x9abcdefgh"},
      {"cli \\\n  --db-pass S3cret#1", "S3cret#1"},
      {"curl -u alice:S3cr3t!x https://api.example.com", "S3cr3t!x"},
      {"curl --user 'deploy:Xk9#mP2$vL' https://x", "Xk9#mP2$vL"},
      {"curl --user=bob:pa55word! https://x", "pa55word!"},
      {"curl -u token:abc123xyz https://x", "abc123xyz"},
  };
  for (const auto& [text, value] : in_code) {
    EXPECT_THAT(Found(text), ElementsAre(std::make_pair("SECRET", value)))
        << DescribeAll(text, Default().Scan(text));
  }
  for (const char* text : {"password := os.Getenv(\"DB_PASSWORD\")",
                           "secret := cfg.Secret",
                           "pwd := \"changeme\"",
                           "if a != b && x := 5",
                           "\"pass\": \"passed\"",
                           "pass: true",
                           "pass=12",
                           "bypass=S3cr3t!1",
                           "compass: N45W#1",
                           "BYPASS_TOKEN_CHECK=1",
                           "dbpass=S3cr3t!1",
                           "<password>${db.password}</password>",
                           "<password></password>",
                           "<password>changeme</password>",
                           "<passwordPolicy>strict-12</passwordPolicy>",
                           "<password>ENC(G6N718UuyPE5bHyWKyuLQSm02auQPUtm)</password>",
                           "password=ENC(G6N718UuyPE5bHyWKyuLQSm02auQPUtm)",
                           "<pass>passed</pass>",
                           "<property name=\"password\" value=\"${db.password}\"/>",
                           "<add key=\"PasswordMinLength\" value=\"12\"/>",
                           "<add key=\"Password\" value=\"changeme\"/>",
                           "--password $DB_PASSWORD",
                           "--password \"$PW\"",
                           "--token ${TOKEN}",
                           "--password-file /run/secrets/db",
                           "--password --verbose",
                           "mysql --no-password",
                           "x--password S3cr3t!x",
                           "curl -u admin:admin",
                           "curl -u $USER:$PASS",
                           "curl -u \"$API_KEY:\"",
                           "curl -u user: https://x",
                           "docker run -u 1000:1000 img",
                           "ssh -u alice:bob"}) {
    EXPECT_THAT(Found(text, MinScore(0.0)), IsEmpty())
        << DescribeAll(text, Default().Scan(text, MinScore(0.0)));
  }
  // A quoted value holds the other quotes and escaped characters whole; JSON in a string and a
  // JAAS configuration in Java escape their quotes; an Authorization header in a template
  // literal.
  const std::vector<std::pair<std::string, std::string>> quoted = {
      {"{\"Password\": \"Vq9WQXlE\\\"AEqhPD!2\"}", "Vq9WQXlE\\\"AEqhPD!2"},
      {"SMTP_PASSWORD=\"GwYO'DDe2QdPq#7\"", "GwYO'DDe2QdPq#7"},
      {"define('AUTH_KEY', 'x`Kq3!vZ\"9p');", "x`Kq3!vZ\"9p"},
      {"\"body\": \"{\\\"username\\\":\\\"svc\\\",\\\"password\\\":\\\"G9o7IID!1ks89g\\\"}\"",
       "G9o7IID!1ks89g"},
      {"props.put(\"sasl.jaas.config\", \"PlainLoginModule required username=\\\"svc\\\" "
       "password=\\\"vag6Np6+4HjcH8\\\";\");",
       "vag6Np6+4HjcH8"},
      {"headers: { Authorization: `Bearer fKqBESKeG0YJNxfLapmKepE6ST2H9VOHOhcwfz0d6Lvo` },",
       "fKqBESKeG0YJNxfLapmKepE6ST2H9VOHOhcwfz0d6Lvo"},
  };
  for (const auto& [text, value] : quoted) {
    EXPECT_THAT(Found(text), ElementsAre(std::make_pair("SECRET", value)))
        << DescribeAll(text, Default().Scan(text));
  }
  // Package manifests' versions, code's dotted paths, paths, password hashes, labels in other
  // scripts, formats' placeholders in a URL.
  for (const char* text :
       {"\"jsonwebtoken\": \"^9.0.2\",", "\"csrf-token\": \"~1.2.0\"",
        "\"secret-stream\": \">=2.1\"", "password = hashlib.sha256(salt + raw).hexdigest()",
        "api_key = vault_client.secrets.kv.v2.read_secret_version(path=\"x\")",
        "const token = req.headers.authorization?.split(' ')[1];",
        "--from-file=password=./secrets/db_password.txt", "secret=prod/db/credentials",
        "{\"hashed_password\": \"$2b$12$QZYIk9cOIPVgUUFqLqjEkkyxEiMQFySU/nD.Osn6Ny8yM5P9pF4xo\"}",
        "{\"password\": \"パスワード\", \"token\": \"Zugangsschlüssel\", \"secret\": "
        "\"Geheimnis\"}",
        "{\"api_key\": \"API密钥\", \"token\": \"Токен\"}", "{\"password\": \"Mot_de_passe\"}",
        "String.format(\"jdbc:postgresql://%s:%s@%s:5432/%s\", user, pw, host, db)",
        "format!(\"postgres://app:{}@localhost/app\", pw)"}) {
    EXPECT_THAT(Found(text, MinScore(0.0)), IsEmpty())
        << DescribeAll(text, Default().Scan(text, MinScore(0.0)));
  }
  // Typed declarations; an unquoted value with quotes inside; curl's -u with a URL is none.
  for (const auto& [text, value] : std::vector<std::pair<std::string, std::string>>{
           {"const DB_PASSWORD: &str = \"a7QfYpI#6sJIYg\";", "a7QfYpI#6sJIYg"},
           {"const apiKey: string = 'ExKLa41QXBcztkqQK8AF';", "ExKLa41QXBcztkqQK8AF"},
           {"    val password: String = \"NXeMQSS#0LFZfZ\"", "NXeMQSS#0LFZfZ"},
           {"API_TOKEN: Final[str] = \"tok-8fj3kd9s\"", "tok-8fj3kd9s"},
           {"  password: AYq5m3J'tuvFTV9!", "AYq5m3J'tuvFTV9!"},
           {"DB_PASSWORD=S3cr3t!x\"", "S3cr3t!x"}}) {
    EXPECT_THAT(Found(text), ElementsAre(std::make_pair("SECRET", value)))
        << DescribeAll(text, Default().Scan(text));
  }
  for (const char* text :
       {"az login --service-principal -u http://ci-sp --tenant contoso",
        "password: str = os.environ[\"DB_PASSWORD\"]", "if password: str == \"x\": pass"}) {
    EXPECT_THAT(Found(text, MinScore(0.0)), IsEmpty())
        << DescribeAll(text, Default().Scan(text, MinScore(0.0)));
  }
  // A URL's password holding an unencoded '#' is whole.
  EXPECT_THAT(
      Found("$ psql \"postgresql://app:Iwpb8j#6!5cgm2f@pg-dev.internal:5432/app\""),
      ElementsAre(std::make_pair("URL_CREDENTIALS", "app:Iwpb8j#6!5cgm2f@pg-dev.internal")));
  // But a password with a digit in a dotted word, one after a version word, and a key in base64.
  for (const auto& [text, value] : std::vector<std::pair<std::string, std::string>>{
           {"password=Summer.2024", "Summer.2024"},
           {"password: P4ss.w0rd", "P4ss.w0rd"},
           {"token: v9.8a7b6c5d", "v9.8a7b6c5d"},
           {"secret_key = \"K7MDENG/bPxRfiCYzQwT\"", "K7MDENG/bPxRfiCYzQwT"}}) {
    EXPECT_THAT(Found(text), ElementsAre(std::make_pair("SECRET", value)))
        << DescribeAll(text, Default().Scan(text));
  }
  // A token of a known kind under such a name is that kind.
  const std::string npm = "npm_gkQAdnxbXgxQJdZnteHk1CAbSdfBEmhBej2U";
  EXPECT_THAT(Found("NPM_TOKEN=" + npm), ElementsAre(std::make_pair("NPM_TOKEN", npm)));
}

TEST(DetectorTest, FindsTheAccountKeyOfAnAzureStorageConnectionString) {
  const std::string key =
      RandomOf("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/", 85, 60);
  for (const std::string& text :
       {absl::StrCat("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=", key,
                     "7==;EndpointSuffix=core.windows.net"),
        absl::StrCat("conn = \"accountkey=", key, "7==\""),
        absl::StrCat("AccountKey=", key, "7==")}) {
    EXPECT_THAT(Found(text), ElementsAre(std::make_pair("AZURE_STORAGE_KEY", key + "7==")))
        << DescribeAll(text, Default().Scan(text));
  }
  // No digit: not a key the prefilter would find, so not one at all.
  EXPECT_THAT(Found(absl::StrCat("AccountKey=", key, "x==")), IsEmpty());
  // A key one character short.
  EXPECT_THAT(Found(absl::StrCat("AccountKey=", key.substr(1), "7==")), IsEmpty());
}

TEST(DetectorTest, FindsTheKeysOfAzureConnectionStringsAndSharedAccessSignatures) {
  const std::string base64 = absl::StrCat(kBase62, "+/");
  const std::string key = RandomOf(base64, 42, 120) + "7=";
  for (const std::string& text :
       {absl::StrCat("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName="
                     "RootManageSharedAccessKey;SharedAccessKey=",
                     key),
        absl::StrCat("HostName=hub.azure-devices.net;DeviceId=d1;SharedAccessKey=", key, ";x=1"),
        absl::StrCat("\"SharedAccessKey=", key, "\"")}) {
    EXPECT_THAT(Found(text), ElementsAre(std::make_pair("AZURE_SHARED_ACCESS_KEY", key)))
        << DescribeAll(text, Default().Scan(text));
  }
  // A key of another length is still a secret by its setting's name.
  EXPECT_THAT(Found("SharedAccessKey=" + key.substr(1)),
              ElementsAre(std::make_pair("SECRET", key.substr(1))));
  EXPECT_THAT(Found("SharedAccessKey=" + std::string(43, 'x') + "="), IsEmpty());

  const std::string sig = RandomOf(kBase62, 40, 121) + "%2Bq%2f%3D";
  for (const std::string& text :
       {absl::StrCat("https://acct.blob.core.windows.net/c/report.pdf?sp=r&st=2024-05-01T10:00:00Z&"
                     "se=2024-05-02T18:00:00Z&spr=https&sv=2022-11-02&sr=b&sig=",
                     sig),
        absl::StrCat("SAS: sv=2022-11-02&ss=bfqt&srt=sco&sp=rwdlacupiytfx&sig=", sig, " (expires)"),
        absl::StrCat("https://acct.queue.core.windows.net/q?sig=", sig, "&se=2024-05-02")}) {
    EXPECT_THAT(Found(text), ElementsAre(std::make_pair("AZURE_SAS_TOKEN", sig)))
        << DescribeAll(text, Default().Scan(text));
  }
  // Another length, another escape, no digit (the prefilter's), not a query's parameter.
  EXPECT_THAT(Found("?sig=" + RandomOf(kBase62, 41, 122) + "%3D"), IsEmpty());
  EXPECT_THAT(Found("?sig=" + RandomOf(kBase62, 42, 123) + "%3F"), IsEmpty());
  EXPECT_THAT(Found("?sig=" + RandomOf(kLetters, 43, 124) + "="), IsEmpty());
  EXPECT_THAT(Found("?xsig=" + sig), IsEmpty());
}

TEST(DetectorTest, FindsTheCredentialsOfAnAuthorizationHeader) {
  const std::string bearer = RandomOf(kBase62, 40, 125) + "7";
  // base64("deploy:Xk8#pq2Lz!w")
  const std::string basic = "ZGVwbG95OlhrOCNwcTJMeiF3";
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"curl -H 'Authorization: Bearer " + bearer + "' https://api.example.com/v1", bearer},
      {"Authorization: Basic " + basic + "\r\nHost: api.example.com", basic},
      {"headers = {\"Authorization\": \"Bearer " + bearer + "\"}", bearer},
      {"proxy-authorization: basic " + basic, basic},
      {"HTTP_AUTHORIZATION=Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
       "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"},
      {"authorization:\tBearer\t" + bearer + ".", bearer},
      {"$headers = ['Authorization' => 'Bearer " + bearer + "'];", bearer},
      {"Authorization: ApiKey " + basic, basic},
  };
  for (const auto& [text, value] : headers) {
    EXPECT_THAT(Found(text), ElementsAre(std::make_pair("SECRET", value)))
        << DescribeAll(text, Default().Scan(text));
  }
  // Variables, placeholders, a name, Basic without a password or with a stand-in for one,
  // schemes not claimed, other headers, prose.
  for (const char* text :
       {"Authorization: Bearer $TOKEN", "Authorization: Bearer ${API_TOKEN}",
        "Authorization: Bearer <token>", "Authorization: Bearer YOUR_API_TOKEN",
        "Authorization: Bearer ACCESS_TOKEN", "Authorization: Basic dXNlcm5hbWU=",
        "Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Bearer",
        "Authorization: Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnagMDAuBgkqhkiC9xIBAgIGCSqGSIb3EgEC",
        "WWW-Authenticate: Bearer realm=\"api\"", "authorization: required for 12345678"}) {
    EXPECT_THAT(Found(text, MinScore(0.0)), IsEmpty()) << text;
  }
  // Docker's config.json and other settings of base64 "user:password".
  for (const char* text :
       {"{\"auths\": {\"registry.example.com\": {\"auth\": \"ZGVwbG95OlhrOCNwcTJMeiF3\"}}}",
        "basic_auth=ZGVwbG95OlhrOCNwcTJMeiF3"}) {
    EXPECT_THAT(Found(text), ElementsAre(std::make_pair("SECRET", "ZGVwbG95OlhrOCNwcTJMeiF3")))
        << text;
  }
  for (const char* text : {"\"auth\": \"dXNlcm5hbWU=\"", "auth: required", "oauth: oauth2client",
                           "\"auth\": \"dXNlcjpwYXNzd29yZA==\""}) {
    EXPECT_THAT(Found(text, MinScore(0.0)), IsEmpty()) << text;
  }
  // A token of a known kind is that kind.
  EXPECT_THAT(Found(absl::StrCat("Authorization: Bearer ", kJwt)),
              ElementsAre(std::make_pair("JWT", std::string(kJwt))));
}

TEST(DetectorTest, FindsTheCredentialsOfAUrl) {
  using Found_ = std::vector<std::pair<std::string, std::string>>;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"postgres://admin:S3cr3tP@ss@db.internal:5432/app", "admin:S3cr3tP@ss@db.internal"},
      {"see https://user:pa55@host/ for it", "user:pa55@host"},
      {"https://user:hunter2@example.com/x", "user:hunter2@example.com"},
      {"mongodb+srv://u:p@cluster0.mongodb.net/?retryWrites=true", "u:p@cluster0.mongodb.net"},
      {"REDIS_URL=redis://:s3cr3t-Pw@host:6379", ":s3cr3t-Pw@host"},
      {"amqp://guest:gu3st@[2001:db8::1]:5672.", "guest:gu3st@[2001:db8::1]"},
      {"\"mysql://root:hunter2@db_1\",", "root:hunter2@db_1"},
      // A token as the user name, not an e-mail address.
      {"git clone https://ghp_0123456789abcdefghijABCDEFGHIJ012345@github.com/org/repo.git",
       "ghp_0123456789abcdefghijABCDEFGHIJ012345@github.com"},
      {"https://npm_gkQAdnxbXgxQJdZnteHk1CAbSdfBEmhBej2U@registry.example.com/",
       "npm_gkQAdnxbXgxQJdZnteHk1CAbSdfBEmhBej2U@registry.example.com"},
  };
  for (const auto& [text, credentials] : cases) {
    EXPECT_EQ(Found(text), (Found_{{"URL_CREDENTIALS", credentials}})) << text;
  }
  for (const char* text :
       {"http://host:8080/", "https://example.com:443/path?q=1#top", "git@github.com:org/repo.git",
        "ssh://git@github.com:22/org/repo", "https://user@host/", "https://user:@host/",
        "meet at 12:30@cafe", "10:30@ home", "http://host:8080/path/a:b@c",
        "ftp://files.example.org/pub/x:y", "https://glpat-xxxxxxxxxxxxxxxxxxxx@gitlab.com/",
        "https://gitlab-ci-token@gitlab.com/",
        // A password that stands for one: a variable, a template, a placeholder.
        "git clone https://gitlab-ci-token:${CI_JOB_TOKEN}@gitlab.com/group/app.git",
        "postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@postgres:5432/app",
        "https://__token__:$PYPI_TOKEN@upload.pypi.org/legacy/",
        "redis://:$(REDIS_PASSWORD)@redis-master:6379", "https://<user>:<token>@github.com/o/r",
        "mysql://root:{{db_password}}@db/app", "amqp://guest:%(password)s@mq//",
        "https://USERNAME:PASSWORD@example.com/", "postgres://user:password@localhost/db",
        "https://admin:********@grafana.internal/", "https://me:{token}@host/"}) {
    ScanOptions options = OnlyTypes({"URL_CREDENTIALS"});
    options.min_score = 0.0;
    EXPECT_THAT(Default().Scan(text, options), IsEmpty()) << text;
  }
  // A URL's user without a password is no e-mail address either.
  for (const char* text : {"ssh://git@github.com/org/repo.git", "https://jane@bitbucket.org/o/r",
                           "https://ines.mueller@dev.azure.com/org/_git/repo",
                           "https://jane-doe@bitbucket.org/o/r", "ssh://ci+bot@host.example.com/x",

                           "git clone git@github.com:acme/infra.git"}) {
    EXPECT_THAT(Found(text), IsEmpty()) << text;
  }
  // An address after mailto: is an e-mail address, not a credential.
  EXPECT_EQ(Found("mailto:jane.doe@example.com"),
            (Found_{{"EMAIL_ADDRESS", "jane.doe@example.com"}}));
}

TEST(DetectorTest, EmptyAndTinyTexts) {
  EXPECT_THAT(Default().Scan(""), IsEmpty());
  EXPECT_THAT(Default().Scan(" "), IsEmpty());
  EXPECT_THAT(Default().Scan("1"), IsEmpty());
  EXPECT_THAT(Default().Scan("-----BEGIN "), IsEmpty());
}

// ---------------------------------------------------------------------------------------
// Random texts: invariants, the prefilter, threads.

// Random text mixing words, digits, punctuation, multi-byte characters and PII values.
std::string RandomMixedText(std::mt19937& random, size_t pieces) {
  static const std::vector<std::string> kPieces = [] {
    std::vector<std::string> p = {"the",      "Straße",      "naïve",      "日本語",
                                  "テキスト", "🙂",        "—",          "€",
                                  "ü",        "ß",           " ",          " ",
                                  " ",        "\n",          ".",          ",",
                                  ":",        "-",           "(",          ")",
                                  "@",        "+",           "#",          "/",
                                  "_",        "0",           "1",          "7",
                                  "42",       "2024",        "123",        "4567",
                                  "ssn",      "phone",       "NHS",        "itin",
                                  "DEA",      "version ",    "v",          "sk-",
                                  "AKIA",     "-----BEGIN ", "-----END ",  "PRIVATE KEY-----",
                                  "RSA ",     "::",          "ffff",       "x@y",
                                  ".com",     "A",           "Z",          "9",
                                  "\u00A0",   "\u202F",      "\u2013",     "\u2011",
                                  "\uFF11",   "\uFF10",      "\uFF0D",     "\uFF20",
                                  "\u3000",   "\uFF21",      "\uFF4B",     "\uFF3F",
                                  "\uFF1A",   "\uFF0F",      "ｐｈｏｎｅ", "ＳＳＮ",
                                  "abcd ",    "west ",       "<",          "<<<<<<<<",
                                  "\r\n",     "\t",          "    ",       "\\n"};
    for (const Sample& s : Positives()) p.push_back(s.value);
    for (const Sample& s : TypographicPositives()) p.push_back(s.value);
    for (const std::string& n : HardNegatives()) p.push_back(n);
    return p;
  }();
  std::string text;
  for (size_t i = 0; i < pieces; ++i) text += kPieces[random() % kPieces.size()];
  return text;
}

bool IsCharBoundary(absl::string_view text, size_t i) {
  return i == text.size() || (static_cast<unsigned char>(text[i]) & 0xc0) != 0x80;
}

void ExpectInvariants(absl::string_view text, const std::vector<Finding>& findings,
                      double min_score) {
  for (size_t i = 0; i < findings.size(); ++i) {
    const Finding& f = findings[i];
    ASSERT_LT(f.begin, f.end) << text;
    ASSERT_LE(f.end, text.size()) << text;
    EXPECT_TRUE(IsCharBoundary(text, f.begin)) << Describe(text, f);
    EXPECT_TRUE(IsCharBoundary(text, f.end)) << Describe(text, f);
    EXPECT_GE(f.score, min_score);
    EXPECT_LE(f.score, 1.0);
    if (i > 0) {
      EXPECT_LE(findings[i - 1].end, f.begin) << DescribeAll(text, findings);
    }
  }
}

// The findings cover the original characters, whole, and the text around them is untouched:
// replacing each finding's bytes leaves valid UTF-8 with every other character in place.
TEST(DetectorTest, TypographicValuesMapBackToTheirOriginalBytes) {
  const std::string text =
      "Karte\u00A0: 4111\u202F1111\u202F1111\u202F1111 — SSN\u00A0123\u201145\u20116789, "
      "電話\uFF1A\uFF10\uFF19\uFF10\uFF0D\uFF11\uFF12\uFF13\uFF14\uFF0D\uFF15\uFF16\uFF17\uFF18、"
      "mail jane\uFF20example.com, prix 1\u202F234,56\u00A0€ (2019\u20132023). メール\uFF1A" +
      FullWidth("john.smith@example.com") + "\u3000口座\u3000" +
      IdeographicSpaces(FullWidth("DE89 3704 0044 0532 0130 00")) + "、キー\uFF1A" +
      FullWidth("AKIAIOSFODNN7EXAMPLE") + "\u3000（" + FullWidth("v2.14.0") + "）";
  const std::vector<Finding> findings = Default().Scan(text);
  ExpectInvariants(text, findings, 0.5);
  std::string redacted;
  size_t at = 0;
  for (const Finding& f : findings) {
    absl::StrAppend(&redacted, text.substr(at, f.begin - at), "<", f.entity_type, ">");
    at = f.end;
  }
  redacted += text.substr(at);
  EXPECT_EQ(redacted,
            "Karte\u00A0: <CREDIT_CARD> — SSN\u00A0<US_SSN>, 電話\uFF1A<PHONE_NUMBER>、"
            "mail <EMAIL_ADDRESS>, prix 1\u202F234,56\u00A0€ (2019\u20132023). メール\uFF1A"
            "<EMAIL_ADDRESS>\u3000口座\u3000<IBAN_CODE>、キー\uFF1A<AWS_ACCESS_KEY>\u3000（" +
                FullWidth("v2.14.0") + "）")
      << DescribeAll(text, findings);
}

// Context words may hold bytes beyond ASCII, first or later: "móvil", "電話", "ñandú".
TEST(DetectorTest, ContextWordsBeyondAscii) {
  using Found_ = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(Found("móvil 0171 2345678"), (Found_{{"PHONE_NUMBER", "0171 2345678"}}));
  EXPECT_EQ(Found("Tél. 06 12 34 56 78"), (Found_{{"PHONE_NUMBER", "06 12 34 56 78"}}));
  EXPECT_EQ(Found("電話 03-1234-5678"), (Found_{{"PHONE_NUMBER", "03-1234-5678"}}));
  auto detector = WithCustom({With(Spec("record", "PATIENT_RECORD", "[0-9]{8}", 0.9), [](auto& s) {
    s.context_words = {"患者", "ñandú", "éé"};
    s.context_required = true;
  })});
  for (const char* text : {"患者 12345678", "ñandú: 12345678", "x éé 12345678"}) {
    EXPECT_EQ(Found(text, {}, *detector).size(), 1u) << text;
  }
  EXPECT_THAT(Found("nandu 12345678", {}, *detector), IsEmpty());
}

// Custom recognizers read the text as it is: a pattern may name the characters the built-in
// recognizers fold.
TEST(DetectorTest, CustomRecognizersReadTheTextUnfolded) {
  auto detector = WithCustom({Spec("ref", "REFERENCE", "REF\\x{2013}[0-9]{4}", 0.9),
                              Spec("emp", "EMPLOYEE_ID", "EMP-[0-9]{6}", 0.9)});
  const std::string text = "REF\u20131234 EMP\u2011123456 " + FullWidth("EMP-123456") +
                           " card 4111\u00A01111\u00A01111\u00A01111";
  EXPECT_EQ(
      Found(text, {}, *detector),
      (std::vector<std::pair<std::string, std::string>>{
          {"REFERENCE", "REF\u20131234"}, {"CREDIT_CARD", "4111\u00A01111\u00A01111\u00A01111"}}));
}

TEST(DetectorPropertyTest, OffsetsNeverSplitAUtf8Character) {
  std::mt19937 random(20260301);
  auto detector = WithCustom({Spec("any_word", "WORD", "\\pL+[0-9]", 0.6)});
  size_t total = 0;
  for (int round = 0; round < 400; ++round) {
    const std::string text = RandomMixedText(random, 5 + random() % 80);
    const std::vector<Finding> findings = Default().Scan(text);
    ExpectInvariants(text, findings, 0.5);
    ExpectInvariants(text, detector->Scan(text), 0.5);
    total += findings.size();
  }
  EXPECT_GT(total, 400u);  // The texts do hold findings.
}

TEST(DetectorPropertyTest, PrefilterFindsWhatTheFullSetFinds) {
  auto full = WithCustom({}, [] {
    DetectorOptions options;
    options.trigger_prefilter = false;
    return options;
  }());
  std::mt19937 random(7);
  for (int round = 0; round < 400; ++round) {
    const std::string text = RandomMixedText(random, 5 + random() % 80);
    const ScanOptions all = MinScore(0);
    const std::vector<Finding> a = Default().Scan(text, all);
    const std::vector<Finding> b = full->Scan(text, all);
    EXPECT_EQ(DescribeAll(text, a), DescribeAll(text, b)) << text;
  }
  // Lists whose items the prefilter puts in regions of their own, lowercase values with a
  // space after a letter, a list after full-width text.
  for (const char* text : {
           "PESEL: 17102810336, and 32021673640, and 44051401359, and 02270803624, and "
           "85112203457, and 90031512348",
           "PESEL:\n\n17102810336\n\n32021673640\n\n44051401359\n\n02270803624\n\n85112203457",
           "NI number: ab 123456 c",
           "nino ab 12 34 56 c",
           "NIE: x 1234567 l",
           "ＡＢＣＤＥＦＧ PESEL 02270803624 order 12345 and 44051401359",
           // A named setting's value holding a vertical tab, which RE2's \s is not.
           "{ apiKey: Zq8\vr2Lm9!x }",
           "mobile: +2104091268",
           "if SENDGRID_API_KEY==SG.SL6HEeNzO4rxim9QUl0ipZq.El4cCbh",
           "git clone https://oauth\v2:glpat-WoZtWN4oonMibg2mJNZj@gitlab.example.com/x",
           // Machine-readable zones whose lines the prefilter finds in regions of their own:
           // one right after another, one whose data line is indented far after a JSON break,
           // one after a blank line.
           "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\n    "
           "L898902C36UTO7408122F1204159ZE184226B<<<"
           "<<10\nI<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<"
           "MARIA<<"
           "<<<<<<<<",
           "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\\n                           "
           "D231458907UTO7408122F12041"
           "59<<<<<<<6",
           "L898902C36UTO7408122F1204159ZE184226B<<<<<10\n\nI<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\n "
           "    "
           "                      D231458907UTO7408122F1204159<<<<<<<6",
           // Values longer than a named setting's region, with a '-' before and after its end.
           "sharedaccesskey=4PLTh5mv3CMa0x3fa070jEbpYZYF0QdPz2ZChEkiSaP=a::beyJhbGciOiJSUzI1NiIsI"
           "mtpZCI6IjEifQ.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIn0.TkrYeJqAV2uMY5XAMoidFdGd79B94Lbd"
           "SHn2rZvteyb5Wn4sS_HCJnjKHJ5PpRt9BTax_ys0fZo-yVW-ANgiQL3LwBfOmw7j1e_9qh_QYcstqtXm3qA6CT"
           "Q6J9LNqSPk54vzp-Xai39DcPielKjhC9ZxTSg9Fcp1nG6dvZkb-5hdxHZsL-ujhlsswTUJ45MbrqIckLiTvc3K",
       }) {
    const ScanOptions all = MinScore(0);
    EXPECT_EQ(DescribeAll(text, Default().Scan(text, all)),
              DescribeAll(text, full->Scan(text, all)))
        << text;
  }
}

// Custom recognizers run only where they may match (the literals their patterns need are in
// the text, their required context is): the same findings as running every one of them.
TEST(DetectorPropertyTest, CustomRecognizersRunOnlyWhereTheyMayMatchAndFindTheSame) {
  const std::vector<RecognizerSpec> custom = {
      Spec("employee_id", "EMPLOYEE_ID", "\\bEMP-[0-9]{6}\\b", 0.8),
      Spec("codename", "CODENAME", "(?i)\\b(?:bluebird|nightjar)\\b", 0.7),
      With(Spec("patient_record", "PATIENT_RECORD", "\\b[0-9]{8}\\b", 0.6),
           [](RecognizerSpec& s) {
             s.context_words = {"patient", "mrn"};
             s.context_required = true;
           }),
      Spec("cafe", "CAFE", "(?i)café [a-z]+", 0.6),
      Spec("ticket", "TICKET", "[A-Z]{3}-[0-9]{3}", 0.6),
      // (?i) matches 'k' as U+212A KELVIN SIGN and 's' as U+017F LONG S too.
      Spec("kelvin", "KELVIN", "(?i)kelvin-[0-9]{6}", 0.6),
      Spec("secret", "SECRET", "(?i)secret-[0-9]{6}", 0.6)};
  auto gated = WithCustom(custom);
  auto full = WithCustom(custom, [] {
    DetectorOptions options;
    options.trigger_prefilter = false;
    return options;
  }());
  const std::vector<std::string> extra = {"EMP-123456",
                                          "emp-123456",
                                          "EMP-",
                                          "Bluebird",
                                          "NIGHTJAR",
                                          "bluebirds",
                                          "patient",
                                          "MRN",
                                          "12345678",
                                          "CAFÉ noir",
                                          "café au",
                                          "ABC-123",
                                          "abc-123",
                                          " ",
                                          " ",
                                          "\n",
                                          "\u212Aelvin-123456",
                                          "KELVIN-123456",
                                          "\u017Fecret-123456",
                                          "SECRET-123456"};
  std::mt19937 random(31);
  size_t custom_findings = 0;
  for (int round = 0; round < 400; ++round) {
    std::string text = RandomMixedText(random, 3 + random() % 30);
    for (int k = 0; k < 4; ++k) text += extra[random() % extra.size()] + " ";
    text += RandomMixedText(random, 3 + random() % 10);
    const ScanOptions all = MinScore(0);
    const std::vector<Finding> a = gated->Scan(text, all);
    EXPECT_EQ(DescribeAll(text, a), DescribeAll(text, full->Scan(text, all))) << text;
    for (const Finding& f : a) {
      for (const RecognizerSpec& spec : custom) custom_findings += f.recognizer == spec.name;
    }
    // Asked for one custom type only.
    ScanOptions one = all;
    one.entity_types = {"CODENAME"};
    EXPECT_EQ(DescribeAll(text, gated->Scan(text, one)), DescribeAll(text, full->Scan(text, one)))
        << text;
  }
  EXPECT_GT(custom_findings, 100u);  // The texts do hold custom findings.
}

TEST(DetectorPropertyTest, InvalidUtf8IsSafe) {
  std::mt19937 random(99);
  for (int round = 0; round < 400; ++round) {
    std::string text = RandomMixedText(random, 5 + random() % 40);
    for (int k = 0; k < 5 && !text.empty(); ++k) {
      text[random() % text.size()] = static_cast<char>(0x80 + random() % 0x80);
    }
    const std::vector<Finding> findings = Default().Scan(text);
    for (size_t i = 0; i < findings.size(); ++i) {
      ASSERT_LT(findings[i].begin, findings[i].end);
      ASSERT_LE(findings[i].end, text.size());
      if (i > 0) {
        EXPECT_LE(findings[i - 1].end, findings[i].begin);
      }
    }
  }
}

TEST(DetectorPropertyTest, ScanIsThreadSafe) {
  std::mt19937 random(5);
  std::vector<std::string> texts;
  for (int i = 0; i < 50; ++i) texts.push_back(RandomMixedText(random, 60));
  std::vector<std::string> expected;
  for (const std::string& t : texts) expected.push_back(DescribeAll(t, Default().Scan(t)));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) {
          const size_t k = (i + static_cast<size_t>(t)) % texts.size();
          if (DescribeAll(texts[k], Default().Scan(texts[k])) != expected[k]) ++mismatches;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(DetectorPropertyTest, SmallMemoryBudgetFindsTheSame) {
  absl::StatusOr<std::unique_ptr<Detector>> small = Detector::Create({}, Budget(4 << 20));
  ASSERT_TRUE(small.ok()) << small.status();
  std::mt19937 random(11);
  for (int round = 0; round < 100; ++round) {
    const std::string text = RandomMixedText(random, 200);
    EXPECT_EQ(DescribeAll(text, (*small)->Scan(text)), DescribeAll(text, Default().Scan(text)));
  }
}

TEST(DetectorTest, LargeAdversarialInputsStayLinear) {
  // Long runs that every retry would otherwise rescan.
  for (const std::string& text :
       {std::string(200000, '7'), std::string(200000, 'A'), std::string(100000, '-'),
        absl::StrCat(std::string(50000, 'a'), "@", std::string(50000, 'b')),
        [] {
          std::string s;
          while (s.size() < 200000) s += "-----BEGIN ";
          return s;
        }(),
        [] {
          std::string s;
          while (s.size() < 200000) s += "4111 ";
          return s;
        }(),
        [] {
          std::string s;
          while (s.size() < 200000) s += "abcd 1234567 ";
          return s;
        }(),
        [] {
          std::string s;
          while (s.size() < 200000) s += "4111\u00A0\uFF11\u2013";
          return s;
        }()}) {
    const std::vector<Finding> findings = Default().Scan(text);
    ExpectInvariants(text, findings, 0.5);
  }
}

}  // namespace
}  // namespace policy::pii
