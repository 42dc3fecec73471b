#include "common/tls/tls_options.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace policy::tls {
namespace {

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view setting) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(setting, ": cannot read '", path, "'"));
  }
  return content.str();
}

BioPtr MemoryBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
}

// The certificates in `pem`, in order; none when it holds no parsable certificate.
std::vector<X509Ptr> ParseCertificates(const std::string& pem) {
  std::vector<X509Ptr> certificates;
  BioPtr bio = MemoryBio(pem);
  while (X509* certificate = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certificates.emplace_back(certificate, &X509_free);
  }
  ERR_clear_error();  // The read past the last certificate.
  return certificates;
}

absl::Status CheckCertificates(const std::string& path, absl::string_view setting, X509Ptr* first) {
  absl::StatusOr<std::string> pem = ReadFile(path, setting);
  if (!pem.ok()) return pem.status();
  std::vector<X509Ptr> certificates = ParseCertificates(*pem);
  if (certificates.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(setting, ": '", path, "' holds no PEM certificate"));
  }
  if (first != nullptr) *first = std::move(certificates.front());
  return absl::OkStatus();
}

absl::Status CheckKeyPair(const TlsOptions& o) {
  X509Ptr certificate(nullptr, &X509_free);
  if (absl::Status s = CheckCertificates(o.cert_file, "tls_cert_file", &certificate); !s.ok()) {
    return s;
  }
  absl::StatusOr<std::string> pem = ReadFile(o.key_file, "tls_key_file");
  if (!pem.ok()) return pem.status();
  BioPtr bio = MemoryBio(*pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls_key_file: '", o.key_file,
                     "' holds no PEM private key (an encrypted key is not "
                     "supported)"));
  }
  if (X509_check_private_key(certificate.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("tls_key_file: the key in '", o.key_file,
                                                   "' does not belong to the certificate in '",
                                                   o.cert_file, "'"));
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::experimental::CertificateProviderInterface> Provider(const TlsOptions& o) {
  const auto seconds = static_cast<unsigned int>(absl::ToInt64Seconds(o.reload_interval));
  if (o.cert_file.empty()) {
    return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(o.ca_file, seconds);
  }
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      o.key_file, o.cert_file, o.ca_file, seconds);
}

}  // namespace

void TlsOptions::Register(config::Parser& parser) {
  parser.AddString("tls_cert_file", &cert_file,
                   "PEM certificate chain: serve TLS, and present it on every call");
  parser.AddString("tls_key_file", &key_file, "PEM private key of tls_cert_file");
  parser.AddString("tls_ca_file", &ca_file,
                   "PEM CA bundle verifying the servers called and, if required, the clients");
  parser.AddBool("tls_require_client_cert", &require_client_cert,
                 "refuse clients without a certificate issued by tls_ca_file");
  parser.AddDuration("tls_reload_interval", &reload_interval,
                     "how often the certificate, key and CA files are re-read");
}

absl::Status TlsOptions::Validate() const {
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError("tls_cert_file and tls_key_file must be set together");
  }
  if (require_client_cert && (cert_file.empty() || ca_file.empty())) {
    return absl::InvalidArgumentError(
        "tls_require_client_cert needs tls_cert_file, tls_key_file and tls_ca_file");
  }
  if (reload_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError("tls_reload_interval must be at least 1s");
  }
  if (!cert_file.empty()) {
    if (absl::Status s = CheckKeyPair(*this); !s.ok()) return s;
  }
  if (!ca_file.empty()) {
    if (absl::Status s = CheckCertificates(ca_file, "tls_ca_file", nullptr); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TlsOptions& options) {
  if (!options.serves_tls()) return grpc::InsecureServerCredentials();
  grpc::experimental::TlsServerCredentialsOptions tls(Provider(options));
  tls.watch_identity_key_cert_pairs();
  if (!options.ca_file.empty()) tls.watch_root_certs();
  tls.set_cert_request_type(options.require_client_cert
                                ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  return grpc::experimental::TlsServerCredentials(tls);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const TlsOptions& options) {
  if (!options.calls_use_tls()) return grpc::InsecureChannelCredentials();
  grpc::experimental::TlsChannelCredentialsOptions tls;
  tls.set_certificate_provider(Provider(options));
  if (!options.ca_file.empty()) tls.watch_root_certs();
  if (!options.cert_file.empty()) tls.watch_identity_key_cert_pairs();
  tls.set_verify_server_certs(true);
  tls.set_certificate_verifier(std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  return grpc::experimental::TlsCredentials(tls);
}

}  // namespace policy::tls
