#include "common/tls/tls_options.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/log/log.h"
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

// The first PEM certificate of `pem`, read from `path` for `setting`.
absl::StatusOr<X509Ptr> FirstCertificate(const std::string& pem, const std::string& path,
                                         absl::string_view setting) {
  BioPtr bio = MemoryBio(pem);
  X509Ptr certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
  ERR_clear_error();
  if (certificate == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(setting, ": '", path, "' holds no PEM certificate"));
  }
  return certificate;
}

// The contents of a TlsOptions' files.
struct Files {
  std::string cert, key, ca;
  bool operator==(const Files&) const = default;
};

absl::StatusOr<Files> ReadFiles(const TlsOptions& o) {
  Files files;
  for (auto [path, setting, content] : {std::tuple(&o.cert_file, "tls_cert_file", &files.cert),
                                        std::tuple(&o.key_file, "tls_key_file", &files.key),
                                        std::tuple(&o.ca_file, "tls_ca_file", &files.ca)}) {
    if (path->empty()) continue;
    absl::StatusOr<std::string> read = ReadFile(*path, setting);
    if (!read.ok()) return read.status();
    *content = *std::move(read);
  }
  return files;
}

absl::Time NotAfter(const X509* certificate) {
  struct tm when = {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(certificate), &when) != 1) return absl::InfinitePast();
  return absl::FromTM(when, absl::UTCTimeZone());
}

// Checks `files` of `o` as Validate says, the certificate valid at `now`; sets `not_after` to
// the certificate's end (InfiniteFuture without one).
absl::Status CheckFiles(const TlsOptions& o, const Files& files, absl::Time now,
                        absl::Time* not_after) {
  *not_after = absl::InfiniteFuture();
  if (!o.cert_file.empty()) {
    absl::StatusOr<X509Ptr> certificate =
        FirstCertificate(files.cert, o.cert_file, "tls_cert_file");
    if (!certificate.ok()) return certificate.status();
    BioPtr bio = MemoryBio(files.key);
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
    *not_after = NotAfter(certificate->get());
    if (*not_after <= now) {
      return absl::InvalidArgumentError(
          absl::StrCat("tls_cert_file: the certificate in '", o.cert_file, "' expired at ",
                       absl::FormatTime(absl::RFC3339_sec, *not_after, absl::UTCTimeZone())));
    }
  }
  if (!o.ca_file.empty()) {
    if (absl::StatusOr<X509Ptr> ca = FirstCertificate(files.ca, o.ca_file, "tls_ca_file");
        !ca.ok()) {
      return ca.status();
    }
  }
  return absl::OkStatus();
}

// Writes `content` to `path` (mode 0600) through a temporary file renamed over it.
absl::Status WriteFileAtomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  const bool closed = ::close(fd) == 0;
  if (written != content.size() || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

// The files of one TlsOptions as last found valid, staged in a private directory (mode 0700,
// removed on destruction) that gRPC's file watchers read. Every reload_interval the configured
// files are read; changed ones are checked (CheckFiles) and, when they hold, staged; when not,
// the last good ones stay in service and the problem is logged once and kept in the state.
class StagedFiles {
 public:
  explicit StagedFiles(TlsOptions configured)
      : configured_(std::move(configured)), staged_(configured_) {
    const char* base = std::getenv("TMPDIR");
    std::string dir =
        absl::StrCat(base != nullptr && *base != '\0' ? base : "/tmp", "/policy-tls-XXXXXX");
    if (::mkdtemp(dir.data()) != nullptr) {
      dir_ = dir;
      if (!configured_.cert_file.empty()) {
        staged_.cert_file = dir_ + "/cert.pem";
        staged_.key_file = dir_ + "/key.pem";
      }
      if (!configured_.ca_file.empty()) staged_.ca_file = dir_ + "/ca.pem";
    }
    // Without a directory, or when the first read fails (Validate accepted the files just
    // before), gRPC reads the configured files themselves.
    if (dir_.empty() || !Refresh()) staged_ = configured_;
    thread_ = std::thread([this] { Loop(); });
  }

  ~StagedFiles() {
    stop_.Notify();
    thread_.join();
    if (dir_.empty()) return;
    for (const char* name : {"/cert.pem", "/key.pem", "/ca.pem"}) {
      std::remove((dir_ + name).c_str());
    }
    ::rmdir(dir_.c_str());
  }

  const TlsOptions& staged() const { return staged_; }

  FilesState state() const {
    absl::MutexLock lock(&mu_);
    return state_;
  }

 private:
  void Loop() {
    while (!stop_.WaitForNotificationWithTimeout(configured_.reload_interval)) {
      if (staged_.cert_file != configured_.cert_file || staged_.ca_file != configured_.ca_file) {
        Refresh();
      }
    }
  }

  // Reads the configured files and stages them when they changed and hold; whether the files
  // in service are the configured ones as they are now.
  bool Refresh() {
    absl::StatusOr<Files> files = ReadFiles(configured_);
    if (files.ok() && last_.has_value() && *files == *last_) return true;
    absl::Time not_after;
    absl::Status checked =
        files.ok() ? CheckFiles(configured_, *files, absl::Now(), &not_after) : files.status();
    if (checked.ok()) {
      for (auto [path, content] :
           {std::pair(&staged_.cert_file, &files->cert), std::pair(&staged_.key_file, &files->key),
            std::pair(&staged_.ca_file, &files->ca)}) {
        if (path->empty() || !absl::StartsWith(*path, dir_)) continue;
        if (absl::Status s = WriteFileAtomically(*path, *content); !s.ok()) checked = s;
      }
    }
    absl::MutexLock lock(&mu_);
    if (!checked.ok()) {
      if (state_.problem != checked.message()) {
        LogError("TLS files refused: the last good ones stay in service",
                 {{"problem", std::string(checked.message())}});
      }
      state_.valid = false;
      state_.problem = std::string(checked.message());
      return false;
    }
    if (last_.has_value()) {
      LogInfo("TLS files reloaded",
              {{"certificate_not_after",
                absl::FormatTime(absl::RFC3339_sec, not_after, absl::UTCTimeZone())}});
    }
    last_ = *std::move(files);
    state_ = FilesState{.valid = true, .problem = "", .certificate_not_after = not_after};
    return true;
  }

  const TlsOptions configured_;
  TlsOptions staged_;
  std::string dir_;
  std::optional<Files> last_;  // As last staged; Refresh's.
  mutable absl::Mutex mu_;
  FilesState state_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread thread_;
};

std::string StagingKey(const TlsOptions& o) {
  return absl::StrCat(o.cert_file, "\n", o.key_file, "\n", o.ca_file, "\n",
                      absl::FormatDuration(o.reload_interval));
}

// The process's staged files, one StagedFiles per distinct set of files, made on first use
// and kept until the process exits.
class Staging {
 public:
  std::shared_ptr<StagedFiles> For(const TlsOptions& o, bool create) {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<StagedFiles>& staged = all_[StagingKey(o)];
    if (staged == nullptr && create) staged = std::make_shared<StagedFiles>(o);
    return staged;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<StagedFiles>> all_ ABSL_GUARDED_BY(mu_);
};

Staging& ProcessStaging() {
  static Staging staging;
  return staging;
}

std::shared_ptr<grpc::experimental::CertificateProviderInterface> Provider(const TlsOptions& o) {
  const TlsOptions& s = ProcessStaging().For(o, /*create=*/true)->staged();
  const auto seconds = static_cast<unsigned int>(absl::ToInt64Seconds(o.reload_interval));
  if (s.cert_file.empty()) {
    return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(s.ca_file, seconds);
  }
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      s.key_file, s.cert_file, s.ca_file, seconds);
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
  absl::StatusOr<Files> files = ReadFiles(*this);
  if (!files.ok()) return files.status();
  absl::Time not_after;
  return CheckFiles(*this, *files, absl::Now(), &not_after);
}

std::optional<FilesState> StagedFilesState(const TlsOptions& options) {
  if (!options.calls_use_tls()) return std::nullopt;
  std::shared_ptr<StagedFiles> staged = ProcessStaging().For(options, /*create=*/false);
  if (staged == nullptr) return std::nullopt;
  return staged->state();
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
