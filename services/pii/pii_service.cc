#include "services/pii/pii_service.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/server/blocking_pool.h"
#include "common/status/grpc_status.h"
#include "common/text/utf8.h"
#include "services/pii/proto_convert.h"

namespace policy::pii {
namespace {

constexpr absl::string_view kDomain = "pii.policy-suite";
// How much larger than the largest request a restored answer may grow.
constexpr size_t kRestoreGrowth = 2;

grpc::Status ToGrpc(const absl::Status& status) { return ToGrpcStatus(status, kDomain); }

grpc::Status Invalid(absl::string_view message) {
  return ToGrpc(absl::InvalidArgumentError(message));
}

std::vector<absl::string_view> Contents(
    const google::protobuf::RepeatedPtrField<v1::ChatMessage>& messages) {
  std::vector<absl::string_view> texts;
  texts.reserve(messages.size());
  for (const v1::ChatMessage& message : messages) texts.push_back(message.content());
  return texts;
}

size_t TextBytes(absl::Span<const absl::string_view> texts) {
  size_t bytes = 0;
  for (absl::string_view text : texts) bytes += text.size();
  return bytes;
}

// Scan threads when PiiLimits::scan_threads is 0: one per core.
int ScanThreads(size_t configured) {
  if (configured > 0) return static_cast<int>(configured);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// How often the document streams' deadlines are looked at.
constexpr absl::Duration kDocumentCheckInterval = absl::Milliseconds(250);

}  // namespace

// An admitted document stream, as the canceller sees it. The reactor clears `context` in
// OnDone, after which gRPC may free it; a cancel in progress on another thread holds OnDone
// back until it is over (TryCancel may also run OnDone inline, on the cancelling thread).
struct PiiService::DocumentWatch {
  absl::Mutex mu;
  grpc::CallbackServerContext* context ABSL_GUARDED_BY(mu) = nullptr;
  std::optional<std::thread::id> cancelling ABSL_GUARDED_BY(mu);
  bool timed_out ABSL_GUARDED_BY(mu) = false;
  absl::Time deadline;
};

// Collects a document's chunks (at most the engine's document limit), then redacts it whole,
// so that a value split across chunks is found as in one text.
class PiiService::DocumentReactor final
    : public grpc::ServerReadReactor<v1::RedactDocumentRequest> {
 public:
  // Holds one of the service's document slots until done, and sends the initial metadata
  // once it holds one (a client that waits for it knows its stream was admitted); refuses at
  // once when none is free.
  DocumentReactor(PiiService* service, grpc::CallbackServerContext* context,
                  v1::RedactDocumentResponse* response)
      : service_(service), response_(response) {
    const PiiLimits& limits = service_->engine_->limits();
    if (service_->documents_.fetch_add(1, std::memory_order_relaxed) >= limits.max_documents) {
      Answer(ToGrpc(absl::ResourceExhaustedError(
          absl::StrCat("already ", limits.max_documents, " documents in progress; retry later"))));
      return;
    }
    watch_ = std::make_shared<DocumentWatch>();
    {
      absl::MutexLock lock(&watch_->mu);
      watch_->context = context;
    }
    watch_->deadline = absl::Now() + limits.max_document_time;
    service_->Watch(watch_);
    StartSendInitialMetadata();
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // The client closed the stream (or the call is cancelled: Finish is ignored).
      if (TimedOut()) {
        Answer(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                            "document: not received within max_document_time"));
        return;
      }
      absl::StatusOr<ScanBudget::Ticket> ticket = service_->budget_.Admit(document_.size());
      if (!ticket.ok()) {
        Answer(ToGrpc(ticket.status()));
        return;
      }
      grpc::Status status = service_->RedactDocumentText(document_, options_, response_);
      response_->set_chunks(chunks_);
      Answer(std::move(status));
      return;
    }
    if (request_.has_options()) {
      if (messages_ > 0) {
        Answer(Invalid(absl::StrCat("options: only the first message may carry them (message ",
                                    messages_, " does)")));
        return;
      }
      options_ = std::move(*request_.mutable_options());
    }
    const size_t limit = service_->engine_->limits().max_document_bytes;
    if (request_.chunk().size() > limit - document_.size()) {
      Answer(Invalid(absl::StrCat("document: more than the limit of ", limit, " bytes")));
      return;
    }
    document_.append(request_.chunk());
    ++messages_;
    if (!request_.chunk().empty()) ++chunks_;
    request_.Clear();
    StartRead(&request_);
  }

  void OnDone() override {
    if (watch_ != nullptr) {
      {
        // Not while another thread is cancelling this call (its context must outlive that).
        struct Waiting {
          DocumentWatch* watch;
          std::thread::id self;
        } waiting{watch_.get(), std::this_thread::get_id()};
        absl::MutexLock lock(&watch_->mu);
        watch_->mu.Await(absl::Condition(
            +[](Waiting* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
              return !w->watch->cancelling.has_value() || *w->watch->cancelling == w->self;
            },
            &waiting));
        watch_->context = nullptr;
      }
      service_->Unwatch(watch_);
    }
    delete this;
  }

 private:
  bool TimedOut() {
    if (watch_ == nullptr) return false;
    absl::MutexLock lock(&watch_->mu);
    return watch_->timed_out;
  }

  // Gives the document slot back, then answers: the next stream may start as soon as the
  // client has this answer.
  void Answer(grpc::Status status) {
    service_->documents_.fetch_sub(1, std::memory_order_relaxed);
    Finish(std::move(status));
  }

  PiiService* const service_;
  v1::RedactDocumentResponse* const response_;
  std::shared_ptr<DocumentWatch> watch_;  // Null when refused.
  v1::RedactDocumentRequest request_;
  v1::RedactDocumentOptions options_;
  std::string document_;
  uint32_t messages_ = 0;
  uint32_t chunks_ = 0;  // The messages that carried bytes.
};

PiiService::PiiService(const PiiEngine* engine, prometheus::Registry* registry)
    : engine_(engine),
      budget_(engine->limits().max_scan_bytes_in_flight),
      // The budget bounds what waits: every admitted request counts kMinCharge at least.
      scan_pool_(std::make_unique<server::BlockingPool>(
          ScanThreads(engine->limits().scan_threads),
          static_cast<int>(std::min<size_t>(
              engine->limits().max_scan_bytes_in_flight / ScanBudget::kMinCharge + 1,
              std::numeric_limits<int>::max())))),
      scanned_bytes_(prometheus::BuildCounter()
                         .Name("policy_pii_scanned_bytes_total")
                         .Help("Bytes of text scanned for personal data and secrets.")
                         .Register(*registry)
                         .Add({})),
      blocked_(prometheus::BuildCounter()
                   .Name("policy_pii_blocked_requests_total")
                   .Help("Redact requests whose policy blocks one of their findings.")
                   .Register(*registry)
                   .Add({})) {
  auto& findings = prometheus::BuildCounter()
                       .Name("policy_pii_findings_total")
                       .Help("Entities found, by entity type (values are never recorded).")
                       .Register(*registry);
  for (const std::string& type : engine_->detector().EntityTypes()) {
    findings_[type] = &findings.Add({{"entity_type", type}});
  }
  canceller_ = std::thread([this] { CancelLateDocuments(); });
}

PiiService::~PiiService() {
  scan_pool_.reset();  // Its queued scans count into the metrics below.
  {
    absl::MutexLock lock(&watch_mu_);
    stopping_ = true;
  }
  canceller_.join();
}

void PiiService::Watch(const std::shared_ptr<DocumentWatch>& watch) {
  absl::MutexLock lock(&watch_mu_);
  watches_.insert(watch);
}

void PiiService::Unwatch(const std::shared_ptr<DocumentWatch>& watch) {
  absl::MutexLock lock(&watch_mu_);
  watches_.erase(watch);
}

void PiiService::CancelLateDocuments() {
  for (;;) {
    std::vector<std::shared_ptr<DocumentWatch>> late;
    {
      absl::MutexLock lock(&watch_mu_);
      watch_mu_.AwaitWithTimeout(absl::Condition(&stopping_), kDocumentCheckInterval);
      if (stopping_) return;
      const absl::Time now = absl::Now();
      for (const std::shared_ptr<DocumentWatch>& watch : watches_) {
        if (watch->deadline <= now) late.push_back(watch);
      }
    }
    // No lock held while cancelling: TryCancel may run the reactor's OnDone inline, which
    // takes both.
    for (const std::shared_ptr<DocumentWatch>& watch : late) {
      grpc::CallbackServerContext* context = nullptr;
      {
        absl::MutexLock lock(&watch->mu);
        if (watch->context == nullptr || watch->timed_out) continue;
        watch->timed_out = true;
        watch->cancelling = std::this_thread::get_id();
        context = watch->context;
      }
      context->TryCancel();
      absl::MutexLock lock(&watch->mu);
      watch->cancelling.reset();
    }
  }
}

void PiiService::Record(absl::Span<const std::vector<Finding>> found, size_t bytes, bool blocked) {
  scanned_bytes_.Increment(static_cast<double>(bytes));
  if (blocked) blocked_.Increment();
  for (const std::vector<Finding>& findings : found) {
    for (const Finding& finding : findings) {
      if (auto it = findings_.find(finding.entity_type); it != findings_.end()) {
        it->second->Increment();
      }
    }
  }
}

// Text up to this size is scanned on gRPC's thread: a 4 KiB prompt takes a few microseconds,
// a hand-off to a scan thread about a hundred on a VM whose idle vCPU must be woken.
constexpr size_t kInlineScanBytes = 16 * 1024;

grpc::ServerUnaryReactor* PiiService::RunScan(grpc::CallbackServerContext* context, size_t bytes,
                                              std::function<grpc::Status()> work) {
  if (bytes <= kInlineScanBytes) return server::FinishNow(context, work());
  return scan_pool_->Run(context, std::move(work));
}

grpc::ServerUnaryReactor* PiiService::Scan(grpc::CallbackServerContext* context,
                                           const v1::ScanRequest* request,
                                           v1::ScanResponse* response) {
  const std::vector<absl::string_view> texts = Contents(request->messages());
  const PiiLimits& limits = engine_->limits();
  if (absl::Status s = engine_->CheckTexts(texts, limits.max_request_bytes, "messages"); !s.ok()) {
    return server::FinishNow(context, ToGrpc(s));
  }
  absl::StatusOr<ScanOptions> options = FromProto(request->options());
  if (!options.ok()) return server::FinishNow(context, ToGrpc(options.status()));
  if (absl::Status s = engine_->CheckScanOptions(*options, "options"); !s.ok()) {
    return server::FinishNow(context, ToGrpc(s));
  }
  absl::StatusOr<ScanBudget::Ticket> ticket = budget_.Admit(TextBytes(texts));
  if (!ticket.ok()) return server::FinishNow(context, ToGrpc(ticket.status()));
  auto held = std::make_shared<ScanBudget::Ticket>(*std::move(ticket));
  return RunScan(context, TextBytes(texts),
                 [this, texts, options = *std::move(options), response, held] {
                   const std::vector<std::vector<Finding>> found = engine_->Scan(texts, options);
                   size_t bytes = 0;
                   for (size_t i = 0; i < found.size(); ++i) {
                     bytes += texts[i].size();
                     for (const Finding& finding : found[i]) {
                       ToProto(finding, static_cast<uint32_t>(i), response->add_findings());
                       ++(*response->mutable_counts())[finding.entity_type];
                     }
                   }
                   response->set_data_class(
                       DataClassToProto(PiiEngine::ClassOf(found, AnonymizationPolicy{})));
                   Record(found, bytes, /*blocked=*/false);
                   return grpc::Status::OK;
                 });
}

grpc::ServerUnaryReactor* PiiService::Redact(grpc::CallbackServerContext* context,
                                             const v1::RedactRequest* request,
                                             v1::RedactResponse* response) {
  const std::vector<absl::string_view> texts = Contents(request->messages());
  if (absl::Status s = engine_->CheckTexts(texts, engine_->limits().max_request_bytes, "messages");
      !s.ok()) {
    return server::FinishNow(context, ToGrpc(s));
  }
  absl::StatusOr<RedactionParams> params = FromProto(request->policy(), request->project_id());
  if (!params.ok()) return server::FinishNow(context, ToGrpc(params.status()));
  if (absl::Status s = engine_->CheckRedaction(*params); !s.ok()) {
    return server::FinishNow(context, ToGrpc(s));
  }
  absl::StatusOr<ScanBudget::Ticket> ticket = budget_.Admit(TextBytes(texts));
  if (!ticket.ok()) return server::FinishNow(context, ToGrpc(ticket.status()));
  auto held = std::make_shared<ScanBudget::Ticket>(*std::move(ticket));
  return RunScan(context, TextBytes(texts),
                 [this, texts, params = *std::move(params), request, response, held] {
                   absl::StatusOr<Redaction> redaction = engine_->Redact(texts, params);
                   if (!redaction.ok()) return ToGrpc(redaction.status());
                   size_t bytes = 0;
                   for (size_t i = 0; i < texts.size(); ++i) {
                     bytes += texts[i].size();
                     const uint32_t index = static_cast<uint32_t>(i);
                     v1::ChatMessage* message = response->add_messages();
                     message->set_role(request->messages(index).role());
                     AnonymizedText& text = redaction->texts[i];
                     if (!request->omit_findings()) {
                       for (size_t j = 0; j < text.findings.size(); ++j) {
                         ToProto(redaction->found[i][j], text.findings[j], index,
                                 response->add_findings());
                       }
                     }
                     message->set_content(std::move(text.text));
                   }
                   const ContentReport& report = redaction->context.report();
                   ToProto(report, response->mutable_report());
                   if (request->return_mapping()) {
                     ToProto(redaction->context.placeholders(), response->mutable_mapping());
                   }
                   Record(redaction->found, bytes, report.blocked);
                   return grpc::Status::OK;
                 });
}

grpc::ServerReadReactor<v1::RedactDocumentRequest>* PiiService::RedactDocument(
    grpc::CallbackServerContext* context, v1::RedactDocumentResponse* response) {
  return new DocumentReactor(this, context, response);
}

grpc::Status PiiService::RedactDocumentText(absl::string_view document,
                                            const v1::RedactDocumentOptions& options,
                                            v1::RedactDocumentResponse* response) {
  const absl::string_view texts[] = {document};
  if (absl::Status s = engine_->CheckTexts(texts, engine_->limits().max_document_bytes, "document");
      !s.ok()) {
    return ToGrpc(s);
  }
  absl::StatusOr<RedactionParams> params = FromProto(options.policy(), options.project_id());
  if (!params.ok()) return ToGrpc(params.status());
  absl::StatusOr<Redaction> redaction = engine_->Redact(texts, *params);
  if (!redaction.ok()) return ToGrpc(redaction.status());
  AnonymizedText& text = redaction->texts[0];
  for (size_t j = 0; j < text.findings.size(); ++j) {
    ToProto(redaction->found[0][j], text.findings[j], 0, response->add_findings());
  }
  response->set_content(std::move(text.text));
  response->set_document_bytes(document.size());
  const ContentReport& report = redaction->context.report();
  ToProto(report, response->mutable_report());
  if (options.return_mapping()) {
    ToProto(redaction->context.placeholders(), response->mutable_mapping());
  }
  Record(redaction->found, document.size(), report.blocked);
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* PiiService::Restore(grpc::CallbackServerContext* context,
                                              const v1::RestoreRequest* request,
                                              v1::RestoreResponse* response) {
  const absl::string_view texts[] = {request->text()};
  if (absl::Status s = engine_->CheckTexts(texts, engine_->limits().max_request_bytes, "text");
      !s.ok()) {
    return server::FinishNow(context, ToGrpc(s));
  }
  // The mapping's values are text put into the answer: UTF-8, within the request's limit.
  size_t value_bytes = 0;
  for (int i = 0; i < request->mapping_size(); ++i) {
    const std::string& value = request->mapping(i).value();
    value_bytes += value.size();
    if (value_bytes > engine_->limits().max_request_bytes) {
      return server::FinishNow(
          context, ToGrpc(absl::InvalidArgumentError(
                       absl::StrCat("mapping: the values are more than ",
                                    engine_->limits().max_request_bytes, " bytes together"))));
    }
    if (!IsUtf8(value)) {
      return server::FinishNow(context, ToGrpc(absl::InvalidArgumentError(absl::StrCat(
                                            "mapping[", i, "].value: not valid UTF-8"))));
    }
  }
  absl::StatusOr<PlaceholderMapping> mapping = FromProto(request->mapping());
  if (!mapping.ok()) return server::FinishNow(context, ToGrpc(mapping.status()));
  absl::StatusOr<std::string> restored =
      pii::Restore(request->text(), *mapping, kRestoreGrowth * engine_->limits().max_request_bytes);
  if (!restored.ok()) return server::FinishNow(context, ToGrpc(restored.status()));
  response->set_text(*std::move(restored));
  return server::FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* PiiService::ListEntityTypes(grpc::CallbackServerContext* context,
                                                      const v1::ListEntityTypesRequest*,
                                                      v1::ListEntityTypesResponse* response) {
  absl::flat_hash_set<std::string> builtin;
  for (const RecognizerSpec& spec : BuiltinRecognizers()) builtin.insert(spec.entity_type);
  for (const std::string& type : engine_->detector().EntityTypes()) {
    v1::EntityTypeInfo* info = response->add_entity_types();
    info->set_entity_type(type);
    info->set_default_class(DataClassToProto(DefaultDataClass(type)));
    info->set_custom(!builtin.contains(type));
  }
  response->set_keyed_hashing(engine_->keyed_hashing());
  return server::FinishNow(context, grpc::Status::OK);
}

}  // namespace policy::pii
