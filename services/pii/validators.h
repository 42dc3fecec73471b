#ifndef POLICY_SERVICES_PII_VALIDATORS_H_
#define POLICY_SERVICES_PII_VALIDATORS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

// The checks that turn a pattern match into a finding: check digits, number ranges and
// registries. Each takes the matched text as it appears (separators included), strips the
// separators its format allows itself, and returns true only for a value of the right shape
// that passes the check. Pure functions, thread-safe.
namespace policy::pii {

// Luhn (mod 10) over the digits, ignoring spaces and dashes; at least two digits, nothing
// but digits, spaces and dashes.
bool PassesLuhn(absl::string_view value);

// A payment card number: 13-19 digits (spaces and dashes ignored) whose issuer prefix allows
// its length, then Luhn. Issuers: Visa 4 (13, 16, 19); Mastercard 51-55 and 2221-2720 (16);
// Amex 34, 37 (15); Discover 6011, 644-649, 65 (16-19); JCB 3528-3589 (16-19); Diners Club
// 300-305, 36, 38, 39 (14-19); UnionPay 62 (16-19).
bool IsValidCreditCard(absl::string_view value);

// An IBAN, ungrouped or grouped with spaces or with dashes (not both): a country of the SWIFT
// IBAN registry, that country's exact length, letters (either case) and digits only, then
// ISO 7064 mod-97 == 1.
bool IsValidIban(absl::string_view value);

// An e-mail address as the built-in pattern matches it, whose top-level domain is not a
// common file extension that is no top-level domain (png, jpg, webp, tgz, js, ...): asset and
// package names such as "icon@2x.png", "pkg@1.2.3.tgz" and "react@next.js" are not addresses;
// nor is "git@host", code hosts' SSH user ("git@github.com:org/repo.git").
bool IsValidEmail(absl::string_view value);

// A US Social Security number (9 digits; spaces and dashes ignored): area 001-899 except 666,
// group 01-99, serial 0001-9999, and not one of the numbers published in advertising
// (078-05-1120, 219-09-9999).
bool IsValidUsSsn(absl::string_view value);

// A US ITIN (9 digits; spaces and dashes ignored): first digit 9, group (digits 4-5) in
// 50-65, 70-88, 90-92 or 94-99.
bool IsValidUsItin(absl::string_view value);

// A North American (NANP) number: 10 digits, or 11 with a leading country code 1 (spaces,
// dashes, dots, parentheses and a leading '+' ignored). Area code and exchange are [2-9]XX
// and neither is N11.
bool IsValidNanpPhone(absl::string_view value);

// An international number in E.164 form: '+', a known country calling code, then 7-12
// national digits (spaces, dashes or dots between groups; a trunk prefix written "(0)"
// after the code and a space, as in "+44 (0)20 7946 0958", is not one of them). When a
// separator follows the first group, that group is the whole country code; in the compact
// form the code is the (prefix-free) known code the digits start with. Country code 1 also
// needs a valid NANP number.
bool IsValidInternationalPhone(absl::string_view value);

// A national number written with its trunk prefix: '0', a digit 1-9, then 10-12 digits in
// all (spaces, dashes, dots and '/' between groups): "020 7946 0958", "0171 2345678",
// "06 12 34 56 78". Shorter runs are dates and postcodes ("01-15-2024", "02134-1234").
bool IsValidNationalPhone(absl::string_view value);

// A national number of nine digits without a trunk prefix, as Spain and Portugal write it:
// first digit 2-9, groups apart by spaces or dashes ("612 345 678", "912 34 56 78").
bool IsValidNineDigitPhone(absl::string_view value);

// A dotted-quad IPv4 address: four decimal parts 0-255 without leading zeros, other than
// 0.0.0.0, loopback 127.0.0.0/8 and netmasks 255.x.x.x (ones, then zeros: 255.255.255.0).
bool IsValidIpv4(absl::string_view value);

// An IPv6 address as inet_pton(AF_INET6) accepts it (full, compressed, embedded IPv4, either
// case) that has at least one decimal digit, so that C++ scopes and words such as "a::b" or
// "cafe::beef" in prose are not taken for addresses; and not "::" with at most two groups of
// at most three decimal digits ("::1", "::2", "1::3": loopback and Python slices).
bool IsValidIpv6(absl::string_view value);

// A UK NHS number (10 digits; spaces and dashes ignored) with its mod-11 check digit:
// weights 10..2 on the first nine digits, check = 11 - sum % 11, 11 -> 0, 10 is invalid.
bool IsValidUkNhs(absl::string_view value);

// The European national identifiers, letters in either case (the recognizers decide which
// case and which separators count without a context word).
//
// A UK National Insurance number: a prefix of two letters (the first not D, F, I, Q, U or
// V; the second not D, F, I, O, Q, U or V; not BG, GB, KN, NK, NT, TN or ZZ), six digits
// and a suffix A-D, with spaces or dashes anywhere between ("AB123456C", "AB 12 34 56 C",
// "AB-12-34-56-C", "AB 123456 C"). No check digit.
bool IsValidUkNino(absl::string_view value);

// A Spanish DNI (a person's NIF): eight digits, written plain or with dots ("12.345.678"),
// then '-', ' ' or nothing, then the check letter "TRWAGMYFPDXBNJZSQVHLCKE"[number % 23].
bool IsValidEsNif(absl::string_view value);

// A Spanish NIE: X, Y or Z, seven digits, the check letter of the DNI's table over the
// eight digits with X, Y, Z read as 0, 1, 2; '-' or ' ' may follow the first letter and
// precede the last ("X-1234567-L", "X 1234567 L").
bool IsValidEsNie(absl::string_view value);

// An Italian codice fiscale: 16 characters, six letters, year (two), month letter
// (ABCDEHLMPRST), day (two: 01-31, or 41-71 for women), a letter and three characters, and
// the check letter (odd positions through the decree's table, even ones by value, sum mod
// 26); the day (less 40) exists in the month (29 February included). A digit's place may
// hold its omocodia stand-in (0-9 written L M N P Q R S T U V), replacing digits from the
// last one leftwards; at least one digit is left.
bool IsValidItFiscalCode(absl::string_view value);

// A Polish PESEL: 11 digits YYMMDD..., weights 1 3 7 9 1 3 7 9 1 3, check = (10 - sum % 10)
// % 10; the month carries the century (01-12 1900s, 21-32 2000s, 41-52 2100s, 61-72 2200s,
// 81-92 1800s) and the date exists.
bool IsValidPlPesel(absl::string_view value);

// A Finnish personal identity code (henkilötunnus): DDMMYY, a century sign ('+' 1800s; '-',
// Y, X, W, V, U 1900s; A-F 2000s), an individual number 002-899 and the check character
// "0123456789ABCDEFHJKLMNPRSTUVWXY"[DDMMYYNNN % 31]; the date exists.
bool IsValidFiPersonalIdentityCode(absl::string_view value);

// A French social security number (NIR), compact or in groups 1 2 2 2 3 3 2 apart by single
// spaces: sex (1, 2, 3, 4, 7 or 8), year, month (01-12, 20, 30-42 or 50-99), department (two
// digits, or 2A/2B for Corsica, either case), commune, order number (001-999) and the key
// 97 - N mod 97 over the first 13 characters (2A read as 19, 2B as 18).
bool IsValidFrNir(absl::string_view value);

// A Dutch citizen service number (BSN): nine digits, compact or "1234.56.782", passing the
// "elfproef" 9*d1 + 8*d2 + ... + 2*d8 - d9 = 0 (mod 11), not all zeros.
bool IsValidNlBsn(absl::string_view value);

// A Swedish personnummer or samordningsnummer (day + 60): YYMMDD or YYYYMMDD, '-', '+' or
// nothing, a birth number and a check digit, Luhn over the ten digits from YY; the date
// exists (in the 10-digit form, "00" after '+' is 1900).
bool IsValidSePersonalIdentityNumber(absl::string_view value);

// A German tax identification number (steuerliche Identifikationsnummer): eleven digits,
// compact or grouped "86 095 742 719"; the first not 0; among the first ten exactly one digit
// occurs more than once (twice, or three times but not three in a row); the last is the
// ISO 7064 MOD 11,10 check digit.
bool IsValidDeTaxId(absl::string_view value);

// A German health insurance number (Krankenversichertennummer): an uppercase letter, eight
// digits and a check digit: the letter as two digits (A = 01 ... Z = 26) and the eight
// digits weighted 1 2 1 2 ..., each product's digit sum added, mod 10.
bool IsValidDeHealthInsuranceNumber(absl::string_view value);

// A Belgian national register number (Rijksregisternummer, numéro de registre national), BIS
// numbers included: eleven digits YYMMDD, a serial 001-998 and two check digits, 97 minus the
// first nine digits (or "2" and them, born since 2000) mod 97; the month 0-12, or +20 or +40
// for a BIS number; the date exists where month and day are not 0 (not known). Any of ' ', '.'
// and '-' between the digits (the recognizers say where).
bool IsValidBeNationalNumber(absl::string_view value);

// An Irish Personal Public Service Number: seven digits, a check letter and optionally a
// second letter, either case, one space allowed before the letters. Check: the digits
// weighted 8..2, plus 9 times a second letter A (1) or B (2), mod 23, as "WABCDEFGHIJKLMNOPQRSTUV";
// a second letter W, T or X (older numbers) takes no part; H (a company's) is no person's.
bool IsValidIePpsn(absl::string_view value);

// A Danish CPR number: DDMMYY, then four digits (no check since 2007), '-' or ' ' or nothing
// between; the date exists in the century its seventh digit and the year give.
bool IsValidDkCpr(absl::string_view value);

// An Austrian social insurance number (Sozialversicherungsnummer): ten digits, compact or
// "1237 010180"; the first not 0; the fourth is the check digit, the others weighted
// 3 7 9 _ 5 8 4 2 1 6, mod 11.
bool IsValidAtSocialInsuranceNumber(absl::string_view value);

// A Portuguese tax number of a person (NIF): nine digits, compact or "123 456 789", starting
// with 1, 2, 3 or 45 (others are companies' and public bodies'); the last is 11 minus the
// first eight weighted 9..2 mod 11, or 0 when that rest is 0 or 1.
bool IsValidPtTaxId(absl::string_view value);

// The machine-readable zone of a passport, identity card or visa (ICAO Doc 9303): two lines
// of 44 (TD3 passports starting "P", MRV-A visas "V"), two of 36 (TD2, starting "I", "A",
// "C", "P"; MRV-B visas "V") or three of 30 (TD1 identity cards, "I", "A", "C"), of [A-Z0-9<];
// or a TD3's or TD2's data line alone. Lines break at "\n", "\r\n" or a JSON string's "\n" or
// "\r\n", may end in spaces or tabs, be indented after the first, and have one blank line
// between them. Every check digit holds (weights 7 3 1;
// A = 10 ... Z = 35, '<' = 0): the document number's, the birth and expiry dates' (which
// exist: February up to 29), the personal number's, and the composite (visas have none: a
// visa's data line alone is not accepted); sex M, F, X or '<'; states of [A-Z<].
bool IsValidIdentityDocumentMrz(absl::string_view value);

// A VAT identification number of an EU member state: its prefix (upper case), optionally one
// space, then the national part, whose characters may be separated by single spaces or dots,
// with that state's check (as python-stdnum implements them): AT, BE (ten digits, starting 0
// or 1), CY, DE, DK, EE, EL (and GR), ES (DNI, NIE or CIF), FI, FR (numeric keys), HR, HU, IE
// (seven digits and one or two letters), IT, LT, LU, MT, NL, PL (not starting with 0), PT, RO
// (six to ten digits), SE, SI, SK ("10..." or "20...": not a birth number). BG, CZ and LV are
// not accepted.
bool IsValidEuVatNumber(absl::string_view value);

// A legacy Bitcoin address: base58 that decodes to 25 bytes, version 0x00 ('1...', P2PKH) or
// 0x05 ('3...', P2SH), whose last four bytes are the first four of SHA-256(SHA-256(rest)).
bool IsValidBitcoinBase58Check(absl::string_view value);

// A SegWit Bitcoin address: lowercase "bc1" + data characters whose BIP-173 checksum holds
// under the bech32 or the bech32m (BIP-350) constant; 42 or 62 characters.
bool IsValidBitcoinBech32(absl::string_view value);

// A US DEA registration number: a registrant-type letter (ABCDEFGHJKLMPRSTX), a letter or
// '9', seven digits; the last digit of (d1 + d3 + d5) + 2 * (d2 + d4 + d6) is d7.
bool IsValidDeaNumber(absl::string_view value);

// The largest PEM block IsValidPemPrivateKey accepts.
inline constexpr size_t kMaxPemBlockBytes = 16 * 1024 + 128;

// The fewest base64 characters a private key without its END line must show.
inline constexpr size_t kMinTruncatedPemBase64 = 16;

// A PEM private-key block "-----BEGIN <L>PRIVATE KEY-----" ... "-----END <L>PRIVATE
// KEY-----" whose BEGIN and END labels are equal (an OpenPGP "PRIVATE KEY BLOCK" too), of at
// most kMaxPemBlockBytes; or, pasted without its END line, the BEGIN line followed by
// optional armour headers ("Version: ...") and lines of base64 holding at least
// kMinTruncatedPemBase64 characters, with no "-----END " anywhere.
bool IsValidPemPrivateKey(absl::string_view value);
// A PEM private key in base64 ("LS0tLS1CRUdJTi...", as Kubernetes secrets and kubeconfig's
// client-key-data hold it): at most kMaxPemBlockBytes * 4 / 3 + 4 bytes of [A-Za-z0-9+/] and
// padding, whose decoding (of its whole groups of four, when the paste is cut) is a block
// IsValidPemPrivateKey accepts.
bool IsValidBase64PemPrivateKey(absl::string_view value);

// Secrets in their exact formats. The built-in patterns are looser (`+` where the format has
// an exact length), because counted repetitions over large classes make RE2's DFA states
// multiply on text full of random characters; these check the lengths.
//   POLICY_SUITE_KEY: "psk_proj_", "psk_svc_" or "psk_admin_" + 66 of [0-9A-Za-z].
bool IsValidPolicySuiteKey(absl::string_view value);
//   OPENAI_API_KEY (any provider's "sk-" key): "sk-" + 48 of [0-9A-Za-z]; "sk-proj-",
//   "sk-svcacct-" or "sk-admin-" + 40 to 200 of [A-Za-z0-9_-]; or "sk-" + 20 to 250 of
//   [A-Za-z0-9_-] of which a dash-separated part has 16 or more bytes with a digit and a
//   letter (Anthropic "sk-ant-api03-...", OpenRouter "sk-or-v1-" + 64 hex, DeepSeek "sk-" +
//   32 hex, "sk-None-" + 48).
bool IsValidOpenAiApiKey(absl::string_view value);
//   AWS_ACCESS_KEY: "AKIA" or "ASIA" + 16 of [A-Z2-7].
bool IsValidAwsAccessKey(absl::string_view value);
//   An AWS secret access key: 40 of [A-Za-z0-9/+] with a digit, an uppercase and a lowercase
//   letter (the recognizer also requires a context word such as "aws_secret_access_key").
bool IsValidAwsSecretAccessKey(absl::string_view value);
//   GITHUB_TOKEN: "ghp_", "gho_", "ghu_", "ghs_" or "ghr_" + 36 of [0-9A-Za-z], or
//   "github_pat_" + 82 of [0-9A-Za-z_].
bool IsValidGithubToken(absl::string_view value);
//   SLACK_TOKEN: "xoxb-", "xoxp-", "xoxa-", "xoxr-" or "xoxs-", one to five groups of 1-20
//   digits each followed by '-', then 8 to 64 of [0-9A-Za-z].
bool IsValidSlackToken(absl::string_view value);
//   JWT: a JSON Web Token in JWS compact form, "HEADER.PAYLOAD.SIGNATURE": header and payload
//   base64url JSON objects ("eyJ...", a length that is not 1 mod 4), the header naming its
//   "alg"; the signature base64url, empty only for an unsecured token ("alg": "none"); at most
//   16 KiB; holding a
//   digit or '_' (which the detector's prefilter relies on; a real token lacks both with a
//   probability below 10^-5).
bool IsValidJwt(absl::string_view value);
// The next ones reject a documentation placeholder: a random part of fewer than 6 distinct
// characters ("glpat-xxxxxxxxxxxxxxxxxxxx").
//   GOOGLE_API_KEY: "AIza" + 35 of [0-9A-Za-z_-].
bool IsValidGoogleApiKey(absl::string_view value);
//   STRIPE_API_KEY: "sk_live_", "sk_test_", "rk_live_" or "rk_test_" + 24 to 247 of
//   [0-9A-Za-z] (publishable "pk_" keys are public by design).
bool IsValidStripeApiKey(absl::string_view value);
//   GITLAB_TOKEN: "glpat-", "gldt-", "glrt-" or "glptt-" + 20 to 100 of [0-9A-Za-z_.-], not
//   starting or ending with '.', no "..".
bool IsValidGitlabToken(absl::string_view value);
//   HUGGINGFACE_TOKEN: "hf_" + 34 letters, upper- and lowercase.
bool IsValidHuggingFaceToken(absl::string_view value);
//   NPM_TOKEN: "npm_" + 36 of [0-9A-Za-z].
bool IsValidNpmToken(absl::string_view value);
//   SENDGRID_API_KEY: "SG." + 22 of [0-9A-Za-z_-] + '.' + 43 of them, holding a digit or '_'
//   (as a JWT, for the prefilter).
bool IsValidSendGridApiKey(absl::string_view value);
//   AZURE_STORAGE_KEY: an account key, 86 of [A-Za-z0-9+/] and "==" (64 bytes in base64),
//   holding a digit (the recognizer requires "AccountKey=" before it).
bool IsValidAzureStorageKey(absl::string_view value);
//   GROQ_API_KEY: "gsk_" + 52 of [0-9A-Za-z].
bool IsValidGroqApiKey(absl::string_view value);
//   XAI_API_KEY: "xai-" + 80 of [0-9A-Za-z].
bool IsValidXaiApiKey(absl::string_view value);
//   GOOGLE_OAUTH_CLIENT_SECRET: "GOCSPX-" + 28 of [0-9A-Za-z_-].
bool IsValidGoogleOAuthClientSecret(absl::string_view value);
//   GOOGLE_OAUTH_TOKEN, an access token: "ya29." + 30 to 2048 of [0-9A-Za-z_.-], not ending
//   with '.', no "..".
bool IsValidGoogleOAuthToken(absl::string_view value);
//   PYPI_TOKEN: "pypi-AgEIcHlwaS5vcmc" (pypi.org) or "pypi-AgENdGVzdC5weXBpLm9yZw"
//   (test.pypi.org) + 50 to 2000 of [0-9A-Za-z_-].
bool IsValidPypiToken(absl::string_view value);
//   DOCKER_HUB_TOKEN: "dckr_pat_" + 27 of [0-9A-Za-z_-].
bool IsValidDockerHubToken(absl::string_view value);
//   WEBHOOK_SIGNING_SECRET: "whsec_" + 32 to 88 of [0-9A-Za-z+/] (Stripe, Svix, Clerk, Resend).
bool IsValidWebhookSigningSecret(absl::string_view value);
//   TELEGRAM_BOT_TOKEN: an optional "bot" (the Bot API's URLs), the bot id (8 to 10 digits,
//   not starting with 0), ':', "AA" + 33 of [0-9A-Za-z_-].
bool IsValidTelegramBotToken(absl::string_view value);
//   SLACK_WEBHOOK_URL: "https://" or "http://", "hooks.slack.com/", then "services/" + a
//   team id ('T' + 8 to 12 of [0-9A-Z]) + '/' + a bot id ('B' + 8 to 12 of them) + '/' + 24
//   of [0-9A-Za-z]; or "workflows/" or "triggers/" + a team id + '/', one or two parts of 1
//   to 24 of [0-9A-Za-z] each followed by '/', and 24 to 64 of [0-9A-Za-z].
bool IsValidSlackWebhookUrl(absl::string_view value);
//   SLACK_TOKEN, app-level: "xapp-" + a digit + '-' + 'A' and 8 to 12 of [0-9A-Z] + '-' + 10
//   to 16 digits + '-' + 64 of [0-9a-f].
bool IsValidSlackAppToken(absl::string_view value);
//   AZURE_SHARED_ACCESS_KEY: a Service Bus, Event Hubs or IoT Hub key, 43 of [A-Za-z0-9+/]
//   and '=' (32 bytes in base64; the recognizer requires "SharedAccessKey=" before it).
bool IsValidAzureSharedAccessKey(absl::string_view value);
//   AZURE_SAS_TOKEN, a shared access signature's "sig": 43 of [A-Za-z0-9+/] and '=' (an
//   HMAC-SHA256 in base64) once "%2B", "%2F" and "%3D" (either case) are decoded, no other
//   '%', holding a digit (an encoded byte's counts; for the prefilter, as JWT).
bool IsValidAzureSasSignature(absl::string_view value);
//   PERPLEXITY_API_KEY: "pplx-" + 48 of [0-9A-Za-z].
bool IsValidPerplexityApiKey(absl::string_view value);
//   REPLICATE_API_TOKEN: "r8_" + 37 of [0-9A-Za-z_-].
bool IsValidReplicateApiToken(absl::string_view value);
//   LANGSMITH_API_KEY: "lsv2_pt_" or "lsv2_sk_" + 32 of [0-9a-f] + '_' + 10 of [0-9a-f].
bool IsValidLangSmithApiKey(absl::string_view value);
//   DATABRICKS_TOKEN: "dapi" + 32 of [0-9a-f] with a digit (for the prefilter; a random one
//   lacks one with a probability below 10^-13), then maybe '-' and a digit.
bool IsValidDatabricksToken(absl::string_view value);
//   ATLASSIAN_API_TOKEN: "ATATT3" + 186 of [0-9A-Za-z_=-].
bool IsValidAtlassianApiToken(absl::string_view value);
//   VAULT_TOKEN: HashiCorp Vault's "hvs." + 90 to 120 or "hvb." + 138 to 300 of
//   [0-9A-Za-z_-], holding a digit (for the prefilter, as JWT).
bool IsValidVaultToken(absl::string_view value);
//   AZURE_CLIENT_SECRET, a Microsoft Entra application's: 3 of [0-9A-Za-z_~.], a digit, "Q~",
//   then 31 to 34 of [0-9A-Za-z_~.-].
bool IsValidAzureClientSecret(absl::string_view value);
//   DIGITALOCEAN_TOKEN: "dop_v1_", "doo_v1_" or "dor_v1_" + 64 of [0-9a-f].
bool IsValidDigitalOceanToken(absl::string_view value);
//   POSTMAN_API_KEY: "PMAK-" + 24 of [0-9a-f] + '-' + 34 of [0-9a-f].
bool IsValidPostmanApiKey(absl::string_view value);
//   GRAFANA_TOKEN, a service account's: "glsa_" + 32 of [0-9A-Za-z] + '_' + 8 of [0-9a-f].
bool IsValidGrafanaToken(absl::string_view value);
//   DISCORD_BOT_TOKEN: three parts of [0-9A-Za-z_-] joined by '.': the bot's id in unpadded
//   base64url (23 to 27 characters decoding to 17 to 20 digits, the first not 0), 6 (a
//   timestamp), 27 to 38 (the HMAC, no placeholder); holding a digit (for the prefilter, as
//   JWT).
bool IsValidDiscordBotToken(absl::string_view value);
//   DISCORD_WEBHOOK_URL: "https://" or "http://", "discord.com", "discordapp.com",
//   "ptb.discord.com" or "canary.discord.com", "/api/", an optional version ('v', 1 or 2
//   digits, '/'), "webhooks/", the webhook's id (17 to 20 digits), '/', and its token: 60 to 80
//   of [0-9A-Za-z_-], no placeholder.
bool IsValidDiscordWebhookUrl(absl::string_view value);
//   SECRET, the value of a setting named as a secret (see NamedSecretRecognizers): 6 to
//   kMaxSecretValueBytes bytes (an AWS session token has ~1,000), not starting with '=' (after
//   "==", a comparison), not a stand-in as for URL_CREDENTIALS below, not only digits, nothing of a
//   placeholder
//   ("your-api-key-here", "REDACTED", "example", "xxx" or "XXX", "..."); unquoted, also not a name
//   in code (letters, '_', '.' and '-' only: "self.token", "string").
inline constexpr size_t kMaxSecretValueBytes = 4096;
bool IsValidSecretValue(absl::string_view value);
bool IsValidUnquotedSecretValue(absl::string_view value);
//   SECRET, an Authorization header's credentials (see NamedSecretRecognizers). Basic: 8 to
//   1024 bytes of base64 (padding optional) decoding to printable ASCII "user:password", each
//   part non-empty, the password not a stand-in as for URL_CREDENTIALS below. Bearer (or
//   Token): 8 to kMaxSecretValueBytes bytes, not only digits, not a name (letters, '_', '.' and '-'
//   only), no placeholder as for SECRET above.
bool IsValidBasicCredentials(absl::string_view value);
bool IsValidBearerToken(absl::string_view value);
//   URL_CREDENTIALS: "user:password@host" (the user possibly empty) whose password is not a
//   stand-in for one: a variable or template reference ("$DB_PASSWORD", "${DB_PASSWORD}",
//   "$(cat secret)", "{{password}}", "%(password)s", "{password}"), a placeholder
//   ("<password>", "[token]") or a placeholder word ("password", "changeme", "****").
bool IsValidUrlCredentials(absl::string_view value);
//   URL_CREDENTIALS with a token as the user name: "TOKEN@host" where TOKEN is a value one of
//   the token validators above accepts (GitHub, GitLab, "sk-", Slack, npm, Hugging Face,
//   Stripe, Google, the suite's own keys).
bool IsValidUrlTokenUser(absl::string_view value);

// A validator as recognizers name it.
using Validator = bool (*)(absl::string_view value);

// The validator called `name` ("luhn", "credit_card", "iban", "us_ssn", "us_itin",
// "nanp_phone", "international_phone", "national_phone", "nine_digit_phone", "ipv4", "ipv6",
// "uk_nhs", "uk_nino", "es_nif", "es_nie", "it_fiscal_code", "pl_pesel",
// "fi_personal_identity_code", "se_personal_identity_number", "nl_bsn", "fr_nir", "de_tax_id",
// "de_health_insurance_number", "be_national_number", "ie_ppsn", "dk_cpr",
// "at_social_insurance_number", "pt_tax_id", "identity_document_mrz", "eu_vat_number",
// "bitcoin_base58check", "bitcoin_bech32", "dea", "email",
// "pem_private_key", "base64_pem_private_key", "policy_suite_key", "openai_api_key",
// "aws_access_key", "aws_secret_access_key", "github_token", "slack_token", "jwt",
// "google_api_key", "stripe_api_key", "gitlab_token", "huggingface_token", "npm_token",
// "sendgrid_api_key", "azure_storage_key", "groq_api_key", "xai_api_key",
// "google_oauth_client_secret", "google_oauth_token", "pypi_token", "docker_hub_token",
// "webhook_signing_secret", "telegram_bot_token", "slack_webhook_url", "slack_app_token",
// "azure_shared_access_key", "azure_sas_signature", "perplexity_api_key",
// "replicate_api_token", "langsmith_api_key", "databricks_token", "atlassian_api_token",
// "vault_token", "azure_client_secret", "digitalocean_token", "postman_api_key",
// "grafana_token", "discord_bot_token", "discord_webhook_url", "url_credentials", "url_token_user",
// "secret_value", "unquoted_secret_value", "basic_credentials", "bearer_token"), or nullptr for an
// unknown name.
Validator FindValidator(absl::string_view name);

// The fewest bytes a value `validator` accepts can have: it rejects every shorter value.
// 0 for nullptr or a function FindValidator does not return. The scanner skips text too
// short to hold a value its validator would accept.
size_t MinAcceptedBytes(Validator validator);

// Whether `validator` checks a token: its value is a whole run of the token's alphabet, never
// a shorter piece of it ending at one of its '-' ("AIza" + 35 with a 36th byte '-' is no
// Google key). False for nullptr.
bool ChecksWholeTokens(Validator validator);

// Every name FindValidator knows, sorted.
std::vector<std::string> KnownValidatorNames();

}  // namespace policy::pii

#endif  // POLICY_SERVICES_PII_VALIDATORS_H_
