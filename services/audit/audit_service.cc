#include "services/audit/audit_service.h"

#include <mutex>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/log/log.h"
#include "common/proto/well_known.h"
#include "common/status/grpc_status.h"
#include "services/audit/proto_convert.h"

namespace policy::audit {
namespace {

using proto::SetTime;
using proto::TimeFromProto;

constexpr absl::string_view kDomain = "audit.policy-suite";

// Whether the caller of `context` has gone: it cancelled, or its deadline passed.
bool GaveUp(grpc::CallbackServerContext& context) {
  return context.IsCancelled() || context.deadline() < std::chrono::system_clock::now();
}
// An export chunk holds at most this many entries and, unless one entry alone is larger,
// this many bytes of JSON lines: well within gRPC's default 4 MiB receive limit, whatever the
// entries' metadata.
constexpr size_t kExportChunkEntries = 500;
constexpr size_t kExportChunkBytes = 1 << 20;
// A QueryEntries page holds at most this many bytes of entries, unless its first entry alone
// is larger: a page of the most entries, each as large as an entry may be, stays well within
// gRPC's default 4 MiB receive limit at every hop (the edge passes pages on).
constexpr size_t kQueryPageBytes = 1 << 20;

grpc::Status ToGrpc(const absl::Status& status) { return ToGrpcStatus(status, kDomain); }

absl::StatusOr<std::optional<absl::Time>> OptionalTime(bool present,
                                                       const google::protobuf::Timestamp& t,
                                                       absl::string_view field) {
  if (!present) return std::optional<absl::Time>();
  absl::StatusOr<absl::Time> time = TimeFromProto(t, field);
  if (!time.ok()) return time.status();
  return std::optional<absl::Time>(*time);
}

}  // namespace

// Streams a ledger's entries from a thread of its own, one chunk at a time: the next chunk
// is read only once the previous one was sent, so a slow reader holds back only itself. A
// chunk the reader has not taken within max_write_time ends the export: ABORTED naming the
// setting and the index to resume from, sent after what the reader has not read yet; if the
// reader takes nothing for another max_write_time, the stream is cancelled. The export's slot
// (kMaxExports) is given back as soon as the thread stops.
class AuditService::ExportReactor final
    : public grpc::ServerWriteReactor<v1::ExportEntriesResponse> {
 public:
  ExportReactor(AuditService* service, grpc::CallbackServerContext* context,
                const v1::ExportEntriesRequest* request, absl::Duration max_write_time)
      : service_(service), context_(context), request_(*request), max_write_time_(max_write_time) {
    std::thread([this] { Work(); }).detach();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    write_ok_ = ok;
    write_done_ = true;
  }

  void OnDone() override {
    bool last;
    {
      // Waits for a TryCancel in progress on the thread (context_ ends when OnDone returns);
      // recursive, as gRPC may run OnDone inside that TryCancel.
      std::lock_guard<std::recursive_mutex> cancel(cancel_mu_);
      absl::MutexLock lock(&mu_);
      done_ = true;
      last = stopped_;
    }
    if (last) delete this;
  }

 private:
  void Work() {
    Export();
    service_->exports_.fetch_sub(1);
    bool last;
    {
      absl::MutexLock lock(&mu_);
      stopped_ = true;
      last = done_;
    }
    if (last) delete this;
  }

  // Sends the chunks, then finishes the call.
  void Export() {
    const LedgerRef ledger = FromProto(request_.ledger());
    uint64_t next = request_.from_index();
    bool first = true;
    // Entries read but not sent yet, from `taken` on; `exhausted` once a read came up short.
    std::vector<RevealedEntry> pending;
    size_t taken = 0;
    bool exhausted = false;
    v1::Entry proto;
    for (;;) {
      if (context_->IsCancelled()) {
        Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the export was cancelled"));
        return;
      }
      if (taken == pending.size()) {
        if (exhausted) {
          Finish(grpc::Status::OK);
          return;
        }
        absl::StatusOr<std::vector<RevealedEntry>> entries = service_->ledger_->Export(
            ledger, next, kExportChunkEntries, request_.requested_by(), first);
        first = false;
        if (!entries.ok()) {
          Finish(ToGrpc(entries.status()));
          return;
        }
        exhausted = entries->size() < kExportChunkEntries;
        pending = *std::move(entries);
        taken = 0;
        if (pending.empty()) {
          Finish(grpc::Status::OK);
          return;
        }
      }
      // One chunk: at most kExportChunkBytes of lines, but at least one entry.
      std::string jsonl;
      while (taken < pending.size()) {
        proto.Clear();
        ToProto(pending[taken], &proto);
        std::string line = absl::StrCat(ToJsonLine(proto), "\n");
        if (!jsonl.empty() && jsonl.size() + line.size() > kExportChunkBytes) break;
        jsonl.append(line);
        next = pending[taken].entry.index + 1;
        ++taken;
      }
      response_.Clear();
      response_.set_jsonl(std::move(jsonl));
      response_.set_next_index(next);
      {
        absl::MutexLock lock(&mu_);
        write_done_ = false;
      }
      StartWrite(&response_);
      bool written = false;
      bool sent = false;
      {
        absl::MutexLock lock(&mu_);
        written = mu_.AwaitWithTimeout(absl::Condition(&write_done_), max_write_time_);
        sent = write_ok_;
      }
      if (!written) {
        // The status follows the chunk waiting: a reader that gets it has that chunk too.
        Finish(ToGrpc(absl::AbortedError(absl::StrCat(
            "the reader took no chunk for ", absl::FormatDuration(max_write_time_),
            " (the audit service's max_export_write_time): the export was stopped after this "
            "chunk; resume it with from_index ",
            next, ", the last chunk's next_index"))));
        CancelUnlessDone();
        return;
      }
      if (!sent) {
        Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
        return;
      }
    }
  }

  // After a Finish behind a write the reader does not take: cancels the stream unless it
  // ends within another max_write_time, so that a reader that never reads again holds no
  // stream (nor the chunk queued in it).
  void CancelUnlessDone() {
    bool done;
    {
      absl::MutexLock lock(&mu_);
      done = mu_.AwaitWithTimeout(absl::Condition(&done_), max_write_time_);
    }
    if (done) return;
    std::lock_guard<std::recursive_mutex> cancel(cancel_mu_);
    bool ended;
    {
      absl::MutexLock lock(&mu_);
      ended = done_;
    }
    if (!ended) context_->TryCancel();
  }

  AuditService* const service_;
  grpc::CallbackServerContext* const context_;
  const v1::ExportEntriesRequest request_;
  const absl::Duration max_write_time_;
  v1::ExportEntriesResponse response_;
  std::recursive_mutex cancel_mu_;  // Held by TryCancel's caller and by OnDone.
  absl::Mutex mu_;
  bool write_done_ ABSL_GUARDED_BY(mu_) = false;
  bool write_ok_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;     // OnDone ran: the call is over.
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;  // The thread is done with the reactor.
};

AuditService::AuditService(AuditLedger* ledger, AppendBatcher* batcher, server::BlockingPool* pool,
                           server::BlockingPool* verify_pool, prometheus::Registry* registry,
                           absl::Duration max_export_write_time)
    : ledger_(ledger),
      batcher_(batcher),
      pool_(pool),
      verify_pool_(verify_pool),
      max_export_write_time_(max_export_write_time),
      appended_(prometheus::BuildCounter()
                    .Name("policy_audit_appended_entries_total")
                    .Help("Entries appended to the ledgers (durable when counted).")
                    .Register(*registry)
                    .Add({})),
      duplicates_(prometheus::BuildCounter()
                      .Name("policy_audit_duplicate_appends_total")
                      .Help("Appends answered with the entry of an earlier one (same request id).")
                      .Register(*registry)
                      .Add({})) {}

grpc::ServerUnaryReactor* AuditService::Append(grpc::CallbackServerContext* context,
                                               const v1::AppendRequest* request,
                                               v1::AppendResponse* response) {
  absl::StatusOr<EntryInput> input = FromProto(request->entry());
  if (!input.ok()) return server::FinishNow(context, ToGrpc(input.status()));
  if (absl::Status s = ValidateEntryInput(*input); !s.ok())
    return server::FinishNow(context, ToGrpc(s));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const std::chrono::system_clock::time_point deadline = context->deadline();
  batcher_->Submit(
      *std::move(input),
      [this, reactor, response](absl::StatusOr<AppendOutcome> outcome) {
        if (!outcome.ok()) {
          reactor->Finish(ToGrpc(outcome.status()));
          return;
        }
        (outcome->duplicate ? duplicates_ : appended_).Increment();
        // The caller knows the identifiers it sent: they are not echoed.
        ToProto(RevealedEntry{std::move(outcome->entry), "", ""}, response->mutable_entry());
        response->set_duplicate(outcome->duplicate);
        reactor->Finish(grpc::Status::OK);
      },
      deadline == std::chrono::system_clock::time_point::max() ? absl::InfiniteFuture()
                                                               : absl::FromChrono(deadline));
  return reactor;
}

grpc::ServerUnaryReactor* AuditService::QueryEntries(grpc::CallbackServerContext* context,
                                                     const v1::QueryEntriesRequest* request,
                                                     v1::QueryEntriesResponse* response) {
  return pool_->Run(context, [this, request, response] {
    QuerySpec spec;
    spec.ledger = FromProto(request->ledger());
    if (request->action() != v1::ACTION_UNSPECIFIED) {
      const int value = static_cast<int>(request->action());
      if (value < 1 || value > kActionCount) {
        return ToGrpc(absl::InvalidArgumentError(absl::StrCat("action: unknown ", value)));
      }
      spec.action = static_cast<Action>(value - 1);
    }
    spec.actor = request->actor();
    absl::StatusOr<std::optional<absl::Time>> start =
        OptionalTime(request->has_start_time(), request->start_time(), "start_time");
    if (!start.ok()) return ToGrpc(start.status());
    absl::StatusOr<std::optional<absl::Time>> end =
        OptionalTime(request->has_end_time(), request->end_time(), "end_time");
    if (!end.ok()) return ToGrpc(end.status());
    spec.start = *start;
    spec.end = *end;
    if (request->page_size() < 0) {
      return ToGrpc(absl::InvalidArgumentError("page_size: negative"));
    }
    spec.page_size = request->page_size() == 0 ? 100 : static_cast<size_t>(request->page_size());
    if (!request->page_token().empty()) {
      absl::Status resumed = ResumeQueryFromToken(request->page_token(), &spec);
      if (!resumed.ok()) return ToGrpc(resumed);
    }
    absl::StatusOr<QueryPage> page = ledger_->Query(spec, request->requested_by());
    if (!page.ok()) return ToGrpc(page.status());
    std::optional<uint64_t> next_index = page->next_index;
    size_t bytes = 0;
    for (const RevealedEntry& e : page->entries) {
      v1::Entry entry;
      ToProto(e, &entry);
      const size_t size = entry.ByteSizeLong();
      if (response->entries_size() > 0 && bytes + size > kQueryPageBytes) {
        next_index = e.entry.index;  // The page ends before the entry that would pass the bound.
        break;
      }
      bytes += size;
      *response->add_entries() = std::move(entry);
    }
    if (next_index.has_value()) {
      response->set_next_page_token(QueryPageToken(spec, *next_index, page->end_index));
    }
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AuditService::GetCheckpoint(grpc::CallbackServerContext* context,
                                                      const v1::GetCheckpointRequest* request,
                                                      v1::GetCheckpointResponse* response) {
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<Checkpoint> c =
        ledger_->GetCheckpoint(FromProto(request->ledger()), request->tree_size());
    if (!c.ok()) return ToGrpc(c.status());
    ToProto(*c, response->mutable_checkpoint());
    response->set_public_key(ledger_->public_key());
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AuditService::ListCheckpoints(grpc::CallbackServerContext* context,
                                                        const v1::ListCheckpointsRequest* request,
                                                        v1::ListCheckpointsResponse* response) {
  return pool_->Run(context, [this, request, response] {
    if (request->page_size() > kMaxPageSize) {
      return ToGrpc(absl::InvalidArgumentError(absl::StrCat(
          "page_size: must be between 1 and ", kMaxPageSize, " (0: ", kMaxPageSize, ")")));
    }
    const size_t page_size = request->page_size() == 0 ? kMaxPageSize : request->page_size();
    absl::StatusOr<CheckpointPage> page =
        ledger_->ListCheckpoints(FromProto(request->ledger()), request->after_size(), page_size);
    if (!page.ok()) return ToGrpc(page.status());
    for (const Checkpoint& c : page->checkpoints) ToProto(c, response->add_checkpoints());
    response->set_next_after_size(page->next_after_size);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AuditService::GetEntry(grpc::CallbackServerContext* context,
                                                 const v1::GetEntryRequest* request,
                                                 v1::GetEntryResponse* response) {
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<Entry> entry =
        ledger_->FindRequest(FromProto(request->ledger()), request->request_id());
    if (!entry.ok()) return ToGrpc(entry.status());
    ToProto(RevealedEntry{.entry = *std::move(entry), .actor = "", .subject = ""},
            response->mutable_entry());
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AuditService::GetInclusionProof(
    grpc::CallbackServerContext* context, const v1::GetInclusionProofRequest* request,
    v1::GetInclusionProofResponse* response) {
  return pool_->Run(context, [this, request, response] {
    std::optional<uint64_t> index;
    if (request->entry_case() == v1::GetInclusionProofRequest::kIndex) index = request->index();
    absl::StatusOr<InclusionProof> proof = ledger_->ProveInclusion(
        FromProto(request->ledger()), index, request->request_id(), request->tree_size());
    // DATA_LOSS: the stored entry or hashes do not check (AuditLedger::ProveInclusion), a
    // verdict on the ledger the caller needs to read, naming the entry and nothing secret.
    if (absl::IsDataLoss(proof.status())) {
      LogWarning("an inclusion proof was refused", {{"status", proof.status().ToString()}});
      return grpc::Status(grpc::StatusCode::DATA_LOSS, std::string(proof.status().message()));
    }
    if (!proof.ok()) return ToGrpc(proof.status());
    ToProto(RevealedEntry{.entry = std::move(proof->entry), .actor = "", .subject = ""},
            response->mutable_entry());
    ToProto(proof->checkpoint, response->mutable_checkpoint());
    for (const Hash& h : proof->proof) response->add_proof(std::string(AsBytes(h)));
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AuditService::GetConsistencyProof(
    grpc::CallbackServerContext* context, const v1::GetConsistencyProofRequest* request,
    v1::GetConsistencyProofResponse* response) {
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<ConsistencyProof> proof = ledger_->ProveConsistency(
        FromProto(request->ledger()), request->from_size(), request->to_size());
    if (!proof.ok()) return ToGrpc(proof.status());
    if (proof->from.has_value()) ToProto(*proof->from, response->mutable_from());
    ToProto(proof->to, response->mutable_to());
    for (const Hash& h : proof->proof) response->add_proof(std::string(AsBytes(h)));
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AuditService::VerifyLedger(grpc::CallbackServerContext* context,
                                                     const v1::VerifyLedgerRequest* request,
                                                     v1::VerifyLedgerResponse* response) {
  return verify_pool_->Run(context, [this, context, request, response] {
    absl::StatusOr<IntegrityReport> report =
        ledger_->Verify(FromProto(request->ledger()), [context] { return GaveUp(*context); });
    if (!report.ok()) return ToGrpc(report.status());
    ToProto(*report, response->mutable_report());
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AuditService::GetComplianceSummary(
    grpc::CallbackServerContext* context, const v1::GetComplianceSummaryRequest* request,
    v1::GetComplianceSummaryResponse* response) {
  return verify_pool_->Run(context, [this, context, request, response] {
    absl::StatusOr<std::optional<absl::Time>> start =
        OptionalTime(request->has_start_time(), request->start_time(), "start_time");
    if (!start.ok()) return ToGrpc(start.status());
    absl::StatusOr<std::optional<absl::Time>> end =
        OptionalTime(request->has_end_time(), request->end_time(), "end_time");
    if (!end.ok()) return ToGrpc(end.status());
    absl::StatusOr<ComplianceSummary> s =
        ledger_->Summarize(FromProto(request->ledger()), *start, *end, request->requested_by(),
                           [context] { return GaveUp(*context); });
    if (!s.ok()) return ToGrpc(s.status());
    if (s->period_start.has_value()) SetTime(*s->period_start, response->mutable_period_start());
    if (s->period_end.has_value()) SetTime(*s->period_end, response->mutable_period_end());
    response->set_total_entries(s->total_entries);
    response->set_total_tokens(s->total_tokens);
    response->set_policy_violations(s->policy_violations);
    for (const auto& [region, count] : s->allowed_by_region) {
      (*response->mutable_allowed_by_region())[region] = count;
    }
    for (const auto& [residency, count] : s->allowed_by_residency) {
      (*response->mutable_allowed_by_residency())[residency] = count;
    }
    for (const auto& [data_class, count] : s->allowed_by_data_class) {
      (*response->mutable_allowed_by_data_class())[data_class] = count;
    }
    for (const auto& [api, count] : s->allowed_by_api) {
      (*response->mutable_allowed_by_api())[api] = count;
    }
    for (const auto& [reason, count] : s->denials_by_reason) {
      (*response->mutable_denials_by_reason())[reason] = count;
    }
    for (const auto& [type, count] : s->pii_allowed_by_type) {
      (*response->mutable_pii_allowed_by_type())[type] = count;
    }
    for (const auto& [action, count] : s->action_breakdown) {
      (*response->mutable_action_breakdown())[action] = count;
    }
    ToProto(s->integrity, response->mutable_integrity());
    response->set_unaccounted_subjects(s->unaccounted_subjects);
    return grpc::Status::OK;
  });
}

grpc::ServerWriteReactor<v1::ExportEntriesResponse>* AuditService::ExportEntries(
    grpc::CallbackServerContext* context, const v1::ExportEntriesRequest* request) {
  if (exports_.fetch_add(1) >= kMaxExports) {
    exports_.fetch_sub(1);
    class Refused final : public grpc::ServerWriteReactor<v1::ExportEntriesResponse> {
     public:
      Refused() {
        Finish(ToGrpc(absl::ResourceExhaustedError(absl::StrCat(
            "already ", kMaxExports, " exports running; retry later (from the same index)"))));
      }
      void OnDone() override { delete this; }
    };
    return new Refused();
  }
  return new ExportReactor(this, context, request, max_export_write_time_);
}

grpc::ServerUnaryReactor* AuditService::ForgetSubject(grpc::CallbackServerContext* context,
                                                      const v1::ForgetSubjectRequest* request,
                                                      v1::ForgetSubjectResponse* response) {
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<ForgetResult> r =
        ledger_->Forget(request->subject(), request->requested_by(), request->request_id());
    if (!r.ok()) return ToGrpc(r.status());
    response->set_forgotten(r->forgotten);
    ToProto(RevealedEntry{std::move(r->entry), "", ""}, response->mutable_entry());
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AuditService::ExportSubject(grpc::CallbackServerContext* context,
                                                      const v1::ExportSubjectRequest* request,
                                                      v1::ExportSubjectResponse* response) {
  return pool_->Run(context, [this, request, response] {
    std::optional<SubjectResume> after;
    if (!request->page_token().empty()) {
      absl::StatusOr<SubjectResume> resume =
          SubjectResumeFromToken(request->page_token(), request->subject());
      if (!resume.ok()) return ToGrpc(resume.status());
      after = *std::move(resume);
    }
    if (request->page_size() < 0) {
      return ToGrpc(absl::InvalidArgumentError("page_size: must not be negative"));
    }
    const size_t page_size = request->page_size() == 0 ? 100 : request->page_size();
    absl::StatusOr<SubjectPage> page =
        ledger_->ExportSubject(request->subject(), request->requested_by(), after, page_size);
    if (!page.ok()) return ToGrpc(page.status());
    for (const RevealedEntry& e : page->entries) ToProto(e, response->add_entries());
    if (page->next.has_value())
      response->set_next_page_token(SubjectResumeToken(request->subject(), *page->next));
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AuditService::ListLedgers(grpc::CallbackServerContext* context,
                                                    const v1::ListLedgersRequest*,
                                                    v1::ListLedgersResponse* response) {
  return pool_->Run(context, [this, response] {
    absl::StatusOr<std::vector<LedgerOverview>> ledgers = ledger_->ListLedgers();
    if (!ledgers.ok()) return ToGrpc(ledgers.status());
    for (const LedgerOverview& l : *ledgers) {
      v1::LedgerInfo* info = response->add_ledgers();
      ToProto(l.ledger, info->mutable_ledger());
      info->set_size(l.size);
      if (l.latest_checkpoint.has_value()) {
        ToProto(*l.latest_checkpoint, info->mutable_latest_checkpoint());
      }
    }
    return grpc::Status::OK;
  });
}

}  // namespace policy::audit
