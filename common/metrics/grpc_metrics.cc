#include "common/metrics/grpc_metrics.h"

#include <array>
#include <atomic>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "google/protobuf/descriptor.h"

namespace policy::metrics {
namespace {

// "<service>/<method>" (from "/<service>/<method>"), split.
std::pair<absl::string_view, absl::string_view> SplitMethod(absl::string_view full_method) {
  absl::ConsumePrefix(&full_method, "/");
  const size_t slash = full_method.find('/');
  if (slash == absl::string_view::npos) return {full_method, ""};
  return {full_method.substr(0, slash), full_method.substr(slash + 1)};
}

bool KnownMethod(absl::string_view service, absl::string_view method) {
  if (service == "grpc.health.v1.Health") return method == "Check" || method == "Watch";
  if (service.empty() || method.empty()) return false;
  return google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
             absl::StrCat(service, ".", method)) != nullptr;
}

constexpr int kCodes = 17;  // grpc::StatusCode OK .. UNAUTHENTICATED

const char* CodeName(int code) {
  static constexpr std::array<const char*, kCodes> kNames = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  return kNames[code];
}

const char* TypeName(grpc::experimental::ServerRpcInfo::Type type) {
  using Type = grpc::experimental::ServerRpcInfo::Type;
  switch (type) {
    case Type::UNARY:
      return "unary";
    case Type::CLIENT_STREAMING:
      return "client_stream";
    case Type::SERVER_STREAMING:
      return "server_stream";
    case Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unknown";
}

// Sub-millisecond buckets first: most of this suite's RPCs finish in microseconds.
prometheus::Histogram::BucketBoundaries Buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

class MetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit MetricsInterceptor(GrpcMethodMetrics::Method* method)
      : method_(method), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override;

 private:
  GrpcMethodMetrics::Method* method_;
  std::chrono::steady_clock::time_point start_;
};

class MetricsInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(GrpcServerMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(metrics_->ForMethod(info->method(), TypeName(info->type())));
  }

 private:
  GrpcServerMetrics* metrics_;
};

}  // namespace

struct GrpcMethodMetrics::Method {
  prometheus::Family<prometheus::Counter>* handled_family;
  std::map<std::string, std::string> labels;
  prometheus::Counter* started;
  prometheus::Counter* received;
  prometheus::Counter* sent;
  prometheus::Histogram* seconds;
  std::array<std::atomic<prometheus::Counter*>, kCodes> handled{};
};

GrpcMethodMetrics::GrpcMethodMetrics(prometheus::Registry& registry, absl::string_view side)
    : started_(prometheus::BuildCounter()
                   .Name(absl::StrCat("grpc_", side, "_started_total"))
                   .Help(absl::StrCat("Total number of RPCs started on the ", side, "."))
                   .Register(registry)),
      handled_(prometheus::BuildCounter()
                   .Name(absl::StrCat("grpc_", side, "_handled_total"))
                   .Help(absl::StrCat("Total number of RPCs completed on the ", side,
                                      ", regardless of success or failure."))
                   .Register(registry)),
      received_(
          prometheus::BuildCounter()
              .Name(absl::StrCat("grpc_", side, "_msg_received_total"))
              .Help(absl::StrCat("Total number of RPC stream messages received on the ", side, "."))
              .Register(registry)),
      sent_(prometheus::BuildCounter()
                .Name(absl::StrCat("grpc_", side, "_msg_sent_total"))
                .Help(absl::StrCat("Total number of gRPC stream messages sent by the ", side, "."))
                .Register(registry)),
      seconds_(prometheus::BuildHistogram()
                   .Name(absl::StrCat("grpc_", side, "_handling_seconds"))
                   .Help(side == "server"
                             ? "Histogram of response latency (seconds) of gRPC that had been "
                               "application-level handled by the server."
                             : "Histogram of response latency (seconds) of the gRPC until it is "
                               "finished by the application.")
                   .Register(registry)),
      only_known_methods_(side == "server") {}

GrpcMethodMetrics::~GrpcMethodMetrics() = default;

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
GrpcServerMetrics::InterceptorFactory() {
  return std::make_unique<MetricsInterceptorFactory>(this);
}

GrpcMethodMetrics::Method* GrpcMethodMetrics::ForMethod(const char* full_method, const char* type) {
  absl::string_view name = full_method == nullptr ? "" : full_method;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = methods_.find(name);
    if (it != methods_.end()) return it->second.get();
  }
  auto [service, method] = SplitMethod(name);
  if (only_known_methods_ && !KnownMethod(service, method)) {
    // One slot per type for every unknown method; its key cannot be a method's ("/a/b").
    name = type;
    service = method = "unknown";
  }
  absl::MutexLock lock(&mu_);
  auto& slot = methods_[name];
  if (slot != nullptr) return slot.get();
  std::map<std::string, std::string> labels = {{"grpc_type", type},
                                               {"grpc_service", std::string(service)},
                                               {"grpc_method", std::string(method)}};
  slot = std::make_unique<Method>();
  slot->handled_family = &handled_;
  slot->labels = labels;
  slot->started = &started_.Add(labels);
  slot->received = &received_.Add(labels);
  slot->sent = &sent_.Add(labels);
  slot->seconds = &seconds_.Add(labels, Buckets());
  return slot.get();
}

void GrpcMethodMetrics::Started(Method* method) { method->started->Increment(); }
void GrpcMethodMetrics::Received(Method* method) { method->received->Increment(); }
void GrpcMethodMetrics::Sent(Method* method) { method->sent->Increment(); }

void GrpcMethodMetrics::Handled(Method* method, grpc::StatusCode code, double seconds) {
  int index = static_cast<int>(code);
  if (index < 0 || index >= kCodes) index = static_cast<int>(grpc::StatusCode::UNKNOWN);
  prometheus::Counter* counter = method->handled[index].load(std::memory_order_acquire);
  if (counter == nullptr) {
    auto labels = method->labels;
    labels["grpc_code"] = CodeName(index);
    counter = &method->handled_family->Add(labels);  // Same counter for the same labels.
    method->handled[index].store(counter, std::memory_order_release);
  }
  counter->Increment();
  method->seconds->Observe(seconds);
}

GrpcClientMetrics::Call GrpcClientMetrics::Start(Method* method) {
  Started(method);
  Sent(method);
  Call call;
  call.method_ = method;
  call.start_ = std::chrono::steady_clock::now();
  return call;
}

void GrpcClientMetrics::Call::Done(grpc::StatusCode code) const {
  if (code == grpc::StatusCode::OK) Received(method_);
  Handled(method_, code,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
}

void MetricsInterceptor::Intercept(grpc::experimental::InterceptorBatchMethods* methods) {
  using grpc::experimental::InterceptionHookPoints;
  if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
    GrpcMethodMetrics::Started(method_);
  }
  if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
    GrpcMethodMetrics::Received(method_);
  }
  if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
    GrpcMethodMetrics::Sent(method_);
  }
  if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    GrpcMethodMetrics::Handled(method_, methods->GetSendStatus().error_code(), seconds);
  }
  methods->Proceed();
}

}  // namespace policy::metrics
