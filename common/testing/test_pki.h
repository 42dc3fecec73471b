#ifndef POLICY_COMMON_TESTING_TEST_PKI_H_
#define POLICY_COMMON_TESTING_TEST_PKI_H_

#include <string>
#include <vector>

namespace policy::testing {

// A certificate and its private key, PEM.
struct KeyPair {
  std::string certificate;
  std::string private_key;
};

// A throwaway certificate authority for TLS tests (ECDSA P-256, SHA-256): certificates valid
// from an hour ago for a day. Aborts on an OpenSSL failure, which only a broken build causes.
class TestCa {
 public:
  explicit TestCa(const std::string& name);

  const std::string& certificate() const { return self_.certificate; }

  // A leaf certificate for both server and client authentication, naming `dns_names` and
  // `ip_addresses` as subject alternative names.
  KeyPair Issue(const std::string& common_name, const std::vector<std::string>& dns_names,
                const std::vector<std::string>& ip_addresses) const;

 private:
  KeyPair self_;
};

}  // namespace policy::testing

#endif  // POLICY_COMMON_TESTING_TEST_PKI_H_
