#include "services/pii/validators.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::pii {
namespace {

using ::testing::Contains;
using ::testing::IsNull;
using ::testing::NotNull;

// Every copy of `valid` with one digit replaced by another digit.
std::vector<std::string> SingleDigitChanges(const std::string& valid) {
  std::vector<std::string> changed;
  for (size_t i = 0; i < valid.size(); ++i) {
    if (valid[i] < '0' || valid[i] > '9') continue;
    for (char d = '0'; d <= '9'; ++d) {
      if (d == valid[i]) continue;
      std::string copy = valid;
      copy[i] = d;
      changed.push_back(copy);
    }
  }
  return changed;
}

TEST(LuhnTest, AcceptsValidNumbersWithSeparators) {
  EXPECT_TRUE(PassesLuhn("4111111111111111"));
  EXPECT_TRUE(PassesLuhn("4111 1111 1111 1111"));
  EXPECT_TRUE(PassesLuhn("4111-1111-1111-1111"));
  EXPECT_TRUE(PassesLuhn("79927398713"));
  EXPECT_FALSE(PassesLuhn("79927398710"));
  EXPECT_FALSE(PassesLuhn("4111.1111.1111.1111"));  // Dots are not card separators.
  EXPECT_FALSE(PassesLuhn("0"));
  EXPECT_FALSE(PassesLuhn(""));
  EXPECT_FALSE(PassesLuhn("4111x1111"));
}

TEST(LuhnTest, DetectsEverySingleDigitError) {
  for (const std::string& wrong : SingleDigitChanges("4111111111111111")) {
    EXPECT_FALSE(PassesLuhn(wrong)) << wrong;
  }
}

TEST(CreditCardTest, AcceptsEachIssuer) {
  for (const char* card : {
           "4111111111111111",     // Visa 16
           "4222222222222",        // Visa 13
           "4111111111111111110",  // Visa 19
           "5555555555554444",     // Mastercard 51-55
           "2223003122003222",     // Mastercard 2221-2720
           "378282246310005",      // Amex 37
           "6011111111111117",     // Discover 6011
           "6440000000000005",     // Discover 644-649
           "6500000000000000003",  // Discover 65, 19 digits
           "3530111333300000",     // JCB
           "30569309025904",       // Diners 300-305, 14 digits
           "360000000000004",      // Diners 36, 15 digits
           "6221260000000000",     // UnionPay
           "3782 822463 10005",    // Amex grouped 4-6-5
           "3056-930902-5904",     // Diners grouped 4-6-4
       }) {
    EXPECT_TRUE(IsValidCreditCard(card)) << card;
  }
}

TEST(CreditCardTest, RejectsWrongIssuerLengthOrCheck) {
  for (const char* card : {
           "4111111111111112",      // Luhn.
           "411111111111111",       // Visa of 15 digits.
           "5555555555554",         // Mastercard of 13.
           "378282246310005000",    // Amex of 18.
           "1234567812345670",      // Luhn-valid, no issuer starts with 1.
           "9111111111111111",      // No issuer starts with 9.
           "7000000000000000",      // Nor 7.
           "2220000000000000",      // Below the Mastercard 2-series.
           "411111111111",          // Too short.
           "41111111111111111111",  // Too long.
           "4111 1111 1111 111x",
       }) {
    EXPECT_FALSE(IsValidCreditCard(card)) << card;
  }
}

TEST(IbanTest, AcceptsRegistryExamples) {
  for (const char* iban :
       {"DE89370400440532013000", "GB82WEST12345698765432", "GB82 WEST 1234 5698 7654 32",
        "AL47212110090000000235698741", "AT611904300234573201", "BE68539007547034",
        "CH9300762011623852957", "FR1420041010050500013M02606", "NL91ABNA0417164300",
        "NO9386011117947", "MT84MALT011000012345MTLCAST001S", "SE4550000000058398257466",
        "ES9121000418450200051332", "IT60X0542811101000000123456", "BR1800360305000010009795493C1",
        "XK051212012345678906", "VG96VPVG0000012345678901", "DE89 3704 0044 0532 0130 00"}) {
    EXPECT_TRUE(IsValidIban(iban)) << iban;
  }
}

TEST(IbanTest, AcceptsLowercaseAndDashes) {
  for (const char* iban : {"de89370400440532013000", "de89 3704 0044 0532 0130 00",
                           "GB82-WEST-1234-5698-7654-32", "gb82-west-1234-5698-7654-32"}) {
    EXPECT_TRUE(IsValidIban(iban)) << iban;
  }
  for (const char* iban : {"de89370400440532013001", "GB82-WEST 1234-5698-7654-32",
                           "GB82--WEST-1234-5698-7654-32x", "GB82_WEST_1234_5698_7654_32"}) {
    EXPECT_FALSE(IsValidIban(iban)) << iban;
  }
}

TEST(IbanTest, RejectsWrongCheckLengthOrCountry) {
  for (const char* iban : {
           "DE89370400440532013001",       // Check.
           "DE88370400440532013000",       // Check digits.
           "DE8937040044053201300",        // One short for DE.
           "DE893704004405320130000",      // One long.
           "XX89370400440532013000",       // No such country.
           "DE89 3704-0044-0532-0130-00",  // Mixed separators.
           "",
           "DE89",
       }) {
    EXPECT_FALSE(IsValidIban(iban)) << iban;
  }
  for (const std::string& wrong : SingleDigitChanges("GB82WEST12345698765432")) {
    EXPECT_FALSE(IsValidIban(wrong)) << wrong;
  }
}

TEST(EmailTest, FileExtensionsAreNoTopLevelDomain) {
  for (const char* email : {"jane@acme.com", "a@b.io", "x@mail.example.co.uk", "jo@ex.PNGX",
                            "dev@python.py", "me@site.md"}) {
    EXPECT_TRUE(IsValidEmail(email)) << email;
  }
  for (const char* email : {"icon@2x.png", "logo@3x.jpg", "bg@2x.webp", "pkg@1.2.3.tgz",
                            "react@next.js", "Icon@2X.PNG", "nodot@host", ""}) {
    EXPECT_FALSE(IsValidEmail(email)) << email;
  }
}

TEST(UsSsnTest, ChecksRanges) {
  for (const char* ssn : {"123-45-6789", "123 45 6789", "123456789", "001-01-0001", "899-99-9999",
                          "665-12-3456", "667-12-3456"}) {
    EXPECT_TRUE(IsValidUsSsn(ssn)) << ssn;
  }
  for (const char* ssn :
       {"000-12-3456", "666-12-3456", "900-12-3456", "999-99-9999", "123-00-4567", "123-45-0000",
        "078-05-1120", "219-09-9999", "123-45-678", "1234-5-6789x", "12345678901"}) {
    EXPECT_FALSE(IsValidUsSsn(ssn)) << ssn;
  }
}

TEST(UsItinTest, ChecksGroupRanges) {
  for (const char* itin :
       {"912-50-1234", "912-65-1234", "912-70-1234", "912-88-1234", "912-90-1234", "912-92-1234",
        "912-94-1234", "999-99-9999", "912 78 1234", "912781234"}) {
    EXPECT_TRUE(IsValidUsItin(itin)) << itin;
  }
  for (const char* itin : {"812-70-1234", "912-49-1234", "912-66-1234", "912-69-1234",
                           "912-89-1234", "912-93-1234", "912-00-1234", "912-70-123"}) {
    EXPECT_FALSE(IsValidUsItin(itin)) << itin;
  }
}

TEST(NanpPhoneTest, ChecksAreaAndExchange) {
  for (const char* phone :
       {"(415) 555-2671", "415-555-2671", "415.555.2671", "415 555 2671", "+1 415 555 2671",
        "+1-415-555-2671", "1-415-555-2671", "+14155552671", "4155552671", "212-200-0000"}) {
    EXPECT_TRUE(IsValidNanpPhone(phone)) << phone;
  }
  for (const char* phone : {"115-555-2671", "015-555-2671", "411-555-2671", "911-555-2671",
                            "415-155-2671", "415-055-2671", "415-211-2671", "415-555-267",
                            "2-415-555-2671", "415-555-26710", "415/555/2671"}) {
    EXPECT_FALSE(IsValidNanpPhone(phone)) << phone;
  }
}

TEST(InternationalPhoneTest, AcceptsKnownCountriesAndLengths) {
  for (const char* phone :
       {"+44 20 7946 0958",  "+49 30 12345678",  "+33 1 23 45 67 89",   "+81 3-1234-5678",
        "+91 98765 43210",   "+61 2 9876 5432",  "+34 912 345 678",     "+39 06 1234 5678",
        "+31 20 123 4567",   "+46 8 123 456 78", "+353 1 234 5678",     "+55 11 91234-5678",
        "+442079460958",     "+35312345678",     "+1 415 555 2671",     "+14155552671",
        "+7 495 123 4567",   "+971 4 123 4567",  "+44 (0)20 7946 0958", "+44 (0) 20 7946 0958",
        "+33.6.12.34.56.78", "+49.30.12345678"}) {
    EXPECT_TRUE(IsValidInternationalPhone(phone)) << phone;
  }
  for (const char* phone : {
           "+44 20 794",             // Too few national digits.
           "+44 20 7946 0958 1234",  // Too many.
           "+28 20 7946 0958",       // Unassigned code.
           "+4420 7946 0958",        // The first group is not a code.
           "+1 115 555 2671",        // NANP rules for code 1.
           "+0 20 7946 0958",
           "44 20 7946 0958",
           "+",
           "+44 20 7946 095x",
           "+44 (1)20 7946 0958",  // Only a trunk 0 is written in parentheses.
           "+44 20 (0)7946 0958",  // ...and only right after the code.
           "+28.20.7946.0958",
       }) {
    EXPECT_FALSE(IsValidInternationalPhone(phone)) << phone;
  }
}

TEST(NationalPhoneTest, NeedsTheTrunkPrefixAndTenToTwelveDigits) {
  for (const char* phone : {"020 7946 0958", "0171 2345678", "06 12 34 56 78", "030 1234567",
                            "06.12.34.56.78", "030/12345678", "0171-2345678", "02079460958"}) {
    EXPECT_TRUE(IsValidNationalPhone(phone)) << phone;
  }
  for (const char* phone : {"01-15-2024", "02134-1234", "0012 3456 7890", "20 7946 0958",
                            "0171 234567891234", "030 12345x"}) {
    EXPECT_FALSE(IsValidNationalPhone(phone)) << phone;
  }
}

TEST(NineDigitPhoneTest, NeedsNineDigitsWithoutATrunkPrefix) {
  for (const char* phone :
       {"612 345 678", "912 345 678", "612-345-678", "912 34 56 78", "212345678", "712-34-56-78"}) {
    EXPECT_TRUE(IsValidNineDigitPhone(phone)) << phone;
  }
  for (const char* phone : {"012 345 678", "112 345 678", "612 345 67", "612 345 6789",
                            "612.345.678", "612 345 67x", "-612 345 678", ""}) {
    EXPECT_FALSE(IsValidNineDigitPhone(phone)) << phone;
  }
}

TEST(IpTest, Ipv4IsStrict) {
  for (const char* ip : {"192.0.2.1", "10.0.0.1", "126.255.255.255", "128.0.0.1", "255.255.255.1",
                         "255.0.255.0", "1.0.0.0"}) {
    EXPECT_TRUE(IsValidIpv4(ip)) << ip;
  }
  for (const char* ip : {"256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "1.2.3.", ".1.2.3",
                         "1..2.3", "1.2.3.4 ", "1234.1.1.1", "a.b.c.d", ""}) {
    EXPECT_FALSE(IsValidIpv4(ip)) << ip;
  }
  // No one's address: unspecified, loopback, netmasks.
  for (const char* ip : {"0.0.0.0", "127.0.0.1", "127.255.0.9", "255.255.255.0", "255.255.0.0",
                         "255.0.0.0", "255.255.255.255", "255.255.255.252"}) {
    EXPECT_FALSE(IsValidIpv4(ip)) << ip;
  }
}

TEST(IpTest, Ipv6ParsesEveryFormWithADigit) {
  for (const char* ip :
       {"2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:db8::1", "2001::1", "fe80::1", "::a1",
        "1::2:3", "::ffff:192.0.2.1", "2001:DB8:0:0:8:800:200C:417A", "64:ff9b::192.0.2.33"}) {
    EXPECT_TRUE(IsValidIpv6(ip)) << ip;
  }
  for (const char* ip : {"2001:db8::1::2", "12345::1", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9",
                         "14:05:33", "::", "a::b", "cafe::beef", "2001:db8::g", ":::1",
                         "00:1A:2B:3C:4D:5E", "::1", "::2", "1::3", "10::200"}) {
    EXPECT_FALSE(IsValidIpv6(ip)) << ip;
  }
}

TEST(UkNhsTest, ChecksMod11) {
  for (const char* nhs :
       {"9434765919", "943 476 5919", "943-476-5919", "4010232137", "4505577104"}) {
    EXPECT_TRUE(IsValidUkNhs(nhs)) << nhs;
  }
  // 123456789x: the check digit would be 10, which no number has.
  for (const char* nhs : {"9434765918", "1234567890", "1234567891", "943476591", "94347659190"}) {
    EXPECT_FALSE(IsValidUkNhs(nhs)) << nhs;
  }
  for (const std::string& wrong : SingleDigitChanges("9434765919")) {
    EXPECT_FALSE(IsValidUkNhs(wrong)) << wrong;
  }
}

TEST(UkNinoTest, ChecksPrefixDigitsAndSuffix) {
  for (const char* nino : {"AB123456C", "AB 12 34 56 C", "CE000000A", "ZY999999D", "TZ123456B",
                           "ab123456c", "CE-73-41-10-C", "WL 925318 B", "JG 10 37 59A"}) {
    EXPECT_TRUE(IsValidUkNino(nino)) << nino;
  }
  for (const char* nino : {
           "QQ123456C",  // Q never starts a prefix (HMRC's examples use it).
           "DA123456A",  // Nor D.
           "AO123456A",  // O is never second.
           "GB123456A",  // A prefix never issued.
           "ZZ123456A",
           "AB123456E",
           "AB12345C",
           "AB1234567C",
           "AB_123456C",
           "AB1234.56C",
       }) {
    EXPECT_FALSE(IsValidUkNino(nino)) << nino;
  }
}

TEST(EsNifTest, ChecksTheLetter) {
  for (const char* nif : {"12345678Z", "12345678-Z", "12345678 Z", "12.345.678-Z", "12.345.678Z",
                          "00000000T", "12345678z"}) {
    EXPECT_TRUE(IsValidEsNif(nif)) << nif;
  }
  for (const char* nif : {"12345678A", "12345678a", "1234567Z", "123456789Z", "12.345678-Z",
                          "12-345-678Z", "12345678--Z", "12345678"}) {
    EXPECT_FALSE(IsValidEsNif(nif)) << nif;
  }
  for (const std::string& wrong : SingleDigitChanges("12345678Z")) {
    EXPECT_FALSE(IsValidEsNif(wrong)) << wrong;
  }
}

TEST(EsNieTest, ReadsTheFirstLetterAsADigit) {
  for (const char* nie : {"X1234567L", "X-1234567-L", "X1234567-L", "Y1234567X", "Z7654321H",
                          "X 1234567 L", "x1234567l"}) {
    EXPECT_TRUE(IsValidEsNie(nie)) << nie;
  }
  for (const char* nie : {"X1234567X", "Y1234567L", "W1234567L", "X123456L", "X12345678L",
                          "X--1234567L", "X_1234567L"}) {
    EXPECT_FALSE(IsValidEsNie(nie)) << nie;
  }
}

TEST(ItFiscalCodeTest, ChecksTheLetterMonthAndDay) {
  for (const char* code :
       {"RSSMRA85T10A562S", "BNCLRA90E55H501B", "VRDGPP13R10B293P", "rssmra85t10a562s",
        "RSSMRA85B29A562Z",     // 29 February.
        "RSSMRA85T10A5NNO",     // Omocodia: the last two digits written as letters.
        "RSSMRA85T10A56NH"}) {  // Omocodia: the last 2 written N.
    EXPECT_TRUE(IsValidItFiscalCode(code)) << code;
  }
  for (const char* code : {
           "RSSMRA85T10A562T",  // Check letter.
           "RSSMRA85F10A562S",  // F is no month.
           "RSSMRA85T32A562S",  // Day 32.
           "RSSMRA85T72A562S",  // Day 72.
           "RSSMRA85T00A562S",  // Day 0.
           "RSSMRA85T10A562", "RSSMRA85T10A5621",
           "RSSMRAUTTLMALRNS",  // No digit left.
           "RSSMRAU5T10A562P",  // A stand-in before a digit.
           "RSSMRA85B31A562F",  // 31 February.
       }) {
    EXPECT_FALSE(IsValidItFiscalCode(code)) << code;
  }
}

TEST(PlPeselTest, ChecksTheDigitAndTheDate) {
  for (const char* pesel : {"44051401359", "02271409867", "99123100003", "80810101012"}) {
    EXPECT_TRUE(IsValidPlPesel(pesel)) << pesel;
  }
  for (const char* pesel : {"44051401358", "4405140135", "440514013590", "4405140135a"}) {
    EXPECT_FALSE(IsValidPlPesel(pesel)) << pesel;
  }
  for (const std::string& wrong : SingleDigitChanges("44051401359")) {
    EXPECT_FALSE(IsValidPlPesel(wrong)) << wrong;
  }
  // Valid check digits on dates that do not exist: 30 February 1990, month 13, day 0.
  for (const char* pesel : {"90023000005", "90130100000", "90010000000"}) {
    const std::string body(pesel, 10);
    static constexpr int kWeights[] = {1, 3, 7, 9, 1, 3, 7, 9, 1, 3};
    int sum = 0;
    for (size_t i = 0; i < 10; ++i) sum += (body[i] - '0') * kWeights[i];
    const std::string with_check = body + static_cast<char>('0' + (10 - sum % 10) % 10);
    EXPECT_FALSE(IsValidPlPesel(with_check)) << with_check;
  }
}

TEST(FiPersonalIdentityCodeTest, ChecksTheCharacterDateAndNumber) {
  for (const char* code : {"131052-308T", "020502A123T", "290200A4561", "010594Y803U",
                           "311299+0029", "131052-308t", "020502a123t"}) {
    EXPECT_TRUE(IsValidFiPersonalIdentityCode(code)) << code;
  }
  for (const char* code : {
           "131052-308U",  // Check character.
           "131052G308T",  // G is no century sign.
           "290201A456X",  // 29 February 2001 (whatever the check character).
           "131052-001T",
           "131052-900T",
           "010594Y9032",
           "131052-308",
           "131052308T",
       }) {
    EXPECT_FALSE(IsValidFiPersonalIdentityCode(code)) << code;
  }
}

TEST(FrNirTest, ChecksTheKeyAndLayout) {
  for (const char* nir : {"185057800608491", "1 85 05 78 006 084 91", "290072A12345661",
                          "2 90 07 2B 123 456 88", "290072a12345661"}) {
    EXPECT_TRUE(IsValidFrNir(nir)) << nir;
  }
  for (const char* nir : {
           "185057800608436",  // Key.
           "585057800608491",  // Sex 5.
           "185137800608491",  // Month 13 (whatever the key).
           "185057800600091",  // Order number 000.
           "290072C12345661",  // 2C is no department.
           "18505780060849",
           "1850578006084911",
           "1 85 05 78 006 08491",
           "18 5 05 78 006 084 91",
       }) {
    EXPECT_FALSE(IsValidFrNir(nir)) << nir;
  }
  for (const std::string& wrong : SingleDigitChanges("185057800608491")) {
    EXPECT_FALSE(IsValidFrNir(wrong)) << wrong;
  }
}

TEST(NlBsnTest, PassesTheElfproef) {
  for (const char* bsn : {"123456782", "1234.56.782", "111222333", "999999990"}) {
    EXPECT_TRUE(IsValidNlBsn(bsn)) << bsn;
  }
  for (const char* bsn :
       {"123456789", "000000000", "12345678", "1234567820", "1234-56-782", "123.456.782"}) {
    EXPECT_FALSE(IsValidNlBsn(bsn)) << bsn;
  }
}

TEST(SePersonalIdentityNumberTest, ChecksLuhnAndTheDate) {
  for (const char* number : {"811218-9876", "811218+9876", "19811218-9876", "198112189876",
                             "8112189876", "811278-9873"}) {  // The last: a samordningsnummer.
    EXPECT_TRUE(IsValidSePersonalIdentityNumber(number)) << number;
  }
  for (const char* number : {
           "811218-9875",    // Check digit.
           "19811318-9876",  // Month 13 (whatever the check).
           "660229-0519",    // 29 February 1966 (or 2066).
           "000229+0005",    // 29 February 1900.
           "811218--9876",
           "8112-189876",
           "811218-98765",
           "81121-9876",
           "19811218-987",
       }) {
    EXPECT_FALSE(IsValidSePersonalIdentityNumber(number)) << number;
  }
  for (const std::string& wrong : SingleDigitChanges("8112189876")) {
    EXPECT_FALSE(IsValidSePersonalIdentityNumber(wrong)) << wrong;
  }
}

TEST(DeTaxIdTest, ChecksTheDigitsAndTheCheck) {
  for (const char* id :
       {"86095742719", "86 095 742 719", "12345678911", "98765432198", "12134567895"}) {
    EXPECT_TRUE(IsValidDeTaxId(id)) << id;
  }
  // The check digit of each is right for its first ten.
  for (const char* id : {
           "86095742718",  // Check digit.
           "06095742719",  // First digit 0.
           "1234567890"
           "3",  // Ten different digits.
           "1122345678"
           "5",  // Two digits repeated.
           "1112345678"
           "6",  // One digit three times in a row.
           "860 95 742 719",
           "8609574271",
           "860957427190",
       }) {
    EXPECT_FALSE(IsValidDeTaxId(id)) << id;
  }
  for (const std::string& wrong : SingleDigitChanges("86095742719")) {
    EXPECT_FALSE(IsValidDeTaxId(wrong)) << wrong;
  }
}

TEST(DeHealthInsuranceNumberTest, ChecksTheDigit) {
  for (const char* kvnr : {"A123456780", "Z987654321"}) {
    EXPECT_TRUE(IsValidDeHealthInsuranceNumber(kvnr)) << kvnr;
  }
  for (const char* kvnr : {"A123456781", "a123456780", "A12345678", "A1234567801", "AB12345678"}) {
    EXPECT_FALSE(IsValidDeHealthInsuranceNumber(kvnr)) << kvnr;
  }
}

TEST(BitcoinTest, Base58CheckAddresses) {
  for (const char* address :
       {"1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"}) {
    EXPECT_TRUE(IsValidBitcoinBase58Check(address)) << address;
  }
  for (const char* address : {
           "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3",   // Checksum.
           "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN",    // Truncated.
           "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN0",   // '0' is not base58.
           "11111111111111111111111111",           // All zero bytes.
           "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2a",  // Too long for 25 bytes.
       }) {
    EXPECT_FALSE(IsValidBitcoinBase58Check(address)) << address;
  }
}

TEST(BitcoinTest, Bech32AndBech32mAddresses) {
  for (const char* address : {"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
                              "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
                              "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"}) {
    EXPECT_TRUE(IsValidBitcoinBech32(address)) << address;
  }
  for (const char* address : {
           "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",  // Checksum.
           "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",  // Uppercase.
           "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",  // Testnet prefix.
           "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t",   // Length.
           "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3tb",  // 'b' is not a data character.
       }) {
    EXPECT_FALSE(IsValidBitcoinBech32(address)) << address;
  }
}

TEST(DeaTest, ChecksTheCheckDigit) {
  for (const char* dea : {"AB1234563", "F97654329", "XT0000012"}) {
    EXPECT_TRUE(IsValidDeaNumber(dea)) << dea;
  }
  for (const char* dea : {"AB1234564", "IB1234563", "A11234563", "ab1234563", "AB123456",
                          "AB12345633", "AB123456x"}) {
    EXPECT_FALSE(IsValidDeaNumber(dea)) << dea;
  }
}

TEST(PemTest, BeginAndEndLabelsMatch) {
  const std::string body = "\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n";
  for (const char* label : {"", "RSA ", "EC ", "DSA ", "OPENSSH ", "ENCRYPTED "}) {
    const std::string pem = std::string("-----BEGIN ") + label + "PRIVATE KEY-----" + body +
                            "-----END " + label + "PRIVATE KEY-----";
    EXPECT_TRUE(IsValidPemPrivateKey(pem)) << pem;
  }
  EXPECT_FALSE(IsValidPemPrivateKey("-----BEGIN RSA PRIVATE KEY-----" + body +
                                    "-----END EC PRIVATE KEY-----"));
  EXPECT_FALSE(
      IsValidPemPrivateKey("-----BEGIN RSA PRIVATE KEY-----" + body + "-----END PRIVATE KEY-----"));
  EXPECT_FALSE(
      IsValidPemPrivateKey("-----BEGIN CERTIFICATE-----" + body + "-----END CERTIFICATE-----"));
  EXPECT_FALSE(IsValidPemPrivateKey("-----BEGIN PRIVATE KEY-----"));
  EXPECT_FALSE(IsValidPemPrivateKey("-----BEGIN PRIVATE KEY----------END PRIVATE KEY-----x"));
  const std::string huge = "-----BEGIN PRIVATE KEY-----\n" + std::string(kMaxPemBlockBytes, 'A') +
                           "\n-----END PRIVATE KEY-----";
  EXPECT_FALSE(IsValidPemPrivateKey(huge));
}

TEST(PemTest, PgpBlocksAndKeysWithoutTheirEndLine) {
  const std::string body =
      "\nlQOYBF3iL9IBCAC7k8ZcX2b9V4Xm1oQ0yJtH+5OeRV1be+N4cDYJKffGzDa88vQ\n=Xy7a\n";
  EXPECT_TRUE(IsValidPemPrivateKey("-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n" +
                                   body + "-----END PGP PRIVATE KEY BLOCK-----"));
  EXPECT_FALSE(IsValidPemPrivateKey("-----BEGIN PGP PUBLIC KEY BLOCK-----" + body +
                                    "-----END PGP PUBLIC KEY BLOCK-----"));
  EXPECT_FALSE(IsValidPemPrivateKey("-----BEGIN PGP PRIVATE KEY BLOCK-----" + body +
                                    "-----END PGP PRIVATE KEY-----"));
  // Without an END line: the base64 run after the header.
  EXPECT_TRUE(IsValidPemPrivateKey(
      "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4"));
  EXPECT_TRUE(IsValidPemPrivateKey(
      "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\nlQOYBF3iL9IBCAC7k8ZcX2b9"));
  EXPECT_FALSE(IsValidPemPrivateKey("-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj"));  // 15.
  EXPECT_FALSE(IsValidPemPrivateKey("-----BEGIN RSA PRIVATE KEY-----\nnot a key at all, no"));
  EXPECT_FALSE(IsValidPemPrivateKey(
      "-----BEGIN CERTIFICATE-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4"));
}

// `n` characters of [0-9A-Za-z] in turn: a token's random part, never a placeholder.
std::string Cycled(size_t n) {
  constexpr absl::string_view kBase62 =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out;
  for (size_t i = 0; i < n; ++i) out += kBase62[(i * 7) % kBase62.size()];
  return out;
}

TEST(SecretFormatTest, ExactLengthsAndAlphabets) {
  const std::string b62_66 = Cycled(66);
  EXPECT_TRUE(IsValidPolicySuiteKey("psk_proj_" + b62_66));
  EXPECT_TRUE(IsValidPolicySuiteKey("psk_svc_" + Cycled(33) + Cycled(33)));
  EXPECT_TRUE(IsValidPolicySuiteKey("psk_admin_" + b62_66));
  EXPECT_FALSE(IsValidPolicySuiteKey("psk_proj_" + Cycled(65)));
  EXPECT_FALSE(IsValidPolicySuiteKey("psk_proj_" + Cycled(67)));
  EXPECT_FALSE(IsValidPolicySuiteKey("psk_user_" + b62_66));
  EXPECT_FALSE(IsValidPolicySuiteKey("psk_proj_" + Cycled(65) + "_"));
  // Documentation placeholders: fewer than six distinct characters.
  EXPECT_FALSE(IsValidPolicySuiteKey("psk_proj_" + std::string(66, 'x')));
  EXPECT_FALSE(IsValidOpenAiApiKey("sk-" + std::string(48, 'X')));
  // Five characters over and over, a digit and a letter among them: still a placeholder.
  EXPECT_FALSE(IsValidOpenAiApiKey("sk-a1b2ca1b2ca1b2ca1b2ca1b2ca1b2ca1b2ca1b2ca1b2ca1b"));
  EXPECT_FALSE(IsValidOpenAiApiKey("sk-proj-" + std::string(60, 'x')));
  EXPECT_FALSE(IsValidAwsAccessKey("AKIAXXXXXXXXXXXXXXXX"));
  EXPECT_FALSE(IsValidGithubToken("ghp_" + std::string(36, 'x')));
  EXPECT_FALSE(IsValidGithubToken("github_pat_" + std::string(82, 'x')));
  EXPECT_FALSE(IsValidSlackToken("xoxb-000000000000-0000000000000-xxxxxxxxxxxxxxxxxxxxxxxx"));

  EXPECT_TRUE(IsValidOpenAiApiKey("sk-" + Cycled(48)));
  EXPECT_FALSE(IsValidOpenAiApiKey("sk-" + std::string(47, 'x')));
  EXPECT_FALSE(IsValidOpenAiApiKey("sk-" + std::string(47, 'x') + "_"));
  EXPECT_TRUE(IsValidOpenAiApiKey("sk-proj-" + Cycled(40)));
  EXPECT_TRUE(IsValidOpenAiApiKey("sk-svcacct-" + Cycled(200)));
  EXPECT_TRUE(IsValidOpenAiApiKey("sk-admin-" + Cycled(100)));
  EXPECT_FALSE(IsValidOpenAiApiKey("sk-proj-" + std::string(39, 'a')));
  EXPECT_FALSE(IsValidOpenAiApiKey("sk-proj-" + std::string(201, 'a')));
  EXPECT_FALSE(IsValidOpenAiApiKey("sk-proj-" + Cycled(50) + "."));
  EXPECT_FALSE(IsValidOpenAiApiKey("sk-user-" + std::string(50, 'a')));
  // Other providers' "sk-" keys: a long part with a digit and a letter.
  EXPECT_TRUE(IsValidOpenAiApiKey(
      "sk-ant-api03-nUA7OHp4UC-mq-ZIhqmWaSvIJv5WlXvkGPkKp2UMr7OBUi6LnjpYk8wZbyRnH4ciCUfJWnZbnm7Y3c"
      "XXBRz7ZQ-4IrmBwAA"));
  EXPECT_TRUE(IsValidOpenAiApiKey(
      "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
  EXPECT_TRUE(IsValidOpenAiApiKey("sk-0123456789abcdef0123456789abcdef"));
  EXPECT_TRUE(IsValidOpenAiApiKey("sk-None-" + Cycled(24) + Cycled(24)));
  EXPECT_FALSE(IsValidOpenAiApiKey("sk-learn-compatible-estimator-api-v2"));  // No long part.
  EXPECT_FALSE(IsValidOpenAiApiKey("sk-abcdefghijklmnopqrstuvwxyz"));         // No digit.
  EXPECT_FALSE(IsValidOpenAiApiKey("sk-0123456789012345678901"));             // No letter.
  EXPECT_FALSE(IsValidOpenAiApiKey("sk-a1b2c3d4e5f6a7b8c"));                  // 19 bytes.

  EXPECT_TRUE(IsValidAwsSecretAccessKey("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"));
  EXPECT_TRUE(IsValidAwsSecretAccessKey("je7MtGbClwBF+2Zp9Utk/h3yCo8nvbEXAMPLEKEY"));
  EXPECT_FALSE(IsValidAwsSecretAccessKey("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKE"));
  EXPECT_FALSE(IsValidAwsSecretAccessKey("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYY"));
  EXPECT_FALSE(IsValidAwsSecretAccessKey("3f786850e387550fdab836ed7e6dc881de23001b"));  // SHA.
  EXPECT_FALSE(IsValidAwsSecretAccessKey("wJalrXUtnFEMI_K7MDENG/bPxRfiCYEXAMPLEKEY"));

  EXPECT_TRUE(IsValidAwsAccessKey("AKIAIOSFODNN7EXAMPLE"));
  EXPECT_TRUE(IsValidAwsAccessKey("ASIA234567ABCDEFGHIJ"));
  EXPECT_FALSE(IsValidAwsAccessKey("AKIAIOSFODNN7EXAMPL"));
  EXPECT_FALSE(IsValidAwsAccessKey("AKIAIOSFODNN7EXAMPLEX"));
  EXPECT_FALSE(IsValidAwsAccessKey("AKIAIOSFODNN8EXAMPLE"));  // 8 is not base32.
  EXPECT_FALSE(IsValidAwsAccessKey("AIDAIOSFODNN7EXAMPLE"));

  EXPECT_TRUE(IsValidGithubToken("ghp_" + Cycled(36)));
  EXPECT_TRUE(IsValidGithubToken("ghr_" + Cycled(36)));
  EXPECT_TRUE(IsValidGithubToken("github_pat_" + Cycled(82)));
  EXPECT_FALSE(IsValidGithubToken("ghp_" + Cycled(35)));
  EXPECT_FALSE(IsValidGithubToken("ghx_" + Cycled(36)));
  EXPECT_FALSE(IsValidGithubToken("ghp_" + Cycled(35) + "_"));
  EXPECT_FALSE(IsValidGithubToken("github_pat_" + Cycled(81)));

  EXPECT_TRUE(IsValidSlackToken("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"));
  EXPECT_TRUE(IsValidSlackToken("xoxp-1-2-3-4-5-abcdefgh"));
  EXPECT_FALSE(IsValidSlackToken("xoxp-1-2-3-4-5-6-abcdefgh"));  // Six groups.
  EXPECT_FALSE(IsValidSlackToken("xoxb-123-abcdefg"));           // Tail of seven.
  EXPECT_FALSE(IsValidSlackToken("xoxb-abcdefgh"));              // No digit group.
  EXPECT_FALSE(IsValidSlackToken("xoxc-123-abcdefgh"));
  EXPECT_FALSE(IsValidSlackToken("xoxb-12a-abcdefgh"));
  EXPECT_FALSE(IsValidSlackToken("xoxb--123-abcdefgh"));
}

TEST(ValidatorsTest, BelgianIrishDanishAustrianAndPortugueseIdentifiers) {
  for (const char* be : {"85073003328", "17073003384", "85.07.30-033.28", "850730 033 28",
                         "85473003317", "05010100113"}) {
    EXPECT_TRUE(IsValidBeNationalNumber(be)) << be;
  }
  // A wrong check; month 13, day 32 and 30 February with right checks; serials 000 and 999;
  // ten and twelve digits.
  for (const char* be : {"85073003329", "85133003370", "85073203365", "85023003390", "85073000061",
                         "85073099932", "8507300332", "850730033280"}) {
    EXPECT_FALSE(IsValidBeNationalNumber(be)) << be;
  }
  // Month or day 0: not known.
  EXPECT_TRUE(IsValidBeNationalNumber("85000003306"));
  EXPECT_TRUE(IsValidBeNationalNumber("85070003355"));

  for (const char* pps : {"6433435F", "6433435FT", "6433435FW", "6433435OA", "7654321PA",
                          "2222222SB", "1234567 T", "1234567fa"}) {
    EXPECT_TRUE(IsValidIePpsn(pps)) << pps;
  }
  for (const char* pps : {"6433435E", "6433435IH", "6433435FZ", "643343F", "64334355F",
                          "6433435 F A", "643 3435F", "6433435VA"}) {
    EXPECT_FALSE(IsValidIePpsn(pps)) << pps;
  }

  for (const char* cpr :
       {"211062-5629", "2110625629", "211062 5629", "290200-4000", "010158-5000"}) {
    EXPECT_TRUE(IsValidDkCpr(cpr)) << cpr;
  }
  // Day 32; 29 February 1923 (seventh digit 1); 29 February 1900 (4, year 00 under 37: 2000
  // is a leap year, so 290200-4000 above holds).
  for (const char* cpr : {"321062-5629", "290223-1234", "2110-625629", "21106256290"}) {
    EXPECT_FALSE(IsValidDkCpr(cpr)) << cpr;
  }

  for (const char* svnr : {"1237 010180", "1237010180", "4560150590"}) {
    EXPECT_TRUE(IsValidAtSocialInsuranceNumber(svnr)) << svnr;
  }
  for (const char* svnr : {"2237 010180", "0237010180", "123 7010180", "12370101801"}) {
    EXPECT_FALSE(IsValidAtSocialInsuranceNumber(svnr)) << svnr;
  }

  for (const char* nif : {"123456789", "234567899", "451234561", "123 456 789"}) {
    EXPECT_TRUE(IsValidPtTaxId(nif)) << nif;
  }
  // A company's, a wrong check digit, other lengths and groups.
  for (const char* nif : {"501964843", "234567898", "12345678", "1234567890", "1234 56 789"}) {
    EXPECT_FALSE(IsValidPtTaxId(nif)) << nif;
  }
}

// ICAO 9303's check digit over `field`, written for the tests.
char MrzCheckDigit(absl::string_view field) {
  int sum = 0;
  for (size_t i = 0; i < field.size(); ++i) {
    const char c = field[i];
    const int value = c == '<' ? 0 : (c >= 'A' ? c - 'A' + 10 : c - '0');
    sum += value * (i % 3 == 0 ? 7 : i % 3 == 1 ? 3 : 1);
  }
  return static_cast<char>('0' + sum % 10);
}

// `line` (a TD3 data line) with `field` at `at` and every check digit made right again.
std::string Td3DataLine(std::string line, size_t at, const std::string& field) {
  line.replace(at, field.size(), field);
  line[9] = MrzCheckDigit(line.substr(0, 9));
  line[19] = MrzCheckDigit(line.substr(13, 6));
  line[27] = MrzCheckDigit(line.substr(21, 6));
  line[42] = MrzCheckDigit(line.substr(28, 14));
  line[43] =
      MrzCheckDigit(absl::StrCat(line.substr(0, 10), line.substr(13, 7), line.substr(21, 22)));
  return line;
}

// A TD1 whose document number, D23145890734, is longer than nine characters.
std::string LongNumberTd1() {
  std::string first =
      absl::StrCat("I<UTOD23145890<734", std::string(1, MrzCheckDigit("D23145890734")));
  first.resize(30, '<');
  const std::string second = "7408122F1204159UTO<<<<<<<<<<<";
  return absl::StrCat(first, "\n", second,
                      std::string(1, MrzCheckDigit(absl::StrCat(first.substr(5), "7408122",
                                                                "1204159", "<<<<<<<<<<<"))),
                      "\nERIKSSON<<ANNA<MARIA<<<<<<<<<<");
}

TEST(ValidatorsTest, IdentityDocumentMrz) {
  // ICAO Doc 9303's specimens (TD3, TD2, TD1, MRV-A, MRV-B) and Germany's passport specimen.
  const std::string td3_name = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<";
  const std::string td3_data = "L898902C36UTO7408122F1204159ZE184226B<<<<<10";
  const std::string td2 =
      "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nD231458907UTO7408122F1204159<<<<<<<6";
  const std::string td1 =
      "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\n"
      "ERIKSSON<<ANNA<MARIA<<<<<<<<<<";
  for (const std::string& zone : std::vector<std::string>{
           td3_name + "\n" + td3_data, td3_name + "  \n\n  " + td3_data,
           td3_name + "\\r\\n" + td3_data, td3_name + "\r\n    " + td3_data,
           td3_name + "\\n" + td3_data, td3_data, td2, td2.substr(37), td1,
           "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL8988901C4XXX4009078F96121096ZE184226B<<<"
           "<<<",
           "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nL8988901C4XXX4009078F9612109<<<<<<<<",
           "P<D<<MUSTERMANN<<ERIKA<<<<<<<<<<<<<<<<<<<<<<\nC01X00T478D<<6408125F2702283<<<<<<<<<<<<<"
           "<<4",
           // A personal number in use; a TD1 number longer than nine characters ('<' at 14, the
           // rest and its check digit opening the optional data).
           td3_name + "\n" + Td3DataLine(td3_data, 28, "12345678901234"), LongNumberTd1()}) {
    EXPECT_TRUE(IsValidIdentityDocumentMrz(zone)) << zone;
  }
  // Each check digit wrong in turn: the document number's, the dates', the personal number's,
  // the composite.
  for (size_t at : {9, 19, 27, 42, 43}) {
    std::string wrong = td3_data;
    wrong[at] = wrong[at] == '9' ? '8' : static_cast<char>(wrong[at] + 1);
    EXPECT_FALSE(IsValidIdentityDocumentMrz(td3_name + "\n" + wrong)) << wrong;
    EXPECT_FALSE(IsValidIdentityDocumentMrz(wrong)) << wrong;
  }
  for (size_t at : {14, 30 + 1 + 6, 30 + 1 + 14, 30 + 1 + 29}) {
    std::string wrong = td1;
    wrong[at] = wrong[at] == '9' ? '8' : static_cast<char>(wrong[at] + 1);
    EXPECT_FALSE(IsValidIdentityDocumentMrz(wrong)) << wrong;
  }
  for (const std::string& zone : std::vector<std::string>{
           // Dates that do not exist, with check digits that hold; a sex that is none.
           td3_name + "\n" + Td3DataLine(td3_data, 13, "741312"),
           td3_name + "\n" + Td3DataLine(td3_data, 21, "120230"),
           td3_name + "\n" + Td3DataLine(td3_data, 20, "Q"),
           // Lines one short or one long, a lowercase letter, a name line alone, a TD1's first
           // two lines, a visa's data line alone (no composite check), a type letter for
           // another format, two data lines.
           td3_name + "\n" + td3_data.substr(1), td3_name + "<\n" + td3_data,
           td3_name + "\n" + td3_data + "<",
           "P<UTOEriksson<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\n" + td3_data, td3_name, td1.substr(0, 61),
           "L8988901C4XXX4009078F96121096ZE184226B<<<<<<",
           "X" + td3_name.substr(1) + "\n" + td3_data, td3_data + "\n" + td3_data,
           td3_name + "\n" + td3_data + "\n" + td3_name, td3_name + "\n\n\n" + td3_data}) {
    EXPECT_FALSE(IsValidIdentityDocumentMrz(zone)) << zone;
  }
}

TEST(ValidatorsTest, EuVatNumber) {
  // One valid number of each claimed state (checked with python-stdnum), some written in groups.
  for (const char* vat :
       {"ATU13585627",       "ATU 13585627",       "BE0411905847",   "BE 0411.905.847",
        "CY10259033P",       "DE136695976",        "DE 136 695 976", "DK13585628",
        "EE100931558",       "EL094259216",        "GR094259216",    "ESB58378431",
        "ESX1234567L",       "ES12345678Z",        "FI20774740",     "FR40303265045",
        "FR 40 303 265 045", "HR33392005961",      "HU12892312",     "IE6388047V",
        "IT00743110157",     "LT119511515",        "LU15027442",     "MT11679112",
        "NL004495445B01",    "NL 0044.95.445.B01", "PL5260250274",   "PT501964843",
        "RO18547290",        "SE556188840401",     "SI50223054",     "SK2022749619"}) {
    EXPECT_TRUE(IsValidEuVatNumber(vat)) << vat;
  }
  for (const char* vat :
       {// Each with a wrong check.
        "ATU13585628", "BE0411905848", "CY10259033Q", "DE136695977", "DK13585629", "EE100931559",
        "EL094259217", "ESB58378432", "ESX1234567M", "FI20774741", "FR41303265045", "HR33392005962",
        "HU12892313", "IE6388047W", "IT00743110158", "LT119511516", "LU15027443", "MT11679113",
        "NL004495446B01", "NL004495445B00", "PL5260250275", "PT501964844", "RO18547291",
        "SE556188840402", "SI50223055", "SK2022749610",
        // A digit too many or too few; states not claimed; lower case; separators doubled,
        // leading or trailing; Belgium's nine digits; a French key of letters; Slovakia's
        // third digit 0, 1, 5 or 6; Romania's five digits; Monaco's "000" SIRENs.
        "DE1366959760", "DE13669597", "XX136695976", "GB136695976", "BG175074752", "CZ25123891",
        "LV40003521600", "de136695976", "DE  136695976", "DE 136..695976", "DE136695976.",
        "BE411905847", "FRXA303265045", "SK2012749619", "RO12345", "FR27000000000",
        // Bonds' ISINs whose national part passes the check: Poland's start with 0,
        // Slovakia's with 4 (a VAT number's with 10 or 20).
        "PL0000100003", "SK4626306597"}) {
    EXPECT_FALSE(IsValidEuVatNumber(vat)) << vat;
  }
}

TEST(ValidatorsTest, DiscordBotToken) {
  const std::string hmac = "Xk9aPq_Lm2Zr8Tv-Wy4Bn6Cd0Ef1Gh3Ij5Kl7M";  // 38.
  for (const std::string& token :
       {"MTA0OTQ3NjE4MzE2MzQ3NjE5Mg.GjNnRi." + hmac,             // 19 digits.
        "ODEzODQ3ODg3NjU3MTIzODQ.YA1b2c." + hmac.substr(0, 27),  // 17 digits; a 27-byte HMAC.
        "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA.GjNnRi." + hmac}) {         // 20 digits.
    EXPECT_TRUE(IsValidDiscordBotToken(token)) << token;
  }
  for (const std::string& token : {"MTIzNDU2Nzg5MDEyMzQ1Ng.GjNnRi." + hmac,        // 16 digits.
                                   "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAx.GjNnRi." + hmac,  // 21.
                                   "MDEyMzQ1Njc4OTAxMjM0NTY3OA.GjNnRi." + hmac,  // Starting with 0.
                                   "eyJhbGciOiJIUzI1NiJ9eyJhbGci.GjNnRi." + hmac,  // Not digits.
                                   "MTA0OTQ3NjE4MzE2MzQ3NjE5Mg.GjNnR." + hmac,  // A timestamp of 5.
                                   "MTA0OTQ3NjE4MzE2MzQ3NjE5Mg.GjNnRi." + hmac.substr(0, 26),
                                   "MTA0OTQ3NjE4MzE2MzQ3NjE5Mg.GjNnRi." + hmac + "x",
                                   "MTA0OTQ3NjE4MzE2MzQ3NjE5Mg.GjNnRi." + hmac + ".x",
                                   "MTA0OTQ3NjE4MzE2MzQ3NjE5Mg.GjNnRi." + std::string(38, 'a')}) {
    EXPECT_FALSE(IsValidDiscordBotToken(token)) << token;
  }
}

TEST(ValidatorsTest, MoreTokens) {
  const std::string b62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  // jwt.io's example; the header {"alg":"HS256","typ":"JWT"}.
  const std::string header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
  const std::string claims = "eyJzdWIiOiIxMjM0NTY3ODkwIn0";
  EXPECT_TRUE(IsValidJwt(header + "." + claims + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"));
  // No signature: only an unsecured token ({"alg":"none"}, {"alg": "none"}).
  EXPECT_FALSE(IsValidJwt(header + "." + claims + "."));
  EXPECT_TRUE(IsValidJwt("eyJhbGciOiJub25lIn0." + claims + "."));
  EXPECT_TRUE(IsValidJwt("eyJhbGciOiAibm9uZSJ9." + claims + "."));
  EXPECT_TRUE(IsValidJwt("eyJhbGciOiJub25lIn0.eyJ9.x"));
  EXPECT_FALSE(IsValidJwt(header + "." + claims));                   // Two segments.
  EXPECT_FALSE(IsValidJwt(header + "." + claims + ".a.b"));          // Four.
  EXPECT_FALSE(IsValidJwt(header + "." + claims + ".a+b"));          // Not base64url.
  EXPECT_FALSE(IsValidJwt("eyJ0eXAiOiJKV1QifQ." + claims + ".x"));   // {"typ":"JWT"}: no "alg".
  EXPECT_FALSE(IsValidJwt(header + "." + "MTIzNDU2Nzg5MA" + ".x"));  // Claims not an object.
  EXPECT_FALSE(IsValidJwt(header + "x." + claims + ".x"));           // 37 bytes: 1 mod 4.
  EXPECT_FALSE(IsValidJwt("eyJhbGciOiJub25lIn0" + std::string(16384, 'A') + "." + claims + "."));
  // Neither a digit nor '_' ({"alg":"ES"} and {"a":"b"}, unsecured).
  EXPECT_FALSE(IsValidJwt("eyJhbGciOiJFUyJ9.eyJhIjoiYiJ9."));
  EXPECT_TRUE(IsValidJwt("eyJhbGciOiJFUyJ9.eyJhIjoiYiJ9.x7"));

  EXPECT_TRUE(IsValidGoogleApiKey("AIzaSyD-" + b62.substr(0, 31)));
  EXPECT_FALSE(IsValidGoogleApiKey("AIza" + b62.substr(0, 34)));
  EXPECT_FALSE(IsValidGoogleApiKey("AIza" + b62.substr(0, 36)));
  EXPECT_FALSE(IsValidGoogleApiKey("AIza" + std::string(35, 'x')));  // A placeholder.
  EXPECT_FALSE(IsValidGoogleApiKey("AIzb" + b62.substr(0, 35)));

  EXPECT_TRUE(IsValidStripeApiKey("sk_live_" + b62.substr(0, 24)));
  EXPECT_TRUE(IsValidStripeApiKey("rk_test_" + b62 + b62.substr(0, 37)));
  EXPECT_FALSE(IsValidStripeApiKey("sk_live_" + b62.substr(0, 23)));
  EXPECT_FALSE(IsValidStripeApiKey("pk_live_" + b62.substr(0, 24)));  // Publishable: public.
  EXPECT_FALSE(IsValidStripeApiKey("sk_live_" + std::string(24, 'X')));
  EXPECT_FALSE(IsValidStripeApiKey("sk_live_abcab_" + b62.substr(0, 24)));

  EXPECT_TRUE(IsValidGitlabToken("glpat-" + b62.substr(10, 20)));
  EXPECT_TRUE(IsValidGitlabToken("glptt-" + b62.substr(0, 40)));
  EXPECT_TRUE(IsValidGitlabToken("glpat-" + b62.substr(0, 27) + ".01.171ck2bq1"));
  EXPECT_TRUE(IsValidGitlabToken("glrt-" + b62.substr(0, 19) + "-"));
  EXPECT_FALSE(IsValidGitlabToken("glpat-" + b62.substr(0, 19)));
  EXPECT_FALSE(IsValidGitlabToken("glpat-" + b62.substr(0, 20) + "."));
  EXPECT_FALSE(IsValidGitlabToken("glpat-" + b62.substr(0, 20) + "..01"));
  EXPECT_FALSE(IsValidGitlabToken("glpat-xxxxxxxxxxxxxxxxxxxx"));
  EXPECT_FALSE(IsValidGitlabToken("glxyz-" + b62.substr(0, 20)));

  const std::string letters = b62.substr(10);
  EXPECT_TRUE(IsValidHuggingFaceToken("hf_" + letters.substr(0, 34)));
  EXPECT_FALSE(IsValidHuggingFaceToken("hf_" + letters.substr(0, 33)));
  EXPECT_FALSE(IsValidHuggingFaceToken("hf_" + letters.substr(0, 35)));
  EXPECT_FALSE(IsValidHuggingFaceToken("hf_" + letters.substr(0, 33) + "7"));
  EXPECT_FALSE(IsValidHuggingFaceToken("hf_" + letters.substr(26, 26) + "abcdefgh"));  // Lower.

  EXPECT_TRUE(IsValidNpmToken("npm_" + b62.substr(0, 36)));
  EXPECT_FALSE(IsValidNpmToken("npm_" + b62.substr(0, 35)));
  EXPECT_FALSE(IsValidNpmToken("npm_" + std::string(36, '0')));
  EXPECT_FALSE(IsValidNpmToken("npm_config_cache"));

  const std::string sendgrid = "SG." + b62.substr(0, 22) + "." + b62.substr(10, 43);
  EXPECT_TRUE(IsValidSendGridApiKey(sendgrid));
  EXPECT_FALSE(IsValidSendGridApiKey("SG." + b62.substr(0, 21) + "." + b62.substr(10, 44)));
  EXPECT_FALSE(IsValidSendGridApiKey("SG." + b62.substr(0, 22) + "." + b62.substr(10, 42)));
  EXPECT_FALSE(IsValidSendGridApiKey("SG." + letters.substr(0, 22) + "." + letters.substr(0, 43)));
  EXPECT_FALSE(IsValidSendGridApiKey("SG." + b62.substr(0, 22) + "." + b62.substr(10, 20) + "." +
                                     b62.substr(0, 22)));

  const std::string key = b62 + b62.substr(0, 24);  // 86.
  EXPECT_TRUE(IsValidAzureStorageKey(key + "=="));
  EXPECT_TRUE(IsValidAzureStorageKey("+/" + key.substr(2) + "=="));
  EXPECT_FALSE(IsValidAzureStorageKey(key + "="));
  EXPECT_FALSE(IsValidAzureStorageKey(key.substr(1) + "=="));
  EXPECT_FALSE(IsValidAzureStorageKey(letters + letters.substr(0, 34) + "=="));  // No digit.
  EXPECT_FALSE(IsValidAzureStorageKey(std::string(85, 'A') + "1=="));
}

TEST(ValidatorsTest, ProvidersTokens) {
  const std::string b62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  const std::string r52 = b62.substr(10, 52);
  EXPECT_TRUE(IsValidGroqApiKey("gsk_" + r52));
  EXPECT_FALSE(IsValidGroqApiKey("gsk_" + r52.substr(1)));
  EXPECT_FALSE(IsValidGroqApiKey("gsk_" + r52 + "a"));
  EXPECT_FALSE(IsValidGroqApiKey("gsk_" + std::string(52, 'x')));
  EXPECT_TRUE(IsValidXaiApiKey("xai-" + b62 + b62.substr(0, 18)));
  EXPECT_FALSE(IsValidXaiApiKey("xai-" + b62 + b62.substr(0, 17)));
  EXPECT_FALSE(IsValidXaiApiKey("xai-" + b62 + b62.substr(0, 17) + "_"));
  EXPECT_TRUE(IsValidGoogleOAuthClientSecret("GOCSPX-" + b62.substr(0, 26) + "-_"));
  EXPECT_FALSE(IsValidGoogleOAuthClientSecret("GOCSPX-" + b62.substr(0, 27)));
  EXPECT_TRUE(IsValidGoogleOAuthToken("ya29.a0" + b62));
  EXPECT_TRUE(IsValidGoogleOAuthToken("ya29.c.b0" + b62.substr(0, 30) + "." + b62.substr(30)));
  EXPECT_FALSE(IsValidGoogleOAuthToken("ya29." + b62.substr(0, 29)));
  EXPECT_FALSE(IsValidGoogleOAuthToken("ya29.a0" + b62 + "."));
  EXPECT_FALSE(IsValidGoogleOAuthToken("ya29.a0" + b62.substr(0, 30) + ".." + b62));
  EXPECT_FALSE(IsValidGoogleOAuthToken("ya29." + std::string(40, 'x')));
  EXPECT_TRUE(IsValidPypiToken("pypi-AgEIcHlwaS5vcmc" + b62));
  EXPECT_TRUE(IsValidPypiToken("pypi-AgENdGVzdC5weXBpLm9yZw" + b62.substr(0, 50)));
  EXPECT_FALSE(IsValidPypiToken("pypi-AgENdGVzdC5weXBpLm9yZw" + b62.substr(0, 49)));
  EXPECT_FALSE(IsValidPypiToken("pypi-AgEAAAAAAAAAAAAAAAAAAA" + b62));
  EXPECT_TRUE(IsValidDockerHubToken("dckr_pat_" + b62.substr(0, 25) + "_-"));
  EXPECT_FALSE(IsValidDockerHubToken("dckr_pat_" + b62.substr(0, 28)));
  EXPECT_FALSE(IsValidDockerHubToken("dckr_oat_" + b62.substr(0, 27)));
  EXPECT_TRUE(IsValidWebhookSigningSecret("whsec_" + b62.substr(0, 32)));
  EXPECT_TRUE(IsValidWebhookSigningSecret("whsec_" + b62.substr(0, 30) + "+/"));
  EXPECT_FALSE(IsValidWebhookSigningSecret("whsec_" + b62.substr(0, 31)));
  EXPECT_FALSE(IsValidWebhookSigningSecret("whsec_" + b62 + b62.substr(0, 27)));  // 89.
  const std::string bot = "AA" + b62.substr(0, 31) + "-_";
  EXPECT_TRUE(IsValidTelegramBotToken("123456789:" + bot));
  EXPECT_TRUE(IsValidTelegramBotToken("bot12345678:" + bot));
  EXPECT_TRUE(IsValidTelegramBotToken("1234567890:" + bot));
  EXPECT_FALSE(IsValidTelegramBotToken("1234567:" + bot));
  EXPECT_FALSE(IsValidTelegramBotToken("12345678901:" + bot));
  EXPECT_FALSE(IsValidTelegramBotToken("012345678:" + bot));
  EXPECT_FALSE(IsValidTelegramBotToken("123456789:AB" + bot.substr(2)));
  EXPECT_FALSE(IsValidTelegramBotToken("123456789:" + bot + "x"));
  EXPECT_FALSE(IsValidTelegramBotToken("123456789:AA" + std::string(33, 'x')));
  const std::string hook = "https://hooks.slack.com/services/T0ABCDEF12/B0ABCDEF34/";
  EXPECT_TRUE(IsValidSlackWebhookUrl(hook + b62.substr(10, 24)));
  EXPECT_TRUE(IsValidSlackWebhookUrl("http://hooks.slack.com/triggers/T0ABCDEF12/4123/" + b62));
  EXPECT_TRUE(
      IsValidSlackWebhookUrl("https://hooks.slack.com/workflows/T0ABCDEF12/A0ABCDEF34/"
                             "412345678901234567/" +
                             b62.substr(0, 32)));
  EXPECT_FALSE(IsValidSlackWebhookUrl(hook + b62.substr(10, 23)));
  EXPECT_FALSE(IsValidSlackWebhookUrl(hook + std::string(24, 'X')));
  EXPECT_FALSE(IsValidSlackWebhookUrl("https://hooks.slack.com/services/T0abcdef12/B0ABCDEF34/" +
                                      b62.substr(10, 24)));
  EXPECT_FALSE(
      IsValidSlackWebhookUrl("https://hooks.slack.com/services/T0ABCDEF12/" + b62.substr(10, 24)));
  const std::string app = "xapp-1-A0ABCDEF12-1234567890123-";
  const std::string hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  EXPECT_TRUE(IsValidSlackAppToken(app + hex64));
  EXPECT_FALSE(IsValidSlackAppToken(app + hex64.substr(1)));
  EXPECT_FALSE(IsValidSlackAppToken(app + "A" + hex64.substr(1)));
  EXPECT_FALSE(IsValidSlackAppToken("xapp-1-B0ABCDEF12-1234567890123-" + hex64));
  EXPECT_FALSE(IsValidSlackAppToken(app + std::string(64, '0')));
  const std::string key43 = b62.substr(0, 41) + "+/";
  EXPECT_TRUE(IsValidAzureSharedAccessKey(key43 + "="));
  EXPECT_FALSE(IsValidAzureSharedAccessKey(key43 + "=="));
  EXPECT_FALSE(IsValidAzureSharedAccessKey(key43.substr(1) + "="));
  EXPECT_FALSE(IsValidAzureSharedAccessKey(std::string(43, 'A') + "="));
  EXPECT_TRUE(IsValidAzureSasSignature(b62.substr(0, 41) + "%2B%2f%3D"));
  EXPECT_TRUE(IsValidAzureSasSignature(key43 + "="));
  EXPECT_FALSE(IsValidAzureSasSignature(b62.substr(0, 41) + "%2B%2F%3"));
  EXPECT_FALSE(IsValidAzureSasSignature(b62.substr(0, 41) + "%2B%20%3D"));
  EXPECT_FALSE(IsValidAzureSasSignature(b62.substr(10, 43) + "="));  // No digit.
  EXPECT_FALSE(IsValidAzureSasSignature(b62.substr(0, 42) + "%3D"));
}

TEST(ValidatorsTest, MoreProvidersTokens) {
  const std::string b62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  const std::string hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  EXPECT_TRUE(IsValidPerplexityApiKey("pplx-" + b62.substr(0, 48)));
  EXPECT_FALSE(IsValidPerplexityApiKey("pplx-" + b62.substr(0, 47)));
  EXPECT_TRUE(IsValidReplicateApiToken("r8_" + b62.substr(0, 35) + "_-"));
  EXPECT_FALSE(IsValidReplicateApiToken("r8_" + b62.substr(0, 38)));
  EXPECT_TRUE(IsValidLangSmithApiKey("lsv2_pt_" + hex.substr(0, 32) + "_" + hex.substr(0, 10)));
  EXPECT_TRUE(IsValidLangSmithApiKey("lsv2_sk_" + hex.substr(0, 32) + "_" + hex.substr(5, 10)));
  EXPECT_FALSE(IsValidLangSmithApiKey("lsv2_xx_" + hex.substr(0, 32) + "_" + hex.substr(0, 10)));
  EXPECT_FALSE(IsValidLangSmithApiKey("lsv2_pt_" + hex.substr(0, 32) + "_" + hex.substr(0, 9)));
  EXPECT_FALSE(IsValidLangSmithApiKey("lsv2_pt_" + b62.substr(10, 32) + "_" + hex.substr(0, 10)));
  EXPECT_TRUE(IsValidDatabricksToken("dapi" + hex.substr(0, 32)));
  EXPECT_TRUE(IsValidDatabricksToken("dapi" + hex.substr(0, 32) + "-3"));
  EXPECT_FALSE(IsValidDatabricksToken("dapi" + hex.substr(0, 32) + "-x"));
  EXPECT_FALSE(IsValidDatabricksToken("dapi" + std::string(32, 'a')));
  EXPECT_FALSE(IsValidDatabricksToken("dapi" + hex.substr(0, 31)));
  const std::string atlassian = b62 + b62 + b62.substr(0, 53) + "=A1B2C3D4";  // 186.
  EXPECT_TRUE(IsValidAtlassianApiToken("ATATT3" + atlassian));
  EXPECT_FALSE(IsValidAtlassianApiToken("ATATT3" + atlassian + "0"));
  EXPECT_TRUE(IsValidVaultToken("hvs." + b62 + b62.substr(0, 30)));
  EXPECT_TRUE(IsValidVaultToken("hvb." + b62 + b62 + b62.substr(0, 20)));
  EXPECT_FALSE(IsValidVaultToken("hvs." + b62.substr(0, 60) + b62.substr(0, 29)));  // 89.
  EXPECT_FALSE(IsValidVaultToken("hvs." + b62.substr(10) + b62.substr(10, 40)));    // No digit.
  EXPECT_FALSE(IsValidVaultToken("hvb." + b62 + b62.substr(0, 30)));                // Short.
  EXPECT_TRUE(IsValidAzureClientSecret("Abc8Q~" + b62.substr(0, 30) + "_~.-"));
  EXPECT_TRUE(IsValidAzureClientSecret("a.~1Q~" + b62.substr(0, 31)));
  EXPECT_FALSE(IsValidAzureClientSecret("Abc8Q~" + b62.substr(0, 30)));
  EXPECT_FALSE(IsValidAzureClientSecret("AbcxQ~" + b62.substr(0, 34)));
  EXPECT_FALSE(IsValidAzureClientSecret("Abc8Q-" + b62.substr(0, 34)));
  EXPECT_TRUE(IsValidDigitalOceanToken("dop_v1_" + hex));
  EXPECT_TRUE(IsValidDigitalOceanToken("dor_v1_" + hex));
  EXPECT_FALSE(IsValidDigitalOceanToken("dox_v1_" + hex));
  EXPECT_FALSE(IsValidDigitalOceanToken("dop_v1_" + hex.substr(1)));
  EXPECT_TRUE(IsValidPostmanApiKey("PMAK-" + hex.substr(0, 24) + "-" + hex.substr(3, 34)));
  EXPECT_FALSE(IsValidPostmanApiKey("PMAK-" + hex.substr(0, 24) + "-" + hex.substr(3, 33)));
  EXPECT_FALSE(IsValidPostmanApiKey("PMAK-" + hex.substr(0, 25) + "-" + hex.substr(3, 33)));
  EXPECT_TRUE(IsValidGrafanaToken("glsa_" + b62.substr(5, 32) + "_" + hex.substr(0, 8)));
  EXPECT_FALSE(IsValidGrafanaToken("glsa_" + b62.substr(5, 32) + "_" + b62.substr(20, 8)));
  EXPECT_FALSE(IsValidGrafanaToken("glsa_" + std::string(32, 'x') + "_" + hex.substr(0, 8)));
}

TEST(ValidatorsTest, AuthorizationCredentials) {
  EXPECT_TRUE(IsValidBasicCredentials("ZGVwbG95OlhrOCNwcTJMeiF3"));  // deploy:Xk8#pq2Lz!w
  EXPECT_TRUE(IsValidBasicCredentials("YWxhZGRpbjpvcGVuc2VzYW1l"));  // aladdin:opensesame
  EXPECT_TRUE(IsValidBasicCredentials("dTpTM2NyM3RQYXNz"));          // u:S3cr3tPass
  EXPECT_TRUE(IsValidBasicCredentials("dTpTM2NyM3RQYXNzIQ=="));      // u:S3cr3tPass!
  EXPECT_TRUE(IsValidBasicCredentials("dTpTM2NyM3RQYXNzIQ"));        // Unpadded.
  EXPECT_FALSE(IsValidBasicCredentials("dXNlcm5hbWU="));             // username
  EXPECT_FALSE(IsValidBasicCredentials("dXNlcjpwYXNzd29yZA=="));     // user:password
  EXPECT_FALSE(IsValidBasicCredentials("OnNlY3JldHBhc3M="));         // :secretpass
  EXPECT_FALSE(IsValidBasicCredentials("dXNlcm5hbWU6"));             // username:
  EXPECT_FALSE(IsValidBasicCredentials("dXNlcjoke0RCX1BBU1N9"));     // user:${DB_PASS}
  EXPECT_FALSE(IsValidBasicCredentials("dTpTM2NyM3RQYXNzIQ=.="));    // Not base64.
  EXPECT_FALSE(IsValidBasicCredentials("AAECAwQFBgcICQ=="));         // Not printable.
  EXPECT_TRUE(IsValidBearerToken("9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"));
  EXPECT_TRUE(IsValidBearerToken("v2.local.AbCd-Ef_Gh1"));
  EXPECT_FALSE(IsValidBearerToken("abc1234"));  // Short.
  EXPECT_FALSE(IsValidBearerToken("12345678901234"));
  EXPECT_FALSE(IsValidBearerToken("ACCESS_TOKEN"));
  EXPECT_FALSE(IsValidBearerToken("YOUR_API_TOKEN_1"));
  EXPECT_FALSE(IsValidBearerToken("sk-xxxx-1234"));
  EXPECT_FALSE(IsValidBearerToken("SK-XXXX-1234"));
  EXPECT_TRUE(IsValidBearerToken("q8XxXr2LmZ0aB"));  // A random token's mixed-case "xXx".
  EXPECT_FALSE(IsValidBearerToken(std::string(4097, 'a') + "1"));
}

TEST(ValidatorRegistryTest, FindsEachNamedValidator) {
  const std::vector<std::string> names = KnownValidatorNames();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  for (const std::string& name : names) EXPECT_THAT(FindValidator(name), NotNull()) << name;
  EXPECT_THAT(names, Contains("luhn"));
  EXPECT_EQ(FindValidator("luhn"), &PassesLuhn);
  EXPECT_EQ(FindValidator("iban"), &IsValidIban);
  EXPECT_THAT(FindValidator("Luhn"), IsNull());
  EXPECT_THAT(FindValidator(""), IsNull());
}

}  // namespace
}  // namespace policy::pii
