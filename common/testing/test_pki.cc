#include "common/testing/test_pki.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <memory>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace policy::testing {
namespace {

using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;

void Check(bool ok, const char* what) {
  if (!ok) ABSL_RAW_LOG(FATAL, "test PKI: %s failed", what);
}

std::string ToString(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string CertificatePem(X509* certificate) {
  BioPtr bio(BIO_new(BIO_s_mem()), &BIO_free);
  Check(PEM_write_bio_X509(bio.get(), certificate) == 1, "PEM_write_bio_X509");
  return ToString(bio.get());
}

std::string KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()), &BIO_free);
  Check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  return ToString(bio.get());
}

X509Ptr ParseCertificate(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  X509Ptr certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
  Check(certificate != nullptr, "PEM_read_bio_X509");
  return certificate;
}

KeyPtr ParseKey(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  Check(key != nullptr, "PEM_read_bio_PrivateKey");
  return key;
}

void AddExtension(X509* certificate, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
  Check(extension != nullptr, "X509V3_EXT_conf_nid");
  Check(X509_add_ext(certificate, extension, -1) == 1, "X509_add_ext");
  X509_EXTENSION_free(extension);
}

// A certificate for `key` named `common_name`, signed by `issuer_key` (self-signed when
// `issuer` is null), with `extensions` (nid, value).
X509Ptr MakeCertificate(const std::string& common_name, EVP_PKEY* key, X509* issuer,
                        EVP_PKEY* issuer_key,
                        const std::vector<std::pair<int, std::string>>& extensions) {
  static std::atomic<long> serial{1};
  X509Ptr certificate(X509_new(), &X509_free);
  Check(X509_set_version(certificate.get(), 2) == 1, "X509_set_version");
  ASN1_INTEGER_set(X509_get_serialNumber(certificate.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(certificate.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(certificate.get()), 24 * 3600);
  Check(X509_set_pubkey(certificate.get(), key) == 1, "X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(certificate.get());
  Check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                   -1, 0) == 1,
        "X509_NAME_add_entry_by_txt");
  X509* signer = issuer == nullptr ? certificate.get() : issuer;
  Check(X509_set_issuer_name(certificate.get(), X509_get_subject_name(signer)) == 1,
        "X509_set_issuer_name");
  for (const auto& [nid, value] : extensions) {
    AddExtension(certificate.get(), signer, nid, value);
  }
  Check(X509_sign(certificate.get(), issuer_key, EVP_sha256()) > 0, "X509_sign");
  return certificate;
}

KeyPtr NewKey() {
  KeyPtr key(EVP_EC_gen("P-256"), &EVP_PKEY_free);
  Check(key != nullptr, "EVP_EC_gen");
  return key;
}

}  // namespace

TestCa::TestCa(const std::string& name) {
  KeyPtr key = NewKey();
  X509Ptr certificate = MakeCertificate(name, key.get(), nullptr, key.get(),
                                        {{NID_basic_constraints, "critical,CA:TRUE"},
                                         {NID_key_usage, "critical,keyCertSign,cRLSign"},
                                         {NID_subject_key_identifier, "hash"}});
  self_ = {CertificatePem(certificate.get()), KeyPem(key.get())};
}

KeyPair TestCa::Issue(const std::string& common_name, const std::vector<std::string>& dns_names,
                      const std::vector<std::string>& ip_addresses) const {
  std::vector<std::string> names;
  for (const std::string& dns : dns_names) names.push_back(absl::StrCat("DNS:", dns));
  for (const std::string& ip : ip_addresses) names.push_back(absl::StrCat("IP:", ip));
  X509Ptr issuer = ParseCertificate(self_.certificate);
  KeyPtr issuer_key = ParseKey(self_.private_key);
  KeyPtr key = NewKey();
  std::vector<std::pair<int, std::string>> extensions = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "serverAuth,clientAuth"},
      {NID_authority_key_identifier, "keyid:always"}};
  if (!names.empty()) extensions.emplace_back(NID_subject_alt_name, absl::StrJoin(names, ","));
  X509Ptr certificate =
      MakeCertificate(common_name, key.get(), issuer.get(), issuer_key.get(), extensions);
  return {CertificatePem(certificate.get()), KeyPem(key.get())};
}

}  // namespace policy::testing
