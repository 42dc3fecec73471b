#include "services/pii/recognizer.h"

#include <yaml-cpp/yaml.h>

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/yaml/yaml_document.h"
#include "re2/re2.h"
#include "services/pii/validators.h"

namespace policy::pii {
namespace {

constexpr size_t kMaxNameBytes = 64;

const std::vector<std::string> kPhoneContext = {
    "phone", "telephone", "cellphone", "tel", "call", "mobile", "cell", "fax", "whatsapp"};
// National numbers are digit runs that only a word tells from an order number: the phone
// words and their German, French, Spanish, Italian, Portuguese and Japanese forms.
const std::vector<std::string> kNationalPhoneContext = {
    "phone",     "telephone", "cellphone", "tel",       "call",     "mobile",
    "cell",      "fax",       "whatsapp",  "handy",     "telefon",  "telefonnummer",
    "rufnummer", "mobil",     "festnetz",  "appelez",   "appeler",  "appelle",
    "portable",  "tél",       "téléphone", "telefono",  "teléfono", "móvil",
    "cellulare", "telefone",  "telemóvel", "telemovel", "電話",     "携帯"};
const std::vector<std::string> kSsnContext = {"ssn", "social security", "social-security", "ss#"};

bool IsEntityTypeName(absl::string_view type) {
  if (type.empty() || !absl::ascii_isupper(static_cast<unsigned char>(type[0]))) return false;
  for (char c : type) {
    if (!absl::ascii_isupper(static_cast<unsigned char>(c)) &&
        !absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '_') {
      return false;
    }
  }
  return true;
}

bool IsRecognizerName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

bool HasUpper(absl::string_view text) {
  for (char c : text) {
    if (absl::ascii_isupper(static_cast<unsigned char>(c))) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> ValidatorNames() { return KnownValidatorNames(); }

std::vector<RecognizerSpec> BuiltinRecognizers() {
  std::vector<RecognizerSpec> r;
  auto add = [&r](std::string name, std::string type, std::string pattern, double score,
                  std::string validator, std::vector<std::string> context = {},
                  bool context_required = false, std::vector<std::string> excluded = {},
                  std::vector<std::string> excluded_context = {}) {
    r.push_back(RecognizerSpec{.name = std::move(name),
                               .entity_type = std::move(type),
                               .pattern = std::move(pattern),
                               .score = score,
                               .validator = std::move(validator),
                               .context_words = std::move(context),
                               .context_required = context_required,
                               .excluded_prefixes = std::move(excluded),
                               .excluded_context = std::move(excluded_context)});
  };
  // Secrets: distinctive prefixes, format only. Patterns that repeat a large class use `+`
  // and leave the exact lengths to the validator (see validators.h).
  // A whole block, or (no END line follows) the header, armour headers ("Version: ..."), one
  // blank line and the lines of base64 after them: a blank line, or a line that is not all
  // base64, '=' only as its padding ("Why does ssh reject it?", "  host: x", "svnr=1237010180",
  // an OpenPGP checksum's "=Xy7a"), ends the run. Lines break as in a file,
  // or as "\n" in a JSON or YAML string (where a line ends at any other byte), and may be
  // indented (a YAML block).
  const std::string line_break = "(?:\\r?\\n|\\\\n)";
  const std::string base64_line =
      "(?:\\r?\\n[ \\t]*[A-Za-z0-9+/]+=*\\r?(?m:$)|\\\\n[ \\t]*[A-Za-z0-9+/]+=*)";
  add("private_key", "PRIVATE_KEY",
      absl::StrCat(
          "-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"
          "(?:(?s:.)*?-----END (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: "
          "BLOCK)?-----|(?:",
          line_break, "[ \\t]*[A-Za-z][A-Za-z-]*: [^\\r\\n\\\\]*)*", line_break, "?", base64_line,
          "+)"),
      1.0, "pem_private_key");
  // The same in base64 ("-----BEGIN" is "LS0tLS1CRUdJTi"): a Kubernetes secret's tls.key,
  // kubeconfig's client-key-data.
  add("private_key_base64", "PRIVATE_KEY", "LS0tLS1CRUdJTi[A-Za-z0-9+/]+=*", 1.0,
      "base64_pem_private_key");
  add("policy_suite_key", "POLICY_SUITE_KEY", "psk_(?:proj|svc|admin)_[0-9A-Za-z]+", 1.0,
      "policy_suite_key");
  add("openai_api_key", "OPENAI_API_KEY", "sk-[A-Za-z0-9_-]+", 1.0, "openai_api_key");
  add("aws_access_key", "AWS_ACCESS_KEY", "(?:AKIA|ASIA)[A-Z2-7]+", 1.0, "aws_access_key");
  // A secret access key is 40 characters of base64 that only the context tells from a hash.
  // Counted, unlike the others: `+` would match in every region and cost each an extraction.
  add("aws_secret_access_key", "AWS_ACCESS_KEY", "[A-Za-z0-9/+]{40}", 1.0, "aws_secret_access_key",
      {"aws_secret", "aws secret", "secret_access_key", "secretaccesskey", "secret access key",
       "secret-access-key"},
      true);
  add("github_token", "GITHUB_TOKEN", "gh[pousr]_[0-9A-Za-z]+|github_pat_[0-9A-Za-z_]+", 1.0,
      "github_token");
  add("slack_token", "SLACK_TOKEN", "xox[bpars]-[0-9]+(?:-[0-9]+)*-[0-9A-Za-z]+", 1.0,
      "slack_token");
  // A JSON Web Token (JWS compact form): header and claims are base64url JSON objects, "eyJ".
  // A fourth segment is taken in, so that the validator sees it and rejects the whole.
  add("jwt", "JWT", "eyJ[A-Za-z0-9_-]+\\.eyJ[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]*(?:\\.[A-Za-z0-9_-]+)*",
      1.0, "jwt");
  add("google_api_key", "GOOGLE_API_KEY", "AIza[0-9A-Za-z_-]+", 1.0, "google_api_key");
  add("stripe_api_key", "STRIPE_API_KEY", "[rs]k_(?:live|test)_[0-9A-Za-z]+", 1.0,
      "stripe_api_key");
  add("gitlab_token", "GITLAB_TOKEN", "gl(?:pat|dt|rt|ptt)-[0-9A-Za-z_-]+(?:\\.[0-9A-Za-z_-]+)*",
      1.0, "gitlab_token");
  add("huggingface_token", "HUGGINGFACE_TOKEN", "hf_[A-Za-z]+", 1.0, "huggingface_token");
  add("npm_token", "NPM_TOKEN", "npm_[0-9A-Za-z]+", 1.0, "npm_token");
  add("sendgrid_api_key", "SENDGRID_API_KEY", "SG\\.[0-9A-Za-z_-]+\\.[0-9A-Za-z_-]+", 1.0,
      "sendgrid_api_key");
  // An Azure Storage connection string's account key: the finding is the key, after its name.
  add("azure_storage_key", "AZURE_STORAGE_KEY", "(?i:accountkey)=([A-Za-z0-9+/]+=*)", 1.0,
      "azure_storage_key");
  add("groq_api_key", "GROQ_API_KEY", "gsk_[0-9A-Za-z]+", 1.0, "groq_api_key");
  add("xai_api_key", "XAI_API_KEY", "xai-[0-9A-Za-z]+", 1.0, "xai_api_key");
  add("google_oauth_client_secret", "GOOGLE_OAUTH_CLIENT_SECRET", "GOCSPX-[0-9A-Za-z_-]+", 1.0,
      "google_oauth_client_secret");
  add("google_oauth_token", "GOOGLE_OAUTH_TOKEN", "ya29\\.[0-9A-Za-z_-]+(?:\\.[0-9A-Za-z_-]+)*",
      1.0, "google_oauth_token");
  add("pypi_token", "PYPI_TOKEN", "pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[0-9A-Za-z_-]+", 1.0,
      "pypi_token");
  add("docker_hub_token", "DOCKER_HUB_TOKEN", "dckr_pat_[0-9A-Za-z_-]+", 1.0, "docker_hub_token");
  add("webhook_signing_secret", "WEBHOOK_SIGNING_SECRET", "whsec_[0-9A-Za-z+/]+", 1.0,
      "webhook_signing_secret");
  // The Bot API's URLs put "bot" right before the id ("https://api.telegram.org/bot<token>/"):
  // it is part of the finding, so that the id is not glued to it.
  add("telegram_bot_token", "TELEGRAM_BOT_TOKEN", "(?:bot)?[0-9]+:AA[0-9A-Za-z_-]+", 1.0,
      "telegram_bot_token");
  add("slack_webhook_url", "SLACK_WEBHOOK_URL",
      "https?://hooks\\.slack\\.com/(?:services|workflows|triggers)/[0-9A-Za-z/]+", 1.0,
      "slack_webhook_url");
  add("slack_app_token", "SLACK_TOKEN", "xapp-[0-9]+-[0-9A-Z]+-[0-9]+-[0-9a-f]+", 1.0,
      "slack_app_token");
  add("perplexity_api_key", "PERPLEXITY_API_KEY", "pplx-[0-9A-Za-z]+", 1.0, "perplexity_api_key");
  add("replicate_api_token", "REPLICATE_API_TOKEN", "r8_[0-9A-Za-z_-]+", 1.0,
      "replicate_api_token");
  add("langsmith_api_key", "LANGSMITH_API_KEY", "lsv2_(?:pt|sk)_[0-9a-f]+_[0-9a-f]+", 1.0,
      "langsmith_api_key");
  add("databricks_token", "DATABRICKS_TOKEN", "dapi[0-9a-f]+(?:-[0-9])?", 1.0, "databricks_token");
  add("atlassian_api_token", "ATLASSIAN_API_TOKEN", "ATATT3[0-9A-Za-z_=-]+", 1.0,
      "atlassian_api_token");
  add("vault_token", "VAULT_TOKEN", "hv[sb]\\.[0-9A-Za-z_-]+", 1.0, "vault_token");
  // A '.' ends a sentence, not the secret.
  add("azure_client_secret", "AZURE_CLIENT_SECRET",
      "[0-9A-Za-z_~.]{3}[0-9]Q~[0-9A-Za-z_~.-]*[0-9A-Za-z_~-]", 1.0, "azure_client_secret");
  add("digitalocean_token", "DIGITALOCEAN_TOKEN", "do[opr]_v1_[0-9a-f]+", 1.0,
      "digitalocean_token");
  add("postman_api_key", "POSTMAN_API_KEY", "PMAK-[0-9a-f]+-[0-9a-f]+", 1.0, "postman_api_key");
  add("grafana_token", "GRAFANA_TOKEN", "glsa_[0-9A-Za-z]+_[0-9a-f]+", 1.0, "grafana_token");
  // The bot's id in base64url: 17 to 20 digits, whose encoding starts with M, N or O.
  add("discord_bot_token", "DISCORD_BOT_TOKEN",
      "[MNO][0-9A-Za-z_-]+\\.[0-9A-Za-z_-]+\\.[0-9A-Za-z_-]+(?:\\.[0-9A-Za-z_-]+)*", 1.0,
      "discord_bot_token", {}, false, {"-"});
  add("discord_webhook_url", "DISCORD_WEBHOOK_URL",
      "https?://(?:(?:ptb|canary)\\.)?discord(?:app)?\\.com/api/(?:v[0-9]+/)?webhooks/[0-9]+/"
      "[0-9A-Za-z_-]+",
      1.0, "discord_webhook_url");
  // A Service Bus, Event Hubs or IoT Hub connection string's key, after its name (as Azure
  // spells it: the prefilter looks for "SharedAccessKey=").
  add("azure_shared_access_key", "AZURE_SHARED_ACCESS_KEY", "SharedAccessKey=([0-9A-Za-z+/]+=*)",
      1.0, "azure_shared_access_key");
  // A shared access signature's signature, in a URL's query or a bare SAS token: without it
  // the rest grants nothing.
  add("azure_sas_token", "AZURE_SAS_TOKEN", "[?&]sig=([0-9A-Za-z%+/]+=*)", 1.0,
      "azure_sas_signature");
  // The credentials in a URL's authority: "user:password@host" after "scheme://" (the
  // password non-empty, the user possibly empty; the last '@' before the path ends the
  // password, so an unencoded '@', '?' or '#' stays inside it, as people paste them). The host is
  // part of the finding so that the finding holds any e-mail reading of "password@host" and wins
  // over it (the longer at equal scores); the scheme, port and path are left. No '@' or no ':'
  // before it ("ssh:// git@host", "http://host:8080/") is no credential, nor a password that stands
  // for one
  // ("${DB_PASSWORD}", "<password>": see validators.h). Whitespace includes '\v', which RE2's
  // \s does not and the prefilter cuts at.
  add("url_credentials", "URL_CREDENTIALS",
      "[A-Za-z][A-Za-z0-9+.-]*://"
      "([^\\s\\v/?#@:]*:[^\\s\\v/]+@(?:[A-Za-z0-9._~%-]*[A-Za-z0-9_]|\\[[0-9A-Fa-f:.]+\\]))",
      1.0, "url_credentials");
  // A token as the user name ("https://ghp_...@github.com/org/repo.git"): the same finding,
  // listed before the e-mail reading of the same bytes, which it beats at equal length.
  add("url_token_user", "URL_CREDENTIALS",
      "[A-Za-z][A-Za-z0-9+.-]*://"
      "([^\\s\\v/?#@:]+@(?:[A-Za-z0-9._~%-]*[A-Za-z0-9_]|\\[[0-9A-Fa-f:.]+\\]))",
      1.0, "url_token_user");
  // Check digits: a random string passes with a probability of 1/97 or less.
  add("credit_card", "CREDIT_CARD",
      "[0-9]{13,19}"
      "|[0-9]{4}(?: [0-9]{4}){2,3}(?: [0-9]{1,4})?|[0-9]{4}(?:-[0-9]{4}){2,3}(?:-[0-9]{1,4})?"
      "|[0-9]{4} [0-9]{6} [0-9]{4,5}|[0-9]{4}-[0-9]{6}-[0-9]{4,5}",
      1.0, "credit_card");
  add("iban", "IBAN_CODE",
      "[A-Za-z]{2}[0-9]{2}(?:[A-Za-z0-9]{11,30}|(?: [A-Za-z0-9]{4}){2,7}(?: [A-Za-z0-9]{1,3})?"
      "|(?:-[A-Za-z0-9]{4}){2,7}(?:-[A-Za-z0-9]{1,3})?)",
      1.0, "iban");
  add("bitcoin_base58", "CRYPTO", "[13][1-9A-HJ-NP-Za-km-z]+", 1.0, "bitcoin_base58check");
  add("bitcoin_bech32", "CRYPTO", "bc1[02-9ac-hj-np-z]+", 1.0, "bitcoin_bech32");
  // A bare NHS number is a phone number unless the text says NHS; the check digit and the
  // required context make it win over the phone reading.
  add("uk_nhs", "UK_NHS", "[0-9]{3} [0-9]{3} [0-9]{4}|[0-9]{3}-[0-9]{3}-[0-9]{4}|[0-9]{10}", 1.0,
      "uk_nhs", {"nhs"}, true, {"+", "+1 ", "+1-", "1-"});
  // European national identifiers, in the forms their documents print (uppercase, the
  // separators of the official form) on their own, and as people type them (either case,
  // other separators) only after a word that says what they are.
  //
  // A National Insurance number has no check digit: grouped as HMRC prints it, it stands on
  // its own; compact it is as often a part number.
  const std::vector<std::string> nino_context = {"national insurance",
                                                 "national_insurance",
                                                 "nationalinsurancenumber",
                                                 "nino",
                                                 "ni number",
                                                 "ni no",
                                                 "ni_number",
                                                 "ni_no",
                                                 "ni:",
                                                 "n.i.",
                                                 "nat ins",
                                                 "nat. ins.",
                                                 "hmrc"};
  const std::string nino_prefix = "[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]";
  add("uk_nino", "UK_NINO", absl::StrCat(nino_prefix, " [0-9]{2} [0-9]{2} [0-9]{2} [A-D]"), 0.85,
      "uk_nino", nino_context);
  // A space counts only after an uppercase prefix: text splits at a space after a lowercase
  // letter before any pattern looks at it (see MayHoldFinding in detector.cc).
  add("uk_nino_written", "UK_NINO",
      absl::StrCat("(?:", nino_prefix, "[ -]?|(?i:", nino_prefix,
                   ")-?)(?:[0-9]{6}|[0-9]{2}[ -][0-9]{2}[ -][0-9]{2})[ -]?(?i:[A-D])"),
      0.85, "uk_nino", nino_context, true);
  // One check letter in 23: a DNI apart from its letter by a space ("order 12345678 A" could
  // be one) or in lowercase only with a context word.
  const std::vector<std::string> nif_context = {"dni", "nif", "documento nacional", "d.n.i",
                                                "n.i.f"};
  add("es_nif", "ES_NIF", "[0-9]{8}-?[A-Z]|[0-9]{2}\\.[0-9]{3}\\.[0-9]{3}-?[A-Z]", 0.85, "es_nif",
      nif_context);
  add("es_nif_written", "ES_NIF",
      "(?i:[0-9]{8}[- ]?[A-Z]|[0-9]{2}\\.[0-9]{3}\\.[0-9]{3}[- ]?[A-Z])", 0.85, "es_nif",
      nif_context, true);
  const std::vector<std::string> nie_context = {"nie", "extranjero", "n.i.e"};
  add("es_nie", "ES_NIE", "[XYZ]-?[0-9]{7}-?[A-Z]", 0.85, "es_nie", nie_context);
  add("es_nie_written", "ES_NIE", "(?:[XYZ][ -]?|[xyz]-?)[0-9]{7}[ -]?(?i:[A-Z])", 0.85, "es_nie",
      nie_context, true);
  // Sixteen characters in a fixed layout with a check letter: either case on its own.
  add("it_fiscal_code", "IT_FISCAL_CODE",
      "(?i:[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z])",
      1.0, "it_fiscal_code", {"codice fiscale", "fiscal code", "tax code", "c.f."});
  // Eleven digits with a check digit and a date are still as often an account number, and
  // after '+' a phone number.
  add("pl_pesel", "PL_PESEL", "[0-9]{11}", 1.0, "pl_pesel", {"pesel"}, true, {"+"});
  // A Finnish code with a letter for its century (2000s: A-F, 1900s since 2023: U-Y) stands
  // on its own; with '-' or '+' it has the shape of a date-numbered reference ("Invoice
  // 240315-0424", one in thirty-four passes) and of a Swedish number ("811218-9876"), so it
  // counts only after a Finnish word, and never after a Swedish one.
  // Context words match ASCII case-insensitively: a word with a letter beyond ASCII is also
  // listed with that letter in capitals, as a heading writes it ("HENKILÖTUNNUS").
  const std::vector<std::string> se_context = {"personnummer", "personnr", "pnr",
                                               "samordningsnummer"};
  // Excluded context matches inside words too: not "pnr" ("...RHPNRP...").
  const std::vector<std::string> se_words = {"personnummer", "personnr", "samordningsnummer"};
  const std::vector<std::string> fi_context = {"henkilötunnus", "henkilÖtunnus", "hetu",
                                               "personal identity code", "personbeteckning"};
  add("fi_personal_identity_code", "FI_PERSONAL_IDENTITY_CODE",
      "[0-9]{6}[A-FU-Y][0-9]{3}[0-9A-FHJ-NPR-Y]", 1.0, "fi_personal_identity_code", fi_context,
      false, {}, se_words);
  add("fi_personal_identity_code_written", "FI_PERSONAL_IDENTITY_CODE",
      "(?i:[0-9]{6}[-+A-FU-Y][0-9]{3}[0-9A-FHJ-NPR-Y])", 1.0, "fi_personal_identity_code",
      fi_context, true, {}, se_words);
  // Luhn and a date: one date-numbered reference in thirty passes, so only after its word.
  add("se_personal_identity_number", "SE_PERSONAL_IDENTITY_NUMBER",
      "[0-9]{6}[-+][0-9]{4}|(?:18|19|20)[0-9]{6}[-+]?[0-9]{4}|[0-9]{10}", 1.0,
      "se_personal_identity_number", se_context, true);
  // Nine digits pass the elfproef one time in eleven: only after their word.
  add("nl_bsn", "NL_BSN", "[0-9]{9}|[0-9]{4}\\.[0-9]{2}\\.[0-9]{3}", 1.0, "nl_bsn",
      {"bsn", "burgerservicenummer", "sofinummer", "sofi-nummer"}, true);
  // Eleven digits with a check digit (a PESEL's shape) and a letter with nine digits (an order
  // code's): only after their words.
  add("de_tax_id", "DE_TAX_ID", "[1-9][0-9]{10}|[1-9][0-9] [0-9]{3} [0-9]{3} [0-9]{3}", 1.0,
      "de_tax_id",
      {"steuer-id", "steuerid", "steuer-identifikationsnummer", "steueridentifikationsnummer",
       "identifikationsnummer", "idnr", "id-nr"},
      true, {"+"});
  add("de_health_insurance_number", "DE_HEALTH_INSURANCE_NUMBER", "[A-Z][0-9]{9}", 1.0,
      "de_health_insurance_number",
      {"krankenversichertennummer", "versichertennummer", "versicherten-nr", "kvnr", "kv-nr",
       "krankenversicherung"},
      true);
  // A Belgian national number as the eID card prints it stands on its own; compact or in other
  // groups it is eleven digits with a check, as a PESEL: only after its word.
  const std::vector<std::string> be_context = {"rijksregisternummer",
                                               "rijksregisternr",
                                               "rijksregister",
                                               "nationalregisternummer",
                                               "numéro national",
                                               "numÉro national",
                                               "numéro de registre national",
                                               "numÉro de registre national",
                                               "registre national",
                                               "national number",
                                               "national register number",
                                               "insz",
                                               "niss",
                                               "rrn"};
  add("be_national_number", "BE_NATIONAL_NUMBER",
      "[0-9]{2}\\.[0-9]{2}\\.[0-9]{2}-[0-9]{3}\\.[0-9]{2}", 1.0, "be_national_number", be_context,
      false, {"+"});
  add("be_national_number_written", "BE_NATIONAL_NUMBER",
      "[0-9]{11}|[0-9]{6}-[0-9]{3}-[0-9]{2}|[0-9]{6} [0-9]{3} [0-9]{2}"
      "|[0-9]{2} [0-9]{2} [0-9]{2} [0-9]{3} [0-9]{2}|[0-9]{2}\\.[0-9]{2}\\.[0-9]{2}-[0-9]{3} "
      "[0-9]{2}",
      1.0, "be_national_number", be_context, true, {"+"});
  // Seven digits and a check letter in 23 (a part number's shape), a Danish date and four
  // digits, ten digits with a check digit in ten, nine with one in eleven: only after their
  // words.
  add("ie_ppsn", "IE_PPSN", "(?i:[0-9]{7} ?[A-W][ABWTX]?)", 1.0, "ie_ppsn",
      {"pps", "ppsn", "pps number", "pps no", "personal public service"}, true, {"+"});
  add("dk_cpr", "DK_CPR", "[0-9]{6}[- ]?[0-9]{4}", 1.0, "dk_cpr",
      {"cpr", "cpr-nr", "cpr-nummer", "cprnr", "cpr nr"}, true, {"+"});
  add("at_social_insurance_number", "AT_SOCIAL_INSURANCE_NUMBER", "[1-9][0-9]{3} ?[0-9]{6}", 1.0,
      "at_social_insurance_number",
      {"sozialversicherungsnummer", "versicherungsnummer", "svnr", "sv-nr", "sv-nummer", "vsnr"},
      true, {"+"});
  add("pt_tax_id", "PT_TAX_ID", "[1-4][0-9]{8}|[1-4][0-9]{2} [0-9]{3} [0-9]{3}", 1.0, "pt_tax_id",
      {"nif", "contribuinte", "número de contribuinte", "nº contribuinte", "identificação fiscal",
       "identificaÇÃo fiscal"},
      true, {"+"});
  // Fifteen characters in a fixed layout with a mod-97 key: on their own when they start with
  // the sex digit of nearly everyone (1 or 2) or in the carte Vitale's groups; starting with
  // 3, 4, 7 or 8 (people being registered) they are as often IMEIs ("35...").
  const std::vector<std::string> nir_context = {"nir",
                                                "insee",
                                                "sécurité sociale",
                                                "sÉcuritÉ sociale",
                                                "securite sociale",
                                                "numéro de sécu",
                                                "numÉro de sÉcu",
                                                "carte vitale"};
  add("fr_nir", "FR_NIR",
      "[12][0-9]{4}(?:[0-9]{2}|2[AB])[0-9]{8}"
      "|[1-478] [0-9]{2} [0-9]{2} (?:[0-9]{2}|2[AB]) [0-9]{3} [0-9]{3} [0-9]{2}",
      1.0, "fr_nir", nir_context, false, {}, {"imei"});
  add("fr_nir_rare", "FR_NIR", "[3478][0-9]{4}(?:[0-9]{2}|2[AB])[0-9]{8}", 1.0, "fr_nir",
      nir_context, true, {}, {"imei"});
  // The machine-readable zone of a passport (TD3), identity card (TD1, TD2) or visa: a name
  // line and a data line, a TD1's three lines, or a data line alone; the validator checks the
  // lines' widths and check digits. Lines break as in a file or as "\n" (or "\r\n") in a JSON
  // string, may end in spaces, be indented, and have one blank line between them (OCR output).
  // Group 1: the zone, which no character of its alphabet precedes or follows ('<' is no word
  // byte). Its lines are left loose (the widths are the validator's) to keep the pattern small.
  const std::string line_end = "[ \\t]*(?:\\r?\\n|\\\\r\\\\n|\\\\n)";
  const std::string mrz_break = absl::StrCat(line_end, "(?:", line_end, ")?[ \\t]*");
  add("identity_document_mrz", "IDENTITY_DOCUMENT_MRZ",
      absl::StrCat("(?m:^|[^A-Za-z0-9<])(",                                          //
                   "[ACIPV][A-Z<]*<[A-Z<]*", mrz_break, "[A-Z0-9<]+",                // TD2, TD3
                   "|[ACI][A-Z<]{4}[A-Z0-9<]+", mrz_break, "[A-Z0-9<]+", mrz_break,  // TD1
                   "[A-Z<]*<[A-Z<]*",                                                //
                   "|[A-Z0-9<]+[0-9][A-Z<]{3}[0-9]{7}[A-Z0-9<]+",                    // Data
                   ")(?m:[^A-Za-z0-9<]|$)"),
      1.0, "identity_document_mrz");
  // A member state's prefix and its national part, whose characters single spaces or dots may
  // separate ("DE 123 456 789", "BE 0123.456.789"): the validator checks each state's format.
  add("eu_vat_number", "EU_VAT_NUMBER",
      "(?:AT|BE|CY|DE|DK|EE|EL|ES|FI|FR|GR|HR|HU|IE|IT|LT|LU|MT|NL|PL|PT|RO|SE|SI|SK) ?"
      "[0-9A-Z](?:[ .]?[0-9A-Z]){5,11}",
      1.0, "eu_vat_number", {}, false, {"isin ", "isin: ", "isin:"});
  // Letters beyond ASCII: Latin-1 and Latin Extended letters, combining marks, Greek and
  // Cyrillic (not Han, Kana..., which run into the words before an address in text without
  // spaces).
  const std::string letters =
      "A-Za-z\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{24F}\\x{300}-\\x{36F}"
      "\\x{370}-\\x{3FF}\\x{400}-\\x{4FF}";
  const std::string local = absl::StrCat("[0-9_%+", letters, "-]+");
  const std::string label =
      absl::StrCat("[0-9", letters, "](?:[0-9", letters, "-]*[0-9", letters, "])?");
  // Not a URL's user ("ssh://git@github.com/org/repo", "https://jane@bitbucket.org/",
  // "https://ines.mueller@dev.azure.com/": nor any part of it).
  add("email_address", "EMAIL_ADDRESS",
      absl::StrCat(local, "(?:\\.", local, ")*@(?:", label, "\\.)+[", letters, "]{2,}"), 1.0,
      "email", {}, false, {"://"});
  // Two letters and seven digits with a check digit: one part number in ten passes, so only
  // with a context word (as UK_NHS).
  add("dea_number", "MEDICAL_LICENSE", "[ABCDEFGHJKLMPRSTX][A-Z9][0-9]{7}", 0.85, "dea",
      {"dea", "prescriber", "registration", "license", "licence"}, true);
  // Ranges only: formatted numbers score below the check-digit types.
  add("us_ssn", "US_SSN", "[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4}", 0.85, "us_ssn",
      kSsnContext);
  add("us_ssn_bare", "US_SSN", "[0-9]{9}", 0.85, "us_ssn", kSsnContext, true);
  add("us_itin", "US_ITIN", "9[0-9]{2}-[0-9]{2}-[0-9]{4}|9[0-9]{2} [0-9]{2} [0-9]{4}", 0.85,
      "us_itin", {"itin"});
  add("us_itin_bare", "US_ITIN", "9[0-9]{8}", 0.85, "us_itin", {"itin"}, true);
  // Four-part version numbers are dotted quads too: not after a version word or a heading.
  add("ipv4_address", "IP_ADDRESS", "[0-9]{1,3}(?:\\.[0-9]{1,3}){3}", 0.85, "ipv4",
      {"ip", "address", "server", "host"}, false,
      {"version ", "version: ", "ver ", "ver. ", "v", "v.", "v ", "release ", "released ",
       "section ", "build ", "# ", "==", "~=", ">=", "<="},
      {"version"});
  add("ipv6_address", "IP_ADDRESS",
      "[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){1,6}:[0-9]{1,3}(?:\\.[0-9]{1,3}){3}"
      "|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}",
      0.85, "ipv6", {"ip", "address", "server", "host"});
  add("phone_number_nanp", "PHONE_NUMBER",
      "(?:\\+1[ .-]?|1[ .-])?"
      "(?:\\([0-9]{3}\\) ?[0-9]{3}[ .-][0-9]{4}|[0-9]{3}-[0-9]{3}-[0-9]{4}"
      "|[0-9]{3}\\.[0-9]{3}\\.[0-9]{4}|[0-9]{3} [0-9]{3} [0-9]{4})"
      "|\\+1[0-9]{10}",
      0.75, "nanp_phone", kPhoneContext);
  // Not after '+': "+2104091268" is no number anyone dials.
  add("phone_number_bare", "PHONE_NUMBER", "[0-9]{10}", 0.75, "nanp_phone", kPhoneContext, true,
      {"+"});
  add("phone_number_international", "PHONE_NUMBER",
      "\\+[0-9]{1,3}(?:[ -][0-9]{1,12}){1,6}|\\+[0-9]{8,15}", 0.75, "international_phone",
      kPhoneContext);
  // Groups apart by dots, or after a written trunk prefix ("+44 (0)20 7946 0958"); a
  // recognizer of its own, since each pattern has its share of the memory budget.
  add("phone_number_international_written", "PHONE_NUMBER",
      "\\+[0-9]{1,3}(?:\\.[0-9]{1,12}){1,6}|\\+[0-9]{1,3} \\(0\\) ?[0-9]{1,12}(?:[ "
      "-][0-9]{1,12}){0,5}",
      0.75, "international_phone", kPhoneContext);
  // With the trunk prefix and no country code ("020 7946 0958", "0171 2345678", "06 12 34 56
  // 78"): only after a phone word, since order and account numbers look the same; never after
  // '+', where a country code belongs.
  add("phone_number_national", "PHONE_NUMBER",
      "0[1-9][0-9]{0,4}(?:[ /-][0-9]{2,8}){1,4}|0[1-9](?:\\.[0-9]{2}){4}|0[1-9][0-9]{8,10}", 0.75,
      "national_phone", kNationalPhoneContext, true, {"+"});
  // Nine digits without a trunk prefix, in groups, as Spain and Portugal write them ("612 345
  // 678", "912 34 56 78"): only after a phone word, as above. The \b keeps the set from
  // reporting the start of a longer number ("212-555-0123"), whose extraction would look for
  // the context word in the whole text.
  add("phone_number_national_nine_digits", "PHONE_NUMBER",
      "[2-9][0-9]{2}(?: [0-9]{3} [0-9]{3}|-[0-9]{3}-[0-9]{3}| [0-9]{2} [0-9]{2} [0-9]{2}"
      "|-[0-9]{2}-[0-9]{2}-[0-9]{2})\\b",
      0.75, "nine_digit_phone", kNationalPhoneContext, true, {"+"});
  return r;
}

std::vector<RecognizerSpec> NamedSecretRecognizers() {
  // A name's end, any case: one of `names`.
  auto ends_in = [](const auto& names) {
    std::vector<std::string> quoted;
    for (absl::string_view n : names)
      quoted.push_back(RE2::QuoteMeta(re2::StringPiece(n.data(), n.size())));
    return absl::StrCat("(?i:", absl::StrJoin(quoted, "|"), ")");
  };
  // A name ending in kSecretSettingWord where it starts a word: bytes of the class
  // `name_byte`, then either one of `non_letter` (its bytes that are no ASCII letter) and the
  // word in any case, or "Pass" after a lowercase letter.
  const std::string word =
      RE2::QuoteMeta(re2::StringPiece(kSecretSettingWord.data(), kSecretSettingWord.size()));
  const std::string camel_word =
      absl::StrCat("(?-i:[a-z]", absl::AsciiStrToUpper(word.substr(0, 1)), word.substr(1), ")");
  auto word_in = [&](absl::string_view name_byte, absl::string_view non_letter) {
    return absl::StrCat("(?:(?:", name_byte, "*", non_letter, ")?(?i:", word, ")|", name_byte, "*",
                        camel_word, ")");
  };
  // The setting's name's end, then its separator: an optional closing quote (and a
  // subscript's ']': `env["API_KEY"] = ...`) and one of `assignment`; or, when `argument`, a
  // closing quote and ',' (a call's two arguments: `Set("Authorization", "...")`).
  auto separator = [](bool argument, absl::string_view assignment = "(?:=>|:=|[:=])") {
    return absl::StrCat(
        argument ? "[\"'][ \t]*," : absl::StrCat("\\\\?[\"']?\\]?[ \t]*", assignment), "[ \t]*");
  };
  auto setting = [&](const auto& names, bool argument,
                     absl::string_view assignment = "(?:=>|:=|[:=])") {
    return ends_in(names) + separator(argument, assignment);
  };
  // A typed declaration's type and '=' after the name's ':' (`DB_PASSWORD: &str = "..."`,
  // `apiKey: string = "..."`, `password: str = "..."`): a quoted value follows.
  const std::string typed = "(?:=>|:=|:[ \t]*[&'A-Za-z_][A-Za-z0-9_<>&'\\[\\].:]*[ \t]*=|[:=])";
  const std::string names = absl::StrCat("(?:", ends_in(kSecretSettingNames), "|",
                                         ends_in(kSecretKeyNames), "[_-]?(?i:key))");
  // kSecretSettingWord as a setting's name: the byte before it is matched (or the text starts).
  const std::string word_name = absl::StrCat("(?:(?:^|[^A-Za-z])(?i:", word, ")|", camel_word, ")");
  // The prefixes of a quoted value other than a setting's: an XML attribute pair
  // (`<add key="DbPassword" value=`, `<property name="password" value=`) and a command line's
  // long option and spaces (`--password `, at a line's start or after a space or tab).
  auto attribute = [](absl::string_view name) {
    return absl::StrCat("\\b(?i:key|name)=[\"']", name, "[\"'][ \t]+(?i:value)=");
  };
  auto option = [](absl::string_view name) {
    return absl::StrCat("(?:(?m:^)|[ \t])--", name, "[ \t]+");
  };
  // An XML name (an element's, or an attribute's value naming a setting).
  const std::string xml_names = absl::StrCat("(?:[A-Za-z0-9_.:-]*", names, ")");
  const std::string xml_word = word_in("[A-Za-z0-9_.:-]", "[0-9_.:-]");
  const std::string option_names = absl::StrCat("(?:[A-Za-z0-9_.-]*", names, ")");
  const std::string option_word = word_in("[A-Za-z0-9_.-]", "[0-9_.-]");
  const std::string any_names = absl::StrCat("(?:", names, "|", word_name, ")");
  // An Authorization header's name, separator, a list's '[' or '{' (Go's http.Header{...},
  // "Authorization": ["..."]) and opening quote (required after ','); the scheme follows.
  const std::string header =
      absl::StrCat("(?:", setting(kCredentialHeaderNames, false), "(?:[\\[{][ \t]*)?[\"'`]?|",
                   setting(kCredentialHeaderNames, true), "[\"'`])");
  // A quoted value: in quotes or backquotes (a JavaScript template literal), with Python's
  // string prefixes (b"...", r'...', u"..."), up to the quote that opened it (the other quotes
  // and escaped characters, "a\\"b'c", are part of it); or in escaped quotes, as JSON in a
  // string writes it (\"...\"). One capture group for each.
  auto quoted_in = [](absl::string_view quote) {
    return absl::StrCat(quote, "((?:[^", quote, "\\\\\\s]|\\\\\\S)+)", quote);
  };
  const std::string quoted_value =
      absl::StrCat("(?:(?:[rR][bB]?|[bB][rR]?|[uU])?(?:", quoted_in("\""), "|", quoted_in("'"), "|",
                   quoted_in("`"), ")|\\\\\"((?:[^\"\\\\\\s]|\\\\[^\"\\s])+)\\\\\")");
  // An unquoted value: it ends at whitespace and at code's and lists' punctuation, and holds
  // quotes only between its other bytes, three or more before the first (YAML's
  // `AYq5m3J'tuvFTV9!`; `b"...` and `\"...` start quoted values).
  const std::string unquoted_byte = "[^\\s\"'`,;(){}\\[\\]<>]";
  const std::string unquoted_value = absl::StrCat("(", unquoted_byte, "{3,}(?:[\"'`]+",
                                                  unquoted_byte, "+)+|", unquoted_byte, "+)");
  // An XML element's text, up to the closing tag.
  const std::string element_value = "([^<\\s]+)</";
  // A '.' ends a sentence, not the credentials.
  const std::string credentials = "[ \t]+([A-Za-z0-9._~+/-]*[A-Za-z0-9_~+/-]=*)";
  return {
      RecognizerSpec{.name = "encoded_credentials",
                     .entity_type = "SECRET",
                     .pattern = absl::StrCat("(?:", setting(kEncodedCredentialNames, false, "[:=]"),
                                             "[\"']?|", setting(kEncodedCredentialNames, true),
                                             "[\"'])([A-Za-z0-9+/]+=*)"),
                     .score = 0.8,
                     .validator = "basic_credentials"},
      RecognizerSpec{.name = "authorization_basic",
                     .entity_type = "SECRET",
                     .pattern = header + "(?i:basic|apikey)" + credentials,
                     .score = 0.8,
                     .validator = "basic_credentials"},
      RecognizerSpec{.name = "authorization_bearer",
                     .entity_type = "SECRET",
                     .pattern = header + "(?i:bearer|token)" + credentials,
                     .score = 0.8,
                     .validator = "bearer_token"},
      RecognizerSpec{.name = "named_secret_quoted",
                     .entity_type = "SECRET",
                     .pattern = names + separator(false, typed) + quoted_value,
                     .score = 0.8,
                     .validator = "secret_value"},
      RecognizerSpec{.name = "named_secret_attribute",
                     .entity_type = "SECRET",
                     .pattern = attribute(xml_names) + quoted_value,
                     .score = 0.8,
                     .validator = "secret_value"},
      RecognizerSpec{.name = "named_secret_option_quoted",
                     .entity_type = "SECRET",
                     .pattern = option(option_names) + quoted_value,
                     .score = 0.8,
                     .validator = "secret_value"},
      // As above for names ending in kSecretSettingWord, whose values must hold a digit or a
      // symbol.
      RecognizerSpec{
          .name = "named_secret_word_quoted",
          .entity_type = "SECRET",
          .pattern = absl::StrCat("(?:", word_name, separator(false, typed), "|",
                                  attribute(xml_word), "|", option(option_word), ")", quoted_value),
          .score = 0.8,
          .validator = "unquoted_secret_value"},
      RecognizerSpec{.name = "named_secret",
                     .entity_type = "SECRET",
                     .pattern = any_names + separator(false) + unquoted_value,
                     .score = 0.8,
                     .validator = "unquoted_secret_value"},
      RecognizerSpec{.name = "named_secret_option",
                     .entity_type = "SECRET",
                     .pattern = option(absl::StrCat("(?:", option_names, "|", option_word, ")")) +
                                unquoted_value,
                     .score = 0.8,
                     .validator = "unquoted_secret_value"},
      // A call's arguments may also be a list of names ("password", "api_key", "token"): the
      // value must hold a digit or a symbol, as an unquoted one.
      RecognizerSpec{.name = "named_secret_argument",
                     .entity_type = "SECRET",
                     .pattern = any_names + separator(true) + quoted_value,
                     .score = 0.8,
                     .validator = "unquoted_secret_value"},
      RecognizerSpec{.name = "named_secret_element",
                     .entity_type = "SECRET",
                     .pattern = absl::StrCat("<", xml_names, ">", element_value),
                     .score = 0.8,
                     .validator = "secret_value"},
      RecognizerSpec{.name = "named_secret_word_element",
                     .entity_type = "SECRET",
                     .pattern = absl::StrCat("<", xml_word, ">", element_value),
                     .score = 0.8,
                     .validator = "unquoted_secret_value"},
      // curl's user option: "-u user:password", "--user 'user:password'", "--user=user:password".
      RecognizerSpec{.name = "command_line_user",
                     .entity_type = "SECRET",
                     .pattern = "(?:(?m:^)|[ \t])(?:-u[ \t]+|--user(?:[ \t]+|=))[\"']?[^\\s:\"']+:"
                                "((?:[^\\s\"'/]|/[^\\s\"'/])[^\\s\"']*)",
                     .score = 0.8,
                     .validator = "unquoted_secret_value"},
  };
}

namespace {

// Whether `regex` matches empty text somewhere: an empty match anchored at each position of
// probes that put every kind of neighbour (none, a word byte, a digit, a space, a newline,
// punctuation) on either side, as \b, ^, $ and optional parts depend on them.
bool MatchesEmptyText(const RE2& regex) {
  for (absl::string_view probe : {absl::string_view(""), absl::string_view(" a\n0#-Z_ ")}) {
    const re2::StringPiece text(probe.data(), probe.size());
    for (size_t pos = 0; pos <= probe.size(); ++pos) {
      if (regex.Match(text, pos, pos, RE2::ANCHOR_BOTH, nullptr, 0)) return true;
    }
  }
  return false;
}

}  // namespace

absl::Status CheckRecognizerSpec(const RecognizerSpec& spec) {
  if (!IsRecognizerName(spec.name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("name: '", spec.name, "' is not 1 to ", kMaxNameBytes, " of [A-Za-z0-9_.-]"));
  }
  if (!IsEntityTypeName(spec.entity_type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("entity_type: '", spec.entity_type, "' is not [A-Z][A-Z0-9_]*"));
  }
  if (!(spec.score >= 0.0 && spec.score <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("score: ", spec.score, " is outside [0, 1]"));
  }
  if (!spec.validator.empty() && FindValidator(spec.validator) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("validator: unknown validator '", spec.validator,
                     "' (known: ", absl::StrJoin(ValidatorNames(), ", "), ")"));
  }
  if (spec.context_words.size() > kMaxContextWords) {
    return absl::InvalidArgumentError(
        absl::StrCat("context: more than ", kMaxContextWords, " words"));
  }
  for (const std::string& word : spec.context_words) {
    if (word.empty() || word.size() > kMaxContextWordBytes || HasUpper(word)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "context: '", word, "' is not 1 to ", kMaxContextWordBytes, " bytes of lowercase text"));
    }
  }
  if (spec.context_required && spec.context_words.empty()) {
    return absl::InvalidArgumentError("context_required: true but there are no context words");
  }
  for (const std::string& prefix : spec.excluded_prefixes) {
    if (prefix.empty()) return absl::InvalidArgumentError("excluded_prefixes: an empty prefix");
  }
  if (spec.excluded_context.size() > kMaxContextWords) {
    return absl::InvalidArgumentError(
        absl::StrCat("excluded_context: more than ", kMaxContextWords, " words"));
  }
  for (const std::string& word : spec.excluded_context) {
    if (word.empty() || word.size() > kMaxContextWordBytes || HasUpper(word)) {
      return absl::InvalidArgumentError(absl::StrCat("excluded_context: '", word, "' is not 1 to ",
                                                     kMaxContextWordBytes,
                                                     " bytes of lowercase text"));
    }
  }
  if (spec.pattern.empty()) return absl::InvalidArgumentError("pattern: empty");
  RE2::Options options;
  options.set_log_errors(false);
  const RE2 regex(spec.pattern, options);
  // A pattern too large to compile here is judged against the memory budget by the detector.
  if (!regex.ok() && regex.error_code() != RE2::ErrorPatternTooLarge) {
    return absl::InvalidArgumentError(
        absl::StrCat("pattern: invalid RE2 pattern '", spec.pattern, "': ", regex.error()));
  }
  if (regex.ok() && MatchesEmptyText(regex)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pattern: '", spec.pattern,
        "' matches empty text (a finding is never empty); make every part optional but one "
        "(EMP-[0-9]+, not EMP-?[0-9]*)"));
  }
  return absl::OkStatus();
}

namespace {

using Node = YAML::Node;

YAML::Mark MarkOf(const Node& node) {
  try {
    return node.Mark();
  } catch (const YAML::Exception&) {
    return YAML::Mark::null_mark();
  }
}

std::string LinePrefix(const YAML::Mark& mark) { return YamlLinePrefix(mark); }

absl::Status Invalid(const Node& node, absl::string_view where, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(LinePrefix(MarkOf(node)), where, ": ", problem));
}

absl::StatusOr<std::string> ScalarOf(const Node& node, absl::string_view where,
                                     absl::string_view field) {
  if (!node.IsScalar()) {
    return Invalid(node, where, absl::StrCat(field, ": must be a scalar"));
  }
  return node.Scalar();
}

// One entry of the `recognizers` list into `spec`; errors name `where`.
absl::Status ParseEntry(const Node& entry, const std::string& where, RecognizerSpec& spec) {
  if (!entry.IsMap()) return Invalid(entry, where, "must be a map");
  absl::flat_hash_set<std::string> seen;
  bool has_name = false, has_type = false, has_pattern = false;
  for (const auto& item : entry) {
    const Node& key = item.first;
    const Node& value = item.second;
    if (!key.IsScalar()) return Invalid(key, where, "a key must be a scalar");
    const std::string field = key.Scalar();
    if (!seen.insert(field).second) {
      return Invalid(key, where, absl::StrCat(field, ": given twice"));
    }
    if (field == "name") {
      absl::StatusOr<std::string> s = ScalarOf(value, where, field);
      if (!s.ok()) return s.status();
      spec.name = *s;
      has_name = true;
    } else if (field == "entity_type") {
      absl::StatusOr<std::string> s = ScalarOf(value, where, field);
      if (!s.ok()) return s.status();
      spec.entity_type = *s;
      has_type = true;
    } else if (field == "pattern") {
      absl::StatusOr<std::string> s = ScalarOf(value, where, field);
      if (!s.ok()) return s.status();
      spec.pattern = *s;
      has_pattern = true;
    } else if (field == "score") {
      absl::StatusOr<std::string> s = ScalarOf(value, where, field);
      if (!s.ok()) return s.status();
      if (!absl::SimpleAtod(*s, &spec.score)) {
        return Invalid(value, where, absl::StrCat("score: '", *s, "' is not a number"));
      }
    } else if (field == "validator") {
      absl::StatusOr<std::string> s = ScalarOf(value, where, field);
      if (!s.ok()) return s.status();
      spec.validator = *s;
    } else if (field == "context") {
      if (!value.IsSequence()) return Invalid(value, where, "context: must be a list");
      for (const Node& word : value) {
        absl::StatusOr<std::string> s = ScalarOf(word, where, field);
        if (!s.ok()) return s.status();
        spec.context_words.push_back(absl::AsciiStrToLower(*s));
      }
    } else if (field == "context_required") {
      absl::StatusOr<std::string> s = ScalarOf(value, where, field);
      if (!s.ok()) return s.status();
      if (*s == "true") {
        spec.context_required = true;
      } else if (*s == "false") {
        spec.context_required = false;
      } else {
        return Invalid(value, where, absl::StrCat("context_required: '", *s, "' is not a boolean"));
      }
    } else {
      return Invalid(key, where,
                     absl::StrCat("unknown key '", field,
                                  "' (known: name, entity_type, pattern, score, validator, "
                                  "context, context_required)"));
    }
  }
  if (!has_name) return Invalid(entry, where, "name: missing");
  if (!has_type) return Invalid(entry, where, "entity_type: missing");
  if (!has_pattern) return Invalid(entry, where, "pattern: missing");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RecognizerSpec>> ParseDocument(const Node& root) {
  std::vector<RecognizerSpec> specs;
  if (root.IsNull()) return specs;
  if (!root.IsMap()) return Invalid(root, "the document", "must be a map with key 'recognizers'");
  Node list;
  for (const auto& item : root) {
    if (!item.first.IsScalar() || item.first.Scalar() != "recognizers") {
      return Invalid(
          item.first, "the document",
          absl::StrCat("unknown key '", item.first.IsScalar() ? item.first.Scalar() : "?",
                       "' (known: recognizers)"));
    }
    list = item.second;
  }
  if (!list.IsDefined() || list.IsNull()) return specs;
  if (!list.IsSequence()) return Invalid(list, "recognizers", "must be a list");
  absl::flat_hash_set<std::string> names;
  for (const RecognizerSpec& builtin : BuiltinRecognizers()) names.insert(builtin.name);
  for (size_t i = 0; i < list.size(); ++i) {
    const Node entry = list[i];
    RecognizerSpec spec;
    std::string where = absl::StrCat("recognizers[", i, "]");
    if (absl::Status parsed = ParseEntry(entry, where, spec); !parsed.ok()) return parsed;
    where = absl::StrCat(where, " (", spec.name, ")");
    if (absl::Status checked = CheckRecognizerSpec(spec); !checked.ok()) {
      return Invalid(entry, where, checked.message());
    }
    if (!names.insert(spec.name).second) {
      return Invalid(entry, where,
                     absl::StrCat("name: duplicate name '", spec.name,
                                  "' (another recognizer or a built-in has it)"));
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

}  // namespace

absl::StatusOr<std::vector<RecognizerSpec>> ParseRecognizersYaml(absl::string_view yaml) {
  absl::StatusOr<Node> root = LoadSingleYamlDocument(yaml);
  if (!root.ok()) return root.status();
  try {
    return ParseDocument(*root);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(LinePrefix(e.mark), e.msg));
  }
}

}  // namespace policy::pii
