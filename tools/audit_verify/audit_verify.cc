// Offline verifier of one audit ledger: checks it without trusting the server that keeps it,
// given the service's Ed25519 public keys (the current one and those a rotation retired) and,
// optionally, a checkpoint seen earlier.
//
//   audit_verify --target=127.0.0.1:50055 --requested_by=auditor@example.com
//                --public_key=<64 hex digits> --project=support-eu --environment=production
//   audit_verify --input=export.jsonl --checkpoint=checkpoint.json --public_key_file=audit.pub
//   audit_verify --database=postgresql://reader@db/policy --public_key=<64 hex digits>
//                --trusted_checkpoint=last.json --save_checkpoint=last.json
//
// The entries are read one at a time, in index order, and fed to LedgerVerifier
// (services/audit/verifier.h), which recomputes every leaf hash and the Merkle tree and
// compares them with the stored hashes and with every checkpoint signed by a given key.
// kDescription and the flags' help (--help) state the sources, flags and exit codes.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/config/config.h"
#include "common/log/log.h"
#include "common/pg/pool.h"
#include "common/tls/tls_options.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "policy/audit/v1/audit.grpc.pb.h"
#include "services/audit/checkpoint.h"
#include "services/audit/entry.h"
#include "services/audit/ledger.h"
#include "services/audit/postgres_ledger_store.h"
#include "services/audit/proto_convert.h"
#include "services/audit/verifier.h"

namespace policy::audit_verify {
namespace {

using audit::Checkpoint;
using audit::Entry;
using audit::LedgerRef;

constexpr int kExitValid = 0;
constexpr int kExitTampered = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnavailable = 3;

// Rows per ReadRange in --database mode.
constexpr size_t kDatabaseChunk = 1000;

constexpr char kDescription[] =
    R"(audit_verify: checks one audit ledger without trusting the server that keeps it.

Every entry's leaf hash and the Merkle tree are recomputed and compared with the stored
hashes and with each checkpoint (signed tree head), whose signature is checked against the
public keys given here, never against a key the server supplies. Entries are streamed, one at
a time, in index order, and checkpoints read a page (1000) at a time: memory stays bounded
however long the ledger.

Source of the ledger (exactly one):
  --target=HOST:PORT   the audit service over gRPC: GetCheckpoint (the newest) and
                       ListCheckpoints (every one, a page at a time, before and alongside the
                       export; a server without it: the newest only, with a note), then
                       ExportEntries from index 0 (needs --requested_by; the export is itself
                       recorded in the ledger as an audit_read entry)
  --input=FILE         JSON lines as ExportEntries writes them (one policy.audit.v1.Entry in
                       proto3 JSON per line; "-" reads stdin), with --checkpoint=FILE (a
                       policy.audit.v1.Checkpoint in proto3 JSON, or the GetCheckpointResponse
                       holding one that policyctl audit checkpoint --output=json prints; taken
                       before the export, which it must not outgrow)
  --database=URL       the service's PostgreSQL tables (schema audit) in a read-only
                       session, with every stored checkpoint (a page at a time)
The ledger: --project and --environment; both empty for the organisation's ledger.
The keys: --public_key=<64 hex digits>[,<64 hex digits>...] or --public_key_file=FILE (hex keys
separated by commas or line breaks, or one key's 32 raw bytes), as the audit service logs them
at start-up ("checkpoint signing key"); public keys, never private seeds. After a signing-key
rotation, give the current key FIRST, then the earlier ones: a checkpoint signed by any of them
verifies, and the output says which key signed the newest one and how many each signed. The
first key given is taken as the current one: a checkpoint of another key larger than the first
key's smallest was signed after the rotation (late) and vouches only for what a checkpoint of
the first key also covers; one past every checkpoint of the first key is INVALID (a retired key
signed it: whoever holds a leaked copy may have forged it).

--trusted_checkpoint=FILE is a checkpoint saved earlier (for instance by --save_checkpoint):
the ledger must extend it. This catches a ledger rewritten together with its checkpoints.
--save_checkpoint=FILE writes the newest verified checkpoint, only when the ledger is valid.

Only entries up to the newest checkpoint's size are vouched for by a signature; entries after
it are checked for consistency alone (reported as unsigned). The revealed identifiers of an
export (`actor`, `subject`) are not covered by the leaf hash, their pseudonyms are.

Output: the entries and checkpoints checked (per signing key id), the recomputed root, the
rate (entries/s), then "VALID: ..." or "INVALID: first bad index N: <problem>", and notes that
explain a failure. --output=json prints one object instead: result (valid, invalid or error),
key_id (the first key given), key_ids, entries_checked, checkpoints_checked,
checkpoints_by_key, root, newest_checkpoint (with the key_id of its signer), entries_per_second,
first_bad_index and problem when invalid, error when the run failed, notes.

Exit codes:
  0  valid: every entry matches its hashes and every checkpoint is signed by a given key
  1  invalid: tampered, or not signed by these keys; prints the first bad index and the
     problem. A wrong public key exits 1 too: checkpoints that do not verify under the keys you
     trust are indistinguishable from forged ones. The problem names the key id a checkpoint
     names when it is none of the given keys'.
  2  usage or input error: bad flag, unreadable file, malformed JSON (with its line number),
     an unknown ledger, or no signed checkpoint at all to verify against
  3  unavailable: the server or the database cannot be reached

)";

struct Options {
  std::string target;
  tls::TlsOptions tls;
  std::string input;
  std::string checkpoint;
  std::string database;
  std::string requested_by;
  std::string project;
  std::string environment;
  std::string public_key_hex;
  std::string public_key_file;
  std::string trusted_checkpoint;
  std::string save_checkpoint;
  std::string output = "text";
  absl::Duration timeout = absl::Seconds(10);
  absl::Duration export_timeout = absl::Hours(1);
};

// An error that ends the run with `code` (kExitUsage or kExitUnavailable).
struct Error {
  int code = kExitUsage;
  std::string message;
};

// The exit code of a failed call to the server or the database.
int ExitCodeOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kCancelled:
      return kExitUnavailable;
    default:
      return kExitUsage;
  }
}

absl::Status FromGrpc(const grpc::Status& status, absl::string_view what) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  return text.str();
}

bool IsHex(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// The 32-byte Ed25519 public keys from --public_key or --public_key_file, the first given
// first.
absl::StatusOr<std::vector<std::string>> LoadPublicKeys(const Options& o) {
  if (o.public_key_hex.empty() == o.public_key_file.empty()) {
    return absl::InvalidArgumentError(
        "give the audit service's public keys: --public_key=<64 hex digits>[,...] or "
        "--public_key_file=FILE (exactly one)");
  }
  absl::StatusOr<std::vector<std::string>> keys;
  if (!o.public_key_hex.empty()) {
    keys = audit::CheckpointKeys::ParseHexList(o.public_key_hex, "--public_key");
  } else {
    absl::StatusOr<std::string> content = ReadFile(o.public_key_file);
    if (!content.ok()) return content.status();
    if (content->size() == 32 && !IsHex(*content)) return std::vector<std::string>{*content};
    keys = audit::CheckpointKeys::ParseHexList(
        absl::StrReplaceAll(*content, {{"\r\n", ","}, {"\n", ","}}),
        absl::StrCat(o.public_key_file, " (64 hex digits per key, or one key's 32 raw bytes)"));
  }
  if (keys.ok() && keys->empty()) {
    return absl::InvalidArgumentError("give at least one public key (64 hex digits)");
  }
  return keys;
}

// A v1.Checkpoint in proto3 JSON from `path`, or a v1.GetCheckpointResponse holding one (what
// `policyctl audit checkpoint --output=json` prints); `flag` names it in errors.
absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& path, absl::string_view flag,
                                          std::vector<std::string>* notes) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", text.status().message()));
  }
  audit::v1::Checkpoint proto;
  google::protobuf::util::JsonParseOptions options;
  const google::protobuf::StringPiece json(text->data(), text->size());
  auto parsed = google::protobuf::util::JsonStringToMessage(json, &proto, options);
  if (audit::v1::GetCheckpointResponse response;
      !parsed.ok() && google::protobuf::util::JsonStringToMessage(json, &response, options).ok() &&
      response.has_checkpoint()) {
    proto = response.checkpoint();
    parsed = google::protobuf::util::Status();
  }
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path,
                                                   " is not a policy.audit.v1.Checkpoint in "
                                                   "proto3 JSON: ",
                                                   parsed.message().as_string()));
  }
  absl::StatusOr<Checkpoint> checkpoint = audit::CheckpointFromProto(proto);
  if (!checkpoint.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", path, ": ", checkpoint.status().message()));
  }
  if (!proto.note().empty() && proto.note() != audit::CheckpointNote(*checkpoint)) {
    notes->push_back(absl::StrCat(flag, ": the note in ", path,
                                  " differs from the one its fields give; the fields are what "
                                  "is verified"));
  }
  return checkpoint;
}

std::string CheckpointJson(const Checkpoint& checkpoint) {
  audit::v1::Checkpoint proto;
  audit::ToProto(checkpoint, &proto);
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(proto, &out, options);
  return out;
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view content) {
  const std::string temporary = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    if (!out) return absl::InvalidArgumentError(absl::StrCat("cannot write ", temporary));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    return absl::InvalidArgumentError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

// Receives the stored entries in the order read; returns false to stop reading.
using Sink = std::function<bool(const Entry&)>;

// Calls `visit` on every checkpoint of `source`, smallest first, a page at a time, until it
// returns false; the source's error when it fails.
absl::Status ForEachCheckpoint(audit::CheckpointSource* source,
                               const std::function<bool(const Checkpoint&)>& visit) {
  for (std::optional<uint64_t> after;;) {
    absl::StatusOr<std::vector<Checkpoint>> page =
        source->Page(after, audit::LedgerVerifier::kCheckpointPage);
    if (!page.ok()) return page.status();
    for (const Checkpoint& c : *page) {
      if (!visit(c)) return absl::OkStatus();
    }
    if (page->size() < audit::LedgerVerifier::kCheckpointPage) return absl::OkStatus();
    after = page->back().tree_size;
  }
}

// Where a ledger is read from. Checkpoints() is called once, before ForEachEntry().
//
// ForEachEntry's errors: DATA_LOSS when the source holds something that is not a valid entry
// (the ledger is corrupt at the next index the verifier expects); otherwise the run cannot
// go on (ExitCodeOf tells usage errors from an unreachable source).
class Source {
 public:
  virtual ~Source() = default;
  virtual std::string Describe() const = 0;
  // The signed checkpoints the source holds for the ledger (none is not an error), read a page
  // at a time; the source owns them. Errors: as ForEachEntry's, DATA_LOSS for a malformed
  // checkpoint (from Checkpoints() or from a page).
  virtual absl::StatusOr<audit::CheckpointSource*> Checkpoints() = 0;
  virtual absl::Status ForEachEntry(const Sink& sink) = 0;
  // Remarks found while reading (say, a public key the server reports).
  const std::vector<std::string>& notes() const { return notes_; }

 protected:
  std::vector<std::string> notes_;
};

// Parses one JSON line into an entry. INVALID_ARGUMENT for text that is not a v1.Entry,
// DATA_LOSS for an entry whose values are malformed; both name `where`.
absl::StatusOr<Entry> ParseLine(absl::string_view line, absl::string_view where) {
  absl::StatusOr<audit::v1::Entry> proto = audit::EntryFromJsonLine(line);
  if (!proto.ok()) {
    // The parser's message quotes the text around the error on lines of its own.
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", absl::StrReplaceAll(proto.status().message(), {{"\n", " "}})));
  }
  absl::StatusOr<Entry> entry = audit::EntryFromProto(*proto);
  if (!entry.ok()) {
    return absl::DataLossError(
        absl::StrCat(where, " (entry ", proto->index(), "): ", entry.status().message()));
  }
  return entry;
}

class FileSource : public Source {
 public:
  FileSource(std::string path, std::string checkpoint_path)
      : path_(std::move(path)), checkpoint_path_(std::move(checkpoint_path)) {}

  std::string Describe() const override {
    return absl::StrCat("file ", path_ == "-" ? "<stdin>" : path_);
  }

  absl::StatusOr<audit::CheckpointSource*> Checkpoints() override {
    std::vector<Checkpoint> out;
    if (!checkpoint_path_.empty()) {
      absl::StatusOr<Checkpoint> c = LoadCheckpoint(checkpoint_path_, "--checkpoint", &notes_);
      if (!c.ok()) return c.status();
      out.push_back(*std::move(c));
    }
    checkpoints_ = std::make_unique<audit::VectorCheckpointSource>(std::move(out));
    return checkpoints_.get();
  }

  absl::Status ForEachEntry(const Sink& sink) override {
    std::ifstream file;
    std::istream* in = &std::cin;
    if (path_ != "-") {
      file.open(path_, std::ios::binary);
      if (!file) return absl::InvalidArgumentError(absl::StrCat("--input: cannot read ", path_));
      in = &file;
    }
    std::string line;
    for (uint64_t number = 1; std::getline(*in, line); ++number) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (absl::StripAsciiWhitespace(line).empty()) continue;
      absl::StatusOr<Entry> entry = ParseLine(line, absl::StrCat(Describe(), " line ", number));
      if (!entry.ok()) return entry.status();
      if (!sink(*entry)) return absl::OkStatus();
    }
    if (in->bad()) return absl::InvalidArgumentError(absl::StrCat("--input: cannot read ", path_));
    return absl::OkStatus();
  }

 private:
  const std::string path_;
  const std::string checkpoint_path_;
  std::unique_ptr<audit::CheckpointSource> checkpoints_;
};

class RpcSource : public Source {
 public:
  RpcSource(const Options& o, LedgerRef ledger, audit::CheckpointKeys keys)
      : target_(o.target),
        requested_by_(o.requested_by),
        timeout_(o.timeout),
        export_timeout_(o.export_timeout),
        ledger_(std::move(ledger)),
        keys_(std::move(keys)),
        channel_(grpc::CreateCustomChannel(o.target, tls::ChannelCredentials(o.tls),
                                           ExportChannelArguments())),
        stub_(audit::v1::AuditService::NewStub(channel_)) {}

  std::string Describe() const override { return absl::StrCat("server ", target_); }

  // An export chunk up to kMaxReceiveBytes is read: the service sends at most about 1 MiB,
  // and a server that sends more (an older one: up to 500 entries of any size) is read too.
  static constexpr int kMaxReceiveBytes = 64 << 20;
  static grpc::ChannelArguments ExportChannelArguments() {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
    return args;
  }

  absl::Status Connect() {
    if (!channel_->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout_))) {
      return absl::UnavailableError(absl::StrCat("cannot reach the audit service at ", target_,
                                                 " within ", absl::FormatDuration(timeout_)));
    }
    return absl::OkStatus();
  }

  // The checkpoints the server lists (ListCheckpoints), read a page at a time, and the newest
  // (GetCheckpoint) when it is larger than every one listed; the newest alone from a server
  // of an earlier release (with a note). The newest is asked for before the export, so that
  // the entries read afterwards cover it even while the ledger grows.
  absl::StatusOr<audit::CheckpointSource*> Checkpoints() override {
    if (absl::Status s = Connect(); !s.ok()) return s;
    audit::v1::GetCheckpointRequest request;
    audit::ToProto(ledger_, request.mutable_ledger());
    request.set_tree_size(0);
    audit::v1::GetCheckpointResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
    grpc::Status status = stub_->GetCheckpoint(&context, request, &response);
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
      notes_.push_back(absl::StrCat("the server has no signed checkpoint of ledger ",
                                    audit::LedgerName(ledger_), ": ", status.error_message()));
      return &pages_;
    }
    if (!status.ok()) return FromGrpc(status, "GetCheckpoint");
    if (!keys_.Has(audit::KeyIdOf(response.public_key()))) {
      notes_.push_back(absl::StrCat(
          "the server reports the public key ", absl::BytesToHexString(response.public_key()),
          " (key id ", audit::KeyIdOf(response.public_key()), "), none of the given ones (key ids ",
          keys_.Describe(), "); only the given keys are used"));
    }
    absl::StatusOr<Checkpoint> checkpoint = audit::CheckpointFromProto(response.checkpoint());
    if (!checkpoint.ok()) {
      return absl::DataLossError(
          absl::StrCat("the server's checkpoint is malformed: ", checkpoint.status().message()));
    }
    pages_.newest = *std::move(checkpoint);
    return &pages_;
  }

  absl::Status ForEachEntry(const Sink& sink) override {
    audit::v1::ExportEntriesRequest request;
    audit::ToProto(ledger_, request.mutable_ledger());
    request.set_from_index(0);
    request.set_requested_by(requested_by_);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + export_timeout_));
    std::unique_ptr<grpc::ClientReader<audit::v1::ExportEntriesResponse>> reader =
        stub_->ExportEntries(&context, request);
    audit::v1::ExportEntriesResponse chunk;
    uint64_t number = 0;
    absl::Status problem;
    bool stopped = false;
    while (!stopped && reader->Read(&chunk)) {
      absl::string_view rest = chunk.jsonl();
      while (!rest.empty()) {
        const size_t end = rest.find('\n');
        absl::string_view line = rest.substr(0, end);
        rest = end == absl::string_view::npos ? absl::string_view() : rest.substr(end + 1);
        ++number;
        absl::StatusOr<Entry> entry =
            ParseLine(line, absl::StrCat("line ", number, " of the export"));
        if (!entry.ok()) {
          // The server's answer is the ledger: one that is not made of entries is corrupt.
          problem = absl::DataLossError(entry.status().message());
          stopped = true;
          break;
        }
        if (!sink(*entry)) {
          stopped = true;
          break;
        }
      }
    }
    if (stopped) context.TryCancel();
    grpc::Status status = reader->Finish();
    if (stopped) return problem;
    if (!status.ok()) return FromGrpc(status, "ExportEntries");
    return absl::OkStatus();
  }

 private:
  const std::string target_;
  const std::string requested_by_;
  const absl::Duration timeout_;
  const absl::Duration export_timeout_;
  const LedgerRef ledger_;
  const audit::CheckpointKeys keys_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<audit::v1::AuditService::Stub> stub_;

  // The pages of ListCheckpoints, ending with the newest when it is larger than every one
  // listed; nothing when the server has no newest.
  class Pages : public audit::CheckpointSource {
   public:
    explicit Pages(RpcSource* source) : source_(source) {}

    absl::StatusOr<std::vector<Checkpoint>> Page(std::optional<uint64_t> after_size,
                                                 size_t limit) override {
      std::vector<Checkpoint> out;
      if (!newest.has_value()) return out;
      uint64_t after = after_size.value_or(0);
      bool end = unimplemented_;
      while (!end && out.size() < limit) {
        audit::v1::ListCheckpointsRequest request;
        audit::ToProto(source_->ledger_, request.mutable_ledger());
        request.set_after_size(after);
        request.set_page_size(
            static_cast<uint32_t>(std::min(limit - out.size(), audit::kMaxPageSize)));
        audit::v1::ListCheckpointsResponse response;
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + source_->timeout_));
        grpc::Status status = source_->stub_->ListCheckpoints(&context, request, &response);
        if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
          unimplemented_ = true;
          source_->notes_.push_back(
              "the server cannot list its checkpoints (a release before ListCheckpoints): only "
              "the newest was checked; verify from the database (--database) to check every one");
          break;
        }
        if (!status.ok()) return FromGrpc(status, "ListCheckpoints");
        for (const audit::v1::Checkpoint& proto : response.checkpoints()) {
          absl::StatusOr<Checkpoint> c = audit::CheckpointFromProto(proto);
          if (!c.ok()) {
            return absl::DataLossError(absl::StrCat("the server's checkpoint of size ",
                                                    proto.tree_size(),
                                                    " is malformed: ", c.status().message()));
          }
          out.push_back(*std::move(c));
        }
        // A server that does not move on would keep this loop going.
        end = response.next_after_size() == 0 || response.next_after_size() <= after;
        after = response.next_after_size();
      }
      // The newest, if signed after the list was read, is checked too.
      const std::optional<uint64_t> largest =
          out.empty() ? after_size : std::optional<uint64_t>(out.back().tree_size);
      if ((end || unimplemented_) && out.size() < limit &&
          (!largest.has_value() || newest->tree_size > *largest)) {
        out.push_back(*newest);
      }
      return out;
    }

    std::optional<Checkpoint> newest;  // The server's, from GetCheckpoint.

   private:
    RpcSource* const source_;
    bool unimplemented_ = false;
  };
  Pages pages_{this};
};

class DatabaseSource : public Source {
 public:
  DatabaseSource(const std::string& url, absl::Duration timeout, LedgerRef ledger)
      : url_(url),
        pool_(pg::PoolOptions{.url = ReadOnly(url),
                              .size = 1,
                              .acquire_timeout = timeout,
                              .connect_timeout = timeout}),
        store_(&pool_, /*role=*/""),
        ledger_(std::move(ledger)) {}

  std::string Describe() const override {
    return absl::StrCat("database ", config::RedactUrlPassword(url_));
  }

  absl::StatusOr<audit::CheckpointSource*> Checkpoints() override {
    absl::StatusOr<uint64_t> size = store_.Size(ledger_);
    if (!size.ok()) return Explain(size.status());
    if (*size == 0) {
      notes_.push_back(absl::StrCat("the database holds no entry of ledger ",
                                    audit::LedgerName(ledger_),
                                    " (check --project and --environment)"));
    }
    return &checkpoints_;
  }

  absl::Status ForEachEntry(const Sink& sink) override {
    for (uint64_t from = 0;;) {
      absl::StatusOr<std::vector<Entry>> entries = store_.ReadRange(ledger_, from, kDatabaseChunk);
      if (!entries.ok()) {
        if (!absl::IsDataLoss(entries.status())) return Explain(entries.status());
        return ReadSingly(from, sink);
      }
      for (const Entry& e : *entries) {
        if (!sink(e)) return absl::OkStatus();
      }
      if (entries->size() < kDatabaseChunk) return absl::OkStatus();
      from = entries->back().index + 1;
    }
  }

 private:
  // `url` with the session read-only (PostgreSQL refuses any write), unless it sets libpq
  // options of its own.
  static std::string ReadOnly(const std::string& url) {
    if (absl::StrContains(url, "options=")) return url;
    return absl::StrCat(url, absl::StrContains(url, "?") ? "&" : "?",
                        "options=-c%20default_transaction_read_only%3Don");
  }

  // Reads the chunk from `from` row by row up to its first malformed row, reported as
  // DATA_LOSS once the rows before it were fed.
  absl::Status ReadSingly(uint64_t from, const Sink& sink) {
    for (;;) {
      absl::StatusOr<std::vector<Entry>> one = store_.ReadRange(ledger_, from, 1);
      if (!one.ok()) {
        if (absl::IsDataLoss(one.status())) {
          return absl::DataLossError(
              absl::StrCat("the stored row of the next entry (index ", from,
                           " or after) is malformed: ", one.status().message()));
        }
        return Explain(one.status());
      }
      if (one->empty()) return absl::OkStatus();
      if (!sink(one->front())) return absl::OkStatus();
      from = one->front().index + 1;
    }
  }

  absl::Status Explain(const absl::Status& status) const {
    if (ExitCodeOf(status) == kExitUnavailable) {
      return absl::Status(status.code(), absl::StrCat(Describe(), ": ", status.message()));
    }
    return absl::Status(status.code(),
                        absl::StrCat(Describe(), ": ", status.message(),
                                     " (is this the audit service's database, readable by "
                                     "this role?)"));
  }

  const std::string url_;
  pg::Pool pool_;
  audit::PostgresLedgerStore store_;
  const LedgerRef ledger_;

  // The stored checkpoints, a page at a time, their errors explained.
  class ExplainedCheckpoints : public audit::CheckpointSource {
   public:
    explicit ExplainedCheckpoints(DatabaseSource* source)
        : source_(source), stored_(&source->store_, source->ledger_) {}
    absl::StatusOr<std::vector<Checkpoint>> Page(std::optional<uint64_t> after_size,
                                                 size_t limit) override {
      absl::StatusOr<std::vector<Checkpoint>> page = stored_.Page(after_size, limit);
      if (!page.ok()) return source_->Explain(page.status());
      return page;
    }

   private:
    DatabaseSource* const source_;
    audit::StoredCheckpoints stored_;
  };
  ExplainedCheckpoints checkpoints_{this};
};

// The checkpoints of a source, remembering the largest of the first read through all of them
// (the verifier's, unless it stopped early: then the next one's).
class NewestSeen : public audit::CheckpointSource {
 public:
  explicit NewestSeen(audit::CheckpointSource* source) : source_(source) {}

  absl::StatusOr<std::vector<Checkpoint>> Page(std::optional<uint64_t> after_size,
                                               size_t limit) override {
    absl::StatusOr<std::vector<Checkpoint>> page = source_->Page(after_size, limit);
    if (!page.ok() || read_through_) return page;
    for (const Checkpoint& c : *page) {
      if (!newest_.has_value() || c.tree_size > newest_->tree_size) newest_ = c;
    }
    read_through_ = page->size() < limit;
    return page;
  }

  // The largest checkpoint read; none before one was.
  const std::optional<Checkpoint>& newest() const { return newest_; }

 private:
  audit::CheckpointSource* const source_;
  std::optional<Checkpoint> newest_;
  bool read_through_ = false;
};

struct Result {
  audit::IntegrityReport report;
  std::string source;
  LedgerRef ledger;
  std::string key_id;                // The first key given.
  std::vector<std::string> key_ids;  // Every key given, the first first.
  std::optional<Checkpoint> newest;  // The largest checkpoint given to the verifier.
  std::string newest_signer;         // The given key that signed it; empty when none did.
  absl::Duration elapsed;
  std::vector<std::string> notes;
  std::string saved_to;
};

// Explains a failed verdict where the inputs tell more than the verifier's problem: which
// checkpoint failed, and whether the keys are probably the wrong ones.
// `from_source` is read through once more (a failed read ends the explanation).
void ExplainFailure(const Result& r, audit::CheckpointSource* from_source,
                    const std::optional<Checkpoint>& trusted, const audit::CheckpointKeys& keys,
                    std::vector<std::string>* notes) {
  std::optional<std::string> unknown_key;
  bool split = false;  // The keys signed a tree of the trusted checkpoint's size but another.
  (void)ForEachCheckpoint(from_source, [&](const Checkpoint& c) {
    if (!unknown_key.has_value() && !keys.Has(c.key_id) && !keys.SignerOf(c).ok()) {
      unknown_key = absl::StrCat(
          "the ledger's checkpoint of size ", c.tree_size, " names signing key id ",
          c.key_id.empty() ? "(none)" : c.key_id, ", the given keys' ids are ", keys.Describe(),
          ": either the public keys given are not this service's (after a signing-key rotation, "
          "give the earlier keys too), or the checkpoint is forged");
    }
    split = split || (trusted.has_value() && c.tree_size == trusted->tree_size &&
                      c.root != trusted->root && keys.SignerOf(c).ok());
    return true;
  });
  if (unknown_key.has_value()) notes->push_back(*std::move(unknown_key));
  if (!trusted.has_value()) return;
  if (!keys.SignerOf(*trusted).ok()) {
    notes->push_back(absl::StrCat("the trusted checkpoint (size ", trusted->tree_size, ", key id ",
                                  trusted->key_id.empty() ? "(none)" : trusted->key_id,
                                  ") is not signed by a given key: it cannot vouch for anything"));
  } else if (trusted->ledger == r.ledger &&
             absl::StrContains(r.report.problem,
                               absl::StrCat("the tree of size ", trusted->tree_size, " differs"))) {
    notes->push_back(
        split ? absl::StrCat("the keys signed two different trees of size ", trusted->tree_size,
                             ": the trusted checkpoint and the ledger's (a split view)")
              : absl::StrCat("the trusted checkpoint of size ", trusted->tree_size,
                             " does not match this ledger: the ledger does not extend the "
                             "history seen earlier (rewritten entries, or another history)"));
  } else if (r.report.entries_checked < trusted->tree_size &&
             r.report.first_bad_index == r.report.entries_checked) {
    notes->push_back(absl::StrCat("the trusted checkpoint covers ", trusted->tree_size,
                                  " entries; the ledger holds fewer"));
  }
}

std::string Hex(const audit::Hash& h) { return absl::BytesToHexString(audit::AsBytes(h)); }

std::string UtcTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

double Rate(const Result& r) {
  const double seconds = absl::ToDoubleSeconds(r.elapsed);
  return seconds > 0 ? static_cast<double>(r.report.entries_checked) / seconds : 0.0;
}

uint64_t SignedSize(const Result& r) { return r.newest.has_value() ? r.newest->tree_size : 0; }

// "id 3, id 1": how many of the checkpoints checked each key signed.
std::string ByKey(const audit::IntegrityReport& report) {
  std::string out;
  for (const auto& [key_id, count] : report.checkpoints_by_key) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", key_id, " ", count);
  }
  return out;
}

// Who signed the newest checkpoint, for the output.
std::string NewestSigner(const Result& r) {
  return r.newest_signer.empty() ? absl::StrCat(r.newest->key_id, " (no given key)")
                                 : r.newest_signer;
}

void PrintText(const Result& r) {
  const audit::IntegrityReport& report = r.report;
  std::printf("ledger:              %s\n", audit::LedgerName(r.ledger).c_str());
  std::printf("source:              %s\n", r.source.c_str());
  std::printf("public key ids:      %s\n", absl::StrJoin(r.key_ids, ", ").c_str());
  std::printf("entries checked:     %llu\n",
              static_cast<unsigned long long>(report.entries_checked));
  std::printf("checkpoints checked: %llu\n",
              static_cast<unsigned long long>(report.checkpoints_checked));
  if (!report.checkpoints_by_key.empty()) {
    std::printf("checkpoints by key:  %s\n", ByKey(report).c_str());
  }
  if (r.newest.has_value()) {
    std::printf("newest checkpoint:   size %llu, signed %s by key %s, root %s\n",
                static_cast<unsigned long long>(r.newest->tree_size),
                UtcTime(r.newest->time).c_str(), NewestSigner(r).c_str(),
                Hex(r.newest->root).c_str());
  }
  std::printf("root:                %s (of the %llu entries checked)\n", Hex(report.root).c_str(),
              static_cast<unsigned long long>(report.entries_checked));
  std::printf("rate:                %.0f entries/s (%.3f s)\n", Rate(r),
              absl::ToDoubleSeconds(r.elapsed));
  for (const std::string& note : r.notes) std::printf("note: %s\n", note.c_str());
  if (report.valid) {
    const uint64_t unsigned_entries = report.entries_checked - SignedSize(r);
    if (SignedSize(r) == 0) {
      std::printf("VALID: consistent, but no checkpoint signed by key %s covers an entry",
                  absl::StrJoin(r.key_ids, " or ").c_str());
    } else {
      std::printf("VALID: entries 0 to %llu match the checkpoint signed by key %s",
                  static_cast<unsigned long long>(SignedSize(r) - 1), NewestSigner(r).c_str());
    }
    if (unsigned_entries > 0) {
      std::printf("; %llu %s after it %s consistent but not signed yet",
                  static_cast<unsigned long long>(unsigned_entries),
                  unsigned_entries == 1 ? "entry" : "entries",
                  unsigned_entries == 1 ? "is" : "are");
    }
    std::printf("\n");
    if (!r.saved_to.empty()) {
      std::printf("saved the checkpoint of size %llu to %s\n",
                  static_cast<unsigned long long>(SignedSize(r)), r.saved_to.c_str());
    }
  } else {
    std::printf("INVALID: first bad index %llu: %s\n",
                static_cast<unsigned long long>(report.first_bad_index), report.problem.c_str());
  }
}

void PrintJson(const Result& r) {
  const audit::IntegrityReport& report = r.report;
  std::string out = absl::StrCat(
      "{\"result\":", JsonQuote(report.valid ? "valid" : "invalid"),
      ",\"valid\":", report.valid ? "true" : "false",
      ",\"ledger\":{\"project\":", JsonQuote(r.ledger.project),
      ",\"environment\":", JsonQuote(r.ledger.environment), "},\"source\":", JsonQuote(r.source),
      ",\"key_id\":", JsonQuote(r.key_id), ",\"key_ids\":[",
      absl::StrJoin(r.key_ids, ",",
                    [](std::string* out, const std::string& id) { out->append(JsonQuote(id)); }),
      "],\"entries_checked\":", report.entries_checked,
      ",\"checkpoints_checked\":", report.checkpoints_checked, ",\"checkpoints_by_key\":{",
      absl::StrJoin(report.checkpoints_by_key, ",",
                    [](std::string* out, const std::pair<const std::string, uint64_t>& kv) {
                      absl::StrAppend(out, JsonQuote(kv.first), ":", kv.second);
                    }),
      "}", ",\"root\":", JsonQuote(Hex(report.root)));
  if (r.newest.has_value()) {
    absl::StrAppend(&out, ",\"newest_checkpoint\":{\"tree_size\":", r.newest->tree_size,
                    ",\"root\":", JsonQuote(Hex(r.newest->root)),
                    ",\"time\":", JsonQuote(UtcTime(r.newest->time)), ",\"key_id\":",
                    JsonQuote(r.newest_signer.empty() ? r.newest->key_id : r.newest_signer),
                    ",\"signed_by_given_key\":", r.newest_signer.empty() ? "false" : "true", "}");
  }
  if (report.valid) {
    absl::StrAppend(&out, ",\"unsigned_entries\":", report.entries_checked - SignedSize(r));
    if (!r.saved_to.empty()) absl::StrAppend(&out, ",\"saved_checkpoint\":", JsonQuote(r.saved_to));
  } else {
    absl::StrAppend(&out, ",\"first_bad_index\":", report.first_bad_index,
                    ",\"problem\":", JsonQuote(report.problem));
  }
  absl::StrAppend(&out, ",\"seconds\":", absl::StrFormat("%.6f", absl::ToDoubleSeconds(r.elapsed)),
                  ",\"entries_per_second\":", absl::StrFormat("%.0f", Rate(r)), ",\"notes\":[");
  for (size_t i = 0; i < r.notes.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ",", JsonQuote(r.notes[i]));
  }
  absl::StrAppend(&out, "]}\n");
  std::fputs(out.c_str(), stdout);
}

int Report(const Options& o, const Error& e) {
  std::fprintf(stderr, "audit_verify: %s\n", e.message.c_str());
  if (o.output == "json") {
    std::printf("{\"result\":\"error\",\"exit_code\":%d,\"error\":%s}\n", e.code,
                JsonQuote(e.message).c_str());
  }
  return e.code;
}

int Run(const Options& o) {
  const int sources = !o.target.empty() + !o.input.empty() + !o.database.empty();
  if (sources != 1) {
    return Report(o, {kExitUsage,
                      "give exactly one source: --target, --input or --database "
                      "(--help explains them)"});
  }
  if (!o.target.empty() && o.requested_by.empty()) {
    return Report(o, {kExitUsage,
                      "--target needs --requested_by (the export is recorded in the "
                      "ledger under that name)"});
  }
  if (!o.checkpoint.empty() && o.input.empty()) {
    return Report(o, {kExitUsage,
                      "--checkpoint goes with --input (the other sources supply "
                      "their own checkpoints)"});
  }
  const LedgerRef ledger{o.project, o.environment};
  if (absl::Status s = audit::ValidateLedger(ledger, "--project/--environment"); !s.ok()) {
    return Report(o, {kExitUsage, std::string(s.message())});
  }
  absl::StatusOr<std::vector<std::string>> public_keys = LoadPublicKeys(o);
  if (!public_keys.ok()) {
    return Report(o, {kExitUsage, std::string(public_keys.status().message())});
  }
  const audit::CheckpointKeys keys(*public_keys);

  Result result;
  result.ledger = ledger;
  result.key_id = keys.current_key_id();
  result.key_ids = keys.key_ids();
  std::optional<Checkpoint> trusted;
  if (!o.trusted_checkpoint.empty()) {
    absl::StatusOr<Checkpoint> c =
        LoadCheckpoint(o.trusted_checkpoint, "--trusted_checkpoint", &result.notes);
    if (!c.ok()) return Report(o, {kExitUsage, std::string(c.status().message())});
    trusted = *std::move(c);
  }

  std::unique_ptr<Source> source;
  if (!o.target.empty()) {
    source = std::make_unique<RpcSource>(o, ledger, keys);
  } else if (!o.input.empty()) {
    source = std::make_unique<FileSource>(o.input, o.checkpoint);
  } else {
    source = std::make_unique<DatabaseSource>(o.database, o.timeout, ledger);
  }
  result.source = source->Describe();

  const absl::Time start = absl::Now();
  absl::StatusOr<audit::CheckpointSource*> checkpoints = source->Checkpoints();
  std::optional<NewestSeen> from_source;
  std::optional<audit::LedgerVerifier> verifier;
  absl::Status read = checkpoints.status();
  if (read.ok()) {
    from_source.emplace(*checkpoints);
    // Reads every checkpoint once (a page at a time) before any entry.
    verifier.emplace(ledger, keys, &*from_source, trusted);
    read = verifier->earlier_key_vouched_size().status();
  }
  if (!read.ok()) {
    if (absl::IsDataLoss(read)) {
      // A malformed signed head from the source: nothing it says can be verified.
      result.report.valid = false;
      result.report.problem = std::string(read.message());
      result.elapsed = absl::Now() - start;
      result.notes.insert(result.notes.end(), source->notes().begin(), source->notes().end());
      if (o.output == "json") {
        PrintJson(result);
      } else {
        PrintText(result);
      }
      return kExitTampered;
    }
    return Report(o, {ExitCodeOf(read), std::string(read.message())});
  }
  if (!from_source->newest().has_value() && !trusted.has_value()) {
    std::string message = absl::StrCat(
        "no signed checkpoint of ledger ", audit::LedgerName(ledger), " from ", result.source,
        ": nothing to verify the entries against; ",
        !o.input.empty() ? "pass --checkpoint=FILE or --trusted_checkpoint=FILE"
                         : "wait for the service to sign one, or pass --trusted_checkpoint=FILE");
    for (const std::string& note : source->notes()) absl::StrAppend(&message, "; ", note);
    return Report(o, {kExitUsage, std::move(message)});
  }
  uint64_t accepted = 0;  // Entries the verifier took: the next index it expects.
  read = source->ForEachEntry([&](const Entry& e) {
    if (!verifier->Add(e)) return false;
    ++accepted;
    return true;
  });
  absl::StatusOr<audit::IntegrityReport> report = verifier->Finish();
  if (!report.ok()) {
    return Report(o, {ExitCodeOf(report.status()), std::string(report.status().message())});
  }
  result.report = *std::move(report);
  result.elapsed = absl::Now() - start;
  result.notes.insert(result.notes.end(), source->notes().begin(), source->notes().end());
  if (!read.ok()) {
    if (!absl::IsDataLoss(read)) return Report(o, {ExitCodeOf(read), std::string(read.message())});
    // The verifier accepted every entry it was fed, and Finish() saw the ledger end where the
    // corrupt entry is. That entry is the first problem, unless the checkpoints were refused
    // before any entry was read (Finish's other failure).
    const bool checkpoints_refused = accepted == 0 && !result.report.valid &&
                                     !absl::StartsWith(result.report.problem, "the ledger has ");
    if (checkpoints_refused) {
      result.notes.push_back(std::string(read.message()));
    } else {
      result.report.valid = false;
      result.report.first_bad_index = accepted;
      result.report.problem = std::string(read.message());
    }
  }
  if (!result.report.valid) {
    ExplainFailure(result, &*from_source, trusted, keys, &result.notes);
  }
  if (!o.input.empty() && !result.report.valid && from_source->newest().has_value() &&
      from_source->newest()->tree_size > accepted &&
      absl::StartsWith(result.report.problem, "the ledger has ")) {
    result.notes.push_back(absl::StrCat(
        "the export ends at ", accepted, " entries, before the checkpoint given (size ",
        from_source->newest()->tree_size,
        "): if it was taken after the export (reading a ledger records a read in it), take "
        "the checkpoint first, then the export"));
  }
  result.newest = from_source->newest();
  if (trusted.has_value() &&
      (!result.newest.has_value() || trusted->tree_size > result.newest->tree_size)) {
    result.newest = trusted;
  }
  if (result.newest.has_value()) {
    absl::StatusOr<std::string> signer = keys.SignerOf(*result.newest);
    if (signer.ok()) result.newest_signer = *std::move(signer);
  }

  if (result.report.valid && !o.save_checkpoint.empty() && result.newest.has_value()) {
    if (absl::Status s = WriteFileAtomically(o.save_checkpoint, CheckpointJson(*result.newest));
        !s.ok()) {
      return Report(o, {kExitUsage, absl::StrCat("--save_checkpoint: ", s.message())});
    }
    result.saved_to = o.save_checkpoint;
  }
  if (o.output == "json") {
    PrintJson(result);
  } else {
    PrintText(result);
  }
  std::fflush(stdout);
  return result.report.valid ? kExitValid : kExitTampered;
}

int Main(int argc, char** argv) {
  // Debian's Abseil keeps mutex deadlock detection on; it slows every gRPC call.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Options o;
  config::Parser parser("audit_verify");
  parser.AddString("target", &o.target, "source: the audit service's gRPC address host:port");
  parser.AddString("input", &o.input,
                   "source: a file of JSON lines as ExportEntries writes them (- for stdin)");
  parser.AddString("checkpoint", &o.checkpoint,
                   "with --input: the newest signed checkpoint, a policy.audit.v1.Checkpoint in "
                   "proto3 JSON");
  parser.AddString("database", &o.database,
                   "source: the audit service's PostgreSQL URL (read only)",
                   config::Sensitivity::kUrlWithCredentials);
  parser.AddString("requested_by", &o.requested_by,
                   "with --target: who reads, recorded with the export's audit_read entry");
  parser.AddString("project", &o.project, "the ledger's project (empty: the organisation's)");
  parser.AddString("environment", &o.environment,
                   "the ledger's environment: production, staging, development or sandbox "
                   "(empty with an empty project)");
  parser.AddString("public_key", &o.public_key_hex,
                   "the audit service's Ed25519 public keys (not private seeds), 64 hex digits "
                   "each, comma-separated: the current one FIRST (the first key given is taken "
                   "as the current one), then those a rotation retired");
  parser.AddString("public_key_file", &o.public_key_file,
                   "a file holding the public keys (64 hex digits each, separated by commas or "
                   "line breaks; or one key's 32 raw bytes)");
  parser.AddString("trusted_checkpoint", &o.trusted_checkpoint,
                   "a checkpoint (proto3 JSON) seen earlier that the ledger must extend");
  parser.AddString("save_checkpoint", &o.save_checkpoint,
                   "where to write the newest verified checkpoint (JSON), only when valid");
  parser.AddString("output", &o.output, "text or json");
  parser.AddDuration("timeout", &o.timeout,
                     "for connecting to the server or database and for GetCheckpoint");
  parser.AddDuration("export_timeout", &o.export_timeout,
                     "with --target: the whole ExportEntries stream at most");
  o.tls.RegisterClient(parser);
  if (absl::Status s = parser.ParseProcess(argc, argv); !s.ok()) {
    std::fprintf(stderr, "audit_verify: %s (--help lists the flags)\n",
                 std::string(s.message()).c_str());
    return kExitUsage;
  }
  if (parser.help_requested()) {
    std::fputs(kDescription, stdout);
    std::fputs(parser.Usage().c_str(), stdout);
    return kExitValid;
  }
  if (absl::Status s = o.tls.Validate(); !s.ok()) {
    std::fprintf(stderr, "audit_verify: %s\n", std::string(s.message()).c_str());
    return kExitUsage;
  }
  if (o.output != "text" && o.output != "json") {
    std::fprintf(stderr, "audit_verify: --output must be text or json, not '%s'\n",
                 o.output.c_str());
    return kExitUsage;
  }
  if (o.timeout <= absl::ZeroDuration() || o.export_timeout <= absl::ZeroDuration()) {
    return Report(o, {kExitUsage, "--timeout and --export_timeout must be positive"});
  }
  return Run(o);
}

}  // namespace
}  // namespace policy::audit_verify

int main(int argc, char** argv) { return policy::audit_verify::Main(argc, argv); }
