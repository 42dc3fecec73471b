#ifndef POLICY_SERVICES_PII_RECOGNIZER_H_
#define POLICY_SERVICES_PII_RECOGNIZER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// Recognizers: what the detector looks for. A recognizer is a pattern for one entity type,
// optionally a validator that must accept the matched value, and context words that make a
// match more certain (or, for bare numbers, are required).
namespace policy::pii {

// Context words count when they occur (ASCII case-insensitively, as a whole word: not right
// after a letter, nor right before one but for a plural 's', so "tel" is not in "telemetry"
// and "cell" is in "cells") in one of three places:
//  * in the kContextWindowBytes bytes before a match (a word that ends inside the window
//    counts even if it starts a little before it);
//  * in the kContextAfterBytes bytes after it, on its line, with no "no" or "not" between
//    ("2125551234 is my mobile", but not "123456789 is not an SSN");
//  * in its column's header, when the match is a whole field (spaces and '"' aside) of a row
//    of a table: a block of lines that each hold the first line's delimiter ('|', then tab,
//    ',', ';': the first a line holds), the first line being the header, whose field with as
//    many delimiters before it holds the word ("name,ssn\nJohn,123456789\nJane,234567890").
// A word before or after the match does not count with a number between them of at least as
// many digits as the match (then the word is about that other number); a shorter number
// ("Phone 2: ...", "employee 42: ...") does not matter. A match of a recognizer that requires
// context also counts right after one of its findings with only a list's separators between
// (spaces, line breaks, ", ", "; ", quotes, brackets and one short word such as "and"): "NI
// numbers: PX501233D, HT402985A and KC661903A".
inline constexpr size_t kContextWindowBytes = 64;
inline constexpr size_t kContextAfterBytes = 32;
// The longest context word, and the most context words a recognizer may have.
inline constexpr size_t kMaxContextWordBytes = 32;
inline constexpr size_t kMaxContextWords = 64;
// What a context word adds to a match's score (capped at 1.0), as Presidio's default
// context enhancer does.
inline constexpr double kContextBoost = 0.35;

struct RecognizerSpec {
  // Unique among all recognizers (built-in and custom): 1-64 of [A-Za-z0-9_.-], e.g.
  // "credit_card". Findings carry it as Finding::recognizer.
  std::string name;
  // The type findings report: [A-Z][A-Z0-9_]*, e.g. "CREDIT_CARD".
  std::string entity_type;
  // RE2 syntax. The finding is the whole match, or, when the pattern has capture groups, the
  // first group that takes part in the match (a match in which none does is ignored). A match must
  // not be glued to its surroundings: when its first (last) byte is a word byte [A-Za-z0-9_], the
  // byte before (after) it must not be one, and a match starting (ending) with a digit must not be
  // preceded (followed) by '.' or '-' and another digit ("1.2.3.4.5" holds no IPv4
  // address), and a value written in space-separated groups must not be preceded or
  // followed by a space and another group of [A-Z0-9] with a digit that continues its
  // grouping (then it is part of a longer grouped number: "6887 4913 3610 2041 4516" holds
  // no card starting at 4913). A group before it continues it when at least as long as its
  // first group; one after it when the value's last group is not shorter than the one before
  // it and the group has four characters or more (or the value holds a letter, as an IBAN
  // does); a group joined to its other neighbour by '/' (or ':' or '.' between digits) never
  // does. So "Card 1 4111 1111 1111 1111 12/26 123" holds the card, and "IBAN DE89 3704 0044
  // 0532 0130 00 5000 EUR" the IBAN.
  std::string pattern;
  // The score of a match the validator accepts, in [0, 1].
  double score = 0.5;
  // "" (any match counts) or one of ValidatorNames().
  std::string validator;
  // At most kMaxContextWords, lowercase, of 1 to kMaxContextWordBytes bytes. One where it
  // counts (above) adds kContextBoost to a match's score.
  std::vector<std::string> context_words;
  // When true a match with none of context_words where they count is dropped, and the context
  // does not add to the score (bare numbers: nine digits are an SSN only when the text says
  // so).
  bool context_required = false;
  // A match directly preceded by one of these (ASCII case-insensitively) is dropped, e.g.
  // "version " before a dotted quad, and no match starting inside it is looked at ("://"
  // before "ines.mueller@host": nor "mueller@host"). A prefix starting with a letter must
  // start a word.
  std::vector<std::string> excluded_prefixes;
  // A match with one of these (lowercase, at most kMaxContextWords) anywhere in the
  // kContextWindowBytes before it, ASCII case-insensitively, even inside a word and with
  // digits between, is dropped: "version" before "Upgrade to version 10.2.1.4 then 10.2.1.5"
  // and "AssemblyVersion(\"1.0.0.0\")".
  std::vector<std::string> excluded_context;
};

// The names a RecognizerSpec::validator may take, sorted.
std::vector<std::string> ValidatorNames();

// The built-in recognizers, one or more per entity type: US_SSN, US_ITIN, CREDIT_CARD,
// IBAN_CODE, EMAIL_ADDRESS, PHONE_NUMBER, IP_ADDRESS, UK_NHS, UK_NINO, ES_NIF, ES_NIE,
// IT_FISCAL_CODE, PL_PESEL, FI_PERSONAL_IDENTITY_CODE, SE_PERSONAL_IDENTITY_NUMBER, NL_BSN,
// FR_NIR, DE_TAX_ID, DE_HEALTH_INSURANCE_NUMBER, BE_NATIONAL_NUMBER, IE_PPSN, DK_CPR,
// AT_SOCIAL_INSURANCE_NUMBER, PT_TAX_ID, IDENTITY_DOCUMENT_MRZ (passports', identity cards' and
// visas' machine-readable zones), EU_VAT_NUMBER, CRYPTO, MEDICAL_LICENSE,
// POLICY_SUITE_KEY, OPENAI_API_KEY (every provider's "sk-" keys), AWS_ACCESS_KEY (access key
// ids, and secret access keys after a context word), GITHUB_TOKEN, SLACK_TOKEN, JWT,
// GOOGLE_API_KEY, STRIPE_API_KEY, GITLAB_TOKEN, HUGGINGFACE_TOKEN, NPM_TOKEN, SENDGRID_API_KEY,
// AZURE_STORAGE_KEY (after "AccountKey="), GROQ_API_KEY, XAI_API_KEY,
// GOOGLE_OAUTH_CLIENT_SECRET, GOOGLE_OAUTH_TOKEN, PYPI_TOKEN, DOCKER_HUB_TOKEN,
// WEBHOOK_SIGNING_SECRET, TELEGRAM_BOT_TOKEN, SLACK_WEBHOOK_URL, AZURE_SHARED_ACCESS_KEY (after
// "SharedAccessKey="), AZURE_SAS_TOKEN (a URL's "sig"), PERPLEXITY_API_KEY, REPLICATE_API_TOKEN,
// LANGSMITH_API_KEY, DATABRICKS_TOKEN, ATLASSIAN_API_TOKEN, VAULT_TOKEN, AZURE_CLIENT_SECRET,
// DIGITALOCEAN_TOKEN, POSTMAN_API_KEY, GRAFANA_TOKEN, DISCORD_BOT_TOKEN, DISCORD_WEBHOOK_URL,
// PRIVATE_KEY (PEM and OpenPGP blocks, and a block's start up to the end of its base64 when the END
// line is missing), URL_CREDENTIALS ("user:password@host" in "scheme://user:password@host").
// The detector's prefilter relies on two properties of their findings: each but a PEM block
// and a machine-readable zone holds whitespace only as single spaces after [A-Z0-9)] (a zone's
// data line, a run of 30 or more of [A-Z0-9<] with 13 digits, is next to its other lines), and
// has '@' or '_', a token prefix with '-' or 'A' ("sk-", "glpat-", "AKIA", "AIza"...),
// "://hooks.slack.com/", two colons, seven digits, six digits and at least 8 bytes, four
// digits and three dots, or a digit and at least 15 bytes (see MayHoldFinding in
// detector.cc); a PEM block starts with "-----BEGIN ".
std::vector<RecognizerSpec> BuiltinRecognizers();

// The ends of the names of settings that hold a secret, lowercase letters ("DB_PASSWORD",
// "spring.datasource.password", "clientSecret").
inline constexpr absl::string_view kSecretSettingNames[] = {"password", "passwd", "passphrase",
                                                            "pwd",      "secret", "token"};

// The words before "key", with '_', '-' or nothing between them, that end the names of settings
// holding a secret too, lowercase ("X-API-Key", "accessKey", "JWT_SIGNING_KEY").
inline constexpr absl::string_view kSecretKeyNames[] = {"api",     "access",     "secret", "auth",
                                                        "signing", "encryption", "master"};

// The word that ends the names of settings holding a password where it starts a word of the
// name, lowercase: after a byte that is no ASCII letter ("DB_PASS", "mail.pass", "pass") or as
// "Pass" after a lowercase letter ("smtpPass"); not "bypass" or "compass". Test reports write
// "pass": "passed", so its values must hold a digit or a symbol even when quoted.
inline constexpr absl::string_view kSecretSettingWord = "pass";

// The ends of the names of settings that hold an HTTP Authorization header, lowercase
// ("Authorization", "Proxy-Authorization", "HTTP_AUTHORIZATION"), whose value is a scheme and
// the credentials ("Bearer ...").
inline constexpr absl::string_view kCredentialHeaderNames[] = {"authorization"};

// The ends of the names of settings that hold "user:password" in base64, lowercase (Docker's
// config.json "auth", "basic_auth", "proxy_auth").
inline constexpr absl::string_view kEncodedCredentialNames[] = {"auth"};

// The built-in recognizers of SECRET, the value of a setting whose name says it holds one
// ("DB_PASSWORD=...", "password: ...", "\"apiKey\": \"...\"", "X-API-Key: ...",
// "env[\"API_KEY\"] = ..."): quoted, any value that is no stand-in for one (a variable, a
// template, a placeholder); unquoted, one that also holds a digit or a symbol (not an
// identifier: "password=password", "token: self.token"). Or the quoted name and value as a
// call's two arguments ("setenv(\"DB_PASSWORD\", \"...\")"), the value quoted and holding a
// digit or a symbol (a list of names, ("password", "api_key"), holds none). And the
// credentials of an Authorization header ("Authorization: Basic ...", "\"Authorization\":
// \"Bearer ...\"", "Set(\"Authorization\", \"Token ...\")"): Basic, base64 of "user:password" whose
// password is no stand-in (Elasticsearch's ApiKey, of "id:key", too); Bearer and Token, a token
// that is no name and no placeholder. And base64 "user:password" under a name of
// kEncodedCredentialNames (Docker's "auth"). The detector runs them only on the settings so named
// that it finds (its NamedSettingRegions), never through the trigger prefilter.
std::vector<RecognizerSpec> NamedSecretRecognizers();

// OK when `spec` is well formed: name, entity type, score, validator, context words,
// excluded prefixes, and a pattern RE2 parses. Otherwise INVALID_ARGUMENT
// "<field>: <problem>", e.g. "pattern: invalid RE2 pattern 'EMP-[': missing ]: [".
absl::Status CheckRecognizerSpec(const RecognizerSpec& spec);

// Custom recognizers from YAML:
//
//   recognizers:
//     - name: employee_id            # required
//       entity_type: EMPLOYEE_ID     # required
//       pattern: 'EMP-[0-9]{6}'      # required, RE2 syntax
//       score: 0.6                   # optional, default 0.5, in [0, 1]
//       validator: luhn              # optional, one of ValidatorNames()
//       context: [employee, staff]   # optional, lowercased
//       context_required: false      # optional, default false
//
// An empty document or `recognizers: []` declares none. INVALID_ARGUMENT naming the line
// when known, the recognizer (index and name) and the field: "line 4: recognizers[0]
// (employee_id): score: 1.5 is outside [0, 1]"; unknown and repeated keys, a bad pattern
// (with RE2's error), an unknown validator, a score outside [0, 1], a bad entity type name
// and a duplicate name are errors.
absl::StatusOr<std::vector<RecognizerSpec>> ParseRecognizersYaml(absl::string_view yaml);

}  // namespace policy::pii

#endif  // POLICY_SERVICES_PII_RECOGNIZER_H_
