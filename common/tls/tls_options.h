#ifndef POLICY_COMMON_TLS_TLS_OPTIONS_H_
#define POLICY_COMMON_TLS_TLS_OPTIONS_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/config/config.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace policy::tls {

// A process's transport security, the same settings in every binary (`tls_cert_file`, ... or
// POLICY_<SVC>_TLS_CERT_FILE, ...). One identity serves both directions, as in a service mesh:
//  - tls_cert_file + tls_key_file: the process's certificate chain and private key (PEM). A
//    server with them serves TLS only; every call the process makes presents them as its client
//    certificate.
//  - tls_ca_file: the CA bundle (PEM) that verifies peers: the servers the process calls (their
//    certificate must name the host dialled) and, with tls_require_client_cert, its clients.
//    Alone (a CLI), it turns TLS on for the calls without a client certificate.
//  - tls_require_client_cert: the server refuses a client without a certificate from tls_ca_file.
//  - tls_allowed_clients: with it, only the clients whose certificate names one of these (a
//    DNS or URI SAN, or the subject's common name; a leading or trailing * matches any prefix
//    or suffix) may call; others get PERMISSION_DENIED. Empty: any certificate from the CA.
// The files are re-read every tls_reload_interval, so certificates rotate without a restart;
// only files that hold (as Validate checks them) go into service: a bad file in place of a good
// one (a failed rotation) leaves the last good ones serving, logged and in StagedFilesState.
// Without any of them, servers and calls are plaintext.
struct TlsOptions {
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
  bool require_client_cert = false;
  std::vector<std::string> allowed_clients;
  absl::Duration reload_interval = absl::Minutes(1);
  // Whether the files go into service only when they hold (a long-running server's, copied
  // into memory: see StagedFilesState); RegisterClient turns it off, a tool reading the files
  // once as they are.
  bool stage_files = true;

  // Whether servers serve TLS.
  bool serves_tls() const { return !cert_file.empty(); }
  // Whether calls use TLS.
  bool calls_use_tls() const { return !cert_file.empty() || !ca_file.empty(); }

  // A server's settings, all of the above.
  void Register(config::Parser& parser);
  // A client tool's: tls_cert_file, tls_key_file and tls_ca_file, for the calls it makes
  // (the other settings are left at their defaults, which Validate accepts).
  void RegisterClient(config::Parser& parser);
  // Checks the combination and reads the files: each must hold PEM that parses, the key
  // must belong to the certificate, and the certificate must not have expired.
  // INVALID_ARGUMENT naming the setting otherwise.
  absl::Status Validate() const;
};

// Whether the files of a process's TlsOptions hold, as last read.
struct FilesState {
  bool valid = true;
  std::string problem;  // Why not, naming the setting; empty when valid.
  // The end of the certificate in service (InfiniteFuture without a certificate).
  absl::Time certificate_not_after = absl::InfiniteFuture();
};

// The state of the files that the credentials made with `options` (ServerCredentials,
// ChannelCredentials) serve from; nullopt before any was made, or without files.
std::optional<FilesState> StagedFilesState(const TlsOptions& options);

// The credentials of a server with `options` (plaintext without a certificate).
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TlsOptions& options);

// Whether a client certificate naming `names` (its DNS and URI SANs and common name) may call
// under `allowed` (TlsOptions::allowed_clients; empty allows any).
bool ClientAllowed(const std::vector<std::string>& allowed, const std::vector<std::string>& names);

// The credentials of calls made with `options` (plaintext when neither a certificate nor a CA
// is set). Servers are verified against tls_ca_file (the system's roots without it) and must
// name the host dialled.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const TlsOptions& options);

}  // namespace policy::tls

#endif  // POLICY_COMMON_TLS_TLS_OPTIONS_H_
