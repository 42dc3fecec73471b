#!/usr/bin/env python3
"""Generator of the labelled PII test corpus that measures the pii service's detection engine.

    /usr/bin/python3 tools/pii_corpus/generate.py --seed 1 --output FILE [--per-format N] [--stats]

--per-format N (default 60) is the number of positive records per format (a type with fewer
than four formats gets 4N records split over them) and of hard-negative records per
hard-negative variant; --stats prints the records and labels per type and format.

Standard library only. Writes prompt-like texts with the exact byte span of every piece of
personal data and every secret in them, plus hard-negative texts that contain none, so that
an evaluator can report precision and recall per entity type. The file is plain bytes, one
record after another (no JSON, so the C++ evaluator needs no JSON library):

    record <id> <positive|hard_negative>
    text <N>
    <exactly N bytes of UTF-8 text, newlines allowed>
    entity <TYPE> <begin> <end>        zero or more lines, byte offsets [begin, end)
    end

What the generator guarantees. Every record is checked before it is written (self_check);
a record that fails is drawn again, and a format that keeps failing stops the run with the
record and its problems.
  * Determinism: the same --seed and --per-format give the same bytes (one
    random.Random(seed) threaded through; no clock, no global random state, no set order).
  * Real algorithms: cards carry real issuer prefixes and lengths and a Luhn check digit;
    IBANs the registry length and BBAN structure of their country and computed mod-97
    check digits; SSNs and ITINs lie in the valid ranges; NANP numbers have valid area codes
    and exchanges; international numbers a known country calling code and 7-12 national
    digits; NHS numbers their mod-11 check digit; Bitcoin addresses a base58check or
    bech32/bech32m checksum; DEA numbers their check digit; secrets the exact shape of
    their issuer's format, private keys a DER-like base64 body over several lines, JWTs the
    base64url of a real JSON header with "alg" and of a JSON payload of claims and an HMAC or
    a signature of their algorithm's length (or none, for "alg":"none"), Azure storage keys the
    base64 of 64 bytes after "AccountKey=" in a connection string; a SECRET is the value of a
    setting named as a secret (.env, docker-compose and Kubernetes YAML, Java properties, JSON,
    Python, PHP, HTTP headers, command-line flags, JS objects, INI/TOML), a random password or a
    hex API key that is no other type's value; a URL's password is never a stand-in for one
    ("${VAR}", "$VAR", "***", "password"), and a token of a known type may be a URL's user with
    no password ("https://ghp_...@github.com/..."); a SECRET is also an Authorization header's
    credentials (Basic: the base64 of "user:password", never a stand-in; Bearer: opaque hex, base62
    and PASETO-like tokens; Token: 40 hex digits), and a value of a token type's shape that is not
    of it ("gsk_" and 51, "dckr_oat_...", "sharedaccesskey=...") is a setting's SECRET. The late
    night's secrets: Groq keys (with "WGdyb3FY" inside, as Groq's), xAI keys, Google OAuth client
    secrets (in client_secret.json beside a real-shaped client id) and access tokens (a user's
    "ya29.a0..." and a service account's dotted "ya29.c.c0..."), PyPI tokens as the base64url of a
    v2 macaroon of pypi.org or test.pypi.org (location, UUID, scope caveat, signature), Docker Hub
    tokens, webhook signing secrets (Stripe's base62 and hex, Svix's unpadded base64), Telegram bot
    tokens (in Bot API URLs with their "bot"), Slack incoming, workflow and trigger webhook URLs,
    Slack app-level tokens, Azure Service Bus, Event Hubs and IoT Hub shared access keys after
    "SharedAccessKey=", and shared access signatures (portal-style URLs, account SAS tokens, Service
    Bus SAS) escaped as Azure escapes them; no piece of such a token (a bot id, a digit group) is
    valid as another type on its own, nor does it hold one of SECRET's placeholder words. A SECRET
    is also the second of a call's two quoted arguments after a secret's name, and the value assigned
    to a subscript of one (os.environ.setdefault("DB_PASSWORD", "..."), req.Header.Set("Authorization",
    "Bearer ..."), $cfg['Servers'][$i]['password'] = '...', in Go, Java, Kotlin, Rust, Python,
    JavaScript, PHP, Ruby, C# and bash); Discord bot tokens are a snowflake's unpadded base64url, a
    timestamp and an HMAC of 27 or 38 characters (.env files, discord.py, discord.js and serenity
    code, "Authorization: Bot ..." headers, config.json). /tmp/secrets_spec6.md: a SECRET is also
    the value after ":=" (Go, Pascal, Makefiles), of a name ending in an auth, signing, encryption or
    master key or in a "pass" that starts a word ("DB_PASS", "smtpPass", never "bypass"; its value
    holds a digit or a symbol even quoted), of an XML element (Maven's settings.xml, SOAP headers) or
    key/name and value attribute pair (.NET web.config, Spring beans), of a long option and a space
    (shell, Dockerfile RUN lines, CI run: steps) and curl's -u/--user password; Jasypt's ENC(...) and
    "changeit" are stand-ins; Discord webhook URLs (DISCORD_WEBHOOK_URL: discord.com, discordapp.com,
    PTB and Canary hosts, versioned paths, a 17-20-digit id and a 60-80-character token, "?wait=true"
    or "/github" after it), with the hard negatives the specification lists and more of its rules.
    /tmp/secrets_spec7.md: a quoted value runs to the quote that opened it (a double, a single or a
    back quote; the other quotes and backslash escapes inside are part of it), a value in escaped
    quotes follows a name and '\\"' (a JSON body logged in a JSON string, Kafka's JAAS line in
    Java), an Authorization value may open with a template literal's backquote; no SECRET is a
    version, an unquoted dotted path in code, a path of names, a crypt password hash, a label in
    another script or "geheimnis", "secreto", "segreto"; a URL's password "%s", "%v" or "{}" is no
    URL_CREDENTIALS (package manifests, code, kubectl and log lines, i18n catalogues and format
    strings as its hard negatives). The
    European national identifiers follow their rules (UK National Insurance number prefixes
    and suffixes; the mod-23 letter of Spanish DNI/NIF and NIE numbers; the Italian codice
    fiscale's month letters, day (+40 for women), omocodia letters and odd/even check letter;
    a PESEL's century-coded date and weighted check digit; a Finnish henkilötunnus's date,
    century sign, individual number 002-899 and mod-31 check character; a French NIR's sex
    digit, INSEE month, department (Corsica's 2A/2B) and mod-97 key; a Dutch BSN's
    elfproef; a Swedish personnummer's or samordningsnummer's date and Luhn digit; a German
    tax identification number's one repeated digit and ISO 7064 MOD 11,10 check digit; a German
    health insurance number's (KVNR's) letter and weighted check digit; a Belgian national
    number's date (BIS months + 20 or + 40, unknown months and days 0), serial and mod-97 check
    digits of its century; an Irish PPSN's mod-23 check letter and second letter; a Danish CPR
    number's date in the century of its seventh digit; an Austrian social insurance number's
    weighted mod-11 check digit; a Portuguese tax number's personal prefix and mod-11 check
    digit), in each written form of the specification. The fifth batch's: an identity document's
    machine-readable zone (ICAO Doc 9303) of a passport (TD3), a TD2 card, a visa (MRV-A, MRV-B)
    or an identity card (TD1, a Belgian eID's long document number too), or a lone data line,
    with the 7-3-1 check digits of its fields, real dates and the composite check, its lines
    broken by "\n", "\r\n" or a JSON string's "\n", indented or not; EU VAT numbers of every
    claimed prefix (EL and GR for Greece), each national part's check as python-stdnum 1.18
    computes it (with the specification's narrower claims), compact, with a space after the
    prefix, in their country's groups or with dots, sole traders' too (a DNI or an NIE after
    "ES", a Swedish personnummer and "01", a Dutch btw-id).
  * Labels are exact: the span is the value itself, it passes this module's validator for
    its type, a context word lies within the 40 bytes before it when its format needs one
    (bare SSN/ITIN/NANP numbers, NHS numbers, compact National Insurance numbers, PESELs,
    BSNs, personnummer, German tax ids and KVNRs, Belgian national numbers but in the eID
    card's form, PPSNs, CPR numbers, Austrian social insurance numbers and Portuguese tax
    numbers), it does not stand right after '+' (where a value of the fourth batch's types is
    a phone number's digits), an MRZ has no byte of [A-Za-z0-9<] beside it and a VAT number no
    byte of [A-Za-z0-9_] (nor a space or dot and a digit or capital after it),
    no context word of its type lies in the 96 bytes around it when its format promises
    none (the "no-context" formats of the national identifiers), and neither neighbouring
    byte continues it (no adjacent digit, letter or group separator that would make a longer
    candidate; beside a value written in space-separated groups, the engine's grouping rule
    decides, so that the neighbour records can put expiry dates, CVVs, counts and amounts
    there). Offsets are on UTF-8 character boundaries, sorted and non-overlapping.
  * Nothing else is an entity: a deliberately generous scanner (every candidate shape of
    every type, context words matched as substrings anywhere in the 96 bytes before a
    number or after its start; no record is laid out as a table, whose column headers the
    engine also takes for context) finds no valid entity in the text other than the labels
    themselves, an IPv4 address embedded in a labelled IPv6 address, the phone-number reading of a
    labelled NHS number, and whatever lies inside a labelled URL_CREDENTIALS value (the e-mail
    reading of its "password@host", a GitLab token that is its password), and the generous reading
    of the DNI glued to "ES" in a labelled VAT number ("ES12345678Z": the VAT number, no ES_NIF,
    which the strict scanner never finds after a letter); a zone's data line, valid on its own
    too, is no finding beside its zone (it is not on its own); the Finnish reading
    of a value right after a Swedish context word is none (those words are excluded context for
    the Finnish type); a setting's SECRET reading of a token of a score-1.0 type is none (the
    token wins the overlap and is the label), and a SECRET reads the same in the text and its
    folded form. No label has a rival context word near it (an NHS number with a phone
    word, a bare SSN with "itin" or "bsn", a BSN with "ssn", a personnummer with "nhs", a phone
    word or a Finnish word, a Finnish code with a Swedish word, a German tax id with "pesel" or
    a phone word, a PESEL with a tax id word, a KVNR with a DEA word, a Belgian national number
    with "pesel", a tax id word or a phone word, a CPR number with a Swedish, Finnish, NHS,
    phone or Austrian word, a Portuguese tax number with "ssn", "bsn" or a phone word, ...), so
    every label has one right answer; and no hard negative of one national identifier is a
    valid value of another (no PESEL, German tax id, BSN, personnummer or Finnish negative
    that is a Belgian, Portuguese, Danish or Austrian number).
  * Hard negatives (cards failing Luhn or without an issuer prefix, IBANs with a wrong
    check or length, SSNs out of range, dates, times, order and invoice numbers, version
    strings, UUIDs, git SHAs, prices, ZIP codes, ISBNs, percentages, plain integers, bare
    9/10-digit numbers, national identifiers breaking one of their rules, secrets breaking
    their issuer's format (JWTs whose header has no "alg" or a length of 1 mod 4, of two or
    four segments or whose payload is no "eyJ...", publishable Stripe keys, npm environment
    names, "hf_" identifiers, a bare Azure key without "AccountKey=", keys of a wrong length,
    documentation placeholders, of the older token types too: "sk-XXXX...", "AKIAXXXXXXXXXXXXXXXX",
    "ghp_xxx..."), the late night's secrets of the wrong length, prefix or location, their
    identifiers ("gsk_client", "xai-sdk", "pypi-upload", "whsec_test", "dckr_oat_..."), glued bot
    tokens ("robot12345678:AA..."), Slack's documentation webhook, a bare shared access key,
    "SharedAccessKeyName=..." alone, sig= with no '?' or '&' or of 64 hex digits, Authorization
    headers without credentials ("Bearer $TOKEN", "Bearer YOUR_API_TOKEN", "Basic dXNlcm5hbWU=",
    "Basic dXNlcjpwYXNzd29yZA==", "Negotiate ...", "WWW-Authenticate: Bearer realm=..."),
    settings whose value is no secret ("password=password", "token: self.token",
    "PASSWORD=${DB_PASSWORD}", "api_key=REDACTED", "max_tokens: 128000", "if password == ...",
    five bytes, digits only), secrets' names in calls and subscripts that give no value (empty, a
    stand-in, a scheme and no credentials, unquoted, one argument, a comparison, too short, a
    placeholder, lists of field names such as ("password", "api_key", "token")), Discord bot tokens
    breaking one rule (a user id of letters, of 16 or 21 digits or starting with 0, a JWT-like
    header, a timestamp of 5 or 7, an HMAC of 26 or 39, no digit, glued, a placeholder), URLs
    whose password is a stand-in ("${CI_JOB_TOKEN}", "$(REDIS_PASSWORD)", "<token>", "********",
    "password"), a URL's user right after "://" and
    the code hosts' "git@" (no e-mail addresses), and a few more) fail every validator where they
    stand, and
    hard-negative records contain no context word at all, but for the phone words of a bot
    token's negative (the "tel" of "api.telegram.org"; its ids are valid as no type), for the context words of a
    national identifier's type in the sentence of a value that breaks that type's rules
    ("PESEL 44051401358", "NINO QQ123456C": the word does not rescue it), and for
    "personnummer" before a valid CPR number that is no valid personnummer (nothing: the word
    is Swedish). Negatives that are negative only for want of a context word (bare numbers, a
    compact National Insurance number, a PESEL, a BSN, a personnummer, a German tax id, a KVNR,
    a Belgian national number as typed, a PPSN, a CPR number, an Austrian or a Portuguese
    number) never share a record with one. The fourth batch's negatives: wrong check digits or
    letters, months 13-19 and 33-39, days 32, 30 February and 29 February of other years,
    serials 000 and 999, PPSNs of six or eight digits, second letters never issued and
    companies' "...H", CPR dates that do not exist, Austrian serials starting with 0 and sums
    of remainder 10, companies' Portuguese numbers ("501964843"), eight or ten digits, valid
    values right after '+', and the date-like "Version 85.07.30-033" and "85.07.30 12:00". The
    fifth batch's: zones with one check digit wrong (the composite, the document number's, a
    date's), a month 13, a day 32 or 31 February, a data line of 43 or 45, a name line or a TD1's
    data line alone, a lower-case letter, a TD1 starting with another letter, random runs of
    [A-Z0-9<], a TD1 without its third line; VAT numbers with a wrong check (each country), a
    digit more or fewer, an unclaimed prefix (XX, US, GB, BG, CZ, LV, XI), a lower-case prefix,
    glued to a word ("CODE136695976") or to more digits (after '.' or '-' only a number ending
    with a digit: "IE1143711R-3" holds the VAT number IE1143711R), IBANs failing their check,
    Slovak birth numbers' shape, French keys with letters, Romanian numbers of five digits and other rules
    broken; none of them holds a piece valid as a national identifier either.
  * Texts mix English with German, French and Japanese words and emoji (the national
    identifiers mostly stand in sentences of their own language: English, Spanish, Italian,
    Polish, Finnish, French, Dutch, Swedish, German, Danish and Portuguese; the fourth batch's
    also in HR e-mails, payslips, forms, JSON records and key=value lines whose field name is
    the context word), so byte offsets differ from character
    offsets; values appear at the start and end of texts, in quotes and parentheses and
    before . , ) : and several entities of different types share records. Neighbour records
    (neighbour_records, a random stream of their own) put values beside the short numbers
    and in the layouts of real prompts (a grouped NIR after a birth date or before an amount
    too, a grouped German tax id after a child's number or before an amount);
    connection-string records (url_credential_records, a stream of their own too) put
    credentials in URLs beside URLs that hold none (a GitLab token in a clone URL too, a token as
    a URL's user);
    written-phone records (written_phone_records, likewise) phone numbers with a trunk prefix
    in parentheses, dots, or as national numbers after a phone word;
    typographic records (typographic_records, likewise) values written with no-break, narrow
    no-break, thin, figure and ideographic spaces, hyphens, en dashes and minus signs,
    full-width digits, letters and signs (e-mail addresses, IBANs, AWS key ids, GitHub
    tokens, Google API keys, Stripe keys and npm tokens typed full-width, phone words such as
    "ＴＥＬ："), lowercase IBANs in groups and
    nine-digit national numbers ("612 345 678"), NIRs and German tax ids grouped by no-break
    spaces and personnummer with an en dash or a non-breaking hyphen (Belgian, Austrian, Danish
    and Portuguese numbers too), and hard negatives so written
    (en-dash ranges, "1 234,56 €" amounts, full-width order numbers, dates, times, versions
    such as "Ｖｅｒｓｉｏｎ　１．２．３．４", cards failing Luhn and IBANs failing their check,
    nine-digit numbers without a phone word); document records (document_records, likewise) the
    fifth batch's values beside others (an invoice's VAT number and IBAN, supplier master data
    with a British number among the EU ones, a KYC profile's e-mail address and MRZ, a zone whose
    misread first line leaves its data line the finding). The scanner reads every text folded as
    the engine's built-in recognizers read it (fold: those characters as ASCII, '：' as ':').
"""

from __future__ import annotations

import argparse
import base64
import datetime
import functools
import hashlib
import hmac
import ipaddress
import json
import math
import re
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from random import Random
from typing import Callable

DEFAULT_SEED = 1
DEFAULT_PER_FORMAT = 60
# A type with fewer formats than this gets ceil(MIN_FORMATS_PER_TYPE * N / formats) records
# per format, so that every type has at least MIN_FORMATS_PER_TYPE * N primary labels.
MIN_FORMATS_PER_TYPE = 4
CONTEXT_WINDOW = 40
LIBERAL_CONTEXT_WINDOW = 96
MAX_DRAWS_PER_RECORD = 50
PEM_MAX_BYTES = 16 * 1024

DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = "abcdefghijklmnopqrstuvwxyz"
BASE62 = DIGITS + UPPER + LOWER
BASE64URL = BASE62 + "_-"  # without padding
BASE64 = BASE62 + "+/"
HEX = "0123456789abcdef"

ENTITY_TYPES = (
    "US_SSN", "US_ITIN", "CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS", "PHONE_NUMBER",
    "IP_ADDRESS", "UK_NHS", "CRYPTO", "MEDICAL_LICENSE", "POLICY_SUITE_KEY", "OPENAI_API_KEY",
    "AWS_ACCESS_KEY", "GITHUB_TOKEN", "SLACK_TOKEN", "PRIVATE_KEY", "URL_CREDENTIALS",
    "JWT", "GOOGLE_API_KEY", "STRIPE_API_KEY", "GITLAB_TOKEN", "HUGGINGFACE_TOKEN", "NPM_TOKEN",
    "SENDGRID_API_KEY", "AZURE_STORAGE_KEY", "SECRET",
    "GROQ_API_KEY", "XAI_API_KEY", "GOOGLE_OAUTH_CLIENT_SECRET", "GOOGLE_OAUTH_TOKEN", "PYPI_TOKEN",
    "DOCKER_HUB_TOKEN", "WEBHOOK_SIGNING_SECRET", "TELEGRAM_BOT_TOKEN", "SLACK_WEBHOOK_URL",
    "AZURE_SHARED_ACCESS_KEY", "AZURE_SAS_TOKEN",
    "PERPLEXITY_API_KEY", "REPLICATE_API_TOKEN", "LANGSMITH_API_KEY", "DATABRICKS_TOKEN", "ATLASSIAN_API_TOKEN",
    "VAULT_TOKEN", "AZURE_CLIENT_SECRET", "DIGITALOCEAN_TOKEN", "POSTMAN_API_KEY", "GRAFANA_TOKEN",
    "DISCORD_BOT_TOKEN", "DISCORD_WEBHOOK_URL",
    "UK_NINO", "ES_NIF", "ES_NIE", "IT_FISCAL_CODE", "PL_PESEL", "FI_PERSONAL_IDENTITY_CODE",
    "FR_NIR", "NL_BSN", "SE_PERSONAL_IDENTITY_NUMBER", "DE_TAX_ID", "DE_HEALTH_INSURANCE_NUMBER",
    "BE_NATIONAL_NUMBER", "IE_PPSN", "DK_CPR", "AT_SOCIAL_INSURANCE_NUMBER", "PT_TAX_ID",
    "IDENTITY_DOCUMENT_MRZ", "EU_VAT_NUMBER",
)
# The European national identifiers: written in the sentences of their own language, with and
# without a context word (see NATIONAL_ID_FRAMES).
NATIONAL_ID_TYPES = ("UK_NINO", "ES_NIF", "ES_NIE", "IT_FISCAL_CODE", "PL_PESEL", "FI_PERSONAL_IDENTITY_CODE",
                     "FR_NIR", "NL_BSN", "SE_PERSONAL_IDENTITY_NUMBER", "DE_TAX_ID", "DE_HEALTH_INSURANCE_NUMBER",
                     "BE_NATIONAL_NUMBER", "IE_PPSN", "DK_CPR", "AT_SOCIAL_INSURANCE_NUMBER", "PT_TAX_ID")
# The fourth batch's types: a value of theirs right after '+' is a phone number, never the type.
NOT_AFTER_PLUS_TYPES = ("BE_NATIONAL_NUMBER", "IE_PPSN", "DK_CPR", "AT_SOCIAL_INSURANCE_NUMBER", "PT_TAX_ID")
# The fifth batch's (/tmp/mrz_vat_spec.md): score 1.0, no context word, upper case only; written in
# the texts of their own formats (KYC chats, OCR output, JSON, logs, invoices, EDI, CSV).
FIFTH_BATCH_TYPES = ("IDENTITY_DOCUMENT_MRZ", "EU_VAT_NUMBER")

CONTEXT_WORDS = {
    "US_SSN": ("ssn", "social security", "social-security", "ss#"),
    "US_ITIN": ("itin",),
    "PHONE_NUMBER": ("phone", "telephone", "cellphone", "tel", "call", "mobile", "cell", "fax",
                     "whatsapp"),
    "UK_NHS": ("nhs",),
    "MEDICAL_LICENSE": ("dea", "prescriber", "registration", "license", "licence"),
    "UK_NINO": ("national insurance", "national_insurance", "nationalinsurancenumber", "nino",
                "ni number", "ni no", "ni_number", "ni_no", "ni:", "n.i.", "nat ins", "nat. ins.",
                "hmrc"),
    "ES_NIF": ("dni", "nif", "documento nacional", "d.n.i", "n.i.f"),
    "ES_NIE": ("nie", "extranjero", "n.i.e"),
    "IT_FISCAL_CODE": ("codice fiscale", "fiscal code", "tax code", "c.f."),
    "PL_PESEL": ("pesel",),
    "FI_PERSONAL_IDENTITY_CODE": ("henkilötunnus", "hetu", "personal identity code", "personbeteckning"),
    "FR_NIR": ("nir", "insee", "sécurité sociale", "securite sociale", "numéro de sécu", "carte vitale"),
    "NL_BSN": ("bsn", "burgerservicenummer", "sofinummer", "sofi-nummer"),
    "SE_PERSONAL_IDENTITY_NUMBER": ("personnummer", "personnr", "pnr", "samordningsnummer"),
    "DE_TAX_ID": ("steuer-id", "steuerid", "steuer-identifikationsnummer", "steueridentifikationsnummer",
                  "identifikationsnummer", "idnr", "id-nr"),
    "DE_HEALTH_INSURANCE_NUMBER": ("krankenversichertennummer", "versichertennummer", "versicherten-nr", "kvnr",
                                   "kv-nr", "krankenversicherung"),
    "BE_NATIONAL_NUMBER": ("rijksregisternummer", "rijksregisternr", "rijksregister", "nationalregisternummer",
                           "numéro national", "numéro de registre national", "registre national", "national number",
                           "national register number", "insz", "niss", "rrn"),
    "IE_PPSN": ("pps", "ppsn", "pps number", "pps no", "personal public service"),
    # Not "personnummer": after it a number is Swedish only.
    "DK_CPR": ("cpr", "cpr-nr", "cpr-nummer", "cprnr", "cpr nr"),
    "AT_SOCIAL_INSURANCE_NUMBER": ("sozialversicherungsnummer", "versicherungsnummer", "svnr", "sv-nr", "sv-nummer",
                                   "vsnr"),
    # "nif" is ES_NIF's word too: after it, eight digits and a letter are Spanish, nine digits Portuguese.
    "PT_TAX_ID": ("nif", "contribuinte", "número de contribuinte", "nº contribuinte",
                  "número de identificação fiscal"),
}
# A type's value with one of these words as a whole word in the CONTEXT_WINDOW bytes before
# it is never an entity of the type: a Swedish number after "personnummer" is no Finnish
# code, though "811218-9876" has the Finnish shape.
EXCLUDED_CONTEXT = {"FI_PERSONAL_IDENTITY_CODE": ("personnummer", "personnr", "samordningsnummer")}
# A national number ("020 7946 0958") counts after any of these.
NATIONAL_PHONE_CONTEXT_WORDS = CONTEXT_WORDS["PHONE_NUMBER"] + (
    "handy", "telefon", "telefonnummer", "rufnummer", "mobil", "festnetz", "appelez", "appeler",
    "appelle", "portable", "tél", "téléphone", "telefono", "teléfono", "móvil", "cellulare",
    "telefone", "telemóvel", "telemovel", "電話", "携帯")
ALL_CONTEXT_WORDS = tuple(dict.fromkeys(
    [word for words in CONTEXT_WORDS.values() for word in words] + list(NATIONAL_PHONE_CONTEXT_WORDS)))
# Types whose values of the same shape the context word alone tells apart: no label of a
# type may have a context word of one of its rivals near it (see rival_context_words). Nine
# bare digits are an SSN, an ITIN or a BSN; ten an NHS number, a NANP number or a
# personnummer (a national number too, when it starts with 0); "YYMMDD-NNNC" a personnummer
# or a Finnish code; eleven a PESEL or a German tax id (whose grouped form "86 295 742 719"
# ends in a nine-digit national number, "295 742 719", and a Portuguese tax number's shape); a
# letter and digits a DEA number or a KVNR. Of the fourth batch: eleven digits are a Belgian
# national number too (and, starting with 0, a national phone number); nine a Portuguese tax
# number (which passes the elfproef when its remainder is 0; "2dd ddd ddd" a Spanish or
# Portuguese phone number too); ten a Danish CPR number or an Austrian social insurance number,
# "DDMMYY-SSSS" a CPR number, a personnummer or (its last digit a check character) a Finnish
# code.
RIVAL_TYPES = {
    "US_SSN": ("US_ITIN", "NL_BSN", "PT_TAX_ID"),
    "US_ITIN": ("US_SSN", "NL_BSN", "PT_TAX_ID"),
    "PHONE_NUMBER": ("UK_NHS", "DK_CPR", "AT_SOCIAL_INSURANCE_NUMBER", "PT_TAX_ID"),
    "UK_NHS": ("PHONE_NUMBER", "SE_PERSONAL_IDENTITY_NUMBER", "DK_CPR", "AT_SOCIAL_INSURANCE_NUMBER"),
    "NL_BSN": ("US_SSN", "US_ITIN", "PHONE_NUMBER", "PT_TAX_ID"),
    "SE_PERSONAL_IDENTITY_NUMBER": ("UK_NHS", "PHONE_NUMBER", "FI_PERSONAL_IDENTITY_CODE", "DK_CPR",
                                    "AT_SOCIAL_INSURANCE_NUMBER"),
    "FI_PERSONAL_IDENTITY_CODE": ("SE_PERSONAL_IDENTITY_NUMBER", "DK_CPR"),
    "PL_PESEL": ("DE_TAX_ID", "BE_NATIONAL_NUMBER"),
    "DE_TAX_ID": ("PL_PESEL", "PHONE_NUMBER", "BE_NATIONAL_NUMBER", "PT_TAX_ID"),
    "MEDICAL_LICENSE": ("DE_HEALTH_INSURANCE_NUMBER",),
    "DE_HEALTH_INSURANCE_NUMBER": ("MEDICAL_LICENSE",),
    "BE_NATIONAL_NUMBER": ("PL_PESEL", "DE_TAX_ID", "PHONE_NUMBER"),
    "DK_CPR": ("SE_PERSONAL_IDENTITY_NUMBER", "FI_PERSONAL_IDENTITY_CODE", "UK_NHS", "PHONE_NUMBER",
               "AT_SOCIAL_INSURANCE_NUMBER"),
    "AT_SOCIAL_INSURANCE_NUMBER": ("UK_NHS", "PHONE_NUMBER", "SE_PERSONAL_IDENTITY_NUMBER", "DK_CPR"),
    "PT_TAX_ID": ("US_SSN", "US_ITIN", "NL_BSN", "PHONE_NUMBER"),
}
VERSION_PREFIXES = (b"v", b"V", b"version ", b"Version ", b"ver ")


# ---------------------------------------------------------------------------------------
# Check-digit algorithms
# ---------------------------------------------------------------------------------------

def luhn_checksum(digits: str) -> int:
    """The Luhn sum mod 10 (0 for a number that passes), doubling every second digit from the
    right, as python-stdnum's luhn.checksum computes it."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10


def luhn_valid(digits: str) -> bool:
    return luhn_checksum(digits) == 0


def luhn_check_digit(payload: str) -> str:
    return next(d for d in DIGITS if luhn_valid(payload + d))


def iban_as_integer(chars: str) -> int:
    return int("".join(str(int(char, 36)) for char in chars))


def iban_checksum_ok(iban: str) -> bool:
    return iban_as_integer(iban[4:] + iban[:4]) % 97 == 1


def iban_check_digits(country: str, bban: str) -> str:
    return "%02d" % (98 - iban_as_integer(bban + country + "00") % 97)


def nhs_check_digit(first_nine: str) -> int | None:
    """The NHS mod-11 check digit, or None when the nine digits have none (remainder 10)."""
    remainder = 11 - sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1))) % 11
    if remainder == 11:
        return 0
    return None if remainder == 10 else remainder


def dea_check_digit(first_six: str) -> str:
    d = [int(c) for c in first_six]
    return str((d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10)


def isbn13_check_digit(first_twelve: str) -> str:
    return str(-sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first_twelve)) % 10)


def isbn10_check_digit(first_nine: str) -> str:
    value = -sum(int(d) * (10 - i) for i, d in enumerate(first_nine)) % 11
    return "X" if value == 10 else str(value)


# European national identifiers: their specification's rules, implemented here on their own
# (from the rules, not from the engine's code), as the oracle that cross-checks the engine.

# UK National Insurance number: prefix letters, six digits, suffix A-D.
NINO_FIRST_LETTERS = "ABCEGHJKLMNOPRSTWXYZ"  # not D F I Q U V
NINO_SECOND_LETTERS = "ABCEGHJKLMNPRSTWXYZ"  # not D F I O Q U V
NINO_FORBIDDEN_PREFIXES = ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")
NINO_SUFFIXES = "ABCD"


def nino_prefix_valid(prefix: str) -> bool:
    return (len(prefix) == 2 and prefix[0] in NINO_FIRST_LETTERS and prefix[1] in NINO_SECOND_LETTERS
            and prefix not in NINO_FORBIDDEN_PREFIXES)


# Spanish DNI/NIF and NIE: the check letter of the number mod 23.
DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
NIE_PREFIX_DIGITS = {"X": "0", "Y": "1", "Z": "2"}


def dni_letter(number: str) -> str:
    return DNI_LETTERS[int(number) % 23]


def nie_letter(prefix: str, seven_digits: str) -> str:
    return dni_letter(NIE_PREFIX_DIGITS[prefix] + seven_digits)


# Italian codice fiscale: digits of the year, day and municipality may be written with their
# letter stand-ins (omocodia); the check letter weighs odd and even positions differently.
FISCAL_CODE_MONTHS = "ABCDEHLMPRST"  # January ... December
OMOCODIA_LETTERS = "LMNPQRSTUV"  # stand-ins for 0 ... 9
FISCAL_CODE_DIGIT_POSITIONS = (6, 7, 9, 10, 12, 13, 14)  # 0-based: year, day, municipality number
# ODD value of digit d and of the letter with index d (A=0) are the same.
FISCAL_CODE_ODD = (1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23)


def fiscal_code_char_index(char: str) -> int:
    """A digit's value or a letter's index (A=0)."""
    return int(char) if char.isdigit() else ord(char) - ord("A")


def fiscal_code_check_letter(first_fifteen: str) -> str:
    total = 0
    for i, char in enumerate(first_fifteen):
        index = fiscal_code_char_index(char)
        total += FISCAL_CODE_ODD[index] if i % 2 == 0 else index  # i even: 1st, 3rd, ... (1-based odd)
    return UPPER[total % 26]


def fiscal_code_decode(chars: str) -> str:
    """Digits written as digits or as their omocodia letters, as digits."""
    return "".join(c if c.isdigit() else str(OMOCODIA_LETTERS.index(c)) for c in chars)


# Polish PESEL: YYMMDDZZZXQ, the month carrying the century.
PESEL_WEIGHTS = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)
PESEL_MONTH_OFFSETS = {0: 1900, 20: 2000, 40: 2100, 60: 2200, 80: 1800}


def pesel_check_digit(first_ten: str) -> str:
    return str((10 - sum(int(d) * w for d, w in zip(first_ten, PESEL_WEIGHTS)) % 10) % 10)


def date_exists(year: int, month: int, day: int) -> bool:
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def pesel_date_valid(digits: str) -> bool:
    year, month, day = int(digits[0:2]), int(digits[2:4]), int(digits[4:6])
    for offset, century in PESEL_MONTH_OFFSETS.items():
        if offset + 1 <= month <= offset + 12:
            return date_exists(century + year, month - offset, day)
    return False


# Finnish henkilötunnus: DDMMYY, century sign, individual number, check character.
FI_CHECK_CHARACTERS = "0123456789ABCDEFHJKLMNPRSTUVWXY"
FI_CENTURY_SIGNS = {"+": 1800, **dict.fromkeys("-YXWVU", 1900), **dict.fromkeys("ABCDEF", 2000)}


def fi_check_character(date_and_number: str) -> str:
    """The check character of DDMMYYNNN (nine digits)."""
    return FI_CHECK_CHARACTERS[int(date_and_number) % 31]


# French NIR: sex digit, year, month, department, commune, order number, key.
NIR_SEX_DIGITS = "123478"
NIR_CORSICA = {"2A": "19", "2B": "18"}  # the departments' digits in the key's number
NIR_UNKNOWN_MONTHS = (20,) + tuple(range(30, 43)) + tuple(range(50, 100))  # INSEE's, for unknown months


def nir_month_valid(month: int) -> bool:
    return 1 <= month <= 12 or month in NIR_UNKNOWN_MONTHS


def nir_key(first_thirteen: str) -> str:
    """97 - (N mod 97), N the first 13 characters read as a number, 2A as 19 and 2B as 18."""
    department = first_thirteen[5:7]
    number = first_thirteen[:5] + NIR_CORSICA.get(department, department) + first_thirteen[7:]
    return "%02d" % (97 - int(number) % 97)


# Dutch BSN: the elfproef, 9*d1 + 8*d2 + ... + 2*d8 - d9 divisible by 11.
BSN_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


def bsn_checksum_ok(digits: str) -> bool:
    return sum(int(d) * w for d, w in zip(digits, BSN_WEIGHTS)) % 11 == 0 and digits != "0" * 9


def bsn_check_digit(first_eight: str) -> str | None:
    """The last digit that passes the elfproef, or None when it would have to be 10."""
    value = sum(int(d) * w for d, w in zip(first_eight, BSN_WEIGHTS)) % 11
    return None if value == 10 else str(value)


# Swedish personnummer and samordningsnummer: YYMMDD (day + 60 for a samordningsnummer), a
# birth number, a Luhn digit over the ten digits (a 12-digit form's century left out).
SE_COORDINATION_DAY_OFFSET = 60


def se_pin_date_valid(year: int, month: int, day: int) -> bool:
    if day > SE_COORDINATION_DAY_OFFSET:
        day -= SE_COORDINATION_DAY_OFFSET
    return date_exists(year, month, day)


def se_pin_ten_digit_year(two_digits: int, separator: str) -> int:
    """A year whose leap-ness is that of a 10-digit number's birth year. '-' (or no separator:
    read as '-') means under 100 years old, '+' 100 or older; the two readings differ only for
    "00": 2000 was a leap year, 1900 and 1800 were not. No clock is needed."""
    return (1900 if separator == "+" else 2000) + two_digits


# German tax identification number (steuerliche Identifikationsnummer): eleven digits, the
# first not 0; among the first ten exactly one digit value repeated (twice, or three times but
# not in three consecutive positions); an ISO 7064 MOD 11,10 check digit.
DE_TAX_ID_GROUPS = (2, 3, 3, 3)


def de_tax_id_check_digit(first_ten: str) -> str:
    """ISO 7064 MOD 11,10: product 10; per digit s = (d + product) mod 10 (0 read as 10),
    product = 2s mod 11; the check is 11 - product, 10 written as 0."""
    product = 10
    for char in first_ten:
        total = (int(char) + product) % 10 or 10
        product = 2 * total % 11
    return str((11 - product) % 10)


def de_tax_id_digits_valid(first_ten: str) -> bool:
    """Exactly one digit value more than once: twice, or three times not in a row."""
    counts = Counter(first_ten)
    repeated = [digit for digit, count in counts.items() if count > 1]
    if len(repeated) != 1:
        return False
    digit = repeated[0]
    return counts[digit] == 2 or (counts[digit] == 3 and digit * 3 not in first_ten)


# German health insurance number (Krankenversichertennummer): an uppercase letter, eight
# digits and a check digit over the letter's two-digit position (A = 01) and the eight digits,
# weighted 1 2 1 2 ..., each product's digits summed.
def kvnr_check_digit(letter: str, digits: str) -> str:
    """The check digit of the letter and the digits after it (eight in a valid number; any
    number here, the weights going on alternating)."""
    total = 0
    for i, char in enumerate("%02d" % (ord(letter) - ord("A") + 1) + digits):
        product = int(char) * (1 if i % 2 == 0 else 2)
        total += product // 10 + product % 10
    return str(total % 10)


# Belgian national register number (Rijksregisternummer, numéro de registre national; INSZ/NISS,
# BIS numbers included): YY MM DD SSS CC. A BIS number's month is the month + 20 or + 40; a
# month or day of 0 is unknown; the serial is 001-998; CC = 97 - (N mod 97), N the first nine
# digits read as a number, with a 2 before them for one born in 2000 or later. Either century's
# check counts, and the one that does gives the year whose February the date lies in.
BE_MONTH_OFFSETS = (0, 20, 40)  # a person's month, a BIS number's (+ 20 or + 40)


def be_national_number_check(first_nine: str, born_2000s: bool) -> str:
    """97 - (N mod 97), N the nine digits, 2000000000 + N for one born in 2000 or later."""
    return "%02d" % (97 - int(("2" if born_2000s else "") + first_nine) % 97)


def be_national_number_digits_valid(digits: str) -> bool:
    """The eleven digits: month 0-12, 20-32 or 40-52; day 0-31, and a day of its month when
    both are known (in the year of the century whose check digits are right); serial 001-998."""
    year, month, day, serial = int(digits[0:2]), int(digits[2:4]), int(digits[4:6]), int(digits[6:9])
    base_month = next((month - offset for offset in BE_MONTH_OFFSETS if offset <= month <= offset + 12), None)
    if base_month is None or day > 31 or not 1 <= serial <= 998:
        return False
    for century, born_2000s in ((1900, False), (2000, True)):
        if be_national_number_check(digits[:9], born_2000s) == digits[9:]:
            return base_month == 0 or day == 0 or date_exists(century + year, base_month, day)
    return False


# Irish Personal Public Service Number: seven digits, a check letter, and optionally a second
# letter: A or B (the 2013 format, in the check), W, T or X (older numbers, ignored by the
# check); H is a company's (not a person's). Check letter: PPSN_LETTERS[(8*d1 + 7*d2 + ... +
# 2*d7 + 9*index(second letter)) mod 23].
PPSN_LETTERS = "WABCDEFGHIJKLMNOPQRSTUV"  # index 0 = W, 1 = A, ..., 22 = V
PPSN_CHECKED_SECOND_LETTERS = "AB"
PPSN_IGNORED_SECOND_LETTERS = "WTX"
PPSN_COMPANY_LETTER = "H"


def ppsn_check_letter(digits: str, second: str = "") -> str:
    """The check letter of the seven digits and the second letter: A and B (and a company's H,
    as "6433435IH" shows) take part in the check; W, T, X (and no second letter) do not."""
    total = sum(int(d) * w for d, w in zip(digits, range(8, 1, -1)))
    if second and second in PPSN_CHECKED_SECOND_LETTERS + PPSN_COMPANY_LETTER:
        total += 9 * PPSN_LETTERS.index(second)
    return PPSN_LETTERS[total % 23]


# Danish CPR number: DDMMYY SSSS, no check digit (the modulus 11 was given up in 2007); the
# century from the seventh digit (the first of SSSS) and the year.
def dk_cpr_century(seventh_digit: int, two_digit_year: int) -> int:
    """0-3: 1900s; 4 or 9: 2000s up to 36, else 1900s; 5-8: 2000s up to 57, else 1800s."""
    if seventh_digit <= 3:
        return 1900
    if seventh_digit in (4, 9):
        return 2000 if two_digit_year <= 36 else 1900
    return 2000 if two_digit_year <= 57 else 1800


def dk_cpr_seventh_digits(year: int) -> list[int]:
    """The seventh digits that give a birth year its century."""
    return [d for d in range(10) if dk_cpr_century(d, year % 100) == year // 100 * 100]


# Austrian social insurance number (Sozialversicherungsnummer): NNN C DDMMYY, a serial whose
# first digit is not 0, a check digit, six digits (mostly the birth date, not checked).
AT_SVNR_WEIGHTS = (3, 7, 9, 5, 8, 4, 2, 1, 6)  # over the serial and the six digits, the check digit left out


def at_svnr_check_digit(serial: str, six: str) -> str | None:
    """The weighted sum mod 11, or None when it is 10 (no number has that serial and date)."""
    remainder = sum(int(d) * w for d, w in zip(serial + six, AT_SVNR_WEIGHTS)) % 11
    return None if remainder == 10 else str(remainder)


# Portuguese tax number (NIF, número de contribuinte): nine digits, a person's starting with 1,
# 2 or 3 or with 45 (a non-resident's); the last is 11 - (the weighted sum mod 11), 0 for a
# remainder of 0 or 1.
PT_TAX_ID_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)
PT_PERSONAL_PREFIXES = ("1", "2", "3", "45")


def pt_tax_id_check_digit(first_eight: str) -> str:
    remainder = sum(int(d) * w for d, w in zip(first_eight, PT_TAX_ID_WEIGHTS)) % 11
    return "0" if remainder < 2 else str(11 - remainder)


def pt_tax_id_is_personal(digits: str) -> bool:
    """A person's number (companies, public bodies and others start with 5-9, or 4 but 45)."""
    return digits.startswith(PT_PERSONAL_PREFIXES)


# The fifth batch (/tmp/mrz_vat_spec.md): the machine-readable zone of an identity document (ICAO
# Doc 9303) and EU VAT numbers, implemented here from the specification (the VAT checks as
# python-stdnum 1.18 implements them; this module does not import it).

# MRZ: a field's check digit weighs its characters' values (digit itself, A=10 ... Z=35, '<' 0) by
# 7, 3, 1, 7, 3, 1, ... (restarting at each field), mod 10.
MRZ_WEIGHTS = (7, 3, 1)
# Days of each month in an MRZ date (YYMMDD): February up to 29 whatever the year.
MRZ_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
MRZ_CHARACTER_VALUES = {**{d: int(d) for d in DIGITS}, **{c: 10 + i for i, c in enumerate(UPPER)}, "<": 0}


def mrz_check_digit(field: str) -> str:
    """The check digit of a field of [A-Z0-9<]."""
    return str(sum(MRZ_CHARACTER_VALUES[c] * w for c, w in zip(field, MRZ_WEIGHTS * (len(field) // 3 + 1))) % 10)


def mrz_checked(field: str, check: str) -> bool:
    """The check character is a digit, the field's check digit."""
    return check in DIGITS and mrz_check_digit(field) == check


def mrz_date_valid(six: str) -> bool:
    """YYMMDD: six digits, month 01-12, day 01 to the days of the month (29 in February)."""
    if not re.fullmatch(r"[0-9]{6}", six):
        return False
    month, day = int(six[2:4]), int(six[4:6])
    return 1 <= month <= 12 and 1 <= day <= MRZ_MONTH_DAYS[month - 1]


# EU VAT numbers: each member state's national part and its check, on the national part with its
# separators removed. (The prefixes claimed: EL and GR both for Greece; not BG, CZ, LV, XI.)
VAT_PROVINCES_IT = tuple("%03d" % p for p in range(1, 101)) + ("120", "121", "888", "999")
VAT_CIF_LETTERS = "ABCDEFGHJNPQRSUVW"  # a Spanish CIF's first letter
VAT_CIF_CHECK_LETTERS = "JABCDEFGHI"  # a CIF's check letter for its Luhn check digit 0 ... 9


def iso7064_mod_11_10_valid(digits: str) -> bool:
    """ISO 7064 MOD 11,10 over the whole number, its check digit last (as DE_TAX_ID's)."""
    return de_tax_id_check_digit(digits[:-1]) == digits[-1]


def weighted_sum(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights))


def cy_vat_check_letter(eight: str) -> str:
    """Cyprus: the digits at even positions (0, 2, 4, 6) through the table, the others as they
    are, the sum mod 26 as a letter."""
    table = {"0": 1, "1": 0, "2": 5, "3": 7, "4": 9, "5": 13, "6": 15, "7": 17, "8": 19, "9": 21}
    return UPPER[(sum(table[d] for d in eight[::2]) + sum(int(d) for d in eight[1::2])) % 26]


def gr_vat_check_digit(eight: str) -> str:
    """Greece: the eight digits read in binary weights (c = 2c + d), 2c mod 11 mod 10."""
    total = 0
    for digit in eight:
        total = total * 2 + int(digit)
    return str(total * 2 % 11 % 10)


def ie_vat_check_letter(seven: str, second: str = "") -> str:
    """Ireland (the new system): as a PPSN's, any second letter of the alphabet in the check
    (W counts 0: as none)."""
    total = weighted_sum(seven, (8, 7, 6, 5, 4, 3, 2))
    return PPSN_LETTERS[(total + (9 * PPSN_LETTERS.index(second) if second else 0)) % 23]


def lt_vat_check_digit(digits: str) -> str:
    """Lithuania: weights 1, 2, ..., 9, 1, 2 ...; a remainder of 10 weighs again from 3."""
    check = sum((1 + i % 9) * int(d) for i, d in enumerate(digits)) % 11
    if check == 10:
        check = sum((1 + (i + 2) % 9) * int(d) for i, d in enumerate(digits))
    return str(check % 11 % 10)


def ro_vat_check_digit(digits: str) -> str:
    """Romania (CUI): weights 7, 5, 3, 2, 1, 7, 5, 3, 2 over the number without its check digit,
    zero-filled to nine; 10 times the sum mod 11 mod 10."""
    return str(10 * weighted_sum(digits.zfill(9), (7, 5, 3, 2, 1, 7, 5, 3, 2)) % 11 % 10)


def si_vat_check_digit(seven: str) -> str | None:
    """Slovenia: 11 - (weights 8 ... 2) mod 11; 10 is written 0, 11 has no check digit."""
    check = 11 - weighted_sum(seven, (8, 7, 6, 5, 4, 3, 2)) % 11
    return None if check == 11 else str(check % 10)


def es_vat_valid(national: str) -> bool:
    """Spain: a DNI (8 digits, letter), an NIE (X, Y or Z, 7 digits, letter) or a CIF (a letter of
    VAT_CIF_LETTERS, 7 digits, the Luhn check digit of the 7 or its letter)."""
    if re.fullmatch(r"[0-9]{8}[A-Z]", national):
        return dni_letter(national[:8]) == national[8]
    if re.fullmatch(r"[XYZ][0-9]{7}[A-Z]", national):
        return nie_letter(national[0], national[1:8]) == national[8]
    if re.fullmatch(r"[%s][0-9]{7}[0-9A-Z]" % VAT_CIF_LETTERS, national):
        digit = luhn_check_digit(national[1:8])
        return national[8] in (digit, VAT_CIF_CHECK_LETTERS[int(digit)])
    return False


def nl_vat_valid(national: str) -> bool:
    """The Netherlands: 9 digits (not all 0), B, 2 digits (not 00); the 9 digits pass the BSN
    check, or "NL" and the 12 characters ISO 7064 MOD 97-10 (letters as 10 ... 35)."""
    if not re.fullmatch(r"[0-9]{9}B[0-9]{2}", national) or national[:9] == "0" * 9 or national[10:] == "00":
        return False
    return bsn_checksum_ok(national[:9]) or iban_as_integer("NL" + national) % 97 == 1


# The national part of each claimed prefix: its shape, and its check.
VAT_NATIONAL_RULES: dict[str, tuple[str, Callable[[str], bool]]] = {
    "AT": (r"U[0-9]{8}", lambda n: str((6 - luhn_checksum(n[1:8])) % 10) == n[8]),
    "BE": (r"[01][0-9]{9}", lambda n: (int(n[:8]) + int(n[8:])) % 97 == 0),
    "CY": (r"[0-9]{8}[A-Z]", lambda n: not n.startswith("12") and cy_vat_check_letter(n[:8]) == n[8]),
    "DE": (r"[1-9][0-9]{8}", iso7064_mod_11_10_valid),
    "DK": (r"[1-9][0-9]{7}", lambda n: weighted_sum(n, (2, 7, 6, 5, 4, 3, 2, 1)) % 11 == 0),
    "EE": (r"[0-9]{9}", lambda n: weighted_sum(n, (3, 7, 1, 3, 7, 1, 3, 7, 1)) % 10 == 0),
    "EL": (r"[0-9]{9}", lambda n: gr_vat_check_digit(n[:8]) == n[8]),
    "ES": (r"[0-9A-Z]{9}", es_vat_valid),
    "FI": (r"[0-9]{8}", lambda n: weighted_sum(n, (7, 9, 10, 5, 8, 4, 2, 1)) % 11 == 0),
    "FR": (r"[0-9]{11}", lambda n: luhn_valid(n[2:]) and int(n[:2]) == int(n[2:] + "12") % 97),
    "HR": (r"[0-9]{11}", iso7064_mod_11_10_valid),
    "HU": (r"[0-9]{8}", lambda n: weighted_sum(n, (9, 7, 3, 1, 9, 7, 3, 1)) % 10 == 0),
    "IE": (r"[0-9]{7}[%s]{1,2}" % PPSN_LETTERS, lambda n: ie_vat_check_letter(n[:7], n[8:]) == n[7]),
    "IT": (r"[0-9]{11}", lambda n: n[:7] != "0" * 7 and n[7:10] in VAT_PROVINCES_IT and luhn_valid(n)),
    "LT": (r"[0-9]{7}1[0-9]|[0-9]{10}1[0-9]", lambda n: lt_vat_check_digit(n[:-1]) == n[-1]),
    "LU": (r"[0-9]{8}", lambda n: int(n[:6]) % 89 == int(n[6:])),
    "MT": (r"[1-9][0-9]{7}", lambda n: weighted_sum(n, (3, 4, 6, 7, 8, 9, 10, 1)) % 37 == 0),
    "NL": (r"[0-9]{9}B[0-9]{2}", nl_vat_valid),
    "PL": (r"[1-9][0-9]{9}", lambda n: weighted_sum(n, (6, 5, 7, 2, 3, 4, 5, 6, 7, -1)) % 11 == 0),
    "PT": (r"[1-9][0-9]{8}", lambda n: pt_tax_id_check_digit(n[:8]) == n[8]),
    "RO": (r"[1-9][0-9]{5,9}", lambda n: ro_vat_check_digit(n[:-1]) == n[-1]),
    "SE": (r"[0-9]{10}01", lambda n: luhn_valid(n[:10])),
    "SI": (r"[1-9][0-9]{7}", lambda n: si_vat_check_digit(n[:7]) == n[7]),
    "SK": (r"[12]0[234789][0-9]{7}", lambda n: int(n) % 11 == 0),
}
VAT_NATIONAL_RULES["GR"] = VAT_NATIONAL_RULES["EL"]  # as Greek numbers are often written
VAT_PREFIXES = tuple(VAT_NATIONAL_RULES)


def vat_national_valid(country: str, national: str) -> bool:
    """The national part (no separators) of a claimed prefix, of its shape and passing its check."""
    rule = VAT_NATIONAL_RULES.get(country)
    return rule is not None and bool(re.fullmatch(rule[0], national)) and rule[1](national)


BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58_encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    encoded = ""
    while number:
        number, digit = divmod(number, 58)
        encoded = BASE58[digit] + encoded
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + encoded


def base58_decode(text: str) -> bytes | None:
    number = 0
    for char in text:
        digit = BASE58.find(char)
        if digit < 0:
            return None
        number = number * 58 + digit
    leading_zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * leading_zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")


def double_sha256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def base58check_encode(version: int, payload: bytes) -> str:
    data = bytes([version]) + payload
    return base58_encode(data + double_sha256(data)[:4])


# Bech32 and Bech32m as specified by BIP-173 and BIP-350 (reference implementation).
BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BECH32_CONST = 1
BECH32M_CONST = 0x2BC830A3


def bech32_polymod(values: list[int]) -> int:
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            checksum ^= generator[i] if (top >> i) & 1 else 0
    return checksum


def bech32_hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def bech32_checksum(hrp: str, data: list[int], const: int) -> list[int]:
    polymod = bech32_polymod(bech32_hrp_expand(hrp) + data + [0] * 6) ^ const
    return [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]


def convert_bits(data: list[int] | bytes, from_bits: int, to_bits: int, pad: bool) -> list[int] | None:
    accumulator, bits, result = 0, 0, []
    max_value = (1 << to_bits) - 1
    max_accumulator = (1 << (from_bits + to_bits - 1)) - 1
    for value in data:
        accumulator = ((accumulator << from_bits) | value) & max_accumulator
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            result.append((accumulator >> bits) & max_value)
    if pad:
        if bits:
            result.append((accumulator << (to_bits - bits)) & max_value)
    elif bits >= from_bits or (accumulator << (to_bits - bits)) & max_value:
        return None
    return result


def segwit_address(witness_version: int, program: bytes) -> str:
    data = [witness_version] + convert_bits(program, 8, 5, True)
    const = BECH32_CONST if witness_version == 0 else BECH32M_CONST
    return "bc1" + "".join(BECH32_CHARSET[d] for d in data + bech32_checksum("bc", data, const))


# ---------------------------------------------------------------------------------------
# Reference data
# ---------------------------------------------------------------------------------------

# Issuer prefix ranges (inclusive, compared on the first len(low) digits) and lengths.
CARD_ISSUERS = {
    "visa": ((("4", "4"),), (13, 16, 19)),
    "mastercard": ((("51", "55"), ("2221", "2720")), (16,)),
    "amex": ((("34", "34"), ("37", "37")), (15,)),
    "discover": ((("6011", "6011"), ("644", "649"), ("65", "65")), (16, 17, 18, 19)),
    "jcb": ((("3528", "3589"),), (16, 17, 18, 19)),
    "diners": ((("300", "305"), ("36", "36"), ("38", "39")), (14, 15, 16, 17, 18, 19)),
    "unionpay": ((("62", "62"),), (16, 17, 18, 19)),
}
# The group layout of a grouped card number, by length (Amex 4-6-5, Diners 4-6-4).
CARD_GROUPINGS = {14: (4, 6, 4), 15: (4, 6, 5), 16: (4, 4, 4, 4), 19: (4, 4, 4, 4, 3)}
# The lengths each issuer's cards are printed grouped in.
CARD_GROUPED_LENGTHS = {
    "visa": (16, 19), "mastercard": (16,), "amex": (15,), "discover": (16, 19),
    "jcb": (16, 19), "diners": (14, 16, 19), "unionpay": (16, 19),
}

# BBAN structure per country from the SWIFT IBAN registry (n digits, a upper-case letters,
# c digits or letters); the IBAN length is the BBAN length + 4.
IBAN_BBAN_STRUCTURE = {
    "AD": "4!n4!n12!c", "AE": "3!n16!n", "AL": "8!n16!c", "AT": "5!n11!n", "AZ": "4!a20!c",
    "BA": "3!n3!n8!n2!n", "BE": "3!n7!n2!n", "BG": "4!a4!n2!n8!c", "BH": "4!a14!c",
    "BR": "8!n5!n10!n1!a1!c", "CH": "5!n12!c", "CR": "4!n14!n", "CY": "3!n5!n16!c",
    "CZ": "4!n6!n10!n", "DE": "8!n10!n", "DK": "4!n9!n1!n", "DO": "4!c20!n", "EE": "2!n2!n11!n1!n",
    "ES": "4!n4!n1!n1!n10!n", "FI": "6!n7!n1!n", "FO": "4!n9!n1!n", "FR": "5!n5!n11!c2!n",
    "GB": "4!a6!n8!n", "GE": "2!a16!n", "GI": "4!a15!c", "GL": "4!n9!n1!n", "GR": "3!n4!n16!c",
    "GT": "4!c20!c", "HR": "7!n10!n", "HU": "3!n4!n1!n15!n1!n", "IE": "4!a6!n8!n",
    "IL": "3!n3!n13!n", "IS": "4!n2!n6!n10!n", "IT": "1!a5!n5!n12!c", "JO": "4!a4!n18!c",
    "KW": "4!a22!c", "KZ": "3!n13!c", "LB": "4!n20!c", "LI": "5!n12!c", "LT": "5!n11!n",
    "LU": "3!n13!c", "LV": "4!a13!c", "MC": "5!n5!n11!c2!n", "MD": "2!c18!c", "ME": "3!n13!n2!n",
    "MK": "3!n10!c2!n", "MR": "5!n5!n11!n2!n", "MT": "4!a5!n18!c", "MU": "4!a2!n2!n12!n3!n3!a",
    "NL": "4!a10!n", "NO": "4!n6!n1!n", "PK": "4!a16!c", "PL": "8!n16!n", "PS": "4!a21!c",
    "PT": "4!n4!n11!n2!n", "QA": "4!a21!c", "RO": "4!a16!c", "RS": "3!n13!n2!n", "SA": "2!n18!c",
    "SE": "3!n16!n1!n", "SI": "5!n8!n2!n", "SK": "4!n6!n10!n", "SM": "1!a5!n5!n12!c",
    "TN": "2!n3!n13!n2!n", "TR": "5!n1!n16!c", "UA": "6!n19!c", "VG": "4!a16!n", "XK": "4!n10!n2!n",
}
IBAN_LENGTH = {
    country: 4 + sum(int(count) for count in re.findall(r"(\d+)!", structure))
    for country, structure in IBAN_BBAN_STRUCTURE.items()
}
IBAN_COUNTRIES = tuple(IBAN_BBAN_STRUCTURE)

# The ITU's country calling codes (a "+" number is a phone number when it starts with one).
COUNTRY_CALLING_CODES = frozenset(
    "1 7 20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 "
    "60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98".split()
) | frozenset(str(code) for low, high in (
    (211, 213), (216, 216), (218, 218), (220, 258), (260, 269), (290, 291), (297, 299), (350, 359),
    (370, 387), (389, 389), (420, 421), (423, 423), (500, 509), (590, 599), (670, 670), (672, 692),
    (850, 850), (852, 853), (855, 856), (880, 880), (886, 886), (960, 968), (970, 977), (992, 996),
    (998, 998)) for code in range(low, high + 1))

ITIN_GROUPS = tuple(range(50, 66)) + tuple(range(70, 89)) + (90, 91, 92) + tuple(range(94, 100))
SSN_ADVERTISING_NUMBERS = (("078", "05", "1120"), ("219", "09", "9999"))
DEA_FIRST_LETTERS = "ABCDEFGHJKLMPRSTX"


# ---------------------------------------------------------------------------------------
# Validators: does a value, on its own, have a valid format and checksum for the type?
# (Context words and the neighbouring text are the scanner's business, see accepts().)
# ---------------------------------------------------------------------------------------

SSN_SHAPE = re.compile(r"([0-9]{3})([- ]?)([0-9]{2})\2([0-9]{4})")
BARE_9_OR_10_DIGITS = re.compile(r"[0-9]{9,10}")
NHS_SHAPE = re.compile(r"[0-9]{3}([ -]?)[0-9]{3}\1[0-9]{4}")
NANP_SHAPES = tuple(re.compile(p) for p in (
    r"\(([0-9]{3})\) ([0-9]{3})-[0-9]{4}",
    r"([0-9]{3})-([0-9]{3})-[0-9]{4}",
    r"([0-9]{3})\.([0-9]{3})\.[0-9]{4}",
    r"([0-9]{3}) ([0-9]{3}) [0-9]{4}",
    r"\+1 ([0-9]{3}) ([0-9]{3}) [0-9]{4}",
    r"\+1-([0-9]{3})-([0-9]{3})-[0-9]{4}",
    r"1-([0-9]{3})-([0-9]{3})-[0-9]{4}",
    r"\+1([0-9]{3})([0-9]{3})[0-9]{4}",
    r"([0-9]{3})([0-9]{3})[0-9]{4}",
))
INTERNATIONAL_PHONE_SHAPE = re.compile(
    r"\+([0-9]+(?:[ -][0-9]+)*|[0-9]+(?:\.[0-9]+)+|[0-9]+ \(0\) ?[0-9]+(?:[ -][0-9]+)*)")
NATIONAL_PHONE_SHAPE = re.compile(
    r"0[1-9][0-9]{0,4}(?:[ /-][0-9]{2,8}){1,4}|0[1-9](?:\.[0-9]{2}){4}|0[1-9][0-9]{8,10}")
NINE_DIGIT_PHONE_SHAPE = re.compile(
    r"[2-9][0-9]{2}(?: [0-9]{3} [0-9]{3}|-[0-9]{3}-[0-9]{3}| [0-9]{2} [0-9]{2} [0-9]{2}"
    r"|-[0-9]{2}-[0-9]{2}-[0-9]{2})")
IPV4_SHAPE = re.compile(r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}")
IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]+")
EMAIL_SHAPE = re.compile(r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
IBAN_SHAPE = re.compile(r"[A-Za-z]{2}[0-9]{2}[A-Za-z0-9]+")
BASE58_ADDRESS_SHAPE = re.compile(r"[13][1-9A-HJ-NP-Za-km-z]{25,34}")
BECH32_ADDRESS_SHAPE = re.compile(r"bc1[qp][%s]+" % BECH32_CHARSET)
DEA_SHAPE = re.compile(r"[%s][A-Z9][0-9]{7}" % DEA_FIRST_LETTERS)
# (The older token types' shapes, POLICY_SUITE_KEY_PARTS ... SLACK_TOKEN_PARTS, stand with
# their placeholder rule below.)
# "user:password@host" after "scheme://": the password non-empty, up to the last '@'.
URL_CREDENTIALS_SHAPE = re.compile(
    r"[^\s/?#@:]*:[^\s/?#]+@(?:[A-Za-z0-9._~%-]*[A-Za-z0-9_]|\[[0-9A-Fa-f:.]+\])")
PEM_SHAPE = re.compile(
    r"-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?)PRIVATE KEY-----\n"
    r"(?:[A-Za-z0-9+/]+=*\n)+"
    r"-----END \1PRIVATE KEY-----")


def is_valid_ssn(value: str) -> bool:
    match = SSN_SHAPE.fullmatch(value)
    if not match:
        return False
    area, group, serial = match[1], match[3], match[4]
    return (1 <= int(area) <= 899 and area != "666" and group != "00" and serial != "0000"
            and (area, group, serial) not in SSN_ADVERTISING_NUMBERS)


def is_valid_itin(value: str) -> bool:
    match = SSN_SHAPE.fullmatch(value)
    return bool(match) and match[1][0] == "9" and int(match[3]) in ITIN_GROUPS


def card_digits(value: str) -> str | None:
    """The digits of a card-shaped value: plain 13-19 digits or a standard group layout."""
    if re.fullmatch(r"[0-9]{13,19}", value):
        return value
    for separator in " -":
        groups = value.split(separator)
        if len(groups) > 1 and all(re.fullmatch(r"[0-9]+", g) for g in groups):
            digits = "".join(groups)
            if tuple(len(g) for g in groups) == CARD_GROUPINGS.get(len(digits)):
                return digits
    return None


def card_issuer(digits: str) -> str | None:
    for issuer, (ranges, lengths) in CARD_ISSUERS.items():
        if len(digits) in lengths and any(low <= digits[:len(low)] <= high for low, high in ranges):
            return issuer
    return None


def is_valid_card(value: str) -> bool:
    digits = card_digits(value)
    return digits is not None and card_issuer(digits) is not None and luhn_valid(digits)


def iban_compact(value: str) -> str | None:
    """The IBAN without its grouping spaces, if it is ungrouped or grouped in 4s."""
    groups = value.split(" ")
    if len(groups) > 1 and (any(len(g) != 4 for g in groups[:-1]) or not 1 <= len(groups[-1]) <= 4):
        return None
    return "".join(groups)


def is_valid_iban(value: str) -> bool:
    """Upper- or lowercase letters, as the engine accepts them."""
    compact = iban_compact(value)
    return (compact is not None and bool(IBAN_SHAPE.fullmatch(compact))
            and IBAN_LENGTH.get(compact[:2].upper()) == len(compact) and iban_checksum_ok(compact.upper()))


def is_valid_email(value: str) -> bool:
    return bool(EMAIL_SHAPE.fullmatch(value))


def nanp_parts_valid(area: str, exchange: str) -> bool:
    return all(part[0] in "23456789" and part[1:] != "11" for part in (area, exchange))


def calling_code(digits: str) -> str | None:
    return next((digits[:n] for n in (1, 2, 3) if digits[:n] in COUNTRY_CALLING_CODES), None)


def is_national_phone(value: str) -> bool:
    """A national number with its trunk prefix, 10-12 digits, or of nine digits in groups
    without one ("612 345 678"): counts only after a word of NATIONAL_PHONE_CONTEXT_WORDS."""
    if NINE_DIGIT_PHONE_SHAPE.fullmatch(value):
        return True
    return bool(NATIONAL_PHONE_SHAPE.fullmatch(value)) and 10 <= sum(c.isdigit() for c in value) <= 12


def is_valid_phone(value: str) -> bool:
    for shape in NANP_SHAPES:
        match = shape.fullmatch(value)
        if match and nanp_parts_valid(match[1], match[2]):
            return True
    if is_national_phone(value):
        return True
    match = INTERNATIONAL_PHONE_SHAPE.fullmatch(value)
    if not match:
        return False
    digits = re.sub(r"[ .-]", "", match[1].replace(" (0)", " ", 1))
    code = calling_code(digits)
    return code is not None and code != "1" and 7 <= len(digits) - len(code) <= 12


def is_valid_ip(value: str) -> bool:
    if ":" not in value:  # loopback 127/8 is no address of anyone's
        return (bool(IPV4_SHAPE.fullmatch(value)) and all(int(p) <= 255 for p in value.split("."))
                and value.split(".")[0] != "127")
    if not IPV6_CHARS.fullmatch(value):
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def is_valid_nhs(value: str) -> bool:
    if not NHS_SHAPE.fullmatch(value):
        return False
    digits = value.replace(" ", "").replace("-", "")
    return nhs_check_digit(digits[:9]) == int(digits[9])


def is_valid_base58_address(value: str) -> bool:
    if not BASE58_ADDRESS_SHAPE.fullmatch(value):
        return False
    data = base58_decode(value)
    if data is None or len(data) != 25 or double_sha256(data[:21])[:4] != data[21:]:
        return False
    return data[0] == {"1": 0x00, "3": 0x05}[value[0]]


def is_valid_bech32_address(value: str) -> bool:
    if len(value) not in (42, 62) or not BECH32_ADDRESS_SHAPE.fullmatch(value):
        return False
    data = [BECH32_CHARSET.index(c) for c in value[3:]]
    witness_version = data[0]
    const = BECH32_CONST if witness_version == 0 else BECH32M_CONST
    if bech32_polymod(bech32_hrp_expand("bc") + data) != const:
        return False
    program = convert_bits(data[1:-6], 5, 8, False)
    return program is not None and len(program) in ((20, 32) if witness_version == 0 else (32,))


def is_valid_crypto(value: str) -> bool:
    return is_valid_base58_address(value) or is_valid_bech32_address(value)


def is_valid_dea(value: str) -> bool:
    return bool(DEA_SHAPE.fullmatch(value)) and dea_check_digit(value[2:8]) == value[8]


# The eight secrets of the specification of 2026-12-07: their rules, implemented here on their
# own (from the specification, not from the engine's code). A value whose random part (all
# after its prefix; an Azure key without its "==") has fewer than six distinct characters is a
# documentation placeholder and none of them; a JWT has no such part.
PLACEHOLDER_DISTINCT_CHARACTERS = 6
JWT_MAX_BYTES = 16 * 1024
# HEADER and PAYLOAD start with "eyJ" (base64 of '{"'), four bytes or more.
JWT_SEGMENT = re.compile(r"eyJ[A-Za-z0-9_-]+")
JWT_SIGNATURE = re.compile(r"[A-Za-z0-9_-]*")
GOOGLE_API_KEY_SHAPE = re.compile(r"AIza([0-9A-Za-z_-]{35})")
# Secret and restricted keys; publishable ones (pk_) are public by design.
STRIPE_API_KEY_SHAPE = re.compile(r"[sr]k_(?:live|test)_([0-9A-Za-z]{24,247})")
# Personal/project/group access, deploy, runner and pipeline trigger tokens; the newer ones
# carry '.'-separated parts.
GITLAB_TOKEN_SHAPE = re.compile(r"(?:glpat|gldt|glrt|glptt)-([0-9A-Za-z_.-]{20,100})")
HUGGINGFACE_TOKEN_SHAPE = re.compile(r"hf_([A-Za-z]{34})")
NPM_TOKEN_SHAPE = re.compile(r"npm_([0-9A-Za-z]{36})")
SENDGRID_API_KEY_SHAPE = re.compile(r"SG\.([0-9A-Za-z_-]{22}\.[0-9A-Za-z_-]{43})")
# The 88-byte key alone (base64 of 64 bytes); that it follows "AccountKey=" is the scanner's
# business (its candidate shape).
AZURE_STORAGE_KEY_SHAPE = re.compile(r"([A-Za-z0-9+/]{86})==")


def is_placeholder(random_part: str) -> bool:
    return len(set(random_part)) < PLACEHOLDER_DISTINCT_CHARACTERS


def has_digit_or_underscore(value: str) -> bool:
    return any(c in DIGITS or c == "_" for c in value)


def base64url_decode(segment: str) -> bytes | None:
    """A base64url segment without padding, decoded; None when its length is 1 mod 4."""
    if len(segment) % 4 == 1:
        return None
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def is_valid_jwt(value: str) -> bool:
    """HEADER.PAYLOAD.SIGNATURE: header and payload "eyJ..." of base64url whose length is not
    1 mod 4, the header decoding to '{' ... '"alg"' (the payload is not decoded), the signature
    base64url, empty only when the header's alg is "none" (a signed token cut after its claims
    is no token); a digit or '_' somewhere; at most JWT_MAX_BYTES. (A fourth segment is the
    scanner's business: its candidate shape takes it in, and then the value has four.)"""
    if len(value.encode()) > JWT_MAX_BYTES:
        return False
    parts = value.split(".")
    if len(parts) != 3:
        return False
    header, payload, signature = parts
    if not all(JWT_SEGMENT.fullmatch(segment) and len(segment) % 4 != 1 for segment in (header, payload)):
        return False
    decoded = base64url_decode(header)
    if signature == "" and not (decoded is not None and re.search(rb'"alg"\s*:\s*"none"', decoded)):
        return False
    return (bool(JWT_SIGNATURE.fullmatch(signature)) and decoded is not None and decoded.startswith(b"{")
            and b'"alg"' in decoded and has_digit_or_underscore(value))


def is_valid_google_api_key(value: str) -> bool:
    match = GOOGLE_API_KEY_SHAPE.fullmatch(value)
    return bool(match) and not is_placeholder(match[1])


def is_valid_stripe_api_key(value: str) -> bool:
    match = STRIPE_API_KEY_SHAPE.fullmatch(value)
    return bool(match) and not is_placeholder(match[1])


def is_valid_gitlab_token(value: str) -> bool:
    """The 20-100 characters after the prefix start and end with [0-9A-Za-z_-] and hold no "..";
    a '.' ending a sentence after the token is not part of it (see the candidate shape)."""
    match = GITLAB_TOKEN_SHAPE.fullmatch(value)
    if not match:
        return False
    body = match[1]
    return body[0] != "." and body[-1] != "." and ".." not in body and not is_placeholder(body)


def is_valid_huggingface_token(value: str) -> bool:
    """hf_ and 34 letters, an uppercase and a lowercase one among them ("hf_hub_download" is
    an identifier)."""
    match = HUGGINGFACE_TOKEN_SHAPE.fullmatch(value)
    return (bool(match) and any(c in UPPER for c in match[1]) and any(c in LOWER for c in match[1])
            and not is_placeholder(match[1]))


def is_valid_npm_token(value: str) -> bool:
    match = NPM_TOKEN_SHAPE.fullmatch(value)
    return bool(match) and not is_placeholder(match[1])


def is_valid_sendgrid_api_key(value: str) -> bool:
    """SG.<22>.<43>, a digit or '_' somewhere; the random part, for the placeholder rule, is
    all after "SG.", the '.' between the two parts included."""
    match = SENDGRID_API_KEY_SHAPE.fullmatch(value)
    return bool(match) and has_digit_or_underscore(value) and not is_placeholder(match[1])


def is_valid_azure_storage_key(value: str) -> bool:
    """86 base64 characters and "==", a digit among them (only after "AccountKey=", in any
    case: see the candidate shape)."""
    match = AZURE_STORAGE_KEY_SHAPE.fullmatch(value)
    return bool(match) and any(c in DIGITS for c in value) and not is_placeholder(match[1])


# The placeholder rule of the older token types (specification of 2026-12-07, night, item 4):
# fewer than six distinct characters in the random part (a policy-suite key's after its
# "psk_<scope>_", an OpenAI key's 48 or what follows "sk-proj-"/"sk-svcacct-"/"sk-admin-", an
# AWS key id's 16 after AKIA/ASIA, a GitHub token's after "ghp_"... or "github_pat_", a Slack
# token's all after "xoxb-"...) is a documentation placeholder and none of them. The other
# providers' sk- keys need a digit and a letter in their long part instead.
POLICY_SUITE_KEY_PARTS = re.compile(r"psk_(?:proj|svc|admin)_([0-9A-Za-z]{66})")
OPENAI_KEY_PARTS = re.compile(r"sk-([0-9A-Za-z]{48})|sk-(?:proj|svcacct|admin)-([A-Za-z0-9_-]{40,200})")
# Other providers' sk- keys (see provider_key_formats).
OTHER_SK_KEY_PARTS = re.compile(r"sk-ant-api03-([A-Za-z0-9_-]{93}AA)|sk-or-v1-([0-9a-f]{64})|sk-([0-9a-f]{32})")
AWS_KEY_PARTS = re.compile(r"(?:AKIA|ASIA)([A-Z2-7]{16})")
GITHUB_TOKEN_PARTS = re.compile(r"gh[pousr]_([0-9A-Za-z]{36})|github_pat_([0-9A-Za-z_]{82})")
# Bot, user, ... tokens; and the app-level tokens of the specification of 2026-12-07, late night
# (item 12): "xapp-", a digit, "-A" and 8-12 of [0-9A-Z], '-', 10-16 digits, '-', 64 lowercase
# hex digits (their random part; the whole run of [0-9A-Za-z-], see accepts()).
SLACK_TOKEN_PARTS = re.compile(r"xox[bpars]-((?:[0-9]+-)+[0-9A-Za-z]*[A-Za-z][0-9A-Za-z]*)"
                               r"|xapp-[0-9]-A[0-9A-Z]{8,12}-[0-9]{10,16}-([0-9a-f]{64})")


def random_part(shape: re.Pattern, value: str) -> str | None:
    """The first group that matched of the value's full match, or None without one."""
    match = shape.fullmatch(value)
    return None if match is None else next(group for group in match.groups() if group is not None)


def is_valid_policy_suite_key(value: str) -> bool:
    part = random_part(POLICY_SUITE_KEY_PARTS, value)
    return part is not None and not is_placeholder(part)


def is_valid_openai_key(value: str) -> bool:
    part = random_part(OPENAI_KEY_PARTS, value)
    if part is not None:
        return not is_placeholder(part)
    part = random_part(OTHER_SK_KEY_PARTS, value)
    return part is not None and any(c in DIGITS for c in part) and any(c in UPPER + LOWER for c in part)


def is_valid_aws_key(value: str) -> bool:
    part = random_part(AWS_KEY_PARTS, value)
    return part is not None and not is_placeholder(part)


def is_valid_github_token(value: str) -> bool:
    part = random_part(GITHUB_TOKEN_PARTS, value)
    return part is not None and not is_placeholder(part)


def is_valid_slack_token(value: str) -> bool:
    part = random_part(SLACK_TOKEN_PARTS, value)
    return part is not None and not is_placeholder(part)


# A password that stands for one (item 2): a variable, a template, a mask or the word itself.
STAND_IN_ENCLOSURES = (("${", "}"), ("$(", ")"), ("{{", "}}"), ("%(", ")s"), ("{", "}"), ("<", ">"), ("[", "]"))
STAND_IN_VARIABLE = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")
STAND_IN_WORDS = ("password", "passwd", "pass", "pwd", "secret", "changeme", "token", "mypassword",
                  "yourpassword", "your_password", "your-password", "yourtoken", "your_token", "pat")


def is_stand_in(password: str) -> bool:
    """Enclosed in ${ }, $( ), {{ }}, %( )s, { }, < > or [ ] with something between; $ and an
    identifier; three bytes or more all the same; or a word of STAND_IN_WORDS in any case."""
    data = password.encode()
    if any(password.startswith(opening) and password.endswith(closing)
           and len(password) > len(opening) + len(closing) for opening, closing in STAND_IN_ENCLOSURES):
        return True
    return (bool(STAND_IN_VARIABLE.fullmatch(password)) or (len(data) >= 3 and len(set(data)) == 1)
            or password.lower() in STAND_IN_WORDS)


# URL_CREDENTIALS: "user:password@host" (the password not a stand-in), or, right after
# "scheme://", "TOKEN@host" with a token of one of these types as the user and no password.
URL_TOKEN_USER_SHAPE = re.compile(r"([^\s/?#@:]+)@(?:[A-Za-z0-9._~%-]*[A-Za-z0-9_]|\[[0-9A-Fa-f:.]+\])")
URL_TOKEN_USER_TYPES = ("GITHUB_TOKEN", "GITLAB_TOKEN", "OPENAI_API_KEY", "SLACK_TOKEN", "NPM_TOKEN",
                        "HUGGINGFACE_TOKEN", "STRIPE_API_KEY", "GOOGLE_API_KEY", "POLICY_SUITE_KEY")


def credential_password(value: str) -> str | None:
    """The password of a "user:password@host" value: from the userinfo's first ':' to the last
    '@' (None when the value has no ':' before its last '@')."""
    userinfo = value[:value.rfind("@")]
    return userinfo[userinfo.index(":") + 1:] if ":" in userinfo else None


# /tmp/secrets_spec7.md 4f: a password that is a format's placeholder is none either.
URL_FORMAT_PLACEHOLDERS = ("%s", "%v", "{}")


def is_valid_url_credentials(value: str) -> bool:
    if URL_CREDENTIALS_SHAPE.fullmatch(value):
        password = credential_password(value)
        return not is_stand_in(password) and password not in URL_FORMAT_PLACEHOLDERS
    match = URL_TOKEN_USER_SHAPE.fullmatch(value)
    return bool(match) and any(VALIDATORS[t](match[1]) for t in URL_TOKEN_USER_TYPES)


# SECRET (item 1): the value of a setting whose name ends in one of these (in any case),
# directly before an optional closing quote, spaces or tabs and ':', '=' or '=>' (an '=' beside
# another '=' or after '!', '<' or '>' is a comparison). Score 0.8: a SECRET reading that
# overlaps a finding of a score-1.0 type is not reported (see findings).
SECRET_NAME_ENDINGS = ("password", "passwd", "passphrase", "pwd", "secret", "token", "apikey", "api_key", "api-key",
                       "accesskey", "access_key", "access-key", "secretkey", "secret_key", "secret-key",
                       # /tmp/secrets_spec6.md section 2a
                       "auth_key", "authkey", "auth-key", "signing_key", "signingkey", "signing-key",
                       "encryption_key", "encryptionkey", "encryption-key", "master_key", "masterkey", "master-key")
# /tmp/secrets_spec6.md section 2b: the name end "pass" where it starts a word, the byte before it no
# ASCII letter ("DB_PASS", "mail.pass", "\"pass\"", in any case), or written "Pass" right after a
# lowercase letter ("smtpPass"); never "bypass", "compass", "dbpass", "BYPASS". A "pass" name's value
# holds a digit or a symbol other than '_', '.' and '-' even when quoted ("pass": "passed" is none).
SECRET_PASS_END = rb"(?P<pass>(?<![A-Za-z])pass|(?-i:(?<=[a-z])Pass))"
# /tmp/secrets_spec5.md part A: two more separators. A call's two arguments: the name's closing
# quote (required: "password, ..." is a variable), spaces or tabs, ',', spaces or tabs, and the value
# in quotes, the same quote on both sides ("call"); a subscript's assignment: the name's closing quote
# and one ']' before the usual separator (os.environ["DB_PASSWORD"] = ...). The group "call" is set
# for the call form (secret_values takes the value's quotes).
# /tmp/secrets_spec6.md section 1: ":=" (Go, Pascal, Makefiles) is a separator too, spaces or tabs (any
# number, none too) on either side, with the value rules of '='.
# /tmp/secrets_spec7.md section 2: a name followed by a backslash before its closing quote
# (\"password\":\"...\", a JSON body logged inside a JSON string): the group "escaped" is set, and
# the value must be in escaped double quotes (secret_values).
SETTING_OPERATOR = rb"[ \t]*(?:=>|:=|:|(?<![=!<>])=(?!=))[ \t]*"
SETTING_SEPARATOR = (rb"(?:(?P<call>[\"'][ \t]*,[ \t]*)|(?P<escaped>\\\")" + SETTING_OPERATOR
                     + rb"|(?:[\"']\]|[\"']?)" + SETTING_OPERATOR + rb")")
SECRET_SETTING = re.compile(
    rb"(?:" + b"|".join(re.escape(e.encode()) for e in SECRET_NAME_ENDINGS) + rb"|" + SECRET_PASS_END + rb")"
    + SETTING_SEPARATOR, re.I)
# /tmp/secrets_spec4.md item 3: 6 to 4,096 bytes, and no window: a value runs to its first stop byte
# however far that is (an AWS session token of ~1,000 bytes is a SECRET).
SECRET_MIN_BYTES, SECRET_MAX_BYTES = 6, 4096
WHITESPACE_BYTES = b" \t\n\r\x0b\x0c"
QUOTE_BYTES = b"\"'"
# An unquoted value ends at the first of these (or white space).
SECRET_UNQUOTED_STOP = QUOTE_BYTES + b"`,;(){}[]<>"
# "fake" and "sample": the specification's vocabulary (/tmp/secrets_spec6.md, "QUOTED VALUE rules").
SECRET_PLACEHOLDER_WORDS = ("your", "here", "example", "replace", "placeholder", "dummy", "redacted", "xxx",
                            "***", "...", "fake", "sample")
SECRET_NAME_IN_CODE = re.compile(r"[A-Za-z_.-]+")
# /tmp/secrets_spec6.md: a setting's value is no stand-in of these either: the word "changeit" (Java's
# keystores' default) and Jasypt's ENC(...) ("password=ENC(G6N718Uu...)": an encrypted property).
SECRET_STAND_IN_WORDS = ("changeit",
                         # /tmp/secrets_spec7.md 4e: label words of other languages, any case
                         "geheimnis", "secreto", "segreto")
JASYPT_STAND_IN = re.compile(r"ENC\(.+\)")
# /tmp/secrets_spec7.md section 1: a quoted value's opening quote Q may be '"', '\'' or a backquote; it
# runs over bytes that are neither white space nor Q nor a backslash, or a backslash and any byte that
# is no white space, to Q (the other quotes and the escapes are part of it). Section 2: a value in
# escaped double quotes runs from \" over bytes that are neither white space nor '"' nor a backslash,
# or a backslash and a byte that is neither white space nor '"', to \".
OPENING_QUOTE_BYTES = b"\"'`"
QUOTED_RUNS = {quote: re.compile(rb"(?:[^\s\\%s]|\\\S)*" % re.escape(bytes([quote])))
               for quote in OPENING_QUOTE_BYTES}
ESCAPED_QUOTE_RUN = re.compile(rb'(?:[^\s"\\]|\\[^\s"])*')
# /tmp/secrets_spec7.md section 4, values that are no SECRET under any name. a) A version as package
# manifests write it: any of ^ ~ < > = v, two or more parts of digits (or 'x', '*') joined by '.', then
# nothing or '-'/'+' and anything.
VERSION_VALUE = re.compile(r"[\^~<>=v]*(?:[0-9]+|x|\*)(?:\.(?:[0-9]+|x|\*))+(?:[-+].*)?", re.S)
# b) Unquoted only: a dotted path in code, two or more parts joined by '.' or '?.', each named as code
# (a lowercase letter or '_', then lowercase letters, digits, '_', and a capital only before a
# lowercase letter or a digit), the first part without digits.
CODE_PATH_FIRST_PART = r"[a-z_](?:[a-z_]|[A-Z](?=[a-z]))*"
CODE_PATH_PART = r"[a-z_](?:[a-z0-9_]|[A-Z](?=[a-z0-9]))*"
DOTTED_CODE_PATH = re.compile(r"%s(?:\??\.%s)+" % (CODE_PATH_FIRST_PART, CODE_PATH_PART))
# c) A path of names: a '/' in it, every '/'-separated part a name in code (ASCII letters, '_', '.' and
# '-', no digit; the first part may also be empty or '~'), and either a start of '/', './', '../' or
# '~/' or no capital letter.
PATH_NAME_PART = re.compile(r"[A-Za-z_.-]+")
PATH_OF_NAMES_STARTS = ("/", "./", "../", "~/")
# d) A password hash in crypt format.
CRYPT_HASH_PREFIXES = ("$2a$", "$2b$", "$2y$", "$argon2", "$1$", "$5$", "$6$", "$y$", "$pbkdf2", "$scrypt$")


def is_path_of_names(value: str) -> bool:
    """/tmp/secrets_spec7.md 4c."""
    if "/" not in value:
        return False
    first, *rest = value.split("/")
    if not (first in ("", "~") or PATH_NAME_PART.fullmatch(first)) or not all(PATH_NAME_PART.fullmatch(p) for p in rest):
        return False
    return value.startswith(PATH_OF_NAMES_STARTS) or not any("A" <= c <= "Z" for c in value)


def is_script_label(value: str) -> bool:
    """/tmp/secrets_spec7.md 4e: letters only (Unicode letters: no ASCII digit nor symbol, no other
    mark or sign either), at least one of them not ASCII ("パスワード", "API密钥", "Zugangsschlüssel")."""
    return value.isalpha() and not value.isascii()


def is_no_secret_value(value: str, unquoted: bool) -> bool:
    """/tmp/secrets_spec7.md section 4, a) to e): a version, (unquoted) a dotted path in code, a path
    of names, a crypt password hash, a label in another script; whatever the name."""
    return bool(VERSION_VALUE.fullmatch(value) or (unquoted and DOTTED_CODE_PATH.fullmatch(value))
                or is_path_of_names(value) or value.startswith(CRYPT_HASH_PREFIXES) or is_script_label(value))


def ends_in_secret_name(name: bytes, before: bytes = b"") -> str | None:
    """"plain" when the name ends (in any case) in one of SECRET_NAME_ENDINGS, "pass" when it ends
    in "pass" by section 2b's rules (before: the bytes before the name, for the byte before a name
    that is "pass" alone), None otherwise."""
    lowered = name.lower()
    if lowered.endswith(tuple(e.encode() for e in SECRET_NAME_ENDINGS)):
        return "plain"
    if not lowered.endswith(b"pass"):
        return None
    previous = (before + name)[-5:-4]
    if not re.fullmatch(rb"[A-Za-z]", previous):
        return "pass"
    return "pass" if name.endswith(b"Pass") and re.fullmatch(rb"[a-z]", previous) else None


def names_a_secret(value: str) -> bool:
    """A name in code that itself names a secret ("session_token", "db-password", "self.token"):
    never a setting's value, quoted or not."""
    return bool(SECRET_NAME_IN_CODE.fullmatch(value)) and ends_in_secret_name(value.encode()) is not None


def has_placeholder_word(value: str) -> bool:
    """One of SECRET_PLACEHOLDER_WORDS in any case, but "xxx" only in one case ("xxx", "XXX"):
    a random token's "xXx" is none."""
    lowered = value.lower()
    return "xxx" in value or "XXX" in value or any(
        word in lowered for word in SECRET_PLACEHOLDER_WORDS if word != "xxx")
# The types whose findings score 1.0 and win an overlap with a SECRET reading.
SCORE_ONE_TYPES = ("POLICY_SUITE_KEY", "OPENAI_API_KEY", "AWS_ACCESS_KEY", "GITHUB_TOKEN", "SLACK_TOKEN",
                   "PRIVATE_KEY", "URL_CREDENTIALS", "JWT", "GOOGLE_API_KEY", "STRIPE_API_KEY", "GITLAB_TOKEN",
                   "HUGGINGFACE_TOKEN", "NPM_TOKEN", "SENDGRID_API_KEY", "AZURE_STORAGE_KEY",
                   # the eleven of the specification of 2026-12-07, late night
                   "GROQ_API_KEY", "XAI_API_KEY", "GOOGLE_OAUTH_CLIENT_SECRET", "GOOGLE_OAUTH_TOKEN", "PYPI_TOKEN",
                   "DOCKER_HUB_TOKEN", "WEBHOOK_SIGNING_SECRET", "TELEGRAM_BOT_TOKEN", "SLACK_WEBHOOK_URL",
                   "AZURE_SHARED_ACCESS_KEY", "AZURE_SAS_TOKEN",
                   # the ten of /tmp/secrets_spec4.md
                   "PERPLEXITY_API_KEY", "REPLICATE_API_TOKEN", "LANGSMITH_API_KEY", "DATABRICKS_TOKEN",
                   "ATLASSIAN_API_TOKEN", "VAULT_TOKEN", "AZURE_CLIENT_SECRET", "DIGITALOCEAN_TOKEN",
                   "POSTMAN_API_KEY", "GRAFANA_TOKEN",
                   # /tmp/secrets_spec5.md part B, /tmp/secrets_spec6.md section 7
                   "DISCORD_BOT_TOKEN", "DISCORD_WEBHOOK_URL",
                   # the fifth batch's (/tmp/mrz_vat_spec.md): a VAT number as a setting's value is one
                   "IDENTITY_DOCUMENT_MRZ", "EU_VAT_NUMBER")


def is_valid_secret(value: str, quoted: bool = True) -> bool:
    """A setting's value: 6-4,096 bytes, no white space (unquoted: no quote nor byte of
    SECRET_UNQUOTED_STOP either; quoted, the other quotes and escapes are part of it since
    /tmp/secrets_spec7.md), not only digits, no stand-in, none of the placeholder words in any case,
    none of section 4's values of spec 7 (is_no_secret_value); unquoted, not only letters, '_', '.'
    and '-' (a name in code or a type)."""
    data = value.encode()
    stops = WHITESPACE_BYTES + (b"" if quoted else SECRET_UNQUOTED_STOP)
    if not SECRET_MIN_BYTES <= len(data) <= SECRET_MAX_BYTES or any(byte in stops for byte in data):
        return False
    if data.isdigit() or is_stand_in(value) or has_placeholder_word(value):
        return False
    # /tmp/secrets_spec6.md: "changeit", ENC(...), a name that names a secret ("session_token").
    if value.lower() in SECRET_STAND_IN_WORDS or JASYPT_STAND_IN.fullmatch(value) or names_a_secret(value):
        return False
    if is_no_secret_value(value, unquoted=not quoted):
        return False
    return quoted or not SECRET_NAME_IN_CODE.fullmatch(value)


def is_valid_call_value(value: str) -> bool:
    """A call's second argument after a secret's name (/tmp/secrets_spec5.md A.1): the quoted
    value's rules and the unquoted one's "no name in code" (a digit or a symbol in it: the list
    ("password", "api_key", "token") holds no setting)."""
    return is_valid_secret(value) and not SECRET_NAME_IN_CODE.fullmatch(value)


def is_valid_setting_value(value: str, kind: str) -> bool:
    """A setting's value by where it stands: "quoted", "unquoted", a call's "call", "bare" (a
    command line's value up to white space, a curl user's password: the quoted value's rules and a
    digit or a symbol, /tmp/secrets_spec6.md), or an XML element's "element" (the quoted value's
    rules); "pass-" before the kind: a name ending in "pass", whose value holds a digit or a symbol in
    every form (section 2b). A bare or an element's value holds no quote ('"' or '\''), as before
    /tmp/secrets_spec7.md (which lets quotes into quoted values only); a bare value, unquoted, is no
    dotted path in code (spec 7, 4b)."""
    if kind.startswith("pass-"):
        return not SECRET_NAME_IN_CODE.fullmatch(value) and is_valid_setting_value(value, kind[5:])
    if kind in ("bare", "element") and any(quote in value for quote in "\"'"):
        return False
    if kind == "bare":
        return is_valid_call_value(value) and not DOTTED_CODE_PATH.fullmatch(value)
    if kind == "element":
        return is_valid_secret(value)
    if kind == "call":
        return is_valid_call_value(value)
    return is_valid_secret(value, kind == "quoted")


# /tmp/secrets_spec6.md sections 3 to 6, implemented here from it. An XML element: an opening tag with
# no attributes whose NAME (letters, digits, '_', '.', '-', ':') ends in a secret's name, the value (no
# white space, no '<'), "</" right after it. An XML attribute pair: key= or name= (either case), the
# quoted NAME, one or more spaces or tabs, value= (either case), the quoted value; no spaces around
# '='. A long option: "--NAME" after a space, a tab or a line's start, one or more spaces or tabs, the
# value quoted (either quote) or up to white space. curl's user: -u or --user after a space, a tab or
# a line's start, spaces or tabs (or '=' for --user), an optional quote, a user (no white space, ':' or
# quote), ':', the password up to white space (after an opening quote: or a quote).
XML_ELEMENT = re.compile(rb"<(?P<name>[A-Za-z0-9_.:-]+)>(?P<value>[^\s<]*)</")
XML_ATTRIBUTE_PAIR = re.compile(rb"(?:key|name)=(?P<quote>[\"'])(?P<name>[^\"'\s]+)(?P=quote)[ \t]+value=[\"'`]", re.I)
LONG_OPTION = re.compile(rb"(?<![^ \t\n])--(?P<name>[^\s=]+)[ \t]+")
CURL_USER = re.compile(rb"(?<![^ \t\n])(?:-u[ \t]+|--user(?:[ \t]+|=))(?P<quote>[\"']?)[^\s:\"']+:")
NOT_WHITE_SPACE = re.compile(rb"[^ \t\n\r\x0b\x0c]*")
NOT_WHITE_SPACE_NOR_QUOTE = re.compile(rb"[^ \t\n\r\x0b\x0c\"']*")


def quoted_value_at(data: bytes, start: int) -> tuple[int, int] | None:
    """The value opened by the quote at start (/tmp/secrets_spec7.md section 1: to the next unescaped
    quote of the same kind, other quotes and backslash escapes inside, no white space), or None."""
    if start >= len(data) or data[start] not in OPENING_QUOTE_BYTES:
        return None
    quote = data[start]
    end = QUOTED_RUNS[quote].match(data, start + 1).end()
    return (start + 1, end) if start + 1 < end < len(data) and data[end] == quote else None


def escaped_quoted_value_at(data: bytes, start: int) -> tuple[int, int] | None:
    """The value in escaped double quotes opened by the \" at start (/tmp/secrets_spec7.md section 2),
    or None."""
    if data[start:start + 2] != b'\\"':
        return None
    end = ESCAPED_QUOTE_RUN.match(data, start + 2).end()
    return (start + 2, end) if end > start + 2 and data[end:end + 2] == b'\\"' else None


@functools.lru_cache(maxsize=64)
def secret_values(data: bytes) -> dict[tuple[int, int], frozenset[str]]:
    """The value of every setting of a secret's name in the text, (begin, end) -> its kinds
    ("quoted", "unquoted", "call", "bare", each "pass-" too after a name ending in "pass"), whether or
    not it is valid: quoted, the bytes between a quote and the next quote (none of them white space);
    unquoted, the run up to white space or a byte of SECRET_UNQUOTED_STOP, however far (no window
    since /tmp/secrets_spec4.md); a call's second argument, the bytes between a quote and the next
    one, which is the same quote; and /tmp/secrets_spec6.md's XML elements and attribute pairs (their
    values quoted ones), long options and curl's passwords ("bare")."""
    values: dict[tuple[int, int], set[str]] = {}

    def add(span: tuple[int, int], kind: str, name_kind: str | None) -> None:
        values.setdefault(span, set()).add(("pass-" if name_kind == "pass" else "") + kind)

    for match in SECRET_SETTING.finditer(data):
        start, limit = match.end(), len(data)
        name_kind = "pass" if match["pass"] is not None else "plain"
        if match["escaped"] is not None or data[start:start + 2] == b'\\"':
            # /tmp/secrets_spec7.md section 2: \"password\":\"...\", password=\"...\" (JAAS in Java).
            span = escaped_quoted_value_at(data, start)
            if span:
                add(span, "quoted", name_kind)
        elif data[start:start + 1] and data[start] in OPENING_QUOTE_BYTES:
            span = quoted_value_at(data, start)
            if span:
                add(span, "call" if match["call"] is not None else "quoted", name_kind)
        elif match["call"] is not None:
            continue  # a call's argument unquoted: a variable
        else:
            end = start
            while end < limit and data[end] not in SECRET_UNQUOTED_STOP + WHITESPACE_BYTES:
                end += 1
            if end > start:
                add((start, end), "unquoted", name_kind)
    if b"</" in data:
        for match in XML_ELEMENT.finditer(data):
            name_kind = ends_in_secret_name(match["name"], data[max(0, match.start("name") - 1):match.start("name")])
            if name_kind and match.end("value") > match.start("value"):
                add(match.span("value"), "element", name_kind)
    for match in XML_ATTRIBUTE_PAIR.finditer(data):
        name_kind = ends_in_secret_name(match["name"], data[max(0, match.start("name") - 1):match.start("name")])
        span = quoted_value_at(data, match.end() - 1)
        if name_kind and span:
            add(span, "quoted", name_kind)
    if b"--" in data:
        for match in LONG_OPTION.finditer(data):
            name_kind = ends_in_secret_name(match["name"], data[max(0, match.start("name") - 1):match.start("name")])
            if not name_kind or match.end() >= len(data):
                continue
            if data[match.end()] in OPENING_QUOTE_BYTES:
                span = quoted_value_at(data, match.end())
                if span:
                    add(span, "quoted", name_kind)
            else:
                end = NOT_WHITE_SPACE.match(data, match.end()).end()
                if end > match.end():
                    add((match.end(), end), "bare", name_kind)
    for match in CURL_USER.finditer(data):
        end = (NOT_WHITE_SPACE_NOR_QUOTE if match["quote"] else NOT_WHITE_SPACE).match(data, match.end()).end()
        if end > match.end():
            add((match.end(), end), "bare", None)
    return {span: frozenset(kinds) for span, kinds in values.items()}


# SECRET (specification of 2026-12-07, late night, item 13): the credentials of an Authorization
# header. NAME ending (in any case) in "authorization", an optional closing quote, spaces or tabs,
# ':' or '=', spaces or tabs, an optional opening quote, the SCHEME (Basic, Bearer or Token in any
# case), one or more spaces or tabs, and the VALUE: 1+ of [A-Za-z0-9._~+/-] then any '='s, within
# the text (never across a line break: the syntax holds none).
# No byte-after rule: the value is what that pattern takes ("abc=def" is "abc=").
# /tmp/secrets_spec4.md: the separator may be PHP's "=>" too, the scheme Elasticsearch's "ApiKey"
# (validated as Basic credentials are); VALUE never ends with '.' (a sentence's full stop after the
# credentials is no part of them); the engine looks as far as the credentials run (no window).
# /tmp/secrets_spec5.md part A: a call's two arguments (req.Header.Set("Authorization", "Bearer ..."):
# the name's closing quote, ',', the value's opening quote, the scheme and the credentials up to the
# same closing quote) and a subscript's ']' before the separator (headers['Authorization'] = ...).
# /tmp/secrets_spec7.md section 3: a backquote may open the value as a quote does (a JavaScript
# template literal: headers: { Authorization: `Bearer ...` }), in every form.
AUTHORIZATION_HEADER = re.compile(
    rb"authorization(?:(?P<call>[\"'][ \t]*,[ \t]*(?P<quote>[\"'`]))"
    rb"|(?:[\"']\]|[\"']?)[ \t]*(?:=>|[:=])[ \t]*[\"'`]?)(?P<scheme>basic|bearer|token|apikey)[ \t]+", re.I)
AUTHORIZATION_VALUE = re.compile(rb"[A-Za-z0-9._~+/-]*[A-Za-z0-9_~+/-]=*")
BASIC_MIN_BYTES, BASIC_MAX_BYTES = 8, 1024
BEARER_MIN_BYTES, BEARER_MAX_BYTES = 8, 4096
BASE64_BODY = re.compile(r"[A-Za-z0-9+/]+")


def basic_credentials(value: str) -> str | None:
    """A Basic VALUE decoded: standard base64 of 8-1024 bytes, its padding none or complete (one or
    two '='), the unpadded length not 1 mod 4, decoding to printable ASCII (0x20-0x7E); None
    otherwise."""
    if not BASIC_MIN_BYTES <= len(value.encode()) <= BASIC_MAX_BYTES:
        return None
    body = value.rstrip("=")
    padding = len(value) - len(body)
    if not BASE64_BODY.fullmatch(body) or len(body) % 4 == 1:
        return None
    if padding and (padding > 2 or (len(body) + padding) % 4):
        return None
    decoded = base64.b64decode(body + "=" * (-len(body) % 4))
    if not all(0x20 <= byte <= 0x7E for byte in decoded):
        return None
    return decoded.decode("ascii")


def is_valid_basic_credentials(value: str) -> bool:
    """"user:password" in base64: a ':' with a byte or more before the first one and after it,
    the password (all after the first ':') no stand-in (is_stand_in, URL_CREDENTIALS' rule)."""
    decoded = basic_credentials(value)
    if decoded is None:
        return False
    colon = decoded.find(":")
    return 0 < colon < len(decoded) - 1 and not is_stand_in(decoded[colon + 1:])


def is_valid_bearer_credentials(value: str) -> bool:
    """A Bearer or Token VALUE: 8-4096 bytes of the value's pattern, not only digits, not only
    letters, '_', '.' and '-' ("Bearer ACCESS_TOKEN"), no placeholder word (has_placeholder_word)."""
    data = value.encode()
    if not BEARER_MIN_BYTES <= len(data) <= BEARER_MAX_BYTES or not AUTHORIZATION_VALUE.fullmatch(data):
        return False
    return not (data.isdigit() or SECRET_NAME_IN_CODE.fullmatch(value) or has_placeholder_word(value))


def is_valid_authorization_credentials(value: str, scheme: str) -> bool:
    """Basic and ApiKey (base64 of "id:key"): is_valid_basic_credentials; Bearer and Token:
    is_valid_bearer_credentials."""
    if scheme in ("basic", "apikey"):
        return is_valid_basic_credentials(value)
    return is_valid_bearer_credentials(value)


def is_valid_secret_value(value: str) -> bool:
    """SECRET's validator: a setting's value (quoted form's rules) or an Authorization header's
    credentials of any scheme; accepts() applies the rules of where the value stands."""
    return is_valid_secret(value) or is_valid_basic_credentials(value) or is_valid_bearer_credentials(value)


@functools.lru_cache(maxsize=64)
def authorization_values(data: bytes) -> dict[tuple[int, int], str]:
    """The VALUE of every Authorization header in the text, (begin, end) -> its scheme in
    lowercase, whether or not it is valid."""
    values = {}
    for match in AUTHORIZATION_HEADER.finditer(data):
        value = AUTHORIZATION_VALUE.match(data, match.end())
        if value and (match["call"] is None or data[value.end():value.end() + 1] == match["quote"]):
            values[value.span()] = match["scheme"].decode().lower()
    return values


# SECRET under a setting whose name ends (in any case) in "auth" (/tmp/secrets_spec4.md item 8):
# Docker's config.json "auth", basic_auth=, proxy_auth:, .npmrc's _auth=: the name, an optional
# quote, spaces, ':' or '=', spaces, an optional quote, then a run of standard base64 and its '='
# padding that decodes as Basic credentials do (printable "user:password", both parts non-empty,
# the password no stand-in).
# /tmp/secrets_spec5.md part A: as a call's two arguments too (.set("auth", "dXNlcjpw...")), the
# value in quotes, the same on both sides; and a subscript's ']' before the separator.
AUTH_SETTING = re.compile(rb"auth(?:(?P<call>[\"'][ \t]*,[ \t]*(?P<quote>[\"']))"
                          rb"|(?:[\"']\]|[\"']?)[ \t]*[:=][ \t]*[\"']?)(?P<value>[A-Za-z0-9+/]+=*)", re.I)


@functools.lru_cache(maxsize=64)
def auth_values(data: bytes) -> set[tuple[int, int]]:
    """The base64 run after every setting whose name ends in "auth", valid or not (a call's
    argument only up to its closing quote)."""
    return {match.span("value") for match in AUTH_SETTING.finditer(data)
            if match["call"] is None or data[match.end():match.end() + 1] == match["quote"]}


# The eleven secret types of the specification of 2026-12-07, late night (/tmp/secrets_spec3.md),
# implemented here from it. Each shape's group is its random part (fewer than six distinct
# characters in it: a documentation placeholder, none of the type). What stands before and after a
# value (the glued rule, the whole run, "SharedAccessKey=", "?sig=") is the scanner's business.
GROQ_API_KEY_SHAPE = re.compile(r"gsk_([0-9A-Za-z]{52})")
XAI_API_KEY_SHAPE = re.compile(r"xai-([0-9A-Za-z]{80})")
GOOGLE_OAUTH_CLIENT_SECRET_SHAPE = re.compile(r"GOCSPX-([0-9A-Za-z_-]{28})")
# An OAuth access token: its body ends with [0-9A-Za-z_-] and holds no ".." (nor starts with '.':
# "ya29.." holds one).
GOOGLE_OAUTH_TOKEN_SHAPE = re.compile(r"ya29\.([0-9A-Za-z_.-]{30,2048})")
# The base64url of a macaroon's location, pypi.org's or test.pypi.org's, then the rest of it.
PYPI_TOKEN_PREFIXES = ("pypi-AgEIcHlwaS5vcmc", "pypi-AgENdGVzdC5weXBpLm9yZw")
PYPI_TOKEN_SHAPE = re.compile(r"pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)([0-9A-Za-z_-]{50,2000})")
DOCKER_HUB_TOKEN_SHAPE = re.compile(r"dckr_pat_([0-9A-Za-z_-]{27})")
WEBHOOK_SIGNING_SECRET_SHAPE = re.compile(r"whsec_([0-9A-Za-z+/]{32,88})")
# An optional "bot" (of a Bot API URL), the bot id, ':', "AA" and 33 more.
TELEGRAM_BOT_TOKEN_SHAPE = re.compile(r"(?:bot)?[1-9][0-9]{7,9}:AA([0-9A-Za-z_-]{33})")
SLACK_WEBHOOK_URL_SHAPE = re.compile(
    r"https?://hooks\.slack\.com/(?:services/T[0-9A-Z]{8,12}/B[0-9A-Z]{8,12}/([0-9A-Za-z]{24})"
    r"|(?:workflows|triggers)/T[0-9A-Z]{8,12}/(?:[0-9A-Za-z]{1,24}/){1,2}([0-9A-Za-z]{24,64}))")
# Base64 of 32 bytes: the 44 bytes after "SharedAccessKey=", a decoded shared access signature.
BASE64_OF_32_BYTES = re.compile(r"([A-Za-z0-9+/]{43})=")
# A shared access signature's sig: raw, then with %2B, %2F and %3D (either hex case) decoded.
AZURE_SAS_RAW = re.compile(r"[0-9A-Za-z%+/]+=*")
AZURE_SAS_ESCAPES = re.compile(r"%(2[BbFf]|3[Dd])")
AZURE_SAS_ESCAPED = {"2B": "+", "2F": "/", "3D": "="}


def random_part_valid(shape: re.Pattern, value: str) -> bool:
    """The value has the shape and its random part is no placeholder."""
    part = random_part(shape, value)
    return part is not None and not is_placeholder(part)


def is_valid_groq_api_key(value: str) -> bool:
    return random_part_valid(GROQ_API_KEY_SHAPE, value)


def is_valid_xai_api_key(value: str) -> bool:
    return random_part_valid(XAI_API_KEY_SHAPE, value)


def is_valid_google_oauth_client_secret(value: str) -> bool:
    return random_part_valid(GOOGLE_OAUTH_CLIENT_SECRET_SHAPE, value)


def is_valid_google_oauth_token(value: str) -> bool:
    """ya29. and 30-2048 characters that end with [0-9A-Za-z_-] and hold no ".." (a '.' ending a
    sentence after the token is not part of it: see the candidate shape)."""
    part = random_part(GOOGLE_OAUTH_TOKEN_SHAPE, value)
    return (part is not None and part[0] != "." and part[-1] != "." and ".." not in part
            and not is_placeholder(part))


def is_valid_pypi_token(value: str) -> bool:
    return random_part_valid(PYPI_TOKEN_SHAPE, value)


def is_valid_docker_hub_token(value: str) -> bool:
    return random_part_valid(DOCKER_HUB_TOKEN_SHAPE, value)


def is_valid_webhook_signing_secret(value: str) -> bool:
    return random_part_valid(WEBHOOK_SIGNING_SECRET_SHAPE, value)


def is_valid_telegram_bot_token(value: str) -> bool:
    return random_part_valid(TELEGRAM_BOT_TOKEN_SHAPE, value)


def is_valid_slack_webhook_url(value: str) -> bool:
    """The whole URL from its scheme; the random part is the services form's 24 characters or the
    workflows and triggers forms' last part."""
    return random_part_valid(SLACK_WEBHOOK_URL_SHAPE, value)


def is_valid_azure_shared_access_key(value: str) -> bool:
    """43 base64 characters and '=' (only right after "SharedAccessKey=": see accepts())."""
    return random_part_valid(BASE64_OF_32_BYTES, value)


def azure_sas_decoded(value: str) -> str | None:
    """A raw sig= value with %2B, %2F and %3D (either hex case) decoded; None when it is not of
    [0-9A-Za-z%+/] and then '='s, or holds another '%'."""
    if not AZURE_SAS_RAW.fullmatch(value) or "%" in AZURE_SAS_ESCAPES.sub("", value):
        return None
    return AZURE_SAS_ESCAPES.sub(lambda match: AZURE_SAS_ESCAPED[match[1].upper()], value)


def is_valid_azure_sas_token(value: str) -> bool:
    """Decoded, 43 base64 characters and '=' (base64 of an HMAC-SHA256); a digit in the raw value
    (the '2' or '3' of an escape counts); only after "?sig=" or "&sig=" (see accepts())."""
    decoded = azure_sas_decoded(value)
    part = None if decoded is None else random_part(BASE64_OF_32_BYTES, decoded)
    return part is not None and any(c in DIGITS for c in value) and not is_placeholder(part)


# The written forms, letters in either case (needs_context says which count on their own).
NINO_SHAPE = re.compile(r"([A-Za-z]{2})[ -]?(?:([0-9]{6})|([0-9]{2})[ -]([0-9]{2})[ -]([0-9]{2}))[ -]?([A-Za-z])")
NINO_DOCUMENT_FORM = re.compile(r"[A-Z]{2} [0-9]{2} [0-9]{2} [0-9]{2} [A-Z]")  # as HMRC prints it
NIF_SHAPE = re.compile(r"([0-9]{8})[- ]?([A-Za-z])|([0-9]{2}\.[0-9]{3}\.[0-9]{3})[- ]?([A-Za-z])")
NIE_SHAPE = re.compile(r"([XYZxyz])[ -]?([0-9]{7})[ -]?([A-Za-z])")
FISCAL_CODE_SHAPE = re.compile(
    r"[A-Z]{6}[0-9LMNPQRSTUV]{2}[%s][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]" % FISCAL_CODE_MONTHS)
PESEL_SHAPE = re.compile(r"[0-9]{11}")
FI_CODE_SHAPE = re.compile(r"([0-9]{6})([-+A-FU-Y])([0-9]{3})([0-9A-Y])")
# Compact, or grouped as the carte Vitale prints it (1 2 2 2 3 3 2); Corsica's A and B uppercase.
NIR_SHAPES = tuple(re.compile(separator.join((
    r"([0-9])", r"([0-9]{2})", r"([0-9]{2})", r"([0-9]{2}|2[AB])", r"([0-9]{3})", r"([0-9]{3})", r"([0-9]{2})")))
    for separator in ("", " "))
NIR_GROUPS = (1, 2, 2, 2, 3, 3, 2)
BSN_SHAPE = re.compile(r"[0-9]{9}|[0-9]{4}\.[0-9]{2}\.[0-9]{3}")
# YYMMDD or YYYYMMDD, '-', '+' or nothing, birth number and check digit.
SE_PIN_SHAPE = re.compile(r"([0-9]{2})?([0-9]{2})([0-9]{2})([0-9]{2})([-+]?)([0-9]{3})([0-9])")
# Compact, or grouped 2 3 3 3 by single spaces.
DE_TAX_ID_SHAPE = re.compile(r"[1-9][0-9]{10}|[1-9][0-9] [0-9]{3} [0-9]{3} [0-9]{3}")
KVNR_SHAPE = re.compile(r"([A-Z])([0-9]{8})([0-9])")
# A Belgian national number as the eID card prints it, YY.MM.DD-SSS.CC (counts on its own), and
# as people type it: compact, 850730-033-28, 850730 033 28, 85 07 30 033 28, 85.07.30-033 28.
BE_DOCUMENT_FORM = re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{2}-[0-9]{3}\.[0-9]{2}")
BE_NATIONAL_NUMBER_SHAPE = re.compile(
    r"[0-9]{2}\.[0-9]{2}\.[0-9]{2}-[0-9]{3}[. ][0-9]{2}|[0-9]{11}|[0-9]{6}(?:-[0-9]{3}-| [0-9]{3} )[0-9]{2}"
    r"|[0-9]{2} [0-9]{2} [0-9]{2} [0-9]{3} [0-9]{2}")
# Seven digits, a space before the letters or none, the check letter and an optional second
# letter, in either case.
PPSN_SHAPE = re.compile(r"([0-9]{7}) ?([A-Za-z])([A-Za-z]?)")
# DDMMYY, '-', a space or nothing, SSSS (the first of them the century's).
DK_CPR_SHAPE = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2})[- ]?([0-9])[0-9]{3}")
# NNNC DDMMYY as the e-card prints it, or compact.
AT_SVNR_SHAPE = re.compile(r"([1-9][0-9]{2})([0-9]) ?([0-9]{6})")
PT_TAX_ID_SHAPE = re.compile(r"[0-9]{9}|[0-9]{3} [0-9]{3} [0-9]{3}")


def is_valid_nino(value: str) -> bool:
    """Compact "AB123456C" or in pairs "AB 12 34 56 C", uppercase (the compact form counts
    only after a context word: see needs_context)."""
    match = NINO_SHAPE.fullmatch(value)
    return bool(match) and nino_prefix_valid(match[1].upper()) and match[6].upper() in NINO_SUFFIXES


def is_valid_nif(value: str) -> bool:
    """12345678Z, 12345678-Z, 12345678 Z, 12.345.678-Z, 12.345.678Z."""
    match = NIF_SHAPE.fullmatch(value)
    if not match:
        return False
    digits, letter = (match[1], match[2]) if match[1] else (match[3].replace(".", ""), match[4])
    return dni_letter(digits) == letter.upper()


def is_valid_nie(value: str) -> bool:
    """X1234567L, X-1234567-L, X1234567-L."""
    match = NIE_SHAPE.fullmatch(value)
    if not match:
        return False
    return nie_letter(match[1].upper(), match[2]) == match[3].upper()


def is_valid_fiscal_code(value: str) -> bool:
    value = value.upper()
    if not FISCAL_CODE_SHAPE.fullmatch(value) or not any(c in DIGITS for c in value):
        return False
    day = int(fiscal_code_decode(value[9:11]))
    return (1 <= day <= 31 or 41 <= day <= 71) and fiscal_code_check_letter(value[:15]) == value[15]


def is_valid_pesel(value: str) -> bool:
    return (bool(PESEL_SHAPE.fullmatch(value)) and pesel_date_valid(value)
            and pesel_check_digit(value[:10]) == value[10])


def is_valid_fi_code(value: str) -> bool:
    match = FI_CODE_SHAPE.fullmatch(value.upper())
    if not match:
        return False
    date, sign, number, check = match[1], match[2], match[3], match[4]
    day, month, year = int(date[0:2]), int(date[2:4]), int(date[4:6])
    return (date_exists(FI_CENTURY_SIGNS[sign] + year, month, day) and 2 <= int(number) <= 899
            and fi_check_character(date + number) == check)


def is_valid_nir(value: str) -> bool:
    """185057800608491 or 1 85 05 78 006 084 91: sex 1, 2, 3, 4, 7 or 8; month 01-12, 20, 30-42
    or 50-99; department 01-99, 2A or 2B; order number 001-999; the mod-97 key."""
    match = next((m for m in (shape.fullmatch(value) for shape in NIR_SHAPES) if m), None)
    if not match:
        return False
    sex, _, month, department, _, order, key = match.groups()
    return (sex in NIR_SEX_DIGITS and nir_month_valid(int(month)) and department != "00" and order != "000"
            and nir_key("".join(match.groups()[:6])) == key)


def is_valid_bsn(value: str) -> bool:
    """123456782 or 1234.56.782 (counts only after a context word: see needs_context)."""
    return bool(BSN_SHAPE.fullmatch(value)) and bsn_checksum_ok(value.replace(".", ""))


def is_valid_se_pin(value: str) -> bool:
    """811218-9876, 811218+9876, 8112189876, 19811218-9876, 198112189876 (and, for a
    samordningsnummer, the day + 60): the date exists, the Luhn digit of the ten digits
    without the century is right (counts only after a context word: see needs_context)."""
    match = SE_PIN_SHAPE.fullmatch(value)
    if not match:
        return False
    century, year, month, day, separator, number, check = match.groups()
    full_year = int(century + year) if century else se_pin_ten_digit_year(int(year), separator)
    return (se_pin_date_valid(full_year, int(month), int(day))
            and luhn_valid(year + month + day + number + check))


def is_valid_de_tax_id(value: str) -> bool:
    """86095742719 or 86 095 742 719 (counts only after a context word: see needs_context)."""
    if not DE_TAX_ID_SHAPE.fullmatch(value):
        return False
    digits = value.replace(" ", "")
    return de_tax_id_digits_valid(digits[:10]) and de_tax_id_check_digit(digits[:10]) == digits[10]


def is_valid_kvnr(value: str) -> bool:
    """A123456780: the letter uppercase (counts only after a context word: see needs_context)."""
    match = KVNR_SHAPE.fullmatch(value)
    return bool(match) and kvnr_check_digit(match[1], match[2]) == match[3]


def is_valid_be_national_number(value: str) -> bool:
    """85.07.30-033.28 (counts on its own), 85073003328, 850730-033-28, 850730 033 28,
    85 07 30 033 28, 85.07.30-033 28 (count only after a context word: see needs_context)."""
    return (bool(BE_NATIONAL_NUMBER_SHAPE.fullmatch(value))
            and be_national_number_digits_valid(re.sub(r"[^0-9]", "", value)))


def is_valid_ppsn(value: str) -> bool:
    """6433435F, 6433435FA, 6433435 FA, 6433435fa: the second letter A, B (in the check), W, T
    or X (ignored by it); a company's H is none (counts only after a context word)."""
    match = PPSN_SHAPE.fullmatch(value)
    if not match:
        return False
    digits, check, second = match[1], match[2].upper(), match[3].upper()
    if second and second not in PPSN_CHECKED_SECOND_LETTERS + PPSN_IGNORED_SECOND_LETTERS:
        return False
    return ppsn_check_letter(digits, second) == check


def is_valid_dk_cpr(value: str) -> bool:
    """211062-5629, 2110625629, 211062 5629: the date exists in the century of the seventh
    digit and the year (counts only after a context word)."""
    match = DK_CPR_SHAPE.fullmatch(value)
    if not match:
        return False
    day, month, year, seventh = (int(group) for group in match.groups())
    return date_exists(dk_cpr_century(seventh, year) + year, month, day)


def is_valid_at_svnr(value: str) -> bool:
    """1237 010180 or 1237010180: the serial's first digit not 0, the check digit right
    (counts only after a context word)."""
    match = AT_SVNR_SHAPE.fullmatch(value)
    return bool(match) and at_svnr_check_digit(match[1], match[3]) == match[2]


def is_valid_pt_tax_id(value: str) -> bool:
    """123456789 or 123 456 789, a person's (1, 2, 3 or 45 first), the check digit right (counts
    only after a context word)."""
    if not PT_TAX_ID_SHAPE.fullmatch(value):
        return False
    digits = value.replace(" ", "")
    return pt_tax_id_is_personal(digits) and pt_tax_id_check_digit(digits[:8]) == digits[8]


# The fifth batch's written forms. An MRZ's lines break at "\n" or "\r\n" or, inside a JSON
# string, at the two characters "\n"; its second and third lines may be indented by spaces or tabs.
MRZ_LINE_BREAK = re.compile(r"(?:\r?\n|\\n)[ \t]*")
MRZ_LINE = re.compile(r"[A-Z0-9<]+")
# Positions 0-27 of a TD3, TD2 or visa data line: document number, check, nationality, birth
# date, check, sex, expiry date, check.
MRZ_DATA_HEAD = re.compile(r"[A-Z0-9<]{9}[0-9][A-Z<]{3}[0-9]{7}[MFX<][0-9]{7}")
MRZ_NAME_LINES = {44: re.compile(r"P[A-Z<]{43}"), 36: re.compile(r"[IACP][A-Z<]{35}")}
MRZ_VISA_NAME_LINES = {44: re.compile(r"V[A-Z<]{43}"), 36: re.compile(r"V[A-Z<]{35}")}
MRZ_TD1_LINES = (re.compile(r"[IAC][A-Z<][A-Z<]{3}[A-Z0-9<]{25}"),
                 re.compile(r"[0-9]{7}[MFX<][0-9]{7}[A-Z<]{3}[A-Z0-9<]{11}[0-9]"), re.compile(r"[A-Z<]{30}"))
# A VAT number: the prefix, an optional space, the national part's characters with single spaces or
# dots between any of them.
VAT_SHAPE = re.compile(r"([A-Z]{2}) ?([0-9A-Z](?:[ .]?[0-9A-Z])*)")


def mrz_data_head_valid(line: str) -> bool:
    return (bool(MRZ_DATA_HEAD.match(line)) and mrz_checked(line[0:9], line[9])
            and mrz_date_valid(line[13:19]) and mrz_checked(line[13:19], line[19])
            and mrz_date_valid(line[21:27]) and mrz_checked(line[21:27], line[27]))


def mrz_td3_data_line_valid(line: str) -> bool:
    """Line 2 of a passport (TD3, 44): positions 0-27 checked, the personal number 28-41 and its
    check 42 ('<' or '0' when the number is all '<'), the composite 43 over 0-9, 13-19, 21-42."""
    if len(line) != 44 or not mrz_data_head_valid(line):
        return False
    personal, check = line[28:42], line[42]
    if personal == "<" * 14:
        personal_ok = check in "<0"
    else:
        personal_ok = mrz_checked(personal, check)
    return personal_ok and mrz_checked(line[0:10] + line[13:20] + line[21:43], line[43])


def mrz_td2_data_line_valid(line: str) -> bool:
    """Line 2 of a TD2 (36): positions 0-27 checked, optional data 28-34, the composite 35 over
    0-9, 13-19, 21-34."""
    return (len(line) == 36 and mrz_data_head_valid(line)
            and mrz_checked(line[0:10] + line[13:20] + line[21:35], line[35]))


def mrz_visa_data_line_valid(line: str) -> bool:
    """Line 2 of a visa (MRV-A, 44; MRV-B, 36): positions 0-27 checked, the rest optional data."""
    return len(line) in (36, 44) and mrz_data_head_valid(line)


def mrz_td1_document_number_valid(line1: str) -> bool:
    """Positions 5-13 and the check digit 14; or, '<' at 14 (a longer number), the number goes on
    in the optional data up to the character before the first '<' after position 15 (or up to
    the line's end), that last character its check digit (one character of it at least before
    that). "After position 15" read both ways (the first '<' from 15 on, or from 16 on)."""
    if line1[14] != "<":
        return mrz_checked(line1[5:14], line1[14])
    for start in (15, 16):
        end = line1.find("<", start)
        end = len(line1) if end < 0 else end
        if end - 15 >= 2 and mrz_checked(line1[5:14] + line1[15:end - 1], line1[end - 1]):
            return True
    return False


def mrz_td1_valid(line1: str, line2: str, line3: str) -> bool:
    """An identity card's three lines of 30 (TD1): line 1 type, issuing state, document number and
    check, optional data; line 2 birth date and check, sex, expiry date and check, nationality,
    optional data, the composite 29 over line 1's 5-29 and line 2's 0-6, 8-14, 18-28; line 3 the
    name."""
    if not all(shape.fullmatch(line) for shape, line in zip(MRZ_TD1_LINES, (line1, line2, line3))):
        return False
    return (mrz_td1_document_number_valid(line1)
            and mrz_date_valid(line2[0:6]) and mrz_checked(line2[0:6], line2[6])
            and mrz_date_valid(line2[8:14]) and mrz_checked(line2[8:14], line2[14])
            and mrz_checked(line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29], line2[29]))


def is_valid_mrz(value: str) -> bool:
    """A whole zone from its first character to its last (line breaks and the indentation of its
    second and third lines included): a passport's (TD3: "P" line and data line of 44), a visa's
    (MRV-A, MRV-B: "V" line and data line of 44 or 36), a TD2 ("I", "A", "C" or "P" line and
    data line of 36), an identity card's three lines of 30 (TD1); or a lone data line of a TD3
    (44) or a TD2 (36) with its composite and every other check valid. Upper case only."""
    lines = MRZ_LINE_BREAK.split(value)
    if not all(MRZ_LINE.fullmatch(line) for line in lines):
        return False
    if len(lines) == 1:
        line = lines[0]
        return mrz_td3_data_line_valid(line) if len(line) == 44 else mrz_td2_data_line_valid(line)
    if len(lines) == 2:
        name, data = lines
        if len(name) != len(data) or len(data) not in (36, 44):
            return False
        if MRZ_VISA_NAME_LINES[len(data)].fullmatch(name):
            return mrz_visa_data_line_valid(data)
        if not MRZ_NAME_LINES[len(data)].fullmatch(name):
            return False
        return mrz_td3_data_line_valid(data) if len(data) == 44 else mrz_td2_data_line_valid(data)
    return len(lines) == 3 and all(len(line) == 30 for line in lines) and mrz_td1_valid(*lines)


def vat_parts(value: str) -> tuple[str, str] | None:
    """The prefix and the national part without its separators, of a value of VAT_SHAPE."""
    match = VAT_SHAPE.fullmatch(value)
    return (match[1], re.sub(r"[ .]", "", match[2])) if match else None


def is_valid_eu_vat(value: str) -> bool:
    """ATU13585627, DE 136 695 976, BE 0411.905.847, NL004495445B01, ...: a claimed prefix in
    upper case, its national part valid (where it stands, the bytes around it are the
    scanner's: see accepts())."""
    parts = vat_parts(value)
    return parts is not None and vat_national_valid(*parts)

# The ten secret types of /tmp/secrets_spec4.md (part C), implemented here from it. Each shape's
# first group is the random part (the placeholder rule); the glued rule, the byte after and the
# whole run are the scanner's (SECRET_GLUED_AFTER, CANDIDATES).
PERPLEXITY_API_KEY_SHAPE = re.compile(r"pplx-([0-9A-Za-z]{48})")
REPLICATE_API_TOKEN_SHAPE = re.compile(r"r8_([0-9A-Za-z_-]{37})")
LANGSMITH_API_KEY_SHAPE = re.compile(r"lsv2_(?:pt|sk)_([0-9a-f]{32}_[0-9a-f]{10})")
# dapi, 32 lowercase hex digits (the random part, a digit among them), optionally '-' and a digit.
DATABRICKS_TOKEN_SHAPE = re.compile(r"dapi([0-9a-f]{32})(?:-[0-9])?")
ATLASSIAN_API_TOKEN_SHAPE = re.compile(r"ATATT3([0-9A-Za-z_=-]{186})")
VAULT_TOKEN_SHAPE = re.compile(r"hvs\.([0-9A-Za-z_-]{90,120})|hvb\.([0-9A-Za-z_-]{138,300})")
# Three of [0-9A-Za-z_~.], a digit, "Q~", 31 to 34 more (not ending with '.'): the random part is
# what follows "Q~".
AZURE_CLIENT_SECRET_SHAPE = re.compile(r"[0-9A-Za-z_~.]{3}[0-9]Q~([0-9A-Za-z_~.-]{31,34})")
DIGITALOCEAN_TOKEN_SHAPE = re.compile(r"do[por]_v1_([0-9a-f]{64})")
POSTMAN_API_KEY_SHAPE = re.compile(r"PMAK-([0-9a-f]{24}-[0-9a-f]{34})")
GRAFANA_TOKEN_SHAPE = re.compile(r"glsa_([0-9A-Za-z]{32})_[0-9a-f]{8}")


def is_valid_perplexity_api_key(value: str) -> bool:
    return random_part_valid(PERPLEXITY_API_KEY_SHAPE, value)


def is_valid_replicate_api_token(value: str) -> bool:
    return random_part_valid(REPLICATE_API_TOKEN_SHAPE, value)


def is_valid_langsmith_api_key(value: str) -> bool:
    """lsv2_pt_ or lsv2_sk_, 32 hex, '_', 10 hex; the random part is the 43 after the prefix."""
    return random_part_valid(LANGSMITH_API_KEY_SHAPE, value)


def is_valid_databricks_token(value: str) -> bool:
    """dapi and 32 lowercase hex digits holding a digit, then optionally '-' and one digit."""
    part = random_part(DATABRICKS_TOKEN_SHAPE, value)
    return part is not None and any(c in DIGITS for c in part) and not is_placeholder(part)


def is_valid_atlassian_api_token(value: str) -> bool:
    return random_part_valid(ATLASSIAN_API_TOKEN_SHAPE, value)


def is_valid_vault_token(value: str) -> bool:
    """hvs. and 90-120, or hvb. and 138-300, of [0-9A-Za-z_-] with a digit among them."""
    part = random_part(VAULT_TOKEN_SHAPE, value)
    return part is not None and any(c in DIGITS for c in part) and not is_placeholder(part)


def is_valid_azure_client_secret(value: str) -> bool:
    """37-40 bytes: 3 of [0-9A-Za-z_~.], a digit, "Q~", 31-34 of [0-9A-Za-z_~.-], not ending with '.'."""
    part = random_part(AZURE_CLIENT_SECRET_SHAPE, value)
    return part is not None and not value.endswith(".") and not is_placeholder(part)


def is_valid_digitalocean_token(value: str) -> bool:
    return random_part_valid(DIGITALOCEAN_TOKEN_SHAPE, value)


def is_valid_postman_api_key(value: str) -> bool:
    return random_part_valid(POSTMAN_API_KEY_SHAPE, value)


def is_valid_grafana_token(value: str) -> bool:
    return random_part_valid(GRAFANA_TOKEN_SHAPE, value)


# DISCORD_BOT_TOKEN (/tmp/secrets_spec5.md part B), implemented here from it: three segments of
# [A-Za-z0-9_-] joined by '.', the bot's user id (23 to 27 characters of unpadded base64url decoding
# to 17 to 20 ASCII digits not starting with 0: "M", "N" or "O" first), a timestamp of 6 and an HMAC of
# 27 to 38 (the random part: fewer than six distinct characters in it is a placeholder); a digit
# somewhere. Before it no byte of [A-Za-z0-9_-]; after it none, nor '.' and one (the whole run: a
# fourth segment makes it none): accepts() and the candidate shape.
DISCORD_BOT_TOKEN_SHAPE = re.compile(r"([A-Za-z0-9_-]{23,27})\.[A-Za-z0-9_-]{6}\.([A-Za-z0-9_-]{27,38})")
DISCORD_USER_ID = re.compile(rb"[1-9][0-9]{16,19}")


def discord_user_id(segment: str) -> bytes | None:
    """A token's first segment decoded (unpadded base64url), or None when it is none."""
    try:
        return base64url_decode(segment)
    except ValueError:
        return None


def is_valid_discord_bot_token(value: str) -> bool:
    match = DISCORD_BOT_TOKEN_SHAPE.fullmatch(value)
    if not match or not any(c in DIGITS for c in value) or is_placeholder(match[2]):
        return False
    user_id = discord_user_id(match[1])
    return user_id is not None and bool(DISCORD_USER_ID.fullmatch(user_id))


# DISCORD_WEBHOOK_URL (/tmp/secrets_spec6.md section 7), implemented here from it: the whole URL from
# the scheme (https:// or http://) through the token; host discord.com, discordapp.com, ptb.discord.com
# or canary.discord.com; path /api/webhooks/ or /api/vNN/webhooks/ (NN: one or two digits); an id of
# 17 to 20 digits, '/', a token of 60 to 80 of [A-Za-z0-9_-] holding no placeholder part (Discord's
# are 68). A byte of [A-Za-z0-9_-] after the token voids it (accepts(): the candidate takes the
# whole run); "?wait=true" or '/' after it is no part of it. Score 1.0, data class INTERNAL.
DISCORD_WEBHOOK_URL_SHAPE = re.compile(
    r"https?://(?:discord\.com|discordapp\.com|ptb\.discord\.com|canary\.discord\.com)"
    r"/api/(?:v[0-9]{1,2}/)?webhooks/[0-9]{17,20}/([A-Za-z0-9_-]{60,80})")


def is_valid_discord_webhook_url(value: str) -> bool:
    match = DISCORD_WEBHOOK_URL_SHAPE.fullmatch(value)
    return bool(match) and not has_placeholder_word(match[1])


# PRIVATE_KEY (/tmp/secrets_spec4.md items 6 and 7). Lines break as a newline (optionally after
# '\r') or as the two characters "\n" inside a JSON string, and may be indented with spaces or tabs
# (a YAML block scalar). A whole block: BEGIN, base64 lines, the END line of the same label. A key
# pasted without its END line: the header and base64 lines holding at least 16 base64 characters,
# the finding ending with the last base64 line (not a closing quote, not a following line's
# indentation); a blank line ends it. (Armour headers, "Proc-Type: ..." and "DEK-Info: ...", are
# followed by a blank line in real PEM, which the rule says ends the key: this generator writes no
# cut key with them.)
PEM_LABEL = r"(?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?"
PEM_BREAKS = (r"\r?\n[ \t]*", r"\\n")  # a text's or YAML block's line break; a JSON string's
PEM_WHOLE_SHAPES = tuple(re.compile(
    r"-----BEGIN (%s)PRIVATE KEY-----(?:%s[A-Za-z0-9+/]+=*)+%s-----END \1PRIVATE KEY-----"
    % (PEM_LABEL, br, br)) for br in PEM_BREAKS)
PEM_CUT_SHAPES = tuple(re.compile(
    r"-----BEGIN %sPRIVATE KEY-----(?:%s[A-Za-z0-9+/]+=*)+" % (PEM_LABEL, br)) for br in PEM_BREAKS)
PEM_CUT_MIN_KEY_CHARACTERS = 16
# Where a cut key's last base64 line ends: a line break, a JSON string's closing quote or "\n", or
# the end of the text; a line is base64 only whole.
PEM_LINE_END = (re.compile(rb"(?:\r?\n|\Z)"), re.compile(rb"(?:\\n|\"|\Z)"))
PEM_END_NEXT = (re.compile(rb"\r?\n[ \t]*-----END"), re.compile(rb"\\n-----END"))
PEM_BASE64_MAX_BYTES = 21900
PEM_BASE64_PREFIX = "LS0tLS1CRUdJTi"  # base64 of "-----BEGIN"
PEM_BASE64_SHAPE = re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/]*=*")


def is_valid_cut_private_key(value: str) -> bool:
    """A key without its END line: header, base64 lines (one style of line break), 16 or more
    base64 characters of key."""
    if "-----END" in value or len(value.encode()) > PEM_MAX_BYTES:
        return False
    for shape in PEM_CUT_SHAPES:
        match = shape.fullmatch(value)
        if match:
            body = value[value.index("-----", 11) + 5:]
            return len(re.findall(r"[A-Za-z0-9+/=]", body.replace("\\n", " "))) >= PEM_CUT_MIN_KEY_CHARACTERS
    return False


def is_valid_whole_private_key(value: str) -> bool:
    return len(value.encode()) <= PEM_MAX_BYTES and any(s.fullmatch(value) for s in PEM_WHOLE_SHAPES)


def pem_key_decoded(value: str) -> str | None:
    """A base64 run's decoding (of its whole groups of four) as ASCII text, or None."""
    groups = value[:len(value) // 4 * 4]
    try:
        decoded = base64.b64decode(groups, validate=True)
    except (ValueError, base64.binascii.Error):
        return None
    return decoded.decode("ascii") if decoded.isascii() else None


def is_valid_base64_private_key(value: str) -> bool:
    """LS0tLS1CRUdJTi... (base64 of "-----BEGIN") of at most PEM_BASE64_MAX_BYTES whose decoding
    is a whole private key (a file's last newline allowed) or, cut, a header and 16 or more base64
    characters of key and no END line (the last line may be cut short)."""
    if not PEM_BASE64_SHAPE.fullmatch(value) or len(value) > PEM_BASE64_MAX_BYTES:
        return False
    decoded = pem_key_decoded(value)
    if decoded is None:
        return False
    if "-----END" in decoded:
        text = decoded[:-1] if decoded.endswith("\n") else decoded
        return bool(PEM_WHOLE_SHAPES[0].fullmatch(text)) and "\r" not in text and "\n " not in text
    match = re.match(r"-----BEGIN %sPRIVATE KEY-----\n" % PEM_LABEL, decoded)
    if not match or not re.fullmatch(r"[A-Za-z0-9+/=\n]*", decoded[match.end():]):
        return False
    return len(re.sub(r"\n", "", decoded[match.end():])) >= PEM_CUT_MIN_KEY_CHARACTERS


def is_valid_private_key(value: str) -> bool:
    """A whole block, a cut one, or either in base64 (see above)."""
    return (is_valid_whole_private_key(value) or is_valid_cut_private_key(value)
            or is_valid_base64_private_key(value))


def cut_private_keys(data: bytes) -> list[tuple[int, int]]:
    """The spans of the keys in the text that have no END line: from "-----BEGIN" to the end of
    the last whole base64 line (the one that a line break, a JSON string's quote or the text's end
    follows), for each line-break style; none when an END line follows (a whole block, found so)."""
    spans = []
    if b"-----BEGIN" not in data:
        return spans
    text = data.decode("latin-1")
    for style, shape in enumerate(PEM_CUT_SHAPES):
        for match in re.finditer(shape.pattern, text):
            begin = match.start()
            # The longest prefix of whole lines: back off a last line cut short.
            ends = [m.end() for m in re.finditer(r"(?:%s)[A-Za-z0-9+/]+=*" % PEM_BREAKS[style],
                                                 text[begin:match.end()])]
            end = next((begin + e for e in reversed(ends) if PEM_LINE_END[style].match(data, begin + e)), None)
            if end is None or PEM_END_NEXT[style].match(data, end):
                continue
            spans.append((begin, end))
    return spans


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "US_SSN": is_valid_ssn,
    "US_ITIN": is_valid_itin,
    "CREDIT_CARD": is_valid_card,
    "IBAN_CODE": is_valid_iban,
    "EMAIL_ADDRESS": is_valid_email,
    "PHONE_NUMBER": is_valid_phone,
    "IP_ADDRESS": is_valid_ip,
    "UK_NHS": is_valid_nhs,
    "CRYPTO": is_valid_crypto,
    "MEDICAL_LICENSE": is_valid_dea,
    "POLICY_SUITE_KEY": is_valid_policy_suite_key,
    "OPENAI_API_KEY": is_valid_openai_key,
    "AWS_ACCESS_KEY": is_valid_aws_key,
    "GITHUB_TOKEN": is_valid_github_token,
    "SLACK_TOKEN": is_valid_slack_token,
    "PRIVATE_KEY": is_valid_private_key,
    "URL_CREDENTIALS": is_valid_url_credentials,
    "JWT": is_valid_jwt,
    "GOOGLE_API_KEY": is_valid_google_api_key,
    "STRIPE_API_KEY": is_valid_stripe_api_key,
    "GITLAB_TOKEN": is_valid_gitlab_token,
    "HUGGINGFACE_TOKEN": is_valid_huggingface_token,
    "NPM_TOKEN": is_valid_npm_token,
    "SENDGRID_API_KEY": is_valid_sendgrid_api_key,
    "AZURE_STORAGE_KEY": is_valid_azure_storage_key,
    # A setting's value by the quoted form's rules or an Authorization header's credentials; accepts()
    # applies the unquoted form's rules or the scheme's where the value stands.
    "SECRET": is_valid_secret_value,
    "GROQ_API_KEY": is_valid_groq_api_key,
    "XAI_API_KEY": is_valid_xai_api_key,
    "GOOGLE_OAUTH_CLIENT_SECRET": is_valid_google_oauth_client_secret,
    "GOOGLE_OAUTH_TOKEN": is_valid_google_oauth_token,
    "PYPI_TOKEN": is_valid_pypi_token,
    "DOCKER_HUB_TOKEN": is_valid_docker_hub_token,
    "WEBHOOK_SIGNING_SECRET": is_valid_webhook_signing_secret,
    "TELEGRAM_BOT_TOKEN": is_valid_telegram_bot_token,
    "SLACK_WEBHOOK_URL": is_valid_slack_webhook_url,
    "AZURE_SHARED_ACCESS_KEY": is_valid_azure_shared_access_key,
    "AZURE_SAS_TOKEN": is_valid_azure_sas_token,
    "PERPLEXITY_API_KEY": is_valid_perplexity_api_key,
    "REPLICATE_API_TOKEN": is_valid_replicate_api_token,
    "LANGSMITH_API_KEY": is_valid_langsmith_api_key,
    "DATABRICKS_TOKEN": is_valid_databricks_token,
    "ATLASSIAN_API_TOKEN": is_valid_atlassian_api_token,
    "VAULT_TOKEN": is_valid_vault_token,
    "AZURE_CLIENT_SECRET": is_valid_azure_client_secret,
    "DIGITALOCEAN_TOKEN": is_valid_digitalocean_token,
    "POSTMAN_API_KEY": is_valid_postman_api_key,
    "GRAFANA_TOKEN": is_valid_grafana_token,
    "DISCORD_BOT_TOKEN": is_valid_discord_bot_token,
    "DISCORD_WEBHOOK_URL": is_valid_discord_webhook_url,
    "UK_NINO": is_valid_nino,
    "ES_NIF": is_valid_nif,
    "ES_NIE": is_valid_nie,
    "IT_FISCAL_CODE": is_valid_fiscal_code,
    "PL_PESEL": is_valid_pesel,
    "FI_PERSONAL_IDENTITY_CODE": is_valid_fi_code,
    "FR_NIR": is_valid_nir,
    "NL_BSN": is_valid_bsn,
    "SE_PERSONAL_IDENTITY_NUMBER": is_valid_se_pin,
    "DE_TAX_ID": is_valid_de_tax_id,
    "DE_HEALTH_INSURANCE_NUMBER": is_valid_kvnr,
    "BE_NATIONAL_NUMBER": is_valid_be_national_number,
    "IE_PPSN": is_valid_ppsn,
    "DK_CPR": is_valid_dk_cpr,
    "AT_SOCIAL_INSURANCE_NUMBER": is_valid_at_svnr,
    "PT_TAX_ID": is_valid_pt_tax_id,
    "IDENTITY_DOCUMENT_MRZ": is_valid_mrz,
    "EU_VAT_NUMBER": is_valid_eu_vat,
}


def valid_as_national_ids(value: str) -> set[str]:
    """The national identifier types whose validator accepts the value (its context and
    neighbours aside)."""
    return {t for t in NATIONAL_ID_TYPES if VALIDATORS[t](value)}


# ---------------------------------------------------------------------------------------
# Folding: the engine's built-in recognizers read typographic and ideographic spaces,
# typographic dashes and the full-width forms of '!' to '~' as ASCII
# (services/pii/folded_text.h)
# ---------------------------------------------------------------------------------------

TYPOGRAPHIC_SPACES = ("\u00a0", "\u202f", "\u2009", "\u2007")  # no-break, narrow no-break, thin, figure
IDEOGRAPHIC_SPACE = "\u3000"  # what a Japanese or Chinese input method types for a space
TYPOGRAPHIC_DASHES = ("\u2010", "\u2011", "\u2012", "\u2013", "\u2212")  # hyphens, figure/en dash, minus
# U+FF01-U+FF5E: '！' to '～', digits, letters, '@', '.', '-', '+', '_', ':', '/', ... all full-width.
FULL_WIDTH = {chr(ascii): chr(ascii + 0xFEE0) for ascii in range(0x21, 0x7F)}
FOLDED = {**{c: " " for c in TYPOGRAPHIC_SPACES + (IDEOGRAPHIC_SPACE,)},
          **{c: "-" for c in TYPOGRAPHIC_DASHES}, **{wide: ascii for ascii, wide in FULL_WIDTH.items()}}
FOLDABLE = re.compile("[%s]" % "".join(map(re.escape, FOLDED)))


def full_width(value: str, space: str = " ") -> str:
    """The value as a Japanese or Chinese input method types it: full-width digits, letters and
    signs, each space written as `space` (an ASCII or an ideographic space)."""
    return "".join(FULL_WIDTH.get(c, c) for c in value).replace(" ", space)


def fold_text(text: str) -> str:
    return FOLDABLE.sub(lambda match: FOLDED[match[0]], text)


def fold(data: bytes) -> tuple[bytes, list[int] | None]:
    """The text as the built-in recognizers read it, and the offset in data of each of its
    bytes and of its end (None when nothing is folded: the offsets are the same)."""
    text = data.decode()
    if not FOLDABLE.search(text):
        return data, None
    folded, offsets, at = bytearray(), [], 0
    for char in text:
        size = len(char.encode())
        if char in FOLDED:
            folded += FOLDED[char].encode()
            offsets.append(at)
        else:
            folded += char.encode()
            offsets.extend(range(at, at + size))
        at += size
    offsets.append(at)
    return bytes(folded), offsets


# ---------------------------------------------------------------------------------------
# Scanner: the entities a text contains, with the table's context rules
# ---------------------------------------------------------------------------------------

def needs_context(entity_type: str, value: str) -> bool:
    """Whether the value counts only with a context word of its type before it."""
    if entity_type in ("UK_NHS", "MEDICAL_LICENSE", "PL_PESEL", "NL_BSN", "SE_PERSONAL_IDENTITY_NUMBER",
                       "DE_TAX_ID", "DE_HEALTH_INSURANCE_NUMBER", "IE_PPSN", "DK_CPR", "AT_SOCIAL_INSURANCE_NUMBER",
                       "PT_TAX_ID"):
        return True
    if entity_type == "BE_NATIONAL_NUMBER":  # all but the form the eID card prints ("85.07.30-033.28")
        return not BE_DOCUMENT_FORM.fullmatch(value)
    if entity_type == "UK_NINO":  # all but the form HMRC prints ("AB 12 34 56 C")
        return not NINO_DOCUMENT_FORM.fullmatch(value)
    if entity_type == "ES_NIF":  # apart from its letter by a space ("order 12345678 A"), lowercase
        return " " in value or value[-1].islower()
    if entity_type == "ES_NIE":  # spaced, lowercase
        return " " in value or value != value.upper()
    if entity_type == "FI_PERSONAL_IDENTITY_CODE":  # '-' or '+' for its century, lowercase
        return "-" in value or "+" in value or value != value.upper()
    if entity_type == "FR_NIR":  # compact with the sex digit of people being registered
        return " " not in value and value[0] in "3478"
    return (entity_type in ("US_SSN", "US_ITIN", "PHONE_NUMBER")
            and bool(BARE_9_OR_10_DIGITS.fullmatch(value)))


@functools.cache
def whole_word_pattern(words: tuple[str, ...]) -> re.Pattern:
    alternatives = b"|".join(re.escape(word.encode()) for word in words)
    return re.compile(rb"(?<![a-z0-9])(?:" + alternatives + rb")(?![a-z0-9])", re.I)


def has_context_word(data: bytes, begin: int, words: tuple[str, ...], strict: bool) -> bool:
    """Strict: a whole context word lies within the CONTEXT_WINDOW bytes before begin.
    Liberal: a context word occurs, even inside another word, in the LIBERAL_CONTEXT_WINDOW
    bytes before or from begin (what a generous engine could take for context)."""
    if strict:
        return bool(whole_word_pattern(words).search(data, max(0, begin - CONTEXT_WINDOW), begin))
    window = data[max(0, begin - LIBERAL_CONTEXT_WINDOW):begin].lower()
    after = data[begin:begin + LIBERAL_CONTEXT_WINDOW].lower()  # from begin: the value's own end is unknown here
    return any(word.encode() in window or word.encode() in after for word in words)


def is_part_of_version_or_longer_number(data: bytes, begin: int, end: int) -> bool:
    """The table's exceptions for a dotted quad: after v/version/ver, "version" anywhere in the
    64 bytes before it (the engine's excluded context), or before .digit."""
    return (data[:begin].endswith(VERSION_PREFIXES) or b"version" in data[max(0, begin - 64):begin].lower()
            or bool(re.match(rb"\.[0-9]", data[end:end + 2])))


# The secrets of 2026-12-07 are "glued" to a byte before them in [A-Za-z0-9_] or to one after
# them that could continue them (their own alphabet; for a JWT and a GitLab token a '.' and one
# of it too): then they are none.
SECRET_GLUED_BEFORE = re.compile(rb"[A-Za-z0-9_]")
SECRET_GLUED_AFTER = {
    "JWT": re.compile(rb"\.?[A-Za-z0-9_-]"),
    "GOOGLE_API_KEY": re.compile(rb"[0-9A-Za-z_-]"),
    "STRIPE_API_KEY": re.compile(rb"[0-9A-Za-z_]"),
    "GITLAB_TOKEN": re.compile(rb"\.?[0-9A-Za-z_-]"),
    "HUGGINGFACE_TOKEN": re.compile(rb"[0-9A-Za-z_]"),
    "NPM_TOKEN": re.compile(rb"[0-9A-Za-z_]"),
    "SENDGRID_API_KEY": re.compile(rb"[0-9A-Za-z_-]"),
    "AZURE_STORAGE_KEY": re.compile(rb"[A-Za-z0-9+/=]"),
    # The eleven of the specification of 2026-12-07, late night: the byte after each (a Google
    # OAuth token's '.' and one of its alphabet too; a sentence's full stop is none of it).
    "GROQ_API_KEY": re.compile(rb"[0-9A-Za-z_]"),
    "XAI_API_KEY": re.compile(rb"[0-9A-Za-z_]"),
    "GOOGLE_OAUTH_CLIENT_SECRET": re.compile(rb"[0-9A-Za-z_-]"),
    "GOOGLE_OAUTH_TOKEN": re.compile(rb"\.?[0-9A-Za-z_-]"),
    "PYPI_TOKEN": re.compile(rb"[0-9A-Za-z_-]"),
    "DOCKER_HUB_TOKEN": re.compile(rb"[0-9A-Za-z_-]"),
    "WEBHOOK_SIGNING_SECRET": re.compile(rb"[0-9A-Za-z_+/]"),
    "TELEGRAM_BOT_TOKEN": re.compile(rb"[0-9A-Za-z_-]"),
    "SLACK_WEBHOOK_URL": re.compile(rb"[0-9A-Za-z_/]"),
    "AZURE_SHARED_ACCESS_KEY": re.compile(rb"[A-Za-z0-9+/=]"),
    "AZURE_SAS_TOKEN": re.compile(rb"[0-9A-Za-z%+/=]"),
    # The ten of /tmp/secrets_spec4.md (a Databricks token: nor '-' and a digit beyond the one it
    # may end with; an Entra client secret: a sentence's full stop after it is none of it).
    "PERPLEXITY_API_KEY": re.compile(rb"[0-9A-Za-z_]"),
    "REPLICATE_API_TOKEN": re.compile(rb"[0-9A-Za-z_-]"),
    "LANGSMITH_API_KEY": re.compile(rb"[0-9A-Za-z_]"),
    "DATABRICKS_TOKEN": re.compile(rb"[0-9A-Za-z_]|-[0-9]"),
    "ATLASSIAN_API_TOKEN": re.compile(rb"[0-9A-Za-z_=-]"),
    "VAULT_TOKEN": re.compile(rb"[0-9A-Za-z_-]"),
    "AZURE_CLIENT_SECRET": re.compile(rb"[0-9A-Za-z_~-]"),
    "DIGITALOCEAN_TOKEN": re.compile(rb"[0-9A-Za-z_]"),
    "POSTMAN_API_KEY": re.compile(rb"[0-9A-Za-z_-]"),
    "GRAFANA_TOKEN": re.compile(rb"[0-9A-Za-z_]"),
    # /tmp/secrets_spec5.md part B: nor '.' and a byte of its alphabet (a fourth segment); nor '-'
    # before it (accepts()).
    "DISCORD_BOT_TOKEN": re.compile(rb"\.?[0-9A-Za-z_-]"),
    # /tmp/secrets_spec6.md section 7: a byte of the token's alphabet after it voids it ('/' and '?' do
    # not); the specification gives no rule for the byte before it (GLUED_AFTER_ONLY).
    "DISCORD_WEBHOOK_URL": re.compile(rb"[0-9A-Za-z_-]"),
}
# Types of SECRET_GLUED_AFTER whose rules say nothing of the byte before them.
GLUED_AFTER_ONLY = ("DISCORD_WEBHOOK_URL",)
# Where a URL's user part starts: "://" and a run of local-part bytes, in which no e-mail address
# starts (/tmp/secrets_spec4.md item 4).
URL_USER_PART = re.compile(rb"://[0-9A-Za-z_%+.-]*\Z")
AZURE_KEY_NAME = b"accountkey="
# Slack's app-level tokens (item 12): glued as the secrets above are, the byte after not in
# [0-9A-Za-z_-] (the older Slack tokens keep their rules).
SLACK_APP_TOKEN_GLUED_AFTER = re.compile(rb"[0-9A-Za-z_-]")
# A Telegram bot token that starts with its id: not after a '.' or '-' that follows a digit
# ("v1.12345678:AA...", "10-12345678:AA...").
TELEGRAM_AFTER_NUMBER = re.compile(rb"[0-9][.-]\Z")
AZURE_SHARED_ACCESS_KEY_NAME = b"SharedAccessKey="  # that spelling and case
AZURE_SAS_NAMES = (b"?sig=", b"&sig=")


def accepts(entity_type: str, data: bytes, begin: int, end: int, strict: bool) -> bool:
    """Whether data[begin:end] is an entity of the type where it stands."""
    value = data[begin:end].decode("utf-8", "replace")
    if not VALIDATORS[entity_type](value):
        return False
    # Right after '+' it is a phone number's digits (its international reading), not the type.
    if entity_type in NOT_AFTER_PLUS_TYPES and data[max(0, begin - 1):begin] == b"+":
        return False
    # The fifth batch: a VAT number not after [A-Za-z0-9_], nor before it, nor, when it ends with a
    # digit, before '.' or '-' and a digit (/tmp/secrets_spec5.md part C); an MRZ from the start of a
    # line (after a JSON string's "\n" too) or after another byte than [A-Za-z0-9<] to the end of a
    # line or such a byte. A DNI glued to a letter ("ES" in
    # "ES12345678Z": the VAT number) is no ES_NIF; the generous scanner finds it even so.
    if entity_type == "EU_VAT_NUMBER" and (VAT_GLUED_BEFORE.fullmatch(data[max(0, begin - 1):begin])
                                           or VAT_GLUED_AFTER.match(data, end)):
        return False
    if entity_type == "IDENTITY_DOCUMENT_MRZ" and (
            (MRZ_BOUNDARY.fullmatch(data[max(0, begin - 1):begin]) and data[max(0, begin - 2):begin] != b"\\n")
            or MRZ_BOUNDARY.match(data, end)):
        return False
    if strict and entity_type == "ES_NIF" and re.fullmatch(rb"[A-Za-z]", data[max(0, begin - 1):begin]):
        return False
    glued_after = SECRET_GLUED_AFTER.get(entity_type)
    if glued_after and ((entity_type not in GLUED_AFTER_ONLY and SECRET_GLUED_BEFORE.fullmatch(data[begin - 1:begin]))
                        or glued_after.match(data, end)):
        return False
    if entity_type == "SLACK_TOKEN" and value.startswith("xapp-") and (
            SECRET_GLUED_BEFORE.fullmatch(data[begin - 1:begin]) or SLACK_APP_TOKEN_GLUED_AFTER.match(data, end)):
        return False
    if entity_type == "DISCORD_BOT_TOKEN" and data[max(0, begin - 1):begin] == b"-":
        return False
    if (entity_type == "TELEGRAM_BOT_TOKEN" and not value.startswith("bot")
            and TELEGRAM_AFTER_NUMBER.search(data[max(0, begin - 2):begin])):
        return False
    # A secret's value only where a setting of a secret's name gives it (quoted or unquoted), or
    # an Authorization header's credentials (by its scheme's rules).
    if entity_type == "SECRET":
        kinds = secret_values(data).get((begin, end), ())
        scheme = authorization_values(data).get((begin, end))
        if not (any(is_valid_setting_value(value, kind) for kind in kinds)
                or (scheme is not None and is_valid_authorization_credentials(value, scheme))
                or ((begin, end) in auth_values(data) and is_valid_basic_credentials(value))):
            return False
    # Anywhere in a URL's user part ("://" and local-part bytes before it) it is a URL's user, and
    # "git@" the SSH user of the code hosts: no address.
    if entity_type == "EMAIL_ADDRESS" and (URL_USER_PART.search(data, max(0, begin - 512), begin)
                                           or value.split("@")[0].lower() == "git"):
        return False
    # A national number right after '+' is none (/tmp/secrets_spec4.md item 5).
    if entity_type == "PHONE_NUMBER" and is_national_phone(value) and data[max(0, begin - 1):begin] == b"+":
        return False
    # PRIVATE_KEY: a whole block as the candidate finds it; a cut one only as cut_private_keys
    # ends it; a base64 one the whole run (no base64 byte or '=' beside it).
    if entity_type == "PRIVATE_KEY":
        if is_valid_cut_private_key(value) and (begin, end) not in cut_private_keys(data):
            return False
        if is_valid_base64_private_key(value) and (re.match(rb"[A-Za-z0-9+/=]", data[end:end + 1])
                                                   or re.match(rb"[A-Za-z0-9+/=]", data[begin - 1:begin] if begin else b"")):
            return False
    # An Azure key only right after "AccountKey=" (in any case): a bare base64 blob is none.
    if entity_type == "AZURE_STORAGE_KEY" and data[max(0, begin - len(AZURE_KEY_NAME)):begin].lower() != AZURE_KEY_NAME:
        return False
    # A shared access key only right after "SharedAccessKey=" (that case), a signature only after
    # "?sig=" or "&sig=".
    if (entity_type == "AZURE_SHARED_ACCESS_KEY"
            and data[max(0, begin - len(AZURE_SHARED_ACCESS_KEY_NAME)):begin] != AZURE_SHARED_ACCESS_KEY_NAME):
        return False
    if entity_type == "AZURE_SAS_TOKEN" and data[max(0, begin - 5):begin] not in AZURE_SAS_NAMES:
        return False
    if entity_type == "PHONE_NUMBER" and is_national_phone(value):
        if not has_context_word(data, begin, NATIONAL_PHONE_CONTEXT_WORDS, strict):
            return False
    elif needs_context(entity_type, value) and not has_context_word(
            data, begin, CONTEXT_WORDS[entity_type], strict):
        return False
    # Excluded only when certainly so (a whole word in the strict window), even for the
    # generous scanner: an engine that looks further back excludes at least as much.
    excluded = EXCLUDED_CONTEXT.get(entity_type)
    if excluded and has_context_word(data, begin, excluded, strict=True):
        return False
    if (entity_type == "IP_ADDRESS" and ":" not in value
            and is_part_of_version_or_longer_number(data, begin, end)):
        return False
    if (strict and entity_type == "PHONE_NUMBER" and NHS_SHAPE.fullmatch(value)
            and has_context_word(data, begin, CONTEXT_WORDS["UK_NHS"], strict=True)):
        return False  # with "nhs" before it, a 3-3-4 number is an NHS number
    return True


# Candidate shapes, deliberately generous: each match is then judged by accepts().
CANDIDATES = tuple((types, re.compile(pattern, flags)) for types, pattern, flags in (
    (("US_SSN", "US_ITIN"), rb"(?<![0-9])[0-9]{3}([- ]?)[0-9]{2}\1[0-9]{4}(?![0-9])", 0),
    (("PHONE_NUMBER",),
     rb"(?<![0-9+])(?:\+1[ -]?|1-)?(?:\([0-9]{3}\) ?|[0-9]{3}[-. ]?)[0-9]{3}[-. ]?[0-9]{4}(?![0-9])", 0),
    (("PHONE_NUMBER",), rb"(?<![0-9+])\+[0-9]+(?:[ -][0-9]+)*", 0),
    (("PHONE_NUMBER",), rb"(?<![0-9+.])\+[0-9]+(?:\.[0-9]+)+(?![0-9])", 0),
    (("PHONE_NUMBER",), rb"(?<![0-9+])\+[0-9]+ \(0\) ?[0-9]+(?:[ -][0-9]+)*", 0),
    (("PHONE_NUMBER",), rb"(?<![0-9A-Za-z.+-])0[1-9][0-9]*(?:[ /.-][0-9]+)*(?![0-9])", 0),
    (("PHONE_NUMBER",), rb"(?<![0-9])[0-9]{3}([ -])[0-9]{3}\1[0-9]{3}(?![0-9])", 0),
    (("PHONE_NUMBER",), rb"(?<![0-9])[0-9]{3}([ -])[0-9]{2}\1[0-9]{2}\1[0-9]{2}(?![0-9])", 0),
    (("UK_NHS",), rb"(?<![0-9])[0-9]{3}([ -]?)[0-9]{3}\1[0-9]{4}(?![0-9])", 0),
    (("CREDIT_CARD",), rb"(?<![0-9])[0-9]{13,19}(?![0-9])", 0),
    (("CREDIT_CARD",), rb"(?<![0-9])[0-9]{4}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{4}(?![0-9])", 0),
    (("CREDIT_CARD",), rb"(?<![0-9])[0-9]{4}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{4}\1[0-9]{3}(?![0-9])", 0),
    (("CREDIT_CARD",), rb"(?<![0-9])[0-9]{4}([ -])[0-9]{6}\1[0-9]{4,5}(?![0-9])", 0),
    (("IBAN_CODE",), rb"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}[A-Za-z0-9]{10,30}(?![A-Za-z0-9])", 0),
    (("IBAN_CODE",),
     rb"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}(?: [A-Za-z0-9]{4})+(?: [A-Za-z0-9]{1,3})?(?![A-Za-z0-9])", 0),
    (("EMAIL_ADDRESS",),
     rb"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", 0),
    (("IP_ADDRESS",), rb"(?<![0-9])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9])", 0),
    (("IP_ADDRESS",),
     rb"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:\.[0-9]{1,3}){0,3}", 0),
    (("CRYPTO",), rb"(?<![A-Za-z0-9])[13][1-9A-HJ-NP-Za-km-z]{25,34}(?![A-Za-z0-9])", 0),
    (("CRYPTO",), rb"(?<![A-Za-z0-9])bc1[a-z0-9]{6,87}(?![A-Za-z0-9])", re.I),
    (("MEDICAL_LICENSE",), rb"(?<![A-Za-z0-9])[A-Z][A-Z0-9][0-9]{7}(?![A-Za-z0-9])", 0),
    (("POLICY_SUITE_KEY",), rb"(?<![A-Za-z0-9_])psk_(?:proj|svc|admin)_[0-9A-Za-z]+", 0),
    (("OPENAI_API_KEY",), rb"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]+", 0),
    (("AWS_ACCESS_KEY",), rb"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z2-7]{16}(?![A-Z0-9])", 0),
    (("GITHUB_TOKEN",), rb"(?<![A-Za-z0-9_])(?:gh[pousr]_[0-9A-Za-z]+|github_pat_[0-9A-Za-z_]+)", 0),
    (("SLACK_TOKEN",), rb"(?<![A-Za-z0-9])xox[bpars]-[A-Za-z0-9-]+", 0),
    (("URL_CREDENTIALS",),
     rb"(?<=[A-Za-z0-9+.-]://)[^\s/?#@:]*:[^\s/?#]+@(?:[A-Za-z0-9._~%-]*[A-Za-z0-9_]|\[[0-9A-Fa-f:.]+\])", 0),
    # A user and no password: a credential when the user is a token of a known type.
    (("URL_CREDENTIALS",),
     rb"(?<=[A-Za-z0-9+.-]://)[^\s/?#@:]+@(?:[A-Za-z0-9._~%-]*[A-Za-z0-9_]|\[[0-9A-Fa-f:.]+\])", 0),
    (("PRIVATE_KEY",), rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    # In base64 (a Kubernetes tls.key, a kubeconfig's client-key-data), the whole run.
    (("PRIVATE_KEY",), rb"LS0tLS1CRUdJTi[A-Za-z0-9+/]*=*", 0),
    # The eight secrets of 2026-12-07: not after [A-Za-z0-9_], each running on over its own
    # alphabet (a byte after it that would continue it makes a value the validator rejects).
    # A JWT from every "eyJ" that may start one, overlapping ("v" is the span), with every
    # further ".segment" (a fourth segment rejects it; a '.' ending a sentence stays out).
    (("JWT",), rb"(?<![A-Za-z0-9_])(?=(?P<v>eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"
               rb"(?:\.[A-Za-z0-9_-]+)*))", 0),
    (("GOOGLE_API_KEY",), rb"(?<![A-Za-z0-9_])AIza[0-9A-Za-z_-]*", 0),
    # Publishable and unknown modes too: the validator judges.
    (("STRIPE_API_KEY",), rb"(?<![A-Za-z0-9_])[a-z]k_[a-z]+_[0-9A-Za-z_]*", 0),
    (("GITLAB_TOKEN",), rb"(?<![A-Za-z0-9_])(?:glpat|gldt|glrt|glptt)-[0-9A-Za-z_-]*(?:\.[0-9A-Za-z_-]+)*", 0),
    (("HUGGINGFACE_TOKEN",), rb"(?<![A-Za-z0-9_])hf_[0-9A-Za-z_]*", 0),
    (("NPM_TOKEN",), rb"(?<![A-Za-z0-9_])npm_[0-9A-Za-z_]*", 0),
    (("SENDGRID_API_KEY",), rb"(?<![A-Za-z0-9_])SG\.[0-9A-Za-z_-]*\.[0-9A-Za-z_-]*", 0),
    # The key only, after "AccountKey=" in any case.
    (("AZURE_STORAGE_KEY",), rb"(?<=accountkey=)[A-Za-z0-9+/=]+", re.I),
    # The eleven of 2026-12-07, late night: not after [A-Za-z0-9_] (a Telegram token's "bot" or
    # id; a Slack webhook's scheme), each running on over its alphabet (and '_' where that would
    # continue it into no value), the Azure values after their names.
    (("GROQ_API_KEY",), rb"(?<![A-Za-z0-9_])gsk_[0-9A-Za-z_]*", 0),
    (("XAI_API_KEY",), rb"(?<![A-Za-z0-9_])xai-[0-9A-Za-z_]*", 0),
    (("GOOGLE_OAUTH_CLIENT_SECRET",), rb"(?<![A-Za-z0-9_])GOCSPX-[0-9A-Za-z_-]*", 0),
    (("GOOGLE_OAUTH_TOKEN",), rb"(?<![A-Za-z0-9_])ya29\.[0-9A-Za-z_-]*(?:\.[0-9A-Za-z_-]+)*", 0),
    (("PYPI_TOKEN",), rb"(?<![A-Za-z0-9_])pypi-[0-9A-Za-z_-]*", 0),
    (("DOCKER_HUB_TOKEN",), rb"(?<![A-Za-z0-9_])dckr_pat_[0-9A-Za-z_-]*", 0),
    (("WEBHOOK_SIGNING_SECRET",), rb"(?<![A-Za-z0-9_])whsec_[0-9A-Za-z_+/]*", 0),
    (("TELEGRAM_BOT_TOKEN",), rb"(?<![A-Za-z0-9_])(?:bot)?[0-9]+:[0-9A-Za-z_-]*", 0),
    (("SLACK_WEBHOOK_URL",), rb"(?<![A-Za-z0-9_])https?://hooks\.slack\.com/[0-9A-Za-z_/]*", 0),
    (("AZURE_SHARED_ACCESS_KEY",), rb"(?<=SharedAccessKey=)[A-Za-z0-9+/=]+", 0),
    (("AZURE_SAS_TOKEN",), rb"(?<=[?&]sig=)[0-9A-Za-z%+/]+=*", 0),
    # Slack's app-level tokens (the older ones above).
    (("SLACK_TOKEN",), rb"(?<![A-Za-z0-9_])xapp-[0-9A-Za-z-]*", 0),
    # The ten of /tmp/secrets_spec4.md, each running on over its alphabet and '_'.
    (("PERPLEXITY_API_KEY",), rb"(?<![A-Za-z0-9_])pplx-[0-9A-Za-z_]*", 0),
    (("REPLICATE_API_TOKEN",), rb"(?<![A-Za-z0-9_])r8_[0-9A-Za-z_-]*", 0),
    (("LANGSMITH_API_KEY",), rb"(?<![A-Za-z0-9_])lsv2_[0-9A-Za-z_]*", 0),
    (("DATABRICKS_TOKEN",), rb"(?<![A-Za-z0-9_])dapi[0-9A-Za-z_]*(?:-[0-9][0-9A-Za-z_]*)?", 0),
    (("ATLASSIAN_API_TOKEN",), rb"(?<![A-Za-z0-9_])ATATT3[0-9A-Za-z_=-]*", 0),
    (("VAULT_TOKEN",), rb"(?<![A-Za-z0-9_])hv[sb]\.[0-9A-Za-z_-]*", 0),
    # Its start is fixed four bytes before "Q~"; it never ends with '.' (see candidates()).
    (("AZURE_CLIENT_SECRET",), rb"(?<![A-Za-z0-9_])[0-9A-Za-z_~.]{3}[0-9]Q~[0-9A-Za-z_~.-]*[0-9A-Za-z_~-]", 0),
    (("DIGITALOCEAN_TOKEN",), rb"(?<![A-Za-z0-9_])do[a-z]_v[0-9]+_[0-9A-Za-z_]*", 0),
    (("POSTMAN_API_KEY",), rb"(?<![A-Za-z0-9_])PMAK-[0-9A-Za-z_-]*", 0),
    (("GRAFANA_TOKEN",), rb"(?<![A-Za-z0-9_])glsa_[0-9A-Za-z_]*", 0),
    # /tmp/secrets_spec5.md part B: from every first segment that may be a user id's ("M", "N" or "O"
    # and 22 to 26 more; overlapping, "v" is the span: after a '.' one may start again), with every
    # further ".segment" (a fourth rejects it; a '.' ending a sentence stays out).
    (("DISCORD_BOT_TOKEN",), rb"(?<![A-Za-z0-9_-])(?=(?P<v>[MNO][A-Za-z0-9_-]{22,26}\.[A-Za-z0-9_-]*"
                             rb"(?:\.[A-Za-z0-9_-]+)*))", 0),
    # /tmp/secrets_spec6.md section 7: any host with "discord" in it, any version, the id's and the
    # token's whole runs (the validator judges them).
    (("DISCORD_WEBHOOK_URL",),
     rb"https?://[0-9A-Za-z.-]*discord[0-9A-Za-z.-]*/(?:api/)?(?:v[0-9]+/)?webhooks/[0-9A-Za-z]*/[0-9A-Za-z_-]*", 0),
    # The national identifiers, lowercase letters, other digit counts and any century sign
    # included (the validators judge them).
    (("UK_NINO",),
     rb"(?<![A-Za-z0-9])[A-Za-z]{2}[ -]?(?:[0-9]{5,7}|[0-9]{2}[ -][0-9]{2}[ -][0-9]{2})[ -]?[A-Za-z](?![A-Za-z0-9])", 0),
    (("ES_NIF",),
     rb"(?<![0-9])(?:[0-9]{7,9}[- ]?|[0-9]{1,3}\.[0-9]{3}\.[0-9]{3}[- ]?)[A-Za-z](?![A-Za-z0-9])", 0),
    (("ES_NIE",), rb"(?<![A-Za-z0-9])[A-Za-z][ -]?[0-9]{6,8}[ -]?[A-Za-z](?![A-Za-z0-9])", 0),
    (("IT_FISCAL_CODE",), rb"(?<![A-Za-z0-9])[A-Za-z0-9]{16}(?![A-Za-z0-9])", 0),
    (("PL_PESEL", "DE_TAX_ID"), rb"(?<![0-9])[0-9]{11}(?![0-9])", 0),
    (("FI_PERSONAL_IDENTITY_CODE",), rb"(?<![0-9])[0-9]{6}[-+A-Za-z][0-9]{3}[0-9A-Za-z](?![0-9A-Za-z])", 0),
    # A NIR of 13 to 16 characters with any letters for a department, or in any groups of
    # digits after a single one.
    (("FR_NIR",), rb"(?<![0-9])[0-9]{5}(?:[0-9]{2}|[0-9][A-Za-z])[0-9]{6,9}(?![0-9])", 0),
    (("FR_NIR",),
     rb"(?<![0-9])[0-9] [0-9]{2} [0-9]{2} (?:[0-9]{2}|[0-9][A-Za-z])(?: [0-9]{1,4}){2,3}(?![0-9])", 0),
    (("NL_BSN",), rb"(?<![0-9])(?:[0-9]{8,10}|[0-9]{3,5}\.[0-9]{2}\.[0-9]{3})(?![0-9])", 0),
    (("SE_PERSONAL_IDENTITY_NUMBER",), rb"(?<![0-9])(?:[0-9]{2})?[0-9]{6}[-+]?[0-9]{4}(?![0-9])", 0),
    # A German tax id in groups of three after a first group of one to three digits; a KVNR
    # with a letter in either case and seven to eleven digits.
    (("DE_TAX_ID",), rb"(?<![0-9])[0-9]{1,3}(?: [0-9]{3}){3}(?![0-9])", 0),
    (("DE_HEALTH_INSURANCE_NUMBER",), rb"(?<![A-Za-z0-9])[A-Za-z][0-9]{7,11}(?![A-Za-z0-9])", 0),
    # The fourth batch. A Belgian national number with any of its forms' separators between any
    # of its groups; a PPSN of six to eight digits, one or two letters in either case, a space
    # before them or none; a CPR number with '-', a space or nothing after its date; an Austrian
    # social insurance number with a space after its fourth digit or none, a 0 first too; a
    # Portuguese tax number of eight to ten digits or in groups of three.
    (("BE_NATIONAL_NUMBER",), rb"(?<![0-9])[0-9]{2}[. ]?[0-9]{2}[. ]?[0-9]{2}[-. ]?[0-9]{3}[-. ]?[0-9]{2}(?![0-9])", 0),
    (("IE_PPSN",), rb"(?<![A-Za-z0-9])[0-9]{6,8} ?[A-Za-z]{1,2}(?![A-Za-z0-9])", 0),
    (("DK_CPR",), rb"(?<![0-9])[0-9]{6}[- ]?[0-9]{4}(?![0-9])", 0),
    (("AT_SOCIAL_INSURANCE_NUMBER",), rb"(?<![0-9])[0-9]{4} ?[0-9]{6}(?![0-9])", 0),
    (("PT_TAX_ID",), rb"(?<![0-9])(?:[0-9]{8,10}|[0-9]{3} [0-9]{3} [0-9]{3})(?![0-9])", 0),
))


# The fifth batch's candidates. An MRZ line: a whole run of 30, 36 or 44 of [A-Z0-9<] with no
# lower-case letter beside it either (but the "n" of a JSON string's "\n" before it), at the start of
# a line or after another byte; a zone: lines of one length, each after the previous one's line
# break and indentation. (The run's pattern starts with its character class, which the regular
# expression engine scans for fast.)
MRZ_RUN_CANDIDATE = re.compile(rb"[A-Z0-9<]{30,}")
MRZ_LINE_LENGTHS = (30, 36, 44)
MRZ_BREAK_CANDIDATE = re.compile(rb"(?:\r?\n|\\n)[ \t]*")
MRZ_BOUNDARY = re.compile(rb"[A-Za-z0-9<]")
# A VAT number's prefix (upper case; not after [A-Za-z0-9_], which vat_spans checks) and the start
# of its national part; the prefixes grouped by their first letter.
VAT_PREFIX_CANDIDATE = re.compile(rb"(?:" + b"|".join(
    (first + b"[" + b"".join(p[1:].encode() for p in VAT_PREFIXES if p[0] == first.decode()) + b"]")
    for first in dict.fromkeys(p[0].encode() for p in VAT_PREFIXES)) + rb") ?(?=[0-9A-Z])")
VAT_GLUED_BEFORE = re.compile(rb"[A-Za-z0-9_]")
# After the number: no byte of [A-Za-z0-9_]; and, when it ends with a digit, no '.' or '-' and a digit
# (/tmp/secrets_spec5.md part C: "IE1143711R-3" holds the VAT number IE1143711R; the lookbehind sees
# the number's last byte).
VAT_GLUED_AFTER = re.compile(rb"[A-Za-z0-9_]|(?<=[0-9])[.-][0-9]")
VAT_MIN_NATIONAL_CHARACTERS, VAT_MAX_NATIONAL_CHARACTERS = 6, 13  # Romania's fewest; more than any


def mrz_spans(data: bytes) -> list[tuple[int, int]]:
    """Every line that may be a lone data line (36 or 44) and every run of two lines of 36 or 44,
    or three of 30, of one length each after the previous one's line break."""
    lines = {}
    for match in MRZ_RUN_CANDIDATE.finditer(data):
        start, end = match.span()
        if (end - start in MRZ_LINE_LENGTHS and not data[end:end + 1].islower()
                and (not data[start - 1:start].islower() or data[start - 2:start] == b"\\n")):
            lines[start] = end
    spans = []
    for start, end in lines.items():
        length = end - start
        if length in (36, 44):
            spans.append((start, end))
        count, last_end = 1, end
        while count < (3 if length == 30 else 2):
            line_break = MRZ_BREAK_CANDIDATE.match(data, last_end)
            if not line_break or lines.get(line_break.end(), -1) - line_break.end() != length:
                break
            count, last_end = count + 1, lines[line_break.end()]
        if count > 1 and count == (3 if length == 30 else 2):
            spans.append((start, last_end))
    return spans


def vat_spans(data: bytes) -> list[tuple[int, int]]:
    """From each claimed prefix, every reading of its national part that a claimed country's may
    be: VAT_MIN_NATIONAL_CHARACTERS to VAT_MAX_NATIONAL_CHARACTERS of [0-9A-Z], single spaces or
    dots between any of them, not glued to what follows (the others accepts() rejects anyway)."""
    spans = []
    for match in VAT_PREFIX_CANDIDATE.finditer(data):
        if VAT_GLUED_BEFORE.fullmatch(data[match.start() - 1:match.start()]):
            continue
        at, count = match.end(), 0
        while count < VAT_MAX_NATIONAL_CHARACTERS and at < len(data) and data[at:at + 1].isalnum() \
                and not data[at:at + 1].islower():
            count, at = count + 1, at + 1
            if count >= VAT_MIN_NATIONAL_CHARACTERS and not VAT_GLUED_AFTER.match(data, at):
                spans.append((match.start(), at))
            if data[at:at + 1] in (b" ", b".") and data[at + 1:at + 2].isalnum() and not data[at + 1:at + 2].islower():
                at += 1
    return spans


Span = tuple[tuple[str, ...], int, int]  # the types a candidate may be, begin, end
Finding = tuple[str, int, int]  # type, begin, end


CANDIDATES_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# The candidate shape of a national number with its trunk prefix, 0[1-9]... in groups.
NATIONAL_PHONE_CANDIDATE = next(pattern for _, pattern in CANDIDATES
                                if pattern.pattern.startswith(rb"(?<![0-9A-Za-z.+-])0[1-9]"))


def candidates(data: bytes) -> list[Span]:
    """Every span some candidate shape matches, with the types it may be; and the shorter
    national numbers within a run of space-separated digit groups that the grouping rule lets
    stand on their own ("08 48 01 329 119" in "2 08 48 01 329 119 57", a NIR with a bad month:
    the trailing "57" is too short to continue it)."""
    spans = [(types, *match.span("v" if "v" in pattern.groupindex else 0))
             for types, pattern in CANDIDATES for match in pattern.finditer(data)]
    spans += [(("SECRET",), begin, end) for begin, end in secret_values(data)]
    spans += [(("SECRET",), begin, end) for begin, end in authorization_values(data)]
    spans += [(("SECRET",), begin, end) for begin, end in auth_values(data)]
    spans += [(("PRIVATE_KEY",), begin, end) for begin, end in cut_private_keys(data)]
    spans += [(("IDENTITY_DOCUMENT_MRZ",), begin, end) for begin, end in mrz_spans(data)]
    spans += [(("EU_VAT_NUMBER",), begin, end) for begin, end in vat_spans(data)]
    # An Entra client secret's shorter readings, ending before a '.' inside the run (the byte after
    # a '.' is no continuation); e-mail readings starting after a '.', '-' or '+' of a URL's user
    # part (none is an address: accepts()).
    for match in (re.finditer(rb"(?<![A-Za-z0-9_])[0-9A-Za-z_~.]{3}[0-9]Q~[0-9A-Za-z_~.-]*", data)
                  if b"Q~" in data else ()):
        spans += [(("AZURE_CLIENT_SECRET",), match.start(), match.start() + i)
                  for i in range(6, len(match[0])) if match[0][i:i + 1] == b"."]
    for match in re.finditer(rb"://([0-9A-Za-z_%+.-]+)@", data):
        for i in range(match.start(1), match.end(1)):
            if data[i:i + 1] in (b".", b"-", b"+"):
                email = CANDIDATES_EMAIL.match(data, i + 1)
                if email:
                    spans.append((("EMAIL_ADDRESS",), i + 1, email.end()))
    for match in NATIONAL_PHONE_CANDIDATE.finditer(data):
        run = match[0]
        if not re.fullmatch(rb"[0-9]+(?: [0-9]+)+", run):
            continue
        starts = [match.start() + m.start(1) for m in re.finditer(rb"(?:^| )(0[1-9])", run)]
        ends = [match.start() + m.end() for m in re.finditer(rb"[0-9]+(?= |$)", run)]
        for begin in starts:
            for end in ends:
                if begin < end and (begin, end) != match.span() and not continues_groups(data, begin, end):
                    spans.append((("PHONE_NUMBER",), begin, end))
    return spans


def findings(data: bytes, spans: list[Span], strict: bool) -> set[Finding]:
    """The (type, begin, end) of the candidate spans that accepts() admits; a SECRET reading
    that overlaps a finding of a score-1.0 type (a token of a known type as a setting's value)
    loses to it and is not reported; a zone's data line is no lone data line (it is not on its
    own: the zone is the finding)."""
    found = {(t, begin, end)
             for types, begin, end in spans for t in types if accepts(t, data, begin, end, strict)}
    winners = [(begin, end) for t, begin, end in found if t in SCORE_ONE_TYPES]
    zones = [(begin, end) for t, begin, end in found if t == "IDENTITY_DOCUMENT_MRZ"]
    return {(t, begin, end) for t, begin, end in found
            if (t != "SECRET" or not any(b < end and begin < e for b, e in winners))
            and (t != "IDENTITY_DOCUMENT_MRZ" or not any(b <= begin and end <= e and (b, e) != (begin, end)
                                                         for b, e in zones))}


# Bytes before / after a label that would continue its value into a longer candidate. A
# space and a group beside a value written in space-separated groups are judged by
# continues_groups instead.
DIGIT_BOUNDARY = (re.compile(rb"(?:[0-9A-Za-z+]|[0-9][ .-])\Z"), re.compile(rb"(?:[0-9A-Za-z]|[ .-][0-9])"))
GROUPED_DIGIT_BOUNDARY = (re.compile(rb"(?:[0-9A-Za-z+]|[0-9][.-])\Z"), re.compile(rb"(?:[0-9A-Za-z]|[.-][0-9])"))
GROUPED_IBAN_BOUNDARY = (re.compile(rb"[0-9A-Za-z]\Z"), re.compile(rb"[0-9A-Za-z]"))


def is_date_joint(data: bytes, joint: int) -> bool:
    """'/', or ':' or '.' between digits: the byte joins two groups as a date or time does."""
    if not 0 <= joint < len(data):
        return False
    if data[joint:joint + 1] == b"/":
        return True
    return (data[joint:joint + 1] in (b":", b".") and 0 < joint < len(data) - 1
            and data[joint - 1:joint].isdigit() and data[joint + 1:joint + 2].isdigit())


def continues_groups(data: bytes, begin: int, end: int) -> bool:
    """The engine's rule for a value written in space-separated groups (RecognizerSpec::pattern):
    whether a group of 1-4 [A-Z0-9] with a digit one space away makes it part of a longer number."""
    value = data[begin:end]
    if b" " not in value:
        return False
    upper_or_digit = re.compile(rb"[A-Z0-9]+")
    first_group = value.index(b" ")
    group_end = begin
    if upper_or_digit.fullmatch(data[begin:begin + 1]):
        for _ in range(8):
            if group_end < 2 or data[group_end - 1:group_end] != b" ":
                break
            group = group_end - 1
            while group > 0 and data[group - 1:group].isalnum():
                group -= 1
            text = data[group:group_end - 1]
            if (len(text) > 4 or not upper_or_digit.fullmatch(data[group_end - 2:group_end - 1])
                    or len(text) < first_group or (group > 0 and is_date_joint(data, group - 1))):
                break
            if upper_or_digit.fullmatch(text) and re.search(rb"[0-9]", text):
                return True
            if not upper_or_digit.fullmatch(text):
                break
            group_end = group
    if data[end:end + 1] == b" " and upper_or_digit.fullmatch(data[end - 1:end]):
        group = end + 1
        while group < len(data) and data[group:group + 1].isalnum():
            group += 1
        text = data[end + 1:group]
        if not (upper_or_digit.fullmatch(text) and re.search(rb"[0-9]", text)) or is_date_joint(data, group):
            return False
        groups = value.split(b" ")
        if len(groups[-1]) < len(groups[-2]):
            return False
        return len(text) >= 4 or bool(re.search(rb"[A-Za-z]", value))
    return False
TOKEN_BOUNDARY = (re.compile(rb"[0-9A-Za-z_-]\Z"), re.compile(rb"[0-9A-Za-z_-]"))
LABEL_BOUNDARY = {
    # A grouped value of these is judged by continues_groups (see label_problems).
    **{t: DIGIT_BOUNDARY for t in ("US_SSN", "US_ITIN", "CREDIT_CARD", "PHONE_NUMBER", "UK_NHS", "FR_NIR",
                                   "DE_TAX_ID", "BE_NATIONAL_NUMBER", "DK_CPR", "AT_SOCIAL_INSURANCE_NUMBER",
                                   "PT_TAX_ID")},
    "IBAN_CODE": (re.compile(rb"[0-9A-Za-z]\Z"), re.compile(rb"(?:[0-9A-Za-z]| [0-9A-Z])")),
    "EMAIL_ADDRESS": (re.compile(rb"[0-9A-Za-z._%+-]\Z"),
                      re.compile(rb"(?:[0-9A-Za-z_%+-]|\.[0-9A-Za-z])")),
    "IP_ADDRESS": (re.compile(rb"[0-9A-Za-z:.]\Z"), re.compile(rb"(?:[0-9A-Za-z:]|\.[0-9])")),
    # A base64 key: no base64 byte beside it (the whole run).
    "PRIVATE_KEY": (re.compile(rb"[-A-Za-z0-9+/=]\Z"), re.compile(rb"[-A-Za-z0-9+/=]")),
    # Right after "://"; not followed by more of a host name.
    "URL_CREDENTIALS": (re.compile(rb"(?<!//)\Z"), re.compile(rb"[A-Za-z0-9_]|[._~%-]+[A-Za-z0-9_]")),
    **{t: TOKEN_BOUNDARY for t in ("CRYPTO", "MEDICAL_LICENSE", "POLICY_SUITE_KEY", "OPENAI_API_KEY",
                                   "AWS_ACCESS_KEY", "GITHUB_TOKEN", "SLACK_TOKEN", "IT_FISCAL_CODE",
                                   "GOOGLE_API_KEY", "STRIPE_API_KEY", "HUGGINGFACE_TOKEN", "NPM_TOKEN",
                                   "SENDGRID_API_KEY")},
    # Values with '.'-separated parts: nor a '.' and one more part after them (a '.' ending a
    # sentence is no part of them).
    **{t: (TOKEN_BOUNDARY[0], re.compile(rb"\.?[0-9A-Za-z_-]")) for t in ("JWT", "GITLAB_TOKEN")},
    # A setting's value: accepts() takes only the whole quoted value or unquoted run.
    "SECRET": (re.compile(rb"(?!)"), re.compile(rb"(?!)")),
    # Right after "AccountKey="; no base64 byte or '=' after it.
    "AZURE_STORAGE_KEY": (re.compile(rb"[A-Za-z0-9+/]\Z"), re.compile(rb"[A-Za-z0-9+/=]")),
    # The eleven of 2026-12-07, late night: no byte of the glued rule (nor '-') before them, no
    # byte of their "byte after" rule after them.
    **{t: (TOKEN_BOUNDARY[0], re.compile(rb"[0-9A-Za-z_]")) for t in ("GROQ_API_KEY", "XAI_API_KEY")},
    **{t: TOKEN_BOUNDARY for t in ("GOOGLE_OAUTH_CLIENT_SECRET", "PYPI_TOKEN", "DOCKER_HUB_TOKEN")},
    "GOOGLE_OAUTH_TOKEN": (TOKEN_BOUNDARY[0], re.compile(rb"\.?[0-9A-Za-z_-]")),
    "WEBHOOK_SIGNING_SECRET": (re.compile(rb"[0-9A-Za-z_+/-]\Z"), re.compile(rb"[0-9A-Za-z_+/]")),
    "TELEGRAM_BOT_TOKEN": (re.compile(rb"(?:[0-9A-Za-z_-]|[0-9][.-])\Z"), re.compile(rb"[0-9A-Za-z_-]")),
    "SLACK_WEBHOOK_URL": (re.compile(rb"[0-9A-Za-z_]\Z"), re.compile(rb"[0-9A-Za-z_/]")),
    "AZURE_SHARED_ACCESS_KEY": (re.compile(rb"[A-Za-z0-9+/]\Z"), re.compile(rb"[A-Za-z0-9+/=]")),
    "AZURE_SAS_TOKEN": (re.compile(rb"[0-9A-Za-z%+/]\Z"), re.compile(rb"[0-9A-Za-z%+/=]")),
    # The ten of /tmp/secrets_spec4.md: nor '-', '.' or '~' before them; their byte-after rule after.
    **{t: (re.compile(rb"[0-9A-Za-z_.~-]\Z"), SECRET_GLUED_AFTER[t])
       for t in ("PERPLEXITY_API_KEY", "REPLICATE_API_TOKEN", "LANGSMITH_API_KEY", "DATABRICKS_TOKEN",
                 "ATLASSIAN_API_TOKEN", "VAULT_TOKEN", "AZURE_CLIENT_SECRET", "DIGITALOCEAN_TOKEN",
                 "POSTMAN_API_KEY", "GRAFANA_TOKEN")},
    # /tmp/secrets_spec5.md part B: no byte of its alphabet beside it, nor '.' and one after it.
    "DISCORD_BOT_TOKEN": (TOKEN_BOUNDARY[0], re.compile(rb"\.?[0-9A-Za-z_-]")),
    # /tmp/secrets_spec6.md section 7: no word byte before it (the rule says nothing there: the corpus
    # writes none), no byte of the token's alphabet after it.
    "DISCORD_WEBHOOK_URL": (re.compile(rb"[0-9A-Za-z_]\Z"), re.compile(rb"[0-9A-Za-z_-]")),
    # Values starting with a letter: no word byte or dash beside them; a grouped NINO's spaces
    # are judged by continues_groups.
    **{t: (re.compile(rb"[0-9A-Za-z_-]\Z"), re.compile(rb"[0-9A-Za-z_]|-[0-9A-Za-z]"))
       for t in ("UK_NINO", "ES_NIE", "DE_HEALTH_INSURANCE_NUMBER")},
    # Values starting with a digit: as DIGIT_BOUNDARY, '_' and (after a final letter) a dash
    # and a letter too; a spaced NIF ("12345678 Z") is judged by continues_groups as well.
    **{t: (re.compile(rb"(?:[0-9A-Za-z_+]|[0-9][ .-])\Z"), re.compile(rb"(?:[0-9A-Za-z_]|[ .-][0-9]|-[A-Za-z])"))
       for t in ("ES_NIF", "PL_PESEL", "FI_PERSONAL_IDENTITY_CODE", "NL_BSN", "SE_PERSONAL_IDENTITY_NUMBER",
                 "IE_PPSN")},
    # The fifth batch: a VAT number's glued rules, and no space or dot and a digit or a capital
    # after it (which a reader taking the longest run of its characters would count in); an MRZ
    # with no byte of [A-Za-z0-9<] beside it.
    "EU_VAT_NUMBER": (re.compile(rb"[A-Za-z0-9_]\Z"), re.compile(rb"[A-Za-z0-9_]|(?<=[0-9])[.-][0-9]|[ .][0-9A-Z]")),
    "IDENTITY_DOCUMENT_MRZ": (re.compile(rb"[A-Za-z0-9<]\Z"), re.compile(rb"[A-Za-z0-9<]")),
}
# Types with a written form in space-separated groups whose labels continues_groups judges.
GROUPED_NATIONAL_ID_TYPES = ("UK_NINO", "ES_NIF", "IE_PPSN")


# ---------------------------------------------------------------------------------------
# Positive values, one generator per format: (rng, ordinal within the format) -> value
# ---------------------------------------------------------------------------------------

ValueGenerator = Callable[[Random, int], str]


def random_string(rng: Random, alphabet: str, length: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def valid_ssn_parts(rng: Random) -> tuple[str, str, str]:
    while True:
        area = rng.randint(1, 899)
        parts = ("%03d" % area, "%02d" % rng.randint(1, 99), "%04d" % rng.randint(1, 9999))
        if area != 666 and parts not in SSN_ADVERTISING_NUMBERS:
            return parts


def valid_itin_parts(rng: Random) -> tuple[str, str, str]:
    return ("9%02d" % rng.randint(0, 99), "%02d" % rng.choice(ITIN_GROUPS), "%04d" % rng.randint(1, 9999))


def joined_parts(parts_of: Callable[[Random], tuple[str, ...]], separator: str) -> ValueGenerator:
    return lambda rng, ordinal: separator.join(parts_of(rng))


def card_number(rng: Random, issuer: str, length: int) -> str:
    low, high = rng.choice(CARD_ISSUERS[issuer][0])
    prefix = str(rng.randint(int(low), int(high))).zfill(len(low))
    payload = prefix + random_string(rng, DIGITS, length - len(prefix) - 1)
    return payload + luhn_check_digit(payload)


def grouped(digits: str, layout: tuple[int, ...], separator: str) -> str:
    groups, start = [], 0
    for size in layout:
        groups.append(digits[start:start + size])
        start += size
    return separator.join(groups)


def card_format(issuer: str, separator: str | None) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        if separator is None:
            lengths = CARD_ISSUERS[issuer][1]
            return card_number(rng, issuer, lengths[ordinal % len(lengths)])
        lengths = CARD_GROUPED_LENGTHS[issuer]
        length = lengths[ordinal % len(lengths)]
        return grouped(card_number(rng, issuer, length), CARD_GROUPINGS[length], separator)
    return generate


def random_bban(rng: Random, country: str) -> str:
    fields = []
    for count, kind in re.findall(r"(\d+)!([nac])", IBAN_BBAN_STRUCTURE[country]):
        if kind == "n":
            alphabet = DIGITS
        elif kind == "a":
            alphabet = UPPER
        else:
            alphabet = rng.choice((DIGITS, DIGITS, DIGITS + UPPER))
        fields.append(random_string(rng, alphabet, int(count)))
    return "".join(fields)


def iban_from_bban(country: str, bban: str) -> str:
    return country + iban_check_digits(country, bban) + bban


def group_in_fours(compact: str) -> str:
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def iban_format(group: bool) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        country = IBAN_COUNTRIES[ordinal % len(IBAN_COUNTRIES)]
        iban = iban_from_bban(country, random_bban(rng, country))
        return group_in_fours(iban) if group else iban
    return generate


FIRST_NAMES = ("anna", "ben", "carla", "deepak", "elif", "fatima", "goran", "hiro", "ines", "jonas",
               "keiko", "lena", "mateo", "nadia", "oscar", "priya", "quentin", "rosa", "sven", "yuki")
LAST_NAMES = ("schmidt", "dubois", "tanaka", "okafor", "novak", "garcia", "larsen", "kowalski",
              "moreau", "silva", "chen", "mueller", "obrien", "rossi", "nguyen", "patel")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "acme-corp.io", "northwind.co.uk",
                 "contoso.de", "globex.fr", "initech.com", "mail.example.jp", "umbrella-health.org")


def email_name(rng: Random) -> tuple[str, str]:
    return rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)


def email_dotted(rng: Random, ordinal: int) -> str:
    first, last = email_name(rng)
    return "%s.%s@%s" % (first, last, rng.choice(EMAIL_DOMAINS))


def email_plus_tag(rng: Random, ordinal: int) -> str:
    first, last = email_name(rng)
    tag = rng.choice(("newsletter", "billing", "test", "2024", "promo"))
    return "%s%s+%s@%s" % (first[0], last, tag, rng.choice(EMAIL_DOMAINS))


def email_subdomain(rng: Random, ordinal: int) -> str:
    first, last = email_name(rng)
    sub = rng.choice(("mail", "eu", "corp", "hr.intra", "support"))
    return "%s_%s@%s.%s" % (first, last, sub, rng.choice(EMAIL_DOMAINS))


def email_with_digits(rng: Random, ordinal: int) -> str:
    first, last = email_name(rng)
    local = rng.choice(("%s%s%d", "%s-%s%d", "%s%s%%%d")) % (first[0], last, rng.randint(1, 1999))
    return "%s@%s" % (local, rng.choice(EMAIL_DOMAINS))


def email_mixed_case(rng: Random, ordinal: int) -> str:
    first, last = email_name(rng)
    domain = rng.choice(EMAIL_DOMAINS)
    domain = domain.upper() if ordinal % 2 else domain.title()
    return "%s.%s@%s" % (first.capitalize(), last.capitalize(), domain)


def nanp_parts(rng: Random) -> tuple[str, str, str]:
    def code() -> str:
        while True:
            candidate = str(rng.randint(2, 9)) + random_string(rng, DIGITS, 2)
            if candidate[1:] != "11":
                return candidate
    return code(), code(), random_string(rng, DIGITS, 4)


def nanp_format(template: str) -> ValueGenerator:
    return lambda rng, ordinal: template.format(*nanp_parts(rng))


# International numbers: calling code and national-number patterns (# is a random digit).
INTERNATIONAL_PHONES = {
    "gb": ("44", ("20 #### ####", "7### ######", "161 ### ####")),
    "de": ("49", ("30 ########", "89 #######", "151 ########")),
    "fr": ("33", ("1 ## ## ## ##", "6 ## ## ## ##")),
    "jp": ("81", ("3-####-####", "90-####-####")),
    "in": ("91", ("9#### #####", "8#### #####")),
    "au": ("61", ("2 #### ####", "4## ### ###")),
    "es": ("34", ("91# ### ###", "6## ### ###")),
    "it": ("39", ("06 #### ####", "3## #######")),
    "nl": ("31", ("20 ### ####", "6 ########")),
    "se": ("46", ("8 ### ### ##", "70 ### ## ##")),
    "ie": ("353", ("1 ### ####", "8# ### ####")),
    "br": ("55", ("11 9####-####", "21 ####-####")),
}
MORE_INTERNATIONAL_PHONES = (
    ("7", "495 ###-##-##"), ("86", "10 #### ####"), ("86", "138 #### ####"), ("82", "2-###-####"),
    ("27", "21 ### ####"), ("971", "4 ### ####"), ("852", "#### ####"), ("65", "6### ####"),
    ("48", "22 ### ## ##"), ("90", "212 ### ## ##"), ("52", "55 #### ####"), ("41", "44 ### ## ##"),
)
ALL_INTERNATIONAL_PHONES = tuple(
    (code, pattern) for code, patterns in INTERNATIONAL_PHONES.values() for pattern in patterns
) + MORE_INTERNATIONAL_PHONES


def fill_pattern(rng: Random, pattern: str) -> str:
    return "".join(rng.choice(DIGITS) if char == "#" else char for char in pattern)


def international_format(phones: tuple[tuple[str, str], ...], compact: bool) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        code, pattern = phones[ordinal % len(phones)]
        national = fill_pattern(rng, pattern)
        return "+" + code + re.sub(r"[ -]", "", national) if compact else "+%s %s" % (code, national)
    return generate


def random_ipv4(rng: Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        octets = [10, rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)]
    elif kind == 1:
        octets = [192, 168, rng.randint(0, 255), rng.randint(1, 254)]
    elif kind == 2:
        octets = [172, rng.randint(16, 31), rng.randint(0, 255), rng.randint(1, 254)]
    else:
        octets = [rng.choice([o for o in range(1, 224) if o != 127]),  # not loopback
                  rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255)]
    return ".".join(map(str, octets))


def random_ipv6_groups(rng: Random) -> list[int]:
    """Eight groups with a run of at least two zero groups inside (not at either end)."""
    prefix = rng.choice(((0x2001, 0x0DB8), (0xFE80, 0), (0x2A00, 0x1450), (0x2606, 0x4700),
                         (0xFD12, 0x3456)))
    groups = list(prefix) + [rng.randint(0, 0xFFFF) for _ in range(6)]
    start = rng.randint(2, 5)
    for i in range(start, start + rng.randint(2, 7 - start)):
        groups[i] = 0
    groups[7] = groups[7] or 1
    return groups


def ipv6_full(rng: Random, ordinal: int) -> str:
    return ":".join("%04x" % g for g in random_ipv6_groups(rng))


def ipv6_compressed(rng: Random, ordinal: int) -> str:
    groups = random_ipv6_groups(rng)
    return ipaddress.IPv6Address(":".join("%x" % g for g in groups)).compressed


def ipv6_embedded_ipv4(rng: Random, ordinal: int) -> str:
    prefix = ("::ffff:", "64:ff9b::", "2001:db8:0:1::")[ordinal % 3]
    return prefix + random_ipv4(rng)


def ipv6_uppercase(rng: Random, ordinal: int) -> str:
    return (ipv6_full if ordinal % 2 else ipv6_compressed)(rng, ordinal).upper()


def nhs_number(rng: Random) -> str:
    while True:
        first_nine = rng.choice("4679") + random_string(rng, DIGITS, 8)
        check = nhs_check_digit(first_nine)
        if check is not None:
            return first_nine + str(check)


def nhs_format(separator: str | None) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        digits = nhs_number(rng)
        return digits if separator is None else grouped(digits, (3, 3, 4), separator)
    return generate


def base58_address_format(version: int) -> ValueGenerator:
    return lambda rng, ordinal: base58check_encode(version, rng.randbytes(20))


def segwit_format(witness_version: int, program_length: int) -> ValueGenerator:
    return lambda rng, ordinal: segwit_address(witness_version, rng.randbytes(program_length))


def dea_format(first_letters: str, second_is_nine: bool) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        second = "9" if second_is_nine else rng.choice(UPPER)
        six = random_string(rng, DIGITS, 6)
        return rng.choice(first_letters) + second + six + dea_check_digit(six)
    return generate


def policy_suite_key_format(scope: str) -> ValueGenerator:
    return lambda rng, ordinal: "psk_%s_%s" % (scope, random_string(rng, BASE62, 66))


def openai_legacy_key(rng: Random, ordinal: int) -> str:
    return "sk-" + random_string(rng, BASE62, 48)


def openai_scoped_key_format(scope: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        # Real project keys carry "T3BlbkFJ" (base64 of "OpenAI") in the middle; the body
        # starts and ends with a letter or digit.
        half = rng.randint(16, 90)
        body = (rng.choice(BASE62) + random_string(rng, BASE62 + "_-", half) + "T3BlbkFJ"
                + random_string(rng, BASE62 + "_-", half) + rng.choice(BASE62))
        return "sk-%s-%s" % (scope, body)
    return generate


def aws_key_format(prefix: str) -> ValueGenerator:
    return lambda rng, ordinal: prefix + random_string(rng, UPPER + "234567", 16)


def base62_number(number: int, width: int) -> str:
    out = ""
    while number:
        number, digit = divmod(number, 62)
        out = BASE62[digit] + out
    return out.rjust(width, "0")


def github_token_format(prefix: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        entropy = random_string(rng, BASE62, 30)  # plus GitHub's CRC32 checksum in base62
        return "%s_%s%s" % (prefix, entropy, base62_number(zlib.crc32(entropy.encode()), 6))
    return generate


def github_fine_grained_pat(rng: Random, ordinal: int) -> str:
    return "github_pat_11%s_%s" % (random_string(rng, BASE62, 20), random_string(rng, BASE62, 59))


def slack_token_format(prefix: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        groups = [random_string(rng, "123456789", 1) + random_string(rng, DIGITS, rng.randint(10, 12))
                  for _ in range(rng.choice((2, 3)))]
        tail_alphabet = BASE62 if ordinal % 2 else HEX
        tail = rng.choice(UPPER + LOWER) + random_string(rng, tail_alphabet, rng.choice((23, 31)))
        return "-".join([prefix] + groups + [tail])
    return generate


# The eight secrets of 2026-12-07. Their random parts are drawn as their issuers draw them; a
# value that happens to be a placeholder (fewer than six distinct characters) is drawn again.

def base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def compact_json(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


JWT_ISSUERS = ("https://auth.example.com/", "https://login.acme-corp.io/oauth2", "accounts.example.org",
               "https://sso.northwind.co.uk/realms/main")
JWT_SCOPES = ("openid profile email", "read:orders write:orders", "api.read", "admin")


def jwt_claims(rng: Random) -> dict:
    """A payload as identity providers issue them: subject, issuer, audience, times, and some of
    name, e-mail, scope, roles and token id."""
    issued = rng.randint(1_672_531_200, 1_798_761_600)  # 2023-2026
    claims = {"sub": rng.choice((random_string(rng, DIGITS, rng.randint(6, 12)),
                                 "auth0|" + random_string(rng, HEX, 24), uuid_v4(rng, 0)))}
    if rng.random() < 0.7:
        claims["iss"] = rng.choice(JWT_ISSUERS)
    if rng.random() < 0.5:
        claims["aud"] = rng.choice(("api.example.com", "web-client", "https://api.acme-corp.io"))
    if rng.random() < 0.5:
        claims["name"] = "%s %s" % (rng.choice(FIRST_NAMES).capitalize(), rng.choice(LAST_NAMES).capitalize())
    if rng.random() < 0.3:
        claims["email"] = email_dotted(rng, 0)
    if rng.random() < 0.4:
        claims["scope"] = rng.choice(JWT_SCOPES)
    if rng.random() < 0.3:
        claims["roles"] = rng.sample(("user", "admin", "billing", "support"), rng.randint(1, 2))
    claims["iat"] = issued
    claims["exp"] = issued + rng.choice((300, 900, 3600, 86400))
    if rng.random() < 0.3:
        claims["jti"] = random_string(rng, BASE64URL, 22)
    return claims


JWT_HMAC = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
JWT_SIGNATURE_BYTES = {"RS256": 256, "RS512": 512, "PS256": 256, "ES256": 64, "ES384": 96, "EdDSA": 64}


def jwt_header(rng: Random, alg: str, kid: bool = False) -> dict:
    """{"alg":...,"typ":"JWT"}, now and then "typ" first or a key id."""
    header = {"alg": alg, "typ": "JWT"} if rng.random() < 0.8 else {"typ": "JWT", "alg": alg}
    if kid:
        header["kid"] = rng.choice((random_string(rng, BASE64URL, 43), random_string(rng, HEX, 40),
                                    "key-%d" % rng.randint(1, 99)))
    return header


def jwt_encode(header: dict, claims: dict, rng: Random) -> str:
    """A JWS in compact form: an HMAC signature with a random secret for HS*, random bytes of
    the algorithm's signature length for the others, none for "none"."""
    signing_input = "%s.%s" % (base64url(compact_json(header)), base64url(compact_json(claims)))
    alg = header.get("alg", "HS256")
    if alg == "none":
        return signing_input + "."
    if alg in JWT_HMAC:
        signature = hmac.new(rng.randbytes(32), signing_input.encode(), JWT_HMAC[alg]).digest()
    else:
        signature = rng.randbytes(JWT_SIGNATURE_BYTES[alg])
    return signing_input + "." + base64url(signature)


def jwt_format(kind: str) -> ValueGenerator:
    """"hmac": HS256/384/512; "asymmetric": RS, PS, ES or EdDSA with a key id; "unsecured":
    alg "none" and an empty signature (the token ends with its second '.'); "any": hmac or
    asymmetric. Every token holds a digit or '_' (the engine's prefilter counts on it), and no
    signature starts with "eyJ" (which would start another candidate after its '.')."""
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            chosen = rng.choice(("hmac", "asymmetric")) if kind == "any" else kind
            if chosen == "hmac":
                header = jwt_header(rng, rng.choice(("HS256", "HS256", "HS384", "HS512")))
            elif chosen == "asymmetric":
                header = jwt_header(rng, rng.choice(tuple(JWT_SIGNATURE_BYTES)), kid=True)
            else:
                header = jwt_header(rng, "none")
            token = jwt_encode(header, jwt_claims(rng), rng)
            if is_valid_jwt(token) and not token.split(".")[2].startswith("eyJ"):
                return token
    return generate


def drawn_until(valid: Callable[[str], bool], draw: Callable[[], str]) -> str:
    """draw() again until valid (for a random part that came out a placeholder)."""
    while True:
        value = draw()
        if valid(value):
            return value


def google_api_key(rng: Random, ordinal: int) -> str:
    """AIza and 35 characters, mostly "Sy..." as Google's Cloud and Firebase keys start."""
    head = "Sy" if rng.random() < 0.8 else random_string(rng, BASE64URL, 2)
    return drawn_until(is_valid_google_api_key, lambda: "AIza" + head + random_string(rng, BASE64URL, 33))


def stripe_key_format(prefixes: tuple[str, ...]) -> ValueGenerator:
    """A secret or restricted key: 24 characters (older keys) or 99 starting "51" (newer ones),
    now and then the longest, 247."""
    def generate(rng: Random, ordinal: int) -> str:
        prefix = rng.choice(prefixes)
        length = rng.choice((24, 99, 99, 99, 247) if ordinal % 7 == 0 else (24, 99, 99))
        head = "51" if length > 24 else ""
        return drawn_until(is_valid_stripe_api_key,
                           lambda: prefix + head + random_string(rng, BASE62, length - len(head)))
    return generate


def gitlab_token_format(prefix: str, routable: bool = False) -> ValueGenerator:
    """20 characters of [0-9A-Za-z_-] (a pipeline trigger token 40 hex digits); routable:
    the newer form, a base64url payload, ".01." and a nine-character checksum part."""
    def generate(rng: Random, ordinal: int) -> str:
        def draw() -> str:
            if routable:
                return "%s-%s.01.%s" % (prefix, random_string(rng, BASE64URL, rng.randint(27, 40)),
                                        random_string(rng, DIGITS + LOWER, 9))
            if prefix == "glptt":
                return "glptt-" + random_string(rng, HEX, 40)
            return "%s-%s" % (prefix, random_string(rng, BASE64URL, 20))
        return drawn_until(is_valid_gitlab_token, draw)
    return generate


def huggingface_token(rng: Random, ordinal: int) -> str:
    return drawn_until(is_valid_huggingface_token, lambda: "hf_" + random_string(rng, UPPER + LOWER, 34))


def npm_token(rng: Random, ordinal: int) -> str:
    """npm_ and 36 base62 characters: 30 random and their CRC32 in base62, as npm issues them."""
    def draw() -> str:
        entropy = random_string(rng, BASE62, 30)
        return "npm_%s%s" % (entropy, base62_number(zlib.crc32(entropy.encode()), 6))
    return drawn_until(is_valid_npm_token, draw)


def sendgrid_api_key(rng: Random, ordinal: int) -> str:
    """SG., a 22-character key id, '.', the 43-character secret; with a digit or '_'."""
    return drawn_until(is_valid_sendgrid_api_key, lambda: "SG.%s.%s" % (
        random_string(rng, BASE64URL, 22), random_string(rng, BASE64URL, 43)))


def azure_storage_key(rng: Random, ordinal: int = 0) -> str:
    """Base64 of 64 random bytes, with a digit."""
    return drawn_until(is_valid_azure_storage_key, lambda: base64.b64encode(rng.randbytes(64)).decode())


# The eleven secrets of 2026-12-07, late night, and Slack's app-level tokens: drawn as their
# issuers draw them, again until valid and free of other readings (free_of_other_readings: no
# piece of a token, a digit group say, is valid as another type on its own, whatever context
# words a record puts near it; no placeholder word of SECRET's in it, which a setting that holds
# it would read).

def no_entity(value: str) -> bool:
    """No type's validator accepts the value on its own (a bot id, a digit group of a token);
    SECRET's, which takes most runs of bytes, but only where a setting or header gives them, aside."""
    return not any(VALIDATORS[t](value) for t in ENTITY_TYPES if t != "SECRET")


def free_of_other_readings(value: str, entity_type: str) -> bool:
    """The value alone on a line: no candidate span of any type in it, but the value itself as
    entity_type, passes that type's validator (context and neighbours aside); and it holds none of
    SECRET_PLACEHOLDER_WORDS."""
    if has_placeholder_word(value):
        return False
    data = b"\n" + value.encode() + b"\n"
    whole = (entity_type, 1, len(data) - 1)
    return not any((t, begin, end) != whole and VALIDATORS[t](data[begin:end].decode("utf-8", "replace"))
                   for types, begin, end in candidates(data) for t in types)


def token_drawn(entity_type: str, draw: Callable[[], str]) -> str:
    return drawn_until(lambda v: VALIDATORS[entity_type](v) and free_of_other_readings(v, entity_type), draw)


def groq_api_key(rng: Random, ordinal: int) -> str:
    """gsk_ and 52 base62 characters, "WGdyb3FY" (base64 of "XgroqX") at 20 as in Groq's keys
    (mostly)."""
    def draw() -> str:
        if rng.random() < 0.8:
            return "gsk_" + random_string(rng, BASE62, 20) + "WGdyb3FY" + random_string(rng, BASE62, 24)
        return "gsk_" + random_string(rng, BASE62, 52)
    return token_drawn("GROQ_API_KEY", draw)


def xai_api_key(rng: Random, ordinal: int) -> str:
    return token_drawn("XAI_API_KEY", lambda: "xai-" + random_string(rng, BASE62, 80))


def google_oauth_client_secret(rng: Random, ordinal: int) -> str:
    return token_drawn("GOOGLE_OAUTH_CLIENT_SECRET", lambda: "GOCSPX-" + random_string(rng, BASE64URL, 28))


def google_oauth_client_id(rng: Random) -> str:
    """A client id: the project number, '-', 32 of [0-9a-z] and ".apps.googleusercontent.com"."""
    number = drawn_until(no_entity, lambda: rng.choice("123456789") + random_string(rng, DIGITS, 11))
    return "%s-%s.apps.googleusercontent.com" % (number, random_string(rng, DIGITS + LOWER, 32))


def google_oauth_token(rng: Random, ordinal: int) -> str:
    """An access token: a user's ("ya29.a0" and 150-230 base64url characters) or a service
    account's ("ya29.c.c0" and parts of base64url joined by single dots)."""
    def draw() -> str:
        if ordinal % 3 == 2:
            parts = ["c", "c0" + random_string(rng, BASE64URL, rng.randint(60, 160))]
            parts += [random_string(rng, BASE64URL, rng.randint(8, 120)) for _ in range(rng.randint(1, 4))]
            return "ya29." + ".".join(parts)
        return "ya29.a0" + random_string(rng, BASE64URL, rng.randint(150, 230))
    return token_drawn("GOOGLE_OAUTH_TOKEN", draw)


PYPI_PROJECTS = ("acme-utils", "northwind-cli", "tiny-model", "shopkit", "fastcsv2")


def pypi_macaroon(rng: Random, location: bytes) -> bytes:
    """A macaroon as PyPI serializes it (v2): its location, a UUID as its identifier, a caveat of
    its scope (and now and then one of its validity), the 32-byte signature."""
    identifier = uuid_v4(rng, 0).encode()
    if rng.random() < 0.5:
        caveats = [b'{"permissions": "user", "version": 1}']
    else:
        caveats = [b'{"permissions": {"projects": ["%s"]}, "version": 1}' % rng.choice(PYPI_PROJECTS).encode()]
    if rng.random() < 0.3:
        start = rng.randint(1_700_000_000, 1_800_000_000)
        caveats.append(b'{"nbf": %d, "exp": %d}' % (start, start + rng.choice((3600, 86400, 31536000))))
    data = bytes([2, 1, len(location)]) + location + bytes([2, len(identifier)]) + identifier + b"\x00"
    for caveat in caveats:
        data += bytes([2, len(caveat)]) + caveat + b"\x00"
    return data + b"\x00" + bytes([6, 32]) + rng.randbytes(32)


def pypi_token_format(location: bytes) -> ValueGenerator:
    """pypi- and the base64url of a macaroon of pypi.org or test.pypi.org (~170-220 bytes)."""
    def generate(rng: Random, ordinal: int) -> str:
        return token_drawn("PYPI_TOKEN", lambda: "pypi-" + base64url(pypi_macaroon(rng, location)))
    return generate


def docker_hub_token(rng: Random, ordinal: int) -> str:
    return token_drawn("DOCKER_HUB_TOKEN", lambda: "dckr_pat_" + random_string(rng, BASE64URL, 27))


def webhook_signing_secret_format(kind: str) -> ValueGenerator:
    """"stripe": 32 base62 characters (the Dashboard's) or 64 hex digits (the Stripe CLI's);
    "svix": the unpadded base64 of 24 bytes (Svix, Clerk, Resend), now and then of 32 or 64."""
    def generate(rng: Random, ordinal: int) -> str:
        def draw() -> str:
            if kind == "stripe":
                return "whsec_" + (random_string(rng, HEX, 64) if ordinal % 3 == 2 else random_string(rng, BASE62, 32))
            size = rng.choice((24, 24, 24, 32, 64))
            return "whsec_" + base64.b64encode(rng.randbytes(size)).decode().rstrip("=")
        return token_drawn("WEBHOOK_SIGNING_SECRET", draw)
    return generate


def telegram_bot_id(rng: Random, digits: int | None = None) -> str:
    """A bot id of 8-10 digits (mostly 10, as new bots get), no leading 0, valid as no type on
    its own (no phone number, SSN, ... whatever word stands near it: "api.telegram.org" holds "tel")."""
    size = digits or rng.choice((10, 10, 10, 9, 8))
    return drawn_until(no_entity, lambda: rng.choice("123456789") + random_string(rng, DIGITS, size - 1))


def telegram_bot_token_format(bot: bool) -> ValueGenerator:
    """The id, ':', "AA" and 33 of base64url; bot: with the "bot" of a Bot API URL."""
    def generate(rng: Random, ordinal: int) -> str:
        return token_drawn("TELEGRAM_BOT_TOKEN", lambda: "%s%s:AA%s" % (
            "bot" if bot else "", telegram_bot_id(rng), random_string(rng, BASE64URL, 33)))
    return generate


def slack_workspace_id(rng: Random, letter: str) -> str:
    """A team (T), channel (B) or app (A) id as Slack writes them: the letter and 8-11 of [0-9A-Z]
    (often a 0 first), valid as no type on its own."""
    return drawn_until(no_entity, lambda: letter + rng.choice(("0", "")) + random_string(
        rng, DIGITS + UPPER, rng.choice((8, 8, 10)))[:10])


def slack_webhook_url_format(kind: str) -> ValueGenerator:
    """"services": an incoming webhook (T..., B..., 24 base62 characters); "workflows": a
    Workflow Builder webhook (T..., an app id, an 18-digit id, 24 base62); "triggers": a
    trigger's (T..., a 13-digit id, 32 hex digits)."""
    def generate(rng: Random, ordinal: int) -> str:
        def draw() -> str:
            scheme = "http://" if ordinal % 17 == 16 else "https://"
            team = slack_workspace_id(rng, "T")
            if kind == "services":
                return "%shooks.slack.com/services/%s/%s/%s" % (scheme, team, slack_workspace_id(rng, "B"),
                                                                 random_string(rng, BASE62, 24))
            if kind == "workflows":
                number = drawn_until(no_entity, lambda: rng.choice("123456789") + random_string(rng, DIGITS, 17))
                return "%shooks.slack.com/workflows/%s/%s/%s/%s" % (
                    scheme, team, slack_workspace_id(rng, "A"), number, random_string(rng, BASE62, 24))
            number = drawn_until(no_entity, lambda: rng.choice("123456789") + random_string(rng, DIGITS, 12))
            return "%shooks.slack.com/triggers/%s/%s/%s" % (scheme, team, number, random_string(rng, HEX, 32))
        return token_drawn("SLACK_WEBHOOK_URL", draw)
    return generate


def azure_shared_access_key(rng: Random, ordinal: int = 0) -> str:
    """Base64 of 32 random bytes (43 characters and '=')."""
    return token_drawn("AZURE_SHARED_ACCESS_KEY", lambda: base64.b64encode(rng.randbytes(32)).decode())


def sas_escaped(signature: str, style: str) -> str:
    """A signature as a URL carries it: "upper" (%2B, %2F, %3D, as the portal writes it), "lower"
    (%2b, %2f, %3d), "raw" (+, / and = as they are)."""
    if style == "raw":
        return signature
    escapes = {"+": "%2B", "/": "%2F", "=": "%3D"}
    return "".join((escapes[c].lower() if style == "lower" else escapes[c]) if c in escapes else c for c in signature)


def azure_sas_signature(rng: Random, style: str = "upper") -> str:
    """A sig= value: base64 of an HMAC-SHA256 (32 bytes), escaped as style says."""
    return token_drawn("AZURE_SAS_TOKEN", lambda: sas_escaped(
        base64.b64encode(hmac.new(rng.randbytes(32), rng.randbytes(40), hashlib.sha256).digest()).decode(), style))


def azure_sas_format(*styles: str) -> ValueGenerator:
    return lambda rng, ordinal: azure_sas_signature(rng, styles[ordinal % len(styles)])


def slack_app_token(rng: Random, ordinal: int) -> str:
    """xapp-, a digit, '-', an app id, '-', 10-16 digits (mostly 13), '-', 64 hex digits."""
    def draw() -> str:
        number = drawn_until(no_entity, lambda: rng.choice("123456789") + random_string(
            rng, DIGITS, rng.choice((12, 12, 12, 9, 15))))
        return "xapp-%d-%s-%s-%s" % (rng.choice((1, 1, 1, 2)), slack_workspace_id(rng, "A"), number,
                                     random_string(rng, HEX, 64))
    return token_drawn("SLACK_TOKEN", draw)


# The ten secrets of /tmp/secrets_spec4.md (part C): drawn as their issuers draw them, again until
# valid and free of other readings (token_drawn).

def perplexity_api_key(rng: Random, ordinal: int) -> str:
    return token_drawn("PERPLEXITY_API_KEY", lambda: "pplx-" + random_string(rng, BASE62, 48))


def replicate_api_token(rng: Random, ordinal: int) -> str:
    """r8_ and 37 characters, mostly base62 (a '_' or '-' now and then)."""
    def draw() -> str:
        body = random_string(rng, BASE62, 37)
        if rng.random() < 0.3:
            cut = rng.randrange(1, 36)
            body = body[:cut] + rng.choice("_-") + body[cut + 1:]
        return "r8_" + body
    return token_drawn("REPLICATE_API_TOKEN", draw)


def langsmith_api_key(rng: Random, ordinal: int) -> str:
    return token_drawn("LANGSMITH_API_KEY", lambda: "lsv2_%s_%s_%s" % (
        rng.choice(("pt", "pt", "sk")), random_string(rng, HEX, 32), random_string(rng, HEX, 10)))


def databricks_token(rng: Random, ordinal: int) -> str:
    """dapi and 32 hex digits; now and then the "-2" or "-3" suffix of newer tokens."""
    return token_drawn("DATABRICKS_TOKEN", lambda: "dapi" + random_string(rng, HEX, 32) + (
        "-" + rng.choice("23") if rng.random() < 0.3 else ""))


def atlassian_api_token(rng: Random, ordinal: int) -> str:
    """ATATT3xFfGF0, 171 base64url characters, '=' and an 8-hex checksum (186 after ATATT3)."""
    return token_drawn("ATLASSIAN_API_TOKEN", lambda: "ATATT3xFfGF0" + random_string(rng, BASE64URL, 171) + "="
                       + random_string(rng, HEX.upper(), 8))


def vault_token_format(batch: bool) -> ValueGenerator:
    """hvs. and a service token's 90-120 characters ("CAESI..." as Vault's protobuf starts), or
    hvb. and a batch token's 138-300 ("AAAAAQ...")."""
    def generate(rng: Random, ordinal: int) -> str:
        if batch:
            return token_drawn("VAULT_TOKEN", lambda: "hvb.AAAAAQ" + random_string(
                rng, BASE64URL, rng.randint(132, 200)))
        return token_drawn("VAULT_TOKEN", lambda: "hvs.CAESI" + random_string(rng, BASE64URL, rng.choice((86, 90, 104))))
    return generate


AZURE_CLIENT_SECRET_ALPHABET = BASE62 + "_~.-"


def azure_client_secret(rng: Random, ordinal: int) -> str:
    """Three characters, a digit, "Q~" and 34 (older secrets 31-33) of [0-9A-Za-z_~.-], not
    ending with '.'."""
    def draw() -> str:
        head = random_string(rng, BASE62 + "_~.", 3) if rng.random() < 0.2 else random_string(rng, BASE62, 3)
        tail = random_string(rng, AZURE_CLIENT_SECRET_ALPHABET, rng.choice((34, 34, 34, 31, 33)) - 1)
        return head + rng.choice(DIGITS) + "Q~" + tail + rng.choice(BASE62)
    return token_drawn("AZURE_CLIENT_SECRET", draw)


def digitalocean_token_format(prefix: str) -> ValueGenerator:
    return lambda rng, ordinal: token_drawn("DIGITALOCEAN_TOKEN", lambda: prefix + random_string(rng, HEX, 64))


def postman_api_key(rng: Random, ordinal: int) -> str:
    return token_drawn("POSTMAN_API_KEY", lambda: "PMAK-%s-%s" % (random_string(rng, HEX, 24),
                                                                   random_string(rng, HEX, 34)))


def grafana_token(rng: Random, ordinal: int) -> str:
    """glsa_, 32 base62 characters, '_' and the 8-hex CRC32 of what precedes it."""
    def draw() -> str:
        head = "glsa_" + random_string(rng, BASE62, 32)
        return "%s_%08x" % (head, zlib.crc32(head.encode()))
    return token_drawn("GRAFANA_TOKEN", draw)


# DISCORD_BOT_TOKEN (/tmp/secrets_spec5.md part B) as Discord issues it: the bot's user id (a
# snowflake of 18 or 19 digits mostly, 17 for the oldest bots, 20 now and then) in unpadded
# base64url, the token's timestamp (4 bytes, seconds since 2011-01-01, of 2018 to 2025) and the
# HMAC (27 characters in older tokens, 38 in newer ones); again until valid and free of other
# readings (token_drawn).
DISCORD_TOKEN_EPOCH = 1293840000
DISCORD_USER_ID_LENGTHS = (17, 18, 18, 18, 19, 19, 19, 20)


def discord_user_id_digits(rng: Random, length: int) -> str:
    return rng.choice("123456789") + random_string(rng, DIGITS, length - 1)


def discord_timestamp(rng: Random) -> str:
    return base64url((rng.randint(1514764800, 1767225599) - DISCORD_TOKEN_EPOCH).to_bytes(4, "big"))


def discord_token_of(user_id: str, timestamp: str, hmac_part: str) -> str:
    return "%s.%s.%s" % (base64url(user_id.encode()), timestamp, hmac_part)


def discord_bot_token(rng: Random, ordinal: int) -> str:
    return token_drawn("DISCORD_BOT_TOKEN", lambda: discord_token_of(
        discord_user_id_digits(rng, rng.choice(DISCORD_USER_ID_LENGTHS)), discord_timestamp(rng),
        random_string(rng, BASE64URL, rng.choice((27, 38, 38)))))


def discord_snowflake(rng: Random) -> str:
    """A guild's, an application's or an owner's id in a bot's configuration: 18 or 19 digits,
    valid as no type on its own."""
    return drawn_until(no_entity, lambda: discord_user_id_digits(rng, rng.choice((18, 19))))


def random_pem(rng: Random, kind: str, breaks: str = "\n") -> str:
    """A whole PEM key of the kind (pem_body's DER-like content), its lines joined by breaks."""
    body = base64.b64encode(pem_body(rng, kind)).decode()
    width = 70 if kind == "OPENSSH " else 64
    lines = ["-----BEGIN %sPRIVATE KEY-----" % kind] + [body[i:i + width] for i in range(0, len(body), width)]
    return breaks.join(lines + ["-----END %sPRIVATE KEY-----" % kind])


def cut_pem_format(breaks: str, kinds: tuple[str, ...] = ("RSA ", "", "EC ", "OPENSSH ")) -> ValueGenerator:
    """A key pasted without its END line (cut after a whole line: 1 to 12 base64 lines), its lines
    broken by breaks ("\n", "\\n" as in a JSON string, "\n" and the indentation of a YAML block)."""
    def generate(rng: Random, ordinal: int) -> str:
        kind = kinds[ordinal % len(kinds)]
        lines = random_pem(rng, kind).split("\n")[:-1]
        keep = rng.randint(2, min(13, len(lines) - 1))
        return breaks.join(lines[:keep])
    return generate


def whole_json_pem(rng: Random, ordinal: int) -> str:
    return random_pem(rng, ("", "RSA ", "EC ")[ordinal % 3], "\\n")


def base64_pem_format(cut: bool) -> ValueGenerator:
    """base64 of a PEM key file (its last newline included), as Kubernetes and kubeconfig store it;
    cut: the paste ends somewhere in the key's base64 lines (a whole group of four or not)."""
    def generate(rng: Random, ordinal: int) -> str:
        pem = random_pem(rng, ("RSA ", "EC ", "")[ordinal % 3]) + "\n"
        encoded = base64.b64encode(pem.encode()).decode()
        if not cut:
            return encoded
        body_start = len(base64.b64encode(pem[:pem.index("\n") + 40].encode()))
        body_end = len(base64.b64encode(pem[:pem.index("-----END")].encode())) - 8
        return encoded[:rng.randint(body_start, max(body_start, min(body_end, body_start + 600)))]
    return generate


def der_length(length: int) -> bytes:
    return bytes([0x82]) + length.to_bytes(2, "big")


def pem_body(rng: Random, kind: str) -> bytes:
    """DER-like key bytes: the real leading structure of each kind, then random content."""
    if kind == "RSA ":
        content = b"\x02\x01\x00\x02\x82\x01\x01\x00" + rng.randbytes(rng.choice((1180, 2340)))
        return b"\x30" + der_length(len(content)) + content
    if kind == "EC ":
        return (b"\x30\x77\x02\x01\x01\x04\x20" + rng.randbytes(32)
                + b"\xa0\x0a\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\xa1\x44\x03\x42\x00\x04"
                + rng.randbytes(64))
    if kind == "DSA ":
        content = b"\x02\x01\x00\x02\x81\x81\x00" + rng.randbytes(436)
        return b"\x30" + der_length(len(content)) + content
    if kind == "OPENSSH ":
        return (b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none"
                + b"\x00\x00\x00\x00\x00\x00\x00\x01"
                + rng.randbytes(rng.choice((340, 1800))))
    if kind == "ENCRYPTED ":
        content = b"\x30\x4e\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x05\x0d" + rng.randbytes(1290)
        return b"\x30" + der_length(len(content)) + content
    content = (b"\x02\x01\x00\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00\x04"
               + der_length(1190) + rng.randbytes(1190))
    return b"\x30" + der_length(len(content)) + content


def pem_format(kind: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        body = base64.b64encode(pem_body(rng, kind)).decode()
        width = 70 if kind == "OPENSSH " else 64
        lines = [body[i:i + width] for i in range(0, len(body), width)]
        return "-----BEGIN %sPRIVATE KEY-----\n%s\n-----END %sPRIVATE KEY-----" % (
            kind, "\n".join(lines), kind)
    return generate


def nino_prefix(rng: Random) -> str:
    while True:
        prefix = rng.choice(NINO_FIRST_LETTERS) + rng.choice(NINO_SECOND_LETTERS)
        if prefix not in NINO_FORBIDDEN_PREFIXES:
            return prefix


def nino_written(prefix: str, digits: str, suffix: str, grouped_in_pairs: bool) -> str:
    if grouped_in_pairs:
        return " ".join([prefix] + [digits[i:i + 2] for i in range(0, len(digits), 2)] + [suffix])
    return prefix + digits + suffix


def nino_format(grouped_in_pairs: bool) -> ValueGenerator:
    return lambda rng, ordinal: nino_written(nino_prefix(rng), random_string(rng, DIGITS, 6),
                                             rng.choice(NINO_SUFFIXES), grouped_in_pairs)


# The written forms of a DNI/NIF, from its eight digits and letter.
NIF_FORMS = {
    "compact": lambda d, l: d + l,
    "dashed": lambda d, l: "%s-%s" % (d, l),
    "spaced": lambda d, l: "%s %s" % (d, l),
    "dotted-dashed": lambda d, l: "%s.%s.%s-%s" % (d[:2], d[2:5], d[5:], l),
    "dotted": lambda d, l: "%s.%s.%s%s" % (d[:2], d[2:5], d[5:], l),
}
NIE_FORMS = {
    "compact": lambda p, d, l: p + d + l,
    "spaced": lambda p, d, l: "%s %s %s" % (p, d, l),
    "dashed": lambda p, d, l: "%s-%s-%s" % (p, d, l),
    "dash-before-letter": lambda p, d, l: "%s%s-%s" % (p, d, l),
}


def lowercased(generate: ValueGenerator) -> ValueGenerator:
    return lambda rng, ordinal: generate(rng, ordinal).lower()


def nino_typed_format(form: str) -> ValueGenerator:
    """As people type a NINO: "CE-73-41-10-C" (dashed) or "WL 925318 B" (six digits)."""
    def generate(rng: Random, ordinal: int) -> str:
        prefix, digits, suffix = nino_prefix(rng), random_string(rng, DIGITS, 6), rng.choice(NINO_SUFFIXES)
        if form == "dashed":
            return "-".join([prefix] + [digits[i:i + 2] for i in range(0, 6, 2)] + [suffix])
        return "%s %s %s" % (prefix, digits, suffix)
    return generate


def nif_format(*forms: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        digits = "%08d" % rng.randint(100000, 99999999)
        return NIF_FORMS[forms[ordinal % len(forms)]](digits, dni_letter(digits))
    return generate


def nie_format(form: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        prefix = "XYZ"[ordinal % 3]
        digits = random_string(rng, DIGITS, 7)
        return NIE_FORMS[form](prefix, digits, nie_letter(prefix, digits))
    return generate


MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February without its leap day


def fiscal_code_fifteen(rng: Random, female: bool = False, foreign: bool = False, day: int | None = None,
                        month_letter: str | None = None) -> str:
    """The first 15 characters: surname and name letters, year, month, day (+40 for women),
    municipality (a Z code for one born abroad)."""
    month = rng.randrange(12)
    if day is None:
        day = rng.randint(1, MONTH_DAYS[month]) + (40 if female else 0)
    municipality = ("Z%d" % rng.randint(100, 399) if foreign
                    else rng.choice("ABCDEFGHILM") + random_string(rng, DIGITS, 3))
    return (random_string(rng, UPPER, 6) + "%02d" % rng.randint(0, 99)
            + (month_letter or FISCAL_CODE_MONTHS[month]) + "%02d" % day + municipality)


def with_omocodia(fifteen: str, positions: tuple[int, ...]) -> str:
    chars = list(fifteen)
    for i in positions:
        chars[i] = OMOCODIA_LETTERS[int(chars[i])]
    return "".join(chars)


def fiscal_code_format(kind: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        fifteen = fiscal_code_fifteen(rng, female=kind == "female" or (kind != "male" and ordinal % 2 == 1),
                                      foreign=kind == "foreign-born")
        if kind == "omocodia":
            # As the registry assigns them: the digits replaced from the right, 1 to 6 of the 7.
            fifteen = with_omocodia(fifteen, FISCAL_CODE_DIGIT_POSITIONS[-(ordinal % 6 + 1):])
        return fifteen + fiscal_code_check_letter(fifteen)
    return generate


def random_date(rng: Random, first_year: int, last_year: int) -> datetime.date:
    start = datetime.date(first_year, 1, 1).toordinal()
    return datetime.date.fromordinal(rng.randint(start, datetime.date(last_year, 12, 31).toordinal()))


def pesel_for(date: datetime.date, rng: Random) -> str:
    offset = next(offset for offset, century in PESEL_MONTH_OFFSETS.items() if century == date.year // 100 * 100)
    first_ten = "%02d%02d%02d" % (date.year % 100, date.month + offset, date.day) + random_string(rng, DIGITS, 4)
    return first_ten + pesel_check_digit(first_ten)


def pesel_format(kind: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        if kind == "born-1900s":
            date = random_date(rng, 1920, 1999)
        elif kind == "born-2000s":
            date = random_date(rng, 2000, 2024)
        elif kind == "other-centuries":
            date = random_date(rng, *((1850, 1899), (2100, 2199), (2200, 2299))[ordinal % 3])
        else:  # leap-day: 29 February of a leap year, 2000 among them
            date = datetime.date(rng.choice([y for y in range(1804, 2300, 4) if date_exists(y, 2, 29)]), 2, 29)
        return pesel_for(date, rng)
    return generate


def fi_code_for(date: datetime.date, sign: str, number: int) -> str:
    date_digits = "%02d%02d%02d" % (date.day, date.month, date.year % 100)
    return "%s%s%03d%s" % (date_digits, sign, number, fi_check_character(date_digits + "%03d" % number))


def fi_code_format(signs: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        sign = signs[ordinal % len(signs)]
        century = FI_CENTURY_SIGNS[sign]
        date = random_date(rng, century + (50 if century == 1800 else 0), min(century + 99, 2024))
        return fi_code_for(date, sign, rng.randint(2, 899))
    return generate


def nir_first_thirteen(rng: Random, kind: str = "standard", year: int | None = None,
                       month: int | None = None) -> str:
    """Sex digit (mostly 1 or 2), year, month (or INSEE's number for an unknown one),
    department (01-99, or 2A/2B for Corsica), commune, order number 001-999."""
    sex = rng.choice("1111122222" + ("3478" if kind == "unknown-month" else "34"))
    year = rng.randint(0, 99) if year is None else year
    if month is None:
        month = rng.choice(NIR_UNKNOWN_MONTHS) if kind == "unknown-month" else rng.randint(1, 12)
    department = rng.choice(("2A", "2B")) if kind == "corsica" else "%02d" % rng.randint(1, 99)
    return "%s%02d%02d%s%03d%03d" % (sex, year, month, department, rng.randint(1, 999), rng.randint(1, 999))


def nir_written(compact: str, grouped_form: bool) -> str:
    return grouped(compact, NIR_GROUPS, " ") if grouped_form else compact


def nir_number(rng: Random, kind: str = "standard", year: int | None = None, month: int | None = None) -> str:
    """A compact NIR whose fifteen digits are no valid card number as well (a sex digit 3 and
    a Diners or Amex prefix, "3 85 ..." or "3 72 ...", with a Luhn digit by chance)."""
    while True:
        first = nir_first_thirteen(rng, kind, year, month)
        compact = first + nir_key(first)
        if not is_valid_card(compact):
            return compact


def nir_format(kind: str, *forms: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        return nir_written(nir_number(rng, kind), forms[ordinal % len(forms)] == "grouped")
    return generate


def bsn_digits(rng: Random, leading_zero: bool = False) -> str:
    while True:
        first_eight = ("0" if leading_zero else rng.choice("123456789")) + random_string(rng, DIGITS, 7)
        check = bsn_check_digit(first_eight)
        if check is not None:
            return first_eight + check


def bsn_written(digits: str, dotted: bool) -> str:
    return "%s.%s.%s" % (digits[:4], digits[4:6], digits[6:]) if dotted else digits


def bsn_format(*forms: str, leading_zero: bool = False) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        return bsn_written(bsn_digits(rng, leading_zero), forms[ordinal % len(forms)] == "dotted")
    return generate


# The written forms of a personnummer: the birth years each is written for ('-' under 100
# years old, '+' 100 or older: as of the 2020s).
SE_PIN_FORM_YEARS = {"dash": (1930, 2024), "plus": (1890, 1924), "ten-digits": (1930, 2024),
                     "twelve-dash": (1900, 2024), "twelve-digits": (1900, 2024)}


def se_pin_from_parts(year: int, month: int, day: int, number: int, form: str) -> str:
    """The number for a birth date (day + 60 for a samordningsnummer; impossible dates too) in
    one written form, with its Luhn digit."""
    six = "%02d%02d%02d" % (year % 100, month, day)
    tail = "%03d" % number
    prefix = {"dash": six + "-", "plus": six + "+", "ten-digits": six,
              "twelve-dash": "%02d%s-" % (year // 100, six), "twelve-digits": "%02d%s" % (year // 100, six)}[form]
    return prefix + tail + luhn_check_digit(six + tail)


def se_pin_number(rng: Random, form: str, coordination: bool = False) -> str:
    while True:
        date = random_date(rng, *SE_PIN_FORM_YEARS[form])
        if (date.month, date.day) == (2, 29) and date.year % 100 == 0 and not form.startswith("twelve"):
            continue  # "000229-": a leap day of 2000 only when read as under 100 years old
        day = date.day + (SE_COORDINATION_DAY_OFFSET if coordination else 0)
        return se_pin_from_parts(date.year, date.month, day, rng.randint(1, 999), form)


def se_pin_format(*forms: str, coordination: bool = False) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        return se_pin_number(rng, forms[ordinal % len(forms)], coordination)
    return generate


def se_pin_finnish_shaped(rng: Random, ordinal: int) -> str:
    """A personnummer whose ten characters also pass every Finnish check: read as DDMMYY, its
    YYMMDD is a date (the year 01-24 a day), its birth number 002-899 and its Luhn digit the
    mod-31 check character. After a Swedish word it is Swedish only."""
    form = ("dash", "plus")[ordinal % 2]
    first, last = {"dash": (2001, 2024), "plus": (1901, 1924)}[form]
    while True:
        date = random_date(rng, first, last)
        value = se_pin_from_parts(date.year, date.month, date.day, rng.randint(2, 899), form)
        if is_valid_fi_code(value):
            return value


def de_tax_id_first_ten(rng: Random, kind: str = "twice") -> str:
    """Ten digits, the first not 0, of which one digit value occurs twice ("twice") or three
    times, not three in a row ("thrice"), and every other at most once."""
    while True:
        values = rng.sample(DIGITS, 9 if kind == "twice" else 8)
        digits = values + [values[0]] * (1 if kind == "twice" else 2)
        rng.shuffle(digits)
        first_ten = "".join(digits)
        if first_ten[0] != "0" and de_tax_id_digits_valid(first_ten):
            return first_ten


def de_tax_id_written(digits: str, grouped_form: bool) -> str:
    return grouped(digits, DE_TAX_ID_GROUPS, " ") if grouped_form else digits


def de_tax_id_number(rng: Random, kind: str = "twice") -> str:
    first_ten = de_tax_id_first_ten(rng, kind)
    return first_ten + de_tax_id_check_digit(first_ten)


def de_tax_id_format(kind: str, *forms: str) -> ValueGenerator:
    """kind: "twice", "thrice" (the repeated digit's count), "any" (either), "check-zero" (a
    number whose MOD 11,10 check is 10, written 0)."""
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            digits = de_tax_id_number(rng, ("twice", "thrice")[ordinal % 2] if kind in ("any", "check-zero")
                                      else kind)
            if kind != "check-zero" or digits[10] == "0":
                return de_tax_id_written(digits, forms[ordinal // 2 % len(forms)] == "grouped")
    return generate


def kvnr_number(rng: Random, letters: str = UPPER) -> str:
    letter, digits = rng.choice(letters), random_string(rng, DIGITS, 8)
    return letter + digits + kvnr_check_digit(letter, digits)


def kvnr_format(letters: str, check_zero: bool = False) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            value = kvnr_number(rng, letters)
            if not check_zero or value[-1] == "0":
                return value
    return generate


# The written forms of a Belgian national number, from its eleven digits: as the eID card prints
# it, and as people type it.
BE_NATIONAL_NUMBER_FORMS = {
    "document": lambda d: "%s.%s.%s-%s.%s" % (d[0:2], d[2:4], d[4:6], d[6:9], d[9:]),
    "compact": lambda d: d,
    "dashed": lambda d: "%s-%s-%s" % (d[0:6], d[6:9], d[9:]),
    "spaced": lambda d: "%s %s %s" % (d[0:6], d[6:9], d[9:]),
    "pairs": lambda d: "%s %s %s %s %s" % (d[0:2], d[2:4], d[4:6], d[6:9], d[9:]),
    "document-spaced-check": lambda d: "%s.%s.%s-%s %s" % (d[0:2], d[2:4], d[4:6], d[6:9], d[9:]),
}
BE_TYPED_FORMS = ("compact", "dashed", "spaced", "pairs", "document-spaced-check")


def be_national_number_from(year: int, month: int, day: int, serial: int) -> str:
    """The eleven digits of a birth year (for its century's check digits), the month (+ 20 or
    + 40 for a BIS number, 0 unknown), the day (0 unknown) and the serial."""
    first_nine = "%02d%02d%02d%03d" % (year % 100, month, day, serial)
    return first_nine + be_national_number_check(first_nine, year >= 2000)


def be_national_number(rng: Random, kind: str = "standard") -> str:
    """"standard": born 1930-2024; "born-2000s"; "bis": a BIS number (month + 20 or + 40, now
    and then with its month or day unknown); "unknown-date": a month or a day of 0; "leap-day":
    29 February of a leap year (2000 among them, its check digits of the 2000s)."""
    date = random_date(rng, *{"born-2000s": (2000, 2024)}.get(kind, (1930, 2024)))
    year, month, day = date.year, date.month, date.day
    if kind == "leap-day":
        year, month, day = rng.choice([y for y in range(1932, 2025, 4)] + [2000, 2000]), 2, 29
    elif kind == "bis":
        month += rng.choice(BE_MONTH_OFFSETS[1:])
        if rng.random() < 0.25:
            month, day = (month - date.month, day) if rng.random() < 0.5 else (month, 0)
    elif kind == "unknown-date":
        month, day = rng.choice(((0, day), (month, 0), (0, 0)))
    return be_national_number_from(year, month, day, rng.randint(1, 998))


def be_national_number_format(kind: str, *forms: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        return BE_NATIONAL_NUMBER_FORMS[forms[ordinal % len(forms)]](be_national_number(rng, kind))
    return generate


def ppsn_number(rng: Random, second: str = "") -> str:
    digits = random_string(rng, DIGITS, 7)
    return digits + ppsn_check_letter(digits, second) + second


def ppsn_format(seconds: tuple[str, ...], spaced: bool = False, lowercase: bool = False) -> ValueGenerator:
    """Seven digits, the check letter, a second letter of seconds ("" none); spaced: a space
    before the letters; lowercase."""
    def generate(rng: Random, ordinal: int) -> str:
        value = ppsn_number(rng, seconds[ordinal % len(seconds)])
        if spaced:
            value = value[:7] + " " + value[7:]
        return value.lower() if lowercase else value
    return generate


# The written forms of a CPR number, from its ten digits.
DK_CPR_FORMS = {"dash": lambda d: "%s-%s" % (d[:6], d[6:]), "compact": lambda d: d,
                "spaced": lambda d: "%s %s" % (d[:6], d[6:])}


def dk_cpr_for(date: datetime.date, rng: Random, seventh: int | None = None) -> str:
    """The ten digits of a birth date, the seventh digit one of those that give its year its
    century (or the one given), the other three at random."""
    if seventh is None:
        seventh = rng.choice(dk_cpr_seventh_digits(date.year))
    return "%02d%02d%02d%d%s" % (date.day, date.month, date.year % 100, seventh, random_string(rng, DIGITS, 3))


def dk_cpr_number(rng: Random, kind: str = "standard") -> str:
    """"standard": born 1937-2024; "born-2000s"; "centuries": each rule of the seventh digit in
    turn (0-3 1900s; 4 or 9 1937-1999 and 2000-2036; 5-8 2000-2057 and 1858-1899), born up to
    2024; "leap-day": 29 February of a leap year of the seventh digit's century."""
    if kind == "leap-day":  # every year 1858-2024 has a seventh digit of its century
        year = rng.choice([y for y in range(1860, 2025, 4) if date_exists(y, 2, 29)])
        return dk_cpr_for(datetime.date(year, 2, 29), rng)
    if kind == "centuries":
        seventh = rng.randrange(10)
        years = [y for y in range(1858, 2025) if dk_cpr_century(seventh, y % 100) == y // 100 * 100]
        year = rng.choice(years)
        date = random_date(rng, year, year)
        return dk_cpr_for(date, rng, seventh)
    return dk_cpr_for(random_date(rng, *{"born-2000s": (2000, 2024)}.get(kind, (1937, 2024))), rng)


def dk_cpr_format(kind: str, *forms: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        return DK_CPR_FORMS[forms[ordinal % len(forms)]](dk_cpr_number(rng, kind))
    return generate


def at_svnr_six_digits(rng: Random, birth_date: bool = True) -> str:
    """A birth date DDMMYY, or six digits that are none (the number does not check them)."""
    if birth_date:
        date = random_date(rng, 1930, 2024)
        return "%02d%02d%02d" % (date.day, date.month, date.year % 100)
    while True:
        six = random_string(rng, DIGITS, 6)
        if not date_exists(2000, int(six[2:4]), int(six[:2])):  # no day of any year (2000 had 29 February)
            return six


def at_svnr_number(rng: Random, birth_date: bool = True) -> str:
    while True:
        serial, six = str(rng.randint(100, 999)), at_svnr_six_digits(rng, birth_date)
        check = at_svnr_check_digit(serial, six)
        if check is not None:
            return serial + check + six


def at_svnr_written(digits: str, e_card: bool) -> str:
    return "%s %s" % (digits[:4], digits[4:]) if e_card else digits


def at_svnr_format(*forms: str, birth_date: bool = True, check_zero: bool = False) -> ValueGenerator:
    """forms: "e-card" ("1237 010180") or "compact"; check_zero: a check digit of 0."""
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            digits = at_svnr_number(rng, birth_date)
            if not check_zero or digits[3] == "0":
                return at_svnr_written(digits, forms[ordinal % len(forms)] == "e-card")
    return generate


def pt_tax_id_number(rng: Random, prefix: str) -> str:
    first_eight = prefix + random_string(rng, DIGITS, 8 - len(prefix))
    return first_eight + pt_tax_id_check_digit(first_eight)


def pt_tax_id_written(digits: str, spaced: bool) -> str:
    return grouped(digits, (3, 3, 3), " ") if spaced else digits


def pt_tax_id_format(prefixes: tuple[str, ...], *forms: str, check_zero: bool = False) -> ValueGenerator:
    """A person's number starting with one of prefixes, "compact" or "spaced"; check_zero: a
    check digit of 0 (a remainder of 0 or 1)."""
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            digits = pt_tax_id_number(rng, prefixes[ordinal % len(prefixes)])
            if not check_zero or digits[8] == "0":
                return pt_tax_id_written(digits, forms[ordinal // len(prefixes) % len(forms)] == "spaced")
    return generate


# The fifth batch's values (/tmp/mrz_vat_spec.md). MRZs of the issuers below, their names as the
# MRZ writes them ('<' between the parts of a name), document numbers in each issuer's pattern ('#'
# a digit, '@' a letter, '*' a letter or a digit, '%' a character of Germany's alphabet; '<' and
# other characters as they are).
@dataclass(frozen=True)
class MrzIssuer:
    code: str  # issuing state and nationality, three of [A-Z<] ("D<<" for Germany)
    names: tuple[tuple[str, str], ...]  # (surname, given names)
    passport: str  # a passport's document number
    card: str  # an identity card's or a residence permit's
    personal: str = ""  # a passport's personal number (28-41), "" for none (all '<')


MRZ_ISSUERS = (
    MrzIssuer("UTO", (("ERIKSSON", "ANNA<MARIA"), ("ERIKSSON", "ANNA"), ("STORM", "MAGNUS<ERIK"),
                      ("NILSSON", "INGRID")), "@######@#", "@########", "@@######@"),
    MrzIssuer("D<<", (("MUSTERMANN", "ERIKA"), ("SCHMIDT", "JONAS"), ("WEBER", "LENA<SOPHIE"), ("BAUER", "FELIX"),
                      ("KOCH", "HANNAH")), "C%%%%%%%%", "L%%%%%%%%"),
    MrzIssuer("FRA", (("DUBOIS", "CAMILLE"), ("MOREAU", "HUGO"), ("LEFEVRE", "CHLOE<MARIE"), ("ROUSSEL", "MANON"),
                      ("MARTIN", "LOUIS")), "##@@#####", "*********"),
    MrzIssuer("ITA", (("ROSSI", "GIULIA"), ("BIANCHI", "MARCO"), ("ESPOSITO", "LUCA"), ("ROMANO", "CHIARA"),
                      ("COLOMBO", "SARA")), "@@#######", "CA#####@@"),
    MrzIssuer("ESP", (("GARCIA<LOPEZ", "LUCIA"), ("MARTINEZ<RUIZ", "PABLO"), ("FERNANDEZ", "CARMEN"),
                      ("SANCHEZ<GIL", "ALBA")), "@@@######", "@@@######", "########@"),
    MrzIssuer("NLD", (("DE<VRIES", "SANNE"), ("JANSEN", "DAAN"), ("VAN<DEN<BERG", "EMMA"), ("BAKKER", "LARS"),
                      ("VISSER", "NOOR")), "@@******#", "@@******#", "#########"),
    MrzIssuer("POL", (("KOWALSKA", "ZOFIA"), ("NOWAK", "JAKUB"), ("WOJCIK", "ANNA"), ("KAMINSKA", "MAJA"),
                      ("LEWANDOWSKI", "PIOTR")), "@@#######", "@@@######", "###########"),
    MrzIssuer("AUT", (("HUBER", "ANNA"), ("GRUBER", "MAXIMILIAN"), ("WAGNER", "KATHARINA"), ("PICHLER", "LUKAS")),
              "P#######<", "########<"),
    MrzIssuer("BEL", (("PEETERS", "JAN"), ("JANSSENS", "LOTTE"), ("MAES", "ELINE"), ("DUPONT", "THOMAS")),
              "@@######<", "#########"),
)
# A visa's holder: nationality and names (the issuing state is one of MRZ_ISSUERS).
MRZ_VISA_HOLDERS = (("IND", ("PATEL", "PRIYA")), ("CHN", ("CHEN", "WEI")), ("USA", ("JOHNSON", "EMILY<ROSE")),
                    ("BRA", ("SILVA", "JOAO<PEDRO")), ("NGA", ("OKAFOR", "CHIDI")), ("JPN", ("TANAKA", "YUKI")),
                    ("TUR", ("YILMAZ", "ELIF")), ("UKR", ("KOVALENKO", "OLENA")))
MRZ_DOCUMENT_ALPHABETS = {"#": DIGITS, "@": UPPER, "*": DIGITS + UPPER, "%": "CFGHJKLMNPRTVWXYZ" + DIGITS}


def mrz_filled(rng: Random, pattern: str, width: int) -> str:
    """A document or personal number of the pattern, filled up to width with '<'."""
    value = "".join(rng.choice(MRZ_DOCUMENT_ALPHABETS[c]) if c in MRZ_DOCUMENT_ALPHABETS else c for c in pattern)
    return value.ljust(width, "<")


def mrz_name(surname: str, given: str, width: int) -> str:
    """SURNAME<<GIVEN<NAMES filled with '<' to width (cut at width when too long)."""
    return (surname + "<<" + given)[:width].ljust(width, "<")


def mrz_date(rng: Random, first_year: int, last_year: int) -> str:
    date = random_date(rng, first_year, last_year)
    return "%02d%02d%02d" % (date.year % 100, date.month, date.day)


def mrz_sex(rng: Random) -> str:
    return rng.choice("MFMFMFMFX<")


def mrz_data_head(rng: Random, document: str, nationality: str, birth: str | None = None,
                  expiry: str | None = None) -> str:
    """Positions 0-27 of a TD3, TD2 or visa data line, every check digit right."""
    birth = birth or mrz_date(rng, 1940, 2007)
    expiry = expiry or mrz_date(rng, 2024, 2035)
    return (document + mrz_check_digit(document) + nationality + birth + mrz_check_digit(birth) + mrz_sex(rng)
            + expiry + mrz_check_digit(expiry))


def mrz_td3(rng: Random, issuer: MrzIssuer) -> tuple[str, str]:
    """A passport's two lines of 44: "P<", issuing state, name; the data line with its personal
    number (or none: all '<', its check '<' or '0') and composite check."""
    surname, given = rng.choice(issuer.names)
    line1 = "P<" + issuer.code + mrz_name(surname, given, 39)
    head = mrz_data_head(rng, mrz_filled(rng, issuer.passport, 9), issuer.code)
    if issuer.personal and rng.random() < 0.6:
        personal = mrz_filled(rng, issuer.personal, 14)
        personal += mrz_check_digit(personal)
    else:
        personal = "<" * 14 + rng.choice("<<<0")
    body = head + personal
    return line1, body + mrz_check_digit(body[0:10] + body[13:20] + body[21:43])


def mrz_visa(rng: Random, issuer: MrzIssuer, length: int) -> tuple[str, str]:
    """A visa's two lines (MRV-A 44, MRV-B 36): "V" and its type's second letter, the issuing
    state, the holder's name; the data line with the holder's nationality, optional data and no
    composite check."""
    nationality, (surname, given) = rng.choice(MRZ_VISA_HOLDERS)
    line1 = "V" + rng.choice("<<C") + issuer.code + mrz_name(surname, given, length - 5)
    head = mrz_data_head(rng, mrz_filled(rng, "@#######<" if rng.random() < 0.5 else "########<", 9), nationality)
    optional = "<" * (length - 28) if rng.random() < 0.7 else mrz_filled(rng, "@@###", length - 28)
    return line1, head + optional


def mrz_td2(rng: Random, issuer: MrzIssuer) -> tuple[str, str]:
    """Two lines of 36: "I", "A", "C" or "P" and a type letter or '<', issuing state, name; the
    data line with optional data and the composite check."""
    surname, given = rng.choice(issuer.names)
    line1 = rng.choice(("I<", "IR", "AR", "C<", "P<")) + issuer.code + mrz_name(surname, given, 31)
    body = mrz_data_head(rng, mrz_filled(rng, issuer.card, 9), issuer.code) + "<" * 7
    return line1, body + mrz_check_digit(body[0:10] + body[13:20] + body[21:35])


def mrz_td1(rng: Random, issuer: MrzIssuer, long_number: bool = False) -> tuple[str, str, str]:
    """An identity card's three lines of 30. long_number: a Belgian eID's 12-digit number, its
    first nine at 5-13, '<' at 14, the other three and the check digit over all twelve from 15,
    then '<' (and the national register number of the birth date in line 2's optional data)."""
    if long_number:
        issuer = next(i for i in MRZ_ISSUERS if i.code == "BEL")
    surname, given = rng.choice(issuer.names)
    kind = rng.choice(("ID", "I<", "IR", "AR", "C<")) if not long_number else "ID"
    date = random_date(rng, 1940, 2007)
    birth = "%02d%02d%02d" % (date.year % 100, date.month, date.day)
    optional2 = "<" * 11
    if long_number:
        number = rng.choice(("59", "60", "61")) + random_string(rng, DIGITS, 10)
        line1 = kind + issuer.code + number[:9] + "<" + number[9:] + mrz_check_digit(number) + "<" * 11
        optional2 = be_national_number_from(date.year, date.month, date.day, rng.randint(1, 998))
    else:
        document = mrz_filled(rng, issuer.card, 9)
        optional = "<" * 15 if rng.random() < 0.7 else mrz_filled(rng, "@##", 15)
        line1 = kind + issuer.code + document + mrz_check_digit(document) + optional
    expiry = mrz_date(rng, 2024, 2035)
    body = birth + mrz_check_digit(birth) + mrz_sex(rng) + expiry + mrz_check_digit(expiry) + issuer.code + optional2
    line2 = body + mrz_check_digit(line1[5:30] + body[0:7] + body[8:15] + body[18:29])
    return line1, line2, mrz_name(surname, given, 30)


def mrz_zone(rng: Random, kind: str) -> tuple[str, ...]:
    """The lines of a zone of the kind ("td3", "td2", "td1", "td1-long", "mrv-a", "mrv-b"), of an
    issuer at random."""
    issuer = rng.choice(MRZ_ISSUERS)
    if kind == "td3":
        return mrz_td3(rng, issuer)
    if kind == "td2":
        return mrz_td2(rng, issuer)
    if kind in ("td1", "td1-long"):
        return mrz_td1(rng, issuer, long_number=kind == "td1-long")
    return mrz_visa(rng, issuer, 44 if kind == "mrv-a" else 36)


def mrz_free_of_other_findings(value: str) -> bool:
    """The zone alone on a line is an MRZ (its data line may be one on its own too) and nothing
    else, and holds no context word (a name or a number that spells one is drawn again)."""
    data = b"\n" + value.encode() + b"\n"
    found = findings(data, candidates(data), strict=False)
    return (("IDENTITY_DOCUMENT_MRZ", 1, len(data) - 1) in found
            and all(t == "IDENTITY_DOCUMENT_MRZ" for t, _, _ in found)
            and not any(word in value.lower() for word in ALL_CONTEXT_WORDS))


def mrz_format(*kinds: str, breaks: str = "\n", lone: bool = False) -> ValueGenerator:
    """A zone of the kinds in turn, its lines joined by breaks ("\n", "\r\n", a JSON string's
    "\\n", or a line break and indentation); lone: its data line alone (a TD3's or a TD2's)."""
    def generate(rng: Random, ordinal: int) -> str:
        kind = kinds[ordinal % len(kinds)]
        while True:
            lines = mrz_zone(rng, kind)
            value = lines[1] if lone else breaks.join(lines)
            if mrz_free_of_other_findings(value):
                return value
    return generate


# EU VAT numbers: each member state's national part drawn as it issues them (companies mostly;
# sole traders' as "sole-trader" kinds below), its check computed; written compact, with a space
# after the prefix, in the groups its country prints, or with dots (Belgium, the Netherlands).
VAT_COUNTRIES = ("AT", "BE", "CY", "DE", "DK", "EE", "EL", "ES", "FI", "FR", "HR", "HU", "IE", "IT", "LT", "LU",
                 "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "GR")
# The groups of the national part as each country prints it, and whether a space follows the
# prefix ("ATU 13585627", "DE 136 695 976", "FR 40 303 265 045", "SE 556188 8404 01").
VAT_GROUPS = {
    "AT": (False, (1, 8)), "BE": (True, (4, 3, 3)), "CY": (True, (9,)), "DE": (True, (3, 3, 3)),
    "DK": (True, (2, 2, 2, 2)), "EE": (True, (3, 3, 3)), "EL": (True, (3, 3, 3)), "ES": (True, (9,)),
    "FI": (True, (4, 4)), "FR": (True, (2, 3, 3, 3)), "HR": (True, (11,)), "HU": (True, (8,)), "IE": (True, (9,)),
    "IT": (True, (11,)), "LT": (True, (12,)), "LU": (True, (8,)), "MT": (True, (4, 4)), "NL": (True, (12,)),
    "PL": (True, (3, 3, 2, 2)), "PT": (True, (3, 3, 3)), "RO": (True, (10,)), "SE": (True, (6, 4, 2)),
    "SI": (True, (8,)), "SK": (True, (10,)), "GR": (True, (9,)),
}
# With dots, as Belgians and the Dutch write them ("BE 0411.905.847", "NL0044.95.445.B01").
VAT_DOTTED = {"BE": (True, (4, 3, 3)), "NL": (False, (4, 2, 3, 3))}


def vat_completed(rng: Random, country: str, payload: str, alphabet: str = DIGITS) -> str | None:
    """The payload and a last character of the alphabet that makes it valid, or None (a payload
    whose check would be 10, say)."""
    for char in rng.sample(alphabet, len(alphabet)):
        if vat_national_valid(country, payload + char):
            return payload + char
    return None


def vat_draw(rng: Random, country: str, kind: str = "company") -> str | None:
    """A national part of the country (None: draw again). kind: "company", or a sole trader's
    ("dni", "nie": a Spaniard's or a foreigner's; "personal": Portugal's person's number, Sweden's
    personnummer and "01", Ireland's two letters, the Netherlands' btw-id checked mod 97)."""
    digits = lambda n: random_string(rng, DIGITS, n)
    if country == "AT":
        return vat_completed(rng, country, "U" + rng.choice("1234567") + digits(6))
    if country == "BE":
        first = rng.choice(("0" + rng.choice("23456789") + digits(6), "1" + digits(7)))
        return first + "%02d" % (97 - int(first) % 97)
    if country == "CY":
        return vat_completed(rng, country, rng.choice("013459") + digits(7), UPPER)
    if country == "DE":
        first = rng.choice("123456789") + digits(7)
        return first + de_tax_id_check_digit(first)
    if country == "DK":
        return vat_completed(rng, country, rng.choice("123456789") + digits(6))
    if country == "EE":
        return vat_completed(rng, country, "10" + digits(6))
    if country in ("EL", "GR"):
        first = rng.choice("0789") + digits(7)
        return first + gr_vat_check_digit(first)
    if country == "ES":
        if kind == "dni":
            number = "%08d" % rng.randint(1000000, 79999999)
            return number + dni_letter(number)
        if kind == "nie":
            prefix, seven = rng.choice("XYZ"), digits(7)
            return prefix + seven + nie_letter(prefix, seven)
        letter, seven = rng.choice(VAT_CIF_LETTERS), digits(7)
        check = luhn_check_digit(seven)
        if letter in "PQRSWN" or (letter not in "ABEH" and rng.random() < 0.5):
            check = VAT_CIF_CHECK_LETTERS[int(check)]
        return letter + seven + check
    if country == "FI":
        return vat_completed(rng, country, rng.choice("0123") + digits(6))
    if country == "FR":
        siren = rng.choice("3456789") + digits(7)
        siren += luhn_check_digit(siren)
        return "%02d" % (int(siren + "12") % 97) + siren
    if country == "HR":
        first = digits(10)
        return first + de_tax_id_check_digit(first)
    if country == "HU":
        return vat_completed(rng, country, rng.choice("12") + digits(6))
    if country == "IE":
        seven, second = digits(7), rng.choice(("A", "H", "W")) if kind == "personal" else rng.choice(("", "", "H"))
        return seven + ie_vat_check_letter(seven, second) + second
    if country == "IT":
        return vat_completed(rng, country, rng.choice(("0", "0", "1")) + digits(6) + rng.choice(VAT_PROVINCES_IT))
    if country == "LT":
        return vat_completed(rng, country, digits(7) + "1" if rng.random() < 0.5 else digits(10) + "1")
    if country == "LU":
        six = rng.choice("12") + digits(5)
        return six + "%02d" % (int(six) % 89)
    if country == "MT":
        return vat_completed(rng, country, rng.choice("123456789") + digits(6))
    if country == "NL":
        if kind == "personal":  # a sole trader's btw-id (since 2020): the mod 97 check
            nine = "00" + digits(7)
            suffix = (1 - iban_as_integer("NL" + nine + "B") * 100) % 97
            return nine + "B" + "%02d" % (suffix or 97)
        return bsn_digits(rng, leading_zero=rng.random() < 0.5) + "B" + rng.choice(("01", "01", "02", "03"))
    if country == "PL":
        return vat_completed(rng, country, rng.choice("123456789") + digits(8))
    if country == "PT":
        first = (rng.choice("12") if kind == "personal" else "5" + rng.choice("01")) + digits(7 if kind == "personal"
                                                                                               else 6)
        return first + pt_tax_id_check_digit(first)
    if country == "RO":
        return vat_completed(rng, country, rng.choice("123456789") + digits(rng.randint(4, 8)))
    if country == "SE":
        if kind == "personal":
            return se_pin_number(rng, "ten-digits") + "01"
        nine = "55" + digits(7)
        return nine + luhn_check_digit(nine) + "01"
    if country == "SI":
        return vat_completed(rng, country, rng.choice("123456789") + digits(6))
    return vat_completed(rng, country, rng.choice("12") + "0" + rng.choice("234789") + digits(6))  # SK


def vat_national(rng: Random, country: str, kind: str = "company") -> str:
    while True:
        national = vat_draw(rng, country, kind)
        if national is not None and vat_national_valid(country, national):
            return national


def vat_written(country: str, national: str, form: str) -> str:
    """"compact" (DE136695976), "prefix-space" (DE 136695976), "grouped" (its country's groups)
    or "dotted" (Belgium's and the Netherlands' dots)."""
    if form == "compact":
        return country + national
    if form == "prefix-space":
        return country + " " + national
    space, layout = (VAT_DOTTED if form == "dotted" else VAT_GROUPS)[country]
    return country + (" " if space else "") + grouped(national, layout, "." if form == "dotted" else " ")


def vat_free_of_other_findings(value: str) -> bool:
    """The number alone on a line is a VAT number and nothing else (its DNI glued to "ES" aside,
    which the generous scanner finds), and holds no context word."""
    data = b"\n" + value.encode() + b"\n"
    whole = ("EU_VAT_NUMBER", 1, len(data) - 1)
    found = findings(data, candidates(data), strict=False)
    return (whole in found and all(f == whole or (f[0], f[1]) == ("ES_NIF", 3) for f in found)
            and not any(word in value.lower() for word in ALL_CONTEXT_WORDS))


def vat_format(form: str, countries: tuple[str, ...] = VAT_COUNTRIES, kinds: tuple[str, ...] = ("company",)
               ) -> ValueGenerator:
    """A VAT number of the countries (and kinds) in turn, written in the form."""
    def generate(rng: Random, ordinal: int) -> str:
        country, kind = countries[ordinal % len(countries)], kinds[ordinal % len(kinds)]
        while True:
            value = vat_written(country, vat_national(rng, country, kind), form)
            if vat_free_of_other_findings(value):
                return value
    return generate


@dataclass(frozen=True)
class PositiveFormat:
    entity_type: str
    name: str
    generate: ValueGenerator
    # For the national identifiers: "with" or "without" a context word of the type in the
    # value's sentence, or "any" (either, at random). A value that needs one always has one.
    context: str = "any"
    # Sentences of the format's own (with a context word of the type before the value, when
    # the format needs one), instead of the type's NATIONAL_ID_FRAMES and NATIONAL_ID_NOUNS,
    # or, for the other types, instead of the generic frames and NOUNS.
    frames: tuple[str, ...] = ()


def card_formats() -> list[PositiveFormat]:
    return [PositiveFormat("CREDIT_CARD", "%s-%s" % (issuer, style), card_format(issuer, separator))
            for issuer in CARD_ISSUERS
            for style, separator in (("plain", None), ("spaced", " "), ("dashed", "-"))]


def provider_key_formats() -> list[PositiveFormat]:
    """Other providers' sk- keys, reported as OPENAI_API_KEY: Anthropic, OpenRouter, DeepSeek."""
    def anthropic(rng: Random, ordinal: int) -> str:
        body = random_string(rng, DIGITS, 1) + random_string(rng, BASE62 + "_-", 91) + random_string(rng, BASE62, 1)
        return "sk-ant-api03-" + body + "AA"

    def openrouter(rng: Random, ordinal: int) -> str:
        return "sk-or-v1-" + random_string(rng, HEX, 62) + rng.choice(DIGITS) + rng.choice("abcdef")

    def deepseek(rng: Random, ordinal: int) -> str:
        return "sk-" + random_string(rng, HEX, 30) + rng.choice(DIGITS) + rng.choice("abcdef")

    return [PositiveFormat("OPENAI_API_KEY", "anthropic", anthropic),
            PositiveFormat("OPENAI_API_KEY", "openrouter", openrouter),
            PositiveFormat("OPENAI_API_KEY", "deepseek", deepseek)]


# The secrets' own sentences: where such values are pasted from (headers, .env files,
# configuration, command lines).
JWT_BEARER_FRAMES = (
    "curl -H 'Authorization: Bearer {v}' https://api.example.com/v1/orders",
    "GET /api/me HTTP/1.1\nHost: app.example.com\nAuthorization: Bearer {v}\nAccept: application/json",
    "requests.get(url, headers={\"Authorization\": \"Bearer {v}\"})",
    "fetch('/api/profile', { headers: { Authorization: `Bearer {v}` } })",
    "Der Server antwortet 401 auf Authorization: Bearer {v} — warum?",
)
# The token ends a sentence: the full stop is no part of it.
JWT_SENTENCE_END_FRAMES = (
    "The session cookie holds {v}.",
    "Decode this JWT for me: {v}.",
    "Mein Zugriffstoken lautet {v}. Ist es abgelaufen?",
    "Le jeton renvoyé par le serveur est {v}.",
    "ログイン後のトークン：{v}.",
    "After login the API returned {v}.\nWhy is it rejected an hour later?",
)
GOOGLE_CONFIG_FRAMES = (
    "const firebaseConfig = {\n  apiKey: \"{v}\",\n  authDomain: \"shop-demo.firebaseapp.com\",\n"
    "  projectId: \"shop-demo\"\n};",
    "{\"apiKey\": \"{v}\", \"projectId\": \"maps-demo-123\"}",
    "google-services.json: \"api_key\": [{\"current_key\": \"{v}\"}]",
    "\"google\": {\n    \"apiKey\": \"{v}\"\n}",
)
GOOGLE_URL_FRAMES = (
    "https://maps.googleapis.com/maps/api/geocode/json?address=Berlin&key={v}",
    "<script src=\"https://maps.googleapis.com/maps/api/js?key={v}&libraries=places\"></script>",
    "curl \"https://www.googleapis.com/youtube/v3/search?part=snippet&q=cats&key={v}\"",
    "GET https://generativelanguage.googleapis.com/v1beta/models?key={v} returns 403",
)
GOOGLE_ENV_FRAMES = (
    "GOOGLE_API_KEY={v}",
    "export GOOGLE_MAPS_API_KEY=\"{v}\"",
    "llm:\n  provider: google\n  api_key: {v}\n  model: flash",
    "os.environ[\"GOOGLE_API_KEY\"] = \"{v}\"",
)
STRIPE_ENV_FRAMES = (
    "STRIPE_SECRET_KEY={v}",
    "stripe.api_key = \"{v}\"",
    "curl https://api.stripe.com/v1/charges -u {v}: -d amount=2000 -d currency=eur",
    "const stripe = require('stripe')('{v}');",
    ".env.production:\nSTRIPE_SECRET_KEY=\"{v}\"\nSTRIPE_MODE=live",
)
GITLAB_API_FRAMES = (
    "curl --header \"PRIVATE-TOKEN: {v}\" \"https://gitlab.example.com/api/v4/projects\"",
    "GITLAB_TOKEN={v}",
    "glab auth login --hostname gitlab.example.com --token {v}",
    "variables:\n  DEPLOY_TOKEN: \"{v}\"",
)
HUGGINGFACE_FRAMES = (
    "huggingface-cli login --token {v}",
    "export HF_TOKEN={v}",
    "hf_hub_download(repo_id=\"acme/tiny-model\", filename=\"config.json\", token=\"{v}\")",
    "from huggingface_hub import login\nlogin(token=\"{v}\")",
)
NPMRC_FRAMES = (
    "//registry.npmjs.org/:_authToken={v}",
    "echo \"//registry.npmjs.org/:_authToken={v}\" >> ~/.npmrc",
    ".npmrc:\n@acme:registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken={v}",
    "Meine .npmrc enthält //registry.npmjs.org/:_authToken={v} — ist das sicher?",
)
NPM_ENV_FRAMES = (
    "NPM_TOKEN={v} npm publish --access public",
    "env:\n  NODE_AUTH_TOKEN: {v}",
    "export NPM_TOKEN=\"{v}\"",
)
SENDGRID_FRAMES = (
    "SENDGRID_API_KEY={v}",
    "curl --request POST --url https://api.sendgrid.com/v3/mail/send --header 'Authorization: Bearer {v}'",
    "sg = SendGridAPIClient('{v}')",
    "smtp:\n  user: apikey\n  password: {v}",
)
# The key right after "AccountKey=", in the connection strings of the Azure portal.
AZURE_CONNECTION_FRAMES = (
    "DefaultEndpointsProtocol=https;AccountName=acmeprodstore;AccountKey={v};EndpointSuffix=core.windows.net",
    "Connection string: DefaultEndpointsProtocol=https;AccountName=devlogs01;AccountKey={v};"
    "EndpointSuffix=core.windows.net",
    "Warum schlägt das fehl? DefaultEndpointsProtocol=https;AccountName=backupsweu;AccountKey={v}",
    "BlobEndpoint=https://mediaassets.blob.core.windows.net/;AccountName=mediaassets;AccountKey={v}",
)
AZURE_ENV_FRAMES = (
    "AZURE_STORAGE_CONNECTION_STRING=\"DefaultEndpointsProtocol=https;AccountName=acmeprodstore;"
    "AccountKey={v};EndpointSuffix=core.windows.net\"",
    "export AZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=https;AccountName=devlogs01;AccountKey={v}'",
    "az storage blob list --container-name backups --connection-string "
    "\"DefaultEndpointsProtocol=https;AccountName=backupsweu;AccountKey={v}\"",
)
AZURE_JSON_FRAMES = (
    "\"ConnectionStrings\": {\n  \"Storage\": \"DefaultEndpointsProtocol=https;AccountName=mediaassets;"
    "AccountKey={v};EndpointSuffix=core.windows.net\"\n}",
    "{\"AzureWebJobsStorage\": \"DefaultEndpointsProtocol=https;AccountName=funcapp01;AccountKey={v}\"}",
    "local.settings.json → \"StorageConnection\": \"AccountName=acmeprodstore;AccountKey={v};\"",
)
# "accountkey=" in lowercase (a lowercased configuration, a log line).
AZURE_LOWERCASE_FRAMES = (
    "defaultendpointsprotocol=https;accountname=backupsweu;accountkey={v};endpointsuffix=core.windows.net",
    "storage config: accountname=devlogs01 accountkey={v}",
    "ACCOUNTNAME=ACMEPRODSTORE;ACCOUNTKEY={v}",
)


def secret_formats() -> list[PositiveFormat]:
    """The eight secrets of 2026-12-07, in the generic sentences and in their own."""
    return [
        PositiveFormat("JWT", "hmac", jwt_format("hmac")),
        PositiveFormat("JWT", "asymmetric", jwt_format("asymmetric")),
        PositiveFormat("JWT", "unsecured", jwt_format("unsecured")),
        PositiveFormat("JWT", "bearer-header", jwt_format("any"), frames=JWT_BEARER_FRAMES),
        PositiveFormat("JWT", "sentence-end", jwt_format("any"), frames=JWT_SENTENCE_END_FRAMES),
        PositiveFormat("GOOGLE_API_KEY", "plain", google_api_key),
        PositiveFormat("GOOGLE_API_KEY", "json-config", google_api_key, frames=GOOGLE_CONFIG_FRAMES),
        PositiveFormat("GOOGLE_API_KEY", "url-parameter", google_api_key, frames=GOOGLE_URL_FRAMES),
        PositiveFormat("GOOGLE_API_KEY", "env", google_api_key, frames=GOOGLE_ENV_FRAMES),
        PositiveFormat("STRIPE_API_KEY", "secret-live", stripe_key_format(("sk_live_",))),
        PositiveFormat("STRIPE_API_KEY", "secret-test", stripe_key_format(("sk_test_",))),
        PositiveFormat("STRIPE_API_KEY", "restricted", stripe_key_format(("rk_live_", "rk_test_"))),
        PositiveFormat("STRIPE_API_KEY", "dotenv", stripe_key_format(("sk_live_", "sk_test_", "rk_live_")),
                       frames=STRIPE_ENV_FRAMES),
        PositiveFormat("GITLAB_TOKEN", "glpat", gitlab_token_format("glpat")),
        PositiveFormat("GITLAB_TOKEN", "glpat-routable", gitlab_token_format("glpat", routable=True)),
        PositiveFormat("GITLAB_TOKEN", "gldt", gitlab_token_format("gldt")),
        PositiveFormat("GITLAB_TOKEN", "glrt", gitlab_token_format("glrt")),
        PositiveFormat("GITLAB_TOKEN", "glptt", gitlab_token_format("glptt")),
        PositiveFormat("GITLAB_TOKEN", "api-header", gitlab_token_format("glpat"), frames=GITLAB_API_FRAMES),
        PositiveFormat("HUGGINGFACE_TOKEN", "plain", huggingface_token),
        PositiveFormat("HUGGINGFACE_TOKEN", "login", huggingface_token, frames=HUGGINGFACE_FRAMES),
        PositiveFormat("NPM_TOKEN", "plain", npm_token),
        PositiveFormat("NPM_TOKEN", "npmrc", npm_token, frames=NPMRC_FRAMES),
        PositiveFormat("NPM_TOKEN", "env", npm_token, frames=NPM_ENV_FRAMES),
        PositiveFormat("SENDGRID_API_KEY", "plain", sendgrid_api_key),
        PositiveFormat("SENDGRID_API_KEY", "env", sendgrid_api_key, frames=SENDGRID_FRAMES),
        PositiveFormat("AZURE_STORAGE_KEY", "connection-string", azure_storage_key, frames=AZURE_CONNECTION_FRAMES),
        PositiveFormat("AZURE_STORAGE_KEY", "env", azure_storage_key, frames=AZURE_ENV_FRAMES),
        PositiveFormat("AZURE_STORAGE_KEY", "json-config", azure_storage_key, frames=AZURE_JSON_FRAMES),
        PositiveFormat("AZURE_STORAGE_KEY", "lowercase", azure_storage_key, frames=AZURE_LOWERCASE_FRAMES),
    ]


# The eleven of 2026-12-07, late night: where their values are pasted from (.env files, SDK code,
# curl commands and request dumps, CI files, connection strings, logs). Every frame's value is
# followed by a byte outside its alphabet (a quote, white space, '/', ';', '&' or the end), and no
# frame holds a context word, but those that name Telegram's Bot API ("api.telegram.org" holds
# "tel": a bot id is valid as no type on its own, so the word reads nothing).
GROQ_ENV_FRAMES = (
    "GROQ_API_KEY={v}",
    "export GROQ_API_KEY=\"{v}\"",
    ".env.local:\nGROQ_API_KEY={v}\nGROQ_MODEL=llama-3.3-70b-versatile",
    "env:\n  GROQ_API_KEY: {v}\n  MODEL: mixtral-8x7b-32768",
)
GROQ_CODE_FRAMES = (
    "from groq import Groq\nclient = Groq(api_key=\"{v}\")",
    "const groq = new Groq({ apiKey: '{v}' });",
    "llm = ChatGroq(model=\"llama-3.1-8b-instant\", api_key=\"{v}\", temperature=0)",
    "Warum bekomme ich 401? Groq(api_key='{v}') und das Modell gibt es.",
)
GROQ_BEARER_FRAMES = (
    "curl https://api.groq.com/openai/v1/chat/completions -H \"Authorization: Bearer {v}\" "
    "-H \"Content-Type: application/json\" -d '{\"model\": \"llama-3.3-70b-versatile\"}'",
    "POST /openai/v1/chat/completions HTTP/1.1\nHost: api.groq.com\nAuthorization: Bearer {v}\n"
    "Content-Type: application/json",
    "requests.post(\"https://api.groq.com/openai/v1/models\", headers={\"Authorization\": \"Bearer {v}\"})",
)
XAI_ENV_FRAMES = (
    "XAI_API_KEY={v}",
    "export XAI_API_KEY='{v}'",
    "Grok-Zugang in der .env: XAI_API_KEY={v}",
    "secrets.toml:\n[xai]\napi_key = \"{v}\"",
)
XAI_CODE_FRAMES = (
    "from xai_sdk import Client\nclient = Client(api_key=\"{v}\")",
    "client = OpenAI(api_key=\"{v}\", base_url=\"https://api.x.ai/v1\")",
    "const openai = new OpenAI({ apiKey: \"{v}\", baseURL: \"https://api.x.ai/v1\" });",
)
XAI_BEARER_FRAMES = (
    "curl https://api.x.ai/v1/chat/completions -H \"Content-Type: application/json\" "
    "-H \"Authorization: Bearer {v}\" -d '{\"model\": \"grok-2-latest\", \"stream\": false}'",
    "fetch(\"https://api.x.ai/v1/models\", { headers: { \"Authorization\": \"Bearer {v}\" } })",
    "POST /v1/chat/completions HTTP/1.1\nHost: api.x.ai\nAuthorization: Bearer {v}",
)
GOOGLE_CLIENT_JSON_FRAMES = (
    "client_secret.json:\n{\"web\":{\"client_id\":\"{id}\",\"project_id\":\"shop-demo-4711\","
    "\"auth_uri\":\"https://accounts.google.com/o/oauth2/auth\",\"token_uri\":\"https://oauth2.googleapis.com/token\","
    "\"client_secret\":\"{v}\",\"redirect_uris\":[\"http://localhost:8080/oauth2/done\"]}}",
    "{\"installed\":{\"client_id\":\"{id}\",\"project_id\":\"desktop-sync\",\"client_secret\":\"{v}\","
    "\"redirect_uris\":[\"http://localhost\"]}}",
    "credentials.json\n{\n  \"web\": {\n    \"client_id\": \"{id}\",\n    \"client_secret\": \"{v}\"\n  }\n}",
)
GOOGLE_CLIENT_ENV_FRAMES = (
    "GOOGLE_CLIENT_ID={id}\nGOOGLE_CLIENT_SECRET={v}",
    "AUTH_GOOGLE_ID=\"{id}\"\nAUTH_GOOGLE_SECRET=\"{v}\"",
    "quarkus.oidc.provider=google\nquarkus.oidc.client-id={id}\nquarkus.oidc.credentials.secret={v}",
    "export OAUTH_CLIENT_SECRET={v}  # Google, prod",
)
GOOGLE_CLIENT_CODE_FRAMES = (
    "passport.use(new GoogleStrategy({ clientID: '{id}', clientSecret: '{v}', redirectURL: '/auth/google/done' }));",
    "flow = Flow.from_client_config({\"web\": {\"client_id\": CLIENT_ID, \"client_secret\": \"{v}\"}}, scopes=SCOPES)",
    "oauth2Client = new google.auth.OAuth2('{id}', '{v}', 'http://localhost:3000/oauth2/done');",
    "Le secret client Google est {v}, faut-il le changer ?",
)
GOOGLE_TOKEN_BEARER_FRAMES = (
    "curl -H \"Authorization: Bearer {v}\" https://www.googleapis.com/drive/v3/files?pageSize=10",
    "GET /gmail/v1/users/me/messages HTTP/1.1\nHost: gmail.googleapis.com\nAuthorization: Bearer {v}",
    "requests.get(\"https://www.googleapis.com/oauth2/v3/userinfo\", headers={\"Authorization\": \"Bearer {v}\"})",
    "https://www.googleapis.com/oauth2/v3/tokeninfo?access_token={v}",
)
GOOGLE_TOKEN_RESPONSE_FRAMES = (
    "{\"access_token\": \"{v}\", \"expires_in\": 3599, \"scope\": \"https://www.googleapis.com/auth/drive.readonly\", "
    "\"token_type\": \"Bearer\"}",
    "Die Antwort von oauth2.googleapis.com/token:\n{\n  \"access_token\": \"{v}\",\n  \"expires_in\": 3599\n}",
    "creds.token -> '{v}'",
)
GOOGLE_TOKEN_CLI_FRAMES = (
    "$ gcloud auth print-access-token\n{v}",
    "$ gcloud auth application-default print-access-token\n{v}\n$ curl ... returns 403",
    "DEBUG: refreshed credentials, new token {v} (expires in 3599s)",
    "Pourquoi ce jeton {v} est-il refusé par l'API Drive ?",
)
PYPIRC_FRAMES = (
    "~/.pypirc:\n[pypi]\n  username = __token__\n  password = {v}",
    "[distutils]\nindex-servers =\n    pypi\n\n[pypi]\nusername = __token__\npassword = {v}",
    "Meine .pypirc:\n[pypi]\nusername = __token__\npassword = {v}\nWarum schlägt twine upload fehl?",
)
PYPI_CI_FRAMES = (
    "twine upload -u __token__ -p {v} dist/*",
    "env:\n  TWINE_USERNAME: __token__\n  TWINE_PASSWORD: {v}",
    "uv publish --token {v}",
    "poetry config pypi-token.pypi {v}",
    "export UV_PUBLISH_TOKEN={v}",
)
TEST_PYPI_FRAMES = (
    "[testpypi]\nrepository = https://test.pypi.org/legacy/\nusername = __token__\npassword = {v}",
    "twine upload --repository testpypi -u __token__ -p {v} dist/*",
    "uv publish --publish-url https://test.pypi.org/legacy/ --token {v}",
    "poetry config pypi-token.testpypi {v}",
)
DOCKER_LOGIN_FRAMES = (
    "echo \"{v}\" | docker login -u acmebot --password-stdin",
    "docker login -u acmebot -p {v}",
    "- uses: docker/login-action@v3\n  with:\n    username: acmebot\n    password: {v}",
    "DOCKERHUB_TOKEN={v}",
    "Docker Hub rejects {v} for pushes since Monday, why?",
)
STRIPE_WEBHOOK_FRAMES = (
    "STRIPE_WEBHOOK_SECRET={v}",
    "event = stripe.Webhook.construct_event(payload, sig_header, \"{v}\")",
    "> Ready! You are using Stripe API Version [2024-06-20]. Your webhook signing secret is {v} (^C to quit)",
    "const event = stripe.webhooks.constructEvent(req.body, sig, '{v}');",
    "endpoint_secret = '{v}'",
)
SVIX_WEBHOOK_FRAMES = (
    "const wh = new Webhook(\"{v}\");",
    "CLERK_WEBHOOK_SIGNING_SECRET={v}",
    "RESEND_WEBHOOK_SECRET=\"{v}\"",
    "wh = Webhook(\"{v}\")\npayload = wh.verify(body, headers)",
    "Svix dashboard → Signing Secret: {v}",
)
# With "bot" as part of the value: the Bot API's URLs.
TELEGRAM_URL_FRAMES = (
    "https://api.telegram.org/{v}/getMe",
    "curl -s \"https://api.telegram.org/{v}/sendMessage?chat_id=@ops_alerts&text=deploy%20done\"",
    "requests.post(f\"https://api.telegram.org/{v}/sendDocument\", files={\"document\": f})",
    "Webhook setzen: https://api.telegram.org/{v}/setWebhook?url=https://bot.example.com/hook",
)
TELEGRAM_CONFIG_FRAMES = (
    "BOT_TOKEN={v}",
    "bot = Bot(token=\"{v}\")",
    "application = Application.builder().token(\"{v}\").build()",
    "const bot = new Telegraf('{v}');",
    "BotFather: Use this token to access the HTTP API:\n{v}\nKeep your token secure",
)
SLACK_WEBHOOK_FRAMES = (
    "curl -X POST -H 'Content-type: application/json' --data '{\"text\":\"Deploy done\"}' {v}",
    "SLACK_WEBHOOK_URL={v}",
    "requests.post(\"{v}\", json={\"text\": \"Nightly backup finished\"})",
    "Our alerts go to {v} but nothing arrives, any clue?",
)
SLACK_WEBHOOK_CONFIG_FRAMES = (
    "receivers:\n- name: ops\n  slack_configs:\n  - api_url: '{v}'\n    channel: '#alerts'",
    "- name: Notify\n  uses: slackapi/slack-github-action@v1\n  env:\n    SLACK_WEBHOOK_URL: {v}",
    "resource \"grafana_contact_point\" \"ops\" {\n  slack {\n    url = \"{v}\"\n  }\n}",
    "notifications:\n  slack:\n    webhook: \"{v}\"",
)
SERVICE_BUS_FRAMES = (
    "Endpoint=sb://acme-orders.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey={v}",
    "\"ServiceBusConnection\": \"Endpoint=sb://acme-orders.servicebus.windows.net/;SharedAccessKeyName=send-only;"
    "SharedAccessKey={v}\"",
    "export SERVICEBUS_CONNECTION_STRING='Endpoint=sb://billing-bus.servicebus.windows.net/;"
    "SharedAccessKeyName=listen;SharedAccessKey={v};EntityPath=invoices'",
)
EVENT_HUBS_FRAMES = (
    "Endpoint=sb://events-ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey={v};EntityPath=device-events",
    "producer = EventHubProducerClient.from_connection_string(\"Endpoint=sb://events-ns.servicebus.windows.net/;"
    "SharedAccessKeyName=producer;SharedAccessKey={v}\", eventhub_name=\"clicks\")",
    "EVENTHUB_CONNECTION=Endpoint=sb://logs-eh.servicebus.windows.net/;SharedAccessKeyName=app;SharedAccessKey={v}",
)
IOT_HUB_FRAMES = (
    "HostName=acme-iot.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey={v}",
    "HostName=acme-iot.azure-devices.net;DeviceId=sensor-042;SharedAccessKey={v}",
    "az iot hub device-identity connection-string show → \"HostName=plant7-hub.azure-devices.net;"
    "DeviceId=press-12;SharedAccessKey={v}\"",
    "device_client = IoTHubDeviceClient.create_from_connection_string(\"HostName=acme-iot.azure-devices.net;"
    "DeviceId=gateway-1;SharedAccessKey={v}\")",
)
# The signature in a blob's or a container's URL (the portal's order), in an account SAS token
# on its own, in a Service Bus SAS; the dates, versions and permissions are Azure's.
AZURE_SAS_URL_FRAMES = (
    "https://acmeprodstore.blob.core.windows.net/reports/q3.pdf?sp=r&st=2024-05-01T10:00:00Z&se=2024-05-02T18:00:00Z"
    "&spr=https&sv=2022-11-02&sr=b&sig={v}",
    "curl -o backup.tar.gz \"https://backupsweu.blob.core.windows.net/db/backup.tar.gz?sv=2023-01-03&se=2025-01-31"
    "&sr=b&sp=r&sig={v}\"",
    "azcopy copy ./dist \"https://mediaassets.blob.core.windows.net/web?sv=2022-11-02&ss=b&srt=co&sp=rwlac"
    "&se=2025-06-30T23:59:59Z&spr=https&sig={v}\" --recursive",
    "Der Link https://devlogs01.blob.core.windows.net/logs/app.log?sp=r&sv=2022-11-02&sr=b&sig={v} läuft nicht ab?",
)
AZURE_SAS_TOKEN_FRAMES = (
    "sv=2022-11-02&ss=bfqt&srt=sco&sp=rwdlacupiytfx&se=2025-12-31T23:59:59Z&st=2024-05-01T00:00:00Z&spr=https&sig={v}",
    "AZURE_STORAGE_SAS_TOKEN=\"?sv=2022-11-02&ss=b&srt=sco&sp=rl&se=2025-03-01T00:00:00Z&spr=https&sig={v}\"",
    "$ az storage container generate-sas --name uploads --permissions rl --expiry 2025-01-01\n"
    "\"se=2025-01-01&sp=rl&sv=2022-11-02&sr=c&sig={v}\"",
    "{\"sasUrl\": \"https://funcapp01.blob.core.windows.net/input?sv=2022-11-02&sr=c&sp=racwdl&se=2025-02-01"
    "&sig={v}\"}",
)
AZURE_SERVICE_BUS_SAS_FRAMES = (
    "Authorization: SharedAccessSignature sr=https%3A%2F%2Facme-orders.servicebus.windows.net%2Forders"
    "&sig={v}&se={se}&skn=RootManageSharedAccessKey",
    "SharedAccessSignature sr=acme-iot.azure-devices.net%2Fdevices%2Fsensor-042&sig={v}&se={se}",
    "\"sasToken\": \"SharedAccessSignature sr=events-ns.servicebus.windows.net&sig={v}&se={se}&skn=producer\"",
)
SLACK_APP_TOKEN_FRAMES = (
    "SLACK_APP_TOKEN={v}",
    "SocketModeHandler(app, \"{v}\").start()",
    "const app = new App({ token: process.env.SLACK_BOT_TOKEN, appToken: '{v}', socketMode: true });",
    "export SLACK_APP_TOKEN=\"{v}\"  # connections:write",
)


def late_secret_formats() -> list[PositiveFormat]:
    """The eleven secrets of 2026-12-07, late night, in the generic sentences (those with a plain
    format) and in their own."""
    return [
        PositiveFormat("GROQ_API_KEY", "plain", groq_api_key),
        PositiveFormat("GROQ_API_KEY", "env", groq_api_key, frames=GROQ_ENV_FRAMES),
        PositiveFormat("GROQ_API_KEY", "sdk", groq_api_key, frames=GROQ_CODE_FRAMES),
        PositiveFormat("GROQ_API_KEY", "bearer-header", groq_api_key, frames=GROQ_BEARER_FRAMES),
        PositiveFormat("XAI_API_KEY", "plain", xai_api_key),
        PositiveFormat("XAI_API_KEY", "env", xai_api_key, frames=XAI_ENV_FRAMES),
        PositiveFormat("XAI_API_KEY", "sdk", xai_api_key, frames=XAI_CODE_FRAMES),
        PositiveFormat("XAI_API_KEY", "bearer-header", xai_api_key, frames=XAI_BEARER_FRAMES),
        PositiveFormat("GOOGLE_OAUTH_CLIENT_SECRET", "plain", google_oauth_client_secret),
        PositiveFormat("GOOGLE_OAUTH_CLIENT_SECRET", "client-secret-json", google_oauth_client_secret,
                       frames=GOOGLE_CLIENT_JSON_FRAMES),
        PositiveFormat("GOOGLE_OAUTH_CLIENT_SECRET", "env", google_oauth_client_secret,
                       frames=GOOGLE_CLIENT_ENV_FRAMES),
        PositiveFormat("GOOGLE_OAUTH_CLIENT_SECRET", "code", google_oauth_client_secret,
                       frames=GOOGLE_CLIENT_CODE_FRAMES),
        PositiveFormat("GOOGLE_OAUTH_TOKEN", "plain", google_oauth_token),
        PositiveFormat("GOOGLE_OAUTH_TOKEN", "bearer-header", google_oauth_token, frames=GOOGLE_TOKEN_BEARER_FRAMES),
        PositiveFormat("GOOGLE_OAUTH_TOKEN", "token-response", google_oauth_token, frames=GOOGLE_TOKEN_RESPONSE_FRAMES),
        PositiveFormat("GOOGLE_OAUTH_TOKEN", "cli-and-logs", google_oauth_token, frames=GOOGLE_TOKEN_CLI_FRAMES),
        PositiveFormat("PYPI_TOKEN", "plain", pypi_token_format(b"pypi.org")),
        PositiveFormat("PYPI_TOKEN", "pypirc", pypi_token_format(b"pypi.org"), frames=PYPIRC_FRAMES),
        PositiveFormat("PYPI_TOKEN", "ci-upload", pypi_token_format(b"pypi.org"), frames=PYPI_CI_FRAMES),
        PositiveFormat("PYPI_TOKEN", "test-pypi", pypi_token_format(b"test.pypi.org"), frames=TEST_PYPI_FRAMES),
        PositiveFormat("DOCKER_HUB_TOKEN", "plain", docker_hub_token),
        PositiveFormat("DOCKER_HUB_TOKEN", "login", docker_hub_token, frames=DOCKER_LOGIN_FRAMES),
        PositiveFormat("WEBHOOK_SIGNING_SECRET", "plain", webhook_signing_secret_format("stripe")),
        PositiveFormat("WEBHOOK_SIGNING_SECRET", "stripe", webhook_signing_secret_format("stripe"),
                       frames=STRIPE_WEBHOOK_FRAMES),
        PositiveFormat("WEBHOOK_SIGNING_SECRET", "svix", webhook_signing_secret_format("svix"),
                       frames=SVIX_WEBHOOK_FRAMES),
        PositiveFormat("TELEGRAM_BOT_TOKEN", "plain", telegram_bot_token_format(False)),
        PositiveFormat("TELEGRAM_BOT_TOKEN", "bot-api-url", telegram_bot_token_format(True),
                       frames=TELEGRAM_URL_FRAMES),
        PositiveFormat("TELEGRAM_BOT_TOKEN", "config", telegram_bot_token_format(False), frames=TELEGRAM_CONFIG_FRAMES),
        PositiveFormat("SLACK_WEBHOOK_URL", "services", slack_webhook_url_format("services"),
                       frames=SLACK_WEBHOOK_FRAMES),
        PositiveFormat("SLACK_WEBHOOK_URL", "workflows", slack_webhook_url_format("workflows"),
                       frames=SLACK_WEBHOOK_FRAMES),
        PositiveFormat("SLACK_WEBHOOK_URL", "triggers", slack_webhook_url_format("triggers"),
                       frames=SLACK_WEBHOOK_FRAMES),
        PositiveFormat("SLACK_WEBHOOK_URL", "config", slack_webhook_url_format("services"),
                       frames=SLACK_WEBHOOK_CONFIG_FRAMES),
        PositiveFormat("AZURE_SHARED_ACCESS_KEY", "service-bus", azure_shared_access_key, frames=SERVICE_BUS_FRAMES),
        PositiveFormat("AZURE_SHARED_ACCESS_KEY", "event-hubs", azure_shared_access_key, frames=EVENT_HUBS_FRAMES),
        PositiveFormat("AZURE_SHARED_ACCESS_KEY", "iot-hub", azure_shared_access_key, frames=IOT_HUB_FRAMES),
        PositiveFormat("AZURE_SAS_TOKEN", "blob-url", azure_sas_format("upper"), frames=AZURE_SAS_URL_FRAMES),
        PositiveFormat("AZURE_SAS_TOKEN", "account-sas", azure_sas_format("upper", "upper", "lower"),
                       frames=AZURE_SAS_TOKEN_FRAMES),
        PositiveFormat("AZURE_SAS_TOKEN", "unescaped", azure_sas_format("raw", "lower"), frames=AZURE_SAS_URL_FRAMES),
        PositiveFormat("AZURE_SAS_TOKEN", "service-bus", azure_sas_format("upper"),
                       frames=AZURE_SERVICE_BUS_SAS_FRAMES),
    ]


# SECRET (specification of 2026-12-07, night): the value of a setting named as a secret, in the
# configuration languages it is pasted from. Values: random passwords of 8-24 characters of
# letters, digits and SECRET_PASSWORD_SYMBOLS with a digit or a symbol (and a letter or digit
# first, as a shell or YAML would take them unquoted), sometimes hex API keys of 32 or 40
# characters; none of them is valid as another type where it stands (drawn again), none holds a
# context word.
SECRET_PASSWORD_SYMBOLS = "!#%&*+-_.@/~^"
SECRET_PASSWORD_ALPHABET = BASE62 + SECRET_PASSWORD_SYMBOLS


def free_of_other_findings(value: str) -> bool:
    """The value alone on a line is no entity of any type and holds no context word."""
    data = b"\n" + value.encode() + b"\n"
    lowered = value.lower()
    return (not findings(data, candidates(data), strict=False)
            and not any(word in lowered for word in ALL_CONTEXT_WORDS))


def secret_password(rng: Random, length: tuple[int, int] = (8, 24)) -> str:
    """A password valid as an unquoted setting's value; of fewer than SECRET_MIN_BYTES bytes
    (a hard negative's), one that is valid but for its length."""
    def draw() -> str:
        size = rng.randint(*length)
        return rng.choice(BASE62) + random_string(rng, SECRET_PASSWORD_ALPHABET, size - 1)

    def valid(value: str) -> bool:
        padded = value + "Q" * max(0, SECRET_MIN_BYTES - len(value))  # for the length rule alone
        return (any(c in DIGITS + SECRET_PASSWORD_SYMBOLS for c in value) and is_valid_secret(padded, quoted=False)
                and free_of_other_findings(value))
    return drawn_until(valid, draw)


def secret_hex_key(rng: Random) -> str:
    length = rng.choice((32, 40))
    return drawn_until(lambda v: is_valid_secret(v, quoted=False) and free_of_other_findings(v),
                       lambda: random_string(rng, HEX, length))


def secret_value_format(hex_share: float) -> ValueGenerator:
    return lambda rng, ordinal: secret_hex_key(rng) if rng.random() < hex_share else secret_password(rng)


# Each frame's {v} stands right after a setting's separator (and its spaces or opening quote);
# an unquoted value is followed by white space, the end or a byte that ends it, never by more of
# a value.
SECRET_DOTENV_FRAMES = (
    "DB_PASSWORD={v}",
    ".env:\nDB_HOST=db.internal\nDB_USER=app\nDB_PASSWORD={v}\nDB_PORT=5432",
    "NEXTAUTH_SECRET={v}\nNEXTAUTH_URL=https://app.example.com",
    "export JWT_SECRET='{v}'",
    "REDIS_PASSWORD=\"{v}\"",
    "Why is my app not reading SESSION_SECRET={v} from .env.local?",
    "Mein .env enthält MYSQL_ROOT_PASSWORD={v} — ist das ein Problem?",
)
SECRET_YAML_FRAMES = (
    "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: {v}\n      POSTGRES_DB: shop",
    "environment:\n  - MYSQL_ROOT_PASSWORD={v}\n  - MYSQL_DATABASE=app",
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-credentials\ntype: Opaque\nstringData:\n"
    "  client-secret: \"{v}\"",
    "redis:\n  host: cache.internal\n  port: 6379\n  password: '{v}'",
    "spring:\n  datasource:\n    url: jdbc:postgresql://db:5432/app\n    username: app\n    password: {v}",
    "grafana:\n  adminPassword: {v}\n  persistence:\n    enabled: true",
)
SECRET_PROPERTIES_FRAMES = (
    "spring.datasource.password={v}",
    "application.properties:\nspring.datasource.url=jdbc:mysql://db:3306/shop\nspring.datasource.username=shop\n"
    "spring.datasource.password={v}",
    "mail.smtp.password = {v}",
    "app.jwt.secret: {v}",
    "keystore.password={v}\nkeystore.type=PKCS12",
)
SECRET_JSON_FRAMES = (
    "{\"username\": \"admin\", \"password\": \"{v}\"}",
    "{\n  \"apiKey\": \"{v}\",\n  \"region\": \"eu-west-1\"\n}",
    "config.json: {\"Auth\": {\"ClientId\": \"web-portal\", \"ClientSecret\": \"{v}\"}}",
    "{\"db\":{\"host\":\"db.internal\",\"user\":\"app\",\"password\":\"{v}\"}}",
    "{\"access_token\": \"{v}\", \"token_type\": \"bearer\", \"expires_in\": 3600}",
)
SECRET_PYTHON_FRAMES = (
    "client_secret = '{v}'",
    "conn = psycopg2.connect(host=\"db.internal\", dbname=\"shop\", user=\"app\", password=\"{v}\")",
    "r = redis.Redis(host=\"cache\", port=6379, password='{v}')",
    "SECRET_KEY = \"{v}\"  # settings.py",
    "API_KEY = '{v}'",
    "mongo = MongoClient(\"mongodb://db:27017\", username=\"app\", password=\"{v}\")",
)
SECRET_PHP_FRAMES = (
    "'password' => '{v}',",
    "return [\n    'host' => 'db.internal',\n    'username' => 'app',\n    'password' => '{v}',\n];",
    "$config = ['api_key' => '{v}', 'timeout' => 30];",
    "'client_secret' => \"{v}\",",
)
SECRET_HEADER_FRAMES = (
    "curl -H \"X-API-Key: {v}\" https://api.example.com/v1/orders",
    "curl -s -H 'x-api-key: {v}' 'https://api.example.org/v2/items?limit=10'",
    "GET /v1/reports HTTP/1.1\nHost: api.example.com\nX-Auth-Token: {v}\nAccept: application/json",
    "http GET https://api.example.com/v1/me X-Api-Key:{v}",
    "wget --header=\"X-Access-Token: {v}\" https://files.example.com/export.csv",
)
SECRET_CLI_FRAMES = (
    "mysql -h db.internal -u app --password={v} shop",
    "mysqldump --user=backup --password={v} --all-databases > dump.sql",
    "vault login -method=userpass username=ops password={v}",
    "docker login registry.example.com --username ci --password={v}",
    "./deploy.sh --api-key={v} --env=prod",
)
SECRET_JS_FRAMES = (
    "const client = new Client({ apiKey: \"{v}\" });",
    "const db = mysql.createConnection({ host: 'db.internal', user: 'app', password: '{v}' });",
    "export default { auth: { clientSecret: \"{v}\" } };",
    "const minio = new Minio.Client({ endPoint: 'minio.internal', secretKey: '{v}' });",
    "cfg := Config{Host: \"db.internal\", Password: \"{v}\"}",
)
SECRET_INI_FRAMES = (
    "[database]\nhost = \"db.internal\"\npassword = \"{v}\"",
    "~/.my.cnf:\n[client]\nuser=backup\npassword={v}",
    "[smtp]\nuser = reports\npassword = {v}\nport = 587",
    ".pypirc:\n[pypi]\nusername = __token__\npassword = {v}",
)


def setting_formats() -> list[PositiveFormat]:
    """SECRET: a secret's setting in the languages of configuration and code."""
    return [
        PositiveFormat("SECRET", "dotenv", secret_value_format(0.2), frames=SECRET_DOTENV_FRAMES),
        PositiveFormat("SECRET", "compose-kubernetes-yaml", secret_value_format(0.15), frames=SECRET_YAML_FRAMES),
        PositiveFormat("SECRET", "java-properties", secret_value_format(0.15), frames=SECRET_PROPERTIES_FRAMES),
        PositiveFormat("SECRET", "json", secret_value_format(0.3), frames=SECRET_JSON_FRAMES),
        PositiveFormat("SECRET", "python", secret_value_format(0.25), frames=SECRET_PYTHON_FRAMES),
        PositiveFormat("SECRET", "php", secret_value_format(0.2), frames=SECRET_PHP_FRAMES),
        PositiveFormat("SECRET", "http-header", secret_value_format(0.7), frames=SECRET_HEADER_FRAMES),
        PositiveFormat("SECRET", "cli-flag", secret_value_format(0.1), frames=SECRET_CLI_FRAMES),
        PositiveFormat("SECRET", "js-object", secret_value_format(0.3), frames=SECRET_JS_FRAMES),
        PositiveFormat("SECRET", "toml-ini", secret_value_format(0.1), frames=SECRET_INI_FRAMES),
    ]


# SECRET (specification of 2026-12-07, late night, item 13): the credentials of an Authorization
# header, written as requests, curl commands, code, JSON, YAML and environments write them (never
# nginx's "proxy_set_header Authorization "Basic ..."", a space after the name, which the rule does
# not claim, nor a template literal's backtick). Basic: base64 of "user:password" (a user of 3-12
# letters and digits, a random password of 8-24 with a digit, never a stand-in); Bearer: opaque
# tokens of 32-64 hex digits or 40-80 base62 characters, PASETO-like "v2.local." tokens; Token:
# Django REST framework's 40 hex digits. None holds a context word or another type's reading.
BASIC_USERS = ("admin", "deploy", "grafana", "jenkins", "backup", "reports", "monitor", "api")


def secret_value_guard(value: str) -> bool:
    """A SECRET value no other rule reads (free_of_other_readings) and with no context word."""
    lowered = value.lower()
    return free_of_other_readings(value, "SECRET") and not any(word in lowered for word in ALL_CONTEXT_WORDS)


def basic_user(rng: Random) -> str:
    user = rng.choice((rng.choice(FIRST_NAMES), rng.choice(BASIC_USERS), random_string(rng, LOWER + DIGITS, 8)))
    return (user + (str(rng.randint(1, 99)) if rng.random() < 0.3 else ""))[:12]


def basic_password(rng: Random) -> str:
    """8-24 random characters of SECRET_PASSWORD_ALPHABET with a digit, no stand-in."""
    return drawn_until(lambda p: any(c in DIGITS for c in p) and not is_stand_in(p),
                       lambda: random_string(rng, SECRET_PASSWORD_ALPHABET, rng.randint(8, 24)))


def basic_credentials_value(rng: Random, ordinal: int) -> str:
    return drawn_until(lambda v: is_valid_basic_credentials(v) and secret_value_guard(v), lambda: base64.b64encode(
        ("%s:%s" % (basic_user(rng), basic_password(rng))).encode()).decode())


def bearer_token_value(rng: Random, ordinal: int) -> str:
    """An opaque access token: hex, base62, or a PASETO-like "v2.local."/"v4.local." token."""
    def draw() -> str:
        kind = ordinal % 4
        if kind == 0:
            return random_string(rng, HEX, rng.choice((32, 40, 48, 64)))
        if kind == 3:
            return rng.choice(("v2.local.", "v4.local.")) + base64url(rng.randbytes(rng.randint(48, 120)))
        return random_string(rng, BASE62, rng.randint(40, 80))
    return drawn_until(lambda v: is_valid_bearer_credentials(v) and secret_value_guard(v), draw)


def drf_token_value(rng: Random, ordinal: int) -> str:
    return drawn_until(lambda v: is_valid_bearer_credentials(v) and secret_value_guard(v),
                       lambda: random_string(rng, HEX, 40))


AUTHORIZATION_BASIC_FRAMES = (
    "curl -H 'Authorization: Basic {v}' https://api.example.com/v1/orders",
    "GET /admin/stats HTTP/1.1\nHost: intranet.example.com\nAuthorization: Basic {v}\nAccept: */*",
    "requests.get(url, headers={\"Authorization\": \"Basic {v}\"})",
    "CONNECT api.example.org:443 HTTP/1.1\nProxy-Authorization: Basic {v}\nProxy-Connection: keep-alive",
    "{\"headers\": {\"Authorization\": \"Basic {v}\", \"Accept\": \"application/json\"}}",
    "HTTP_AUTHORIZATION='Basic {v}'",
    "webhook:\n  url: https://hooks.example.com/ingest\n  headers:\n    Authorization: \"Basic {v}\"",
    "Warum antwortet der Server mit 401 auf Authorization: Basic {v} ?",
)
AUTHORIZATION_BEARER_FRAMES = (
    "curl -H \"Authorization: Bearer {v}\" https://api.example.com/v2/invoices",
    "GET /v1/me HTTP/1.1\nHost: api.example.org\nauthorization: bearer {v}\nuser-agent: okhttp/4.12.0",
    "headers = {\"Authorization\": \"Bearer {v}\", \"Content-Type\": \"application/json\"}",
    "axios.get('/api/orders', { headers: { 'Authorization': 'Bearer {v}' } });",
    "http GET https://api.example.com/v1/reports Authorization:'Bearer {v}'",
    "{\"url\": \"https://api.example.net/export\", \"headers\": {\"Authorization\": \"Bearer {v}\"}}",
    "request headers:\n  Authorization: BEARER {v}\n  Accept: application/json",
    "Le proxy ajoute Authorization: Bearer {v} à chaque requête, c'est normal ?",
)
AUTHORIZATION_TOKEN_FRAMES = (
    "curl -H 'Authorization: Token {v}' https://api.example.com/api/v1/projects/",
    "headers = {'Authorization': 'Token {v}'}",
    "http POST https://api.example.org/api/items/ Authorization:\"Token {v}\" name=test",
    "GET /api/v2/orders/ HTTP/1.1\nHost: shop.example.com\nAuthorization: Token {v}",
    "fetch('/api/customers/', { headers: { 'Authorization': 'token {v}' } })",
)
# Values of another type's shape that are not of it (a character more or less, an organization's
# Docker token, another location's PyPI macaroon, a short Google token): a setting's or a header's
# SECRET, no token. Their own types' hard negatives are these values where no setting gives them.
NEAR_MISS_FRAMES = (
    "API_KEY={v}",
    "export SERVICE_TOKEN=\"{v}\"",
    "{\"apiKey\": \"{v}\", \"timeout\": 30}",
    "client_secret = '{v}'",
    "env:\n  DEPLOY_TOKEN: {v}\n  REGION: eu-west-1",
    "./release.sh --api-key={v} --dry-run",
    "curl -H 'Authorization: Bearer {v}' https://api.example.com/v1/models",
    "headers={\"Authorization\": \"Bearer {v}\"}",
)


def near_miss_token(rng: Random, ordinal: int) -> str:
    """gsk_ and 51 or 53, xai- and 79 or 81, GOCSPX- and 27 or 29, dckr_oat_ and 27, dckr_pat_
    and 26 or 28, whsec_ and 31, a PyPI macaroon of pypi.io, ya29. and 20-29: a SECRET where it
    stands (quoted or not, in a setting or a Bearer header), of no token type."""
    def draw() -> str:
        kind, longer = ordinal % 8, rng.random() < 0.5
        if kind == 0:
            return "gsk_" + random_string(rng, BASE62, 53 if longer else 51)
        if kind == 1:
            return "xai-" + random_string(rng, BASE62, 81 if longer else 79)
        if kind == 2:
            return "GOCSPX-" + random_string(rng, BASE64URL, 29 if longer else 27)
        if kind == 3:
            return "dckr_oat_" + random_string(rng, BASE64URL, 27)
        if kind == 4:
            return "dckr_pat_" + random_string(rng, BASE64URL, 28 if longer else 26)
        if kind == 5:
            return "whsec_" + random_string(rng, BASE62, 31)
        if kind == 6:
            return "pypi-" + base64url(pypi_macaroon(rng, b"pypi.io"))
        return "ya29.a0" + random_string(rng, BASE64URL, rng.randint(18, 27))
    return drawn_until(lambda v: is_valid_secret(v, quoted=False) and is_valid_bearer_credentials(v)
                       and secret_value_guard(v), draw)


# "SharedAccessKey=" in another case (the rule wants that spelling and case), or a value of
# another length after it: the setting's SECRET (its name ends in "accesskey"), no shared access key.
SHARED_ACCESS_KEY_CASE_FRAMES = (
    "endpoint=sb://acme-orders.servicebus.windows.net/;sharedaccesskeyname=rootmanagesharedaccesskey;"
    "sharedaccesskey={v}",
    "ENDPOINT=SB://EVENTS-NS.SERVICEBUS.WINDOWS.NET/;SHAREDACCESSKEYNAME=APP;SHAREDACCESSKEY={v}",
    "{\"sharedAccessKeyName\": \"send-only\", \"sharedAccessKey\": \"{v}\"}",
    "hostname=acme-iot.azure-devices.net;deviceid=sensor-042;sharedaccesskey={v}",
)
SHARED_ACCESS_KEY_LENGTH_FRAMES = (
    "Endpoint=sb://acme-orders.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey={v}",
    "HostName=acme-iot.azure-devices.net;DeviceId=sensor-042;SharedAccessKey={v}",
    "\"EventHub\": \"Endpoint=sb://events-ns.servicebus.windows.net/;SharedAccessKeyName=app;SharedAccessKey={v}\"",
)


def shared_access_key_rival(wrong_length: bool) -> ValueGenerator:
    """wrong_length: 42 or 44 base64 characters and '=', or a storage account's 88 bytes; else the
    right 44 bytes (for a name in another case)."""
    def generate(rng: Random, ordinal: int) -> str:
        def draw() -> str:
            if not wrong_length:
                return base64.b64encode(rng.randbytes(32)).decode()
            if ordinal % 3 == 2:
                return base64.b64encode(rng.randbytes(64)).decode()
            return random_string(rng, BASE64, 44 if ordinal % 3 else 42) + "="
        return drawn_until(lambda v: is_valid_secret(v) and is_valid_secret(v, quoted=False) and secret_value_guard(v),
                           draw)
    return generate


def authorization_formats() -> list[PositiveFormat]:
    """SECRET in an Authorization header, and the same-shape rivals of the late night's types."""
    return [
        PositiveFormat("SECRET", "authorization-basic", basic_credentials_value, frames=AUTHORIZATION_BASIC_FRAMES),
        PositiveFormat("SECRET", "authorization-bearer", bearer_token_value, frames=AUTHORIZATION_BEARER_FRAMES),
        PositiveFormat("SECRET", "authorization-token", drf_token_value, frames=AUTHORIZATION_TOKEN_FRAMES),
        PositiveFormat("SECRET", "near-miss-token", near_miss_token, frames=NEAR_MISS_FRAMES),
        PositiveFormat("SECRET", "shared-access-key-case", shared_access_key_rival(False),
                       frames=SHARED_ACCESS_KEY_CASE_FRAMES),
        PositiveFormat("SECRET", "shared-access-key-length", shared_access_key_rival(True),
                       frames=SHARED_ACCESS_KEY_LENGTH_FRAMES),
    ]


# The ten secrets of /tmp/secrets_spec4.md in the texts they are pasted from.
PERPLEXITY_FRAMES = (
    "PERPLEXITY_API_KEY={v}",
    "export PPLX_API_KEY=\"{v}\"",
    "client = OpenAI(api_key=\"{v}\", base_url=\"https://api.perplexity.ai\")",
    "curl https://api.perplexity.ai/chat/completions -H \"Authorization: Bearer {v}\" -H 'Content-Type: application/json'",
    "Warum bekomme ich 401 mit dem Perplexity-Key {v}?",
)
REPLICATE_FRAMES = (
    "REPLICATE_API_TOKEN={v}",
    "export REPLICATE_API_TOKEN={v}\nreplicate run stability-ai/sdxl",
    "client = replicate.Client(api_token=\"{v}\")",
    "curl -s -X POST -H \"Authorization: Bearer {v}\" https://api.replicate.com/v1/predictions",
    "env:\n  REPLICATE_API_TOKEN: {v}\n  MODEL: flux-schnell",
)
LANGSMITH_FRAMES = (
    "LANGSMITH_TRACING=true\nLANGSMITH_API_KEY={v}\nLANGSMITH_PROJECT=support-bot",
    "export LANGCHAIN_API_KEY=\"{v}\"",
    "os.environ[\"LANGSMITH_API_KEY\"] = \"{v}\"",
    "client = Client(api_url=\"https://api.smith.langchain.com\", api_key=\"{v}\")",
)
DATABRICKS_FRAMES = (
    "~/.databrickscfg:\n[DEFAULT]\nhost  = https://dbc-a1b2c3d4-e5f6.cloud.databricks.com\ntoken = {v}",
    "export DATABRICKS_HOST=https://dbc-7f3e2a1c-9b04.cloud.databricks.com\nexport DATABRICKS_TOKEN={v}",
    "provider \"databricks\" {\n  host  = \"https://dbc-7f3e2a1c-9b04.cloud.databricks.com\"\n  token = \"{v}\"\n}",
    "curl -H \"Authorization: Bearer {v}\" https://dbc-a1b2c3d4-e5f6.cloud.databricks.com/api/2.0/clusters/list",
    "spark.conf.set(\"spark.databricks.token\", \"{v}\")",
)
# {email}: an e-mail address, labelled too (the account the API token belongs to).
ATLASSIAN_FRAMES = (
    "curl -u {email}:{v} -H 'Accept: application/json' https://acme.atlassian.net/rest/api/3/myself",
    "jira = JIRA(server=\"https://acme.atlassian.net\", basic_auth=(\"{email}\", \"{v}\"))",
    "confluence:\n  url: https://acme.atlassian.net/wiki\n  username: {email}\n  api_token: {v}",
    "JIRA_USER={email}\nJIRA_API_TOKEN={v}",
)
VAULT_FRAMES = (
    "vault login {v}",
    "export VAULT_ADDR=https://vault.internal:8200\nexport VAULT_TOKEN={v}",
    "curl -H \"X-Vault-Token: {v}\" https://vault.internal:8200/v1/secret/data/app",
    "Success! You are now authenticated.\n\nKey                  Value\n---                  -----\ntoken                {v}\n"
    "token_duration       768h",
    "VAULT_TOKEN=\"{v}\" vault kv get secret/app",
)
AZURE_CLIENT_SECRET_FRAMES = (
    "$ az ad sp create-for-rbac --name gh-actions-deploy --role contributor\n{\n  \"appId\": \"{uuid}\",\n"
    "  \"displayName\": \"gh-actions-deploy\",\n  \"password\": \"{v}\",\n  \"tenant\": \"{uuid}\"\n}",
    "AZURE_CLIENT_ID={uuid}\nAZURE_CLIENT_SECRET={v}\nAZURE_TENANT_ID={uuid}",
    "credential = ClientSecretCredential(tenant_id, client_id, \"{v}\")",
    "provider \"azuread\" {\n  client_id     = \"{uuid}\"\n  client_secret = \"{v}\"\n}",
    "The new client secret is {v}. It expires in 180 days.",
)
DIGITALOCEAN_FRAMES = (
    "doctl auth init --access-token {v}",
    "DIGITALOCEAN_TOKEN={v}",
    "provider \"digitalocean\" {\n  token = \"{v}\"\n}",
    "curl -X GET -H \"Authorization: Bearer {v}\" \"https://api.digitalocean.com/v2/droplets\"",
)
POSTMAN_FRAMES = (
    "POSTMAN_API_KEY={v}",
    "curl https://api.getpostman.com/collections -H \"X-Api-Key: {v}\"",
    "newman run \"https://api.getpostman.com/collections/{uuid}?apikey={v}\"",
    "- name: Run API tests\n  run: postman login --with-api-key {v}",
)
GRAFANA_FRAMES = (
    "GRAFANA_TOKEN={v}",
    "curl -H \"Authorization: Bearer {v}\" https://grafana.acme.io/api/dashboards/uid/k8s-nodes",
    "provider \"grafana\" {\n  url  = \"https://grafana.acme.io\"\n  auth = \"{v}\"\n}",
    "grafana:\n  url: https://grafana.acme.io\n  serviceAccountToken: {v}",
)
# SECRET (/tmp/secrets_spec4.md item 3): an AWS session token of ~700-1,000 bytes.
AWS_SESSION_TOKEN_FRAMES = (
    "~/.aws/credentials:\n[dev]\nregion = eu-west-1\naws_session_token = {v}",
    "export AWS_SESSION_TOKEN={v}",
    "$env:AWS_SESSION_TOKEN=\"{v}\"",
    "{\n    \"Credentials\": {\n        \"SessionToken\": \"{v}\",\n        \"Expiration\": \"2025-03-01T18:04:11+00:00\"\n    }\n}",
    "AWS_SESSION_TOKEN='{v}' terraform plan",
)
# SECRET (item 8): a Basic credential under a setting whose name ends in "auth".
AUTH_SETTING_FRAMES = (
    "~/.docker/config.json:\n{\n  \"auths\": {\n    \"https://index.docker.io/v1/\": {\n      \"auth\": \"{v}\"\n    }\n  }\n}",
    "{\"auths\": {\"registry.acme.io\": {\"auth\": \"{v}\"}}}",
    ".npmrc:\nregistry=https://npm.acme.io/\n//npm.acme.io/:_auth={v}\nalways-auth=true",
    "basic_auth=\"{v}\"",
    "proxy:\n  host: proxy.internal\n  proxy_auth: {v}",
)
# PRIVATE_KEY cut or whole in a JSON string, cut in a YAML block (four spaces of indentation), in
# base64 (Kubernetes, kubeconfig).
PEM_JSON_FRAMES = (
    "{\n  \"type\": \"service_account\",\n  \"project_id\": \"acme-prod\",\n  \"private_key\": \"{v}\\n\"\n}",
    "{\"type\": \"service_account\", \"private_key\": \"{v}",
    "Is this service account JSON broken? \"private_key\": \"{v}\"",
    "{\"ssh_key\": \"{v}\", \"user\": \"deploy\"}",
)
# A cut key's text: what follows its last line is no line of base64 alone (a blank line, words
# with spaces or signs, a fence).
PEM_CUT_FRAMES = (
    "Here is my key, the rest got lost when copying:\n{v}\nWhy does ssh reject it?",
    "Debug this deployment secret:\n```\n{v}\n```",
    "Can you tell which kind of key this is?\n\n{v}\n\nThanks!",
    "{v}\n(truncated) is this key encrypted?",
)
PEM_YAML_FRAMES = (
    "deploy:\n  ssh_key: |\n    {v}\n  host: build.internal",
    "secrets:\n  tls_key: |\n    {v}",
    "Warum lehnt Ansible den Schlüssel ab?\n\nvault_ssh_key: |\n    {v}\n\nDanke!",
)
PEM_BASE64_FRAMES = (
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-tls\ntype: kubernetes.io/tls\ndata:\n  tls.key: {v}",
    "users:\n- name: admin\n  user:\n    client-key-data: {v}",
    "kubectl get secret web-tls -o jsonpath='{.data.tls\\.key}' returns {v}",
    "{\"data\": {\"tls.key\": \"{v}\"}}",
)
AUTHORIZATION_PHP_FRAMES = (
    "$client = new Client(['headers' => ['Authorization' => 'Bearer {v}']]);",
    "'headers' => [\n    'Authorization' => 'Bearer {v}',\n    'Accept' => 'application/json',\n],",
    "Http::withHeaders(['Authorization' => \"Bearer {v}\"])->get($url);",
    "The API answers 403 to Authorization: Bearer {v}.",
)
AUTHORIZATION_APIKEY_FRAMES = (
    "curl -H \"Authorization: ApiKey {v}\" https://es.acme.io:9200/_cat/indices?v",
    "es = Elasticsearch(\"https://es.acme.io:9200\", headers={\"Authorization\": \"ApiKey {v}\"})",
    "output.elasticsearch:\n  hosts: [\"https://es.acme.io:9200\"]\n  headers:\n    Authorization: \"ApiKey {v}\"",
    "'Authorization' => 'ApiKey {v}',",
    "Kibana rejects Authorization: apikey {v}.",
)
NEW_NEAR_MISS_FRAMES = NEAR_MISS_FRAMES


def new_secret_formats() -> list[PositiveFormat]:
    """The ten secrets of /tmp/secrets_spec4.md in the generic sentences and their own (four
    formats each, 240 records a seed at the default), and SECRET's and PRIVATE_KEY's new forms."""
    formats = []
    for entity_type, generate, frames in (
            ("PERPLEXITY_API_KEY", perplexity_api_key, PERPLEXITY_FRAMES),
            ("REPLICATE_API_TOKEN", replicate_api_token, REPLICATE_FRAMES),
            ("LANGSMITH_API_KEY", langsmith_api_key, LANGSMITH_FRAMES),
            ("DATABRICKS_TOKEN", databricks_token, DATABRICKS_FRAMES),
            ("ATLASSIAN_API_TOKEN", atlassian_api_token, ATLASSIAN_FRAMES),
            ("VAULT_TOKEN", vault_token_format(False), VAULT_FRAMES),
            ("AZURE_CLIENT_SECRET", azure_client_secret, AZURE_CLIENT_SECRET_FRAMES),
            ("DIGITALOCEAN_TOKEN", digitalocean_token_format("dop_v1_"), DIGITALOCEAN_FRAMES),
            ("POSTMAN_API_KEY", postman_api_key, POSTMAN_FRAMES),
            ("GRAFANA_TOKEN", grafana_token, GRAFANA_FRAMES)):
        half = (len(frames) + 1) // 2
        formats += [PositiveFormat(entity_type, "plain", generate),
                    PositiveFormat(entity_type, "config", generate, frames=frames[:half]),
                    PositiveFormat(entity_type, "cli-and-code", generate, frames=frames[half:])]
        if entity_type == "VAULT_TOKEN":
            formats.append(PositiveFormat(entity_type, "batch-token", vault_token_format(True), frames=frames))
        elif entity_type == "DIGITALOCEAN_TOKEN":
            formats.append(PositiveFormat(entity_type, "oauth-token", digitalocean_token_format("doo_v1_"),
                                          frames=frames))
        else:
            formats.append(PositiveFormat(entity_type, "all-frames", generate, frames=frames))
    return formats + [
        PositiveFormat("SECRET", "aws-session-token", aws_session_token, frames=AWS_SESSION_TOKEN_FRAMES),
        PositiveFormat("SECRET", "auth-setting-basic", basic_credentials_value, frames=AUTH_SETTING_FRAMES),
        PositiveFormat("SECRET", "authorization-php", bearer_token_value, frames=AUTHORIZATION_PHP_FRAMES),
        PositiveFormat("SECRET", "authorization-apikey", elasticsearch_api_key, frames=AUTHORIZATION_APIKEY_FRAMES),
        PositiveFormat("SECRET", "near-miss-token-spec4", near_miss_token_spec4, frames=NEAR_MISS_FRAMES),
        PositiveFormat("PRIVATE_KEY", "cut-text", cut_pem_format("\n"), frames=PEM_CUT_FRAMES),
        PositiveFormat("PRIVATE_KEY", "cut-json-string", cut_pem_format("\\n"), frames=PEM_JSON_FRAMES),
        PositiveFormat("PRIVATE_KEY", "whole-json-string", whole_json_pem, frames=PEM_JSON_FRAMES),
        PositiveFormat("PRIVATE_KEY", "cut-yaml-block", cut_pem_format("\n    "), frames=PEM_YAML_FRAMES),
        PositiveFormat("PRIVATE_KEY", "base64-whole", base64_pem_format(False), frames=PEM_BASE64_FRAMES),
        PositiveFormat("PRIVATE_KEY", "base64-cut", base64_pem_format(True), frames=PEM_BASE64_FRAMES),
    ]


def aws_session_token(rng: Random, ordinal: int) -> str:
    """An STS session token: "IQoJb3JpZ2luX2Vj" ("\\x21\\n\\torigin_ec") and the base64 of 520-750
    more bytes (~700-1,000 characters), with Amazon's run of '/' near the start."""
    def draw() -> str:
        rest = base64.b64encode(rng.randbytes(rng.randint(520, 750))).decode()
        return "IQoJb3JpZ2luX2VjE" + random_string(rng, BASE62, 3) + "//////////" + rest
    return drawn_until(lambda v: is_valid_secret(v, quoted=False) and free_of_other_readings(v, "SECRET"), draw)


def elasticsearch_api_key(rng: Random, ordinal: int) -> str:
    """base64 of "id:api_key": a 20-character id and a 22-character key (Elasticsearch's)."""
    return drawn_until(lambda v: is_valid_basic_credentials(v) and secret_value_guard(v), lambda: base64.b64encode(
        ("%s:%s" % (random_string(rng, BASE64URL, 20), random_string(rng, BASE64URL, 22))).encode()).decode())


def near_miss_token_spec4(rng: Random, ordinal: int) -> str:
    """The ten types' shapes a character off (pplx- and 47, r8_ and 36, dapi and 31 hex, ATATT3 and
    185, hvs. and 89, an Entra secret with 30 after "Q~", dop_v1_ and 63 hex, PMAK- 24-33, glsa_ 31,
    lsv2_pt_ 31 hex): a SECRET where a setting or a Bearer header gives them."""
    def draw() -> str:
        kind = ordinal % 10
        if kind == 0:
            return "pplx-" + random_string(rng, BASE62, rng.choice((47, 49)))
        if kind == 1:
            return "r8_" + random_string(rng, BASE62, rng.choice((36, 38)))
        if kind == 2:
            return "dapi" + random_string(rng, HEX, 31)
        if kind == 3:
            return "ATATT3xFfGF0" + random_string(rng, BASE64URL, 179)  # 185 (no '=': a Bearer value holds none)
        if kind == 4:
            return "hvs.CAESI" + random_string(rng, BASE64URL, 84)
        if kind == 5:
            return random_string(rng, BASE62, 3) + rng.choice(DIGITS) + "Q~" + random_string(rng, BASE62, 30)
        if kind == 6:
            return "dop_v1_" + random_string(rng, HEX, 63)
        if kind == 7:
            return "PMAK-%s-%s" % (random_string(rng, HEX, 24), random_string(rng, HEX, 33))
        if kind == 8:
            return "glsa_" + random_string(rng, BASE62, 31) + "_" + random_string(rng, HEX, 8)
        return "lsv2_pt_%s_%s" % (random_string(rng, HEX, 31), random_string(rng, HEX, 10))
    return drawn_until(lambda v: is_valid_secret(v, quoted=False) and is_valid_bearer_credentials(v)
                       and secret_value_guard(v), draw)


# /tmp/secrets_spec5.md part A: SECRET where code passes a setting's name and its value as a call's two
# arguments (the value in quotes, with a digit or a symbol: secret_value_format's always hold one) or
# assigns the value to a subscript of the name, in Go, Java, Kotlin, Rust, Python, JavaScript, PHP,
# Ruby, C# and bash; an Authorization header's credentials and an "auth" setting's Basic credentials
# so written; some pasted into a question. Each {v} runs to the closing quote (or, unquoted, to the
# end of the line).
SECRET_CALL_FRAMES = (
    "os.environ.setdefault(\"DB_PASSWORD\", \"{v}\")",
    "API_KEY = os.getenv(\"API_KEY\", \"{v}\")",
    "parser.set(\"smtp\", \"smtp_password\", \"{v}\")",
    "props.setProperty(\"spring.datasource.password\", \"{v}\");",
    "System.setProperty(\"javax.net.ssl.keyStorePassword\", \"{v}\");",
    "Map<String, String> creds = new HashMap<>();\ncreds.put(\"clientSecret\", \"{v}\");",
    "val request = Request.Builder().url(url).header(\"X-Api-Key\", \"{v}\").build()",
    "os.Setenv(\"DB_PASSWORD\", \"{v}\")",
    "req.Header.Set(\"X-API-Key\", \"{v}\")",
    "viper.SetDefault(\"database.password\", \"{v}\")",
    "std::env::set_var(\"DATABASE_PASSWORD\", \"{v}\");",
    "let res = client.get(url).header(\"x-api-key\", \"{v}\").send().await?;",
    "headers.set('X-Api-Key', '{v}');",
    "localStorage.setItem('access_token', '{v}');",
    "define( 'DB_PASSWORD', '{v}' );",
    "ENV.fetch(\"API_TOKEN\", \"{v}\")",
    "client.DefaultRequestHeaders.Add(\"X-Api-Key\", \"{v}\");",
    "Environment.SetEnvironmentVariable(\"SMTP_PASSWORD\", \"{v}\");",
    "Why does this return 401?\n\nHttpHeaders headers = new HttpHeaders();\nheaders.set(\"X-Auth-Token\", \"{v}\");",
)
SECRET_SUBSCRIPT_FRAMES = (
    "os.environ[\"DB_PASSWORD\"] = \"{v}\"",
    "app.config['SECRET_KEY'] = '{v}'",
    "session.headers[\"X-Api-Key\"] = \"{v}\"",
    "$cfg['Servers'][$i]['password'] = '{v}';",
    "$config['db_password'] = '{v}';",
    "$_ENV['APP_SECRET'] = '{v}';",
    "ENV[\"API_TOKEN\"] = \"{v}\"",
    "process.env['SESSION_SECRET'] = '{v}';",
    "configuration[\"Jwt:Secret\"] = \"{v}\";",
    "request.Headers[\"X-Api-Key\"] = \"{v}\";",
    "m := map[string]string{}\nm[\"password\"] = \"{v}\"",
    "declare -A creds\ncreds[\"db_password\"]={v}\nexport PGHOST=db.internal",
    "Why does this return 401?\n\nrequest = Net::HTTP::Get.new(uri)\nrequest[\"X-Api-Key\"] = \"{v}\"",
)
AUTHORIZATION_CALL_BEARER_FRAMES = (
    "req.Header.Set(\"Authorization\", \"Bearer {v}\")",
    "headers.set('Authorization', 'Bearer {v}');",
    "conn.setRequestProperty(\"Authorization\", \"Bearer {v}\");",
    "val request = Request.Builder()\n    .url(url)\n    .addHeader(\"Authorization\", \"Bearer {v}\")\n    .build()",
    "let res = client.get(url).header(\"authorization\", \"Bearer {v}\").send().await?;",
    "client.DefaultRequestHeaders.Add(\"Authorization\", \"Bearer {v}\");",
    "session.headers[\"Authorization\"] = \"Bearer {v}\"",
    "request[\"Authorization\"] = \"Bearer {v}\"",
    "$headers['Authorization'] = 'Bearer {v}';",
    "Why does this return 401?\nreq, _ := http.NewRequest(\"GET\", url, nil)\n"
    "req.Header.Set(\"Authorization\", \"Bearer {v}\")",
    "Warum bekomme ich 401?\nconst headers = new Headers();\nheaders.append('Authorization', 'Bearer {v}');",
)
AUTHORIZATION_CALL_BASIC_FRAMES = (
    "xhr.setRequestHeader('Authorization', 'Basic {v}');",
    "req.add_header(\"Authorization\", \"Basic {v}\")",
    "headers.put(\"Authorization\", \"Basic {v}\");",
    "httpClient.DefaultRequestHeaders.Add(\"Authorization\", \"Basic {v}\");",
    "request.headers['Authorization'] = 'Basic {v}'",
    "Why does the proxy answer 407?\nconn.setRequestProperty(\"Proxy-Authorization\", \"Basic {v}\");",
)
AUTHORIZATION_CALL_TOKEN_FRAMES = (
    "headers.put(\"Authorization\", \"Token {v}\");",
    "session.headers['Authorization'] = 'Token {v}'",
    ".header(\"Authorization\", \"Token {v}\")",
    "xhr.setRequestHeader('Authorization', 'Token {v}');",
    "Why does this return 401?\nreq.Header.Add(\"Authorization\", \"Token {v}\")",
)
AUTH_CALL_FRAMES = (
    "cfg.set(\"auth\", \"{v}\")",
    "docker_config[\"auths\"][\"registry.acme.io\"][\"auth\"] = \"{v}\"",
    "npmConfig.set('_auth', '{v}');",
    "conf[\"proxy_auth\"] = \"{v}\"",
)
# DISCORD_BOT_TOKEN (part B) where bots' tokens are pasted from: .env files and compose files (the
# name's SECRET reading loses to the token), discord.py, discord.js and serenity code, "Bot" headers
# (no scheme of SECRET's), config.json beside the bot's ids ({snowflake}), a question.
DISCORD_ENV_FRAMES = (
    "DISCORD_TOKEN={v}",
    ".env:\nDISCORD_TOKEN={v}\nDISCORD_GUILD_ID={snowflake}\nCOMMAND_PREFIX=!",
    "export DISCORD_BOT_TOKEN=\"{v}\"",
    "services:\n  bot:\n    image: acme/discord-bot:latest\n    environment:\n      - DISCORD_TOKEN={v}",
)
DISCORD_CODE_FRAMES = (
    "client.run(\"{v}\")",
    "import discord\n\nintents = discord.Intents.default()\nclient = discord.Client(intents=intents)\n"
    "client.run('{v}')",
    "bot.run('{v}')  # discord.py",
    "const client = new Client({ intents: [GatewayIntentBits.Guilds] });\nclient.login('{v}');",
    "let mut client = Client::builder(\"{v}\", GatewayIntents::GUILD_MESSAGES).await?;",
)
DISCORD_HEADER_FRAMES = (
    "curl -H \"Authorization: Bot {v}\" https://discord.com/api/v10/users/@me",
    "GET /api/v10/gateway/bot HTTP/1.1\nHost: discord.com\nAuthorization: Bot {v}\nAccept: application/json",
    "requests.get(\"https://discord.com/api/v10/users/@me\", headers={\"Authorization\": \"Bot {v}\"})",
    "Why does this return 401?\nreq.Header.Set(\"Authorization\", \"Bot {v}\")",
)
DISCORD_CONFIG_FRAMES = (
    "config.json:\n{\n  \"token\": \"{v}\",\n  \"prefix\": \"!\",\n  \"ownerId\": \"{snowflake}\"\n}",
    "{\"token\": \"{v}\", \"clientId\": \"{snowflake}\", \"guildId\": \"{snowflake}\"}",
    "bot:\n  token: {v}\n  prefix: \"!\"",
    "My bot says 'Improper token has been passed' but I copied {v} from the developer portal.",
)


def spec5_formats() -> list[PositiveFormat]:
    """/tmp/secrets_spec5.md: SECRET's call and subscript forms (a setting's value, an Authorization
    header's Bearer, Basic and Token credentials, an "auth" setting's) and DISCORD_BOT_TOKEN in the
    generic sentences and its own."""
    return [
        PositiveFormat("SECRET", "call-arguments", secret_value_format(0.3), frames=SECRET_CALL_FRAMES),
        PositiveFormat("SECRET", "subscript-assignment", secret_value_format(0.2), frames=SECRET_SUBSCRIPT_FRAMES),
        PositiveFormat("SECRET", "authorization-call-bearer", bearer_token_value,
                       frames=AUTHORIZATION_CALL_BEARER_FRAMES),
        PositiveFormat("SECRET", "authorization-call-basic", basic_credentials_value,
                       frames=AUTHORIZATION_CALL_BASIC_FRAMES),
        PositiveFormat("SECRET", "authorization-call-token", drf_token_value, frames=AUTHORIZATION_CALL_TOKEN_FRAMES),
        PositiveFormat("SECRET", "auth-call-subscript", basic_credentials_value, frames=AUTH_CALL_FRAMES),
        PositiveFormat("DISCORD_BOT_TOKEN", "plain", discord_bot_token),
        PositiveFormat("DISCORD_BOT_TOKEN", "env", discord_bot_token, frames=DISCORD_ENV_FRAMES),
        PositiveFormat("DISCORD_BOT_TOKEN", "library-code", discord_bot_token, frames=DISCORD_CODE_FRAMES),
        PositiveFormat("DISCORD_BOT_TOKEN", "bot-authorization-header", discord_bot_token,
                       frames=DISCORD_HEADER_FRAMES),
        PositiveFormat("DISCORD_BOT_TOKEN", "config", discord_bot_token, frames=DISCORD_CONFIG_FRAMES),
    ]


# /tmp/secrets_spec6.md: SECRET in its seven new forms and DISCORD_WEBHOOK_URL. The values: random
# passwords of 8-24 characters (a letter or digit first, a digit or a symbol in them, none of '@', '&',
# '$', quotes, white space or the bytes that end an unquoted value: valid in every form, as a "pass"
# name's and a curl user's too), 24-40 base62 or 32 and 40 hex characters with a digit; none valid as
# another type where it stands, none holding a context word, none longer than 512 bytes (the
# specification's bound, below this module's 4,096).
SPEC6_PASSWORD_SYMBOLS = "!#%*+-_.~^/"
SPEC6_PASSWORD_ALPHABET = BASE62 + SPEC6_PASSWORD_SYMBOLS


def spec6_secret_value(rng: Random, ordinal: int) -> str:
    def draw() -> str:
        kind = ordinal % 6
        if kind == 4:
            return random_string(rng, HEX, rng.choice((32, 40)))
        if kind == 5:
            return random_string(rng, BASE62, rng.randint(24, 40))
        return rng.choice(BASE62) + random_string(rng, SPEC6_PASSWORD_ALPHABET, rng.randint(7, 23))

    def valid(value: str) -> bool:
        return (is_valid_secret(value, quoted=False) and is_valid_call_value(value)
                and any(c in DIGITS for c in value) and free_of_other_findings(value))
    return drawn_until(valid, draw)


# Section 1: ":=" in Go, Pascal (Delphi) and Makefiles, with and without spaces or with tabs.
COLON_EQUALS_FRAMES = (
    "password := \"{v}\"",
    "func connect() (*sql.DB, error) {\n\tdbPassword := \"{v}\"\n\treturn sql.Open(\"postgres\", dsn(dbPassword))\n}",
    "apiToken := \"{v}\"\nreq.Header.Set(\"X-Api-Token\", apiToken)",
    "clientSecret:=\"{v}\"",
    "procedure TMainForm.FormCreate(Sender: TObject);\nbegin\n  IdSMTP1.Password := '{v}';\nend;",
    "  FDConnection1.Params.Password := '{v}';",
    "ApiKey := '{v}';",
    "DB_PASSWORD := {v}",
    "export REGISTRY_TOKEN := {v}\n\npush:\n\tdocker push registry.example.com/app:latest",
    "SIGNING_SECRET\t:=\t{v}",
    "DEPLOY_TOKEN:={v}\nDEPLOY_HOST := deploy.internal",
)
# Section 2a: the new name ends in .env files, YAML, JSON, Python, JavaScript, INI, PHP and Go.
NEW_NAME_END_FRAMES = (
    "AUTH_KEY={v}",
    "JWT_SIGNING_KEY: {v}",
    "{\"encryptionKey\": \"{v}\", \"algorithm\": \"aes-256-gcm\"}",
    "MASTER_KEY = '{v}'",
    "RAILS_MASTER_KEY={v}",
    "app:\n  security:\n    signing-key: \"{v}\"",
    "export COOKIE_ENCRYPTION_KEY=\"{v}\"",
    "const authKey = '{v}';",
    "[vault]\nmasterkey = {v}",
    "\"auth-key\": \"{v}\",",
    "webhook.signingkey={v}",
    "'master_key' => '{v}',",
    "cfg.EncryptionKey := \"{v}\"",
)
# Section 2b: "pass" starting a word or written "Pass" after a lowercase letter.
PASS_NAME_FRAMES = (
    "DB_PASS={v}",
    "SMTP-PASS: {v}",
    "mail.pass={v}",
    "pass: {v}",
    "{\"user\": \"deploy\", \"pass\": \"{v}\"}",
    "const dbPass = '{v}';",
    "smtpPass: \"{v}\"",
    "redis_pass = \"{v}\"",
    "export MYSQL_PASS='{v}'",
    "ftp:\n  host: files.internal\n  user: upload\n  pass: {v}",
    "$smtpPass = '{v}';",
    "mailPass := \"{v}\"",
    "AMQP_PASS: \"{v}\"",
)
# Section 3: XML elements (Maven's settings.xml and pom.xml, SOAP headers, Jenkins, plain XML).
XML_ELEMENT_FRAMES = (
    "~/.m2/settings.xml:\n<servers>\n  <server>\n    <id>nexus-releases</id>\n    <username>deploy</username>\n"
    "    <password>{v}</password>\n  </server>\n</servers>",
    "<properties>\n  <db.password>{v}</db.password>\n</properties>",
    "<soapenv:Header>\n  <ns:apiKey>{v}</ns:apiKey>\n</soapenv:Header>",
    "<smtpPass>{v}</smtpPass>",
    "<PASSWORD>{v}</PASSWORD>",
    "<config>\n\t<client_secret>{v}</client_secret>\n\t<region>eu-west-1</region>\n</config>",
    "<auth-token>{v}</auth-token>",
    "<encryptionKey>{v}</encryptionKey>",
    "<gpg.passphrase>{v}</gpg.passphrase>",
    "Jenkins credentials.xml:\n<username>ci</username>\n<password>{v}</password>",
    "<db:pass>{v}</db:pass>",
)
# Section 4: XML attribute pairs (.NET web.config, Spring beans, Tomcat, generic parameters).
XML_ATTRIBUTE_FRAMES = (
    "web.config:\n<add key=\"SmtpServer\" value=\"smtp.internal\" />\n<add key=\"SmtpPassword\" value=\"{v}\" />",
    "<add key=\"ApiKey\" value=\"{v}\"/>",
    "<bean id=\"dataSource\" class=\"org.apache.commons.dbcp2.BasicDataSource\">\n"
    "  <property name=\"username\" value=\"app\"/>\n  <property name=\"password\" value=\"{v}\"/>\n</bean>",
    "<param name=\"apiToken\" value='{v}'/>",
    "<add key=\"Jwt:SigningKey\" value=\"{v}\" />",
    "<add key=\"SmtpPass\" value=\"{v}\" />",
    "<ADD KEY=\"DB_PASSWORD\" VALUE=\"{v}\" />",
    "<setting name=\"ClientSecret\"\tvalue=\"{v}\"/>",
    "<entry name='auth_token'  value='{v}'/>",
    "<Parameter name=\"mail.smtp.password\" value=\"{v}\" override=\"false\"/>",
)
# Section 5: long options and a space (shell lines, Dockerfile RUN lines, CI YAML run: steps).
LONG_OPTION_FRAMES = (
    "mysql -h db.internal -u app --password {v} shop",
    "./deploy.sh --api-key {v} --env prod",
    "tool --api-key '{v}'",
    "vault-cli --token \"{v}\" kv get secret/app",
    "redis-cli -h cache.internal --pass {v} PING",
    "RUN ./scripts/configure.sh --registry-token {v} && rm -rf /tmp/build",
    "steps:\n  - name: Deploy\n    run: ./scripts/deploy.sh --api-token \"{v}\" --region eu-west-1",
    "- run: npx vercel deploy --prod --token {v}",
    "backup-tool --encryption-key\t{v}\t--target s3://backups/db",
    "docker run --rm acme/migrate:2.3 --db-pass {v} --host db.internal",
    "./release.sh \\\n  --signing-key {v} \\\n  --channel stable",
    "--client-secret  '{v}'",
)
# Section 6: curl's user option ({user}: a user name drawn for each sentence).
CURL_USER_FRAMES = (
    "curl -u {user}:{v} https://api.example.com/v1/orders",
    "curl --user '{user}:{v}' https://registry.example.com/v2/_catalog",
    "curl --user={user}:{v} https://nexus.example.com/service/rest/v1/status",
    "curl -s -u \"{user}:{v}\" -X POST https://ci.example.com/job/build/buildWithParameters",
    "curl -fsSL -u {user}:{v} -o app.tar.gz https://artifacts.example.com/releases/app.tar.gz",
    "RUN curl -u {user}:{v} -o /tmp/pkg.tgz https://repo.example.com/pkg.tgz",
    "- name: Upload\n  run: curl --user {user}:{v} -T dist/app.zip https://uploads.example.com/",
    "curl\t-u\t{user}:{v}\thttps://api.example.com/health",
    "Why does curl -u {user}:{v} https://jenkins.example.com/api/json return 401?",
    "curl -u  {user}:{v} https://grafana.example.com/api/dashboards/home",
)
CURL_USERS = ("alice", "deploy", "ci-bot", "jenkins", "backup", "admin", "svc_reports", "build", "ops", "uploader")


def curl_user(rng: Random) -> str:
    return rng.choice(CURL_USERS)


# DISCORD_WEBHOOK_URL (section 7) as Discord issues them: mostly https://discord.com/api/webhooks/, the
# legacy discordapp.com, the PTB and Canary clients' hosts, versioned paths; a snowflake of 17 to 20
# digits (18 or 19 mostly, valid as no type on its own) and a token of 68 base64url characters (60 or
# 80 now and then); again until valid, free of other readings and of context words.
DISCORD_WEBHOOK_HOSTS = ("discord.com",) * 6 + ("discordapp.com", "discordapp.com", "ptb.discord.com",
                                                "canary.discord.com")
DISCORD_WEBHOOK_VERSIONS = ("",) * 6 + ("v10/", "v9/", "v6/", "v8/")
DISCORD_WEBHOOK_ID_LENGTHS = (17, 18, 18, 19, 19, 19, 19, 20)


def discord_webhook_id(rng: Random, length: int) -> str:
    return drawn_until(no_entity, lambda: discord_user_id_digits(rng, length))


def discord_webhook_url(rng: Random, ordinal: int) -> str:
    def draw() -> str:
        scheme = "http://" if ordinal % 13 == 12 else "https://"
        token_length = rng.choice((60, 80)) if ordinal % 7 == 3 else 68
        return "%s%s/api/%swebhooks/%s/%s" % (
            scheme, rng.choice(DISCORD_WEBHOOK_HOSTS), rng.choice(DISCORD_WEBHOOK_VERSIONS),
            discord_webhook_id(rng, rng.choice(DISCORD_WEBHOOK_ID_LENGTHS)), random_string(rng, BASE64URL, token_length))
    return drawn_until(lambda v: VALIDATORS["DISCORD_WEBHOOK_URL"](v) and free_of_other_readings(v, "DISCORD_WEBHOOK_URL")
                       and not any(word in v.lower() for word in ALL_CONTEXT_WORDS), draw)


# Where webhook URLs are pasted from: .env and compose files, TOML, JSON and Grafana's provisioning;
# Python, discord.js, Go and Rust code; curl commands, CI steps, GitHub's and Slack's compatible
# endpoints (a '/' after the token), "?wait=true".
DISCORD_WEBHOOK_CONFIG_FRAMES = (
    "DISCORD_WEBHOOK_URL={v}",
    "export DISCORD_WEBHOOK=\"{v}\"",
    ".env:\nDISCORD_WEBHOOK_URL={v}\nDISCORD_USERNAME=deploy-bot",
    "services:\n  notifier:\n    image: acme/notifier:1.4\n    environment:\n      - DISCORD_WEBHOOK_URL={v}",
    "[discord]\nwebhook_url = \"{v}\"\nusername = \"Uptime\"",
    "{\"discord\": {\"webhookUrl\": \"{v}\", \"mentionRole\": \"ops\"}}",
    "contactPoints:\n  - name: discord-alerts\n    receivers:\n      - type: discord\n        settings:\n"
    "          url: {v}",
)
DISCORD_WEBHOOK_CODE_FRAMES = (
    "requests.post(\"{v}\", json={\"content\": \"Nightly backup finished\"})",
    "requests.post(\"{v}?wait=true\", json={\"content\": \"Deploy done\"})",
    "const webhook = new WebhookClient({ url: '{v}' });",
    "webhook = DiscordWebhook(url=\"{v}\", content=\"Build finished\")\nwebhook.execute()",
    "resp, err := http.Post(\"{v}\", \"application/json\", bytes.NewBuffer(payload))",
    "let client = reqwest::Client::new();\nclient.post(\"{v}\").json(&body).send().await?;",
    "WEBHOOK = '{v}'  # the deploys channel",
)
DISCORD_WEBHOOK_CLI_FRAMES = (
    "curl -H \"Content-Type: application/json\" -d '{\"content\":\"Release is out\"}' {v}",
    "curl -X POST -H 'Content-Type: application/json' -d '{\"content\":\"Backup done\"}' \"{v}?wait=true\"",
    "- name: Notify Discord\n  run: curl -sf -H 'Content-Type: application/json' -d '{\"content\":\"CI green\"}' \"{v}\"",
    "Payload URL for the GitHub integration: {v}/github",
    "Slack-compatible endpoint: {v}/slack",
    "Our alerts go to {v} but nothing arrives, what is wrong?",
    "Copied from the Discord PTB client: {v}",
)


def spec6_formats() -> list[PositiveFormat]:
    """/tmp/secrets_spec6.md: SECRET's seven new forms (seven formats, 420 records a seed at the
    default) and DISCORD_WEBHOOK_URL in the generic sentences and its own (four formats, 240)."""
    return [
        PositiveFormat("SECRET", "colon-equals", spec6_secret_value, frames=COLON_EQUALS_FRAMES),
        PositiveFormat("SECRET", "new-name-ends", spec6_secret_value, frames=NEW_NAME_END_FRAMES),
        PositiveFormat("SECRET", "pass-names", spec6_secret_value, frames=PASS_NAME_FRAMES),
        PositiveFormat("SECRET", "xml-element", spec6_secret_value, frames=XML_ELEMENT_FRAMES),
        PositiveFormat("SECRET", "xml-attribute", spec6_secret_value, frames=XML_ATTRIBUTE_FRAMES),
        PositiveFormat("SECRET", "long-option-space", spec6_secret_value, frames=LONG_OPTION_FRAMES),
        PositiveFormat("SECRET", "curl-user", spec6_secret_value, frames=CURL_USER_FRAMES),
        PositiveFormat("DISCORD_WEBHOOK_URL", "plain", discord_webhook_url),
        PositiveFormat("DISCORD_WEBHOOK_URL", "env-and-config", discord_webhook_url,
                       frames=DISCORD_WEBHOOK_CONFIG_FRAMES),
        PositiveFormat("DISCORD_WEBHOOK_URL", "code", discord_webhook_url, frames=DISCORD_WEBHOOK_CODE_FRAMES),
        PositiveFormat("DISCORD_WEBHOOK_URL", "ci-and-tools", discord_webhook_url, frames=DISCORD_WEBHOOK_CLI_FRAMES),
    ]


# /tmp/secrets_spec7.md sections 1 to 3 and the counter-examples of section 4. Section 1: a quoted value
# runs to the quote that opened it, so one or two quotes of the other kinds ('"', '\'', a backquote)
# and, in a double-quoted value of JSON or code, an escaped '\"' are part of it (.env files, JSON, PHP's
# define() and arrays, Python, JavaScript and TypeScript, Go, C#, YAML, Kafka's JAAS line in a
# properties file, .NET's appSettings, call arguments, long options). Section 2: values in escaped
# double quotes (JSON bodies logged inside a JSON string, Kafka's JAAS line in a Java or Kotlin
# string). Section 3: an Authorization header's value opened by a template literal's backquote.
# Section 4's counter-examples (a dotted value with a part that starts with a digit or a first part
# with a capital and a digit, a path with a capital and no leading '/' or with a digit). The values:
# random passwords as spec6_secret_value draws them, quotes and escapes put inside, each valid as a
# quoted value (none holds white space, '$' or '@'), free of other readings and of context words.
SPEC7_INNER_QUOTES = {'"': ("'", "`", '\\"'), "'": ('"', "`"), "`": ('"', "'")}


def spec7_quoted_value(quote: str) -> ValueGenerator:
    """A password with one or two of SPEC7_INNER_QUOTES[quote] inside (never first nor last)."""
    def generate(rng: Random, ordinal: int) -> str:
        def draw() -> str:
            value = rng.choice(BASE62) + random_string(rng, SPEC6_PASSWORD_ALPHABET, rng.randint(9, 21))
            inner = SPEC7_INNER_QUOTES[quote]
            for piece in rng.sample(inner, 1 if ordinal % 3 else min(2, len(inner))):
                at = rng.randint(1, len(value) - 1)
                value = value[:at] + piece + value[at:]
            return value

        def valid(value: str) -> bool:
            return (is_valid_secret(value) and any(c in DIGITS for c in value)
                    and any(piece in value for piece in SPEC7_INNER_QUOTES[quote]) and free_of_other_findings(value))
        return drawn_until(valid, draw)
    return generate


# Section 1, a value in double quotes holding '\'', a backquote or '\"'.
QUOTES_INSIDE_DOUBLE_FRAMES = (
    "{\"username\": \"app\", \"Password\": \"{v}\"}",
    ".env:\nSMTP_HOST=smtp.internal\nSMTP_PASSWORD=\"{v}\"\nSMTP_PORT=587",
    "const config = { apiKey: \"{v}\", region: \"eu-west-1\" };",
    "DB_PASSWORD = \"{v}\"  # settings.py",
    "'client_secret' => \"{v}\",",
    "var options = new SmtpOptions { Host = \"smtp.internal\", Password = \"{v}\" };",
    "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"svc-orders\" "
    "password=\"{v}\";",
    "db:\n  host: db.internal\n  password: \"{v}\"",
    "apiToken := \"{v}\"",
    "props.setProperty(\"mail.smtp.password\", \"{v}\");",
    "{\n  \"ConnectionStrings\": {},\n  \"Jwt\": { \"SigningKey\": \"{v}\", \"Issuer\": \"web\" }\n}",
)
# Section 1, a value in single quotes holding '"' or a backquote.
QUOTES_INSIDE_SINGLE_FRAMES = (
    "define('AUTH_KEY', '{v}');",
    "SMTP_PASSWORD='{v}'",
    "export API_TOKEN='{v}'",
    "client_secret = '{v}'",
    "const db = mysql.createConnection({ host: 'db.internal', user: 'app', password: '{v}' });",
    "return [\n    'host' => 'db.internal',\n    'password' => '{v}',\n];",
    "redis:\n  host: cache.internal\n  password: '{v}'",
    "./deploy.sh --api-key '{v}' --env prod",
    "<add key=\"SmtpPassword\" value='{v}' />",
    "os.environ.setdefault('DJANGO_SECRET_KEY', '{v}')",
    "$cfg['Servers'][$i]['password'] = '{v}';",
)
# Section 1, a JavaScript template literal or a Go raw string holding '"' or '\''.
QUOTES_INSIDE_BACKQUOTE_FRAMES = (
    "const apiKey = `{v}`;",
    "password := `{v}`",
    "const cfg = { clientSecret: `{v}`, region: 'eu-west-1' };",
    "export const SIGNING_SECRET = `{v}`;",
    "cfg := Config{Host: \"db.internal\", Password: `{v}`}",
    "os.Setenv(\"DB_PASSWORD\", `{v}`)",
    "localStorage.setItem('token', `{v}`);",
)
# Section 2: \"name\":\"value\" in a JSON string, name=\"value\" in a Java or Kotlin string.
ESCAPED_QUOTES_FRAMES = (
    "{\"level\":\"info\",\"msg\":\"login request\",\"body\":\"{\\\"username\\\":\\\"svc\\\",\\\"password\\\":\\\"{v}\\\"}\"}",
    "{\"event\":\"api_request\",\"payload\":\"{\\\"apiKey\\\":\\\"{v}\\\",\\\"limit\\\":50}\"}",
    "DEBUG http: request body=\"{\\\"client_id\\\":\\\"web\\\",\\\"client_secret\\\":\\\"{v}\\\"}\"",
    "{\"message\": \"POST /api/login {\\\"user\\\":\\\"ops\\\",\\\"pass\\\":\\\"{v}\\\"}\", \"status\": 401}",
    "props.put(\"sasl.jaas.config\", \"org.apache.kafka.common.security.plain.PlainLoginModule required "
    "username=\\\"alice\\\" password=\\\"{v}\\\";\");",
    "String jaas = \"org.apache.kafka.common.security.scram.ScramLoginModule required username=\\\"svc-orders\\\" "
    "password=\\\"{v}\\\";\";",
    "put(SaslConfigs.SASL_JAAS_CONFIG, \"org.apache.kafka.common.security.plain.PlainLoginModule required "
    "username=\\\"app\\\" password=\\\"{v}\\\";\")",
    "body := \"{\\\"token\\\":\\\"{v}\\\"}\"",
    "logger.debug(\"{\\\"refresh_token\\\": \\\"{v}\\\", \\\"grant_type\\\": \\\"refresh\\\"}\")",
)
# Section 3: fetch(), axios, XMLHttpRequest and TypeScript headers in template literals.
AUTHORIZATION_TEMPLATE_FRAMES = (
    "fetch(url, { headers: { Authorization: `Bearer {v}` } });",
    "const res = await fetch('/api/orders', {\n  headers: { 'Content-Type': 'application/json', "
    "Authorization: `Bearer {v}` },\n});",
    "const api = axios.create({ baseURL: '/api', headers: { Authorization: `Token {v}` } });",
    "const headers = { authorization: `bearer {v}` };",
    "xhr.setRequestHeader('Authorization', `Bearer {v}`);",
    "headers['Authorization'] = `Bearer {v}`;",
    "instance.defaults.headers.common.Authorization = `Bearer {v}`;",
    "const init: RequestInit = { headers: { Authorization: `Bearer {v}` } };",
)
# Section 4's counter-examples, quoted and unquoted.
SPEC7_COUNTER_EXAMPLE_FRAMES = (
    "password={v}",
    ".env:\nDB_USER=app\nDB_PASSWORD={v}\nDB_NAME=shop",
    "password: {v}",
    "spring.datasource.password={v}",
    "{\"user\": \"app\", \"password\": \"{v}\"}",
    "secret_key = \"{v}\"",
    "export API_SECRET={v}",
    "mysql -h db.internal -u app --password {v} shop",
)
SPEC7_SEASONS = ("Summer", "Winter", "Spring", "Autumn", "Sommer", "Herbst", "Welcome", "Sunshine", "Dragon")


def spec7_counter_example(rng: Random, ordinal: int) -> str:
    """The specification's own four now and then; else of their shapes: a word and a year after a '.'
    (the part after it starts with a digit), a capital and a digit in the first of two dotted parts,
    mixed-case letters around a '/' with no leading '/', base62 with a digit around a '/'."""
    def draw() -> str:
        kind = ordinal % 4
        if ordinal < 4:
            return ("Summer.2024", "P4ss.w0rd", "WLd/PGlNGtHALTk", "K7MDENG/bPxRfiCYzQwT")[kind]
        if kind == 0:
            word = rng.choice(SPEC7_SEASONS)
            return "%s.%d" % (word.lower() if rng.random() < 0.3 else word, rng.randint(2015, 2029))
        if kind == 1:
            first = rng.choice(UPPER) + random_string(rng, LOWER + DIGITS, rng.randint(3, 5))
            return "%s.%s" % (first, random_string(rng, LOWER + DIGITS, rng.randint(3, 6)))
        if kind == 2:
            at = rng.randint(3, 8)
            return random_string(rng, UPPER + LOWER, at) + "/" + random_string(rng, UPPER + LOWER, rng.randint(6, 12))
        at = rng.randint(5, 10)
        return random_string(rng, BASE62, at) + "/" + random_string(rng, BASE62, rng.randint(8, 14))

    def valid(value: str) -> bool:
        kind = ordinal % 4
        shape = ((kind == 1 and any(c in DIGITS for c in value.split(".")[0]))
                 or (kind == 2 and any(c in UPPER for c in value) and any(c in LOWER for c in value))
                 or (kind == 3 and any(c in DIGITS for c in value)) or kind == 0)
        return (shape and is_valid_secret(value, quoted=False) and is_valid_call_value(value)
                and free_of_other_findings(value))
    return drawn_until(valid, draw)


def spec7_formats() -> list[PositiveFormat]:
    """/tmp/secrets_spec7.md: quoted values with other quotes inside (three formats by the opening
    quote), values in escaped quotes, Authorization in a template literal and section 4's
    counter-examples (six formats; SPEC7_SHARE of the usual records each)."""
    return [
        PositiveFormat("SECRET", "quotes-inside-double", spec7_quoted_value('"'), frames=QUOTES_INSIDE_DOUBLE_FRAMES),
        PositiveFormat("SECRET", "quotes-inside-single", spec7_quoted_value("'"), frames=QUOTES_INSIDE_SINGLE_FRAMES),
        PositiveFormat("SECRET", "quotes-inside-backquote", spec7_quoted_value("`"),
                       frames=QUOTES_INSIDE_BACKQUOTE_FRAMES),
        PositiveFormat("SECRET", "escaped-quotes", spec6_secret_value, frames=ESCAPED_QUOTES_FRAMES),
        PositiveFormat("SECRET", "authorization-template-literal", bearer_token_value,
                       frames=AUTHORIZATION_TEMPLATE_FRAMES),
        PositiveFormat("SECRET", "spec7-counter-examples", spec7_counter_example, frames=SPEC7_COUNTER_EXAMPLE_FRAMES),
    ]


# The fourth batch's own sentences: HR e-mails, payslips, forms, JSON records and key=value
# lines, the context word the field's name or shortly before the value (the generator lays out
# no table: a column header's context is the engine's rule, not this module's).
BE_HR_FRAMES = (
    "Beste HR,\n\nhierbij mijn rijksregisternummer: {v}.\n\nMet vriendelijke groeten,\nLotte Janssens",
    "Loonbrief maart 2025 — INSZ {v} — bruto 3.250,00 EUR",
    '{"naam": "Jan Peeters", "rijksregisternummer": "{v}", "afdeling": "Logistiek"}',
    "Bonjour,\nvoici mon numéro de registre national : {v}.\nCordialement, Julie Lambert",
    "Fiche de paie 03/2025 — NISS : {v} — salaire brut 3.250,00 €",
    "Formulaire C4 — numéro national du travailleur : {v}",
    "Gehaltsabrechnung März 2025 — Nationalregisternummer {v}",
    "rrn={v};naam=Peeters;voornaam=Jan",
)
IE_HR_FRAMES = (
    "Hi HR,\n\nmy PPS number for payroll is {v}.\n\nThanks,\nAoife Byrne",
    "Payslip March 2025 — PPSN {v} — tax credits €3,750",
    '{"employee": "Seán Murphy", "ppsn": "{v}", "department": "Finance"}',
    "New starter form — Personal Public Service Number: {v} (as on the Revenue letter)",
    "Revenue employment details: PPS No. {v}, start date 03/03/2025",
    "ppsn={v}",
)
DK_HR_FRAMES = (
    "Hej HR,\n\nmit CPR-nummer til lønsedlen er {v}.\n\nVenlig hilsen\nMette Jensen",
    "Lønseddel marts 2025 — CPR-nr. {v} — AM-bidrag 2.400,00 kr.",
    '{"navn": "Mette Jensen", "cpr": "{v}", "afdeling": "Økonomi"}',
    "Kontrakt — medarbejderens CPR-nr.: {v}",
    "cprnr={v}",
)
AT_PAYROLL_FRAMES = (
    "Liebe Personalabteilung,\n\nanbei meine Sozialversicherungsnummer: {v}.\n\nLG Anna Huber",
    "Lohnabrechnung März 2025 — SV-Nr. {v} — Brutto 3.150,00 €",
    '{"name": "Anna Huber", "svnr": "{v}", "abteilung": "Einkauf"}',
    "ÖGK-Anmeldung: Dienstnehmer Max Gruber, VSNR {v}, Beschäftigungsbeginn 01.04.2025",
    "e-card: Versicherungsnummer {v}",
)
PT_FRAMES = (
    "Olá,\n\nsegue o meu NIF para o recibo de vencimento: {v}.\n\nObrigada,\nAna Silva",
    "Recibo de vencimento 03/2025 — NIF {v} — IRS retido 412,50 €",
    '{"nome": "Ana Silva", "nif": "{v}", "departamento": "Compras"}',
    "Fatura-recibo: consumidor final com número de contribuinte {v}",
    "Declaração de IRS — sujeito passivo A, NIF {v}",
    "nif={v}",
)

# The fifth batch's texts (/tmp/mrz_vat_spec.md): an MRZ in a KYC agent's chat, OCR output, JSON, a
# log line, a markdown code block, an e-mail; a VAT number on invoices, in supplier master data,
# EDI, JSON and XML payloads, e-mail signatures and VIES checks in chat. Neither type has a context
# word; these texts hold none of any type's (the values near them are no other type's, see
# mrz_free_of_other_findings and vat_free_of_other_findings).
MRZ_PASSPORT_FRAMES = (
    "Agent: could you type the two lines at the bottom of the photo page?\nCustomer: sure, the passport's MRZ reads:\n"
    "{v}\nAgent: thanks, checking now.",
    "Hi! Here is the MRZ from my passport, as you asked:\n\n{v}\n\nThanks 🙏",
    "Maschinenlesbare Zone des Reisepasses:\n{v}\nBitte prüfen, ob das Ablaufdatum passt.",
    "Zone de lecture automatique du passeport :\n{v}\nMerci de vérifier.",
    "Why does the parser reject this passport?\n```\n{v}\n```",
    "KYC case 4471 — passport data page, MRZ:\n{v}\nstatus: pending review",
)
MRZ_CARD_FRAMES = (
    "OCR result (back of the identity card):\n{v}\nconfidence 0.97",
    "OCR Rückseite Personalausweis:\n{v}",
    "Texte extrait de la carte (verso) :\n{v}",
    "tesseract output, page 2:\n----\n{v}\n----",
    "Can you read the three lines on the back of my ID card? I typed them:\n{v}",
)
MRZ_TD2_FRAMES = (
    "Residence permit, MRZ as scanned:\n{v}",
    "Aufenthaltstitel — maschinenlesbare Zone:\n{v}\nBitte ins Formular übernehmen.",
    "OCR of the card's back side:\n{v}\nIs the expiry date right?",
    "```\n{v}\n```\nWhich fields fail here?",
)
MRZ_VISA_FRAMES = (
    "Visa sticker, machine readable zone:\n{v}\nEntry planned for next month.",
    "Here is the MRZ of the visa in my passport:\n{v}",
    "Visum (Schengen), Zeilen unten:\n{v}",
    "OCR du visa :\n{v}\nMerci !",
)
MRZ_JSON_FRAMES = (
    '{"document_type": "passport", "mrz": "{v}", "verified": false}',
    '{"applicant_id": "A-20417", "mrz": "{v}"}',
    'POST /v1/kyc/documents\n{"mrz":"{v}","source":"ocr"}',
    '{"scan": {"side": "back", "mrz": "{v}", "quality": 0.91}}',
)
MRZ_EMAIL_FRAMES = (
    "Subject: passport scan\r\n\r\nHello,\r\n\r\nplease find the MRZ of my passport below:\r\n{v}\r\n\r\nKind regards",
    "Betreff: Ausweiskopie\r\n\r\nGuten Tag,\r\nanbei die Zeilen vom Ausweis:\r\n{v}\r\n\r\nViele Grüße",
    "Objet : copie du titre de séjour\r\n\r\nBonjour,\r\n{v}\r\nCordialement",
)
# The value's second (and third) line indented as its first: by four spaces, or by two tabs.
MRZ_INDENTED_FRAMES = (
    "applicant:\n  document: passport\n  mrz: |\n    {v}\n  checked: false",
    "Pasted as a code block:\n\n    {v}\n\nWhat is wrong with it?",
)
MRZ_TAB_INDENTED_FRAMES = (
    "kyc:\n\tmrz:\n\t\t{v}\n\tstatus: open",
    "ocr_text:\n\t\t{v}\n\t\t(end of scan)",
)
MRZ_LOG_FRAMES = (
    '2025-03-14T09:12:44Z WARN kyc.mrz parse failed for line="{v}"',
    "[mrz-reader] data line: {v}",
    "INFO ocr.page1 mrz_line2={v} conf=0.93",
    "Only the second line was readable: {v}",
    "Die untere Zeile lautet {v} — die obere ist unlesbar.",
)
VAT_INVOICE_FRAMES = (
    "Rechnung Nr. 2025-0412 — USt-IdNr.: {v}\nZahlbar innerhalb von 14 Tagen ohne Abzug.",
    "N° TVA intracommunautaire : {v}\nFacture n° F-2025-118, échéance 30 jours.",
    "Partita IVA {v} — fattura elettronica n. 118/2025",
    "BTW-nummer: {v}\nFactuur 2025-0077, betaling binnen 30 dagen.",
    "NIP UE {v}, faktura VAT nr 17/03/2025",
    "VAT reg. no.: {v}\nInvoice INV-2025-0042, due in 30 days.",
    "Reverse charge — customer's VAT number {v}, supplier's in the footer.",
    "IVA intracomunitario: {v}, factura 2025/031",
)
VAT_EDI_FRAMES = (
    '{"supplier": {"name": "Acme Handels GmbH", "vatId": "{v}"}}',
    '{"customer": {"vat_number": "{v}", "country_code": "EU"}, "currency": "EUR"}',
    "NAD+SU+++ACME HANDELS GMBH'\nRFF+VA:{v}'",
    "<cac:PartyTaxScheme><cbc:CompanyID>{v}</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>"
    "</cac:PartyTaxScheme>",
    "vat_id: {v}\nvat_checked_at: 2025-03-14",
)
VAT_CSV_FRAMES = (
    "supplier_no;name;vat_id;city\n10042;Acme Handels GmbH;{v};Berlin",
    "id,company,vat,terms\n7781,Northwind SARL,{v},30 days",
    "Kreditor;Name;USt-ID;Ort\n70015;Globex SRL;{v};Milano",
    "vendor\tvat_number\tcurrency\nInitech BV\t{v}\tEUR",
)
VAT_SIGNATURE_FRAMES = (
    "-- \nAcme Handels GmbH · Hauptstraße 5 · 10115 Berlin\nUSt-IdNr. {v} · Geschäftsführerin: Lena Weber",
    "Best regards,\nOscar Larsen\nNorthwind ApS, Copenhagen · VAT {v}",
    "Cordialement,\nJulie Lambert\nGlobex SAS — TVA {v}",
    "Met vriendelijke groet,\nDaan Jansen\nInitech B.V. | btw {v}",
)
VAT_VIES_FRAMES = (
    "Can you run a VIES check on {v} before we book the invoice?",
    "VIES says {v} is valid — ok to apply the reverse charge?",
    "Kannst du {v} kurz im VIES prüfen?",
    "Le client a donné {v}, tu peux vérifier sur VIES ?",
    "VIES check for {v}: valid, name and address match.",
)
VAT_SOLE_TRADER_FRAMES = (
    "Freelance invoice (sole trader), VAT number {v}, due on receipt.",
    "Sole trader's VAT number: {v} (it is her personal one, so mask it)",
    "Factura de autónomo — IVA intracomunitario {v}",
    "Rechnung eines Einzelunternehmers, USt-IdNr. {v}",
    "Facture d'une auto-entrepreneuse, TVA {v}",
    "The freelancer's VAT {v} is his own tax number as well, isn't it?",
)
VAT_SOLE_TRADER_COUNTRIES = ("ES", "ES", "IE", "PT", "NL", "SE")
VAT_SOLE_TRADER_KINDS = ("dni", "nie", "personal", "personal", "personal", "personal")


def mrz_and_vat_formats() -> list[PositiveFormat]:
    """The fifth batch's formats: MRZs in each layout (a passport's, an identity card's, a TD2's, a
    visa's, in JSON with its escaped line breaks, with "\r\n", indented, a lone data line, a
    Belgian eID's long document number), VAT numbers in each written form (compact, a space after
    the prefix, in their country's groups, with dots) and text (invoices, EDI and JSON, CSV,
    e-mail signatures, VIES checks, sole traders' numbers)."""
    mrz, vat = "IDENTITY_DOCUMENT_MRZ", "EU_VAT_NUMBER"
    return [
        PositiveFormat(mrz, "td3-passport", mrz_format("td3"), frames=MRZ_PASSPORT_FRAMES),
        PositiveFormat(mrz, "td1-identity-card", mrz_format("td1"), frames=MRZ_CARD_FRAMES),
        PositiveFormat(mrz, "td2", mrz_format("td2"), frames=MRZ_TD2_FRAMES),
        PositiveFormat(mrz, "visa-mrv-a-mrv-b", mrz_format("mrv-a", "mrv-b"), frames=MRZ_VISA_FRAMES),
        PositiveFormat(mrz, "json-escaped-breaks", mrz_format("td3", "td1", "td2", breaks="\\n"),
                       frames=MRZ_JSON_FRAMES),
        PositiveFormat(mrz, "crlf-email", mrz_format("td3", "td1", breaks="\r\n"), frames=MRZ_EMAIL_FRAMES),
        PositiveFormat(mrz, "indented-lines", mrz_format("td3", "td1", "td2", breaks="\n    "),
                       frames=MRZ_INDENTED_FRAMES),
        PositiveFormat(mrz, "tab-indented-lines", mrz_format("td1", "td3", breaks="\n\t\t"),
                       frames=MRZ_TAB_INDENTED_FRAMES),
        PositiveFormat(mrz, "lone-data-line", mrz_format("td3", "td2", lone=True), frames=MRZ_LOG_FRAMES),
        PositiveFormat(mrz, "td1-long-document-number", mrz_format("td1-long"), frames=MRZ_CARD_FRAMES),
        PositiveFormat(vat, "compact", vat_format("compact"), frames=VAT_INVOICE_FRAMES),
        PositiveFormat(vat, "prefix-space", vat_format("prefix-space"), frames=VAT_INVOICE_FRAMES + VAT_VIES_FRAMES),
        PositiveFormat(vat, "grouped", vat_format("grouped"), frames=VAT_INVOICE_FRAMES + VAT_SIGNATURE_FRAMES),
        PositiveFormat(vat, "dotted", vat_format("dotted", ("BE", "NL")), frames=VAT_INVOICE_FRAMES),
        PositiveFormat(vat, "edi-json-xml", vat_format("compact"), frames=VAT_EDI_FRAMES),
        PositiveFormat(vat, "supplier-csv", vat_format("compact"), frames=VAT_CSV_FRAMES),
        PositiveFormat(vat, "email-signature-vies", vat_format("compact"),
                       frames=VAT_SIGNATURE_FRAMES + VAT_VIES_FRAMES),
        PositiveFormat(vat, "sole-trader", vat_format("compact", VAT_SOLE_TRADER_COUNTRIES, VAT_SOLE_TRADER_KINDS),
                       frames=VAT_SOLE_TRADER_FRAMES),
    ]


POSITIVE_FORMATS = (
    PositiveFormat("US_SSN", "dashed", joined_parts(valid_ssn_parts, "-")),
    PositiveFormat("US_SSN", "spaced", joined_parts(valid_ssn_parts, " ")),
    PositiveFormat("US_SSN", "bare-context", joined_parts(valid_ssn_parts, "")),
    PositiveFormat("US_ITIN", "dashed", joined_parts(valid_itin_parts, "-")),
    PositiveFormat("US_ITIN", "spaced", joined_parts(valid_itin_parts, " ")),
    PositiveFormat("US_ITIN", "bare-context", joined_parts(valid_itin_parts, "")),
    *card_formats(),
    PositiveFormat("IBAN_CODE", "compact", iban_format(group=False)),
    PositiveFormat("IBAN_CODE", "grouped", iban_format(group=True)),
    PositiveFormat("EMAIL_ADDRESS", "dotted", email_dotted),
    PositiveFormat("EMAIL_ADDRESS", "plus-tag", email_plus_tag),
    PositiveFormat("EMAIL_ADDRESS", "subdomain", email_subdomain),
    PositiveFormat("EMAIL_ADDRESS", "digits", email_with_digits),
    PositiveFormat("EMAIL_ADDRESS", "mixed-case", email_mixed_case),
    PositiveFormat("PHONE_NUMBER", "nanp-parens", nanp_format("({}) {}-{}")),
    PositiveFormat("PHONE_NUMBER", "nanp-dashed", nanp_format("{}-{}-{}")),
    PositiveFormat("PHONE_NUMBER", "nanp-dotted", nanp_format("{}.{}.{}")),
    PositiveFormat("PHONE_NUMBER", "nanp-spaced", nanp_format("{} {} {}")),
    PositiveFormat("PHONE_NUMBER", "nanp-plus1-spaced", nanp_format("+1 {} {} {}")),
    PositiveFormat("PHONE_NUMBER", "nanp-plus1-dashed", nanp_format("+1-{}-{}-{}")),
    PositiveFormat("PHONE_NUMBER", "nanp-1-dashed", nanp_format("1-{}-{}-{}")),
    PositiveFormat("PHONE_NUMBER", "nanp-e164", nanp_format("+1{}{}{}")),
    PositiveFormat("PHONE_NUMBER", "nanp-bare-context", nanp_format("{}{}{}")),
    *(PositiveFormat("PHONE_NUMBER", "intl-" + country, international_format(
        tuple((code, pattern) for pattern in patterns), compact=False))
      for country, (code, patterns) in INTERNATIONAL_PHONES.items()),
    PositiveFormat("PHONE_NUMBER", "intl-other",
                   international_format(MORE_INTERNATIONAL_PHONES, compact=False)),
    PositiveFormat("PHONE_NUMBER", "intl-compact",
                   international_format(ALL_INTERNATIONAL_PHONES, compact=True)),
    PositiveFormat("IP_ADDRESS", "ipv4", lambda rng, ordinal: random_ipv4(rng)),
    PositiveFormat("IP_ADDRESS", "ipv6-full", ipv6_full),
    PositiveFormat("IP_ADDRESS", "ipv6-compressed", ipv6_compressed),
    PositiveFormat("IP_ADDRESS", "ipv6-embedded-ipv4", ipv6_embedded_ipv4),
    PositiveFormat("IP_ADDRESS", "ipv6-uppercase", ipv6_uppercase),
    PositiveFormat("UK_NHS", "spaced-context", nhs_format(" ")),
    PositiveFormat("UK_NHS", "dashed-context", nhs_format("-")),
    PositiveFormat("UK_NHS", "bare-context", nhs_format(None)),
    PositiveFormat("CRYPTO", "p2pkh", base58_address_format(0x00)),
    PositiveFormat("CRYPTO", "p2sh", base58_address_format(0x05)),
    PositiveFormat("CRYPTO", "bech32-p2wpkh", segwit_format(0, 20)),
    PositiveFormat("CRYPTO", "bech32-p2wsh", segwit_format(0, 32)),
    PositiveFormat("CRYPTO", "bech32m-p2tr", segwit_format(1, 32)),
    PositiveFormat("MEDICAL_LICENSE", "dea-practitioner", dea_format("ABFG", False)),
    PositiveFormat("MEDICAL_LICENSE", "dea-mid-level", dea_format("M", False)),
    PositiveFormat("MEDICAL_LICENSE", "dea-registrant", dea_format("CDEHJKLPRSTX", False)),
    PositiveFormat("MEDICAL_LICENSE", "dea-second-9", dea_format(DEA_FIRST_LETTERS, True)),
    PositiveFormat("POLICY_SUITE_KEY", "proj", policy_suite_key_format("proj")),
    PositiveFormat("POLICY_SUITE_KEY", "svc", policy_suite_key_format("svc")),
    PositiveFormat("POLICY_SUITE_KEY", "admin", policy_suite_key_format("admin")),
    PositiveFormat("OPENAI_API_KEY", "legacy", openai_legacy_key),
    PositiveFormat("OPENAI_API_KEY", "proj", openai_scoped_key_format("proj")),
    PositiveFormat("OPENAI_API_KEY", "svcacct", openai_scoped_key_format("svcacct")),
    PositiveFormat("OPENAI_API_KEY", "admin", openai_scoped_key_format("admin")),
    *provider_key_formats(),
    PositiveFormat("AWS_ACCESS_KEY", "akia", aws_key_format("AKIA")),
    PositiveFormat("AWS_ACCESS_KEY", "asia", aws_key_format("ASIA")),
    *(PositiveFormat("GITHUB_TOKEN", prefix, github_token_format(prefix))
      for prefix in ("ghp", "gho", "ghu", "ghs", "ghr")),
    PositiveFormat("GITHUB_TOKEN", "github-pat", github_fine_grained_pat),
    *(PositiveFormat("SLACK_TOKEN", prefix, slack_token_format(prefix))
      for prefix in ("xoxb", "xoxp", "xoxa", "xoxr", "xoxs")),
    PositiveFormat("SLACK_TOKEN", "xapp", slack_app_token),
    PositiveFormat("SLACK_TOKEN", "xapp-socket-mode", slack_app_token, frames=SLACK_APP_TOKEN_FRAMES),
    *(PositiveFormat("PRIVATE_KEY", (kind.strip() or "pkcs8").lower(), pem_format(kind))
      for kind in ("RSA ", "EC ", "DSA ", "OPENSSH ", "ENCRYPTED ", "")),
    *secret_formats(),
    *late_secret_formats(),
    *setting_formats(),
    *authorization_formats(),
    *new_secret_formats(),
    *spec5_formats(),
    *spec6_formats(),
    *spec7_formats(),
    PositiveFormat("UK_NINO", "compact-context", nino_format(False), "with"),
    PositiveFormat("UK_NINO", "grouped", nino_format(True)),
    PositiveFormat("UK_NINO", "grouped-context", nino_format(True), "with"),
    PositiveFormat("UK_NINO", "grouped-no-context", nino_format(True), "without"),
    PositiveFormat("UK_NINO", "lowercase-context", lowercased(nino_format(False)), "with"),
    PositiveFormat("UK_NINO", "dashed-context", nino_typed_format("dashed"), "with"),
    PositiveFormat("UK_NINO", "six-digits-context", nino_typed_format("six-digits"), "with"),
    PositiveFormat("ES_NIF", "compact", nif_format("compact")),
    PositiveFormat("ES_NIF", "compact-no-context", nif_format("compact"), "without"),
    PositiveFormat("ES_NIF", "dashed", nif_format("dashed")),
    PositiveFormat("ES_NIF", "spaced-context", nif_format("spaced"), "with"),
    PositiveFormat("ES_NIF", "dotted", nif_format("dotted-dashed", "dotted")),
    PositiveFormat("ES_NIF", "lowercase-context", lowercased(nif_format("compact", "dashed")), "with"),
    PositiveFormat("ES_NIE", "compact", nie_format("compact")),
    PositiveFormat("ES_NIE", "compact-no-context", nie_format("compact"), "without"),
    PositiveFormat("ES_NIE", "dashed", nie_format("dashed")),
    PositiveFormat("ES_NIE", "dash-before-letter", nie_format("dash-before-letter")),
    PositiveFormat("ES_NIE", "spaced-context", nie_format("spaced"), "with"),
    PositiveFormat("ES_NIE", "lowercase-context", lowercased(nie_format("compact")), "with"),
    PositiveFormat("IT_FISCAL_CODE", "male", fiscal_code_format("male")),
    PositiveFormat("IT_FISCAL_CODE", "female", fiscal_code_format("female")),
    PositiveFormat("IT_FISCAL_CODE", "omocodia", fiscal_code_format("omocodia")),
    PositiveFormat("IT_FISCAL_CODE", "foreign-born", fiscal_code_format("foreign-born")),
    PositiveFormat("IT_FISCAL_CODE", "no-context", fiscal_code_format("any"), "without"),
    PositiveFormat("IT_FISCAL_CODE", "lowercase", lowercased(fiscal_code_format("any"))),
    PositiveFormat("PL_PESEL", "born-1900s", pesel_format("born-1900s"), "with"),
    PositiveFormat("PL_PESEL", "born-2000s", pesel_format("born-2000s"), "with"),
    PositiveFormat("PL_PESEL", "other-centuries", pesel_format("other-centuries"), "with"),
    PositiveFormat("PL_PESEL", "leap-day", pesel_format("leap-day"), "with"),
    PositiveFormat("FI_PERSONAL_IDENTITY_CODE", "dash-1900s", fi_code_format("-")),
    PositiveFormat("FI_PERSONAL_IDENTITY_CODE", "a-2000s", fi_code_format("A")),
    PositiveFormat("FI_PERSONAL_IDENTITY_CODE", "new-century-signs", fi_code_format("YXWVUBCDEF")),
    PositiveFormat("FI_PERSONAL_IDENTITY_CODE", "plus-1800s", fi_code_format("+")),
    PositiveFormat("FI_PERSONAL_IDENTITY_CODE", "no-context", fi_code_format("AYBC"), "without"),
    PositiveFormat("FI_PERSONAL_IDENTITY_CODE", "lowercase-context",
                   lambda rng, ordinal: fi_code_lowercase(rng, ordinal), "with"),
    PositiveFormat("FR_NIR", "compact", nir_format("standard", "compact")),
    PositiveFormat("FR_NIR", "grouped", nir_format("standard", "grouped")),
    PositiveFormat("FR_NIR", "compact-no-context", nir_format("standard", "compact"), "without"),
    PositiveFormat("FR_NIR", "grouped-context", nir_format("standard", "grouped"), "with"),
    PositiveFormat("FR_NIR", "grouped-no-context", nir_format("standard", "grouped"), "without"),
    PositiveFormat("FR_NIR", "corsica", nir_format("corsica", "compact", "grouped")),
    PositiveFormat("FR_NIR", "unknown-month", nir_format("unknown-month", "grouped", "compact")),
    PositiveFormat("NL_BSN", "compact", bsn_format("compact"), "with"),
    PositiveFormat("NL_BSN", "dotted", bsn_format("dotted"), "with"),
    PositiveFormat("NL_BSN", "leading-zero", bsn_format("compact", "dotted", leading_zero=True), "with"),
    PositiveFormat("NL_BSN", "sofinummer", bsn_format("compact", "dotted"), "with", frames=(
        "Sofinummer: {v}", "Mijn oude sofinummer is {v}.", "Het sofi-nummer {v} staat nog op de loonstrook.",
        "Sofi-nummer {v} (van voor 2007).")),
    PositiveFormat("SE_PERSONAL_IDENTITY_NUMBER", "dash", se_pin_format("dash"), "with"),
    PositiveFormat("SE_PERSONAL_IDENTITY_NUMBER", "plus-centenarian", se_pin_format("plus"), "with"),
    PositiveFormat("SE_PERSONAL_IDENTITY_NUMBER", "twelve-digits-dash", se_pin_format("twelve-dash"), "with"),
    PositiveFormat("SE_PERSONAL_IDENTITY_NUMBER", "twelve-digits", se_pin_format("twelve-digits"), "with"),
    PositiveFormat("SE_PERSONAL_IDENTITY_NUMBER", "ten-digits", se_pin_format("ten-digits"), "with"),
    PositiveFormat("SE_PERSONAL_IDENTITY_NUMBER", "samordningsnummer",
                   se_pin_format("dash", "twelve-digits", "twelve-dash", coordination=True), "with", frames=(
                       "Samordningsnummer: {v}", "Hans samordningsnummer är {v}.",
                       "Samordningsnummer {v} (utländsk medborgare).",
                       "Skatteverket har tilldelat samordningsnummer {v}.")),
    PositiveFormat("SE_PERSONAL_IDENTITY_NUMBER", "finnish-shaped", se_pin_finnish_shaped, "with"),
    PositiveFormat("DE_TAX_ID", "compact", de_tax_id_format("twice", "compact"), "with"),
    PositiveFormat("DE_TAX_ID", "grouped", de_tax_id_format("any", "grouped"), "with"),
    PositiveFormat("DE_TAX_ID", "digit-thrice", de_tax_id_format("thrice", "compact", "grouped"), "with"),
    PositiveFormat("DE_TAX_ID", "check-digit-zero", de_tax_id_format("check-zero", "compact", "grouped"), "with"),
    PositiveFormat("DE_TAX_ID", "payroll", de_tax_id_format("any", "compact", "grouped"), "with", frames=(
        "Lohnsteuerbescheinigung 2024 — Identifikationsnummer: {v}",
        "Für die Lohnabrechnung brauchen wir noch Ihre Steuer-ID ({v}).",
        "Neue Mitarbeiterin, IdNr. {v}, Steuerklasse I.",
        "ELSTER-Formular: Steuer-Identifikationsnummer {v}, bitte eintragen.")),
    PositiveFormat("DE_HEALTH_INSURANCE_NUMBER", "letters-a-to-i", kvnr_format(UPPER[:9]), "with"),
    PositiveFormat("DE_HEALTH_INSURANCE_NUMBER", "letters-j-to-z", kvnr_format(UPPER[9:]), "with"),
    PositiveFormat("DE_HEALTH_INSURANCE_NUMBER", "check-digit-zero", kvnr_format(UPPER, check_zero=True), "with"),
    PositiveFormat("DE_HEALTH_INSURANCE_NUMBER", "gesundheitskarte", kvnr_format(UPPER), "with", frames=(
        "Auf der Gesundheitskarte steht die Versichertennummer {v}.",
        "eGK eingelesen, KVNR {v}, Versicherungsstatus aktiv.",
        "Krankenversicherung: AOK Bayern, Versicherten-Nr. {v}",
        "Bitte die Krankenversichertennummer {v} auf dem Rezept ergänzen.")),
    PositiveFormat("BE_NATIONAL_NUMBER", "eid-card", be_national_number_format("standard", "document")),
    PositiveFormat("BE_NATIONAL_NUMBER", "eid-card-no-context", be_national_number_format("standard", "document"),
                   "without"),
    PositiveFormat("BE_NATIONAL_NUMBER", "compact-context", be_national_number_format("standard", "compact"), "with"),
    PositiveFormat("BE_NATIONAL_NUMBER", "typed-context", be_national_number_format("standard", *BE_TYPED_FORMS[1:]),
                   "with"),
    PositiveFormat("BE_NATIONAL_NUMBER", "born-2000s",
                   be_national_number_format("born-2000s", "document", *BE_TYPED_FORMS)),
    PositiveFormat("BE_NATIONAL_NUMBER", "bis-number",
                   be_national_number_format("bis", "document", "compact", "dashed")),
    PositiveFormat("BE_NATIONAL_NUMBER", "unknown-date",
                   be_national_number_format("unknown-date", "document", "compact", "pairs")),
    PositiveFormat("BE_NATIONAL_NUMBER", "leap-day", be_national_number_format("leap-day", "document", "compact")),
    PositiveFormat("BE_NATIONAL_NUMBER", "hr-payroll",
                   be_national_number_format("standard", "compact", "document", "dashed"), "with", frames=BE_HR_FRAMES),
    PositiveFormat("IE_PPSN", "one-letter", ppsn_format(("",)), "with"),
    PositiveFormat("IE_PPSN", "2013-format", ppsn_format(("A", "B")), "with"),
    PositiveFormat("IE_PPSN", "older-second-letter", ppsn_format(("W", "T", "X")), "with"),
    PositiveFormat("IE_PPSN", "spaced", ppsn_format(("A", "", "W", "B", "T"), spaced=True), "with"),
    PositiveFormat("IE_PPSN", "lowercase", ppsn_format(("", "A", "B", "W"), lowercase=True), "with"),
    PositiveFormat("IE_PPSN", "hr-payroll", ppsn_format(("", "A", "B", "W")), "with", frames=IE_HR_FRAMES),
    PositiveFormat("DK_CPR", "dash", dk_cpr_format("standard", "dash"), "with"),
    PositiveFormat("DK_CPR", "compact", dk_cpr_format("standard", "compact"), "with"),
    PositiveFormat("DK_CPR", "spaced", dk_cpr_format("standard", "spaced"), "with"),
    PositiveFormat("DK_CPR", "born-2000s", dk_cpr_format("born-2000s", "dash", "compact"), "with"),
    PositiveFormat("DK_CPR", "seventh-digit-centuries", dk_cpr_format("centuries", "dash", "compact", "spaced"),
                   "with"),
    PositiveFormat("DK_CPR", "leap-day", dk_cpr_format("leap-day", "dash", "compact"), "with"),
    PositiveFormat("DK_CPR", "hr-payroll", dk_cpr_format("standard", "dash", "compact"), "with", frames=DK_HR_FRAMES),
    PositiveFormat("AT_SOCIAL_INSURANCE_NUMBER", "e-card", at_svnr_format("e-card"), "with"),
    PositiveFormat("AT_SOCIAL_INSURANCE_NUMBER", "compact", at_svnr_format("compact"), "with"),
    PositiveFormat("AT_SOCIAL_INSURANCE_NUMBER", "check-digit-zero",
                   at_svnr_format("e-card", "compact", check_zero=True), "with"),
    PositiveFormat("AT_SOCIAL_INSURANCE_NUMBER", "no-birth-date",
                   at_svnr_format("e-card", "compact", birth_date=False), "with"),
    PositiveFormat("AT_SOCIAL_INSURANCE_NUMBER", "payroll", at_svnr_format("e-card", "compact"), "with",
                   frames=AT_PAYROLL_FRAMES),
    PositiveFormat("PT_TAX_ID", "compact", pt_tax_id_format(("1", "2"), "compact"), "with"),
    PositiveFormat("PT_TAX_ID", "spaced", pt_tax_id_format(("1", "2", "3"), "spaced"), "with"),
    PositiveFormat("PT_TAX_ID", "starting-with-3", pt_tax_id_format(("3",), "compact", "spaced"), "with"),
    PositiveFormat("PT_TAX_ID", "non-resident-45", pt_tax_id_format(("45",), "compact", "spaced"), "with"),
    PositiveFormat("PT_TAX_ID", "check-digit-zero",
                   pt_tax_id_format(PT_PERSONAL_PREFIXES, "compact", "spaced", check_zero=True), "with"),
    PositiveFormat("PT_TAX_ID", "invoice-payroll", pt_tax_id_format(PT_PERSONAL_PREFIXES, "compact", "spaced"), "with",
                   frames=PT_FRAMES),
    *mrz_and_vat_formats(),
)


# ---------------------------------------------------------------------------------------
# Hard negatives, one generator per (category, variant): (rng, ordinal) -> value
# ---------------------------------------------------------------------------------------

def card_failing_luhn(separator: str | None) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        issuer = list(CARD_ISSUERS)[ordinal % len(CARD_ISSUERS)]
        lengths = CARD_ISSUERS[issuer][1] if separator is None else CARD_GROUPED_LENGTHS[issuer]
        digits = card_number(rng, issuer, rng.choice(lengths))
        digits = digits[:-1] + str((int(digits[-1]) + rng.randint(1, 9)) % 10)
        return digits if separator is None else grouped(digits, CARD_GROUPINGS[len(digits)], separator)
    return generate


def card_without_issuer(separator: str | None) -> ValueGenerator:
    """Luhn-valid, but the prefix belongs to no issuer (1, 7, 8, 9, 0)."""
    def generate(rng: Random, ordinal: int) -> str:
        length = rng.choice((13, 14, 15, 16, 17, 18, 19) if separator is None else tuple(CARD_GROUPINGS))
        payload = rng.choice("17890") + random_string(rng, DIGITS, length - 2)
        digits = payload + luhn_check_digit(payload)
        return digits if separator is None else grouped(digits, CARD_GROUPINGS[length], separator)
    return generate


def card_with_wrong_length(rng: Random, ordinal: int) -> str:
    """Luhn-valid, issuer prefix, but a length the issuer does not issue."""
    issuer, length = (("visa", 15), ("visa", 17), ("mastercard", 15), ("mastercard", 17),
                      ("amex", 16), ("amex", 14), ("jcb", 15), ("discover", 15))[ordinal % 8]
    low, high = rng.choice(CARD_ISSUERS[issuer][0])
    prefix = str(rng.randint(int(low), int(high))).zfill(len(low))
    payload = prefix + random_string(rng, DIGITS, length - len(prefix) - 1)
    return payload + luhn_check_digit(payload)


def iban_with_wrong_check(group: bool) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        iban = iban_format(group=False)(rng, ordinal)
        positions = [i for i, char in enumerate(iban) if i >= 2 and char.isdigit()]
        i = rng.choice(positions)
        iban = iban[:i] + str((int(iban[i]) + rng.randint(1, 9)) % 10) + iban[i + 1:]
        return group_in_fours(iban) if group else iban
    return generate


def iban_with_wrong_length(group: bool) -> ValueGenerator:
    """A digit added or removed, check digits recomputed: only the length is wrong."""
    def generate(rng: Random, ordinal: int) -> str:
        country = IBAN_COUNTRIES[ordinal % len(IBAN_COUNTRIES)]
        bban = random_bban(rng, country)
        bban = bban + rng.choice(DIGITS) if ordinal % 2 else bban[:-1]
        iban = iban_from_bban(country, bban)
        return group_in_fours(iban) if group else iban
    return generate


def ssn_out_of_range(kind: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        area, group, serial = valid_ssn_parts(rng)
        if kind == "area-000":
            area = "000"
        elif kind == "area-666":
            area = "666"
        elif kind == "area-9xx-not-itin":
            area = "9%02d" % rng.randint(0, 99)
            group = "%02d" % rng.choice([g for g in range(100) if g not in ITIN_GROUPS])
        elif kind == "group-00":
            group = "00"
        elif kind == "serial-0000":
            serial = "0000"
        else:
            area, group, serial = SSN_ADVERTISING_NUMBERS[ordinal % 2]
        return ("-" if ordinal % 3 else " ").join((area, group, serial))
    return generate


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def date_format(template: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        year, month, day = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
        return template.format(y=year, m="%02d" % month, d="%02d" % day, mon=MONTHS[month - 1], day=day)
    return generate


def clock_time(rng: Random, ordinal: int) -> str:
    return "%02d:%02d:%02d" % (rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))


def pattern_format(*patterns: str) -> ValueGenerator:
    """Fill one of the patterns: # a digit, @ an upper-case letter, everything else as is."""
    def generate(rng: Random, ordinal: int) -> str:
        pattern = patterns[ordinal % len(patterns)]
        return "".join(rng.choice(DIGITS) if c == "#" else rng.choice(UPPER) if c == "@" else c
                       for c in pattern)
    return generate


def order_with_hash(rng: Random, ordinal: int) -> str:
    return "#%d" % rng.randint(100000, 999999)


def invoice_with_slash(rng: Random, ordinal: int) -> str:
    return "Invoice %d/%d" % (rng.randint(2015, 2026), rng.randint(1, 999))


def semver(rng: Random) -> str:
    return "%d.%d.%d" % (rng.randint(0, 12), rng.randint(0, 40), rng.randint(0, 30))


def dotted_quad_within_ip_range(rng: Random) -> str:
    return "%d.%d.%d.%d" % (rng.randint(1, 20), rng.randint(0, 20), rng.randint(0, 30), rng.randint(0, 99))


def version_v_semver(rng: Random, ordinal: int) -> str:
    return "v" + semver(rng)


def version_semver(rng: Random, ordinal: int) -> str:
    return semver(rng)


def version_windows_build(rng: Random, ordinal: int) -> str:
    return "10.0.%d.%d" % (rng.choice((19041, 19044, 19045, 22000, 22621, 22631)), rng.randint(1000, 4999))


def version_word_quad(rng: Random, ordinal: int) -> str:
    """A dotted quad that would parse as IPv4, made a version by the word before it."""
    return ("version ", "Version ", "ver ")[ordinal % 3] + dotted_quad_within_ip_range(rng)


def version_v_quad(rng: Random, ordinal: int) -> str:
    return "vV"[ordinal % 2] + dotted_quad_within_ip_range(rng)


def version_kernel(rng: Random, ordinal: int) -> str:
    if ordinal % 2:
        return "%d.%d.0-%d.el%d" % (rng.choice((4, 5)), rng.randint(0, 18), rng.randint(80, 500),
                                    rng.choice((7, 8, 9)))
    return "%d.%d.0-%d-generic" % (rng.choice((5, 6)), rng.randint(0, 19), rng.randint(10, 120))


def uuid_v4(rng: Random, ordinal: int) -> str:
    hex_digits = random_string(rng, HEX, 32)
    value = "%s-%s-4%s-%s%s-%s" % (hex_digits[:8], hex_digits[8:12], hex_digits[13:16],
                                   rng.choice("89ab"), hex_digits[17:20], hex_digits[20:])
    return value.upper() if ordinal % 4 == 3 else value


def git_sha(rng: Random, ordinal: int) -> str:
    return random_string(rng, HEX, 40)


def price(rng: Random, ordinal: int) -> str:
    amount = rng.randint(1, 250000)
    cents = rng.randint(0, 99)
    if ordinal % 2:
        return "$%s.%02d" % ("{:,}".format(amount), cents)
    return "%s,%02d €" % ("{:,}".format(amount).replace(",", "."), cents)


def zip_code(plus_four: bool) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        zip5 = "%05d" % rng.randint(1001, 99950)
        return zip5 + "-%04d" % rng.randint(1, 9999) if plus_four else zip5
    return generate


def isbn13(rng: Random, ordinal: int) -> str:
    group, publisher = str(rng.randint(0, 5)), str(rng.randint(10, 9999))
    title = random_string(rng, DIGITS, 9 - len(publisher))
    prefix = rng.choice(("978", "979"))
    check = isbn13_check_digit(prefix + group + publisher + title)
    return "%s-%s-%s-%s-%s" % (prefix, group, publisher, title, check)


def isbn10(rng: Random, ordinal: int) -> str:
    group, publisher = str(rng.randint(0, 5)), str(rng.randint(10, 9999))
    title = random_string(rng, DIGITS, 8 - len(publisher))
    return "%s-%s-%s-%s" % (group, publisher, title, isbn10_check_digit(group + publisher + title))


def percentage(rng: Random, ordinal: int) -> str:
    return "%d%%" % rng.randint(0, 100) if ordinal % 2 else "%.1f%%" % rng.uniform(0, 100)


def plain_integer(rng: Random, ordinal: int) -> str:
    return str(rng.randint(0, 10 ** rng.randint(1, 8) - 1))


def bare_number(digit_count: int) -> ValueGenerator:
    """Bare numbers that would be valid SSNs, NANP numbers or NHS numbers with context."""
    def generate(rng: Random, ordinal: int) -> str:
        if digit_count == 9:
            return "".join(valid_ssn_parts(rng) if ordinal % 2 else valid_itin_parts(rng))
        return "".join(nanp_parts(rng)) if ordinal % 2 else nhs_number(rng)
    return generate


def crypto_with_wrong_checksum(bech32: bool) -> ValueGenerator:
    """A valid address with one character after its prefix replaced."""
    def generate(rng: Random, ordinal: int) -> str:
        if bech32:
            address = segwit_format(ordinal % 2, 32 if ordinal % 2 else 20)(rng, ordinal)
            alphabet, prefix_length = BECH32_CHARSET, 4
        else:
            address = base58_address_format((0x00, 0x05)[ordinal % 2])(rng, ordinal)
            alphabet, prefix_length = BASE58, 1
        while True:
            i = rng.randrange(prefix_length, len(address))
            changed = address[:i] + rng.choice(alphabet.replace(address[i], "")) + address[i + 1:]
            if not is_valid_crypto(changed):
                return changed
    return generate


def dea_with_wrong_check(rng: Random, ordinal: int) -> str:
    valid = dea_format(DEA_FIRST_LETTERS, False)(rng, ordinal)
    return valid[:-1] + str((int(valid[-1]) + rng.randint(1, 9)) % 10)


def nanp_with_invalid_code(rng: Random, ordinal: int) -> str:
    area, exchange, line = nanp_parts(rng)
    if ordinal % 4 < 2:
        bad = rng.choice("01") + random_string(rng, DIGITS, 2)  # starts with 0 or 1
    else:
        bad = rng.choice("23456789") + "11"  # N11
    if ordinal % 2:
        area = bad
    else:
        exchange = bad
    return ("({}) {}-{}", "{}-{}-{}", "{}.{}.{}")[ordinal % 3].format(area, exchange, line)


def ipv4_out_of_range(rng: Random, ordinal: int) -> str:
    octets = [str(rng.randint(1, 255)) for _ in range(4)]
    octets[ordinal % 4] = str(rng.randint(256, 999))
    return ".".join(octets)


def nino_invalid(kind: str) -> ValueGenerator:
    """A NINO that breaks one rule, compact or in pairs (five or seven digits: compact)."""
    def generate(rng: Random, ordinal: int) -> str:
        prefix, digits, suffix = nino_prefix(rng), random_string(rng, DIGITS, 6), rng.choice(NINO_SUFFIXES)
        grouped_in_pairs = ordinal % 2 == 1
        if kind == "forbidden-prefix":
            prefix = (rng.choice(NINO_FORBIDDEN_PREFIXES + ("QQ",)),
                      rng.choice("DFIQUV") + rng.choice(NINO_SECOND_LETTERS),  # "DA...", "QQ..."
                      rng.choice(NINO_FIRST_LETTERS) + rng.choice("DFIOQUV"))[ordinal // 2 % 3]  # "AO..."
        elif kind == "bad-suffix":
            suffix = rng.choice(UPPER[4:])  # E-Z
        elif kind == "digit-count":
            digits, grouped_in_pairs = random_string(rng, DIGITS, rng.choice((5, 7))), False
        return nino_written(prefix, digits, suffix, grouped_in_pairs)
    return generate


def nino_without_context(kind: str) -> ValueGenerator:
    """A valid NINO in a form that counts only after a context word."""
    return {"compact": nino_format(False), "dashed": nino_typed_format("dashed"),
            "lowercase": lowercased(nino_format(False))}[kind]


def nif_invalid(kind: str) -> ValueGenerator:
    """A DNI that breaks one rule; never a valid identifier of another type (seven digits and a
    letter may be a PPSN), and with nine digits before its letter never nine that are a
    Portuguese tax number (after "NIF" they would be one)."""
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            value = draw(rng, ordinal)
            if not valid_as_national_ids(value) and not is_valid_pt_tax_id(re.sub(r"[^0-9]", "", value)):
                return value

    def draw(rng: Random, ordinal: int) -> str:
        digits = "%08d" % rng.randint(100000, 99999999)
        letter = dni_letter(digits)
        form = list(NIF_FORMS)[ordinal % len(NIF_FORMS)]
        if kind == "wrong-letter":
            letter = rng.choice(UPPER.replace(letter, ""))
        elif kind == "digit-count":  # seven or nine digits, with the letter of that number
            digits = digits[1:] if ordinal % 2 else digits + rng.choice(DIGITS)
            return NIF_FORMS[("compact", "dashed")[ordinal // 2 % 2]](digits, dni_letter(digits))
        elif kind == "lowercase":
            letter = letter.lower()
        return NIF_FORMS[form](digits, letter)
    return generate


def nie_invalid(kind: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        prefix, digits = "XYZ"[ordinal % 3], random_string(rng, DIGITS, 7)
        letter = nie_letter(prefix, digits)
        form = list(NIE_FORMS)[ordinal % len(NIE_FORMS)]
        if kind == "wrong-letter":
            letter = rng.choice(UPPER.replace(letter, ""))
        elif kind == "bad-first-letter":  # the check letter as for X
            prefix = rng.choice(UPPER.replace("X", "").replace("Y", "").replace("Z", ""))
            letter = dni_letter("0" + digits)
        elif kind == "digit-count":  # six or eight digits, with the letter of that number
            while True:
                digits = random_string(rng, DIGITS, rng.choice((6, 8)))
                letter = dni_letter(NIE_PREFIX_DIGITS[prefix] + digits)
                if not is_valid_nif(digits[-8:] + letter):  # nor a NIF inside "X12345678L"
                    break
        value = NIE_FORMS[form](prefix, digits, letter)
        return value.lower() if kind == "lowercase" else value
    return generate


def fiscal_code_invalid(kind: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        if kind == "bad-month":
            fifteen = fiscal_code_fifteen(rng, month_letter=rng.choice("FGIJKNOQUVWXYZ"))
        elif kind == "bad-day":
            day = rng.choice((0, rng.randint(32, 40), rng.randint(72, 99)))
            fifteen = fiscal_code_fifteen(rng, day=day)
        else:
            fifteen = fiscal_code_fifteen(rng, female=ordinal % 2 == 1)
        if kind == "all-digits-replaced":
            fifteen = with_omocodia(fifteen, FISCAL_CODE_DIGIT_POSITIONS)
        check = fiscal_code_check_letter(fifteen)
        if kind == "wrong-check":
            check = rng.choice(UPPER.replace(check, ""))
        value = fifteen + check
        return value.lower() if kind == "lowercase" else value
    return generate


def pesel_invalid(kind: str) -> ValueGenerator:
    """A PESEL with a wrong check digit or an impossible date; never a German tax id or a Belgian
    national number either."""
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            value = draw(rng, ordinal)
            if not valid_as_national_ids(value):
                return value

    def draw(rng: Random, ordinal: int) -> str:
        if kind == "wrong-check":
            valid = pesel_format(("born-1900s", "born-2000s")[ordinal % 2])(rng, ordinal)
            return valid[:10] + str((int(valid[10]) + rng.randint(1, 9)) % 10)
        year = rng.randint(0, 99)
        month, day = ((rng.choice((13, 19, 33, 53, 73, 93, 0)), rng.randint(1, 28)),  # no century has it
                      (rng.choice((2, 22)), rng.choice((30, 31))),  # 30 or 31 February
                      (rng.choice((4, 26, 49, 71)), 31),  # 31 April, June, September, November
                      (rng.choice((2, 42, 62, 82)), 29),  # 29 February 1900, 2100, 2200, 1800
                      (rng.choice((1, 21)), rng.choice((0, 32))))[ordinal % 5]
        if ordinal % 5 == 3:
            year = 0 if ordinal % 2 else rng.choice([y for y in range(1, 100) if y % 4])
        first_ten = "%02d%02d%02d" % (year, month, day) + random_string(rng, DIGITS, 4)
        return first_ten + pesel_check_digit(first_ten)
    return generate


def nif_without_context(kind: str) -> ValueGenerator:
    """A valid DNI in a form that counts only after a context word."""
    return nif_format("spaced") if kind == "spaced" else lowercased(nif_format("compact", "dashed"))


def nie_without_context(kind: str) -> ValueGenerator:
    """A valid NIE in a form that counts only after a context word."""
    return nie_format("spaced") if kind == "spaced" else lowercased(nie_format("compact"))


def pesel_without_context(rng: Random, ordinal: int) -> str:
    """A valid PESEL, which counts only after its word; never a German tax id or a Belgian
    national number either."""
    while True:
        value = pesel_format(("born-1900s", "born-2000s")[ordinal % 2])(rng, ordinal)
        if valid_as_national_ids(value) == {"PL_PESEL"}:
            return value


def fi_code_invalid(kind: str) -> ValueGenerator:
    """A Finnish code that breaks one rule; never a personnummer ("240565+0009", its individual
    number 000, is a samordningsnummer) or a CPR number ("131052-9003") either."""
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            value = draw(rng, ordinal)
            if not valid_as_national_ids(value):
                return value

    def draw(rng: Random, ordinal: int) -> str:
        sign = "-AYB+"[ordinal % 5]
        century = FI_CENTURY_SIGNS[sign]
        date = random_date(rng, century + (50 if century == 1800 else 0), min(century + 99, 2024))
        date_digits = "%02d%02d%02d" % (date.day, date.month, date.year % 100)
        number = rng.randint(2, 899)
        if kind == "bad-date":
            date_digits = rng.choice(("3002", "3102", "3104", "3106", "3109", "3111", "0003", "1513", "0100",
                                      "3200")) + date_digits[4:]
            if ordinal % 4 == 3:  # 29 February of a year that is not a leap year
                sign, date_digits = rng.choice((("-", "290201"), ("A", "290223"), ("-", "290299"), ("+", "290200"),
                                                ("A", "290219")))
        elif kind == "bad-individual-number":
            number = rng.choice((0, 1, rng.randint(900, 999)))
        elif kind == "unknown-century-sign":
            sign = rng.choice("GHJKLMNPQRSTZ")
        check = fi_check_character(date_digits + "%03d" % number)
        if kind == "wrong-check":
            check = rng.choice(FI_CHECK_CHARACTERS.replace(check, ""))
        return "%s%s%03d%s" % (date_digits, sign, number, check)
    return generate


def fi_code_dash_without_context(rng: Random, ordinal: int) -> str:
    """A valid code with '-' for its century, which counts only after a Finnish word; never a
    personnummer or a CPR number either."""
    while True:
        value = fi_code_format("-")(rng, ordinal)
        if valid_as_national_ids(value) == {"FI_PERSONAL_IDENTITY_CODE"}:
            return value


def fi_code_lowercase(rng: Random, ordinal: int) -> str:
    """A code with a letter (century sign or check character), in lowercase."""
    while True:
        value = fi_code_format("-AYB")(rng, ordinal + rng.randrange(4))
        if re.search("[A-Z]", value):
            return value.lower()


def nir_invalid(kind: str) -> ValueGenerator:
    """A NIR that breaks one rule, compact or grouped (with a digit too many or too few:
    compact); its digits no valid card number either."""
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            month = rng.choice(tuple(range(13, 20)) + tuple(range(43, 50))) if kind == "bad-month" else None
            first = nir_first_thirteen(rng, month=month)
            if kind == "bad-sex-digit":
                first = rng.choice("5690") + first[1:]
            elif kind == "order-000":
                first = first[:10] + "000"
            key = nir_key(first)
            if kind == "wrong-key":
                key = rng.choice(["%02d" % k for k in range(1, 98) if "%02d" % k != key])
            value = nir_written(first + key, ordinal % 2 == 1)
            if kind == "digit-count":  # a digit of the commune or order number more or less, key recomputed
                at = rng.randint(7, 12)
                first = first[:at] + rng.choice(DIGITS) + first[at:] if ordinal % 2 else first[:at] + first[at + 1:]
                value = first + nir_key(first[:13])
            if not is_valid_card(value.replace(" ", "")):
                return value
    return generate


def bsn_invalid(kind: str) -> ValueGenerator:
    """A BSN failing the elfproef (never a Portuguese tax number either), or all zeros."""
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            if kind == "all-zeros":  # passes the elfproef's sum, but is no number
                digits = "0" * 9
            else:
                valid = bsn_digits(rng, leading_zero=ordinal % 7 == 6)
                digits = valid[:8] + rng.choice(DIGITS.replace(valid[8], ""))
            value = bsn_written(digits, ordinal % 2 == 1)
            if not valid_as_national_ids(value):
                return value
    return generate


def bsn_without_context(kind: str) -> ValueGenerator:
    """A valid BSN, which counts only after a context word; never a Portuguese tax number."""
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            value = bsn_format(kind)(rng, ordinal)
            if valid_as_national_ids(value) == {"NL_BSN"}:
                return value
    return generate


SE_PIN_FORMS = ("dash", "plus", "twelve-dash", "twelve-digits", "ten-digits")


def se_pin_invalid(kind: str) -> ValueGenerator:
    """A personnummer with a wrong check digit or an impossible date (the Luhn digit right),
    in each written form; never a Finnish code, a CPR number or an Austrian number either."""
    def generate(rng: Random, ordinal: int) -> str:
        form = SE_PIN_FORMS[ordinal % len(SE_PIN_FORMS)]
        while True:
            if kind == "wrong-check":
                valid = se_pin_number(rng, form, coordination=ordinal % 5 == 4)
                value = valid[:-1] + rng.choice(DIGITS.replace(valid[-1], ""))
            else:
                year = rng.randint(*SE_PIN_FORM_YEARS[form])
                month, day = ((rng.choice((0, 13, 15, 19, 20, 31, 42, 99)), rng.randint(1, 28)),  # no month
                              (2, rng.choice((30, 31, 90, 91))),  # 30 or 31 February, or those + 60
                              (rng.choice((4, 6, 9, 11)), rng.choice((31, 91))),
                              (2, rng.choice((29, 89))),  # 29 February of a year that is not a leap year
                              (rng.randint(1, 12), rng.choice((0, 32, 45, 60, 92, 99))))[ordinal // 5 % 5]
                if day in (29, 89):
                    year = rng.choice([y for y in range(*SE_PIN_FORM_YEARS[form]) if y % 4])
                value = se_pin_from_parts(year, month, day, rng.randint(1, 999), form)
            if not valid_as_national_ids(value):
                return value
    return generate


def se_pin_without_context(kind: str) -> ValueGenerator:
    """A valid personnummer, which counts only after a context word; never a Finnish code, a
    CPR number or an Austrian number."""
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            value = se_pin_format(*{"ten-digits-dash": ("dash", "plus"),
                                    "twelve-digits": ("twelve-dash", "twelve-digits"),
                                    "ten-digits": ("ten-digits",)}[kind])(rng, ordinal)
            if valid_as_national_ids(value) == {"SE_PERSONAL_IDENTITY_NUMBER"}:
                return value
    return generate


def de_tax_id_invalid(kind: str) -> ValueGenerator:
    """A German tax id that breaks one rule (the check digit right but for "wrong-check"),
    compact or grouped; never a PESEL or a Belgian national number either."""
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            first_ten = de_tax_id_first_ten(rng, ("twice", "thrice")[ordinal // 2 % 2])
            if kind == "leading-zero":  # the repeated digit rule kept
                first_ten = "0" + first_ten[1:]
                if not de_tax_id_digits_valid(first_ten):
                    continue
            elif kind == "ten-different-digits":
                first_ten = "".join(rng.sample(DIGITS, 10))
            elif kind == "two-repeated-digits":  # two values twice each (or twice and three times)
                values = rng.sample(DIGITS, 8 if ordinal % 3 else 7)
                digits = values + [values[0], values[1]] + ([] if ordinal % 3 else [values[1]])
                rng.shuffle(digits)
                first_ten = "".join(digits)
            elif kind == "digit-thrice-in-a-row":  # three in a row (now and then a fourth elsewhere)
                values = rng.sample(DIGITS, 8 if ordinal % 3 else 7)
                rest = values[1:] + ([] if ordinal % 3 else [values[0]])
                rng.shuffle(rest)
                at = rng.randint(0, len(rest))
                first_ten = "".join(rest[:at]) + values[0] * 3 + "".join(rest[at:])
            if kind != "leading-zero" and first_ten[0] == "0":
                continue
            check = de_tax_id_check_digit(first_ten)
            if kind == "wrong-check":
                check = rng.choice(DIGITS.replace(check, ""))
            value = first_ten + check
            if not valid_as_national_ids(value):
                return de_tax_id_written(value, ordinal % 2 == 1)
    return generate


def de_tax_id_without_context(kind: str) -> ValueGenerator:
    """A valid German tax id, which counts only after a context word; never a PESEL or a
    Belgian national number either."""
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            digits = de_tax_id_number(rng, ("twice", "thrice")[ordinal % 2])
            if valid_as_national_ids(digits) == {"DE_TAX_ID"}:
                return de_tax_id_written(digits, kind == "grouped")
    return generate


def kvnr_invalid(kind: str) -> ValueGenerator:
    """A KVNR that breaks one rule: a wrong check digit, a lowercase letter, or seven or nine
    digits before its check digit (the check computed on them); never a DEA number either."""
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            value = kvnr_number(rng)
            if kind == "wrong-check":
                value = value[:-1] + rng.choice(DIGITS.replace(value[-1], ""))
            elif kind == "lowercase":
                value = value[0].lower() + value[1:]
            elif kind == "digit-count":
                digits = value[1:9][:-1] if ordinal % 2 else value[1:9] + rng.choice(DIGITS)
                value = value[0] + digits + kvnr_check_digit(value[0], digits)
            if not is_valid_kvnr(value) and not is_valid_dea(value):
                return value
    return generate


# The fourth batch's hard negatives: each breaks one rule of its type (or is a valid value
# without its word, or right after '+'), and is no valid identifier of another type either.

def national_id_negative(draw: Callable[[Random, int], str | None],
                         valid_as: frozenset = frozenset()) -> ValueGenerator:
    """draw() until it gives a value valid as exactly the types valid_as (none, for a value
    that breaks its rules) and, when it starts with '+', no phone number (a value right after
    '+' is its digits); draw() may give None to be called again."""
    def generate(rng: Random, ordinal: int) -> str:
        while True:
            value = draw(rng, ordinal)
            if (value is not None and valid_as_national_ids(value) == set(valid_as)
                    and not (value.startswith("+") and is_valid_phone(value))):
                return value
    return generate


def be_national_number_invalid(kind: str) -> ValueGenerator:
    """A Belgian national number that breaks one rule, its check digits right for the century
    of its year but for "wrong-check" (wrong for both), in each written form: "bad-month" (13-19
    or 33-39), "day-32", "february-30" (30 or 31 February, a BIS number's too),
    "february-29" (of a year that is not a leap year: 1900 for "00" with the check of the
    1900s), "serial-000-999"; "after-plus": a valid one right after '+', a phone number's
    digits."""
    forms = tuple(BE_NATIONAL_NUMBER_FORMS)

    def draw(rng: Random, ordinal: int) -> str | None:
        date = random_date(rng, 1930, 2024)
        year, month, day, serial = date.year, date.month, date.day, rng.randint(1, 998)
        if kind == "bad-month":
            month = rng.choice(tuple(range(13, 20)) + tuple(range(33, 40)))
        elif kind == "day-32":
            month, day = month + rng.choice(BE_MONTH_OFFSETS), 32
        elif kind == "february-30":
            month, day = 2 + rng.choice(BE_MONTH_OFFSETS), rng.choice((30, 31))
        elif kind == "february-29":
            year = rng.choice((1900, rng.choice([y for y in range(1930, 2025) if y % 4])))
            month, day = 2 + rng.choice(BE_MONTH_OFFSETS), 29
        elif kind == "serial-000-999":
            serial = rng.choice((0, 999))
        digits = be_national_number_from(year, month, day, serial)
        if kind == "wrong-check":
            right = {be_national_number_check(digits[:9], born_2000s) for born_2000s in (False, True)}
            digits = digits[:9] + rng.choice(["%02d" % c for c in range(100) if "%02d" % c not in right])
        if kind == "after-plus":
            return "+" + digits
        return BE_NATIONAL_NUMBER_FORMS[forms[ordinal % len(forms)]](digits)
    return national_id_negative(draw)


def be_national_number_without_context(kind: str) -> ValueGenerator:
    """A valid Belgian national number in a form that counts only after a context word:
    "compact", or "typed" (850730-033-28, 850730 033 28, 85 07 30 033 28, 85.07.30-033 28)."""
    def draw(rng: Random, ordinal: int) -> str:
        form = "compact" if kind == "compact" else BE_TYPED_FORMS[1:][ordinal % 4]
        return BE_NATIONAL_NUMBER_FORMS[form](be_national_number(rng, ("standard", "born-2000s")[ordinal // 4 % 2]))
    return national_id_negative(draw, frozenset({"BE_NATIONAL_NUMBER"}))


def be_date_like(kind: str) -> ValueGenerator:
    """A date YY.MM.DD followed by other numbers, as the eID form starts: "version" ("Version
    85.07.30-033", three digits after it and no check digits), "date-time" ("85.07.30 12:00")."""
    def generate(rng: Random, ordinal: int) -> str:
        date = random_date(rng, 1950, 2024)
        yymmdd = "%02d.%02d.%02d" % (date.year % 100, date.month, date.day)
        if kind == "version":
            return "%s%s-%03d" % (("Version ", "version ", "Versie ", "v")[ordinal % 4], yymmdd, rng.randint(1, 998))
        return "%s %02d:%02d" % (yymmdd, rng.randint(0, 23), rng.randint(0, 59))
    return generate


def ppsn_written(value: str, form: str) -> str:
    """"compact", "spaced" (a space before the letters) or "lowercase"."""
    at = len(value.rstrip(UPPER))
    if form == "spaced":
        return value[:at] + " " + value[at:]
    return value.lower() if form == "lowercase" else value


def ppsn_invalid(kind: str) -> ValueGenerator:
    """A PPSN that breaks one rule, compact, spaced or lowercase: "wrong-check", "digit-count"
    (six or eight digits), "bad-second-letter" (none of A, B, W, T, X, H: "6433435FZ", the check
    letter right without it), "company" (a company's "...H", the check right, "6433435IH");
    "after-plus": a valid one right after '+'."""
    def draw(rng: Random, ordinal: int) -> str:
        value = ppsn_number(rng, rng.choice(("", "", "A", "B", "W", "T", "X")))
        if kind == "wrong-check":
            value = value[:7] + rng.choice(PPSN_LETTERS.replace(value[7], "")) + value[8:]
        elif kind == "digit-count":
            value = value[1:] if ordinal % 2 else rng.choice(DIGITS) + value
        elif kind == "bad-second-letter":
            digits = random_string(rng, DIGITS, 7)
            value = digits + ppsn_check_letter(digits) + rng.choice("CDEFGIJKLMNOPQRSUVYZ")
        elif kind == "company":
            digits = random_string(rng, DIGITS, 7)
            value = digits + ppsn_check_letter(digits, PPSN_COMPANY_LETTER) + PPSN_COMPANY_LETTER
        elif kind == "after-plus":
            return "+" + value
        return ppsn_written(value, ("compact", "spaced", "lowercase")[ordinal % 3])
    return national_id_negative(draw)


def ppsn_without_context(kind: str) -> ValueGenerator:
    """A valid PPSN (one letter or two), "compact", "spaced" or "lowercase": it counts only
    after a context word ("part 6433435F")."""
    def draw(rng: Random, ordinal: int) -> str:
        return ppsn_written(ppsn_number(rng, ("", "A", "W", "B", "T")[ordinal % 5]), kind)
    return national_id_negative(draw, frozenset({"IE_PPSN"}))


def dk_cpr_invalid(kind: str) -> ValueGenerator:
    """A CPR number whose date does not exist, in each written form: "bad-date" (day 0 or 32,
    month 0 or 13+, 31 April, 30 February: "321062-5629"), "february-29" (of a year that is not
    a leap year in the seventh digit's century: "290223-1234", "290200-1234" 1900);
    "after-plus": a valid one right after '+'."""
    forms = tuple(DK_CPR_FORMS)

    def draw(rng: Random, ordinal: int) -> str | None:
        digits = dk_cpr_number(rng)
        if kind == "bad-date":
            day, month = int(digits[:2]), int(digits[2:4])
            day, month = rng.choice(((32, month), (0, month), (day, 13), (day, rng.randint(14, 99)), (day, 0),
                                     (31, rng.choice((4, 6, 9, 11))), (rng.choice((30, 31)), 2)))
            digits = "%02d%02d" % (day, month) + digits[4:]
        elif kind == "february-29":
            seventh, year = rng.randrange(10), rng.randint(0, 99)
            if date_exists(dk_cpr_century(seventh, year) + year, 2, 29):
                return None
            digits = "2902%02d%d%s" % (year, seventh, random_string(rng, DIGITS, 3))
        elif kind == "after-plus":
            return "+" + digits
        return DK_CPR_FORMS[forms[ordinal % len(forms)]](digits)
    return national_id_negative(draw)


def dk_cpr_without_context(kind: str) -> ValueGenerator:
    """A valid CPR number ("dash", "compact" or "spaced"), which counts only after its word."""
    def draw(rng: Random, ordinal: int) -> str:
        return DK_CPR_FORMS[kind](dk_cpr_number(rng, ("standard", "born-2000s")[ordinal % 2]))
    return national_id_negative(draw, frozenset({"DK_CPR"}))


# A valid CPR number that is no valid personnummer (nor any other type's): after "personnummer"
# (a Swedish word, none of the CPR number's) it is nothing.
dk_cpr_after_personnummer = national_id_negative(
    lambda rng, ordinal: DK_CPR_FORMS[("dash", "compact")[ordinal % 2]](dk_cpr_number(rng)), frozenset({"DK_CPR"}))


def at_svnr_invalid(kind: str) -> ValueGenerator:
    """An Austrian social insurance number that breaks one rule, e-card form or compact:
    "wrong-check", "leading-zero" (a serial starting with 0, the check digit of the rule),
    "check-ten" (a serial and date whose sum mod 11 is 10: any check digit is wrong);
    "after-plus": a valid one right after '+'."""
    def draw(rng: Random, ordinal: int) -> str | None:
        serial, six = str(rng.randint(100, 999)), at_svnr_six_digits(rng)
        if kind == "leading-zero":
            serial = "0" + serial[1:]
        check = at_svnr_check_digit(serial, six)
        if kind == "check-ten":
            if check is not None:
                return None
            check = rng.choice(DIGITS)
        elif check is None:
            return None
        elif kind == "wrong-check":
            check = rng.choice(DIGITS.replace(check, ""))
        digits = serial + check + six
        return "+" + digits if kind == "after-plus" else at_svnr_written(digits, ordinal % 2 == 0)
    return national_id_negative(draw)


def at_svnr_without_context(kind: str) -> ValueGenerator:
    """A valid Austrian number ("e-card" or "compact"), which counts only after its word."""
    def draw(rng: Random, ordinal: int) -> str:
        return at_svnr_written(at_svnr_number(rng), kind == "e-card")
    return national_id_negative(draw, frozenset({"AT_SOCIAL_INSURANCE_NUMBER"}))


PT_NOT_PERSONAL_PREFIXES = ("5", "6", "7", "8", "9", "40", "41", "42", "43", "44", "46", "47", "48", "49")


def pt_tax_id_invalid(kind: str) -> ValueGenerator:
    """A Portuguese tax number that is no person's, compact or spaced: "wrong-check",
    "company" (5-9 first, or 4 but 45, the check digit right: "501964843"), "digit-count" (eight
    or ten digits, compact); "after-plus": a valid one right after '+'."""
    def draw(rng: Random, ordinal: int) -> str:
        digits = pt_tax_id_number(rng, rng.choice(PT_PERSONAL_PREFIXES))
        if kind == "wrong-check":
            digits = digits[:8] + rng.choice(DIGITS.replace(digits[8], ""))
        elif kind == "company":
            digits = "501964843" if ordinal % 8 == 0 else pt_tax_id_number(rng, rng.choice(PT_NOT_PERSONAL_PREFIXES))
        elif kind == "digit-count":
            return digits[:8] if ordinal % 2 else digits + rng.choice(DIGITS)
        elif kind == "after-plus":
            return "+" + digits
        return pt_tax_id_written(digits, ordinal % 2 == 1)
    return national_id_negative(draw)


def pt_tax_id_without_context(kind: str) -> ValueGenerator:
    """A valid Portuguese tax number ("compact" or "spaced"), which counts only after its word."""
    def draw(rng: Random, ordinal: int) -> str:
        return pt_tax_id_written(pt_tax_id_number(rng, PT_PERSONAL_PREFIXES[ordinal % 4]), kind == "spaced")
    return national_id_negative(draw, frozenset({"PT_TAX_ID"}))


# The fifth batch's hard negatives (/tmp/mrz_vat_spec.md): each breaks one rule of an MRZ or a VAT
# number; alone it is no entity of any type, holds no context word, and no piece of it is valid as a
# national identifier or as either of the two types (context aside), so that no word a record puts
# near it makes it one (clean_negative).

IDENTIFIER_TYPES = NATIONAL_ID_TYPES + FIFTH_BATCH_TYPES


def clean_negative(value: str) -> bool:
    """The value alone on a line is no entity of any type, holds no context word, is no valid value
    of any type but SECRET (context aside), and no piece of it is valid as a national identifier or
    as either of the fifth batch's types (context aside)."""
    if any(word in value.lower() for word in ALL_CONTEXT_WORDS):
        return False
    if any(VALIDATORS[t](value) for t in ENTITY_TYPES if t != "SECRET"):
        return False
    data = b"\n" + value.encode() + b"\n"
    spans = candidates(data)
    return not findings(data, spans, strict=False) and not any(
        t in IDENTIFIER_TYPES and VALIDATORS[t](data[begin:end].decode("utf-8", "replace"))
        for types, begin, end in spans for t in types)


def fifth_batch_negative(draw: Callable[[Random, int], str | None]) -> ValueGenerator:
    """draw() until the value is clean (clean_negative); after 20 draws for the ordinal, for others
    at random (a country or a layout whose every draw fails is left for another)."""
    def generate(rng: Random, ordinal: int) -> str:
        attempt = 0
        while True:
            value = draw(rng, ordinal if attempt < 20 else rng.randrange(1000))
            attempt += 1
            if value is not None and clean_negative(value):
                return value
    return generate


def other_digit(rng: Random, digit: str) -> str:
    return rng.choice(DIGITS.replace(digit, ""))


def mrz_recomposed(lines: list[str]) -> list[str]:
    """The lines with the composite check recomputed (a TD1's, a TD3's or a TD2's)."""
    if len(lines) == 3:
        line1, line2, line3 = lines
        return [line1, line2[:29] + mrz_check_digit(line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29]), line3]
    line1, line2 = lines
    last = len(line2) - 1
    return [line1, line2[:last] + mrz_check_digit(line2[0:10] + line2[13:20] + line2[21:last])]


def mrz_invalid(kind: str) -> ValueGenerator:
    """A zone (TD3, TD2 or TD1 in turn) that breaks one rule, the other checks right:
    "wrong-composite"; "wrong-document-check", "wrong-date-check" (the composite recomputed);
    "bad-date" (month 13, day 32 or 31 February, its check and the composite recomputed);
    "line-length" (a passport's data line of 43 or 45); "name-line-alone" (a passport's first line
    or an identity card's name line); "td1-data-line-alone" (an identity card's second line, 30);
    "lowercase" (a letter of the data line, or the whole zone); "td1-first-letter" (an identity
    card's first line starting with another letter than I, A, C); "random-run" (44 or 36 of
    [A-Z0-9<]); "td1-without-line-3"."""
    def draw(rng: Random, ordinal: int) -> str | None:
        layout = ("td3", "td2", "td1")[ordinal % 3]
        if kind in ("td1-data-line-alone", "td1-first-letter", "td1-without-line-3"):
            layout = "td1"
        elif kind == "line-length":
            layout = "td3"
        lines = list(mrz_zone(rng, layout))
        td1 = layout == "td1"
        data_line = 1
        if kind == "wrong-composite":
            lines[data_line] = lines[data_line][:-1] + other_digit(rng, lines[data_line][-1])
        elif kind == "wrong-document-check":
            if td1:
                if lines[0][14] == "<":
                    return None
                lines[0] = lines[0][:14] + other_digit(rng, lines[0][14]) + lines[0][15:]
            else:
                lines[1] = lines[1][:9] + other_digit(rng, lines[1][9]) + lines[1][10:]
            lines = mrz_recomposed(lines)
        elif kind in ("wrong-date-check", "bad-date"):
            start = rng.choice((0, 8) if td1 else (13, 21))  # the birth or the expiry date
            date, check = lines[1][start:start + 6], lines[1][start + 6]
            if kind == "wrong-date-check":
                check = other_digit(rng, check)
            else:
                date = date[:2] + rng.choice(("13" + date[4:], date[2:4] + "32", "0231", "0230", "00" + date[4:]))
                check = mrz_check_digit(date)
            lines[1] = lines[1][:start] + date + check + lines[1][start + 7:]
            lines = mrz_recomposed(lines)
        elif kind == "line-length":
            at = rng.randint(28, 41)
            lines[1] = lines[1][:at] + lines[1][at + 1:] if ordinal % 2 else lines[1][:at] + "<" + lines[1][at:]
        elif kind == "name-line-alone":
            return lines[-1] if td1 else lines[0]
        elif kind == "td1-data-line-alone":
            return lines[1]
        elif kind == "lowercase":
            if ordinal % 2:
                return "\n".join(lines).lower()
            letters = [i for i, c in enumerate(lines[1]) if c in UPPER]
            if not letters:
                return None
            at = rng.choice(letters)
            lines[1] = lines[1][:at] + lines[1][at].lower() + lines[1][at + 1:]
        elif kind == "td1-first-letter":
            lines[0] = rng.choice("XPVDRTBE") + lines[0][1:]
        elif kind == "random-run":
            alphabet = UPPER + DIGITS + "<" * 10
            return random_string(rng, alphabet, rng.choice((44, 36)))
        elif kind == "td1-without-line-3":
            lines = lines[:2]
        return "\n".join(lines)
    return fifth_batch_negative(draw)


# VAT numbers: a word that ends in a claimed prefix, for a number glued to it ("CODE136695976").
VAT_GLUING_WORDS = {"DE": ("CODE", "NODE", "MODE", "ENCODE"), "SE": ("CASE", "BASE", "PHASE", "RELEASE"),
                    "IT": ("AUDIT", "LIMIT", "UNIT", "SUBMIT"), "AT": ("FORMAT", "FLAT", "STAT"),
                    "ES": ("NOTES", "FILES", "CODES"), "PT": ("SCRIPT", "RECEIPT"), "RO": ("MACRO", "METRO"),
                    "LT": ("DEFAULT", "RESULT"), "EE": ("FEE", "GUARANTEE"), "FI": ("WIFI",)}
VAT_UNCLAIMED_PREFIXES = ("XX", "US", "GB", "BG", "CZ", "LV", "XI")
# The character of the national part that its check is (a French number's key: its first two).
VAT_CHECK_POSITION = {"FR": 1, "IE": 7, "NL": 8}
FR_KEY_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def vat_rule_broken(rng: Random, ordinal: int) -> str:
    """A number that breaks a rule of its country other than the check, the check right: Belgium's
    first digit 2-9; a first digit 0 (Germany, Denmark, Malta, Slovenia, Portugal, Romania);
    Italy's province; Lithuania's eighth digit; the Netherlands' "B00"; Cyprus's "12"; Sweden's
    "02"; Spain's first letters K, L, M (the DNI's check, as python-stdnum takes them), and others
    not in the CIF's list."""
    digits = lambda n: random_string(rng, DIGITS, n)
    case = ordinal % 11
    if case == 0:
        first = rng.choice("23456789") + digits(7)
        return "BE" + first + "%02d" % (97 - int(first) % 97)
    if case == 1:
        first = "0" + digits(7)
        return "DE" + first + de_tax_id_check_digit(first)
    if case == 2:
        country = rng.choice(("DK", "MT", "SI"))
        for check in DIGITS:
            national = "0" + digits(6) + check
            rules = {"DK": weighted_sum(national, (2, 7, 6, 5, 4, 3, 2, 1)) % 11 == 0,
                     "MT": weighted_sum(national, (3, 4, 6, 7, 8, 9, 10, 1)) % 37 == 0,
                     "SI": si_vat_check_digit(national[:7]) == check}
            if rules[country]:
                return country + national
        return ""
    if case == 3:
        first = "0" + digits(7)
        return "PT" + first + pt_tax_id_check_digit(first)
    if case == 4:
        first = "0" + digits(rng.randint(5, 8))
        return "RO" + first + ro_vat_check_digit(first)
    if case == 5:
        first = digits(7) + rng.choice(["%03d" % p for p in range(122, 888)])
        return "IT" + first + luhn_check_digit(first)
    if case == 6:
        first = digits(7) + rng.choice("023456789")
        return "LT" + first + lt_vat_check_digit(first)
    if case == 7:
        return "NL" + bsn_digits(rng) + "B00"
    if case == 8:
        first = "12" + digits(6)
        return "CY" + first + cy_vat_check_letter(first)
    if case == 9:
        nine = "55" + digits(7)
        return "SE" + nine + luhn_check_digit(nine) + rng.choice(("02", "00", "10"))
    letter, seven = rng.choice("KLMIOT"), digits(7)
    return "ES" + letter + seven + (dni_letter(seven) if letter in "KLM" else luhn_check_digit(seven))


def vat_invalid(kind: str) -> ValueGenerator:
    """A VAT number that breaks one rule (compact, with a space after the prefix or in its country's
    groups, in turn): "wrong-check" (each country in turn); "digit-count" (a digit added or left
    out); "unclaimed-prefix" (XX, US, GB, BG, CZ, LV, XI and a national part valid for a claimed
    country); "lowercase-prefix"; "glued-to-word" ("CODE136695976"); "glued-to-digits" (a digit
    before or after it, or '.' or '-' and a digit after one that ends with a digit); "iban" (an IBAN
    failing its check, of a country whose IBAN holds no VAT number's reading either way);
    "sk-third-digit" (a Slovak birth number's shape: the third digit 0, 1, 5 or 6, divisible by 11);
    "fr-letter-key" (a French key with letters, the SIREN right); "ro-five-digits" (a Romanian CUI of
    five digits, its check right); "rule-broken" (vat_rule_broken)."""
    forms = ("compact", "prefix-space", "grouped")

    def draw(rng: Random, ordinal: int) -> str | None:
        country = VAT_COUNTRIES[ordinal % len(VAT_COUNTRIES)]
        form = forms[ordinal // len(VAT_COUNTRIES) % len(forms)]
        national = vat_national(rng, country)
        if kind == "wrong-check":
            at = VAT_CHECK_POSITION.get(country, len(national) - 1)
            alphabet = UPPER if national[at] in UPPER else DIGITS
            national = national[:at] + rng.choice(alphabet.replace(national[at], "")) + national[at + 1:]
            return None if vat_national_valid(country, national) else vat_written(country, national, form)
        if kind == "digit-count":
            positions = [i for i, c in enumerate(national) if c in DIGITS]
            at = rng.choice(positions)
            if ordinal % 2:
                national = national[:at] + national[at + 1:]
            else:
                national = national[:at] + rng.choice(DIGITS) + national[at:]
            return country + (" " if form == "prefix-space" else "") + national
        if kind == "unclaimed-prefix":
            national = vat_national(rng, rng.choice(("DE", "DK", "FR", "IT", "NL", "PL", "EE", "SK", "LU")))
            return VAT_UNCLAIMED_PREFIXES[ordinal % len(VAT_UNCLAIMED_PREFIXES)] + national
        if kind == "lowercase-prefix":
            return vat_written(country.lower(), national, "compact" if form == "grouped" else form)
        if kind == "glued-to-word":
            country = list(VAT_GLUING_WORDS)[ordinal % len(VAT_GLUING_WORDS)]
            return rng.choice(VAT_GLUING_WORDS[country]) + vat_national(rng, country)
        if kind == "glued-to-digits":
            # '.' or '-' and a digit continue only a number that ends with a digit
            # (/tmp/secrets_spec5.md part C: "IE1143711R-3" holds IE1143711R); one ending with a
            # letter has its digit glued on directly.
            value = vat_written(country, national, "compact")
            joint = rng.choice(".-") if value[-1] in DIGITS else ""
            return rng.choice((value + rng.choice(DIGITS), rng.choice(DIGITS) + value,
                               value + joint + rng.choice(DIGITS)))
        if kind == "iban":
            iban_country = ("DE", "AT", "FR", "IT", "ES", "NL")[ordinal % 6]
            iban = iban_from_bban(iban_country, random_bban(rng, iban_country))
            at = rng.choice([i for i, c in enumerate(iban) if i >= 2 and c in DIGITS])
            iban = iban[:at] + other_digit(rng, iban[at]) + iban[at + 1:]
            return group_in_fours(iban) if ordinal % 4 else iban
        if kind == "sk-third-digit":
            first = rng.choice("123456789") + rng.choice(DIGITS) + rng.choice("0156") + random_string(rng, DIGITS, 6)
            check = (-int(first) * 10) % 11
            return None if check == 10 else vat_written("SK", first + str(check), form)
        if kind == "fr-letter-key":
            siren = national[2:] if country == "FR" else vat_national(rng, "FR")[2:]
            key = rng.choice(FR_KEY_ALPHABET) + rng.choice(UPPER.replace("I", "").replace("O", ""))
            return "FR" + (key if ordinal % 2 else key[::-1]) + siren
        if kind == "ro-five-digits":
            first = rng.choice("123456789") + random_string(rng, DIGITS, 3)
            return "RO" + (" " if ordinal % 2 else "") + first + ro_vat_check_digit(first)
        return vat_rule_broken(rng, ordinal) or None
    return fifth_batch_negative(draw)


MRZ_NEGATIVE_KINDS = ("wrong-composite", "wrong-document-check", "wrong-date-check", "bad-date", "line-length",
                      "name-line-alone", "td1-data-line-alone", "lowercase", "td1-first-letter", "random-run",
                      "td1-without-line-3")
VAT_NEGATIVE_KINDS = ("wrong-check", "digit-count", "unclaimed-prefix", "lowercase-prefix", "glued-to-word",
                      "glued-to-digits", "iban", "sk-third-digit", "fr-letter-key", "ro-five-digits", "rule-broken")


# The secrets' hard negatives (specification of 2026-12-07). Their random parts hold no
# context word, as no hard-negative record may (drawn again until so).

def free_of_context_words(generate: ValueGenerator) -> ValueGenerator:
    def generate_free(rng: Random, ordinal: int) -> str:
        while True:
            value = generate(rng, ordinal)
            lowered = value.lower()
            if not any(word in lowered for word in ALL_CONTEXT_WORDS):
                return value
    return generate_free


def other_than(value: str, avoid: str, rng: Random, alphabet: str) -> str:
    """value unless it starts with avoid, else with its first character replaced."""
    while value.startswith(avoid):
        value = rng.choice(alphabet) + value[1:]
    return value


# Headers without "alg": a type alone, an object of other names, a key id.
JWT_HEADERS_WITHOUT_ALG = ({"typ": "JWT"}, {"foo": 1}, {"typ": "JWT", "cty": "JWT"}, {"kid": "key-7", "typ": "at+jwt"})


def jwt_invalid(kind: str) -> ValueGenerator:
    """"header-without-alg"; "two-segments" (no second '.': the negative sentences put no '.'
    after it, which would make it an unsecured token); "header-length-1-mod-4" (bytes added
    to a valid header); "payload-not-eyj" (base64url of random bytes, of a text, or a
    payload cut at its front); "fourth-segment" (one more ".segment" after the signature)."""
    def generate(rng: Random, ordinal: int) -> str:
        header = base64url(compact_json(jwt_header(rng, rng.choice(("HS256", "RS256", "ES256")))))
        payload = base64url(compact_json(jwt_claims(rng)))
        signature = other_than(base64url(rng.randbytes(32)), "eyJ", rng, BASE62)
        if kind == "header-without-alg":
            header = base64url(compact_json(dict(rng.choice(JWT_HEADERS_WITHOUT_ALG))))
        elif kind == "two-segments":
            return "%s.%s" % (header, payload)
        elif kind == "header-length-1-mod-4":
            header += random_string(rng, BASE64URL, (1 - len(header)) % 4)
        elif kind == "payload-not-eyj":
            payload = rng.choice((base64url(rng.randbytes(rng.randint(30, 90))),
                                  base64url(("session %d for %s" % (rng.randint(1, 9999), rng.choice(LAST_NAMES))
                                             ).encode()),
                                  payload[rng.randint(1, 8):]))
            payload = other_than(payload, "eyJ", rng, BASE62)
        elif kind == "fourth-segment":
            signature += "." + other_than(random_string(rng, BASE64URL, rng.randint(8, 43)), "eyJ", rng, BASE62)
        return "%s.%s.%s" % (header, payload, signature)
    return free_of_context_words(generate)


def mixed_placeholder(rng: Random, alphabet: str, length: int, distinct: int = 5) -> str:
    """length characters of only `distinct` (fewer than six) characters of the alphabet, the
    sharpest placeholder: only the placeholder rule rejects it."""
    chars = rng.sample(alphabet, distinct)
    return "".join(rng.choice(chars) for _ in range(length - distinct)) + "".join(chars)


def google_key_invalid(kind: str) -> ValueGenerator:
    """"34-characters" and "36-characters" after AIza; "prose": AIza in a phrase;
    "placeholder"."""
    def generate(rng: Random, ordinal: int) -> str:
        if kind in ("34-characters", "36-characters"):
            return "AIzaSy" + random_string(rng, BASE64URL, int(kind[:2]) - 2)
        if kind == "prose":
            return rng.choice(("keys starting with AIza", "the AIza prefix", "AIza-prefixed keys",
                               "an AIza… key", "AIzaSy and 33 more characters"))
        return rng.choice(("AIzaSy" + "X" * 33, "AIza" + "x" * 35, "AIza" + "0" * 35,
                           "AIza" + mixed_placeholder(rng, BASE64URL, 35)))
    return free_of_context_words(generate)


def stripe_key_invalid(kind: str) -> ValueGenerator:
    """"publishable" (pk_live_, pk_test_); "too-short" (fewer than 24); "unknown-mode"
    (sk_prod_); "placeholder"."""
    def generate(rng: Random, ordinal: int) -> str:
        if kind == "publishable":
            return rng.choice(("pk_live_", "pk_test_")) + rng.choice(("51", "")) + random_string(rng, BASE62, 22)
        if kind == "too-short":
            return rng.choice(("sk_live_", "sk_test_", "rk_live_")) + random_string(rng, BASE62, rng.randint(8, 23))
        if kind == "unknown-mode":
            return rng.choice(("sk_prod_", "sk_dev_", "rk_prod_")) + random_string(rng, BASE62, rng.choice((24, 99)))
        return rng.choice(("sk_live_" + "X" * 24, "sk_test_" + "x" * 24, "rk_live_" + "0" * 24,
                           rng.choice(("sk_live_", "sk_test_")) + mixed_placeholder(rng, BASE62, rng.choice((24, 99)))))
    return free_of_context_words(generate)


def gitlab_token_invalid(kind: str) -> ValueGenerator:
    """"too-short" (fewer than 20 after the prefix); "prose": glpat- in a phrase; "placeholder"."""
    def generate(rng: Random, ordinal: int) -> str:
        if kind == "too-short":
            prefix = rng.choice(("glpat-", "gldt-", "glrt-", "glptt-"))
            return prefix + random_string(rng, BASE64URL, rng.randint(8, 19))
        if kind == "prose":
            return rng.choice(("glpat- tokens", "a glpat-… token", "the glpat- prefix", "glpat-<your-token>",
                               "gldt- and glrt- prefixes"))
        return rng.choice(("glpat-" + "x" * 20, "glpat-" + "X" * 20, "gldt-" + "0" * 20,
                           rng.choice(("glpat-", "glrt-")) + mixed_placeholder(rng, BASE62, 20)))
    return free_of_context_words(generate)


def huggingface_token_invalid(kind: str) -> ValueGenerator:
    """"33-letters", "35-letters"; "digit" (one letter a digit); "lowercase" (identifiers such
    as hf_hub_download, 34 lowercase letters); "placeholder"."""
    def generate(rng: Random, ordinal: int) -> str:
        letters = UPPER + LOWER
        if kind in ("33-letters", "35-letters"):
            return "hf_" + random_string(rng, letters, int(kind[:2]))
        if kind == "digit":
            body = random_string(rng, letters, 34)
            at = rng.randrange(34)
            return "hf_" + body[:at] + rng.choice(DIGITS) + body[at + 1:]
        if kind == "lowercase":
            return rng.choice(("hf_hub_download", "hf_hub_url", "hf_transfer", "hf_api",
                               "hf_" + random_string(rng, LOWER, 34)))
        return rng.choice(("hf_" + "x" * 34, "hf_" + "xX" * 17, "hf_" + mixed_placeholder(rng, letters, 34)))
    return free_of_context_words(generate)


def npm_token_invalid(kind: str) -> ValueGenerator:
    """"35-characters", "37-characters"; "environment-name" (npm_config_cache,
    npm_package_version, ...); "placeholder"."""
    def generate(rng: Random, ordinal: int) -> str:
        if kind in ("35-characters", "37-characters"):
            return "npm_" + random_string(rng, BASE62, int(kind[:2]))
        if kind == "environment-name":
            return rng.choice(("npm_config_cache", "npm_package_version", "npm_config_registry",
                               "npm_lifecycle_event", "npm_package_name", "npm_execpath"))
        return rng.choice(("npm_" + "0" * 36, "npm_" + "x" * 36, "npm_" + mixed_placeholder(rng, BASE62, 36)))
    return free_of_context_words(generate)


def sendgrid_key_invalid(kind: str) -> ValueGenerator:
    """"segment-lengths": 21 or 23 then 43, 22 then 42 or 44; "placeholder" (four distinct
    characters, a digit among them: a placeholder whether or not the '.' counts)."""
    def generate(rng: Random, ordinal: int) -> str:
        if kind == "segment-lengths":
            first, second = rng.choice(((21, 43), (23, 43), (22, 42), (22, 44)))
            return "SG.%s.%s" % (random_string(rng, BASE64URL, first - 1) + rng.choice(DIGITS),
                                 random_string(rng, BASE64URL, second))
        chars = rng.sample(LOWER, 3) + [rng.choice(DIGITS)]
        return rng.choice(("SG." + "x" * 22 + "." + "x" * 43,
                           "SG.%s.%s" % ("".join(rng.choice(chars) for _ in range(21)) + chars[3],
                                         "".join(rng.choice(chars) for _ in range(43)))))
    return free_of_context_words(generate)


AZURE_ACCOUNT_NAMES = ("acmeprodstore", "devlogs01", "backupsweu", "mediaassets", "funcapp01")


def azure_key_invalid(kind: str) -> ValueGenerator:
    """"without-account-key": the 88 bytes alone (a bare base64 blob); "short-key": 84
    characters and "==" after AccountKey=; "account-name": a key-shaped value after
    AccountName=; "placeholder" after AccountKey=."""
    def generate(rng: Random, ordinal: int) -> str:
        connection = "DefaultEndpointsProtocol=https;AccountName=%s;AccountKey=%s;EndpointSuffix=core.windows.net"
        name = rng.choice(AZURE_ACCOUNT_NAMES)
        if kind == "without-account-key":
            return azure_storage_key(rng)
        if kind == "short-key":
            return connection % (name, azure_storage_key(rng)[:84] + "==")
        if kind == "account-name":
            return ("DefaultEndpointsProtocol=https;AccountName=%s;EndpointSuffix=core.windows.net"
                    % azure_storage_key(rng))
        return connection % (name, rng.choice(("A" * 86, "x" * 86, mixed_placeholder(rng, BASE64, 86))) + "==")
    return free_of_context_words(generate)


SECRET_NEGATIVE_KINDS = {
    "jwt_invalid": (jwt_invalid, ("header-without-alg", "two-segments", "header-length-1-mod-4", "payload-not-eyj",
                                  "fourth-segment")),
    "google_key_invalid": (google_key_invalid, ("34-characters", "36-characters", "prose", "placeholder")),
    "stripe_key_invalid": (stripe_key_invalid, ("publishable", "too-short", "unknown-mode", "placeholder")),
    "gitlab_token_invalid": (gitlab_token_invalid, ("too-short", "prose", "placeholder")),
    "huggingface_token_invalid": (huggingface_token_invalid, ("33-letters", "35-letters", "digit", "lowercase",
                                                              "placeholder")),
    "npm_token_invalid": (npm_token_invalid, ("35-characters", "37-characters", "environment-name", "placeholder")),
    "sendgrid_key_invalid": (sendgrid_key_invalid, ("segment-lengths", "placeholder")),
    "azure_key_invalid": (azure_key_invalid, ("without-account-key", "short-key", "account-name", "placeholder")),
}


# The hard negatives of the specification of 2026-12-07, night. Settings of a secret's name
# whose value is none (item 1), URLs whose password stands for one (item 2), a URL's user and
# the code hosts' SSH user (item 3), the older token types' placeholders (item 4). Each value is
# the whole line or URL; the sentences around it put white space (or a byte that ends a value)
# after it. Drawn again until free of context words.
SETTING_VARIABLES = ("DB_PASSWORD", "POSTGRES_PASSWORD", "API_TOKEN", "STRIPE_KEY", "APP_SECRET", "SMTP_PASSWORD")
BCRYPT_ALPHABET = "./" + UPPER + LOWER + DIGITS


def secret_setting_invalid(kind: str) -> ValueGenerator:
    """"stand-in": a variable, a template, a mask or the word itself as the value; "masked";
    "code-name": a name in code or a type, unquoted; "placeholder-text": your/here/example/
    replace/placeholder/dummy/redacted/xxx/***/...; "template": a value starting with '{' or
    "${"; "other-name": a name that does not end in a secret's word (max_tokens, passwordless,
    password_hash); "prose": "The password: must ..."; "comparison": '==', '===', '!=', '<>';
    "five-bytes": a password of 5 bytes."""
    def generate(rng: Random, ordinal: int) -> str:
        variable = rng.choice(SETTING_VARIABLES)
        password = secret_password(rng)
        if kind == "stand-in":
            choices = ("password=password", "\"password\": \"changeme\"", "PASSWORD=${DB_PASSWORD}",
                       "password: $DB_PASSWORD", "\"client_secret\": \"%(client_secret)s\"",
                       "DB_PASSWORD='{{db_password}}'", "\"token\": \"<TOKEN>\"", "api_key = '$%s'" % variable,
                       "%s=\"${%s}\"" % (variable, variable), "secret: [SECRET]", "\"passwd\": \"Passwd\"")
        elif kind == "masked":
            choices = ("\"password\": \"********\"", "password: xxxxxxxx", "DB_PASSWORD=" + "*" * rng.randint(6, 16),
                       "\"apiKey\": \"%s\"" % ("*" * rng.randint(8, 32)), "token: '%s'" % ("0" * rng.randint(6, 12)),
                       "client_secret = \"%s\"" % ("X" * rng.randint(6, 40)))
        elif kind == "code-name":
            choices = ("token: self.token", "api_key = settings.API_KEY", "password: string;",
                       "apiKey: process.env.API_KEY,", "secret = os.environ.get(\"APP_SECRET\")",
                       "password: req.body.password,", "client_secret=config.client_secret",
                       "accessKey: String", "token = request.headers.get(\"X-Token\")")
        elif kind == "placeholder-text":
            choices = ("\"apiKey\": \"your-api-key-here\"", "apiKey: \"<YOUR_KEY>\"", "api_key=REDACTED",
                       "token=sk_live_...", "SECRET_KEY=replace-me-with-a-long-random-string",
                       "\"password\": \"example-%s\"" % password, "OPENAI_API_KEY=sk-" + "X" * 48,
                       "STRIPE_SECRET_KEY=sk_test_" + "X" * 24, "password: dummy-%s" % password,
                       "GITHUB_TOKEN=ghp_" + "x" * 36, "db_password = \"%s...\"" % password[:4],
                       "\"secret\": \"PLACEHOLDER_%s\"" % variable, "api-key: <%s>" % password)
        elif kind == "template":
            choices = ("secret: {{ .Values.x }}", "password: {{ .Values.db.password }}", "api_key: ${API_KEY}",
                       "token: ${{ secrets.DEPLOY_TOKEN }}", "PASSWORD=${%s:-}" % variable,
                       "client_secret: {{ vault_client_secret }}")
        elif kind == "other-name":
            bcrypt = "$2b$12$" + random_string(rng, BCRYPT_ALPHABET, 53)
            choices = ("max_tokens: 128000", "passwordless: enabled", "\"password_hash\": \"%s\"" % bcrypt,
                       "tokenizer: bert-base-uncased", "password_min_length: 12", "token_ttl=3600s",
                       "secret_name: db-%s" % password, "\"api_key_id\": \"%s\"" % password,
                       "max_tokens=%d" % rng.choice((256, 4096, 128000)), "password_hash = \"%s\"" % bcrypt)
        elif kind == "prose":
            choices = ("The password: must be at least 12 characters long.", "Your new token: never share it.",
                       "Password: see the vault.", "Secret: we ship on Friday.",
                       "API key: ask the platform team.")
        elif kind == "comparison":
            choices = ("if password == \"%s\":" % password, "if (token === '%s') {" % password,
                       "assert api_key != \"%s\"" % password, "WHERE password <> '%s'" % password,
                       "return secret == '%s'" % password, "if [ \"$PASSWORD\" == \"%s\" ]; then" % password)
        else:  # "five-bytes"
            five = secret_password(rng, (5, 5))
            choices = ("password=%s" % five, "\"secret\": \"%s\"" % five, "DB_PASSWORD='%s'" % five,
                       "api_key: %s" % five)
        return choices[ordinal % len(choices)] if ordinal < len(choices) else rng.choice(choices)
    return free_of_context_words(generate)


def secret_setting_digits(rng: Random, ordinal: int) -> str:
    """A value of digits only ("token: 123456789"): none (which nine or ten digits could be
    after a context word of theirs, so it never shares a record with one)."""
    if ordinal == 0:
        return "token: 123456789"
    name = rng.choice(("token", "otp_secret", "pin_password", "api_key", "PASSCODE_PWD", "\"secret\""))
    digits = rng.choice("123456789") + random_string(rng, DIGITS, rng.randint(5, 11))
    return rng.choice(("%s: %s", "%s=%s", "%s = '%s'", "%s: \"%s\"")) % (name, digits)


def url_credentials_stand_in(kind: str) -> ValueGenerator:
    """"enclosed": ${ }, $( ), {{ }}, %( )s, { }, < >, [ ]; "variable": $ and an identifier;
    "masked": ***, xxxxxx; "stand-in-word": password, changeme, secret, ... The hosts after a
    password that ends in an address's byte have no dot (no e-mail reading of "password@host",
    which the rules leave)."""
    def generate(rng: Random, ordinal: int) -> str:
        if kind == "enclosed":
            choices = ("git clone https://gitlab-ci-token:${CI_JOB_TOKEN}@gitlab.com/g/app.git",
                       "postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@postgres:5432/app",
                       "redis://:$(REDIS_PASSWORD)@redis:6379", "https://<user>:<token>@github.com/o/r",
                       "mysql://root:{{db_password}}@db/app", "https://__token__:${PYPI_TOKEN}@upload.pypi.org/legacy/",
                       "amqp://guest:%(rabbit_password)s@rabbitmq:5672/",
                       "https://deploy:{password}@registry.example.com/v2/",
                       "mongodb://admin:[PASSWORD]@cluster0.ab1cd.mongodb.net/shop")
        elif kind == "variable":
            choices = ("redis://:$REDIS_PASSWORD@redis:6379/0", "postgres://app:$PGPASSWORD@postgres:5432/app",
                       "https://ci:$REGISTRY_TOKEN@registry:5000/v2/", "amqp://guest:$RABBITMQ_PASS@rabbitmq:5672/",
                       "https://__token__:$PYPI_TOKEN@pypi-mirror:8080/legacy/",
                       "mysql://root:$_ROOT_PW@mysql:3306/shop")
        elif kind == "masked":
            choices = ("https://admin:********@grafana.internal/", "postgres://app:***@db.internal:5432/app",
                       "https://deploy:xxxxxx@registry:5000/v2/", "mongodb+srv://admin:%s@cluster0.ab1cd.mongodb.net/"
                       % ("*" * rng.randint(3, 12)), "ftp://backup:XXXXXXXX@files:21/pub/")
        else:  # "stand-in-word"
            choices = ("postgres://user:password@localhost/db", "https://USERNAME:PASSWORD@localhost:8080/",
                       "mysql://root:changeme@mysql:3306/app", "amqp://guest:secret@rabbitmq:5672/",
                       "https://oauth2:PAT@gitlab/acme/app.git", "redis://:YourPassword@redis:6379/0",
                       "https://ci:your_token@registry:5000/v2/")
        return choices[ordinal % len(choices)] if ordinal < len(choices) else rng.choice(choices)
    return free_of_context_words(generate)


CODE_HOSTS = ("github.com", "gitlab.com", "bitbucket.org")
REPOSITORY_OWNERS = ("acme", "platform", "infra", "web-team", "data")


def email_not_address(kind: str) -> ValueGenerator:
    """"after-scheme": a user right after "://" (https://jane@bitbucket.org/...); "git-user":
    the code hosts' SSH user git@, in any case (git@github.com:org/repo.git, ssh://git@...)."""
    def generate(rng: Random, ordinal: int) -> str:
        first, last = email_name(rng)
        owner, repository = rng.choice(REPOSITORY_OWNERS), rng.choice(LAST_NAMES)
        if kind == "after-scheme":
            if ordinal % 2:  # a user part with '.', '-' or '+' (/tmp/secrets_spec4.md item 4)
                return rng.choice((
                    "https://%s.%s@dev.azure.com/%s/_git/%s" % (first, last, owner, repository),
                    "https://%s-%s@bitbucket.org/%s/%s" % (first, last, owner, repository),
                    "ssh://ci+%s@host.example.com/%s" % (first, repository),
                    "https://%s.%s+ci@%s/%s/%s.git" % (first, last, rng.choice(CODE_HOSTS), owner, repository)))
            return rng.choice((
                "https://%s@bitbucket.org/%s/%s.git" % (first, owner, repository),
                "ssh://deploy@build.internal/srv/%s" % repository,
                "https://%s@dev.azure.com/%s/_git/%s" % (first, owner, repository),
                "ftp://%s@files.example.net/pub/" % first,
                "https://%s@%s/%s/%s.git" % (first, rng.choice(CODE_HOSTS), owner, repository)))
        git = "GIT" if ordinal % 7 == 3 else ("Git" if ordinal % 7 == 5 else "git")
        return rng.choice(("%s@%s:%s/%s.git" % (git, rng.choice(CODE_HOSTS), owner, repository),
                           "ssh://%s@%s/%s/%s.git" % (git, rng.choice(CODE_HOSTS), owner, repository),
                           "%s@ssh.dev.azure.com:v3/%s/shop/%s" % (git, owner, repository)))
    return free_of_context_words(generate)


def token_placeholder(kind: str) -> ValueGenerator:
    """The older token types' documentation placeholders (fewer than six distinct characters
    after the prefix): the specification's ("sk-" and 48 X, "sk-proj-" and 60 x, AKIAXXXX...,
    "ghp_" and 36 x, "github_pat_" and 82 x, the zeros-and-x Slack token, "psk_proj_" and 66 x),
    and, every other one, five distinct characters of the type's alphabet."""
    def generate(rng: Random, ordinal: int) -> str:
        literal = ordinal % 2 == 0
        if kind == "openai-legacy":
            return "sk-" + ("X" * 48 if literal else mixed_placeholder(rng, BASE62, 48))
        if kind == "openai-project":
            return "sk-proj-" + ("x" * 60 if literal else mixed_placeholder(rng, BASE62, 60))
        if kind == "aws":
            return "AKIAXXXXXXXXXXXXXXXX" if literal else rng.choice(("AKIA", "ASIA")) + mixed_placeholder(
                rng, UPPER + "234567", 16)
        if kind == "github":
            return "ghp_" + "x" * 36 if literal else rng.choice(("ghp_", "gho_", "ghs_")) + mixed_placeholder(
                rng, BASE62, 36)
        if kind == "github-pat":
            return "github_pat_" + ("x" * 82 if literal else mixed_placeholder(rng, BASE62 + "_", 82))
        if kind == "slack":
            if literal:
                return "xoxb-000000000000-0000000000000-" + "x" * 24
            digits, letters = rng.sample("123456789", 2), rng.sample(LOWER, 2)
            group = lambda size: "".join(rng.choice(digits) for _ in range(size))
            return "xoxb-%s-%s-%s" % (group(12), group(13), "".join(rng.choice(letters) for _ in range(24)))
        return "psk_proj_" + "x" * 66 if literal else rng.choice(("psk_proj_", "psk_svc_", "psk_admin_")) + (
            mixed_placeholder(rng, BASE62, 66))
    return free_of_context_words(generate)


SETTING_NEGATIVE_KINDS = {
    "secret_setting_invalid": (secret_setting_invalid, ("stand-in", "masked", "code-name", "placeholder-text",
                                                        "template", "other-name", "prose", "comparison",
                                                        "five-bytes")),
    "url_credentials_stand_in": (url_credentials_stand_in, ("enclosed", "variable", "masked", "stand-in-word")),
    "email_not_address": (email_not_address, ("after-scheme", "git-user")),
    "token_placeholder": (token_placeholder, ("openai-legacy", "openai-project", "aws", "github", "github-pat",
                                              "slack", "policy-suite")),
}


# The hard negatives of the specification of 2026-12-07, late night: the eleven types' values of
# a wrong length, of another prefix or scheme, identifiers and prose, documentation placeholders,
# glued values and values of their shape where their rule does not look (a bare Azure key, sig=
# with no '?' or '&', "SharedAccessKeyName="), Slack app-level tokens' and Authorization headers'.
# They stand where no setting gives them (after a secret's name a value of another length is a
# SECRET: the positive format "near-miss-token"); a placeholder that a setting would hold is
# written with "xxx" or "<...>", which SECRET's rule rejects too. Drawn again until free of
# context words.

def groq_key_invalid(kind: str) -> ValueGenerator:
    """"51-characters", "53-characters"; "identifier": gsk_ in identifiers and prose (gsk_client,
    GSK_API_KEY_ENV); "placeholder"."""
    def generate(rng: Random, ordinal: int) -> str:
        if kind in ("51-characters", "53-characters"):
            return "gsk_" + random_string(rng, BASE62, int(kind[:2]))
        if kind == "identifier":
            return rng.choice(("gsk_client", "GSK_API_KEY_ENV", "gsk_client.chat.completions.create(model=m)",
                               "the gsk_ prefix", "gsk_live_keys_rotated", "keys that start with gsk_"))
        return rng.choice(("gsk_" + "x" * 52, "gsk_" + "X" * 52, "gsk_" + "0" * 52,
                           "gsk_" + mixed_placeholder(rng, BASE62, 52)))
    return free_of_context_words(generate)


def xai_key_invalid(kind: str) -> ValueGenerator:
    """"79-characters", "81-characters"; "package-or-model": xai-sdk, xai-grok-2, ...; "placeholder"."""
    def generate(rng: Random, ordinal: int) -> str:
        if kind in ("79-characters", "81-characters"):
            return "xai-" + random_string(rng, BASE62, int(kind[:2]))
        if kind == "package-or-model":
            return rng.choice(("xai-sdk", "xai-grok-2", "pip install xai-sdk", "model: xai-grok-2-1212",
                               "xai-org/grok-1", "xai-grok-beta"))
        return rng.choice(("xai-" + "x" * 80, "xai-" + "X" * 80, "xai-" + mixed_placeholder(rng, BASE62, 80)))
    return free_of_context_words(generate)


def google_client_secret_invalid(kind: str) -> ValueGenerator:
    """"27-characters", "29-characters"; "run-of-30": 28 and "-x" (the run is 30 long);
    "placeholder"."""
    def generate(rng: Random, ordinal: int) -> str:
        if kind in ("27-characters", "29-characters"):
            return "GOCSPX-" + random_string(rng, BASE64URL, int(kind[:2]))
        if kind == "run-of-30":
            return "GOCSPX-" + random_string(rng, BASE64URL, 28) + "-" + rng.choice(BASE62)
        return rng.choice(("GOCSPX-" + "X" * 28, "GOCSPX-" + "x" * 28, "GOCSPX-<client-secret>",
                           "GOCSPX-" + mixed_placeholder(rng, BASE64URL, 28)))
    return free_of_context_words(generate)


def google_oauth_token_invalid(kind: str) -> ValueGenerator:
    """"too-short": fewer than 30 after "ya29."; "no-dot": ya29 without the dot, and in prose;
    "placeholder" ("ya29." and 30 x); "double-dot": ".." after fewer than 30."""
    def generate(rng: Random, ordinal: int) -> str:
        if kind == "too-short":
            return "ya29.a0" + random_string(rng, BASE64URL, rng.randint(12, 27))
        if kind == "no-dot":
            return rng.choice(("ya29" + "a0" + random_string(rng, BASE64URL, rng.randint(60, 160)),
                               "ya29-" + random_string(rng, BASE64URL, rng.randint(40, 80)),
                               "tokens that start with ya29 expire after an hour", "the ya29. prefix"))
        if kind == "placeholder":
            return rng.choice(("ya29." + "x" * 30, "ya29." + "X" * rng.randint(30, 160),
                               "ya29." + mixed_placeholder(rng, BASE64URL, rng.randint(30, 160))))
        return "ya29.a0%s..%s" % (random_string(rng, BASE64URL, rng.randint(8, 26)),
                                  random_string(rng, BASE64URL, rng.randint(40, 120)))
    return free_of_context_words(generate)


def pypi_token_invalid(kind: str) -> ValueGenerator:
    """"other-bytes": pypi- and another macaroon (pypi-AgEAAAA..., another location's);
    "too-short": fewer than 50 after the prefix; "identifier": pypi-upload, ...; "username-alone":
    __token__ without its password; "placeholder"."""
    def generate(rng: Random, ordinal: int) -> str:
        if kind == "other-bytes":
            return rng.choice(("pypi-AgEAAAA" + random_string(rng, BASE64URL, rng.randint(120, 200)),
                               "pypi-" + base64url(pypi_macaroon(rng, rng.choice((b"pypi.io", b"example.org")))),
                               "pypi-AgEIcHlwaS5jb20" + random_string(rng, BASE64URL, rng.randint(120, 200))))
        if kind == "too-short":
            return rng.choice(PYPI_TOKEN_PREFIXES) + random_string(rng, BASE64URL, rng.randint(10, 49))
        if kind == "identifier":
            return rng.choice(("pypi-upload", "pypi-publish", "pypa/gh-action-pypi-publish@release/v1",
                               "poetry config pypi-token.pypi", "pypi-mirror", "the pypi- prefix"))
        if kind == "username-alone":
            return rng.choice(("__token__", "username = __token__", "twine upload -u __token__ dist/*",
                               "TWINE_USERNAME=__token__"))
        return rng.choice((PYPI_TOKEN_PREFIXES[0] + "x" * 60, PYPI_TOKEN_PREFIXES[1] + "X" * 80,
                           rng.choice(PYPI_TOKEN_PREFIXES) + mixed_placeholder(rng, BASE64URL, rng.randint(50, 150))))
    return free_of_context_words(generate)


def docker_token_invalid(kind: str) -> ValueGenerator:
    """"26-characters", "28-characters"; "organization-token": dckr_oat_ (not claimed);
    "placeholder"."""
    def generate(rng: Random, ordinal: int) -> str:
        if kind in ("26-characters", "28-characters"):
            return "dckr_pat_" + random_string(rng, BASE64URL, int(kind[:2]))
        if kind == "organization-token":
            return "dckr_oat_" + random_string(rng, BASE64URL, 27)
        return rng.choice(("dckr_pat_" + "X" * 27, "dckr_pat_" + "x" * 27, "dckr_pat_" + mixed_placeholder(
            rng, BASE64URL, 27)))
    return free_of_context_words(generate)


def webhook_secret_invalid(kind: str) -> ValueGenerator:
    """"31-characters"; "89-characters"; "identifier": whsec_test, ...; "placeholder"."""
    def generate(rng: Random, ordinal: int) -> str:
        if kind == "31-characters":
            return "whsec_" + random_string(rng, BASE62, 31)
        if kind == "89-characters":
            return "whsec_" + random_string(rng, BASE64, 89)
        if kind == "identifier":
            return rng.choice(("whsec_test", "whsec_live", "whsec_", "the whsec_ prefix", "whsec_test_fixture"))
        return rng.choice(("whsec_" + "x" * 32, "whsec_" + "X" * 64, "whsec_" + "0" * 32,
                           "whsec_" + mixed_placeholder(rng, BASE62, rng.choice((32, 64)))))
    return free_of_context_words(generate)


def telegram_token_invalid(kind: str) -> ValueGenerator:
    """"id-length": an id of 7 or 11 digits; "after-colon-length": 34 or 36 after the colon;
    "not-aa": not "AA" after the colon (an id-like number and a hash, a ratio); "glued": after a
    word ("robot12345678:AA...") or a number's '.' or '-' ("v1.12345678:AA..."); "placeholder".
    Ids and numbers valid as no type on their own ("api.telegram.org" in the sentences holds "tel")."""
    def generate(rng: Random, ordinal: int) -> str:
        bot = "bot" if rng.random() < 0.4 else ""
        tail = random_string(rng, BASE64URL, 33)
        if kind == "id-length":
            return "%s%s:AA%s" % (bot, telegram_bot_id(rng, rng.choice((7, 11))), tail)
        if kind == "after-colon-length":
            return "%s%s:AA%s" % (bot, telegram_bot_id(rng), random_string(rng, BASE64URL, rng.choice((32, 34))))
        if kind == "not-aa":
            if rng.random() < 0.2:
                return rng.choice(("1920:1080", "16:9", "3600:1", "21:9"))
            head = (rng.choice(("AB", "Aa", "aA", "BA", "ZZ", "A_")) if rng.random() < 0.7
                    else random_string(rng, HEX, 2))
            return "%s%s:%s%s" % (bot, telegram_bot_id(rng), head, tail)
        if kind == "glued":
            return rng.choice(("robot", "mybot", "xbot", "v1.", "2-", "_")) + "%s:AA%s" % (telegram_bot_id(rng), tail)
        return "%s%s:AA%s" % (bot, telegram_bot_id(rng), rng.choice(("x" * 33, "A" * 33, mixed_placeholder(
            rng, BASE64URL, 33))))
    return free_of_context_words(generate)


SLACK_DOCUMENTATION_WEBHOOK = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"


def slack_webhook_invalid(kind: str) -> ValueGenerator:
    """"documentation-example": Slack's own and other placeholders; "services-alone": the URL
    without its parts; "api-slack": api.slack.com and slack.com URLs; "last-part-length": 23 or 25."""
    def generate(rng: Random, ordinal: int) -> str:
        team, channel = slack_workspace_id(rng, "T"), slack_workspace_id(rng, "B")
        if kind == "documentation-example":
            if ordinal % 2 == 0:
                return SLACK_DOCUMENTATION_WEBHOOK
            return rng.choice(("https://hooks.slack.com/services/TXXXXXXXX/BXXXXXXXX/XXXXXXXXXXXXXXXXXXXXXXXX",
                               "https://hooks.slack.com/services/%s/%s/%s" % (team, channel, "x" * 24),
                               "https://hooks.slack.com/services/%s/%s/%s" % (
                                   team, channel, mixed_placeholder(rng, BASE62, 24))))
        if kind == "services-alone":
            return rng.choice(("https://hooks.slack.com/services/", "https://hooks.slack.com/services/%s/" % team,
                               "https://hooks.slack.com/services/%s/%s/" % (team, channel),
                               "https://hooks.slack.com/workflows/%s/" % team, "${{ secrets.SLACK_WEBHOOK_URL }}"))
        if kind == "api-slack":
            return rng.choice(("https://api.slack.com/messaging/webhooks",
                               "https://api.slack.com/methods/chat.postMessage",
                               "https://slack.com/api/chat.postMessage", "https://api.slack.com/reference/block-kit",
                               "https://api.slack.com/services/%s/%s/%s" % (team, channel,
                                                                           random_string(rng, BASE62, 24))))
        return "https://hooks.slack.com/services/%s/%s/%s" % (team, channel,
                                                              random_string(rng, BASE62, rng.choice((23, 25))))
    return free_of_context_words(generate)


def azure_shared_key_invalid(kind: str) -> ValueGenerator:
    """"key-name": SharedAccessKeyName=RootManageSharedAccessKey and no key; "bare-key": the 44
    bytes alone; "placeholder" (x's or a template after SharedAccessKey=, which SECRET's rule
    rejects too); "account-key-44": 44 bytes after "AccountKey=" (a storage key has 88)."""
    def generate(rng: Random, ordinal: int) -> str:
        endpoint = "Endpoint=sb://%s.servicebus.windows.net/;" % rng.choice(("acme-orders", "events-ns", "billing-bus"))
        if kind == "key-name":
            return endpoint + "SharedAccessKeyName=" + rng.choice(("RootManageSharedAccessKey", "send-only", "listen"))
        if kind == "bare-key":
            return base64.b64encode(rng.randbytes(32)).decode()
        if kind == "placeholder":
            return endpoint + "SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=" + rng.choice((
                "x" * 43 + "=", "X" * 43 + "=", "<your-key>", "{{ servicebus_key }}", "${SERVICEBUS_KEY}"))
        return "DefaultEndpointsProtocol=https;AccountName=%s;AccountKey=%s;EndpointSuffix=core.windows.net" % (
            rng.choice(AZURE_ACCOUNT_NAMES), base64.b64encode(rng.randbytes(32)).decode())
    return free_of_context_words(generate)


def azure_sas_invalid(kind: str) -> ValueGenerator:
    """"other-length": a sig= of 64 hex digits (another service's) or of 42 characters decoded;
    "signature-param": signature= instead of sig=; "no-query": sig= with no '?' or '&' before it;
    "placeholder"; "stray-percent": another escape than %2B, %2F and %3D."""
    def generate(rng: Random, ordinal: int) -> str:
        signature = base64.b64encode(rng.randbytes(32)).decode()
        blob = "https://%s.blob.core.windows.net/%s?sv=2022-11-02&sr=b&sp=r&sig=" % (
            rng.choice(AZURE_ACCOUNT_NAMES), rng.choice(("reports/q3.pdf", "db/backup.tar.gz", "web/index.html")))
        if kind == "other-length":
            if rng.random() < 0.6:
                return "https://cdn.example.com/dl/report.pdf?expires=%s&sig=%s" % (sas_expiry(rng),
                                                                                  random_string(rng, HEX, 64))
            return blob + sas_escaped(random_string(rng, BASE64, 42) + "=", "upper")
        if kind == "signature-param":
            return rng.choice(("https://cdn.example.com/f.zip?signature=", "https://media.example.org/a.mp4?Signature=",
                               "https://files.example.net/x?sv=2022-11-02&signature=")
                              ) + sas_escaped(signature, "upper")
        if kind == "no-query":
            return "sig=" + sas_escaped(signature, rng.choice(("upper", "lower", "raw")))
        if kind == "placeholder":
            return blob + rng.choice(("X" * 43 + "%3D", "<signature>", "REDACTED",
                                      mixed_placeholder(rng, BASE62, 43) + "%3D"))
        escaped = sas_escaped(signature, "upper")
        cut = rng.randrange(1, 40)
        return blob + escaped[:cut] + rng.choice(("%25", "%20", "%2", "%3d%3D")) + escaped[cut:]
    return free_of_context_words(generate)


def slack_app_token_invalid(kind: str) -> ValueGenerator:
    """"63-hex"; "uppercase-hex"; "prose": xapp- in a phrase; "placeholder"."""
    def generate(rng: Random, ordinal: int) -> str:
        head = "xapp-1-%s-%s-" % (slack_workspace_id(rng, "A"), drawn_until(no_entity, lambda: rng.choice(
            "123456789") + random_string(rng, DIGITS, 12)))
        if kind == "63-hex":
            return head + random_string(rng, HEX, 63)
        if kind == "uppercase-hex":
            return head + random_string(rng, HEX, 64).upper()
        if kind == "prose":
            return rng.choice(("xapp- tokens", "an xapp-\u2026 token", "the xapp-1- prefix", "xapp-<app-token>"))
        return rng.choice(("xapp-1-A0000000000-0000000000000-" + "0" * 64, head + "0" * 64,
                           head + mixed_placeholder(rng, HEX, 64)))
    return free_of_context_words(generate)


def basic_of(text: str) -> str:
    return base64.b64encode(text.encode("latin-1")).decode()


def authorization_invalid(kind: str) -> ValueGenerator:
    """Authorization headers without credentials: "variable" ($TOKEN, ${API_TOKEN}, <token>, a
    template); "placeholder-word" (YOUR_API_TOKEN, ACCESS_TOKEN, REDACTED, "..."); "basic-no-colon"
    (dXNlcm5hbWU=, "username"); "basic-stand-in" (dXNlcjpwYXNzd29yZA==, "user:password");
    "basic-not-credentials" (no user, no password, not printable, not base64, too short);
    "scheme-alone" (a scheme and no value, null, digits, 7 bytes); "other-scheme" (Negotiate,
    Digest, WWW-Authenticate: Bearer realm=...); "prose" (authorization: required)."""
    def generate(rng: Random, ordinal: int) -> str:
        header = rng.choice(("Authorization: ", "authorization: ", "Proxy-Authorization: "))
        if kind == "variable":
            choices = ("Authorization: Bearer $TOKEN", "Authorization: Bearer ${API_TOKEN}",
                       "Authorization: Bearer <token>", "Authorization: Token {{ api_token }}",
                       "curl -H \"Authorization: Bearer $(gcloud auth print-access-token)\" "
                       "https://example.com/v1/jobs",
                       "Authorization: Basic <base64 of user:pass>", "headers={\"Authorization\": f\"Bearer {token}\"}",
                       "Authorization: Bearer <%= ENV['API_TOKEN'] %>", "-H 'Authorization: Bearer '\"$ACCESS_TOKEN\"")
        elif kind == "placeholder-word":
            choices = ("Authorization: Bearer YOUR_API_TOKEN", "Authorization: Bearer ACCESS_TOKEN",
                       "Authorization: Bearer your-token-here", "Authorization: Bearer " + "x" * rng.randint(16, 40),
                       "Authorization: Bearer REDACTED", "Authorization: Token example-token-%d" % rng.randint(1, 99),
                       "Authorization: Bearer eyJhbGciOi...", "Authorization: Bearer sk-...",
                       "Authorization: Bearer dummy-%s" % random_string(rng, HEX, 24),
                       header + "Bearer replace_with_%s" % random_string(rng, BASE62, 12))
        elif kind == "basic-no-colon":
            choices = ("Authorization: Basic dXNlcm5hbWU=", header + "Basic " + basic_of(rng.choice(BASIC_USERS)),
                       header + "Basic " + basic_of(random_string(rng, BASE62, rng.randint(8, 24))))
        elif kind == "basic-stand-in":
            user = rng.choice(BASIC_USERS)
            choices = ("Authorization: Basic dXNlcjpwYXNzd29yZA==",
                       *(header + "Basic " + basic_of("%s:%s" % (user, password)) for password in (
                           "changeme", "${DEPLOY_PASSWORD}", "$CI_TOKEN", "********", "<password>", "PASSWORD",
                           "secret", "{{ password }}")))
        elif kind == "basic-not-credentials":
            choices = (header + "Basic " + basic_of(":" + basic_password(rng)),
                       header + "Basic " + basic_of(rng.choice(BASIC_USERS) + ":"),
                       header + "Basic " + base64.b64encode(rng.randbytes(rng.randint(9, 30)) + b"\x00:\x01").decode(),
                       header + "Basic " + basic_of("%s:%s" % (rng.choice(BASIC_USERS), basic_password(rng))
                                                    ).rstrip("=") + "Q" * 5,
                       header + "Basic YTpi")
        elif kind == "scheme-alone":
            choices = ("Authorization: Bearer", "Authorization: Basic", "Authorization: Bearer null",
                       "Authorization: Bearer undefined", header + "Bearer " + random_string(rng, BASE62, 7),
                       header + "Token " + drawn_until(no_entity, lambda: rng.choice("123456789") + random_string(
                           rng, DIGITS, rng.randint(7, 12))))
        elif kind == "other-scheme":
            choices = ("Authorization: Negotiate YII" + base64.b64encode(rng.randbytes(rng.randint(60, 200))).decode(),
                       "WWW-Authenticate: Bearer realm=\"api\"",
                       "WWW-Authenticate: Bearer realm=\"example\", error=\"invalid_token\"",
                       "Proxy-Authenticate: Basic realm=\"proxy\"",
                       "Authorization: Digest username=\"admin\", realm=\"api\", nonce=\"%s\", uri=\"/v1/items\", "
                       "response=\"%s\"" % (random_string(rng, HEX, 32), random_string(rng, HEX, 32)))
        else:  # "prose"
            choices = ("authorization: required", "Authorization: see the README",
                       "The Authorization header is missing.",
                       "authorization: Bearer tokens expire after an hour", "Authorization: token-based, per user",
                       "Authorization = Bearer or Basic, both work")
        return choices[ordinal % len(choices)] if ordinal < len(choices) else rng.choice(choices)
    return free_of_context_words(generate)


LATE_SECRET_NEGATIVE_KINDS = {
    "groq_key_invalid": (groq_key_invalid, ("51-characters", "53-characters", "identifier", "placeholder")),
    "xai_key_invalid": (xai_key_invalid, ("79-characters", "81-characters", "package-or-model", "placeholder")),
    "google_client_secret_invalid": (google_client_secret_invalid, ("27-characters", "29-characters", "run-of-30",
                                                                    "placeholder")),
    "google_oauth_token_invalid": (google_oauth_token_invalid, ("too-short", "no-dot", "placeholder", "double-dot")),
    "pypi_token_invalid": (pypi_token_invalid, ("other-bytes", "too-short", "identifier", "username-alone",
                                                "placeholder")),
    "docker_token_invalid": (docker_token_invalid, ("26-characters", "28-characters", "organization-token",
                                                    "placeholder")),
    "webhook_secret_invalid": (webhook_secret_invalid, ("31-characters", "89-characters", "identifier",
                                                        "placeholder")),
    "slack_webhook_invalid": (slack_webhook_invalid, ("documentation-example", "services-alone", "api-slack",
                                                      "last-part-length")),
    "azure_shared_key_invalid": (azure_shared_key_invalid, ("key-name", "bare-key", "placeholder", "account-key-44")),
    "azure_sas_invalid": (azure_sas_invalid, ("other-length", "signature-param", "no-query", "placeholder",
                                              "stray-percent")),
    "slack_app_token_invalid": (slack_app_token_invalid, ("63-hex", "uppercase-hex", "prose", "placeholder")),
    "authorization_invalid": (authorization_invalid, ("variable", "placeholder-word", "basic-no-colon",
                                                      "basic-stand-in", "basic-not-credentials", "scheme-alone",
                                                      "other-scheme", "prose")),
}
# Their sentences may name Telegram's Bot API ("api.telegram.org" holds the phone word "tel").
TELEGRAM_NEGATIVE_KINDS = ("id-length", "after-colon-length", "not-aa", "glued", "placeholder")


@dataclass(frozen=True)
class NegativeVariant:
    category: str
    name: str
    generate: ValueGenerator
    # A type whose context words the variant's sentences may hold (its value fails the type's
    # rules even so); such a sentence never shares a record with a context-sensitive negative.
    context_type: str | None = None


# The hard negatives of /tmp/secrets_spec4.md: the ten types' values a character off, of another
# alphabet or prefix, identifiers and prose, placeholders; a national number right after '+'; a
# base64 certificate and a base64 key too short; "auth" settings that hold no credentials; ApiKey
# headers without them. Drawn again until free of context words.

def new_token_invalid(entity_type: str, kind: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        b62, hx = lambda n: random_string(rng, BASE62, n), lambda n: random_string(rng, HEX, n)
        if entity_type == "PERPLEXITY_API_KEY":
            if kind == "wrong-length":
                return "pplx-" + b62(rng.choice((47, 49)))
            if kind == "identifier":
                return rng.choice(("pplx-7b-online", "pplx-70b-chat", "the pplx- prefix", "pplx-api client",
                                   "llama-3-sonar-large-32k-online via pplx-api"))
            if kind == "wrong-alphabet":
                body = b62(48)
                return "pplx-" + body[:20] + "_" + body[21:]
            return "pplx-" + ("x" * 48 if ordinal % 2 else mixed_placeholder(rng, BASE62, 48))
        if entity_type == "REPLICATE_API_TOKEN":
            if kind == "wrong-length":
                return "r8_" + b62(rng.choice((36, 38)))
            if kind == "identifier":
                return rng.choice(("r8_token", "tokens start with r8_", "r8_api", "the r8_ prefix"))
            if kind == "wrong-alphabet":
                body = b62(37)
                return "r8_" + body[:15] + "." + body[16:]
            return "r8_" + ("X" * 37 if ordinal % 2 else mixed_placeholder(rng, BASE62, 37))
        if entity_type == "LANGSMITH_API_KEY":
            if kind == "wrong-length":
                return "lsv2_pt_%s_%s" % (hx(31), hx(10)) if ordinal % 2 else "lsv2_sk_%s_%s" % (hx(32), hx(9))
            if kind == "identifier":
                return rng.choice(("lsv2_%s_%s_%s" % (rng.choice(("xx", "ls", "ak")), hx(32), hx(10)),
                                   "lsv1_pt_%s_%s" % (hx(32), hx(10)), "lsv2_ keys", "lsv2_pt_ prefix"))
            if kind == "wrong-alphabet":
                return "lsv2_pt_%s_%s" % (hx(32).upper(), hx(10))
            return "lsv2_pt_" + "0" * 32 + "_" + "0" * 10
        if entity_type == "DATABRICKS_TOKEN":
            if kind == "wrong-length":
                return "dapi" + hx(rng.choice((31, 33)))
            if kind == "identifier":
                return rng.choice(("dapi_client", "the dapi prefix", "dapi" + random_string(rng, "abcdef", 32),
                                   "dapi%s-%d" % (hx(32), rng.randint(10, 99))))
            if kind == "wrong-alphabet":
                return "dapi" + hx(32).upper()
            return "dapi" + ("x" * 32 if ordinal % 2 else mixed_placeholder(rng, HEX, 32))
        if entity_type == "ATLASSIAN_API_TOKEN":
            if kind == "wrong-length":
                return "ATATT3xFfGF0" + random_string(rng, BASE64URL, rng.choice((170, 172))) + "=" + hx(8).upper()
            if kind == "identifier":
                return rng.choice(("ATATT3 tokens", "the ATATT3xFfGF0 prefix", "ATATT3_LEGACY"))
            if kind == "wrong-alphabet":
                body = random_string(rng, BASE64URL, 171)
                return "ATATT3xFfGF0" + body[:80] + "." + body[81:] + "=" + hx(8).upper()
            return "ATATT3" + "x" * 186
        if entity_type == "VAULT_TOKEN":
            if kind == "wrong-length":
                return ("hvs.CAESI" + random_string(rng, BASE64URL, 84) if ordinal % 2
                        else "hvb.AAAAAQ" + random_string(rng, BASE64URL, 131))
            if kind == "identifier":  # legacy tokens, not claimed
                return rng.choice(("s." + b62(24), "vault token s." + b62(24), "hvs. tokens", "b." + b62(24)))
            if kind == "wrong-alphabet":
                return "hvs." + random_string(rng, UPPER + LOWER, 95)  # no digit
            return "hvs." + ("x" * 95 if ordinal % 2 else mixed_placeholder(rng, BASE62, 95))
        if entity_type == "AZURE_CLIENT_SECRET":
            head = b62(3)
            if kind == "wrong-length":
                return head + rng.choice(DIGITS) + "Q~" + b62(30)
            if kind == "identifier":
                return head + rng.choice(UPPER + LOWER) + "Q~" + b62(34)
            if kind == "wrong-alphabet":
                return head + rng.choice(DIGITS) + "Q-" + b62(34)
            return head + rng.choice(DIGITS) + "Q~" + ("x" * 34 if ordinal % 2 else mixed_placeholder(rng, BASE62, 34))
        if entity_type == "DIGITALOCEAN_TOKEN":
            if kind == "wrong-length":
                return "dop_v1_" + hx(rng.choice((63, 65)))
            if kind == "identifier":
                return rng.choice(("dop_v2_" + hx(64), "dop_v1_ prefix", "doa_v1_" + hx(64)))
            if kind == "wrong-alphabet":
                return "dop_v1_" + hx(64).upper()
            return "dop_v1_" + ("0" * 64 if ordinal % 2 else mixed_placeholder(rng, HEX, 64))
        if entity_type == "POSTMAN_API_KEY":
            if kind == "wrong-length":
                return "PMAK-%s-%s" % ((hx(23), hx(34)) if ordinal % 2 else (hx(24), hx(33)))
            if kind == "identifier":
                return rng.choice(("PMAK- keys", "the PMAK prefix", "PMAK-%s" % hx(24)))
            if kind == "wrong-alphabet":
                return "PMAK-%s-%s" % (hx(24).upper(), hx(34).upper())
            return "PMAK-%s-%s" % ("x" * 24, "x" * 34)
        if kind == "wrong-length":
            return "glsa_%s_%s" % ((b62(31), hx(8)) if ordinal % 2 else (b62(32), hx(7)))
        if kind == "identifier":
            return rng.choice(("glsa_ tokens", "the glsa_ prefix", "glsa_token_rotation"))
        if kind == "wrong-alphabet":
            return "glsa_%s_%s" % (b62(32), hx(8).upper() if ordinal % 2 else random_string(rng, "ghijklmnop", 8))
        return "glsa_%s_%s" % ("x" * 32 if ordinal % 2 else mixed_placeholder(rng, BASE62, 32), hx(8))
    return free_of_context_words(generate)


NEW_TOKEN_TYPES = ("PERPLEXITY_API_KEY", "REPLICATE_API_TOKEN", "LANGSMITH_API_KEY", "DATABRICKS_TOKEN",
                   "ATLASSIAN_API_TOKEN", "VAULT_TOKEN", "AZURE_CLIENT_SECRET", "DIGITALOCEAN_TOKEN",
                   "POSTMAN_API_KEY", "GRAFANA_TOKEN")
NEW_TOKEN_NEGATIVE_KINDS = ("wrong-length", "identifier", "wrong-alphabet", "placeholder")


def phone_after_plus(rng: Random, ordinal: int) -> str:
    """A national number with its trunk prefix right after '+' (no calling code starts with 0)."""
    return "+0" + rng.choice("123456789") + random_string(rng, DIGITS, rng.randint(8, 10))


def certificate_pem(rng: Random) -> str:
    body = base64.b64encode(b"\x30\x82\x03\x1d\x30\x82\x02\x05\xa0\x03\x02\x01\x02\x02\x14" + rng.randbytes(rng.randint(500, 800))).decode()
    return "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % "\n".join(
        body[i:i + 64] for i in range(0, len(body), 64))


def private_key_invalid(kind: str) -> ValueGenerator:
    """"base64-certificate": a tls.crt's value (base64 of a certificate), whole or cut;
    "base64-too-short": base64 of a key's header and fewer than 16 characters of key;
    "cut-too-short": a header and a line of fewer than 16 base64 characters."""
    def generate(rng: Random, ordinal: int) -> str:
        if kind == "base64-certificate":
            encoded = base64.b64encode(certificate_pem(rng).encode()).decode()
            return encoded if ordinal % 2 else encoded[:rng.randint(60, 400)]
        label = rng.choice(("RSA ", "EC ", "", "OPENSSH "))
        short = random_string(rng, BASE64, rng.randint(4, 15))
        if kind == "base64-too-short":
            return base64.b64encode(("-----BEGIN %sPRIVATE KEY-----\n%s" % (label, short)).encode()).decode()
        return "-----BEGIN %sPRIVATE KEY-----\n%s" % (label, short)
    return free_of_context_words(generate)


def auth_setting_invalid(rng: Random, ordinal: int) -> str:
    """Settings named "...auth" that hold no credentials."""
    choices = ("\"auth\": \"dXNlcm5hbWU=\"", "auth: required", "oauth: oauth2client",
               "\"auth\": \"dXNlcjpwYXNzd29yZA==\"", "\"auth\": \"%s\"" % basic_of(rng.choice(BASIC_USERS)),
               "basic_auth=%s" % basic_of("%s:changeme" % rng.choice(BASIC_USERS)), "\"auth\": \"\"",
               "proxy_auth: ${PROXY_AUTH}", "\"auth\": \"%s\"" % basic_of(":" + basic_password(rng)))
    return choices[ordinal % len(choices)] if ordinal < len(choices) else rng.choice(choices)


def apikey_header_invalid(rng: Random, ordinal: int) -> str:
    choices = ("Authorization: ApiKey dXNlcm5hbWU=", "Authorization: ApiKey <base64 of id:api_key>",
               "Authorization: ApiKey ${ES_API_KEY}", "Authorization: ApiKey " + basic_of(random_string(rng, BASE64URL, 20)),
               "'Authorization' => 'Bearer ' . $token,", "'Authorization' => \"Bearer {$token}\"")
    return choices[ordinal % len(choices)] if ordinal < len(choices) else rng.choice(choices)


# The hard negatives of /tmp/secrets_spec5.md. Part A: a secret's name in a call or a subscript whose
# value is none (empty, a stand-in, a scheme and no credentials, unquoted, one argument, a
# comparison, too short, a placeholder) and lists of field names ("password", "api_key", "token"),
# whose second name is no value (no digit nor symbol in it). Part B: Discord bot tokens breaking one
# rule. Drawn again until free of context words.

def secret_call_invalid(kind: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        variable, password = rng.choice(SETTING_VARIABLES), secret_password(rng)
        if kind == "empty":
            choices = ("get(\"password\", \"\")", "os.getenv(\"DB_PASSWORD\", \"\")", "config.get('api_key', '')",
                       "ENV.fetch(\"%s\", \"\")" % variable, "headers.put(\"X-Api-Key\", \"\");",
                       "req.Header.Set(\"Authorization\", \"\")")
        elif kind == "stand-in":
            choices = ("getenv(\"DB_PASSWORD\", \"changeme\")", "os.environ.get(\"API_TOKEN\", \"${API_TOKEN}\")",
                       "ENV.fetch(\"APP_SECRET\", \"<secret>\")", "config.get('password', 'password')",
                       "os.Setenv(\"%s\", \"$%s\")" % (variable, variable), "define( 'DB_PASSWORD', '********' );",
                       "System.setProperty(\"db.password\", \"{{db_password}}\");")
        elif kind == "scheme-only":
            choices = ("Header.Set(\"Authorization\", \"Bearer \" + token)",
                       "headers.put(\"Authorization\", \"Basic \" + encoded);",
                       "xhr.setRequestHeader('Authorization', 'Bearer ' + localStorage.getItem('jwt'));",
                       "conn.setRequestProperty(\"Authorization\", \"Token \" + apiToken);",
                       "$headers['Authorization'] = 'Bearer ' . $token;")
        elif kind == "not-quoted":
            choices = ("(\"Authorization\", f\"Bearer {token}\")", "client.set(\"password\", password)",
                       "os.environ.setdefault(\"API_KEY\", api_key)", "req.Header.Set(\"Authorization\", authHeader)",
                       "headers.append('Authorization', `Bearer ${token}`);", "ENV[\"API_TOKEN\"] = token",
                       "config.put(\"clientSecret\", System.getenv(\"CLIENT_SECRET\"));")
        elif kind == "one-argument":
            choices = ("headers.get(\"Authorization\")", "os.getenv(\"DB_PASSWORD\")", "config.get('api_key')",
                       "token = request.headers[\"Authorization\"]", "del os.environ[\"AWS_SECRET_ACCESS_KEY\"]",
                       "if \"password\" in params:", "String secret = System.getenv(\"CLIENT_SECRET\");")
        elif kind == "comparison":
            choices = ("if params[\"password\"] == \"%s\":" % password,
                       "if (req.headers['x-api-key'] !== '%s') {" % password,
                       "assert os.environ[\"API_TOKEN\"] != \"%s\"" % password,
                       "return $_POST['password'] == '%s';" % password,
                       "if headers[\"Authorization\"] == \"Bearer %s\":" % random_string(rng, HEX, 32))
        elif kind == "short":
            short = secret_password(rng, (3, 5))
            choices = ("\"password\", \"%s\"" % short, "os.environ.setdefault(\"PIN_PASSWORD\", \"%s\")" % short,
                       "headers.set('X-Api-Key', '%s');" % short, "m[\"password\"] = \"%s\"" % short)
        elif kind == "placeholder":
            choices = ("Set(\"Authorization\", \"Bearer YOUR_TOKEN\")",
                       "headers.put(\"X-Api-Key\", \"your-api-key-here\");",
                       "os.environ.setdefault(\"OPENAI_API_KEY\", \"sk-...\")",
                       "define( 'DB_PASSWORD', 'example-%s' );" % password,
                       "req.Header.Set(\"Authorization\", \"Bearer <token>\")",
                       "app.config['SECRET_KEY'] = 'replace-me-%s'" % password)
        else:  # "field-list"
            choices = ("SENSITIVE = (\"password\", \"api_key\", \"token\")", "[\"token\", \"remember_me\"]",
                       "fields(\"password\", \"username\")",
                       "REDACTED_KEYS = ['password', 'secret', 'token', 'api_key']",
                       "params.require(:user).permit(\"email\", \"password\", \"password_confirmation\")",
                       "logger.filter_keys(\"access_token\", \"refresh_token\", \"id_token\")",
                       "const SECRET_FIELDS = new Set(['apiKey', 'clientSecret', 'privateKey']);")
        return choices[ordinal % len(choices)] if ordinal < len(choices) else rng.choice(choices)
    return free_of_context_words(generate)


SECRET_CALL_NEGATIVE_KINDS = ("empty", "stand-in", "scheme-only", "not-quoted", "one-argument", "comparison", "short",
                              "placeholder", "field-list")
# JWT-like headers of 17 to 20 bytes without "alg": a first segment "eyJ..." of a Discord token's length.
DISCORD_JWT_LIKE_HEADERS = ('{"typ":"JWT","v":1}', '{"kid":"a1b2c3d4"}', '{"cty":"JWT","z":0}', '{"typ":"at","kid":7}')
# Three digits whose base64 holds no digit (a no-digit token's user id is made of them), and the
# one or two digits of a user id's last, partial group likewise.
DISCORD_DIGIT_FREE_GROUPS = {size: tuple(g for g in ("%0*d" % (size, n) for n in range(10 ** size))
                                         if not any(c in DIGITS for c in base64url(g.encode())))
                             for size in (1, 2, 3)}


def discord_digit_free_user_id(rng: Random) -> str:
    """A user id of 17 to 20 digits, not starting with 0, whose base64url holds no digit."""
    length = rng.choice(DISCORD_USER_ID_LENGTHS)
    groups = [rng.choice([g for g in DISCORD_DIGIT_FREE_GROUPS[3] if g[0] != "0"])]
    groups += [rng.choice(DISCORD_DIGIT_FREE_GROUPS[3]) for _ in range(length // 3 - 1)]
    if length % 3:
        groups.append(rng.choice(DISCORD_DIGIT_FREE_GROUPS[length % 3]))
    return "".join(groups)


def discord_token_invalid(kind: str) -> ValueGenerator:
    """"not-digits": a user id with a letter in it, or a JWT-like header ("eyJ...", no "alg");
    "id-length": 16 or 21 digits; "leading-zero": a user id starting with 0; "timestamp-length": 5 or
    7; "hmac-length": 26 or 39; "no-digit": no digit anywhere; "glued": a word before it, or more of
    its alphabet or a fourth segment after a 38-character HMAC; "placeholder": an HMAC of fewer than
    six distinct characters."""
    def generate(rng: Random, ordinal: int) -> str:
        user_id = discord_user_id_digits(rng, rng.choice(DISCORD_USER_ID_LENGTHS))
        stamp, length = discord_timestamp(rng), rng.choice((27, 38))
        mac = random_string(rng, BASE64URL, length)
        if kind == "not-digits":
            if ordinal % 2:
                return "%s.%s.%s" % (base64url(rng.choice(DISCORD_JWT_LIKE_HEADERS).encode()), stamp, mac)
            at = rng.randrange(1, len(user_id))
            return discord_token_of(user_id[:at] + rng.choice(UPPER + LOWER) + user_id[at + 1:], stamp, mac)
        if kind == "id-length":
            return discord_token_of(discord_user_id_digits(rng, 16 if ordinal % 2 else 21), stamp, mac)
        if kind == "leading-zero":
            return discord_token_of("0" + user_id[1:], stamp, mac)
        if kind == "timestamp-length":
            return discord_token_of(user_id, stamp[:5] if ordinal % 2 else stamp + rng.choice(BASE64URL), mac)
        if kind == "hmac-length":
            return discord_token_of(user_id, stamp, random_string(rng, BASE64URL, 26 if ordinal % 2 else 39))
        if kind == "no-digit":
            letters = UPPER + LOWER + "_-"
            return discord_token_of(discord_digit_free_user_id(rng), random_string(rng, letters, 6),
                                    random_string(rng, letters, length))
        if kind == "glued":
            token = discord_token_of(user_id, stamp, random_string(rng, BASE64URL, 38))
            if ordinal % 2:
                return rng.choice(("bot", "Bot", "token", "x", "id-", "bot_")) + token
            return token + rng.choice(("_old", "-v2", "x", ".bak", ".sig", "Q"))
        return discord_token_of(user_id, stamp,
                                "x" * length if ordinal % 2 else mixed_placeholder(rng, BASE64URL, length))
    return free_of_context_words(generate)


DISCORD_NEGATIVE_KINDS = ("not-digits", "id-length", "leading-zero", "timestamp-length", "hmac-length", "no-digit",
                          "glued", "placeholder")
SPEC5_NEGATIVE_VARIANTS = (
    *(NegativeVariant("secret_call_invalid", kind, secret_call_invalid(kind)) for kind in SECRET_CALL_NEGATIVE_KINDS),
    *(NegativeVariant("discord_token_invalid", kind, discord_token_invalid(kind)) for kind in DISCORD_NEGATIVE_KINDS),
)


# The hard negatives of /tmp/secrets_spec6.md: the specification's own (each written verbatim among
# them) and more that follow from its rules, form by form: ":=" giving a call, a field or a stand-in;
# "pass" names with a value of letters, names that end in "pass" inside a word or in another word;
# Jasypt's ENC(...) and "changeit" in every form; XML elements that are empty, spaced, broken by a
# line, with attributes or of another name; attribute pairs of another name, a stand-in, the wrong
# order or spaces around '='; long options with a variable, of another name or without a value; curl
# users with a short, a variable or no password; Discord webhook URLs breaking one rule. Each value
# holds what it says and nothing else the rules read (drawn again until free of context words).

def jasypt_value(rng: Random) -> str:
    """Jasypt's output: ENC( and the base64 of 24 to 48 bytes )."""
    return drawn_until(lambda v: not any(w in v.lower() for w in ALL_CONTEXT_WORDS),
                       lambda: "ENC(%s)" % base64.b64encode(rng.randbytes(rng.choice((24, 32, 48)))).decode())


def letters_only(rng: Random) -> str:
    """Six to twelve lowercase letters: a "pass" name's value that is none (no digit nor symbol)."""
    return drawn_until(lambda v: is_valid_secret(v) and not names_a_secret(v)
                       and not any(w in v for w in ALL_CONTEXT_WORDS),
                       lambda: random_string(rng, LOWER, rng.randint(6, 12)))


def spec6_setting_invalid(category: str, kind: str) -> ValueGenerator:
    def generate(rng: Random, ordinal: int) -> str:
        password = spec6_secret_value(rng, 0)
        if category == "colon_equals_invalid" and kind == "not-a-value":
            choices = ("password := os.Getenv(\"DB_PASSWORD\")", "token := req.Header.Get(\"X-Token\")",
                       "secret := cfg.Secret", "apiKey := viper.GetString(\"api_key\")",
                       "DB_PASSWORD := $(shell cat /run/secrets/db)", "password := \"\"",
                       "IdSMTP1.Password := EditPassword.Text;", "clientSecret := os.Args[1]")
        elif category == "colon_equals_invalid":  # "stand-in"
            choices = ("pwd := \"changeme\"", "password := \"${DB_PASSWORD}\"", "API_TOKEN := $(API_TOKEN)",
                       "secret := \"xxxxxxxx\"", "password := \"your-password-here\"", "token := \"<TOKEN>\"",
                       "ApiKey := '********';", "DB_PASSWORD := %s" % jasypt_value(rng))
        elif category == "pass_name_invalid" and kind == "no-digit-or-symbol":
            word = letters_only(rng)
            choices = ("\"pass\": \"passed\"", "pass: true", "pass=12", "\"pass\": \"failed\"",
                       "<smtpPass>%s</smtpPass>" % word, "<add key=\"SmtpPass\" value=\"%s\" />" % word,
                       "DB_PASS: \"%s\"" % word, "dbPass := \"%s\"" % word, "--db-pass '%s'" % word,
                       "{\"test\": \"login\", \"pass\": \"skipped\"}")
        elif category == "pass_name_invalid" and kind == "inside-a-word":
            choices = ("bypass=S3cret!1", "compass: N45W#1", "dbpass=%s" % password, "BYPASS=%s" % password,
                       "\"bypass\": \"%s\"" % password, "--bypass %s" % password, "<compass>N45W#1</compass>",
                       "mailpass := \"%s\"" % password)
        elif category == "pass_name_invalid":  # "other-end"
            choices = ("BYPASS_TOKEN_CHECK=1", "pass_rate: 98.5%", "passes: 12", "passed=41",
                       "pass_through: enabled", "PASS_COUNT=3", "<passThrough>yes-%s</passThrough>" % password,
                       "--pass-file /etc/ftp/pass.txt")
        elif category == "secret_stand_in_spec6" and kind == "jasypt":
            enc = "ENC(G6N718UuyPE5bHyWKyuLQSm02auQPUtm)" if ordinal < 2 else jasypt_value(rng)  # the specification's
            choices = ("<password>%s</password>" % enc, "password=%s" % enc,
                       "spring.datasource.password: \"%s\"" % enc, "<add key=\"Password\" value=\"%s\"/>" % enc,
                       "--password '%s'" % enc, "DB_PASSWORD := \"%s\"" % enc, "jdbc.password=%s" % enc,
                       "<property name=\"password\" value=\"%s\"/>" % enc)
        elif category == "secret_stand_in_spec6":  # "changeit"
            choices = ("keystore.password=changeit", "<password>changeit</password>",
                       "-Djavax.net.ssl.trustStorePassword=changeit", "\"truststorePassword\": \"changeit\"",
                       "<add key=\"KeystorePassword\" value=\"changeit\" />", "--keystore-password changeit",
                       "storePassword := \"changeit\"")
        elif category == "xml_element_invalid" and kind == "stand-in":
            choices = ("<password>${db.password}</password>", "<password>changeme</password>",
                       "<password>{COQLCE6DU6GtcS5P=}</password>", "<password>********</password>",
                       "<apiKey>{{ api_key }}</apiKey>", "<password>${env.NEXUS_PASSWORD}</password>",
                       "<token>REDACTED</token>", "<password>your-password-here</password>")
        elif category == "xml_element_invalid" and kind == "empty-or-spaced":
            choices = ("<password></password>", "<password> S3cret!1 </password>",
                       "<password>\n  %s\n</password>" % password, "<password/>",
                       "<password> %s</password>" % password, "<apiKey>\t%s\t</apiKey>" % password)
        elif category == "xml_element_invalid" and kind == "other-name":
            choices = ("<passwordPolicy>strict-12</passwordPolicy>", "<secretName>db-creds-7</secretName>",
                       "<passwordMinLength>12</passwordMinLength>", "<apiKeyHeader>X-Api-Key</apiKeyHeader>",
                       "<tokenEndpoint>https://auth.example.com/oauth/token</tokenEndpoint>",
                       "<passwordHash>%s</passwordHash>" % password, "<secretRef>%s</secretRef>" % password)
        elif category == "xml_element_invalid":  # "attributes"
            choices = ("<password encrypted=\"true\">%s</password>" % password,
                       "<password type=\"plain\">%s</password>" % password,
                       "<apiKey env=\"prod\">%s</apiKey>" % password, "<ns:token xsi:nil=\"false\">%s</ns:token>" % password)
        elif category == "xml_attribute_invalid" and kind == "stand-in":
            choices = ("<property name=\"password\" value=\"${db.password}\"/>",
                       "<add key=\"Password\" value=\"changeme\"/>", "<add key=\"ApiKey\" value=\"\" />",
                       "<add key=\"ClientSecret\" value=\"REPLACE_ME\" />",
                       "<property name=\"password\" value=\"%(db_password)s\"/>",
                       "<param name=\"apiToken\" value='{{ api_token }}'/>")
        elif category == "xml_attribute_invalid" and kind == "other-name":
            choices = ("<add key=\"PasswordMinLength\" value=\"12\"/>", "<add key=\"TokenLifetimeMinutes\" value=\"60\"/>",
                       "<add key=\"ApiKeyHeaderName\" value=\"X-Api-Key\"/>",
                       "<property name=\"passwordEncoder\" value=\"bcrypt-12\"/>",
                       "<add key=\"SecretStore\" value=\"%s\"/>" % password)
        elif category == "xml_attribute_invalid":  # "not-the-pair"
            choices = ("<add value=\"%s\" key=\"SmtpPassword\"/>" % password,
                       "<add key=\"SmtpPassword\" value = \"%s\"/>" % password,
                       "<add key=\"SmtpPassword\"value=\"%s\"/>" % password,
                       "<add key = \"ApiKey\" value=\"%s\"/>" % password,
                       "<property name=\"password\" ref=\"dbPasswordBean\"/>")
        elif category == "long_option_invalid" and kind == "variable":
            choices = ("--password $DB_PASSWORD", "--password \"$PW\"", "--token ${TOKEN}",
                       "--api-key \"${{ secrets.API_KEY }}\"", "--password \"$(cat /run/secrets/db)\"",
                       "mysql --password $MYSQL_PASSWORD shop", "--db-pass $(DB_PASS)")
        elif category == "long_option_invalid" and kind == "other-name":
            choices = ("--password-file /run/secrets/db", "docker login --username ci --password-stdin",
                       "--token-ttl 3600", "--api-key-header X-Api-Key", "--secret-name db-creds",
                       "--master-key-path /etc/keys/master.pem", "--passwordless")
        elif category == "long_option_invalid":  # "no-value"
            choices = ("--no-password", "--password --verbose", "--ask-pass", "--password ''",
                       "--password changeme", "--token abc12", "mysqldump --single-transaction --password")
        elif category == "curl_user_invalid" and kind == "short-or-stand-in":
            choices = ("curl -u admin:admin https://api.example.com/", "ssh -u alice:bob",
                       "curl -u ci:Ab3!x https://ci.example.com/", "curl -u deploy:changeme https://repo.example.com/",
                       "curl -u admin:password https://grafana.example.com/api/health")
        elif category == "curl_user_invalid" and kind == "variable":
            choices = ("curl -u $USER:$PASS https://api.example.com/", "curl -u \"$API_KEY:\" https://api.example.com/",
                       "curl -u \"jenkins:${JENKINS_TOKEN}\" https://ci.example.com/",
                       "curl --user \"$NEXUS_USER:$NEXUS_PASSWORD\" https://nexus.example.com/")
        else:  # curl_user_invalid, "no-password"
            choices = ("curl -u user: https://api.example.com/", "curl -u alice https://api.example.com/",
                       "curl --negotiate -u : https://intranet.example.com/", "curl -u \"deploy:\" -T app.zip "
                       "https://uploads.example.com/")
        return choices[ordinal % len(choices)] if ordinal < len(choices) else rng.choice(choices)
    return free_of_context_words(generate)


SPEC6_SETTING_NEGATIVE_KINDS = (
    ("colon_equals_invalid", ("not-a-value", "stand-in")),
    ("pass_name_invalid", ("no-digit-or-symbol", "inside-a-word", "other-end")),
    ("secret_stand_in_spec6", ("jasypt", "changeit")),
    ("xml_element_invalid", ("stand-in", "empty-or-spaced", "other-name", "attributes")),
    ("xml_attribute_invalid", ("stand-in", "other-name", "not-the-pair")),
    ("long_option_invalid", ("variable", "other-name", "no-value")),
    ("curl_user_invalid", ("short-or-stand-in", "variable", "no-password")),
)


def discord_webhook_invalid(kind: str) -> ValueGenerator:
    """"id-length": 16 or 21 digits; "token-length": 59 or 81 (a byte more of the token's alphabet voids
    it); "host": discord.gg or no /api/; "id-letters": "ID" and "TOKEN", templates; "placeholder": a
    token of xxx, your..., here; "api-version": /api/v100/."""
    def random_token(rng: Random, length: int) -> str:
        # No OpenAI key ("sk-" and 20 more) or xAI key inside a token the URL no longer covers.
        return drawn_until(lambda t: "sk-" not in t and "xai-" not in t,
                           lambda: random_string(rng, BASE64URL, length))

    def generate(rng: Random, ordinal: int) -> str:
        base = "https://%s/api/%swebhooks/" % (rng.choice(DISCORD_WEBHOOK_HOSTS), rng.choice(DISCORD_WEBHOOK_VERSIONS))
        snowflake, token = discord_webhook_id(rng, 19), random_token(rng, 68)
        if kind == "id-length":
            return base + "%s/%s" % (discord_user_id_digits(rng, 16 if ordinal % 2 else 21), token)
        if kind == "token-length":
            return base + "%s/%s" % (snowflake, random_token(rng, 59 if ordinal % 2 else 81))
        if kind == "host":
            return rng.choice(("https://discord.gg/api/webhooks/%s/%s" % (snowflake, token),
                               "https://discord.com/webhooks/%s/%s" % (snowflake, token),
                               "https://discord.gg/acme-dev"))
        if kind == "id-letters":
            return rng.choice(("https://discord.com/api/webhooks/ID/TOKEN", base + "ID/" + token,
                               "https://discord.com/api/webhooks/{webhook.id}/{webhook.token}",
                               base + "<id>/<token>", base + "{id}/{token}?wait=true"))
        if kind == "placeholder":
            return base + "%s/%s" % (snowflake, rng.choice((
                "x" * 68, "X" * 68, "your_webhook_token_" + random_string(rng, BASE64URL, 49),
                random_string(rng, BASE64URL, 30) + "-here-" + random_string(rng, BASE64URL, 32),
                random_string(rng, BASE64URL, 20) + "xxx" + random_string(rng, BASE64URL, 45))))
        return "https://discord.com/api/v%d/webhooks/%s/%s" % (rng.randint(100, 999), snowflake, token)
    return lambda rng, ordinal: drawn_until(clean_negative, lambda: generate(rng, ordinal))


# Lines of code and commands stand only in their own sentences, a value at the end of its line or
# before a space (a generic sentence's "{v}, merci" would glue a comma to a command's last value).
DISCORD_WEBHOOK_NEGATIVE_KINDS = ("id-length", "token-length", "host", "id-letters", "placeholder", "api-version")
SPEC6_NEGATIVE_VARIANTS = (
    *(NegativeVariant(category, kind, spec6_setting_invalid(category, kind))
      for category, kinds in SPEC6_SETTING_NEGATIVE_KINDS for kind in kinds),
    *(NegativeVariant("discord_webhook_invalid", kind, discord_webhook_invalid(kind))
      for kind in DISCORD_WEBHOOK_NEGATIVE_KINDS),
)


# The hard negatives of /tmp/secrets_spec7.md section 4, in the frames it names: a) versions in
# package.json dependency blocks, composer.json, Cargo.toml and pyproject.toml (under package names that
# end in a secret's name); b) code's unquoted dotted paths with a digit in a later part or '?.' (Python,
# JavaScript, TypeScript); c) paths of names (kubectl's --from-file, log lines, YAML, compose files,
# long options); d) crypt password hashes (bcrypt, sha512-crypt, argon2, yescrypt, md5-crypt, passlib's
# pbkdf2 and scrypt) under names ending in "password"; e) i18n catalogues in Japanese, Chinese, Russian,
# Korean and German (and the label words geheimnis, secreto, segreto), as JSON and Rails YAML; f) URL
# passwords that are a format's placeholder (%s, %v, {}) in Java, Go, Rust and Python format strings,
# the host none that an e-mail reading would take. Each drawn again until free of context words.
MANIFEST_SECRET_PACKAGES = ("jsonwebtoken", "csrf-token", "@octokit/auth-token", "passport-token", "secret-handshake",
                            "express-bearer-token", "rand-token", "generate-password", "secure-password",
                            "uuid-apikey", "random-token", "@types/jsonwebtoken")
MANIFEST_OTHER_PACKAGES = ("express", "pg", "dotenv", "axios", "zod", "helmet", "cors", "winston", "ioredis", "lodash",
                           "@nestjs/core", "uuid")
MANIFEST_PROJECTS = ("orders-api", "billing-service", "web-portal", "gateway", "notifier", "admin-ui")


def manifest_version(rng: Random, ordinal: int) -> str:
    """npm's and Cargo's ways: ^, ~, >=, = or v or none, two or three parts (or 'x'), now and then a
    pre-release or build after '-' or '+'."""
    major, minor, patch = rng.randint(0, 19), rng.randint(0, 30), rng.randint(0, 25)
    full, short = "%d.%d.%d" % (major, minor, patch), "%d.%d" % (major, minor)
    return rng.choice(("^" + full, "~" + full, full, ">=" + short, ">=" + full, "%d.x" % major, short + ".x",
                       "^%s-beta.%d" % (full, rng.randint(1, 9)), "~%s-rc.%d" % (full, rng.randint(1, 5)),
                       "%s+build.%d" % (full, rng.randint(1, 999)), "=" + full, "v" + full, "^" + short))


def package_manifest(rng: Random, ordinal: int) -> str:
    if ordinal < 5:  # the specification's own
        return ('"jsonwebtoken": "^9.0.2"', '"csrf-token": "~1.2.0"', '"@octokit/auth-token": "^4.0.0"',
                '"secret-handshake": ">=2.1"', '"passport-token": "1.x"')[ordinal]
    kind = ordinal % 5
    if kind == 3:  # Cargo.toml
        return "[dependencies]\njsonwebtoken = \"%s\"\nserde = { version = \"1.0.%d\", features = [\"derive\"] }\n" \
               "tokio = \"%s\"" % (rng.choice(("=9.3.0", "^9.3.0", "~9.2.1", "9.3.0-rc.1", ">=8.3")),
                                     rng.randint(150, 210), manifest_version(rng, ordinal))
    if kind == 4:  # pyproject.toml (Poetry)
        return "[tool.poetry.dependencies]\npython = \"^3.%d\"\ndjangorestframework-api-key = \"%s\"\n" \
               "pyjwt = \"%s\"" % (rng.randint(9, 12), manifest_version(rng, ordinal), manifest_version(rng, ordinal))
    if kind == 2:  # composer.json
        return "{\n    \"require\": {\n        \"php\": \"^8.%d\",\n        \"acme/csrf-token\": \"%s\",\n" \
               "        \"firebase/php-jwt\": \"%s\"\n    }\n}" % (rng.randint(1, 3), manifest_version(rng, ordinal),
                                                                   manifest_version(rng, ordinal))
    secrets = rng.sample(MANIFEST_SECRET_PACKAGES, rng.randint(2, 3))
    others = rng.sample(MANIFEST_OTHER_PACKAGES, rng.randint(1, 3))
    lines = ["    \"%s\": \"%s\"" % (name, manifest_version(rng, ordinal)) for name in sorted(secrets + others)]
    block = "{\n  \"name\": \"%s\",\n  \"version\": \"%d.%d.%d\",\n  \"private\": true,\n  \"dependencies\": {\n%s\n  }" % (
        rng.choice(MANIFEST_PROJECTS), rng.randint(0, 4), rng.randint(0, 20), rng.randint(0, 9), ",\n".join(lines))
    if kind == 1:
        block += ",\n  \"devDependencies\": {\n    \"@types/jsonwebtoken\": \"%s\",\n    \"typescript\": \"%s\"\n  }" % (
            manifest_version(rng, ordinal), manifest_version(rng, ordinal))
    return block + "\n}"


SPEC7_CODE_PATH_LINES = (
    "password = hashlib.sha256(raw.encode()).hexdigest()",
    "api_key = vault_client.secrets.kv.v2.read_secret_version(path=\"app\")",
    "const token = req.headers.authorization?.split(' ')[1];",
    "secret: self.configService.getApiKey,",
    "password = hashlib.sha512(salt + pw).hexdigest()",
    "token = session.credentials.token_v2",
    "const secret = cfg?.auth?.jwtSecret;",
    "private readonly token = this.tokens.v1.issue(user);",
    "const signingKey = keys.hmac256.current;",
    "password = crypto.pbkdf2Sync(pw, salt, 100000, 64, 'sha512')",
    "let accessToken = user?.session?.accessToken;",
    "api_key = settings.providers.v2.api_key",
    "secret = kms.v1.decrypt(blob)",
    "const apiKey = ctx.env?.keys?.v3Primary;",
)


def code_path_lines(rng: Random, ordinal: int) -> str:
    """One to three lines of Python, JavaScript or TypeScript assigning a dotted path (the first four
    the specification's own)."""
    if ordinal < 4:
        return SPEC7_CODE_PATH_LINES[ordinal]
    return "\n".join(rng.sample(SPEC7_CODE_PATH_LINES, rng.randint(1, 3)))


SPEC7_PATH_NAMES = ("db_password", "api-token", "token", "smtp_password", "signing-key", "client_secret", "master.key")
SPEC7_PATH_DIRS = ("secrets", "run/secrets", "var/run/secrets", "etc/app/secrets", "home/deploy/.config/app")


def path_of_names(rng: Random, ordinal: int) -> str:
    """kubectl's --from-file, vault and AWS secret paths in log lines and settings, compose files'
    secret files, YAML, long options: a '/' path of names (no digit), leading '/' or no capital."""
    if ordinal < 3:
        return ("kubectl create secret generic db-creds --from-file=password=./secrets/db_password.txt",
                "secret=prod/db/credentials", "secret: /var/run/secrets/token")[ordinal]
    name, folder = rng.choice(SPEC7_PATH_NAMES), rng.choice(SPEC7_PATH_DIRS)
    env, service = rng.choice(("prod", "staging", "dev")), rng.choice(("orders", "billing", "web", "reports"))
    return rng.choice((
        "kubectl create secret generic %s-creds --from-file=password=./secrets/%s.txt" % (service, name),
        "kubectl -n %s create secret generic api --from-file=token=/%s/%s" % (env, folder, name),
        "kubectl create secret generic %s --from-file=api_key=~/.config/%s/api_key" % (service, service),
        "INFO vault: reading secret=%s/%s/credentials" % (env, service),
        "level=info msg=\"fetched\" secret=kv/data/%s/%s" % (env, service),
        "secret: /%s/%s" % (folder, name),
        "services:\n  %s:\n    environment:\n      POSTGRES_PASSWORD: /run/secrets/postgres-password" % service,
        "api_key: ~/.config/%s/api_key" % service,
        "SECRET=%s/%s/db-credentials" % (env, service),
        "aws_secret = \"%s/%s/database\"" % (env, service),
        "./scripts/backup.sh --password ./secrets/%s.txt" % name,
        "token: /Users/runner/.config/gh/token",
        "VAULT_SECRET=secret/data/%s/%s" % (service, env),
    ))


BCRYPT_ALPHABET = "./" + UPPER + LOWER + DIGITS


def crypt_hash(rng: Random, kind: int, bcrypt: str = "2b") -> str:
    """bcrypt ($2a$, $2b$, $2y$), sha512-crypt and sha256-crypt (rounds or none), argon2id, yescrypt,
    md5-crypt, passlib's pbkdf2 and scrypt, their salts and digests in crypt's alphabet or base64."""
    b = lambda n: random_string(rng, BCRYPT_ALPHABET, n)
    b64 = lambda n: base64.b64encode(rng.randbytes(n)).decode().rstrip("=")
    if kind == 0:
        return "$%s$%02d$%s" % (bcrypt, rng.choice((10, 11, 12, 13)), b(53))
    if kind == 1:
        return "$6$%s%s$%s" % (rng.choice(("", "rounds=5000$", "rounds=656000$")), b(16), b(86))
    if kind == 2:
        return "$argon2id$v=19$m=65536,t=3,p=4$%s$%s" % (b64(16), b64(32))
    if kind == 3:
        return "$y$j9T$%s$%s" % (b(22), b(43))
    if kind == 4:
        return "$1$%s$%s" % (b(8), b(22))
    if kind == 5:
        return "$5$rounds=535000$%s$%s" % (b(16), b(43))
    if kind == 6:
        return "$pbkdf2-sha256$29000$%s$%s" % (b64(16).replace("+", "."), b64(32).replace("+", "."))
    return "$scrypt$ln=16,r=8,p=1$%s$%s" % (b64(16), b64(32))


def password_hash_setting(rng: Random, ordinal: int) -> str:
    """A crypt hash under a name ending in "password" (JSON user records, Ansible, PHP seeders, .env
    files, YAML), the specification's own two first."""
    if ordinal == 0:
        return "{\"hashed_password\": \"$2b$12$QZYIk9cOIPVgUUFqLqjEkkyxEiMQFySU/nD.Osn6Ny8yM5P9pF4xo\"}"
    if ordinal == 1:
        return "password: $6$rounds=5000$saltsalt$%s" % drawn_until(
            clean_negative, lambda: random_string(rng, BCRYPT_ALPHABET, 86))
    value = drawn_until(clean_negative, lambda: crypt_hash(rng, ordinal % 8, ("2a", "2b", "2y")[ordinal // 8 % 3]))
    return rng.choice((
        "{\"id\": 42, \"username\": \"ops\", \"hashed_password\": \"%s\"}" % value,
        "- name: Create the deploy user\n  ansible.builtin.user:\n    name: deploy\n    password: \"%s\"" % value,
        "'password' => '%s'," % value,
        "ADMIN_PASSWORD='%s'" % value,
        "users:\n  - name: admin\n    password: '%s'" % value,
        "\"passwordHash\": null, \"password\": \"%s\"" % value,
        "root_password = \"%s\"" % value,
    ))


# Section 4e: catalogues of UI labels. Values of letters only with a non-ASCII letter, or the label
# words; the other keys' values (names that are none, sentences with spaces) as a catalogue has them.
I18N_CATALOGUES = (
    ("ja", {"username": "ユーザー名", "password": "パスワード", "token": "トークン", "secret": "秘密鍵",
            "api_key": "APIキー", "access_token": "アクセストークン", "submit": "ログイン",
            "forgot_password": "パスワードをお忘れですか"}),
    ("zh", {"username": "用户名", "password": "密码", "confirm_password": "确认密码", "token": "令牌",
            "api_key": "API密钥", "secret": "密钥", "submit": "登录"}),
    ("ru", {"username": "Имя пользователя", "password": "Пароль", "token": "Токен", "secret": "Секрет",
            "new_password": "Новый пароль", "api_key": "КлючAPI", "submit": "Войти"}),
    ("ko", {"username": "사용자이름", "password": "비밀번호", "token": "토큰", "secret": "비밀키", "api_key": "API키",
            "access_token": "액세스토큰", "submit": "로그인"}),
    ("de", {"username": "Benutzername", "secret": "Geheimnis", "token": "Zugangsschlüssel",
            "api_key": "Schlüssel", "session_token": "Sitzungsschlüssel", "reset_password": "Passwort zurücksetzen",
            "submit": "Anmelden"}),
    ("es", {"username": "Usuario", "password": "Contraseña", "secret": "secreto", "submit": "Entrar"}),
    ("it", {"username": "Utente", "password": "Parola d'ordine", "secret": "segreto", "secret_key": "Segreto",
            "submit": "Accedi"}),
)


def i18n_catalogue(rng: Random, ordinal: int) -> str:
    """A JSON catalogue (flat or under "auth"), or Rails' YAML, of one language; the specification's
    own line first."""
    if ordinal == 0:
        return "{\"password\": \"パスワード\", \"token\": \"トークン\", \"secret\": \"秘密鍵\"}"
    language, labels = I18N_CATALOGUES[ordinal % len(I18N_CATALOGUES)]
    keys = sorted(rng.sample(sorted(labels), rng.randint(3, len(labels))), key=list(labels).index)
    if ordinal % 3 == 2:
        body = "\n".join("        %s: %s" % (key, labels[key]) for key in keys)
        return "%s:\n  activerecord:\n    attributes:\n      user:\n%s" % (language, body)
    pairs = ",\n".join("    \"%s\": \"%s\"" % (key, labels[key]) for key in keys)
    if ordinal % 3 == 1:
        return "locales/%s.json:\n{\n  \"auth\": {\n%s\n  }\n}" % (language, pairs)
    return "{\n%s\n}" % pairs.replace("    \"", "  \"")


SPEC7_FORMAT_URL_LINES = (
    "String url = String.format(\"jdbc:postgresql://%s:%s@%s:5432/%s\", user, pw, host, db);",
    "let url = format!(\"postgres://app:{}@localhost/app\", pw);",
    "engine = create_engine(\"mysql://root:%s@127.0.0.1/app\" % pw)",
    "dsn := fmt.Sprintf(\"postgres://%s:%v@%s:5432/%s\", user, pw, host, name)",
    "conn, err := amqp.Dial(fmt.Sprintf(\"amqp://guest:%v@rabbitmq:5672/\", pw))",
    "REDIS_URL = \"redis://:{}@cache:6379/0\".format(pw)",
    "log.info(\"connecting to postgresql://%s:%s@%s/%s\", user, pw, host, db)",
    "let uri = format!(\"mongodb://{}:{}@{}/{}\", user, pw, host, db);",
    "String uri = String.format(\"amqp://%s:%s@%s:%d/%s\", user, pw, host, port, vhost);",
    "url = \"redis://default:%s@cache:6379\" % os.environ[\"REDIS_PW\"]",
)


def url_format_placeholder(rng: Random, ordinal: int) -> str:
    if ordinal < len(SPEC7_FORMAT_URL_LINES):
        return SPEC7_FORMAT_URL_LINES[ordinal]
    return rng.choice(SPEC7_FORMAT_URL_LINES)


SPEC7_NEGATIVE_KINDS = (
    ("secret_version", "package-manifest", package_manifest),
    ("secret_code_path", "dotted-unquoted", code_path_lines),
    ("secret_path_of_names", "path", path_of_names),
    ("secret_password_hash", "crypt", password_hash_setting),
    ("secret_script_label", "i18n-catalogue", i18n_catalogue),
    ("url_credentials_format", "placeholder", url_format_placeholder),
)
# Lines of code and commands stand only in their own sentences (spec 6's and spec 7's).
OWN_FRAMES_ONLY = frozenset([*(category for category, _ in SPEC6_SETTING_NEGATIVE_KINDS),
                             *(category for category, _, _ in SPEC7_NEGATIVE_KINDS)])
SPEC7_NEGATIVE_VARIANTS = tuple(NegativeVariant(category, kind, free_of_context_words(make))
                                for category, kind, make in SPEC7_NEGATIVE_KINDS)


SPEC4_NEGATIVE_VARIANTS = (
    *(NegativeVariant(entity_type.lower() + "_invalid", kind, new_token_invalid(entity_type, kind))
      for entity_type in NEW_TOKEN_TYPES for kind in NEW_TOKEN_NEGATIVE_KINDS),
    NegativeVariant("phone_after_plus", "trunk-prefix", phone_after_plus, "PHONE_NUMBER"),
    *(NegativeVariant("private_key_invalid", kind, private_key_invalid(kind))
      for kind in ("base64-certificate", "base64-too-short", "cut-too-short")),
    NegativeVariant("auth_setting_invalid", "no-credentials", free_of_context_words(auth_setting_invalid)),
    NegativeVariant("authorization_invalid", "apikey-or-php", free_of_context_words(apikey_header_invalid)),
)


NEGATIVE_VARIANTS = (
    NegativeVariant("card_luhn_fail", "plain", card_failing_luhn(None)),
    NegativeVariant("card_luhn_fail", "spaced", card_failing_luhn(" ")),
    NegativeVariant("card_luhn_fail", "dashed", card_failing_luhn("-")),
    NegativeVariant("card_bad_prefix", "plain", card_without_issuer(None)),
    NegativeVariant("card_bad_prefix", "spaced", card_without_issuer(" ")),
    NegativeVariant("card_bad_prefix", "dashed", card_without_issuer("-")),
    NegativeVariant("card_bad_prefix", "wrong-length", card_with_wrong_length),
    NegativeVariant("iban_bad_check", "compact", iban_with_wrong_check(False)),
    NegativeVariant("iban_bad_check", "grouped", iban_with_wrong_check(True)),
    NegativeVariant("iban_bad_length", "compact", iban_with_wrong_length(False)),
    NegativeVariant("iban_bad_length", "grouped", iban_with_wrong_length(True)),
    *(NegativeVariant("ssn_invalid_range", kind, ssn_out_of_range(kind))
      for kind in ("area-000", "area-666", "area-9xx-not-itin", "group-00", "serial-0000", "advertising")),
    NegativeVariant("date", "iso", date_format("{y}-{m}-{d}")),
    NegativeVariant("date", "dmy-slash", date_format("{d}/{m}/{y}")),
    NegativeVariant("date", "mdy-dash", date_format("{m}-{d}-{y}")),
    NegativeVariant("date", "dmy-dot", date_format("{d}.{m}.{y}")),
    NegativeVariant("date", "month-name", date_format("{mon} {day}, {y}")),
    NegativeVariant("time", "hh-mm-ss", clock_time),
    NegativeVariant("order_number", "ord-code", pattern_format("ORD-#####-@")),
    NegativeVariant("order_number", "hash", order_with_hash),
    NegativeVariant("order_number", "order-word", pattern_format("order ####-##")),
    NegativeVariant("invoice_number", "inv-code",
                    pattern_format("INV-2023-00##", "INV-2024-0###", "INV-2025-####")),
    NegativeVariant("invoice_number", "invoice-slash", invoice_with_slash),
    NegativeVariant("version_string", "v-semver", version_v_semver),
    NegativeVariant("version_string", "semver", version_semver),
    NegativeVariant("version_string", "windows-build", version_windows_build),
    NegativeVariant("version_string", "word-quad", version_word_quad),
    NegativeVariant("version_string", "v-quad", version_v_quad),
    NegativeVariant("version_string", "kernel", version_kernel),
    NegativeVariant("uuid", "v4", uuid_v4),
    NegativeVariant("git_sha", "full", git_sha),
    NegativeVariant("price", "amount", price),
    NegativeVariant("zip_code", "zip5", zip_code(False)),
    NegativeVariant("zip_code", "zip-plus-4", zip_code(True)),
    NegativeVariant("isbn", "isbn13", isbn13),
    NegativeVariant("isbn", "isbn10", isbn10),
    NegativeVariant("percentage", "percent", percentage),
    NegativeVariant("plain_integer", "up-to-8-digits", plain_integer),
    NegativeVariant("bare_number", "9-digits", bare_number(9)),
    NegativeVariant("bare_number", "10-digits", bare_number(10)),
    NegativeVariant("crypto_bad_checksum", "base58", crypto_with_wrong_checksum(False)),
    NegativeVariant("crypto_bad_checksum", "bech32", crypto_with_wrong_checksum(True)),
    NegativeVariant("dea_bad_checksum", "dea", dea_with_wrong_check),
    NegativeVariant("nanp_invalid_code", "area-or-exchange", nanp_with_invalid_code),
    NegativeVariant("ipv4_out_of_range", "octet", ipv4_out_of_range),
    *(NegativeVariant("nino_invalid", kind, nino_invalid(kind), "UK_NINO")
      for kind in ("forbidden-prefix", "bad-suffix", "digit-count")),
    *(NegativeVariant("nino_without_context", kind, nino_without_context(kind))
      for kind in ("compact", "dashed", "lowercase")),
    *(NegativeVariant("nif_invalid", kind, nif_invalid(kind), "ES_NIF")
      for kind in ("wrong-letter", "digit-count")),
    *(NegativeVariant("nif_without_context", kind, nif_without_context(kind))
      for kind in ("spaced", "lowercase")),
    *(NegativeVariant("nie_invalid", kind, nie_invalid(kind), "ES_NIE")
      for kind in ("wrong-letter", "bad-first-letter", "digit-count")),
    *(NegativeVariant("nie_without_context", kind, nie_without_context(kind))
      for kind in ("spaced", "lowercase")),
    *(NegativeVariant("fiscal_code_invalid", kind, fiscal_code_invalid(kind), "IT_FISCAL_CODE")
      for kind in ("wrong-check", "bad-month", "bad-day", "all-digits-replaced")),
    *(NegativeVariant("pesel_invalid", kind, pesel_invalid(kind), "PL_PESEL")
      for kind in ("wrong-check", "bad-date")),
    NegativeVariant("pesel_without_context", "valid", pesel_without_context),
    *(NegativeVariant("fi_code_invalid", kind, fi_code_invalid(kind), "FI_PERSONAL_IDENTITY_CODE")
      for kind in ("wrong-check", "bad-date", "bad-individual-number", "unknown-century-sign")),
    NegativeVariant("fi_code_without_context", "lowercase", fi_code_lowercase),
    NegativeVariant("fi_code_without_context", "dash", fi_code_dash_without_context),
    *(NegativeVariant("nir_invalid", kind, nir_invalid(kind), "FR_NIR")
      for kind in ("wrong-key", "bad-sex-digit", "bad-month", "order-000", "digit-count")),
    *(NegativeVariant("bsn_invalid", kind, bsn_invalid(kind), "NL_BSN") for kind in ("wrong-check", "all-zeros")),
    *(NegativeVariant("bsn_without_context", kind, bsn_without_context(kind)) for kind in ("compact", "dotted")),
    *(NegativeVariant("personnummer_invalid", kind, se_pin_invalid(kind), "SE_PERSONAL_IDENTITY_NUMBER")
      for kind in ("wrong-check", "bad-date")),
    *(NegativeVariant("personnummer_without_context", kind, se_pin_without_context(kind))
      for kind in ("ten-digits-dash", "twelve-digits", "ten-digits")),
    *(NegativeVariant("tax_id_invalid", kind, de_tax_id_invalid(kind), "DE_TAX_ID")
      for kind in ("wrong-check", "leading-zero", "ten-different-digits", "two-repeated-digits",
                   "digit-thrice-in-a-row")),
    *(NegativeVariant("tax_id_without_context", kind, de_tax_id_without_context(kind))
      for kind in ("compact", "grouped")),
    *(NegativeVariant("kvnr_invalid", kind, kvnr_invalid(kind), "DE_HEALTH_INSURANCE_NUMBER")
      for kind in ("wrong-check", "lowercase", "digit-count")),
    NegativeVariant("kvnr_without_context", "valid", lambda rng, ordinal: kvnr_number(rng)),
    *(NegativeVariant("be_number_invalid", kind, be_national_number_invalid(kind), "BE_NATIONAL_NUMBER")
      for kind in ("wrong-check", "bad-month", "day-32", "february-30", "february-29", "serial-000-999",
                   "after-plus")),
    *(NegativeVariant("be_number_without_context", kind, be_national_number_without_context(kind))
      for kind in ("compact", "typed")),
    *(NegativeVariant("be_date_like", kind, be_date_like(kind)) for kind in ("version", "date-time")),
    *(NegativeVariant("ppsn_invalid", kind, ppsn_invalid(kind), "IE_PPSN")
      for kind in ("wrong-check", "digit-count", "bad-second-letter", "company", "after-plus")),
    *(NegativeVariant("ppsn_without_context", kind, ppsn_without_context(kind))
      for kind in ("compact", "spaced", "lowercase")),
    *(NegativeVariant("cpr_invalid", kind, dk_cpr_invalid(kind), "DK_CPR")
      for kind in ("bad-date", "february-29", "after-plus")),
    *(NegativeVariant("cpr_without_context", kind, dk_cpr_without_context(kind))
      for kind in ("dash", "compact", "spaced")),
    NegativeVariant("cpr_after_personnummer", "valid", dk_cpr_after_personnummer, "SE_PERSONAL_IDENTITY_NUMBER"),
    *(NegativeVariant("svnr_invalid", kind, at_svnr_invalid(kind), "AT_SOCIAL_INSURANCE_NUMBER")
      for kind in ("wrong-check", "leading-zero", "check-ten", "after-plus")),
    *(NegativeVariant("svnr_without_context", kind, at_svnr_without_context(kind)) for kind in ("e-card", "compact")),
    *(NegativeVariant("pt_tax_id_invalid", kind, pt_tax_id_invalid(kind), "PT_TAX_ID")
      for kind in ("wrong-check", "company", "digit-count", "after-plus")),
    *(NegativeVariant("pt_tax_id_without_context", kind, pt_tax_id_without_context(kind))
      for kind in ("compact", "spaced")),
    *(NegativeVariant("mrz_invalid", kind, mrz_invalid(kind)) for kind in MRZ_NEGATIVE_KINDS),
    *(NegativeVariant("vat_invalid", kind, vat_invalid(kind)) for kind in VAT_NEGATIVE_KINDS),
    *(NegativeVariant(category, kind, make(kind))
      for category, (make, kinds) in SECRET_NEGATIVE_KINDS.items() for kind in kinds),
    *(NegativeVariant(category, kind, make(kind))
      for category, (make, kinds) in SETTING_NEGATIVE_KINDS.items() for kind in kinds),
    NegativeVariant("secret_setting_digits", "digits-only", secret_setting_digits),
    *(NegativeVariant(category, kind, make(kind))
      for category, (make, kinds) in LATE_SECRET_NEGATIVE_KINDS.items() for kind in kinds),
    *(NegativeVariant("telegram_token_invalid", kind, telegram_token_invalid(kind), "PHONE_NUMBER")
      for kind in TELEGRAM_NEGATIVE_KINDS),
    *SPEC4_NEGATIVE_VARIANTS,
    *SPEC5_NEGATIVE_VARIANTS,
    *SPEC6_NEGATIVE_VARIANTS,
    *SPEC7_NEGATIVE_VARIANTS,
)
NEGATIVE_CATEGORIES = tuple(dict.fromkeys(v.category for v in NEGATIVE_VARIANTS))
# Negatives that are only negative for want of a context word never go next to one.
CONTEXT_SENSITIVE_NEGATIVES = ("bare_number", "nino_without_context", "nif_without_context",
                               "nie_without_context", "pesel_without_context", "fi_code_without_context",
                               "bsn_without_context", "personnummer_without_context", "tax_id_without_context",
                               "kvnr_without_context", "be_number_without_context", "ppsn_without_context",
                               "cpr_without_context", "svnr_without_context", "pt_tax_id_without_context",
                               # a CPR number after a Swedish word (the only context words of its sentences)
                               "cpr_after_personnummer",
                               # "token: 123456789": nine digits are an SSN after "ssn"
                               "secret_setting_digits")


# ---------------------------------------------------------------------------------------
# Sentences: {n} is a noun phrase naming the value, {v} the value itself
# ---------------------------------------------------------------------------------------

# The noun comes shortly before the value (within the context window).
FRAMES_NOUN_BEFORE = (
    "My {n} is {v}.",
    "{n}: {v}",
    "Please update the {n} to {v}, thanks.",
    "Can you check if {n} {v} is still active?",
    "The customer wrote \"{n} {v}\" in the form.",
    "Summarize: client ({n} {v}) asked for a refund.",
    "Bitte prüfen: {n} {v} 🙏",
    "Voici le {n} : {v}.",
    "確認してください。{n}：{v}。",
    "{n} = '{v}'; please mask it before logging.",
    "hey, my {n} is {v}: can you redact it?",
    "Draft a reply confirming that the {n} {v} was received.",
    "Rewrite this nicely: {n} is {v}!!!",
    "For the record — {n} {v}, as discussed.",
    "Customer profile 🧾 lists {n} [{v}] under billing.",
)
# The value first, the noun after it, or no noun.
FRAMES_ANY = (
    "{v} is the {n} on file.",
    "{v}",
    "Is {v} a valid {n}?",
    "I found {v} in the logs (looks like a {n}).",
    "Mask every {n} in this text: {v}",
    "Notiz 📝: {v} gehört zum Kunden.",
    "Merci de supprimer {v} de la base.",
    "Could you anonymize the following before sending it to the model? ({v})",
    "The log line says '{v}' — who owns it?",
    "«{v}» — 見つかった値です。",
)
SECRET_FRAMES = (
    "export API_TOKEN={v}",
    "config.yaml:\n  api_key: \"{v}\"\n  region: eu-west-1",
    "curl -H 'Authorization: Bearer {v}' https://api.example.com/v1/models",
    "Why does the client reject {v}? The docs say it is the right {n}.",
)
PEM_FRAMES = (
    "Here is my key:\n{v}\nWhy does ssh reject it?",
    "{v}\nIs this key encrypted?",
    "Debug this deployment secret:\n```\n{v}\n```",
    "Schlüssel 🔑:\n{v}",
    "Can you convert this to PKCS#8?\n\n{v}\n\nThanks!",
    "clé privée :\n{v}\nmerci",
)
# Sentences that carry their own context word, for formats that need one.
CONTEXT_FRAMES = {
    "US_SSN": ("SSN {v}", "Her social security number is {v}, keep it private."),
    "US_ITIN": ("ITIN {v} (tax filing)", "itin: {v}"),
    "PHONE_NUMBER": ("Call me at {v} after 5pm.", "Text my cell {v} if the delivery is late 📦",
                     "WhatsApp: {v}", "fax {v} (office)"),
    "UK_NHS": ("Patient NHS number {v} — please anonymize.", "NHS No. {v}"),
    "MEDICAL_LICENSE": ("Prescriber DEA {v} on the Rx.", "DEA registration: {v}"),
}
# Noun phrases with a whole context word, for formats that need one.
CONTEXT_NOUNS = {
    "US_SSN": ("SSN", "social security number", "Social-Security no.", "SS#", "ssn"),
    "US_ITIN": ("ITIN", "itin", "taxpayer ITIN", "ITIN number"),
    "PHONE_NUMBER": ("phone number", "phone", "mobile", "cell", "tel.", "fax", "WhatsApp", "Tel"),
    "UK_NHS": ("NHS number", "NHS no.", "NHS", "nhs number"),
    "MEDICAL_LICENSE": ("DEA number", "DEA registration", "prescriber DEA", "DEA#"),
}
NOUNS = {
    "US_SSN": CONTEXT_NOUNS["US_SSN"] + ("Sozialversicherungsnummer (US)", "numéro de sécurité sociale"),
    "US_ITIN": CONTEXT_NOUNS["US_ITIN"] + ("taxpayer number",),
    "CREDIT_CARD": ("card number", "credit card", "payment card", "debit card", "Kreditkartennummer",
                    "numéro de carte", "カード番号"),
    "IBAN_CODE": ("IBAN", "bank account", "Kontonummer (IBAN)", "compte IBAN", "口座番号 (IBAN)"),
    "EMAIL_ADDRESS": ("email", "e-mail address", "E-Mail-Adresse", "adresse e-mail", "メールアドレス",
                      "contact"),
    "PHONE_NUMBER": CONTEXT_NOUNS["PHONE_NUMBER"] + ("Telefonnummer", "numéro", "電話番号", "number"),
    "IP_ADDRESS": ("IP", "server address", "IP address", "IP-Adresse", "adresse IP", "host"),
    "CRYPTO": ("bitcoin address", "BTC wallet", "Wallet-Adresse", "adresse bitcoin", "wallet"),
    "MEDICAL_LICENSE": CONTEXT_NOUNS["MEDICAL_LICENSE"],
    "POLICY_SUITE_KEY": ("policy-suite key", "psk", "service key", "API key"),
    "OPENAI_API_KEY": ("OpenAI key", "API key", "OPENAI_API_KEY", "token"),
    "AWS_ACCESS_KEY": ("AWS access key", "access key id", "AWS_ACCESS_KEY_ID", "key"),
    "GITHUB_TOKEN": ("GitHub token", "PAT", "GITHUB_TOKEN", "token"),
    "SLACK_TOKEN": ("Slack token", "bot token", "SLACK_BOT_TOKEN", "token"),
    "JWT": ("JWT", "access token", "ID token", "bearer token", "Zugriffstoken", "jeton"),
    "GOOGLE_API_KEY": ("Google API key", "Maps API key", "GOOGLE_API_KEY", "key", "APIキー"),
    "STRIPE_API_KEY": ("Stripe secret key", "Stripe key", "STRIPE_SECRET_KEY", "restricted key"),
    "GITLAB_TOKEN": ("GitLab token", "PAT", "GITLAB_TOKEN", "deploy token", "runner token"),
    "HUGGINGFACE_TOKEN": ("Hugging Face token", "HF_TOKEN", "access token", "token"),
    "NPM_TOKEN": ("npm token", "NPM_TOKEN", "automation token", "token"),
    "SENDGRID_API_KEY": ("SendGrid key", "SENDGRID_API_KEY", "API key", "mail API key"),
    # Only in AZURE_*_FRAMES: the key counts after "AccountKey=" alone.
    "AZURE_STORAGE_KEY": ("storage account key", "AccountKey"),
    # The late night's types with a "plain" format (no "Telegram": "tel" is a phone word).
    "GROQ_API_KEY": ("Groq API key", "GROQ_API_KEY", "API key", "Groq key"),
    "XAI_API_KEY": ("xAI API key", "XAI_API_KEY", "Grok API key", "API key"),
    "GOOGLE_OAUTH_CLIENT_SECRET": ("OAuth client secret", "client secret", "GOOGLE_CLIENT_SECRET",
                                   "Google client secret"),
    "GOOGLE_OAUTH_TOKEN": ("Google access token", "OAuth access token", "access token", "bearer token"),
    "PYPI_TOKEN": ("PyPI token", "PyPI API token", "upload token", "PYPI_API_TOKEN"),
    "DOCKER_HUB_TOKEN": ("Docker Hub token", "Docker PAT", "DOCKERHUB_TOKEN", "access token"),
    "WEBHOOK_SIGNING_SECRET": ("webhook signing secret", "Stripe webhook secret", "signing secret",
                               "STRIPE_WEBHOOK_SECRET"),
    "TELEGRAM_BOT_TOKEN": ("bot token", "BotFather token", "bot API token", "Bot-Token"),
    # The ten of /tmp/secrets_spec4.md.
    "PERPLEXITY_API_KEY": ("Perplexity API key", "PPLX_API_KEY", "Sonar API key", "API key"),
    "REPLICATE_API_TOKEN": ("Replicate token", "REPLICATE_API_TOKEN", "API token", "token"),
    "LANGSMITH_API_KEY": ("LangSmith key", "LANGSMITH_API_KEY", "LangChain API key", "API key"),
    "DATABRICKS_TOKEN": ("Databricks PAT", "DATABRICKS_TOKEN", "workspace token", "access token"),
    "ATLASSIAN_API_TOKEN": ("Jira API token", "Atlassian API token", "Confluence token", "API token"),
    "VAULT_TOKEN": ("Vault token", "VAULT_TOKEN", "root token", "token"),
    "AZURE_CLIENT_SECRET": ("client secret", "Entra client secret", "AZURE_CLIENT_SECRET", "app secret"),
    "DIGITALOCEAN_TOKEN": ("DigitalOcean token", "DIGITALOCEAN_TOKEN", "doctl token", "API token"),
    "POSTMAN_API_KEY": ("Postman API key", "POSTMAN_API_KEY", "API key", "Postman key"),
    "GRAFANA_TOKEN": ("Grafana service account token", "GRAFANA_TOKEN", "SA token", "token"),
    # /tmp/secrets_spec5.md part B.
    "DISCORD_BOT_TOKEN": ("Discord bot token", "DISCORD_TOKEN", "bot token", "token"),
    # /tmp/secrets_spec6.md section 7.
    "DISCORD_WEBHOOK_URL": ("Discord webhook URL", "webhook URL", "DISCORD_WEBHOOK_URL", "Discord webhook"),
}
SECRET_TYPES = ("POLICY_SUITE_KEY", "OPENAI_API_KEY", "AWS_ACCESS_KEY", "GITHUB_TOKEN", "SLACK_TOKEN",
                "JWT", "GOOGLE_API_KEY", "STRIPE_API_KEY", "GITLAB_TOKEN", "HUGGINGFACE_TOKEN", "NPM_TOKEN",
                "SENDGRID_API_KEY", "AZURE_STORAGE_KEY", "SECRET",  # SECRET only in its formats' frames
                # the late night's (the Slack webhook URL and the Azure values only in their own frames)
                "GROQ_API_KEY", "XAI_API_KEY", "GOOGLE_OAUTH_CLIENT_SECRET", "GOOGLE_OAUTH_TOKEN", "PYPI_TOKEN",
                "DOCKER_HUB_TOKEN", "WEBHOOK_SIGNING_SECRET", "TELEGRAM_BOT_TOKEN", "SLACK_WEBHOOK_URL",
                "AZURE_SHARED_ACCESS_KEY", "AZURE_SAS_TOKEN",
                "PERPLEXITY_API_KEY", "REPLICATE_API_TOKEN", "LANGSMITH_API_KEY", "DATABRICKS_TOKEN",
                "ATLASSIAN_API_TOKEN", "VAULT_TOKEN", "AZURE_CLIENT_SECRET", "DIGITALOCEAN_TOKEN",
                "POSTMAN_API_KEY", "GRAFANA_TOKEN", "DISCORD_BOT_TOKEN", "DISCORD_WEBHOOK_URL")

# The national identifiers' sentences in their own languages: (sentences with a context word of
# the type within CONTEXT_WINDOW bytes before the value, sentences with none of its context
# words). A PESEL, a BSN and a personnummer always need their word.
NATIONAL_ID_FRAMES = {
    "UK_NINO": ((
        "My National Insurance number is {v}.",
        "NI number: {v}",
        "Payroll update — NINO {v}, starts in April.",
        "Please check NI No. {v} against the HMRC letter.",
        "Her national insurance no. is {v}, see the P60.",
        "New starter form: ni number {v} (checked)",
    ), (
        "Employee: Oliver Smith, {v}.",
        "Remove {v} from the payroll export, please.",
        "Payroll reference {v} — see attached.",
        "{v} is on the P45 from the previous employer.",
        "HMRC letter for {v} arrived today.",
    )),
    "ES_NIF": ((
        "Mi DNI es {v}.",
        "NIF: {v}",
        "El cliente con DNI {v} pidió la devolución.",
        "Por favor, actualiza el NIF a {v}, gracias.",
        "Adjunto copia del documento nacional de identidad ({v}) para el alquiler.",
        "¿Puedes comprobar si el dni {v} es correcto?",
    ), (
        "Titular: Lucía Fernández, {v}.",
        "He encontrado {v} en el formulario de alta.",
        "Borra {v} de la base de datos, por favor.",
        "Identificación del titular: {v}",
        "{v} figura en el contrato de alquiler.",
    )),
    "ES_NIE": ((
        "Mi NIE es {v}.",
        "NIE: {v}",
        "Tarjeta de identidad de extranjero, número {v}.",
        "El cliente extranjero con NIE {v} solicita la renovación.",
        "¿Puedes comprobar si el nie {v} es correcto?",
    ), (
        "Titular: John Miller, {v}.",
        "Tarjeta de residencia {v}, válida hasta 2027.",
        "He encontrado {v} en la solicitud.",
        "Borra {v} del expediente, por favor.",
        "{v} figura en el contrato de trabajo.",
    )),
    "IT_FISCAL_CODE": ((
        "Il mio codice fiscale è {v}.",
        "Codice fiscale: {v}",
        "C.F. {v} — Mario Rossi, Milano.",
        "Per la fattura serve il codice fiscale {v}, grazie.",
        "Fiscal code {v} (Italian customer).",
        "Tax code: {v}",
    ), (
        "Intestatario: Marco Bianchi, {v}.",
        "Ho trovato {v} nel modulo di iscrizione.",
        "Cancella {v} dall'archivio, per favore.",
        "Paziente {v}, visita del 12 marzo.",
        "Anagrafica cliente: {v}",
    )),
    "PL_PESEL": ((
        "Mój PESEL to {v}.",
        "PESEL: {v}",
        "Proszę zaktualizować numer PESEL na {v}, dziękuję.",
        "Pacjent (PESEL {v}) prosi o wypis.",
        "Sprawdź, czy pesel {v} jest poprawny.",
        "Dane klienta — nr PESEL {v}, adres w załączniku.",
        "Pesel dziecka: {v}",
    ), ()),
    "FI_PERSONAL_IDENTITY_CODE": ((
        "Henkilötunnus: {v}",
        "Asiakkaan henkilötunnus on {v}.",
        "Potilaan hetu {v} — tarkista tiedot.",
        "Min personbeteckning är {v}.",
        "Uppdatera personbeteckning till {v}, tack.",
        "Personal identity code {v} (Finland).",
    ), (
        "Potilas: Matti Virtanen, {v}.",
        "Poista {v} tietokannasta, kiitos.",
        "Kund: Anna Lindqvist, {v}.",
        "{v} löytyy rekisteristä.",
        "Onko {v} oikein?",
    )),
    "FR_NIR": ((
        "Mon numéro de sécurité sociale est le {v}.",
        "NIR : {v}",
        "Merci de mettre à jour le NIR de l'assuré ({v}).",
        "N° INSEE {v} — à vérifier avec la CPAM.",
        "Carte Vitale : {v}, mutuelle à jour.",
        "Numéro de sécu {v}, à reporter sur la feuille de soins.",
        "securite sociale: {v} (formulaire sans accents)",
    ), (
        "Assuré : Jean Dupont, {v}.",
        "Merci de supprimer {v} du dossier patient.",
        "Bénéficiaire {v}, remboursement du 12 mars.",
        "{v} figure sur l'attestation de droits.",
        "Identifiant de l'assurée : {v}",
    )),
    "NL_BSN": ((
        "Mijn BSN is {v}.",
        "BSN: {v}",
        "Burgerservicenummer van de klant: {v}",
        "Graag het burgerservicenummer {v} controleren.",
        "Patiënt met BSN {v} is vandaag opgenomen.",
        "Kun je het BSN-nummer {v} uit het dossier halen?",
    ), ()),
    "SE_PERSONAL_IDENTITY_NUMBER": ((
        "Mitt personnummer är {v}.",
        "Personnummer: {v}",
        "Patientens personnr {v} — kontrollera journalen.",
        "Pnr {v}, inskriven i dag.",
        "Uppdatera pnr till {v}, tack.",
        "Kan du kontrollera personnummer {v} i registret?",
    ), ()),
    "DE_TAX_ID": ((
        "Meine Steuer-ID ist {v}.",
        "Steuerliche Identifikationsnummer: {v}",
        "Bitte die IdNr. {v} in der Lohnabrechnung korrigieren, danke.",
        "Steuer-ID {v} — laut Schreiben des Bundeszentralamts für Steuern.",
        "Können Sie prüfen, ob die Steuer-Identifikationsnummer {v} stimmt?",
        "Kunde (Steuer-ID: {v}) bittet um Rückruf wegen der Erstattung.",
        "steuerid={v}",
    ), ()),
    "DE_HEALTH_INSURANCE_NUMBER": ((
        "Meine Krankenversichertennummer ist {v}.",
        "Versichertennummer: {v}",
        "KVNR {v} — bitte in der Patientenakte ergänzen.",
        "Die Versichertennummer der Patientin ({v}) fehlt auf der Überweisung.",
        "Krankenversicherung: TK, Nummer {v}",
        "Kann jemand die KV-Nr. {v} prüfen?",
        "kvnr={v}",
    ), ()),
    # Belgium: Dutch, French and German (and the English of the eID's "National number"); a
    # form without a word is the eID card's only.
    "BE_NATIONAL_NUMBER": ((
        "Mijn rijksregisternummer is {v}.",
        "Rijksregisternummer: {v}",
        "Graag het INSZ-nummer {v} nakijken, bedankt.",
        "Patiënt met rijksregisternr. {v} is vandaag opgenomen.",
        "Mon numéro national est le {v}.",
        "Numéro de registre national : {v}",
        "NISS du bénéficiaire : {v}, merci de vérifier.",
        "Meine Nationalregisternummer lautet {v}.",
        "National number (RRN): {v}",
        "rijksregister={v}",
    ), (
        "Kaarthouder: Jan Peeters, {v}.",
        "Op de achterkant van de eID staat {v}.",
        "Titulaire : Marie Dubois, {v}.",
        "Inhaber: Lukas Schmitz, {v}.",
        "{v} — gegevens van de identiteitskaart.",
    )),
    "IE_PPSN": ((
        "My PPS number is {v}.",
        "PPSN: {v}",
        "Please update my PPS No. to {v}, thanks.",
        "Patient PPSN {v} — check the medical card.",
        "Can you confirm the PPS number {v} on the Revenue form?",
        "Uimhir PPS: {v}",
        "Personal Public Service Number (PPSN): {v}",
    ), ()),
    "DK_CPR": ((
        "Mit CPR-nummer er {v}.",
        "CPR-nr.: {v}",
        "Patientens cpr-nummer {v} — tjek journalen.",
        "Opdater venligst CPR-nummeret til {v}, tak.",
        "Medarbejder med CPR {v} starter den 1. april.",
        "Kan du tjekke cpr nr. {v} i registret?",
        "cprnr: {v}",
    ), ()),
    "AT_SOCIAL_INSURANCE_NUMBER": ((
        "Meine Sozialversicherungsnummer ist {v}.",
        "Sozialversicherungsnummer: {v}",
        "SVNR {v} — bitte im Personalakt ergänzen.",
        "Versicherungsnummer laut e-card: {v}",
        "Bitte die SV-Nummer {v} bei der ÖGK-Anmeldung angeben.",
        "Dienstnehmerin (VSNR {v}) ab 1. März angemeldet.",
        "svnr={v}",
    ), ()),
    "PT_TAX_ID": ((
        "O meu NIF é {v}.",
        "NIF: {v}",
        "Número de contribuinte: {v}",
        "Pode emitir a fatura com o número de contribuinte {v}, por favor?",
        "Contribuinte n.º {v} — dados do cliente atualizados.",
        "Nº contribuinte {v}",
        "Número de identificação fiscal (NIF): {v}",
    ), ()),
}
# Noun phrases for the mixed-language sentences of FRAMES_NOUN_BEFORE and FRAMES_ANY: with a
# context word of the type, and without.
NATIONAL_ID_NOUNS = {
    "UK_NINO": (("National Insurance number", "NI number", "NINO", "NI No.", "ni number"),
                ("payroll reference", "employee reference")),
    "ES_NIF": (("DNI", "NIF", "número de DNI", "documento nacional de identidad"),
               ("identificación", "número del titular")),
    "ES_NIE": (("NIE", "número NIE", "NIE de extranjero"), ("tarjeta de residencia", "número de residente")),
    "IT_FISCAL_CODE": (("codice fiscale", "C.F.", "fiscal code", "tax code"),
                       ("identificativo", "dati anagrafici")),
    "PL_PESEL": (("PESEL", "numer PESEL", "nr PESEL", "pesel"), ()),
    "FI_PERSONAL_IDENTITY_CODE": (("henkilötunnus", "hetu", "HETU", "personbeteckning", "personal identity code"),
                                  ("tunniste", "ID")),
    "FR_NIR": (("NIR", "numéro INSEE", "numéro de sécurité sociale", "numéro de sécu", "carte Vitale"),
               ("identifiant", "numéro d'assuré")),
    "NL_BSN": (("BSN", "burgerservicenummer", "BSN-nummer", "sofinummer"), ()),
    "SE_PERSONAL_IDENTITY_NUMBER": (("personnummer", "Personnummer", "pnr", "personnr", "samordningsnummer"), ()),
    "DE_TAX_ID": (("Steuer-ID", "steuerliche Identifikationsnummer", "IdNr.", "Steuer-Identifikationsnummer",
                   "tax ID (Steuer-ID)", "SteuerID"), ()),
    "DE_HEALTH_INSURANCE_NUMBER": (("Krankenversichertennummer", "KVNR", "Versichertennummer", "KV-Nr.",
                                    "Versicherten-Nr."), ()),
    "BE_NATIONAL_NUMBER": (("rijksregisternummer", "Rijksregisternummer", "INSZ", "NISS", "numéro national",
                            "numéro de registre national", "Nationalregisternummer", "national register number",
                            "RRN"),
                           ("eID", "numéro de la carte")),
    "IE_PPSN": (("PPS number", "PPSN", "PPS No.", "Personal Public Service number", "pps"), ()),
    "DK_CPR": (("CPR-nummer", "CPR-nr.", "CPR", "cpr-nummer", "CPR nr."), ()),
    "AT_SOCIAL_INSURANCE_NUMBER": (("Sozialversicherungsnummer", "SVNR", "SV-Nummer", "Versicherungsnummer", "VSNR",
                                    "SV-Nr."), ()),
    "PT_TAX_ID": (("NIF", "número de contribuinte", "contribuinte", "número de identificação fiscal",
                   "NIF português"), ()),
}
# The share of national identifier sentences in their own language; the rest mix languages.
NATIONAL_ID_OWN_LANGUAGE = 0.75

NEGATIVE_FRAMES = {
    "card_luhn_fail": ("Test with {v} — it should be declined.", "Card {v} failed validation."),
    "card_bad_prefix": ("The number {v} is not from any issuer.", "Karte {v} wurde abgelehnt."),
    "iban_bad_check": ("IBAN {v} was rejected by the bank.", "Le compte {v} est invalide."),
    "iban_bad_length": ("IBAN {v} has the wrong length.", "Bitte korrigieren: {v}"),
    "ssn_invalid_range": ("Employee ID {v} is not in the directory.", "Form field value: {v}"),
    "date": ("The contract ends on {v}.", "Meeting rescheduled to {v} 📅", "Lieferdatum: {v}",
             "{v} was the last login date."),
    "time": ("The job ran at {v} UTC.", "Backup finished {v}, no errors."),
    "order_number": ("Where is {v}? It has not arrived.", "Status update for {v}, please."),
    "invoice_number": ("Please pay {v} by Friday.", "{v} is overdue."),
    "version_string": ("We upgraded to {v} yesterday.", "Bug reproduced on {v}.",
                       "Running {v} in production."),
    "uuid": ("Request id {v} failed.", "trace_id={v}"),
    "git_sha": ("Revert commit {v}, it broke the build.", "Deployed {v} to staging."),
    "price": ("The laptop costs {v} incl. tax.", "Budget: {v}"),
    "zip_code": ("Ship to ZIP {v}, San Francisco.", "Postal code {v}"),
    "isbn": ("ISBN {v}", "Order the book {v} for the library."),
    "percentage": ("Conversion went up {v} this quarter.", "Battery at {v}"),
    "plain_integer": ("We processed {v} requests.", "Room {v}, second floor."),
    "bare_number": ("Reference {v} was archived.", "Tracking code {v}.", "Batch {v} completed."),
    "crypto_bad_checksum": ("Wallet {v} has a typo, the checksum fails.", "Is {v} a real address?"),
    "dea_bad_checksum": ("Prescriber id {v} looks wrong.", "Check {v} again."),
    "nanp_invalid_code": ("Dial {v} for support.", "The number {v} does not exist."),
    "ipv4_out_of_range": ("Ping {v} returned an error.", "Host {v} is not a valid address."),
    # The national identifiers' variants with a context type: in their own language, with and
    # without a context word of the type (nothing rescues a value that breaks the rules).
    "nino_invalid": ("NI number {v} was rejected by HMRC.", "Payroll: National Insurance number {v} looks wrong.",
                     "NINO {v} — please double-check.", "Is {v} a real NI number?", "Rejected: {v}"),
    "nino_without_context": ("Booking reference {v} confirmed.", "Voucher {v} has expired.",
                             "Part {v} is out of stock.", "Ticket {v} was closed yesterday."),
    "nif_invalid": ("El DNI {v} no es válido.", "NIF {v}: la letra no cuadra.",
                    "Revisa el documento {v}, por favor.", "Formulario rechazado: {v}"),
    "nif_without_context": ("El pedido {v} llegó ayer.", "Order {v} shipped today.",
                            "Referencia {v} confirmada.", "Lote {v} agotado."),
    "nie_without_context": ("El pedido {v} llegó ayer.", "Order {v} shipped today.",
                            "Referencia {v} confirmada.", "Lote {v} agotado."),
    "fi_code_without_context": ("Tilaus {v} on lähetetty.", "Order {v} shipped today.",
                                "Viite {v} vahvistettu.", "Lähetys {v} saapui."),
    "nie_invalid": ("NIE {v} rechazado por la oficina de extranjería.",
                    "El número {v} no corresponde a ningún extranjero.",
                    "Tarjeta de residencia {v}: error de validación."),
    "fiscal_code_invalid": ("Il codice fiscale {v} non è valido.", "C.F. {v}: carattere di controllo errato.",
                            "Controlla {v} nel modulo, per favore.", "Tessera sanitaria con codice {v} respinta."),
    "pesel_invalid": ("PESEL {v} jest błędny.", "Numer PESEL {v} — zła cyfra kontrolna.",
                      "Sprawdź PESEL {v} w formularzu.", "System odrzucił pesel {v}."),
    "pesel_without_context": ("Numer zamówienia {v} został wysłany.", "Faktura {v} opłacona.",
                              "Order {v} shipped today.", "Tracking number {v}"),
    "fi_code_invalid": ("Henkilötunnus {v} on virheellinen.", "Hetu {v}: tarkistusmerkki ei täsmää.",
                        "Personbeteckningen {v} är ogiltig.", "Tarkista {v} lomakkeelta."),
    "nir_invalid": ("Le NIR {v} est refusé par la CPAM.",
                    "Numéro de sécurité sociale {v} : clé de contrôle incorrecte.",
                    "Carte Vitale {v} rejetée, vérifiez le numéro.", "Vérifiez le numéro {v} sur l'attestation.",
                    "Formulaire refusé : {v}"),
    "bsn_invalid": ("BSN {v} is ongeldig.", "Burgerservicenummer {v} faalt de elfproef.",
                    "Controleer nummer {v} op het formulier.", "Afgewezen: {v}"),
    "bsn_without_context": ("Ordernummer {v} is verzonden.", "Order {v} shipped today.", "Factuur {v} is betaald.",
                            "Zending {v} is onderweg."),
    "personnummer_invalid": ("Personnummer {v} är ogiltigt.", "Pnr {v}: kontrollsiffran stämmer inte.",
                             "Personnummer {v} avvisades av Skatteverket.", "Kontrollera {v} i formuläret.",
                             "Avvisat: {v}"),
    "personnummer_without_context": ("Order {v} skickades i dag.", "Faktura {v} är betald.",
                                     "Ärende {v} stängdes igår.", "Referens {v} bekräftad."),
    "tax_id_invalid": ("Die Steuer-ID {v} ist ungültig.", "IdNr. {v}: die Prüfziffer stimmt nicht.",
                       "Das Finanzamt lehnt die Identifikationsnummer {v} ab.", "Bitte {v} im Formular prüfen.",
                       "Abgelehnt: {v}"),
    "tax_id_without_context": ("Rechnung {v} ist bezahlt.", "Auftrag {v} wurde versandt.",
                               "Order {v} shipped today.", "Vorgang {v} ist abgeschlossen."),
    "kvnr_invalid": ("Die Versichertennummer {v} ist ungültig.", "KVNR {v}: Prüfziffer falsch.",
                     "Krankenversicherung meldet: Nummer {v} unbekannt.", "Bitte {v} auf der Karte prüfen.",
                     "Abgelehnt: {v}"),
    # The secrets' (no '.' right after a JWT negative: "eyJ...eyJ..." and a '.' is an unsecured
    # token).
    "jwt_invalid": ("Is this a JWT? {v}", "The proxy logged {v} as the token, is it valid?",
                    "Parsing {v} fails with \"invalid token\"", "Token aus dem Log: {v}"),
    "google_key_invalid": ("Is {v} a Google API key?", "The docs mention {v} in the sample.",
                           "Copied from the README: {v}"),
    "stripe_key_invalid": ("STRIPE_PUBLISHABLE_KEY={v}", "The frontend uses {v}, is that fine?",
                           "Example from the guide: {v}"),
    "gitlab_token_invalid": ("Our runbook mentions {v} here.", "The README says: paste {v} here",
                             "Is {v} a GitLab token?"),
    "huggingface_token_invalid": ("from huggingface_hub import {v}", "Why does {v} not work?",
                                  "The sample uses {v} here."),
    "npm_token_invalid": ("echo ${v}", "The script reads {v} from the environment.", "process.env.{v}"),
    "sendgrid_key_invalid": ("The docs show {v} as the example.", "Is {v} a SendGrid key?"),
    "azure_key_invalid": ("Storage blob checksum: {v}", "The sample uses {v} here.", "Is {v} a storage key?"),
    # The specification of 2026-12-07, night: white space (or the end) right after the value.
    "secret_setting_invalid": ("{v}", "Is this line safe to commit?\n{v}", "```\n{v}\n```",
                               "Zeile aus der Konfiguration:\n{v}\nIst das so richtig?", "Extrait du fichier :\n{v}"),
    "secret_setting_digits": ("{v}", "Is this line safe to commit?\n{v}", "```\n{v}\n```",
                              "Extrait du fichier :\n{v}"),
    "url_credentials_stand_in": ("{v}", "Run: {v}", "The pipeline runs {v} on every push.",
                                 "Im Compose-File steht {v} — wird das ersetzt?", "Exemple : {v}"),
    "email_not_address": ("{v}", "git remote add origin {v}", "Clone {v} and run the tests.", "Le dépôt : {v}"),
    "token_placeholder": ("The docs show {v} as the example.", "Is {v} a real key?", "Copied from the README: {v}",
                          "Platzhalter aus der Doku: {v}"),
    "be_number_invalid": ("Rijksregisternummer {v} is ongeldig.", "INSZ {v}: foutieve controlecijfers.",
                          "Le numéro national {v} est refusé.", "NISS {v} : clé de contrôle incorrecte.",
                          "Nationalregisternummer {v} ist ungültig.", "Afgewezen: {v}"),
    "be_number_without_context": ("Factuur {v} is betaald.", "Ordernummer {v} is verzonden.", "Facture {v} payée.",
                                  "Order {v} shipped today."),
    "be_date_like": ("Log: {v}", "Zie {v} in het overzicht.", "Stand: {v}", "Voir {v} dans le journal."),
    "ppsn_invalid": ("PPS number {v} was rejected by Revenue.", "PPSN {v}: the check letter is wrong.",
                     "Is {v} a valid PPS No.?", "Rejected: {v}"),
    "ppsn_without_context": ("Part {v} is out of stock.", "Booking reference {v} confirmed.",
                             "Voucher {v} has expired.", "Ticket {v} was closed yesterday."),
    "cpr_invalid": ("CPR-nummer {v} er ugyldigt.", "CPR-nr. {v}: datoen findes ikke.",
                    "Kontroller cpr {v} i formularen.", "Afvist: {v}"),
    "cpr_without_context": ("Ordre {v} er afsendt.", "Faktura {v} er betalt.", "Sag {v} blev lukket i går.",
                            "Order {v} shipped today."),
    # A valid CPR number after "personnummer" (Swedish, and what Danes call it too): nothing.
    "cpr_after_personnummer": ("Personnummer: {v}", "Mitt personnummer är {v}.", "Mit personnummer er {v}.",
                               "Personnummer {v} (dansk medborger)."),
    "svnr_invalid": ("Die Sozialversicherungsnummer {v} ist ungültig.", "SVNR {v}: Prüfziffer falsch.",
                     "Versicherungsnummer {v} wurde von der ÖGK abgelehnt.", "Bitte {v} auf der e-card prüfen.",
                     "Abgelehnt: {v}"),
    "svnr_without_context": ("Rechnung {v} ist bezahlt.", "Auftrag {v} wurde versandt.", "Order {v} shipped today.",
                             "Vorgang {v} ist abgeschlossen."),
    "pt_tax_id_invalid": ("O NIF {v} não é válido.", "Número de contribuinte {v}: dígito de controlo errado.",
                          "NIF {v} rejeitado pela AT.", "Verifique o contribuinte {v} na fatura.", "Rejeitado: {v}"),
    "pt_tax_id_without_context": ("Encomenda {v} enviada hoje.", "Fatura {v} paga.", "Order {v} shipped today.",
                                  "Referência {v} confirmada."),
    # The fifth batch's (no context word: the spec gives the two types none).
    "mrz_invalid": ("The scanner read this, but the checks fail:\n{v}\nCan you retype it?",
                    "OCR output (rejected):\n{v}", "```\n{v}\n```\nWhy is this zone invalid?",
                    "Zeilen vom Dokument:\n{v}\nDie Prüfziffer stimmt nicht.", "Texte lu :\n{v}\nà vérifier."),
    "vat_invalid": ("VIES: {v} — invalid.", "Ungültige USt-ID {v}, bitte korrigieren.",
                    "Numéro de TVA {v} refusé par VIES.", "Partita IVA {v} non valida.",
                    "BTW-nummer {v} is ongeldig.", "The VAT number {v} fails the check.",
                    "Supplier record rejected: vat={v}"),
    # The specification of 2026-12-07, late night (no setting's name before a value: a near miss
    # there is a SECRET).
    "groq_key_invalid": ("Is {v} a Groq key?", "The README mentions {v} here.", "Found {v} in the sample notebook."),
    "xai_key_invalid": ("Is {v} an xAI key?", "The changelog mentions {v} here.", "Why does {v} not work?"),
    "google_client_secret_invalid": ("Is {v} a Google client secret?", "The tutorial shows {v} as the example.",
                                     "Copied from the docs: {v}"),
    "google_oauth_token_invalid": ("Is {v} still valid?", "The log shows {v} as the token", "Parsing {v} fails"),
    "pypi_token_invalid": ("Is {v} a PyPI token?", "The docs show {v} as the example.", "The workflow uses {v} here."),
    "docker_token_invalid": ("Is {v} a Docker Hub token?", "The runbook mentions {v} here.",
                             "Copied from the README: {v}"),
    "webhook_secret_invalid": ("Is {v} the signing secret?", "The test fixture uses {v} here.",
                               "Example from the guide: {v}"),
    "telegram_token_invalid": ("Is {v} a valid bot token?", "The docs show {v} as the example.",
                               "GET https://api.telegram.org/{v}/getMe returns 404",
                               "Fehler 401 für {v} — falsches Format?",
                               "Valeur trouvée : {v}"),
    "slack_webhook_invalid": ("The docs use {v} as the example.", "Is {v} a webhook URL?",
                              "Paste the URL instead of {v}"),
    "azure_shared_key_invalid": ("Is this string complete? {v}", "The sample uses {v} here.", "Log line: {v}"),
    "azure_sas_invalid": ("The link {v} does not work.", "Is {v} a SAS URL?", "Copied from the portal: {v}"),
    "slack_app_token_invalid": ("The docs show {v} as the example.", "Is {v} an app-level token?",
                                "Copied from the README: {v}"),
    "authorization_invalid": ("{v}", "Why does the server answer 401 to this?\n{v}", "```\n{v}\n```",
                              "Aus dem Log:\n{v}\nWas fehlt?", "Extrait de la requête :\n{v}"),
    "kvnr_without_context": ("Artikel {v} ist nicht lieferbar.", "Gutschein {v} ist abgelaufen.",
                             "Ticket {v} wurde geschlossen.", "Order {v} shipped today."),
}
NEGATIVE_FRAMES.update({t.lower() + "_invalid": ("Is {v} a valid key?", "The docs show {v} as the example.",
                                                  "Copied from the README: {v}", "Parsing {v} fails")
                        for t in NEW_TOKEN_TYPES})
NEGATIVE_FRAMES.update({
    "phone_after_plus": ("Telefon {v} ist ungültig", "Call {v}? That number looks wrong.",
                         "Tel.: {v} (falsch eingegeben)"),
    "private_key_invalid": ("tls.crt: {v}", "{\"data\": {\"tls.crt\": \"{v}\"}}", "Is this complete?\n{v}",
                            "ca-data: {v}"),
    "auth_setting_invalid": ("{v}", "config.json:\n{{v}}".replace("{{v}}", "{v}"), "Why does this fail?\n{v}"),
    # /tmp/secrets_spec5.md: code whose line holds no setting's value; Discord tokens where no setting
    # gives them.
    "secret_call_invalid": ("{v}", "Is this line safe to commit?\n{v}", "```\n{v}\n```",
                            "Warum liefert das 401?\n{v}", "Extrait du code :\n{v}"),
    "discord_token_invalid": ("Is {v} a valid bot token?", "The docs show {v} as the example.",
                              "Copied from the README: {v}", "discord.errors.LoginFailure for {v}",
                              "Ist {v} ein gültiges Token?"),
    # /tmp/secrets_spec6.md: each line as pasted, alone or in a question; a value at the end of its line.
    **{category: ("{v}", "Is this line safe to commit?\n{v}", "```\n{v}\n```", "Warum wird das nicht maskiert?\n{v}",
                  "Extrait de la configuration :\n{v}\n")
       for category, _ in SPEC6_SETTING_NEGATIVE_KINDS},
    # /tmp/secrets_spec7.md section 4: manifests, code, commands, logs and catalogues as pasted.
    **{category: ("{v}", "Is this safe to commit?\n{v}", "```\n{v}\n```", "Warum wird das als Geheimnis markiert?\n{v}",
                  "Extrait du d\u00e9p\u00f4t :\n{v}\n", "Why does the scanner flag this?\n\n{v}\n")
       for category, _, _ in SPEC7_NEGATIVE_KINDS},
    "discord_webhook_invalid": ("Is {v} a valid webhook URL?", "The docs show {v} as the example.",
                                "Copied from the README: {v}", "Discord answers 404 for {v}",
                                "Ist {v} ein gültiger Webhook?"),
})
GENERIC_NEGATIVE_FRAMES = (
    "Please ignore {v} in the log.",
    "{v}",
    "Value: {v}",
    "Is {v} relevant here?",
    "Notiz 📌: {v}",
    "Référence {v}, merci.",
    "参照番号：{v}",
)
SENTENCE_SEPARATORS = (" ", " ", "\n", "\n\n", " 👉 ")


# ---------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Label:
    entity_type: str
    begin: int
    end: int
    format_name: str  # for --stats; not written
    # Its format promises no context word of the type near it (self_check holds it to that).
    context_free: bool = False


@dataclass(frozen=True)
class NegativeSpan:
    category: str
    variant: str
    begin: int
    end: int
    context_type: str | None = None  # the variant's (NegativeVariant.context_type)


@dataclass
class Record:
    record_id: str
    kind: str  # "positive" or "hard_negative"
    text: str
    labels: list[Label]
    negatives: list[NegativeSpan]


@dataclass
class TextBuilder:
    """Appends text and values, keeping the byte offsets of the labelled parts."""
    parts: list[str] = field(default_factory=list)
    size: int = 0
    labels: list[Label] = field(default_factory=list)
    negatives: list[NegativeSpan] = field(default_factory=list)

    def text(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.size += len(chunk.encode())

    def entity(self, entity_type: str, format_name: str, value: str, context_free: bool = False) -> None:
        begin = self.size
        self.text(value)
        self.labels.append(Label(entity_type, begin, self.size, format_name, context_free))

    def negative(self, variant: NegativeVariant, value: str) -> None:
        begin = self.size
        self.text(value)
        self.negatives.append(NegativeSpan(variant.category, variant.name, begin, self.size, variant.context_type))


@dataclass(frozen=True)
class Sentence:
    before: str
    after: str
    add_value: Callable[[TextBuilder], None]


def split_frame(frame: str, noun: str) -> tuple[str, str]:
    before, after = frame.replace("{n}", noun).split("{v}")
    return before, after


def frame_allows(entity_type: str, frame: str, value: str) -> bool:
    """An IPv6 address never stands right beside a colon, a full-width one included (it would
    run on); an IPv4 address may follow one (`IPアドレス：192.168.1.10`) but not precede one
    (a port)."""
    if entity_type != "IP_ADDRESS":
        return True
    before, after = fold_text(frame).split("{v}")
    if after.startswith(":"):
        return False
    return not before.endswith(":") or ":" not in value


def national_id_frame(rng: Random, fmt: PositiveFormat, value: str) -> tuple[str, str]:
    """A sentence and noun for a national identifier: in its own language mostly, with a
    context word of its type when the format or the value needs one, without any when the
    format says so."""
    if fmt.frames:
        return rng.choice(fmt.frames), ""
    context = "with" if needs_context(fmt.entity_type, value) else fmt.context
    if context == "any":
        context = rng.choice(("with", "without"))
    frames = NATIONAL_ID_FRAMES[fmt.entity_type][0 if context == "with" else 1]
    if rng.random() < NATIONAL_ID_OWN_LANGUAGE:
        return rng.choice(frames), ""
    nouns = NATIONAL_ID_NOUNS[fmt.entity_type][0 if context == "with" else 1]
    frames = FRAMES_NOUN_BEFORE if context == "with" else FRAMES_NOUN_BEFORE + FRAMES_ANY
    return rng.choice(frames), rng.choice(nouns)


def sas_expiry(rng: Random) -> str:
    """A Service Bus SAS's "se=": seconds since 1970 in 2023-2027, valid as no type on its own."""
    return drawn_until(no_entity, lambda: str(rng.randint(1_700_000_000, 1_799_999_999)))


# Fields of a format's own frames besides the value: a Google OAuth client id ("{id}"), a SAS's
# expiry ("{se}"), a UUID ("{uuid}"), a Discord bot's guild or owner id ("{snowflake}"), a curl user
# ("{user}"), drawn for each sentence.
FRAME_FIELDS: dict[str, Callable[[Random], str]] = {"{id}": google_oauth_client_id, "{se}": sas_expiry,
                                                     "{uuid}": lambda rng: uuid_v4(rng, 0),
                                                     "{snowflake}": discord_snowflake, "{user}": curl_user}


def with_frame_fields(rng: Random, frame: str) -> str:
    for name, draw in FRAME_FIELDS.items():
        while name in frame:
            frame = frame.replace(name, draw(rng), 1)
    return frame


def positive_sentence(rng: Random, fmt: PositiveFormat, ordinal: int) -> Sentence:
    value = fmt.generate(rng, ordinal)
    entity_type = fmt.entity_type
    if entity_type in NATIONAL_ID_TYPES:
        frame, noun = national_id_frame(rng, fmt, value)
    elif fmt.frames:
        frame, noun = with_frame_fields(rng, rng.choice(fmt.frames)), ""
    elif entity_type == "PRIVATE_KEY":
        frame, noun = rng.choice(PEM_FRAMES), ""
    elif needs_context(entity_type, value):
        frame = rng.choice(FRAMES_NOUN_BEFORE + CONTEXT_FRAMES[entity_type])
        noun = rng.choice(CONTEXT_NOUNS[entity_type])
    else:
        frames = FRAMES_NOUN_BEFORE + FRAMES_ANY + (SECRET_FRAMES if entity_type in SECRET_TYPES else ())
        frame = rng.choice([f for f in frames if frame_allows(entity_type, f, value)])
        noun = rng.choice(NOUNS[entity_type])
    before, after = split_frame(frame, noun)
    context_free = fmt.context == "without"
    if "{email}" in before:  # an e-mail address before the value, labelled too
        head, tail = before.split("{email}")
        email = email_dotted(rng, ordinal)

        def add_both(builder: TextBuilder) -> None:
            builder.entity("EMAIL_ADDRESS", "dotted", email)  # email_dotted's format
            builder.text(tail)
            builder.entity(entity_type, fmt.name, value, context_free)
        return Sentence(head, after, add_both)
    return Sentence(before, after, lambda builder: builder.entity(entity_type, fmt.name, value, context_free))


def negative_sentence(rng: Random, variant: NegativeVariant, ordinal: int) -> Sentence:
    value = variant.generate(rng, ordinal)
    frames = NEGATIVE_FRAMES[variant.category]
    own_only = variant.context_type or variant.category in OWN_FRAMES_ONLY
    frame = rng.choice(frames if own_only else frames + GENERIC_NEGATIVE_FRAMES)
    before, after = split_frame(frame, "")
    return Sentence(before, after, lambda builder: builder.negative(variant, value))


def sentence_separator(rng: Random, previous: Sentence, following: Sentence) -> str:
    """Text between two sentences; two values never meet across mere white space."""
    if previous.after:
        return rng.choice(SENTENCE_SEPARATORS)
    return "\n" if following.before else " —\n"


def assemble(sentences: list[Sentence], rng: Random) -> TextBuilder:
    builder = TextBuilder()
    for i, sentence in enumerate(sentences):
        if i:
            builder.text(sentence_separator(rng, sentences[i - 1], sentence))
        builder.text(sentence.before)
        sentence.add_value(builder)
        builder.text(sentence.after)
    return builder


COMPANION_FORMATS = tuple(f for f in POSITIVE_FORMATS if f.entity_type != "PRIVATE_KEY")
DISTRACTOR_VARIANTS = tuple(v for v in NEGATIVE_VARIANTS if v.category not in CONTEXT_SENSITIVE_NEGATIVES)
# What may share a hard-negative record with a context-sensitive negative: no context word near.
VARIANTS_WITHOUT_CONTEXT = tuple(v for v in DISTRACTOR_VARIANTS if not v.context_type)


def draw_positive(rng: Random, fmt: PositiveFormat, ordinal: int, record_id: str) -> Record:
    sentences = [positive_sentence(rng, fmt, ordinal)]
    for _ in range(rng.choices((0, 1, 2), weights=(6, 3, 1))[0]):
        sentences.append(positive_sentence(rng, rng.choice(COMPANION_FORMATS), rng.randrange(1000)))
    if rng.random() < 0.3:
        sentences.append(negative_sentence(rng, rng.choice(DISTRACTOR_VARIANTS), rng.randrange(1000)))
    rng.shuffle(sentences)
    builder = assemble(sentences, rng)
    return Record(record_id, "positive", "".join(builder.parts), builder.labels, builder.negatives)


def draw_hard_negative(rng: Random, variant: NegativeVariant, ordinal: int, record_id: str) -> Record:
    sentences = [negative_sentence(rng, variant, ordinal)]
    if rng.random() < 0.25:
        partners = NEGATIVE_VARIANTS
        if variant.category in CONTEXT_SENSITIVE_NEGATIVES:
            partners = VARIANTS_WITHOUT_CONTEXT
        elif variant.context_type:
            partners = DISTRACTOR_VARIANTS
        sentences.append(negative_sentence(rng, rng.choice(partners), rng.randrange(1000)))
        rng.shuffle(sentences)
    builder = assemble(sentences, rng)
    return Record(record_id, "hard_negative", "".join(builder.parts), [], builder.negatives)


# ---------------------------------------------------------------------------------------
# Self-check
# ---------------------------------------------------------------------------------------

def is_char_boundary(data: bytes, offset: int) -> bool:
    return offset == len(data) or (data[offset] & 0xC0) != 0x80


def allowed_extra_finding(finding: Finding, labels: list[Label]) -> bool:
    """A finding other than a label that is still right: an IPv4 address inside a labelled
    IPv6 address, the phone reading of a labelled NHS number (the context decides),
    anything inside a labelled URL_CREDENTIALS value (which scores 1.0 and is longer, so it
    wins the overlap), or the DNI of a labelled "ES" VAT number glued to its prefix."""
    entity_type, begin, end = finding
    for label in labels:
        if label.entity_type == "URL_CREDENTIALS" and label.begin <= begin and end <= label.end:
            return True
        if (entity_type == "IP_ADDRESS" and label.entity_type == "IP_ADDRESS"
                and label.begin <= begin and end <= label.end):
            return True
        if (entity_type == "PHONE_NUMBER" and label.entity_type == "UK_NHS"
                and (label.begin, label.end) == (begin, end)):
            return True
        if (entity_type == "PHONE_NUMBER" and label.entity_type == "PHONE_NUMBER"
                and label.begin <= begin and end <= label.end):
            return True  # the national reading of an international number's tail
        if (entity_type == "ES_NIF" and label.entity_type == "EU_VAT_NUMBER"
                and (begin, end) == (label.begin + 2, label.end)):
            return True  # the DNI glued to "ES" (the generous scanner's reading; the VAT number it is)
    return False


def label_problems(data: bytes, label: Label, strict_findings: set[Finding]) -> list[str]:
    value = data[label.begin:label.end].decode("utf-8", "replace")
    problems = []
    if not VALIDATORS[label.entity_type](value):
        problems.append("%s %r fails its validator" % (label.entity_type, value))
    elif (label.entity_type, label.begin, label.end) not in strict_findings:
        problems.append("%s %r is not found where it stands (context?)" % (label.entity_type, value))
    before_pattern, after_pattern = LABEL_BOUNDARY[label.entity_type]
    if b" " in data[label.begin:label.end] and before_pattern in (DIGIT_BOUNDARY[0], LABEL_BOUNDARY["IBAN_CODE"][0]):
        before_pattern, after_pattern = (GROUPED_IBAN_BOUNDARY if label.entity_type == "IBAN_CODE"
                                         else GROUPED_DIGIT_BOUNDARY)
        if continues_groups(data, label.begin, label.end):
            problems.append("%s %r continues a longer grouped number" % (label.entity_type, value))
    elif label.entity_type in GROUPED_NATIONAL_ID_TYPES and b" " in data[label.begin:label.end]:
        if continues_groups(data, label.begin, label.end):
            problems.append("%s %r continues a longer grouped number" % (label.entity_type, value))
    continued_before = before_pattern.search(data[max(0, label.begin - 2):label.begin])
    if continued_before or after_pattern.match(data, label.end):
        problems.append("%s %r is continued by its neighbours" % (label.entity_type, value))
    if label.context_free and has_context_word(data, label.begin, CONTEXT_WORDS[label.entity_type], strict=False):
        problems.append("%s %r of a format without context has a context word near it"
                        % (label.entity_type, value))
    rival_matters = needs_context(label.entity_type, value) or (
        label.entity_type == "PHONE_NUMBER" and NHS_SHAPE.search(value)) or (
        label.entity_type == "FI_PERSONAL_IDENTITY_CODE")  # a Swedish word near it would exclude it
    for rival in RIVAL_TYPES.get(label.entity_type, ()) if rival_matters else ():
        if has_context_word(data, label.begin, rival_context_words(label.entity_type, rival), strict=False):
            problems.append("%s %r has a %s context word near it" % (label.entity_type, value, rival))
    return problems


def rival_context_words(entity_type: str, rival: str) -> tuple[str, ...]:
    """The words that would make a label's value read as its rival's. A BSN's or a
    personnummer's rival phone number is a national one ("0112189876" after "Tel."), which
    counts after any national phone word; so is a grouped German tax id's ("295 742 719" in
    "86 295 742 719"), a Belgian national number's or a CPR number's starting with 0, a
    Portuguese tax number's in groups ("234 567 899") and an Austrian number's (a NANP one:
    the superset does)."""
    if rival == "PHONE_NUMBER" and entity_type in ("NL_BSN", "SE_PERSONAL_IDENTITY_NUMBER", "DE_TAX_ID",
                                                   "BE_NATIONAL_NUMBER", "DK_CPR", "AT_SOCIAL_INSURANCE_NUMBER",
                                                   "PT_TAX_ID"):
        return NATIONAL_PHONE_CONTEXT_WORDS
    return CONTEXT_WORDS[rival]


def self_check(record: Record) -> list[str]:
    """The problems of a record; empty when it keeps every guarantee of the module docstring.
    The scanner reads the text folded as the engine reads it (fold), with the labels and
    negative spans moved onto it."""
    data = record.text.encode()
    problems = []
    if not record.record_id or " " in record.record_id:
        problems.append("bad id")
    if record.kind not in ("positive", "hard_negative"):
        problems.append("bad kind %r" % record.kind)
    if (record.kind == "positive") != bool(record.labels):
        problems.append("a positive record needs labels, a hard negative none")
    previous_end = 0
    for label in record.labels:
        if label.entity_type not in ENTITY_TYPES:
            problems.append("unknown type %s" % label.entity_type)
        if not previous_end <= label.begin < label.end <= len(data):
            problems.append("label %s out of order, overlapping or out of bounds" % (label,))
        elif not (is_char_boundary(data, label.begin) and is_char_boundary(data, label.end)):
            problems.append("label %s not on UTF-8 character boundaries" % (label,))
        previous_end = label.end
    if problems:
        return problems
    original = data
    data, offsets = fold(data)
    if offsets is not None:
        folded_offset = {original: folded for folded, original in enumerate(offsets)}
        labels = [Label(label.entity_type, folded_offset[label.begin], folded_offset[label.end],
                        label.format_name, label.context_free) for label in record.labels]
        negatives = [NegativeSpan(n.category, n.variant, folded_offset[n.begin], folded_offset[n.end],
                                  n.context_type) for n in record.negatives]
        record = Record(record.record_id, record.kind, data.decode(), labels, negatives)
    spans = candidates(data)
    strict_findings = findings(data, spans, strict=True)
    if offsets is not None:
        problems += unfolded_secret_problems(original, offsets, strict_findings)
    for label in record.labels:
        problems += label_problems(data, label, strict_findings)
    labelled = {(label.entity_type, label.begin, label.end) for label in record.labels}
    for finding in sorted(findings(data, spans, strict=False) - labelled):
        if not allowed_extra_finding(finding, record.labels):
            entity_type, begin, end = finding
            problems.append("%s %r at %d is found but not labelled" % (entity_type, data[begin:end], begin))
    for negative in record.negatives:
        value = data[negative.begin:negative.end]
        if any(accepts(t, data, negative.begin, negative.end, strict=False) for t in ENTITY_TYPES):
            problems.append("hard negative %s %r passes a validator" % (negative.category, value))
    if record.kind == "hard_negative":
        lowered = data.lower()
        # Only the words of a negative's context type (whose rules its value breaks anyway).
        allowed = {word for n in record.negatives if n.context_type for word in CONTEXT_WORDS[n.context_type]}
        problems += ["context word %r in a hard negative" % word
                     for word in ALL_CONTEXT_WORDS if word not in allowed and word.encode() in lowered]
    return problems


def unfolded_secret_problems(original: bytes, offsets: list[int], folded_findings: set[Finding]) -> list[str]:
    """A setting's value reads the same in the text and in its folded form: the engine looks in
    either, the scanner in the folded form only, so a SECRET reading of the text itself (a value
    running on over a no-break space, say) must be one of the folded text's too."""
    folded_secrets = {(offsets[begin], offsets[end]) for t, begin, end in folded_findings if t == "SECRET"}
    return ["SECRET %r reads differently in the folded text" % original[begin:end]
            for t, begin, end in sorted(findings(original, candidates(original), strict=True))
            if t == "SECRET" and (begin, end) not in folded_secrets]


class CorpusError(Exception):
    pass


def checked(draw: Callable[[], Record], counters: Counter) -> Record:
    """Draw a record until it passes self_check; a draw that keeps failing is a bug."""
    for _ in range(MAX_DRAWS_PER_RECORD):
        record = draw()
        problems = self_check(record)
        if not problems:
            return record
        counters["redraws"] += 1
    raise CorpusError("record %s keeps failing its self-check:\n  %s\n%r"
                      % (record.record_id, "\n  ".join(problems), record.text))


# ---------------------------------------------------------------------------------------
# Neighbours: values beside the short numbers and table layouts of real prompts
# ---------------------------------------------------------------------------------------

def spaced_card(rng: Random) -> str:
    issuer = rng.choice(("visa", "mastercard", "discover", "jcb", "unionpay"))
    return grouped(card_number(rng, issuer, 16), CARD_GROUPINGS[16], " ")


def short_tail_iban(rng: Random) -> str:
    """A grouped IBAN whose last group is shorter than four."""
    while True:
        country = rng.choice(IBAN_COUNTRIES)
        iban = iban_from_bban(country, random_bban(rng, country))
        if len(iban) % 4:
            return group_in_fours(iban)


def expiry(rng: Random) -> str:
    return "%02d/%02d" % (rng.randint(1, 12), rng.randint(24, 35))


def cvv(rng: Random) -> str:
    return random_string(rng, DIGITS, 3)


def neighbour_card_expiry_cvv(rng: Random, b: TextBuilder) -> None:
    b.text(rng.choice(("Card: ", "card ", "Karte: ")))
    b.entity("CREDIT_CARD", "card-expiry-cvv", spaced_card(rng))
    b.text(" %s %s" % (expiry(rng), cvv(rng)))


def neighbour_card_after_count(rng: Random, b: TextBuilder) -> None:
    b.text("%s %d " % (rng.choice(("Card", "Karte", "carte")), rng.randint(1, 9)))
    b.entity("CREDIT_CARD", "card-after-count", spaced_card(rng))


def neighbour_card_after_expiry(rng: Random, b: TextBuilder) -> None:
    b.text("CVV %s EXP %s " % (cvv(rng), expiry(rng)))
    b.entity("CREDIT_CARD", "card-after-expiry", spaced_card(rng))


def neighbour_card_cvv(rng: Random, b: TextBuilder) -> None:
    while True:  # card and CVV must not read as one valid 19-digit card
        card, code = spaced_card(rng), cvv(rng)
        if not is_valid_card(card + code):
            break
    b.text("%s %s " % (rng.choice(FIRST_NAMES).capitalize(), rng.choice(LAST_NAMES).capitalize()))
    b.entity("CREDIT_CARD", "card-cvv", card)
    b.text(" %s" % code)


def neighbour_amex_expiry(rng: Random, b: TextBuilder) -> None:
    b.text("amex ")
    b.entity("CREDIT_CARD", "amex-expiry", grouped(card_number(rng, "amex", 15), CARD_GROUPINGS[15], " "))
    b.text(" %s" % expiry(rng))


def neighbour_iban_after_count(rng: Random, b: TextBuilder) -> None:
    b.text("Account %d " % rng.randint(1, 9))
    b.entity("IBAN_CODE", "iban-after-count", group_in_fours(iban_format(False)(rng, rng.randrange(99))))


def neighbour_iban_amount(rng: Random, b: TextBuilder) -> None:
    b.text("IBAN ")
    b.entity("IBAN_CODE", "iban-amount", short_tail_iban(rng))
    b.text(" %d EUR" % rng.randint(1000, 9999))


def neighbour_ssn_date(rng: Random, b: TextBuilder) -> None:
    b.text("SSN ")
    b.entity("US_SSN", "ssn-date", " ".join(valid_ssn_parts(rng)))
    b.text(" %02d/%02d/%d" % (rng.randint(1, 12), rng.randint(1, 28), rng.randint(1940, 2005)))


def neighbour_nir_after_date(rng: Random, b: TextBuilder) -> None:
    """A row of a list of patients: name, birth date, the grouped NIR that encodes its year and
    month (the date's '/' keeps its year from continuing the NIR's groups)."""
    date = random_date(rng, 1940, 2005)
    b.text("%s %s %s " % (rng.choice(LAST_NAMES).upper(), rng.choice(FIRST_NAMES).capitalize(),
                          date.strftime("%d/%m/%Y")))
    b.entity("FR_NIR", "nir-after-date", nir_written(nir_number(rng, year=date.year % 100, month=date.month), True))
    b.text(rng.choice((" (régime général)", " — ALD", ".", "")))


def neighbour_nir_amount(rng: Random, b: TextBuilder) -> None:
    """A grouped NIR before an amount: a group after the NIR's last, shorter one, does not
    continue it."""
    b.text(rng.choice(("Remboursement ", "Assuré ", "NIR ", "Carte Vitale ")))
    b.entity("FR_NIR", "nir-amount", nir_written(nir_number(rng), True))
    b.text(" %d,%02d €%s" % (rng.randint(1, 250), rng.randint(0, 99),
                             rng.choice(("", " remboursés", " (tiers payant)"))))


def neighbour_tax_id_after_count(rng: Random, b: TextBuilder) -> None:
    """A grouped German tax id after a child's number (a form for the Kindergeld): a group of
    one digit, shorter than the id's first, does not continue it."""
    b.text(rng.choice(("Steuer-ID Kind ", "IdNr. Kind ", "Kindergeld — IdNr Kind ")))
    b.text("%d " % rng.randint(1, 9))
    b.entity("DE_TAX_ID", "tax-id-after-count", de_tax_id_format("any", "grouped")(rng, rng.randrange(2)))
    b.text(rng.choice((".", ", geboren 2019.", "")))


def neighbour_tax_id_amount(rng: Random, b: TextBuilder) -> None:
    """A grouped German tax id before an amount: a group of three digits or fewer after it
    does not continue it."""
    b.text(rng.choice(("Erstattung an Steuer-ID ", "Lohnsteuer-Erstattung, IdNr. ", "Steuer-ID ")))
    b.entity("DE_TAX_ID", "tax-id-amount", de_tax_id_format("any", "grouped")(rng, rng.randrange(2)))
    b.text(" %d,%02d €%s" % (rng.randint(1, 999), rng.randint(0, 99), rng.choice(("", " erstattet", " (2024)"))))


NEIGHBOUR_LAYOUTS: tuple[Callable[[Random, TextBuilder], None], ...] = (
    neighbour_card_expiry_cvv, neighbour_card_after_count, neighbour_card_after_expiry,
    neighbour_card_cvv, neighbour_amex_expiry, neighbour_iban_after_count, neighbour_iban_amount,
    neighbour_ssn_date, neighbour_nir_after_date, neighbour_nir_amount, neighbour_tax_id_after_count,
    neighbour_tax_id_amount,
)


def layout_records(rng: Random, layouts, function_prefix: str, record_prefix: str,
                   per_format: int, counters: Counter) -> list[Record]:
    """per_format positive records of each layout, drawn from rng in order; each named
    "<record_prefix>-<the layout's function name without function_prefix>-<ordinal>"."""
    records = []
    for layout in layouts:
        name = layout.__name__.removeprefix(function_prefix).replace("_", "-")
        for ordinal in range(per_format):
            def draw() -> Record:
                builder = TextBuilder()
                layout(rng, builder)
                return Record("%s-%s-%04d" % (record_prefix, name, ordinal), "positive",
                              "".join(builder.parts), builder.labels, builder.negatives)
            records.append(checked(draw, counters))
    return records


def neighbour_records(seed: int, per_format: int, counters: Counter) -> list[Record]:
    """Records whose values stand beside short numbers (expiry dates, CVVs, counts, amounts,
    dates) and in tables, per_format of each layout; a random stream of their own, so the
    other records do not change."""
    rng = Random("neighbours-%d" % seed)
    return layout_records(rng, NEIGHBOUR_LAYOUTS, "neighbour_", "neighbour", per_format, counters)


# ---------------------------------------------------------------------------------------
# Connection strings: credentials in URLs, beside URLs that hold none
# ---------------------------------------------------------------------------------------

URL_PASSWORD_ALPHABET = BASE62 + "!$&*+-_.~"
URL_HOSTS = ("db.internal", "10.0.4.17", "pg-primary.prod.svc.cluster.local", "localhost",
             "cache_1", "cluster0.ab1cd.mongodb.net", "api.example.com", "[2001:db8::7]")
# URLs that hold no credentials: no userinfo, a user without a password, a port.
URLS_WITHOUT_CREDENTIALS = ("http://localhost:8080/", "https://example.com:443/health",
                            "ssh://deploy@build.internal/srv", "https://status.example.org/",
                            "ftp://mirror.example.net:21/pub/")


def url_password(rng: Random) -> str:
    """A password of 6-20 characters, now and then with an unencoded '@' inside; never a
    stand-in ("$" and an identifier, such as "$CHJjPU4tukJyiG", is drawn again)."""
    while True:
        password = random_string(rng, URL_PASSWORD_ALPHABET, rng.randint(6, 20))
        if rng.random() < 0.3:
            cut = rng.randint(1, len(password) - 1)
            password = password[:cut] + "@" + password[cut:]
        if not is_stand_in(password):
            return password


def url_credentials(rng: Random, user: bool) -> str:
    name = rng.choice(FIRST_NAMES) + rng.choice(("", "_admin", ".ro", "42")) if user else ""
    return "%s:%s@%s" % (name, url_password(rng), rng.choice(URL_HOSTS))


def connection_postgres(rng: Random, b: TextBuilder) -> None:
    b.text(rng.choice(("DATABASE_URL=", "Verbinde mit ", "connexion : ", "dsn: '")))
    b.text(rng.choice(("postgres://", "postgresql://", "mysql://")))
    b.entity("URL_CREDENTIALS", "postgres", url_credentials(rng, user=True))
    b.text(":%d/%s%s" % (rng.choice((5432, 3306, 6432)), rng.choice(LAST_NAMES),
                         rng.choice(("", "?sslmode=require", "'", "."))))


def connection_https(rng: Random, b: TextBuilder) -> None:
    b.text("curl %s " % rng.choice(URLS_WITHOUT_CREDENTIALS))
    b.text("&& curl \"https://")
    b.entity("URL_CREDENTIALS", "https", url_credentials(rng, user=True))
    b.text("/v1/%s\" 🙂" % rng.choice(("items", "export?format=csv", "#top", "")))


def connection_mongodb(rng: Random, b: TextBuilder) -> None:
    b.text("MONGO_URI (%s): mongodb+srv://" % rng.choice(("prod", "テスト", "staging")))
    b.entity("URL_CREDENTIALS", "mongodb", url_credentials(rng, user=True))
    b.text("/?retryWrites=true&w=majority, see %s" % rng.choice(URLS_WITHOUT_CREDENTIALS))


def connection_redis(rng: Random, b: TextBuilder) -> None:
    b.text("Cache: redis://")
    b.entity("URL_CREDENTIALS", "redis", url_credentials(rng, user=rng.random() < 0.5))
    b.text(":6379/%d (nicht %s)" % (rng.randint(0, 15), rng.choice(URLS_WITHOUT_CREDENTIALS)))


def connection_git_clone(rng: Random, b: TextBuilder) -> None:
    """A GitLab token as the password of a clone URL: labelled URL_CREDENTIALS, the longer
    value, which wins the overlap (the token inside it is an allowed extra finding, as the
    e-mail reading of "password@host" is)."""
    b.text(rng.choice(("git clone https://", "git remote set-url origin https://", "RUN git clone https://")))
    user = rng.choice(("oauth2", "gitlab-ci-token", rng.choice(FIRST_NAMES)))
    token = gitlab_token_format("glpat", routable=rng.random() < 0.3)(rng, 0)
    b.entity("URL_CREDENTIALS", "git-clone", "%s:%s@%s" % (user, token, rng.choice(("gitlab.example.com",
                                                                                   "git.acme-corp.io"))))
    b.text("/%s/%s.git%s" % (rng.choice(("platform", "infra", "web")), rng.choice(LAST_NAMES),
                             rng.choice(("", " && cd app", " 🙂"))))


def connection_token_user(rng: Random, b: TextBuilder) -> None:
    """A token of a known type as a URL's user with no password ("https://ghp_...@github.com/...",
    the suite's own key too): URL_CREDENTIALS, "TOKEN@host", the token inside it an allowed
    extra finding (and right after "://" no e-mail address)."""
    kind = rng.randrange(6)
    owner, repository = rng.choice(REPOSITORY_OWNERS), rng.choice(LAST_NAMES)
    if kind == 0:
        before = rng.choice(("git clone https://", "git remote set-url origin https://", "pip install git+https://"))
        token, host = github_token_format(rng.choice(("ghp", "gho", "ghs")))(rng, 0), "github.com"
        after = "/%s/%s.git" % (owner, repository)
    elif kind == 1:
        before, token, host = "git clone https://", github_fine_grained_pat(rng, 0), "github.com"
        after = "/%s/%s.git && cd %s" % (owner, repository, repository)
    elif kind == 2:
        before = rng.choice(("git clone https://", "Klappt nicht: git push https://"))
        token, host = gitlab_token_format("glpat")(rng, 0), "gitlab.example.com"
        after = "/%s/%s.git" % (owner, repository)
    elif kind == 3:
        before, token, host = "git clone https://", huggingface_token(rng, 0), "huggingface.co"
        after = "/%s/tiny-model 🤗" % owner
    elif kind == 4:
        before, token, host = "curl https://", stripe_key_format(("sk_test_", "rk_live_"))(rng, 1), "api.stripe.com"
        after = "/v1/charges -d amount=2000 -d currency=eur"
    else:
        before = rng.choice(("POLICY_SUITE_URL=https://", "Endpoint: https://"))
        token, host = policy_suite_key_format(rng.choice(("svc", "proj")))(rng, 0), "policy.internal"
        after = rng.choice(("/v1/evaluate", ":8443/v1/evaluate"))
    b.text(before)
    b.entity("URL_CREDENTIALS", "token-user", "%s@%s" % (token, host))
    b.text(after)


CONNECTION_LAYOUTS: tuple[Callable[[Random, TextBuilder], None], ...] = (
    connection_postgres, connection_https, connection_mongodb, connection_redis, connection_git_clone,
    connection_token_user,
)


def url_credential_records(seed: int, per_format: int, counters: Counter) -> list[Record]:
    """Records with credentials in URLs (a password with an unencoded '@', an empty user)
    beside URLs without any, per_format of each layout; a random stream of their own."""
    rng = Random("connections-%d" % seed)
    return layout_records(rng, CONNECTION_LAYOUTS,
                          "connection_", "connection", per_format, counters)


# ---------------------------------------------------------------------------------------
# Written phone numbers: a trunk prefix in parentheses, dots, national numbers after a word
# ---------------------------------------------------------------------------------------

def digits_of(rng: Random, template: str) -> str:
    """The template with each 'd' a random digit."""
    return "".join(rng.choice(DIGITS) if c == "d" else c for c in template)


def written_phone_trunk(rng: Random, b: TextBuilder) -> None:
    b.text(rng.choice(("Office: ", "Zentrale ", "Büro — ", "Standard : ")))
    b.entity("PHONE_NUMBER", "intl-trunk", digits_of(rng, rng.choice((
        "+44 (0)20 dddd dddd", "+44 (0)161 ddd dddd", "+49 (0)30 ddddddd", "+41 (0)44 ddd dd dd",
        "+43 (0)1 ddd dddd", "+44 (0) 20 dddd dddd"))))
    b.text(rng.choice((".", ", merci.", " 🙂", "")))


def written_phone_dotted(rng: Random, b: TextBuilder) -> None:
    b.text(rng.choice(("Contact ", "Joignable au ", "Kontakt: ")))
    b.entity("PHONE_NUMBER", "intl-dotted", digits_of(rng, rng.choice((
        "+33.6.dd.dd.dd.dd", "+33.1.dd.dd.dd.dd", "+49.30.dddddddd", "+32.2.ddd.dd.dd"))))
    b.text(rng.choice((" (bureau).", ", danke.", "")))


def written_phone_national(rng: Random, b: TextBuilder) -> None:
    b.text(rng.choice(("Tel. ", "Handy ", "appelez le ", "phone: ", "Téléphone : ", "Rufnummer ",
                       "mobile ", "Festnetz: ")))
    b.entity("PHONE_NUMBER", "national", digits_of(rng, rng.choice((
        "020 dddd dddd", "0161 ddd dddd", "07700 9ddddd", "0171 ddddddd", "030 ddddddd",
        "089/ddddddd", "0151-dddddddd", "06 dd dd dd dd", "01.dd.dd.dd.dd"))))
    b.text(rng.choice((" demain.", ", danke.", " (abends)", ".")))


WRITTEN_PHONE_LAYOUTS: tuple[Callable[[Random, TextBuilder], None], ...] = (
    written_phone_trunk, written_phone_dotted, written_phone_national,
)


def written_phone_records(seed: int, per_format: int, counters: Counter) -> list[Record]:
    """Phone numbers as people write them: "+44 (0)20 7946 0958", "+33.6.12.34.56.78", and
    national numbers after a phone word ("Tel. 020 7946 0958"), per_format of each layout;
    a random stream of their own."""
    rng = Random("written-phones-%d" % seed)
    return layout_records(rng, WRITTEN_PHONE_LAYOUTS,
                          "written_phone_", "written-phone", per_format, counters)


# ---------------------------------------------------------------------------------------
# Typography: values as word processors, PDFs, French and German locales and Japanese input
# methods write them, and numbers so written that are none
# ---------------------------------------------------------------------------------------

def typographic_card_space(rng: Random, b: TextBuilder) -> None:
    space = rng.choice(TYPOGRAPHIC_SPACES)
    b.text(rng.choice(("Carte\u00a0: ", "Karte: ", "card ", "N° de carte ")))
    if rng.random() < 0.2:
        card = grouped(card_number(rng, "amex", 15), CARD_GROUPINGS[15], space)
    else:
        card = spaced_card(rng).replace(" ", space)
    b.entity("CREDIT_CARD", "card-typographic-space", card)
    b.text(rng.choice((".", "\u00a0; merci.", "", " 🙂")))


def typographic_card_dash(rng: Random, b: TextBuilder) -> None:
    b.text(rng.choice(("Kartennummer ", "card: ", "")))
    b.entity("CREDIT_CARD", "card-typographic-dash", spaced_card(rng).replace(" ", rng.choice(TYPOGRAPHIC_DASHES)))
    b.text(rng.choice((" (Visa?)", ".", "")))


def typographic_card_full_width(rng: Random, b: TextBuilder) -> None:
    b.text(rng.choice(("カード番号：", "クレジットカード ", "カード番号　", "")))
    card = spaced_card(rng) if rng.random() < 0.5 else card_number(rng, rng.choice(("visa", "mastercard")), 16)
    b.entity("CREDIT_CARD", "card-full-width", full_width(card, rng.choice((" ", IDEOGRAPHIC_SPACE))))
    b.text(rng.choice(("。", "です。", "")))


def typographic_iban_space(rng: Random, b: TextBuilder) -> None:
    iban = group_in_fours(iban_format(False)(rng, rng.randrange(99)))
    if rng.random() < 0.3:
        iban = iban.lower()
    b.text(rng.choice(("IBAN\u00a0: ", "IBAN ", "Kontonummer ", "compte ")))
    b.entity("IBAN_CODE", "iban-typographic-space", iban.replace(" ", rng.choice(TYPOGRAPHIC_SPACES)))
    b.text(rng.choice((".", ", merci.", " (compte joint)", "")))


def typographic_iban_lowercase(rng: Random, b: TextBuilder) -> None:
    """Grouped in lowercase, its groups of letters too ("gb82 west 1234 5698 7654 32")."""
    b.text(rng.choice(("iban: ", "Bitte überweisen an ", "virement vers ", "send it to ")))
    b.entity("IBAN_CODE", "iban-lowercase-grouped", group_in_fours(iban_format(False)(rng, rng.randrange(99))).lower())
    b.text(rng.choice((".", ", danke.", " (Girokonto)", " — thanks")))


def typographic_ssn(rng: Random, b: TextBuilder) -> None:
    b.text(rng.choice(("SSN\u00a0: ", "social security number ", "Please mask ", "")))
    separator = rng.choice(TYPOGRAPHIC_DASHES + ("\u00a0",))
    b.entity("US_SSN", "ssn-typographic", separator.join(valid_ssn_parts(rng)))
    b.text(rng.choice((".", " please.", "")))


def typographic_ssn_full_width(rng: Random, b: TextBuilder) -> None:
    b.text(rng.choice(("SSN ", "SSN：", "social security ", "ＳＳＮ：", "ＳＳＮ　")))
    b.entity("US_SSN", "ssn-full-width", full_width(rng.choice(("-", "")).join(valid_ssn_parts(rng))))
    b.text(rng.choice(("。", "")))


def typographic_phone(rng: Random, b: TextBuilder) -> None:
    """NANP numbers with a no-break space or dashes other than '-', international numbers with
    narrow no-break spaces (French grouping), a French national number after "Tél."."""
    kind = rng.randrange(3)
    if kind == 0:
        area, exchange, line = nanp_parts(rng)
        dash = rng.choice(TYPOGRAPHIC_DASHES)
        b.text(rng.choice(("Call ", "Office: ", "")))
        b.entity("PHONE_NUMBER", "nanp-typographic", rng.choice((
            "(%s)\u00a0%s%s%s" % (area, exchange, dash, line), "%s%s%s%s%s" % (area, dash, exchange, dash, line),
            "+1\u00a0%s\u00a0%s\u00a0%s" % (area, exchange, line))))
    elif kind == 1:
        b.text(rng.choice(("Joignable au ", "Contact ", "Bureau\u00a0: ")))
        phone = international_format(ALL_INTERNATIONAL_PHONES, compact=False)(rng, rng.randrange(99))
        b.entity("PHONE_NUMBER", "intl-typographic", phone.replace(" ", rng.choice(TYPOGRAPHIC_SPACES)))
    else:
        b.text(rng.choice(("Tél.\u00a0: ", "Téléphone ", "portable ")))
        b.entity("PHONE_NUMBER", "national-typographic",
                 digits_of(rng, "0d dd dd dd dd").replace(" ", rng.choice(TYPOGRAPHIC_SPACES)))
    b.text(rng.choice((".", ", merci.", " (bureau)", "")))


def typographic_phone_full_width(rng: Random, b: TextBuilder) -> None:
    if rng.random() < 0.3:
        b.text(rng.choice(("連絡先 ", "Office ", "")))
        b.entity("PHONE_NUMBER", "intl-full-width", full_width(digits_of(rng, rng.choice((
            "+81 90-dddd-dddd", "+81 3-dddd-dddd", "+86 138 dddd dddd")))))
    else:
        b.text(rng.choice(("電話：", "携帯 ", "TEL：", "電話番号 ")))
        b.entity("PHONE_NUMBER", "national-full-width", full_width(digits_of(rng, rng.choice((
            "090-dddd-dddd", "080-dddd-dddd", "03-dddd-dddd", "06-dddd-dddd")))))
    b.text(rng.choice(("。", "（平日）", "")))


def typographic_phone_nine_digits(rng: Random, b: TextBuilder) -> None:
    """Spanish and Portuguese numbers of nine digits without a trunk prefix, after a phone word."""
    b.text(rng.choice(("teléfono ", "Telefone: ", "móvil ", "tel. ", "telemóvel ", "Llámame al móvil ",
                       "Teléfono\u00a0: ")))
    phone = digits_of(rng, rng.choice(("6dd ddd ddd", "7dd ddd ddd", "9dd ddd ddd", "9dd dd dd dd",
                                       "6dd-ddd-ddd", "2dd ddd ddd")))
    if rng.random() < 0.2:
        phone = phone.replace(" ", rng.choice(TYPOGRAPHIC_SPACES))
    b.entity("PHONE_NUMBER", "nine-digits", phone)
    b.text(rng.choice((".", ", gracias.", " (casa)", ", obrigado.", "")))


def typographic_email_full_width(rng: Random, b: TextBuilder) -> None:
    b.text(rng.choice(("メールアドレス：", "mail ", "連絡先 ")))
    email = email_dotted(rng, rng.randrange(99)).replace("@", FULL_WIDTH["@"])
    if rng.random() < 0.3:
        email = email.replace(".", FULL_WIDTH["."])
    b.entity("EMAIL_ADDRESS", "email-full-width", email)
    b.text(rng.choice(("。", " まで", "")))


def typographic_email_typed_full_width(rng: Random, b: TextBuilder) -> None:
    """Every character full-width, letters too, as an input method left in full-width mode
    types it."""
    b.text(rng.choice(("メールアドレス：", "Ｅメール：", "連絡先　", "ｍａｉｌ：")))
    email = rng.choice((email_dotted, email_plus_tag, email_subdomain))(rng, rng.randrange(99))
    b.entity("EMAIL_ADDRESS", "email-typed-full-width", full_width(email))
    b.text(rng.choice(("。", "　まで", "（仕事用）", "")))


def typographic_iban_full_width(rng: Random, b: TextBuilder) -> None:
    """Typed full-width, compact or in groups of four apart by ideographic or ASCII spaces."""
    b.text(rng.choice(("ＩＢＡＮ：", "振込先 IBAN ", "口座番号：", "ＩＢＡＮ　")))
    iban = iban_format(False)(rng, rng.randrange(99))
    if rng.random() < 0.6:
        iban = full_width(group_in_fours(iban), rng.choice((IDEOGRAPHIC_SPACE, " ")))
    else:
        iban = full_width(iban)
    b.entity("IBAN_CODE", "iban-full-width", iban)
    b.text(rng.choice(("。", "（普通預金）", " まで", "")))


def typographic_phone_ideographic_space(rng: Random, b: TextBuilder) -> None:
    """Digit groups apart by ideographic spaces, the digits ASCII or full-width, after a phone
    word in kanji or typed full-width ("ＴＥＬ", "Ｐｈｏｎｅ")."""
    b.text(rng.choice(("電話：", "携帯　", "ＴＥＬ：", "Ｐｈｏｎｅ：", "電話番号　")))
    phone = digits_of(rng, rng.choice(("090 dddd dddd", "080 dddd dddd", "03 dddd dddd", "+81 90 dddd dddd",
                                       "+81 3 dddd dddd")))
    b.entity("PHONE_NUMBER", "ideographic-space",
             full_width(phone, IDEOGRAPHIC_SPACE) if rng.random() < 0.5 else phone.replace(" ", IDEOGRAPHIC_SPACE))
    b.text(rng.choice(("。", "（平日）", "")))


def typographic_secret_full_width(rng: Random, b: TextBuilder) -> None:
    """An AWS access key id or a GitHub token pasted from a full-width input field."""
    b.text(rng.choice(("キー：", "アクセスキーＩＤ：", "トークン　", "token：")))
    if rng.random() < 0.5:
        b.entity("AWS_ACCESS_KEY", "aws-full-width",
                 full_width(aws_key_format(rng.choice(("AKIA", "ASIA")))(rng, 0)))
    else:
        b.entity("GITHUB_TOKEN", "github-full-width",
                 full_width(github_token_format(rng.choice(("ghp", "gho", "ghs")))(rng, 0)))
    b.text(rng.choice(("。", "（削除してください）", "")))


def typographic_token_full_width(rng: Random, b: TextBuilder) -> None:
    """A Google API key, a Stripe secret key or an npm token pasted from a full-width input
    field ('＿' and '－' fold to '_' and '-')."""
    b.text(rng.choice(("ＡＰＩキー：", "シークレットキー：", "トークン　", "key：")))
    kind = rng.randrange(3)
    if kind == 0:
        b.entity("GOOGLE_API_KEY", "google-full-width", full_width(google_api_key(rng, 0)))
    elif kind == 1:
        b.entity("STRIPE_API_KEY", "stripe-full-width", full_width(stripe_key_format(("sk_live_", "rk_live_"))(rng, 1)))
    else:
        b.entity("NPM_TOKEN", "npm-full-width", full_width(npm_token(rng, 0)))
    b.text(rng.choice(("。", "（本番環境）", "")))


def typographic_nir_space(rng: Random, b: TextBuilder) -> None:
    """A NIR grouped by no-break or narrow no-break spaces, as French word processors print it."""
    b.text(rng.choice(("N° de sécurité sociale\u00a0: ", "NIR\u00a0: ", "Carte Vitale ", "Assuré(e) ")))
    nir = nir_written(nir_number(rng, rng.choice(("standard", "standard", "corsica"))), True)
    b.entity("FR_NIR", "nir-typographic-space", nir.replace(" ", rng.choice(TYPOGRAPHIC_SPACES)))
    b.text(rng.choice((".", "\u00a0; merci.", "", " (régime général)")))


def typographic_personnummer_dash(rng: Random, b: TextBuilder) -> None:
    """A personnummer whose dash a word processor made an en dash, a non-breaking hyphen or a
    minus sign."""
    b.text(rng.choice(("Personnummer: ", "Pnr ", "Mitt personnummer är ", "Personnummer\u00a0: ")))
    value = se_pin_format("dash", "twelve-dash")(rng, rng.randrange(2))
    b.entity("SE_PERSONAL_IDENTITY_NUMBER", "personnummer-typographic-dash",
             value.replace("-", rng.choice(TYPOGRAPHIC_DASHES)))
    b.text(rng.choice((".", ", tack.", "")))


def typographic_tax_id_space(rng: Random, b: TextBuilder) -> None:
    """A German tax id grouped by no-break or narrow no-break spaces, as the tax office's
    letters and word processors print it."""
    b.text(rng.choice(("Steuer-ID\u00a0", "Identifikationsnummer: ", "IdNr.\u00a0", "Ihre Steuer-ID lautet ")))
    value = de_tax_id_format("any", "grouped")(rng, rng.randrange(2))
    b.entity("DE_TAX_ID", "tax-id-typographic-space", value.replace(" ", rng.choice(TYPOGRAPHIC_SPACES)))
    b.text(rng.choice((".", ", danke.", "")))


def typographic_national_number_separators(rng: Random, b: TextBuilder) -> None:
    """A Belgian national number, an Austrian e-card number, a CPR number or a Portuguese tax
    number as word processors write them: no-break or narrow no-break spaces between its groups,
    a non-breaking hyphen or an en dash for its '-', after its word."""
    space, dash = rng.choice(TYPOGRAPHIC_SPACES[:2]), rng.choice(("\u2011", "\u2013"))
    kind = rng.randrange(4)
    if kind == 0:
        b.text(rng.choice(("Rijksregisternummer\u00a0: ", "INSZ ", "NISS\u00a0: ", "Numéro national ")))
        form = rng.choice(("pairs", "spaced", "dashed", "document", "document-spaced-check"))
        value = BE_NATIONAL_NUMBER_FORMS[form](be_national_number(rng))
        b.entity("BE_NATIONAL_NUMBER", "be-typographic", value.replace(" ", space).replace("-", dash))
    elif kind == 1:
        b.text(rng.choice(("SVNR ", "Sozialversicherungsnummer\u00a0: ", "e-card: Versicherungsnummer ")))
        b.entity("AT_SOCIAL_INSURANCE_NUMBER", "svnr-typographic", at_svnr_format("e-card")(rng, 0).replace(" ", space))
    elif kind == 2:
        b.text(rng.choice(("CPR-nr.: ", "CPR-nummer ", "Mit CPR-nummer er ")))
        value = dk_cpr_format("standard", rng.choice(("dash", "spaced")))(rng, 0)
        b.entity("DK_CPR", "cpr-typographic", value.replace(" ", space).replace("-", dash))
    else:
        b.text(rng.choice(("NIF: ", "Contribuinte n.º ", "Número de contribuinte\u00a0: ")))
        b.entity("PT_TAX_ID", "nif-typographic", pt_tax_id_format(PT_PERSONAL_PREFIXES, "spaced")(rng, rng.randrange(4))
                 .replace(" ", space))
    b.text(rng.choice((".", "", ";", " (2025)")))


TYPOGRAPHIC_LAYOUTS: tuple[Callable[[Random, TextBuilder], None], ...] = (
    typographic_card_space, typographic_card_dash, typographic_card_full_width, typographic_iban_space,
    typographic_iban_lowercase, typographic_ssn, typographic_ssn_full_width, typographic_phone,
    typographic_phone_full_width, typographic_phone_nine_digits, typographic_email_full_width,
    typographic_email_typed_full_width, typographic_iban_full_width, typographic_phone_ideographic_space,
    typographic_secret_full_width, typographic_nir_space, typographic_personnummer_dash,
    typographic_tax_id_space, typographic_token_full_width, typographic_national_number_separators,
)


def date_range(rng: Random, ordinal: int) -> str:
    start = rng.randint(1990, 2020)
    return "%d\u2013%d" % (start, start + rng.randint(1, 9))


def day_range(rng: Random, ordinal: int) -> str:
    first = rng.randint(1, 20)
    return "%d\u2013%d %s" % (first, first + rng.randint(1, 8), rng.choice(("mars", "Mai", "June")))


def date_with_dashes(rng: Random, ordinal: int) -> str:
    return "%d%s%02d%s%02d" % (rng.randint(1990, 2030), "\u2011", rng.randint(1, 12), "\u2011", rng.randint(1, 28))


def french_amount(rng: Random, ordinal: int) -> str:
    """"1 234,56 €" with a narrow no-break space between the thousands."""
    amount = "{:,}".format(rng.randint(1000, 99999999)).replace(",", rng.choice(("\u202f", "\u00a0")))
    return "%s,%02d\u00a0€" % (amount, rng.randint(0, 99))


def full_width_order_number(rng: Random, ordinal: int) -> str:
    return full_width(random_string(rng, "123456789", 1) + random_string(rng, DIGITS, rng.choice((8, 9, 10))))


def grouped_nine_digits(rng: Random, ordinal: int) -> str:
    number = digits_of(rng, rng.choice(("6dd ddd ddd", "9dd-ddd-ddd", "7dd dd dd dd", "9dd ddd ddd")))
    return full_width(number) if rng.random() < 0.3 else number


def typographic_card_failing_luhn(rng: Random, ordinal: int) -> str:
    return card_failing_luhn(" ")(rng, ordinal).replace(" ", rng.choice(TYPOGRAPHIC_SPACES))


def full_width_card_failing_luhn(rng: Random, ordinal: int) -> str:
    return full_width(card_failing_luhn(" ")(rng, ordinal), rng.choice((" ", IDEOGRAPHIC_SPACE)))


def full_width_iban_failing_check(rng: Random, ordinal: int) -> str:
    return full_width(iban_with_wrong_check(ordinal % 2 == 0)(rng, ordinal), IDEOGRAPHIC_SPACE)


def full_width_version_quad(rng: Random, ordinal: int) -> str:
    """'Ｖｅｒｓｉｏｎ　１．２．３．４': a dotted quad made a version by the word before it, typed
    full-width."""
    word = ("Version", "version", "ver", "v")[ordinal % 4]
    space = "" if word == "v" else rng.choice((" ", IDEOGRAPHIC_SPACE))
    return full_width(word) + space + full_width(dotted_quad_within_ip_range(rng))


def full_width_date(rng: Random, ordinal: int) -> str:
    year, month, day = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    return full_width(("%d-%02d-%02d", "%d/%02d/%02d", "%d.%02d.%02d")[ordinal % 3] % (year, month, day))


def full_width_time(rng: Random, ordinal: int) -> str:
    return full_width(clock_time(rng, ordinal))


TYPOGRAPHIC_NEGATIVE_VARIANTS = (
    NegativeVariant("typographic_range", "years-en-dash", date_range),
    NegativeVariant("typographic_range", "days-en-dash", day_range),
    NegativeVariant("typographic_date", "non-breaking-hyphens", date_with_dashes),
    NegativeVariant("typographic_price", "french-amount", french_amount),
    NegativeVariant("full_width_number", "order-number", full_width_order_number),
    NegativeVariant("grouped_nine_digits", "no-phone-word", grouped_nine_digits),
    NegativeVariant("typographic_card_luhn_fail", "no-break-space", typographic_card_failing_luhn),
    NegativeVariant("typographic_card_luhn_fail", "full-width", full_width_card_failing_luhn),
    NegativeVariant("iban_bad_check", "full-width", full_width_iban_failing_check),
    NegativeVariant("version_string", "full-width", full_width_version_quad),
    NegativeVariant("date", "full-width", full_width_date),
    NegativeVariant("time", "full-width", full_width_time),
)
TYPOGRAPHIC_NEGATIVE_FRAMES = (
    "Contrat {v}, renouvelé.", "Pedido {v} enviado.", "Summe: {v}", "注文番号：{v}", "Référence {v} 📦",
    "Factura {v} pagada.", "Zeitraum {v}.", "備考：{v}　以上です。", "（{v}）",
)


def typographic_records(seed: int, per_format: int, counters: Counter) -> list[Record]:
    """Values written with no-break, thin and ideographic spaces, typographic dashes and
    full-width characters, lowercase IBANs in groups and nine-digit national numbers,
    per_format of each layout; and hard negatives so written (date ranges, amounts, order
    numbers, full-width dates, times and versions), per_format of each variant; a random
    stream of their own."""
    rng = Random("typography-%d" % seed)
    records = layout_records(rng, TYPOGRAPHIC_LAYOUTS,
                             "typographic_", "typographic", per_format, counters)
    for variant in TYPOGRAPHIC_NEGATIVE_VARIANTS:
        for ordinal in range(per_format):
            def draw() -> Record:
                before, after = split_frame(rng.choice(TYPOGRAPHIC_NEGATIVE_FRAMES), "")
                builder = TextBuilder()
                builder.text(before)
                builder.negative(variant, variant.generate(rng, ordinal))
                builder.text(after)
                return Record("negative-%s-%s-%04d" % (variant.category, variant.name, ordinal),
                              "hard_negative", "".join(builder.parts), [], builder.negatives)
            records.append(checked(draw, counters))
    return records


# ---------------------------------------------------------------------------------------
# Documents: the fifth batch's values beside other values (/tmp/mrz_vat_spec.md)
# ---------------------------------------------------------------------------------------

# An invoice's footer: the supplier's VAT number and its IBAN, of the same country (whose grouped
# IBAN holds no VAT number's reading: "DE89 3704 0044 0532 0130 00" holds none at "DE").
VAT_INVOICE_COUNTRIES = {
    "DE": ("Acme Handels GmbH · Hauptstraße 5 · 10115 Berlin", "USt-IdNr.: "),
    "AT": ("Alpen Logistik GmbH · Ringstraße 12 · 1010 Wien", "UID-Nr.: "),
    "FR": ("Globex SAS · 12 rue de la Paix · 75002 Paris", "N° TVA intracommunautaire : "),
    "IT": ("Umbria Tessuti Srl · Via Roma 8 · 06121 Perugia", "P. IVA "),
    "ES": ("Iberia Componentes SL · Calle Mayor 3 · 28013 Madrid", "IVA intracomunitario: "),
    "NL": ("Initech B.V. · Keizersgracht 100 · 1015 Amsterdam", "BTW-nr.: "),
}
SUPPLIER_NAMES = {"AT": "Alpen Logistik GmbH", "BE": "Brabant Foods NV", "DE": "Acme Handels GmbH",
                  "DK": "Northwind ApS", "ES": "Iberia Componentes SL", "FI": "Fabrikam Oy", "FR": "Globex SAS",
                  "HU": "Danube Kft", "IT": "Umbria Tessuti Srl", "LT": "Baltic Wood UAB", "NL": "Initech BV",
                  "PL": "Wisla Meble Sp. z o.o.", "PT": "Tejo Lda", "RO": "Carpathia SRL", "SE": "Contoso AB"}


def vat_value(rng: Random, country: str, form: str = "compact", kind: str = "company") -> str:
    while True:
        value = vat_written(country, vat_national(rng, country, kind), form)
        if vat_free_of_other_findings(value):
            return value


def document_vat_invoice_iban(rng: Random, b: TextBuilder) -> None:
    """An invoice's footer: the VAT number and the IBAN of the supplier, both labelled."""
    country = rng.choice(tuple(VAT_INVOICE_COUNTRIES))
    address, vat_label = VAT_INVOICE_COUNTRIES[country]
    b.text("Rechnung / Invoice 2025-%04d\n%s\n%s" % (rng.randint(1, 9999), address, vat_label))
    form = rng.choice(("compact", "prefix-space", "grouped"))
    b.entity("EU_VAT_NUMBER", "invoice-iban", vat_value(rng, country, form))
    b.text(rng.choice(("\nIBAN: ", "\nIBAN ", " · IBAN ")))
    iban = iban_from_bban(country, random_bban(rng, country))
    b.entity("IBAN_CODE", "invoice-iban", group_in_fours(iban) if rng.random() < 0.7 else iban)
    b.text(rng.choice(("\n", "\nZahlbar innerhalb von 14 Tagen.", " · payable within 30 days")))


def document_supplier_table(rng: Random, b: TextBuilder) -> None:
    """Supplier master data as CSV: two to four suppliers' VAT numbers, each labelled, and one
    from the United Kingdom (GB, a prefix not claimed: none)."""
    b.text("supplier_no;name;country;vat_id\n")
    countries = rng.sample(VAT_COUNTRIES, rng.randint(2, 4))
    uk_row = rng.randrange(len(countries) + 1)
    for row in range(len(countries) + 1):
        if row == uk_row:
            gb = drawn_until(clean_negative, lambda: "GB" + rng.choice("123456789") + random_string(rng, DIGITS, 8))
            b.text("%d;Britannia Ltd;GB;%s\n" % (10040 + row, gb))
            continue
        country = countries[row - (row > uk_row)]
        b.text("%d;%s;%s;" % (10040 + row, SUPPLIER_NAMES.get(country, "Europa Trading Ltd"), country))
        b.entity("EU_VAT_NUMBER", "supplier-table", vat_value(rng, country))
        b.text("\n")


def mrz_holder_name(lines: tuple[str, ...]) -> str:
    """The holder's name, as a form writes it, from a zone's name field."""
    field = lines[2] if len(lines) == 3 else lines[0][5:]
    surname, _, given = field.strip("<").partition("<<")
    return " ".join(part.capitalize() for part in given.split("<") + surname.split("<") if part)


def document_kyc_profile(rng: Random, b: TextBuilder) -> None:
    """A KYC profile in JSON: the applicant's name, e-mail address and MRZ (its line breaks JSON's
    "\\n"), the address and the MRZ labelled."""
    while True:
        lines = mrz_zone(rng, rng.choice(("td3", "td1", "td2")))
        if mrz_free_of_other_findings("\\n".join(lines)):
            break
    name = mrz_holder_name(lines)
    b.text('{"applicant": {"name": "%s", "email": "' % name)
    parts = name.lower().split()
    b.entity("EMAIL_ADDRESS", "kyc-profile", "%s.%s@%s" % (parts[0], parts[-1], rng.choice(EMAIL_DOMAINS)))
    b.text('", "document": {"mrz": "')
    b.entity("IDENTITY_DOCUMENT_MRZ", "kyc-profile", "\\n".join(lines))
    b.text('", "source": "%s"}}}' % rng.choice(("ocr", "nfc", "manual")))


def document_mrz_misread_first_line(rng: Random, b: TextBuilder) -> None:
    """A zone whose first line the OCR misread, starting with a letter no zone starts with
    ("X<UTO..."): its data line, valid on its own, is the finding (a lone data line)."""
    while True:
        lines = mrz_zone(rng, rng.choice(("td3", "td2")))
        first = rng.choice("XXXFRBDK") + lines[0][1:]
        if mrz_free_of_other_findings(lines[1]) and clean_negative(first):
            break
    b.text(rng.choice(("OCR of the data page (the first line came out garbled):\n",
                       "Scan result, line 1 misread:\n", "OCR-Ergebnis (erste Zeile fehlerhaft):\n")))
    b.text(first + "\n")
    b.entity("IDENTITY_DOCUMENT_MRZ", "misread-first-line", lines[1])
    b.text(rng.choice(("\nCan you read the rest?", "", "\n-- end of scan --")))


DOCUMENT_LAYOUTS: tuple[Callable[[Random, TextBuilder], None], ...] = (
    document_vat_invoice_iban, document_supplier_table, document_kyc_profile, document_mrz_misread_first_line,
)


def document_records(seed: int, per_format: int, counters: Counter) -> list[Record]:
    """The fifth batch's values beside other values: an invoice's VAT number and IBAN, supplier
    master data, a KYC profile's e-mail address and MRZ, a zone whose first line was misread (its
    data line the finding), per_format of each layout; a random stream of their own."""
    rng = Random("documents-%d" % seed)
    return layout_records(rng, DOCUMENT_LAYOUTS, "document_", "document", per_format, counters)


# ---------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------

def records_per_format(entity_type: str, per_format: int) -> int:
    formats = sum(1 for f in POSITIVE_FORMATS if f.entity_type == entity_type)
    return max(per_format, math.ceil(MIN_FORMATS_PER_TYPE * per_format / formats))


# /tmp/secrets_spec7.md's formats and hard negatives: two thirds of the usual records each (480 records a
# seed at the default, twelve formats and variants).
SPEC7_SHARE = (2, 3)
SPEC7_FORMAT_NAMES = frozenset(f.name for f in spec7_formats())
SPEC7_VARIANT_KEYS = frozenset((v.category, v.name) for v in SPEC7_NEGATIVE_VARIANTS)


def spec7_share(count: int) -> int:
    return math.ceil(count * SPEC7_SHARE[0] / SPEC7_SHARE[1])


def generate_corpus(seed: int, per_format: int, counters: Counter | None = None) -> list[Record]:
    """All records for the seed: positives format by format, then hard negatives."""
    rng = Random(seed)
    counters = Counter() if counters is None else counters
    records = []
    for fmt in POSITIVE_FORMATS:
        count = records_per_format(fmt.entity_type, per_format)
        for ordinal in range(spec7_share(count) if fmt.name in SPEC7_FORMAT_NAMES else count):
            record_id = "%s-%s-%04d" % (fmt.entity_type.lower(), fmt.name, ordinal)
            records.append(checked(lambda: draw_positive(rng, fmt, ordinal, record_id), counters))
    for variant in NEGATIVE_VARIANTS:
        count = spec7_share(per_format) if (variant.category, variant.name) in SPEC7_VARIANT_KEYS else per_format
        for ordinal in range(count):
            record_id = "negative-%s-%s-%04d" % (variant.category, variant.name, ordinal)
            records.append(checked(lambda: draw_hard_negative(rng, variant, ordinal, record_id), counters))
    records += neighbour_records(seed, per_format, counters)
    records += url_credential_records(seed, per_format, counters)
    records += written_phone_records(seed, per_format, counters)
    records += typographic_records(seed, per_format, counters)
    records += document_records(seed, per_format, counters)
    return records


def serialize(record: Record) -> bytes:
    data = record.text.encode()
    lines = [b"record %s %s\n" % (record.record_id.encode(), record.kind.encode()),
             b"text %d\n" % len(data), data, b"\n"]
    lines += [b"entity %s %d %d\n" % (label.entity_type.encode(), label.begin, label.end)
              for label in record.labels]
    lines.append(b"end\n")
    return b"".join(lines)


def corpus_bytes(records: list[Record]) -> bytes:
    return b"".join(serialize(record) for record in records)


def stats_report(records: list[Record], counters: Counter, seconds: float) -> str:
    kinds = Counter(record.kind for record in records)
    per_type = Counter(label.entity_type for record in records for label in record.labels)
    per_format = Counter((label.entity_type, label.format_name)
                         for record in records for label in record.labels)
    per_category = Counter(n.category for record in records for n in record.negatives)
    per_variant = Counter((n.category, n.variant) for record in records for n in record.negatives)
    multi = sum(1 for record in records if len(record.labels) > 1)
    lines = [
        "records: %d (positive %d, hard_negative %d); records with several entities: %d"
        % (len(records), kinds["positive"], kinds["hard_negative"], multi),
        "labels: %d; hard negatives placed: %d (%d in positive records); redraws: %d; %.1f s"
        % (sum(per_type.values()), sum(per_category.values()),
           sum(len(r.negatives) for r in records if r.kind == "positive"), counters["redraws"], seconds),
        "", "labels per type:",
    ]
    lines += ["  %-18s %6d" % (t, per_type[t]) for t in ENTITY_TYPES]
    lines += ["", "labels per format:"]
    lines += ["  %-40s %6d" % ("%s/%s" % (t, f.name), per_format[(t, f.name)])
              for t in ENTITY_TYPES for f in POSITIVE_FORMATS if f.entity_type == t]
    lines += ["", "hard negatives per category (variant counts):"]
    all_variants = NEGATIVE_VARIANTS + TYPOGRAPHIC_NEGATIVE_VARIANTS
    for category in dict.fromkeys(v.category for v in all_variants):
        variants = ", ".join("%s %d" % (v.name, per_variant[(category, v.name)])
                             for v in all_variants if v.category == category)
        lines.append("  %-20s %6d  (%s)" % (category, per_category[category], variants))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--output", help="corpus file to write")
    parser.add_argument("--per-format", type=int, default=DEFAULT_PER_FORMAT,
                        help="positive records per format (types with fewer than %d formats get "
                             "proportionally more) and hard-negative records per variant (default %d)"
                             % (MIN_FORMATS_PER_TYPE, DEFAULT_PER_FORMAT))
    parser.add_argument("--stats", action="store_true", help="print record and label counts")
    args = parser.parse_args(argv)
    if args.output is None and not args.stats:
        parser.error("nothing to do: give --output and/or --stats")
    if args.per_format < 1:
        parser.error("--per-format must be at least 1")
    started = time.monotonic()
    counters = Counter()
    try:
        records = generate_corpus(args.seed, args.per_format, counters)
    except CorpusError as error:
        print("generate.py: %s" % error, file=sys.stderr)
        return 1
    if args.output:
        with open(args.output, "wb") as out:
            out.write(corpus_bytes(records))
    if args.stats:
        print(stats_report(records, counters, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
