// policyctl audit: query, verify, summary, export, checkpoints, proofs, data subjects.
#include <cstdio>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/proto/well_known.h"
#include "common/text/caller_text.h"
#include "services/audit/checkpoint.h"
#include "services/audit/entry.h"
#include "services/audit/merkle.h"
#include "services/audit/proto_convert.h"
#include "tools/policyctl/cli.h"

namespace policy::policyctl {
namespace {

// Entries audit query and export ask for per call: the most the audit service's page holds
// (each query call is recorded in the ledger as one read).
constexpr int64_t kAuditPageSize = 1000;

// Entries audit query shows unless --limit says otherwise: enough to read, bounded for a
// ledger of millions.
constexpr int64_t kAuditQueryLimit = 1000;

// `text` (RFC 3339, "2026-01-31T00:00:00Z") into `out`; left unset when empty.
absl::Status TimeFlag(const std::string& text, absl::string_view flag,
                      google::protobuf::Timestamp* out) {
  if (text.empty()) return absl::OkStatus();
  absl::Time t;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &error)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, ": not an RFC 3339 time such as 2026-01-31T00:00:00Z (", error, ")"));
  }
  proto::SetTime(t, out);
  return absl::OkStatus();
}

// A ledger holds nothing until its first entry: "valid" for one that is empty may be a
// mistyped project or environment, which stderr says.
void NothingRecorded(const audit::v1::LedgerRef& ledger) {
  std::fprintf(stderr,
               "policyctl: nothing is recorded in ledger %s: is the project or environment "
               "mistyped?\n",
               ledger.project().empty() && ledger.environment().empty()
                   ? "of the organisation"
                   : absl::StrCat(ledger.project(), "/", ledger.environment()).c_str());
}

}  // namespace

int Audit(const Invocation& in) {
  const bool about_subject =
      !in.words.empty() && (in.words[0] == "subject-export" || in.words[0] == "forget");
  if (in.words.size() != (about_subject ? 2u : 1u)) {
    return Usage(
        "audit: query, verify, summary, export, checkpoint, checkpoints, prove, subject-export "
        "SUBJECT or "
        "forget SUBJECT");
  }
  Global g;
  std::string project, environment, action, request_id;
  std::string page_token, public_key_hex, start, end, actor;
  int64_t page_size = kAuditPageSize, limit = kAuditQueryLimit, tree_size = 0, index = -1;
  if (int rc = ParseFlags(
          in, g,
          [&](config::Parser& p) {
            p.AddString("project", &project, "the ledger's project (empty: the organisation's)");
            p.AddString("environment", &environment, "the ledger's environment");
            p.AddString("action", &action, "query: only this action, e.g. decision_deny");
            p.AddString("actor", &actor, "query: only entries of this actor (a member, ...)");
            p.AddString("start", &start,
                        "query, summary: entries from this time on (RFC 3339, inclusive)");
            p.AddString("end", &end, "query, summary: entries before this time (RFC 3339)");
            p.AddInt("page_size", &page_size, "query: entries per call (1..1000)");
            p.AddInt("limit", &limit, "query: stop after this many entries; 0: every entry");
            p.AddString("page_token", &page_token,
                        "query: continue a query --limit stopped, from the token it printed");
            p.AddInt("tree_size", &tree_size, "checkpoint, prove: a checkpoint's size; 0: newest");
            p.AddInt("index", &index, "prove: the entry's index");
            p.AddString("public_key", &public_key_hex,
                        "checkpoint, prove: the audit service's Ed25519 public keys (not "
                        "private seeds; 64 hex digits each, comma-separated: the current one "
                        "first, then those a rotation retired; from its operator, never from "
                        "the server) to check the checkpoint's signature against; without it "
                        "the root is not verified");
            p.AddString("request_id", &request_id,
                        "prove: the entry's request id (a decision's is decision:<its request "
                        "id>); forget: this erasure's request id (default: a fresh one)");
          });
      rc != kOk) {
    return rc;
  }
  // A negative size would be taken for 0, the newest checkpoint: not the one asked for.
  if (tree_size < 0)
    return Usage(absl::StrCat("--tree_size: 0 (the newest) or more, not ", tree_size));
  absl::StatusOr<std::vector<std::string>> public_keys =
      audit::CheckpointKeys::ParseHexList(public_key_hex, "--public_key");
  if (!public_keys.ok()) return Usage(std::string(public_keys.status().message()));
  // What the checkpoint's signature says, checked here against --public_key only.
  auto signature_verdict = [&](const audit::v1::Checkpoint& c) -> std::pair<bool, std::string> {
    if (public_keys->empty()) {
      return {true,
              "root NOT verified against a signature (give --public_key to check it); the "
              "stored key_id " +
                  c.key_id() + " is not signed"};
    }
    absl::StatusOr<audit::Checkpoint> checkpoint = audit::CheckpointFromProto(c);
    if (!checkpoint.ok()) {
      return {false,
              absl::StrCat("the checkpoint does NOT carry a valid signature of --public_key: ",
                           checkpoint.status().message())};
    }
    absl::StatusOr<std::string> signer = audit::CheckpointKeys(*public_keys).SignerOf(*checkpoint);
    if (!signer.ok()) {
      return {false,
              absl::StrCat("the checkpoint does NOT carry a valid signature of --public_key: ",
                           signer.status().message())};
    }
    return {true, absl::StrCat("signed by --public_key (key ", *signer, ")")};
  };
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  audit::v1::LedgerRef ledger;
  ledger.set_project(project);
  ledger.set_environment(environment);
  google::protobuf::Timestamp start_time, end_time;
  if (absl::Status s = TimeFlag(start, "start", &start_time); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  if (absl::Status s = TimeFlag(end, "end", &end_time); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  if (in.words[0] == "query") {
    if (page_size < 1 || page_size > kAuditPageSize) {
      return Usage(absl::StrCat("--page_size: 1 to ", kAuditPageSize, ", not ", page_size));
    }
    if (limit < 0) return Usage(absl::StrCat("--limit: 0 (every entry) or more, not ", limit));
    audit::v1::QueryEntriesRequest request;
    *request.mutable_ledger() = ledger;
    request.set_page_token(page_token);
    if (!start.empty()) *request.mutable_start_time() = start_time;
    if (!end.empty()) *request.mutable_end_time() = end_time;
    request.set_actor(actor);
    if (!action.empty()) {
      audit::v1::Action a;
      if (!audit::v1::Action_Parse(absl::StrCat("ACTION_", absl::AsciiStrToUpper(action)), &a)) {
        return Usage(absl::StrCat("--action: unknown action '", action, "'"));
      }
      request.set_action(a);
    }
    // Each page is printed as it arrives. No page asks for more than the limit leaves, so a
    // query stopped by --limit ends on a page boundary and the server's token resumes it.
    const google::protobuf::util::JsonPrintOptions options = JsonOptions();
    int64_t shown = 0;
    std::string next_page_token;
    for (;;) {
      request.set_page_size(
          static_cast<int32_t>(limit == 0 ? page_size : std::min(page_size, limit - shown)));
      audit::v1::QueryEntriesResponse page;
      if (grpc::Status s = stub->QueryAudit(Context(g, true).get(), request, &page); !s.ok()) {
        // What was printed is incomplete (with --output=json, not a JSON document): the
        // entries shown so far are named, and the token that asks for the rest.
        std::fflush(stdout);
        const int rc = Failed(s);
        if (shown > 0) {
          std::fprintf(stderr,
                       "policyctl: the output stops after %lld entries and is incomplete; "
                       "--page_token=%s asks for the rest\n",
                       static_cast<long long>(shown), request.page_token().c_str());
        }
        return rc;
      }
      for (const audit::v1::Entry& e : page.entries()) {
        if (g.json()) {
          std::string json;
          (void)google::protobuf::util::MessageToJsonString(e, &json, options);
          std::printf("%s%s", shown == 0 ? "{\"entries\":[" : ",", json.c_str());
        } else {
          absl::StatusOr<absl::Time> time = proto::TimeFromProto(e.time(), "");
          std::printf(
              "%llu  %s  %s  %s  %s  %s\n", static_cast<unsigned long long>(e.index()),
              time.ok()
                  ? absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", *time, absl::UTCTimeZone()).c_str()
                  : "?",
              audit::v1::Action_Name(e.action()).c_str(), e.actor().c_str(), e.model().c_str(),
              e.request_id().c_str());
        }
        ++shown;
      }
      std::fflush(stdout);
      if (std::ferror(stdout)) return kFailed;  // Main says why.
      if (page.next_page_token().empty()) break;
      if (page.next_page_token() == request.page_token()) {
        return Failed(grpc::Status(grpc::StatusCode::INTERNAL, "the server repeated a page token"));
      }
      request.set_page_token(page.next_page_token());
      if (limit != 0 && shown >= limit) {
        next_page_token = page.next_page_token();
        break;
      }
    }
    if (g.json()) {
      // The whole is one QueryEntriesResponse as JSON, every field printed: entries ([] when
      // nothing matched), then next_page_token, empty unless --limit stopped the query before
      // the last entry. After printed entries, the tail is that response's JSON without its
      // leading empty entries (fields print in field-number order; entries is 1).
      audit::v1::QueryEntriesResponse tail;
      tail.set_next_page_token(next_page_token);
      std::string json;
      (void)google::protobuf::util::MessageToJsonString(tail, &json, options);
      constexpr absl::string_view kNoEntries = "{\"entries\":[],";
      if (shown == 0) {
        std::printf("%s\n", json.c_str());
      } else if (absl::StartsWith(json, kNoEntries)) {
        std::printf("],%s\n", json.substr(kNoEntries.size()).c_str());
      } else {
        return Failed(grpc::Status(grpc::StatusCode::INTERNAL,
                                   absl::StrCat("unexpected JSON of a page's end: ", json)));
      }
    }
    if (!next_page_token.empty()) {
      std::fprintf(stderr,
                   "policyctl: stopped at --limit=%lld entries; more match: --page_token=%s "
                   "continues, --limit=0 shows every entry\n",
                   static_cast<long long>(limit), next_page_token.c_str());
    }
    return kOk;
  }
  if (in.words[0] == "verify") {
    audit::v1::VerifyLedgerRequest request;
    *request.mutable_ledger() = ledger;
    audit::v1::VerifyLedgerResponse response;
    if (grpc::Status s = stub->VerifyLedger(Context(g, true).get(), request, &response); !s.ok()) {
      return Failed(s);
    }
    const audit::v1::IntegrityReport& r = response.report();
    if (g.json()) {
      PrintJson(response);
    } else if (r.valid()) {
      // The signing keys' ids, sorted, each with the checkpoints it signed.
      std::map<std::string, uint64_t> by_key(r.checkpoints_by_key().begin(),
                                             r.checkpoints_by_key().end());
      std::string keys;
      for (const auto& [key_id, count] : by_key) {
        absl::StrAppend(&keys, keys.empty() ? " (signed by key " : ", key ", key_id, ": ", count);
      }
      if (!keys.empty()) keys += ")";
      std::printf("valid: %llu entries, %llu checkpoints%s\n",
                  static_cast<unsigned long long>(r.entries_checked()),
                  static_cast<unsigned long long>(r.checkpoints_checked()), keys.c_str());
      if (r.entries_checked() == 0) NothingRecorded(ledger);
    } else {
      std::printf("INVALID at index %llu: %s\n",
                  static_cast<unsigned long long>(r.first_bad_index()), r.problem().c_str());
    }
    return r.valid() ? kOk : kRefused;
  }
  if (in.words[0] == "export") {
    // Page by page, in index order: one Entry in proto3 JSON per line, the form the audit
    // service's export and tools/audit_verify use.
    audit::v1::QueryEntriesRequest request;
    *request.mutable_ledger() = ledger;
    request.set_page_size(kAuditPageSize);
    const google::protobuf::util::JsonPrintOptions options = JsonOptions();
    for (;;) {
      audit::v1::QueryEntriesResponse response;
      if (grpc::Status s = stub->QueryAudit(Context(g, true).get(), request, &response); !s.ok()) {
        return Failed(s);
      }
      for (const audit::v1::Entry& e : response.entries()) {
        std::string line;
        (void)google::protobuf::util::MessageToJsonString(e, &line, options);
        std::printf("%s\n", line.c_str());
      }
      if (std::ferror(stdout)) return kFailed;  // Main says why.
      if (response.next_page_token().empty()) return kOk;
      request.set_page_token(response.next_page_token());
    }
  }
  if (in.words[0] == "summary") {
    audit::v1::GetComplianceSummaryRequest request;
    *request.mutable_ledger() = ledger;
    if (!start.empty()) *request.mutable_start_time() = start_time;
    if (!end.empty()) *request.mutable_end_time() = end_time;
    audit::v1::GetComplianceSummaryResponse response;
    if (grpc::Status s = stub->GetComplianceSummary(Context(g, true).get(), request, &response);
        !s.ok()) {
      return Failed(s);
    }
    const audit::v1::IntegrityReport& integrity = response.integrity();
    const int shown = Show(g, response, [&] {
      auto time_of = [](const google::protobuf::Timestamp& t) {
        absl::StatusOr<absl::Time> time = proto::TimeFromProto(t, "");
        return time.ok() ? absl::FormatTime(absl::RFC3339_full, *time, absl::UTCTimeZone()) : "?";
      };
      if (response.total_entries() > 0) {
        std::printf("from %s to %s: ", time_of(response.period_start()).c_str(),
                    time_of(response.period_end()).c_str());
      }
      const std::string verdict =
          integrity.valid() ? "valid"
                            : absl::StrCat("INVALID at index ", integrity.first_bad_index(), ": ",
                                           integrity.problem());
      std::printf(
          "%llu entries, %lld tokens, %llu policy violations, %llu unaccounted subjects, "
          "integrity %s\n",
          static_cast<unsigned long long>(response.total_entries()),
          static_cast<long long>(response.total_tokens()),
          static_cast<unsigned long long>(response.policy_violations()),
          static_cast<unsigned long long>(response.unaccounted_subjects()), verdict.c_str());
      std::map<std::string, uint64_t> sorted(response.action_breakdown().begin(),
                                             response.action_breakdown().end());
      for (const auto& [action, count] : sorted) {
        std::printf("  %-24s %llu\n", action.c_str(), static_cast<unsigned long long>(count));
      }
      // "allowed by region: eastus 1, westeurope 2", when the period has any.
      auto breakdown = [](const char* title,
                          const google::protobuf::Map<std::string, uint64_t>& counts) {
        if (counts.empty()) return;
        const std::map<std::string, uint64_t> in_order(counts.begin(), counts.end());
        std::vector<std::string> items;
        for (const auto& [name, count] : in_order) {
          items.push_back(absl::StrCat(Escaped(name), " ", count));
        }
        std::printf("%s: %s\n", title, absl::StrJoin(items, ", ").c_str());
      };
      breakdown("allowed by region", response.allowed_by_region());
      breakdown("allowed by residency", response.allowed_by_residency());
      breakdown("allowed by data class", response.allowed_by_data_class());
      breakdown("allowed by model API", response.allowed_by_api());
      breakdown("denials by reason", response.denials_by_reason());
      breakdown("personal data sent as is (a rule allowed it)", response.pii_allowed_by_type());
    });
    if (!g.json() && response.total_entries() == 0 && start.empty() && end.empty()) {
      NothingRecorded(ledger);
    }
    // As audit verify: a script must not take an invalid ledger's totals for an answer.
    return shown == kOk && !integrity.valid() ? kRefused : shown;
  }
  if (in.words[0] == "checkpoint") {
    audit::v1::GetCheckpointRequest request;
    *request.mutable_ledger() = ledger;
    request.set_tree_size(static_cast<uint64_t>(std::max<int64_t>(tree_size, 0)));
    audit::v1::GetCheckpointResponse response;
    if (grpc::Status s = stub->GetCheckpoint(Context(g, true).get(), request, &response); !s.ok()) {
      return Failed(s);
    }
    const auto [signature_ok, verdict] = signature_verdict(response.checkpoint());
    const int shown = Show(g, response, [&] {
      const audit::v1::Checkpoint& c = response.checkpoint();
      std::printf("tree size %llu  root %s  %s\n", static_cast<unsigned long long>(c.tree_size()),
                  absl::BytesToHexString(c.root_hash()).c_str(), verdict.c_str());
    });
    if (!signature_ok) {
      std::fprintf(stderr, "policyctl: %s\n", verdict.c_str());
      return kRefused;
    }
    return shown;
  }
  if (in.words[0] == "checkpoints") {
    // Every page, as one ListCheckpointsResponse.
    audit::v1::ListCheckpointsRequest request;
    *request.mutable_ledger() = ledger;
    audit::v1::ListCheckpointsResponse all;
    do {
      audit::v1::ListCheckpointsResponse page;
      if (grpc::Status s = stub->ListCheckpoints(Context(g, true).get(), request, &page); !s.ok()) {
        return Failed(s);
      }
      for (audit::v1::Checkpoint& c : *page.mutable_checkpoints()) {
        *all.add_checkpoints() = std::move(c);
      }
      if (page.next_after_size() != 0 && page.next_after_size() <= request.after_size()) {
        return Failed(grpc::Status(grpc::StatusCode::INTERNAL, "the server repeated a page"));
      }
      request.set_after_size(page.next_after_size());
    } while (request.after_size() != 0);
    return Show(g, all, [&] {
      for (const audit::v1::Checkpoint& c : all.checkpoints()) {
        absl::StatusOr<absl::Time> time = proto::TimeFromProto(c.time(), "");
        std::printf(
            "tree size %llu  %s  key %s  root %s\n", static_cast<unsigned long long>(c.tree_size()),
            time.ok() ? absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", *time, absl::UTCTimeZone()).c_str()
                      : "?",
            c.key_id().c_str(), absl::BytesToHexString(c.root_hash()).c_str());
      }
    });
  }
  if (in.words[0] == "prove") {
    audit::v1::GetInclusionProofRequest request;
    *request.mutable_ledger() = ledger;
    if ((index >= 0) == !request_id.empty()) return Usage("prove: --index or --request_id");
    if (index >= 0) {
      request.set_index(static_cast<uint64_t>(index));
    } else {
      request.set_request_id(request_id);
    }
    request.set_tree_size(static_cast<uint64_t>(std::max<int64_t>(tree_size, 0)));
    audit::v1::GetInclusionProofResponse response;
    if (grpc::Status s = stub->GetInclusionProof(Context(g, true).get(), request, &response);
        !s.ok()) {
      const int rc = Failed(s);
      if (s.error_code() == grpc::StatusCode::NOT_FOUND && !request_id.empty() &&
          !absl::StartsWith(request_id, "decision:") && !absl::StartsWith(request_id, "usage:")) {
        std::fprintf(stderr,
                     "policyctl: a decision's entry is recorded under decision:<its request id> "
                     "(--request_id=decision:%s)\n",
                     request_id.c_str());
      }
      return rc;
    }
    // Nothing the server says is taken on trust: the leaf is recomputed from the entry's
    // fields and the proof folded to the checkpoint's root here; the root is checked against
    // --public_key when given.
    std::string failure;
    absl::StatusOr<audit::Entry> entry = audit::EntryFromProto(response.entry());
    absl::StatusOr<audit::Checkpoint> checkpoint =
        audit::CheckpointFromProto(response.checkpoint());
    std::vector<audit::Hash> proof;
    for (const std::string& h : response.proof()) {
      absl::StatusOr<audit::Hash> hash = audit::HashFromBytes(h);
      if (!hash.ok()) {
        failure = "a proof hash is not 32 bytes";
        break;
      }
      proof.push_back(*hash);
    }
    if (!entry.ok()) {
      failure = absl::StrCat("the entry is malformed: ", entry.status().message());
    } else if (!checkpoint.ok()) {
      failure = absl::StrCat("the checkpoint is malformed: ", checkpoint.status().message());
    } else if (failure.empty() &&
               !audit::VerifyInclusion(audit::EntryLeafHash(*entry), entry->index,
                                       checkpoint->tree_size, proof, checkpoint->root)) {
      failure = "the proof does not fold the entry's recomputed leaf hash to the checkpoint's root";
    }
    const auto [signature_ok, verdict] = signature_verdict(response.checkpoint());
    if (failure.empty() && !signature_ok) failure = verdict;
    if (!failure.empty()) {
      // As audit checkpoint: with --output=json, exit 3 still comes with the answer.
      if (g.json()) PrintJson(response);
      std::fprintf(stderr, "policyctl: NOT PROVEN: entry %llu: %s\n",
                   static_cast<unsigned long long>(response.entry().index()), failure.c_str());
      return kRefused;
    }
    return Show(g, response, [&] {
      std::printf("entry %llu is in the tree of %llu (root %s): proof of %d hashes checked; %s\n",
                  static_cast<unsigned long long>(response.entry().index()),
                  static_cast<unsigned long long>(response.checkpoint().tree_size()),
                  absl::BytesToHexString(response.checkpoint().root_hash()).c_str(),
                  response.proof_size(), verdict.c_str());
    });
  }
  if (in.words[0] == "subject-export") {
    // Every page, as JSON lines.
    audit::v1::ExportSubjectRequest request;
    request.set_subject(in.words[1]);
    request.set_page_size(1000);
    const google::protobuf::util::JsonPrintOptions options = JsonOptions();
    do {
      audit::v1::ExportSubjectResponse response;
      if (grpc::Status s = stub->ExportSubject(Context(g, true).get(), request, &response);
          !s.ok()) {
        return Failed(s);
      }
      for (const audit::v1::Entry& e : response.entries()) {
        std::string line;
        (void)google::protobuf::util::MessageToJsonString(e, &line, options);
        std::printf("%s\n", line.c_str());
      }
      if (std::ferror(stdout)) return kFailed;  // Main says why.
      request.set_page_token(response.next_page_token());
    } while (!request.page_token().empty());
    return kOk;
  }
  if (in.words[0] == "forget") {
    request_id = RequestIdOr(request_id);
    audit::v1::ForgetSubjectRequest request;
    request.set_subject(in.words[1]);
    request.set_request_id(request_id);
    audit::v1::ForgetSubjectResponse response;
    if (grpc::Status s = stub->ForgetSubject(Context(g, true).get(), request, &response); !s.ok()) {
      return FailedRetryable(s, request_id);
    }
    return ShowWithRequestId(g, response, request_id, [&] {
      std::printf("%s; recorded as entry %llu (request %s)\n",
                  response.forgotten() ? "forgotten" : "nothing was recorded about them",
                  static_cast<unsigned long long>(response.entry().index()), request_id.c_str());
      if (response.has_email_entry()) {
        std::printf("their e-mail address: %s; recorded as entry %llu\n",
                    response.email_forgotten() ? "forgotten" : "nothing was recorded about it",
                    static_cast<unsigned long long>(response.email_entry().index()));
      }
      if (response.member_erased()) {
        std::printf("erased from the organisation: their e-mail address and invitations\n");
      }
      for (const audit::v1::ForgottenMember& m : response.members()) {
        std::printf("member %s with this address: %s; recorded as entry %llu%s\n", m.id().c_str(),
                    m.forgotten() ? "forgotten" : "nothing was recorded about them",
                    static_cast<unsigned long long>(m.entry().index()),
                    m.erased() ? "; erased from the organisation" : "");
      }
    });
  }
  return Usage(absl::StrCat("audit: unknown verb '", in.words[0], "'"));
}

}  // namespace policy::policyctl
