#include "services/authz/ip_allowlist.h"

#include <bitset>
#include <random>
#include <string>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::authz {
namespace {

using ::testing::HasSubstr;

IpAddress Ip(absl::string_view text) {
  absl::StatusOr<IpAddress> address = ParseIpAddress(text);
  EXPECT_TRUE(address.ok()) << text << ": " << address.status();
  return address.value_or(IpAddress{});
}

Cidr Net(absl::string_view text) {
  absl::StatusOr<Cidr> cidr = ParseCidr(text);
  EXPECT_TRUE(cidr.ok()) << text << ": " << cidr.status();
  return cidr.value_or(Cidr{});
}

TEST(IpAddressTest, ParsesBothFamiliesStrictly) {
  EXPECT_FALSE(Ip("192.0.2.1").is_v6);
  EXPECT_TRUE(Ip("2001:db8::1").is_v6);
  EXPECT_EQ(FormatIpAddress(Ip("2001:0db8:0000::0001")), "2001:db8::1");
  for (absl::string_view bad : {"", "010.0.0.1", "1.2.3", "1.2.3.4 ", "256.1.1.1", "1::2::3",
                                "fe80::1%eth0", "0x1.2.3.4", "example.com", "1.2.3.4/32"}) {
    absl::StatusOr<IpAddress> address = ParseIpAddress(bad);
    EXPECT_EQ(address.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(IpAddressTest, TheWholeTextIsTheAddress) {
  using namespace std::string_literals;
  for (const std::string& bad :
       {"10.20.1.7\0junk"s, "10.20.1.7\0"s, "\0"s, "203.0.113.9\0"s, "2001:db8::1\0x"s,
        "10.20.1.7 junk"s, "10.20.1.7junk"s, "10.20.1.7\n"s}) {
    absl::StatusOr<IpAddress> address = ParseIpAddress(bad);
    EXPECT_EQ(address.status().code(), absl::StatusCode::kInvalidArgument) << absl::CHexEscape(bad);
  }
  EXPECT_THAT(ParseIpAddress("10.20.1.7\0junk"s).status().message(), HasSubstr("\\x00junk"));
}

TEST(IpAddressTest, MappedIpv6IsTheIpv4Address) {
  EXPECT_EQ(Ip("::ffff:192.0.2.1"), Ip("192.0.2.1"));
  EXPECT_TRUE(Net("192.0.2.0/24").Contains(Ip("::ffff:192.0.2.200")));
}

TEST(CidrTest, AMappedIpv6NetworkCountsIpv6BitsAndIsTheIpv4Network) {
  Cidr mapped = Net("::ffff:10.0.0.0/104");
  EXPECT_EQ(mapped, Net("10.0.0.0/8"));
  EXPECT_EQ(FormatCidr(mapped), "10.0.0.0/8");
  EXPECT_TRUE(mapped.Contains(Ip("10.1.2.3")));
  EXPECT_TRUE(mapped.Contains(Ip("::ffff:10.1.2.3")));
  EXPECT_FALSE(mapped.Contains(Ip("11.0.0.0")));
  EXPECT_EQ(Net("::ffff:192.0.2.1/128"), Net("192.0.2.1"));
  EXPECT_EQ(Net("::ffff:0.0.0.0/96"), Net("0.0.0.0/0"));
  absl::Status wide = ParseCidr("::ffff:10.0.0.0/80").status();
  EXPECT_EQ(wide.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wide.message(), HasSubstr("IPv4-mapped IPv6 network needs a prefix length of 96"));
  absl::Status past = ParseCidr("::ffff:10.0.0.0/129").status();
  EXPECT_THAT(past.message(), HasSubstr("prefix length must be 0 to 128 for an IPv6 address"));
  EXPECT_THAT(ParseCidr("::ffff:10.0.0.0/100").status().message(),
              HasSubstr("host bits set; did you mean 0.0.0.0/4?"));
}

TEST(CidrTest, MatchesOnBitsNotOctets) {
  Cidr twelve = Net("10.0.0.0/12");
  EXPECT_TRUE(twelve.Contains(Ip("10.0.0.0")));
  EXPECT_TRUE(twelve.Contains(Ip("10.15.255.255")));
  EXPECT_FALSE(twelve.Contains(Ip("10.16.0.0")));
  EXPECT_FALSE(twelve.Contains(Ip("11.0.0.0")));
  Cidr odd = Net("192.168.1.128/25");
  EXPECT_TRUE(odd.Contains(Ip("192.168.1.200")));
  EXPECT_FALSE(odd.Contains(Ip("192.168.1.127")));
  Cidr v6 = Net("2001:db8:abc0::/44");
  EXPECT_TRUE(v6.Contains(Ip("2001:db8:abcf:ffff::1")));
  EXPECT_FALSE(v6.Contains(Ip("2001:db8:abd0::")));
  EXPECT_TRUE(Net("0.0.0.0/0").Contains(Ip("203.0.113.9")));
  EXPECT_FALSE(Net("0.0.0.0/0").Contains(Ip("2001:db8::1")));  // Families never mix.
  EXPECT_TRUE(Net("::/0").Contains(Ip("2001:db8::1")));
  EXPECT_TRUE(Net("203.0.113.9").Contains(Ip("203.0.113.9")));  // A bare address is a /32.
  EXPECT_FALSE(Net("203.0.113.9").Contains(Ip("203.0.113.8")));
  EXPECT_EQ(Net("2001:db8::1").prefix_length, 128);
}

TEST(CidrTest, RejectsMalformedCidrsNamingTheProblem) {
  struct Case {
    const char* text;
    const char* message;
  } cases[] = {
      {"", "empty"},
      {"10.0.0.0/33", "0 to 32"},
      {"2001:db8::/129", "0 to 128"},
      {"10.0.0.0/-1", "prefix length"},
      {"10.0.0.0/", "prefix length"},
      {"10.0.0.0/08", "prefix length"},
      {"10.0.0.0/8/8", "prefix length"},
      {"10.0.0/8", "not an IPv4 or IPv6 address"},
      {"10.0.0.1/8", "did you mean 10.0.0.0/8"},
      {"2001:db8::1/32", "did you mean 2001:db8::/32"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Cidr> cidr = ParseCidr(c.text);
    EXPECT_EQ(cidr.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(cidr.status().message(), HasSubstr(c.message)) << c.text;
  }
}

// Contains agrees with a bit-by-bit reference on random networks and addresses, including
// addresses that share exactly prefix_length - 1 bits with the network.
TEST(CidrTest, AgreesWithABitByBitReference) {
  std::mt19937_64 random(7);
  for (int round = 0; round < 20000; ++round) {
    const bool v6 = round % 2 == 1;
    IpAddress network{v6, {}};
    for (int i = 0; i < network.bits() / 8; ++i) network.bytes[i] = random() & 0xff;
    const int length = static_cast<int>(random() % (network.bits() + 1));
    for (int bit = length; bit < network.bits(); ++bit) {
      network.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
    }
    IpAddress address = network;
    if (random() % 2 == 0) {
      for (int i = 0; i < address.bits() / 8; ++i) address.bytes[i] = random() & 0xff;
    } else if (length > 0) {
      const int flip = static_cast<int>(random() % address.bits());
      address.bytes[flip / 8] ^= static_cast<uint8_t>(0x80 >> (flip % 8));
    }
    bool expected = true;
    for (int bit = 0; bit < length; ++bit) {
      const int mask = 0x80 >> (bit % 8);
      expected &= (address.bytes[bit / 8] & mask) == (network.bytes[bit / 8] & mask);
    }
    Cidr cidr{network, length};
    ASSERT_EQ(cidr.Contains(address), expected)
        << FormatCidr(cidr) << " vs " << FormatIpAddress(address);
    // And the text form round-trips.
    ASSERT_EQ(ParseCidr(FormatCidr(cidr)).value_or(Cidr{}), cidr) << FormatCidr(cidr);
  }
}

TEST(IpAllowlistTest, AllowsWhatAnyEntryContains) {
  absl::StatusOr<IpAllowlist> list =
      IpAllowlist::Parse({"10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32"});
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_TRUE(list->Allows(Ip("10.1.2.3")));
  EXPECT_TRUE(list->Allows(Ip("192.168.1.77")));
  EXPECT_TRUE(list->Allows(Ip("2001:db8:1::5")));
  EXPECT_FALSE(list->Allows(Ip("192.168.2.1")));
  EXPECT_FALSE(list->Allows(Ip("2001:db9::1")));
  EXPECT_FALSE(IpAllowlist::Parse({})->Allows(Ip("10.1.2.3")));  // Empty allows nothing.
}

TEST(CidrTest, RefusesANulAnywhere) {
  using namespace std::string_literals;
  for (const std::string& bad :
       {"10.0.0.0\0/8"s, "10.0.0.0/8\0"s, "10.0.0.0/8\0junk"s, "2001:db8::\0/32"s, "10.0.0.1\0"s}) {
    absl::StatusOr<Cidr> cidr = ParseCidr(bad);
    EXPECT_EQ(cidr.status().code(), absl::StatusCode::kInvalidArgument) << absl::CHexEscape(bad);
  }
  EXPECT_EQ(IpAllowlist::Parse({"10.0.0.0/8\0junk"s}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(IpAllowlistTest, RefusesBadListsNamingTheEntry) {
  absl::Status bad = IpAllowlist::Parse({"10.0.0.0/8", "10.0.0.1/8"}).status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("ip_allowlist[1]"));
  absl::Status twice = IpAllowlist::Parse({"10.0.0.0/8", "10.0.0.0/8"}).status();
  EXPECT_THAT(twice.message(), HasSubstr("listed twice"));
  std::vector<std::string> many(IpAllowlist::kMaxEntries + 1);
  for (size_t i = 0; i < many.size(); ++i)
    many[i] = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256);
  EXPECT_THAT(IpAllowlist::Parse(many).status().message(), HasSubstr("at most 256"));
}

}  // namespace
}  // namespace policy::authz
