#include "common/tls/tls_options.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpcpp/security/auth_metadata_processor.h"
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

// Reads `path` for `setting` and returns its first PEM certificate.
absl::StatusOr<X509Ptr> FirstCertificate(const std::string& path, absl::string_view setting) {
  absl::StatusOr<std::string> pem = ReadFile(path, setting);
  if (!pem.ok()) return pem.status();
  BioPtr bio = MemoryBio(*pem);
  X509Ptr certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
  ERR_clear_error();
  if (certificate == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(setting, ": '", path, "' holds no PEM certificate"));
  }
  return certificate;
}

absl::Status CheckKeyPair(const TlsOptions& o) {
  absl::StatusOr<X509Ptr> certificate = FirstCertificate(o.cert_file, "tls_cert_file");
  if (!certificate.ok()) return certificate.status();
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
  if (X509_check_private_key(certificate->get(), key.get()) != 1) {
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

// Admits a call only when the client's certificate names an allowed client, or when it asks
// for grpc.health.v1 readiness (which the plaintext health port tells anyone): clients watch
// it to route around replicas that are not ready, and a client that may not call still learns
// PERMISSION_DENIED from its calls rather than a failed health check. Runs inline on the
// call's thread (a handful of string comparisons).
class AllowedClients : public grpc::AuthMetadataProcessor {
 public:
  explicit AllowedClients(std::vector<std::string> allowed) : allowed_(std::move(allowed)) {}

  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& metadata, grpc::AuthContext* context, OutputMetadata*,
                       OutputMetadata*) override {
    auto path = metadata.find(":path");
    if (path != metadata.end() &&
        absl::StartsWith(absl::string_view(path->second.data(), path->second.size()),
                         "/grpc.health.v1.Health/")) {
      return grpc::Status::OK;
    }
    std::vector<std::string> names;
    for (const char* property :
         {GRPC_PEER_DNS_PROPERTY_NAME, GRPC_PEER_URI_PROPERTY_NAME, GRPC_X509_CN_PROPERTY_NAME}) {
      for (const grpc::string_ref& value : context->FindPropertyValues(property)) {
        names.emplace_back(value.data(), value.size());
      }
    }
    if (ClientAllowed(allowed_, names)) return grpc::Status::OK;
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("client certificate (", absl::StrJoin(names, ", "),
                                     ") is not among tls_allowed_clients"));
  }

 private:
  const std::vector<std::string> allowed_;
};

}  // namespace

void TlsOptions::Register(config::Parser& parser) {
  parser.AddString("tls_cert_file", &cert_file,
                   "PEM certificate chain: serve TLS, and present it on every call");
  parser.AddString("tls_key_file", &key_file, "PEM private key of tls_cert_file");
  parser.AddString("tls_ca_file", &ca_file,
                   "PEM CA bundle verifying the servers called and, if required, the clients");
  parser.AddBool("tls_require_client_cert", &require_client_cert,
                 "refuse clients without a certificate issued by tls_ca_file");
  parser.AddList("tls_allowed_clients", &allowed_clients,
                 "names a client certificate must carry (SAN or subject) to call; empty: any");
  parser.AddDuration("tls_reload_interval", &reload_interval,
                     "how often the certificate, key and CA files are re-read");
}

void TlsOptions::RegisterClient(config::Parser& parser) {
  parser.AddString("tls_cert_file", &cert_file,
                   "PEM certificate chain presented as the client certificate on every call");
  parser.AddString("tls_key_file", &key_file, "PEM private key of tls_cert_file");
  parser.AddString("tls_ca_file", &ca_file,
                   "PEM CA bundle verifying the servers called (alone: TLS without a client "
                   "certificate); empty: the system's roots when a certificate is set");
}

absl::Status TlsOptions::Validate() const {
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError("tls_cert_file and tls_key_file must be set together");
  }
  if (require_client_cert && (cert_file.empty() || ca_file.empty())) {
    return absl::InvalidArgumentError(
        "tls_require_client_cert needs tls_cert_file, tls_key_file and tls_ca_file");
  }
  if (!allowed_clients.empty() && !require_client_cert) {
    return absl::InvalidArgumentError("tls_allowed_clients needs tls_require_client_cert");
  }
  for (const std::string& name : allowed_clients) {
    const bool plain = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
             absl::string_view(".-_:/@*").find(c) != absl::string_view::npos;
    });
    const size_t star = name.find('*', 1);
    if (!plain || (star != std::string::npos && star != name.size() - 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tls_allowed_clients: '", name,
          "' is not a certificate name (letters, digits, . - _ : / @, and * only at one end)"));
    }
  }
  if (reload_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError("tls_reload_interval must be at least 1s");
  }
  if (!cert_file.empty()) {
    if (absl::Status s = CheckKeyPair(*this); !s.ok()) return s;
  }
  if (!ca_file.empty()) {
    if (absl::StatusOr<X509Ptr> ca = FirstCertificate(ca_file, "tls_ca_file"); !ca.ok()) {
      return ca.status();
    }
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
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::experimental::TlsServerCredentials(tls);
  if (!options.allowed_clients.empty()) {
    credentials->SetAuthMetadataProcessor(
        std::make_shared<AllowedClients>(options.allowed_clients));
  }
  return credentials;
}

bool ClientAllowed(const std::vector<std::string>& allowed, const std::vector<std::string>& names) {
  if (allowed.empty()) return true;
  for (absl::string_view pattern : allowed) {
    for (absl::string_view name : names) {
      if (pattern == "*" || pattern == name ||
          (absl::StartsWith(pattern, "*") && absl::EndsWith(name, pattern.substr(1))) ||
          (absl::EndsWith(pattern, "*") &&
           absl::StartsWith(name, pattern.substr(0, pattern.size() - 1)))) {
        return true;
      }
    }
  }
  return false;
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
