#include "common/tls/tls_options.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
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

// Writes `content` to `path`, mode 0600.
absl::Status WriteFile(const std::string& path, const std::string& content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  if (::close(fd) != 0 || written != content.size()) {
    return absl::UnavailableError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

// Removes directory `dir` and the files and directories directly in it.
void RemoveTree(const std::string& dir) {
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      const std::string path = absl::StrCat(dir, "/", name);
      if (::unlink(path.c_str()) != 0) RemoveTree(path);
    }
    ::closedir(d);
  }
  ::rmdir(dir.c_str());
}

constexpr absl::string_view kStagingPrefix = "policy-tls-";

// Where staged copies go: /dev/shm (memory, as the mounted secret is) when there is one,
// else $TMPDIR or /tmp. Directories an earlier process of this user left (killed before it
// could remove them) are removed first: their names carry the process id.
std::string StagingBase() {
  std::string base = "/dev/shm";
  if (::access(base.c_str(), W_OK | X_OK) != 0) {
    const char* tmp = std::getenv("TMPDIR");
    base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  if (DIR* d = ::opendir(base.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      absl::string_view name = e->d_name;
      if (!absl::ConsumePrefix(&name, kStagingPrefix)) continue;
      int pid = 0;
      struct stat st = {};
      const std::string path = absl::StrCat(base, "/", e->d_name);
      if (absl::SimpleAtoi(name.substr(0, name.find('-')), &pid) && pid > 0 &&
          ::kill(pid, 0) != 0 && errno == ESRCH && ::lstat(path.c_str(), &st) == 0 &&
          S_ISDIR(st.st_mode) && st.st_uid == ::getuid()) {  // A directory, not a link to one.
        RemoveTree(path);
      }
    }
    ::closedir(d);
  }
  return base;
}

// A server's TLS files as last found valid, staged in a private directory (mode 0700, in
// memory where the system allows, removed on destruction) that gRPC's file watchers read:
// every reload_interval the configured files are read; changed ones are checked (CheckFiles,
// read twice before a refusal, as a secret being replaced may be read half old, half new)
// and, when they hold, written as a new generation that one rename of the `current` link puts
// in service whole; when not, the last good ones stay in service and the problem is logged
// once and kept in the state. Without a directory, gRPC reads the configured files, and the
// state still follows them.
class StagedFiles {
 public:
  explicit StagedFiles(TlsOptions configured)
      : configured_(std::move(configured)), staged_(configured_) {
    std::string dir = absl::StrCat(StagingBase(), "/", kStagingPrefix, ::getpid(), "-XXXXXX");
    if (::mkdtemp(dir.data()) != nullptr) {
      dir_ = dir;
      const std::string current = dir_ + "/current";
      if (!configured_.cert_file.empty()) {
        staged_.cert_file = current + "/cert.pem";
        staged_.key_file = current + "/key.pem";
      }
      if (!configured_.ca_file.empty()) staged_.ca_file = current + "/ca.pem";
    } else {
      LogWarning("no directory to stage TLS files in: gRPC reads them as they are, bad or good",
                 {{"errno", absl::StrCat(errno)}});
    }
    Refresh();
    thread_ = std::thread([this] { Loop(); });
  }

  ~StagedFiles() {
    stop_.Notify();
    thread_.join();
    if (!dir_.empty()) RemoveTree(dir_);
  }

  // The files gRPC reads. The staged ones exist once a first read held (Validate checked
  // the files just before).
  const TlsOptions& staged() const { return staged_; }

  FilesState state() const {
    absl::MutexLock lock(&mu_);
    return state_;
  }

 private:
  void Loop() {
    while (!stop_.WaitForNotificationWithTimeout(configured_.reload_interval)) Refresh();
  }

  void Refresh() {
    absl::StatusOr<Files> files = ReadFiles(configured_);
    if (files.ok() && last_.has_value() && *files == *last_) {
      SetState(absl::OkStatus(), last_not_after_);  // A passing read error, or a revert.
      return;
    }
    absl::Time not_after;
    absl::Status checked =
        files.ok() ? CheckFiles(configured_, *files, absl::Now(), &not_after) : files.status();
    if (!checked.ok()) {
      absl::SleepFor(absl::Milliseconds(200));
      files = ReadFiles(configured_);
      checked =
          files.ok() ? CheckFiles(configured_, *files, absl::Now(), &not_after) : files.status();
    }
    if (checked.ok() && !dir_.empty()) checked = Stage(*files);
    if (checked.ok()) {
      if (last_.has_value()) {
        LogInfo("TLS files reloaded",
                {{"certificate_not_after",
                  absl::FormatTime(absl::RFC3339_sec, not_after, absl::UTCTimeZone())}});
      }
      last_ = *std::move(files);
      last_not_after_ = not_after;
    }
    SetState(checked, checked.ok() ? not_after : last_not_after_);
  }

  // Writes `files` as generation g<N> and points `current` at it with one rename; removes
  // the generation before the one it replaces (gRPC may be reading that one still).
  absl::Status Stage(const Files& files) {
    const std::string generation = absl::StrCat("g", ++generations_);
    const std::string gen_dir = absl::StrCat(dir_, "/", generation);
    absl::Status written = ::mkdir(gen_dir.c_str(), 0700) == 0
                               ? absl::OkStatus()
                               : absl::UnavailableError(absl::StrCat("cannot create ", gen_dir));
    for (auto [name, content, wanted] : {std::tuple("/cert.pem", &files.cert, !files.cert.empty()),
                                         std::tuple("/key.pem", &files.key, !files.key.empty()),
                                         std::tuple("/ca.pem", &files.ca, !files.ca.empty())}) {
      if (written.ok() && wanted) written = WriteFile(gen_dir + name, *content);
    }
    const std::string link = dir_ + "/current.tmp";
    ::unlink(link.c_str());
    if (written.ok() && (::symlink(generation.c_str(), link.c_str()) != 0 ||
                         std::rename(link.c_str(), (dir_ + "/current").c_str()) != 0)) {
      written = absl::UnavailableError(absl::StrCat("cannot switch ", dir_, "/current"));
    }
    if (!written.ok()) {
      RemoveTree(gen_dir);
      return absl::UnavailableError(absl::StrCat("staging the TLS files: ", written.message()));
    }
    if (generations_ > 2) RemoveTree(absl::StrCat(dir_, "/g", generations_ - 2));
    return absl::OkStatus();
  }

  void SetState(const absl::Status& checked, absl::Time not_after) {
    absl::MutexLock lock(&mu_);
    if (!checked.ok() && state_.problem != checked.message()) {
      LogError("TLS files refused: the last good ones stay in service",
               {{"problem", std::string(checked.message())}});
    } else if (checked.ok() && !state_.valid) {
      LogInfo("TLS files hold again");
    }
    state_ = FilesState{.valid = checked.ok(),
                        .problem = std::string(checked.message()),
                        .certificate_not_after = not_after};
  }

  const TlsOptions configured_;
  TlsOptions staged_;
  std::string dir_;
  // The loop's (and the constructor's, before the loop starts):
  std::optional<Files> last_;  // As last staged.
  absl::Time last_not_after_ = absl::InfiniteFuture();
  int generations_ = 0;
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
  std::shared_ptr<StagedFiles> Find(const TlsOptions& o) {
    absl::MutexLock lock(&mu_);
    auto it = all_.find(StagingKey(o));
    return it == all_.end() ? nullptr : it->second;
  }
  std::shared_ptr<StagedFiles> FindOrCreate(const TlsOptions& o) {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<StagedFiles>& staged = all_[StagingKey(o)];
    if (staged == nullptr) staged = std::make_shared<StagedFiles>(o);
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

// gRPC's file watcher over `o`'s files: a server's staged copies, re-read every second (a
// few small files in memory), so that a change is in service within a second of its staging;
// a tool's configured files, as they are.
std::shared_ptr<grpc::experimental::CertificateProviderInterface> Provider(const TlsOptions& o) {
  const TlsOptions& s = o.stage_files ? ProcessStaging().FindOrCreate(o)->staged() : o;
  const unsigned int seconds =
      o.stage_files ? 1 : static_cast<unsigned int>(absl::ToInt64Seconds(o.reload_interval));
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
  stage_files = false;
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
  std::shared_ptr<StagedFiles> staged = ProcessStaging().Find(options);
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
