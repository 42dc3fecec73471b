#include "services/edge/trusted_proxies.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::edge {
namespace {

using ::testing::HasSubstr;

TrustedProxies Trusting(const std::vector<std::string>& entries) {
  absl::StatusOr<TrustedProxies> proxies = TrustedProxies::Parse(entries);
  EXPECT_TRUE(proxies.ok()) << proxies.status();
  return *proxies;
}

TEST(TrustedProxiesTest, ParseNamesTheBadEntry) {
  absl::StatusOr<TrustedProxies> bad = TrustedProxies::Parse({"127.0.0.0/8", "10.0.0.1/8"});
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("trusted_proxies[1]"));
  EXPECT_THAT(bad.status().message(), HasSubstr("did you mean 10.0.0.0/8"));
  EXPECT_EQ(TrustedProxies::Parse({"nonsense"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(TrustedProxies::Parse({}).ok());
}

TEST(TrustedProxiesTest, ReadsThePeersGrpcWritesDown) {
  EXPECT_EQ(net::FormatIpAddress(*PeerIpAddress("ipv4:192.0.2.1:5000")), "192.0.2.1");
  EXPECT_EQ(net::FormatIpAddress(*PeerIpAddress("ipv6:[2001:db8::1]:5000")), "2001:db8::1");
  EXPECT_EQ(net::FormatIpAddress(*PeerIpAddress("ipv6:%5B::1%5D:5000")), "::1");
  EXPECT_EQ(net::FormatIpAddress(*PeerIpAddress("ipv6:[::ffff:10.1.2.3]:5000")), "10.1.2.3");
  for (const char* peer : {"unix:/tmp/s", "", "ipv4:", "ipv6:::1", "ipv4:999.1.1.1:1", "tcp:x"}) {
    EXPECT_EQ(PeerIpAddress(peer).status().code(), absl::StatusCode::kInvalidArgument) << peer;
  }
}

TEST(TrustedProxiesTest, ATrustedPeerStatesTheCallersAddress) {
  const TrustedProxies proxies = Trusting({"127.0.0.0/8", "::1", "10.0.0.0/24"});
  EXPECT_EQ(*proxies.CallerAddress("ipv4:127.0.0.6:4000", "10.20.1.7", "source_ip"), "10.20.1.7");
  EXPECT_EQ(*proxies.CallerAddress("ipv6:[::1]:4000", "2001:db8::5", "source_ip"), "2001:db8::5");
  EXPECT_EQ(*proxies.CallerAddress("ipv4:10.0.0.9:4000", "8.8.8.8", "source_ip"), "8.8.8.8");
  // Stating nothing is stating nothing: the proxy's own address is not the caller's.
  EXPECT_EQ(*proxies.CallerAddress("ipv4:127.0.0.1:4000", "", "source_ip"), "");
  // A Unix socket is this host.
  EXPECT_EQ(*proxies.CallerAddress("unix:/run/edge.sock", "10.20.1.7", "source_ip"), "10.20.1.7");
}

TEST(TrustedProxiesTest, AnyOtherPeerIsJudgedByItsOwnAddress) {
  const TrustedProxies proxies = Trusting({"127.0.0.1/32"});
  EXPECT_EQ(*proxies.CallerAddress("ipv4:127.0.0.2:4000", "", "source_ip"), "127.0.0.2");
  EXPECT_EQ(*proxies.CallerAddress("ipv4:203.0.113.9:4000", "203.0.113.9", "source_ip"),
            "203.0.113.9");
  EXPECT_EQ(*proxies.CallerAddress("ipv4:203.0.113.9:4000", "::ffff:203.0.113.9", "source_ip"),
            "203.0.113.9");
  EXPECT_EQ(*proxies.CallerAddress("ipv6:[2001:db8::9]:4000", "", "source_ip"), "2001:db8::9");

  absl::StatusOr<std::string> forged =
      proxies.CallerAddress("ipv4:203.0.113.9:4000", "10.20.1.7", "source.address");
  ASSERT_EQ(forged.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(forged.status().message(), HasSubstr("source.address: 10.20.1.7"));
  EXPECT_THAT(forged.status().message(), HasSubstr("203.0.113.9"));
  EXPECT_THAT(forged.status().message(), HasSubstr("trusted_proxies"));

  EXPECT_EQ(
      proxies.CallerAddress("ipv4:203.0.113.9:4000", "not an ip", "source_ip").status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(proxies.CallerAddress("weird:peer", "", "source_ip").status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(TrustedProxiesTest, AnEmptyListTrustsNoAddress) {
  const TrustedProxies proxies = Trusting({});
  EXPECT_EQ(proxies.CallerAddress("ipv4:127.0.0.1:4000", "10.20.1.7", "source_ip").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(*proxies.CallerAddress("ipv4:127.0.0.1:4000", "", "source_ip"), "127.0.0.1");
}

}  // namespace
}  // namespace policy::edge
