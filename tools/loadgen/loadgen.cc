// gRPC load generator, closed loop (a fixed number of calls in flight) or open loop (--rate:
// calls at a fixed rate, latency counted from when each was due). Runs a service RPC and the
// empty Diagnostics/Ping RPC alternately against the same server, in the same process layout,
// and prints both achieved rates, their latency percentiles and the ratio: absolute numbers
// on a shared machine move from run to run, the ratio much less.
//
//   loadgen --target=127.0.0.1:50051 --rpc=keys.verify --duration=5s --concurrency=32
//   loadgen --target=127.0.0.1:50053 --rpc=pii.scan   (a 4 KiB prompt)
//   loadgen --target=127.0.0.1:50055 --rpc=audit.append   (durable appends)
//   loadgen --target=127.0.0.1:50054 --rpc=region.route   (100 endpoints registered)
//   loadgen --target=127.0.0.1:50056 --rpc=edge.decide --keys_target=... --region_target=...
//
// Measures and prints; never fails on a figure. Exit 1 only when calls fail.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/config/config.h"
#include "common/testing/support_ticket.h"
#include "common/tls/tls_options.h"
#include "grpcpp/grpcpp.h"
#include "policy/audit/v1/audit.grpc.pb.h"
#include "policy/authz/v1/authz.grpc.pb.h"
#include "policy/diag/v1/diagnostics.grpc.pb.h"
#include "policy/edge/v1/edge.grpc.pb.h"
#include "policy/keys/v1/keys.grpc.pb.h"
#include "policy/pii/v1/pii.grpc.pb.h"
#include "policy/region/v1/region.grpc.pb.h"

namespace policy::loadgen {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string target = "127.0.0.1:50051";
  tls::TlsOptions tls;
  std::string rpc = "keys.verify";
  absl::Duration duration = absl::Seconds(5);
  absl::Duration warmup = absl::Seconds(1);
  int64_t concurrency = 32;
  int64_t channels = 2;
  int64_t rounds = 3;
  // Calls per second, open loop; 0: closed loop (each of `concurrency` slots issues its next
  // call when the last one completes).
  int64_t rate = 0;
  // authz.check: who asks to call which model in which project.
  std::string principal = "alice";
  std::string project = "support-eu";
  std::string model = "gpt-4o";
  // edge.decide: where to create the key and register the endpoints it uses.
  std::string keys_target;
  std::string region_target;
};

// Issues one call and reports its status; the callback may run on any thread.
using Call = std::function<void(std::function<void(const grpc::Status&)>)>;

struct PhaseResult {
  std::string name;
  double qps = 0;
  int64_t calls = 0;
  int64_t errors = 0;
  int64_t skipped = 0;  // Open loop: calls due while every slot was busy (not issued).
  std::string first_error;
  std::vector<int64_t> latencies_ns;

  double Percentile(double q) const {
    if (latencies_ns.empty()) return 0;
    size_t i = std::min(latencies_ns.size() - 1, static_cast<size_t>(q * latencies_ns.size()));
    return static_cast<double>(latencies_ns[i]) / 1000.0;
  }
};

// What one in-flight slot recorded; a slot runs one call at a time, so it needs no lock.
struct Slot {
  std::vector<int64_t> latencies;
  int64_t errors = 0;
  std::string first_error;

  void Record(Clock::time_point from, Clock::time_point to, const grpc::Status& status) {
    latencies.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count());
    if (!status.ok() && errors++ == 0) {
      first_error = absl::StrCat(status.error_code(), ": ", status.error_message());
    }
  }
};

// The slots' records as one phase's result over `duration`.
PhaseResult Collect(const std::string& name, std::vector<Slot>& slots, absl::Duration duration) {
  PhaseResult result;
  result.name = name;
  for (Slot& slot : slots) {
    result.latencies_ns.insert(result.latencies_ns.end(), slot.latencies.begin(),
                               slot.latencies.end());
    result.errors += slot.errors;
    if (result.first_error.empty()) result.first_error = slot.first_error;
  }
  std::sort(result.latencies_ns.begin(), result.latencies_ns.end());
  result.calls = static_cast<int64_t>(result.latencies_ns.size());
  result.qps = static_cast<double>(result.calls) / absl::ToDoubleSeconds(duration);
  return result;
}

// Keeps `concurrency` calls in flight until `duration` passes; records calls that start
// after the warm-up.
PhaseResult RunPhase(const std::string& name, const std::vector<Call>& calls_by_slot,
                     absl::Duration warmup, absl::Duration duration) {
  const size_t n = calls_by_slot.size();
  std::vector<Slot> slots(n);
  const Clock::time_point measure_from = Clock::now() + absl::ToChronoNanoseconds(warmup);
  const Clock::time_point stop_at = measure_from + absl::ToChronoNanoseconds(duration);
  absl::Mutex mu;
  size_t running = n;
  std::function<void(size_t)> issue = [&](size_t i) {
    const Clock::time_point start = Clock::now();
    if (start >= stop_at) {
      absl::MutexLock lock(&mu);
      --running;
      return;
    }
    calls_by_slot[i]([&, i, start](const grpc::Status& status) {
      const Clock::time_point end = Clock::now();
      if (start >= measure_from && end <= stop_at) slots[i].Record(start, end, status);
      issue(i);
    });
  };
  for (size_t i = 0; i < n; ++i) issue(i);
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](size_t* r) { return *r == 0; }, &running));
  }
  return Collect(name, slots, duration);
}

// Open loop: issues a call every 1/`rate` seconds, whatever the earlier calls are doing, on
// whichever slot is free (a call due while all are busy is counted as skipped). A call's
// latency runs from when it was due, so a stalled server shows in the percentiles rather than
// in fewer calls.
PhaseResult RunOpenLoop(const std::string& name, const std::vector<Call>& calls_by_slot,
                        int64_t rate, absl::Duration warmup, absl::Duration duration) {
  const size_t n = calls_by_slot.size();
  std::vector<Slot> slots(n);
  absl::Mutex mu;
  std::vector<size_t> free_slots;
  for (size_t i = n; i > 0; --i) free_slots.push_back(i - 1);
  size_t in_flight = 0;
  int64_t skipped = 0;
  const Clock::time_point start = Clock::now();
  const Clock::time_point measure_from = start + absl::ToChronoNanoseconds(warmup);
  const Clock::time_point stop_at = measure_from + absl::ToChronoNanoseconds(duration);
  const auto interval = std::chrono::nanoseconds(1'000'000'000 / rate);
  for (int64_t k = 0;; ++k) {
    const Clock::time_point due = start + k * interval;
    if (due >= stop_at) break;
    std::this_thread::sleep_until(due);
    size_t i;
    {
      absl::MutexLock lock(&mu);
      if (free_slots.empty()) {
        if (due >= measure_from) ++skipped;
        continue;
      }
      i = free_slots.back();
      free_slots.pop_back();
      ++in_flight;
    }
    calls_by_slot[i]([&, i, due](const grpc::Status& status) {
      const Clock::time_point end = Clock::now();
      if (due >= measure_from) slots[i].Record(due, end, status);
      absl::MutexLock lock(&mu);
      free_slots.push_back(i);
      --in_flight;
    });
  }
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](size_t* f) { return *f == 0; }, &in_flight));
  }
  PhaseResult result = Collect(name, slots, duration);
  result.skipped = skipped;
  return result;
}

std::vector<std::shared_ptr<grpc::Channel>> Channels(const Options& o) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int64_t i = 0; i < o.channels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("policy.loadgen.channel", static_cast<int>(i));  // Distinct connections.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels.push_back(grpc::CreateCustomChannel(o.target, tls::ChannelCredentials(o.tls), args));
  }
  return channels;
}

// Starts one call: `start(context, response, callback)` hands them to the stub. The context
// and the response live until the call completes and are destroyed before `done` runs. The
// order matters: a ClientContext holds a reference to its channel, and Main destroys the
// stubs and channels as soon as the last phase has seen every `done`. A context destroyed
// after `done` (as gRPC destroys a callback's captures) could drop a channel's last reference
// on gRPC's callback thread, whose ~Channel then frees the completion queue that very thread
// still polls: a double free.
template <typename Response, typename Start>
void StartCall(const Start& start, std::function<void(const grpc::Status&)> done) {
  struct State {
    grpc::ClientContext context;
    google::protobuf::Arena arena;
    Response* response = google::protobuf::Arena::CreateMessage<Response>(&arena);
  };
  auto* state = new State;
  start(&state->context, state->response, [state, done = std::move(done)](grpc::Status s) {
    delete state;
    done(s);
  });
}

// Every in-flight slot owns its stub-bound call closure. The closures, which outlive every
// call, own the requests.
std::vector<Call> PingCalls(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                            int64_t concurrency) {
  auto request = std::make_shared<diag::v1::PingRequest>();
  std::vector<Call> calls;
  for (int64_t i = 0; i < concurrency; ++i) {
    auto stub = std::shared_ptr<diag::v1::Diagnostics::Stub>(
        diag::v1::Diagnostics::NewStub(channels[i % channels.size()]));
    calls.push_back([stub, request](std::function<void(const grpc::Status&)> done) {
      StartCall<diag::v1::PingResponse>(
          [&](grpc::ClientContext* context, diag::v1::PingResponse* response, auto callback) {
            stub->async()->Ping(context, request.get(), response, std::move(callback));
          },
          std::move(done));
    });
  }
  return calls;
}

absl::StatusOr<std::vector<Call>> KeysVerifyCalls(
    const std::vector<std::shared_ptr<grpc::Channel>>& channels, int64_t concurrency) {
  // One key to verify, created for the run (the server must accept CreateKey from us).
  auto admin = keys::v1::KeyService::NewStub(channels[0]);
  keys::v1::CreateKeyRequest create;
  create.set_kind(keys::v1::KEY_KIND_PROJECT);
  create.mutable_owner()->set_type(keys::v1::PRINCIPAL_TYPE_MEMBER);
  create.mutable_owner()->set_id("loadgen");
  create.set_project("loadgen");
  create.set_environment(keys::v1::ENVIRONMENT_DEVELOPMENT);
  create.add_scopes("chat.completions");
  keys::v1::CreateKeyResponse created;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status status = admin->CreateKey(&context, create, &created);
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat("CreateKey failed: ", status.error_message()));
  }
  auto request = std::make_shared<keys::v1::VerifyKeyRequest>();
  request->set_secret(created.secret());
  std::vector<Call> calls;
  for (int64_t i = 0; i < concurrency; ++i) {
    auto stub = std::shared_ptr<keys::v1::KeyService::Stub>(
        keys::v1::KeyService::NewStub(channels[i % channels.size()]));
    calls.push_back([stub, request](std::function<void(const grpc::Status&)> done) {
      StartCall<keys::v1::VerifyKeyResponse>(
          [&](grpc::ClientContext* context, keys::v1::VerifyKeyResponse* response, auto callback) {
            stub->async()->VerifyKey(context, request.get(), response, std::move(callback));
          },
          std::move(done));
    });
  }
  return calls;
}

std::vector<Call> AuthzCheckCalls(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                                  const Options& o) {
  auto request = std::make_shared<authz::v1::CheckRequest>();
  request->mutable_principal()->set_kind(authz::v1::PRINCIPAL_KIND_MEMBER);
  request->mutable_principal()->set_id(o.principal);
  request->set_project(o.project);
  request->set_action("chat.completions");
  request->set_model(o.model);
  request->set_estimated_tokens(100);
  std::vector<Call> calls;
  for (int64_t i = 0; i < o.concurrency; ++i) {
    auto stub = std::shared_ptr<authz::v1::AuthzService::Stub>(
        authz::v1::AuthzService::NewStub(channels[i % channels.size()]));
    calls.push_back([stub, request](std::function<void(const grpc::Status&)> done) {
      StartCall<authz::v1::CheckResponse>(
          [&](grpc::ClientContext* context, authz::v1::CheckResponse* response, auto callback) {
            stub->async()->Check(context, request.get(), response, std::move(callback));
          },
          std::move(done));
    });
  }
  return calls;
}

// pii.scan and pii.redact: one 4 KiB user message; redact uses placeholders, as a chat would.
// pii.restore: the same 4 KiB as an answer to restore with an empty mapping, which costs little
// more than carrying the text both ways: the transport's share of the other two.
std::vector<Call> PiiCalls(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                           int64_t concurrency, absl::string_view rpc) {
  auto scan = std::make_shared<pii::v1::ScanRequest>();
  auto message = scan->add_messages();
  message->set_role("user");
  message->set_content(testing::SupportTicket4k());
  auto redaction = std::make_shared<pii::v1::RedactRequest>();
  *redaction->add_messages() = *message;
  redaction->mutable_policy()->mutable_default_rule()->set_operator_(pii::v1::OPERATOR_PLACEHOLDER);
  auto restore = std::make_shared<pii::v1::RestoreRequest>();
  restore->set_text(message->content());
  std::vector<Call> calls;
  for (int64_t i = 0; i < concurrency; ++i) {
    auto stub = std::shared_ptr<pii::v1::PiiService::Stub>(
        pii::v1::PiiService::NewStub(channels[i % channels.size()]));
    if (rpc == "pii.restore") {
      calls.push_back([stub, restore](std::function<void(const grpc::Status&)> done) {
        StartCall<pii::v1::RestoreResponse>(
            [&](grpc::ClientContext* context, pii::v1::RestoreResponse* response, auto callback) {
              stub->async()->Restore(context, restore.get(), response, std::move(callback));
            },
            std::move(done));
      });
    } else if (rpc == "pii.redact") {
      calls.push_back([stub, redaction](std::function<void(const grpc::Status&)> done) {
        StartCall<pii::v1::RedactResponse>(
            [&](grpc::ClientContext* context, pii::v1::RedactResponse* response, auto callback) {
              stub->async()->Redact(context, redaction.get(), response, std::move(callback));
            },
            std::move(done));
      });
    } else {
      calls.push_back([stub, scan](std::function<void(const grpc::Status&)> done) {
        StartCall<pii::v1::ScanResponse>(
            [&](grpc::ClientContext* context, pii::v1::ScanResponse* response, auto callback) {
              stub->async()->Scan(context, scan.get(), response, std::move(callback));
            },
            std::move(done));
      });
    }
  }
  return calls;
}

// audit.append: an api_call entry like the edge records for each decision, with a request id
// unique to the call, in ledger loadgen/development. Each slot has one call in flight at a
// time, so it reuses its request.
std::vector<Call> AuditAppendCalls(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                                   int64_t concurrency) {
  const std::string run = absl::StrCat("loadgen-", absl::ToUnixMicros(absl::Now()));
  std::vector<Call> calls;
  for (int64_t i = 0; i < concurrency; ++i) {
    auto stub = std::shared_ptr<audit::v1::AuditService::Stub>(
        audit::v1::AuditService::NewStub(channels[i % channels.size()]));
    auto request = std::make_shared<audit::v1::AppendRequest>();
    audit::v1::EntryInput* entry = request->mutable_entry();
    entry->set_action(audit::v1::ACTION_API_CALL);
    entry->set_actor(absl::StrCat("member-", i, "@example.com"));
    entry->set_project("loadgen");
    entry->set_environment("development");
    entry->set_model("gpt-4o");
    entry->set_tokens(812);
    entry->mutable_latency()->set_nanos(1'400'000);
    entry->set_outcome(audit::v1::OUTCOME_SUCCESS);
    (*entry->mutable_metadata())["endpoint"] = "azure-westeurope";
    entry->set_content_hash(std::string(32, '\x5a'));
    auto sequence = std::make_shared<int64_t>(0);
    const std::string prefix = absl::StrCat(run, "-", i, "-");
    calls.push_back([stub, request, sequence,
                     prefix](std::function<void(const grpc::Status&)> done) {
      request->mutable_entry()->set_request_id(absl::StrCat(prefix, (*sequence)++));
      StartCall<audit::v1::AppendResponse>(
          [&](grpc::ClientContext* context, audit::v1::AppendResponse* response, auto callback) {
            stub->async()->Append(context, request.get(), response, std::move(callback));
          },
          std::move(done));
    });
  }
  return calls;
}

// Deletes, when the last copy goes, the endpoints that RegisterEndpoints created; the calls
// that need them hold a copy, so that a benchmark against a suite in use leaves its registry
// as it found it.
using EndpointRegistration = std::shared_ptr<const void>;

// Who the registry's audit ledger records as making loadgen's endpoint changes.
constexpr char kEndpointActor[] = "loadgen";

// Registers 100 endpoints (loadgen-ep-0..99: 25 per residency, mixed capabilities, three
// models each; ALREADY_EXISTS is fine) with the region service behind `channel`.
absl::StatusOr<EndpointRegistration> RegisterEndpoints(
    const std::shared_ptr<grpc::Channel>& channel) {
  namespace rv1 = region::v1;
  std::shared_ptr<rv1::RegionService::Stub> admin = rv1::RegionService::NewStub(channel);
  auto created_ids = std::make_shared<std::vector<std::string>>();
  EndpointRegistration registration(nullptr, [admin, created_ids](const void*) {
    for (const std::string& id : *created_ids) {
      rv1::DeleteEndpointRequest request;
      request.set_id(id);
      request.set_actor(kEndpointActor);
      rv1::DeleteEndpointResponse response;
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      if (grpc::Status s = admin->DeleteEndpoint(&context, request, &response); !s.ok()) {
        std::fprintf(stderr, "loadgen: DeleteEndpoint %s failed: %s\n", id.c_str(),
                     s.error_message().c_str());
      }
    }
  });
  const rv1::Residency residencies[] = {rv1::RESIDENCY_EU, rv1::RESIDENCY_US, rv1::RESIDENCY_APAC,
                                        rv1::RESIDENCY_GLOBAL};
  for (int i = 0; i < 100; ++i) {
    rv1::CreateEndpointRequest create;
    create.set_actor(kEndpointActor);
    rv1::Endpoint* e = create.mutable_endpoint();
    e->set_id(absl::StrCat("loadgen-ep-", i));
    e->set_region(absl::StrCat("region-", i % 13));
    e->set_provider(rv1::PROVIDER_AZURE);
    e->set_base_url(absl::StrCat("https://loadgen-ep-", i, ".openai.azure.com"));
    e->set_deployment("deployment");
    e->set_residency(residencies[i % 4]);
    e->mutable_capabilities()->set_zero_data_retention(i % 3 != 0);
    e->mutable_capabilities()->set_private_link(i % 2 == 0);
    e->mutable_capabilities()->set_cached(i % 5 == 0);
    e->add_models("gpt-4.1");
    e->add_models("gpt-4.1-mini");
    e->add_models(i % 2 == 0 ? "gpt-4o" : "o3");
    e->set_priority(1 + i % 3);
    e->set_weight(50 + i % 7 * 10);
    e->set_enabled(true);
    rv1::CreateEndpointResponse created;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status status = admin->CreateEndpoint(&context, create, &created);
    if (status.ok()) {
      created_ids->push_back(e->id());
    } else if (status.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      return absl::UnavailableError(
          absl::StrCat("CreateEndpoint failed: ", status.error_message()));
    }
  }
  return registration;
}

// region.route: the 100 endpoints above, then an EU request with PII for gpt-4o.
absl::StatusOr<std::vector<Call>> RegionRouteCalls(
    const std::vector<std::shared_ptr<grpc::Channel>>& channels, int64_t concurrency) {
  namespace rv1 = region::v1;
  absl::StatusOr<EndpointRegistration> registration = RegisterEndpoints(channels[0]);
  if (!registration.ok()) return registration.status();
  auto request = std::make_shared<rv1::RouteRequest>();
  request->set_residency(rv1::RESIDENCY_EU);
  request->set_data_class(pii::v1::DATA_CLASS_PII);
  request->set_model("gpt-4o");
  std::vector<Call> calls;
  for (int64_t i = 0; i < concurrency; ++i) {
    auto stub = std::shared_ptr<rv1::RegionService::Stub>(
        rv1::RegionService::NewStub(channels[i % channels.size()]));
    calls.push_back([stub, request,
                     registration = *registration](std::function<void(const grpc::Status&)> done) {
      StartCall<rv1::RouteResponse>(
          [&](grpc::ClientContext* context, rv1::RouteResponse* response, auto callback) {
            stub->async()->Route(context, request.get(), response, std::move(callback));
          },
          std::move(done));
    });
  }
  return calls;
}

// edge.decide: a key created for --principal in --project (development) through
// --keys_target, the 100 endpoints registered through --region_target, then one decision per
// call: the first KiB of the support ticket (an e-mail address, a phone number, a card and an
// IBAN) for --model with EU residency, each with a request id of its own so that each is
// recorded in the ledger.
absl::StatusOr<std::vector<Call>> EdgeDecideCalls(
    const std::vector<std::shared_ptr<grpc::Channel>>& channels, const Options& o) {
  if (o.keys_target.empty() || o.region_target.empty()) {
    return absl::InvalidArgumentError("edge.decide needs --keys_target and --region_target");
  }
  auto keys_stub = keys::v1::KeyService::NewStub(
      grpc::CreateChannel(o.keys_target, tls::ChannelCredentials(o.tls)));
  keys::v1::CreateKeyRequest create;
  create.set_kind(keys::v1::KEY_KIND_PROJECT);
  create.mutable_owner()->set_type(keys::v1::PRINCIPAL_TYPE_MEMBER);
  create.mutable_owner()->set_id(o.principal);
  create.set_project(o.project);
  create.set_environment(keys::v1::ENVIRONMENT_DEVELOPMENT);
  create.add_scopes("chat.completions");
  keys::v1::CreateKeyResponse created;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (grpc::Status s = keys_stub->CreateKey(&context, create, &created); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("CreateKey failed: ", s.error_message()));
  }
  absl::StatusOr<EndpointRegistration> registration =
      RegisterEndpoints(grpc::CreateChannel(o.region_target, tls::ChannelCredentials(o.tls)));
  if (!registration.ok()) return registration.status();
  const std::string run = absl::StrCat("loadgen-", absl::ToUnixMicros(absl::Now()));
  std::vector<Call> calls;
  for (int64_t i = 0; i < o.concurrency; ++i) {
    auto stub = std::shared_ptr<edge::v1::EdgeService::Stub>(
        edge::v1::EdgeService::NewStub(channels[i % channels.size()]));
    auto request = std::make_shared<edge::v1::DecideRequest>();
    request->set_api_key(created.secret());
    request->set_source_ip("10.0.0.1");
    request->set_model(o.model);
    pii::v1::ChatMessage* message = request->add_messages();
    message->set_role("user");
    message->set_content(testing::SupportTicket4k().substr(0, 1024));
    request->set_estimated_tokens(100);
    request->set_residency(region::v1::RESIDENCY_EU);
    auto sequence = std::make_shared<int64_t>(0);
    const std::string prefix = absl::StrCat(run, "-", i, "-");
    calls.push_back([stub, request, sequence, prefix,
                     registration = *registration](std::function<void(const grpc::Status&)> done) {
      request->set_request_id(absl::StrCat(prefix, (*sequence)++));
      StartCall<edge::v1::DecideResponse>(
          [&](grpc::ClientContext* context, edge::v1::DecideResponse* response, auto callback) {
            stub->async()->Decide(context, request.get(), response,
                                  [response, callback = std::move(callback)](grpc::Status s) {
                                    // A denial is an answer, but not the flow measured here.
                                    if (s.ok() && response->verdict() != edge::v1::VERDICT_ALLOW) {
                                      s = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                                       absl::StrCat("DENY ", response->reason()));
                                    }
                                    callback(std::move(s));
                                  });
          },
          std::move(done));
    });
  }
  return calls;
}

void Print(int round, const PhaseResult& r) {
  std::printf(
      "round %d  %-12s %9.0f calls/s  p50 %7.1f us  p99 %7.1f us  p99.9 %7.1f us  errors "
      "%lld%s%s%s\n",
      round, r.name.c_str(), r.qps, r.Percentile(0.50), r.Percentile(0.99), r.Percentile(0.999),
      static_cast<long long>(r.errors),
      r.skipped > 0 ? absl::StrCat("  skipped ", r.skipped, " (all slots busy)").c_str() : "",
      r.errors ? "  first: " : "", r.first_error.c_str());
  std::fflush(stdout);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int Main(int argc, char** argv) {
  // Debian's Abseil keeps mutex deadlock detection on; it slows every gRPC call.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Options o;
  config::Parser parser("loadgen");
  parser.AddString("target", &o.target, "server address host:port");
  parser.AddString("rpc", &o.rpc,
                   "RPC to load: keys.verify, authz.check, pii.scan, pii.redact, pii.restore, "
                   "audit.append, region.route or edge.decide");
  parser.AddString("principal", &o.principal, "authz.check and edge.decide: the member asking");
  parser.AddString("project", &o.project, "authz.check and edge.decide: the project");
  parser.AddString("model", &o.model, "authz.check and edge.decide: the model");
  parser.AddString("keys_target", &o.keys_target, "edge.decide: the keys service, for a key");
  parser.AddString("region_target", &o.region_target,
                   "edge.decide: the region service, for the endpoints");
  parser.AddDuration("duration", &o.duration, "measured time per phase");
  parser.AddDuration("warmup", &o.warmup, "unmeasured time before each phase");
  parser.AddInt("concurrency", &o.concurrency,
                "calls in flight (closed loop), or at most in flight (with --rate)");
  parser.AddInt("rate", &o.rate, "calls per second, open loop; 0: closed loop");
  parser.AddInt("channels", &o.channels, "connections to the server");
  parser.AddInt("rounds", &o.rounds, "ping/RPC phase pairs");
  o.tls.RegisterClient(parser);
  if (absl::Status s = parser.ParseProcess(argc, argv); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 2;
  }
  if (parser.help_requested()) {
    std::fputs(parser.Usage().c_str(), stdout);
    return 0;
  }
  if (o.rate < 0 || o.rate > 1'000'000) {
    std::fprintf(stderr, "rate must be between 0 and 1000000\n");
    return 2;
  }
  if (absl::Status s = o.tls.Validate(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 2;
  }
  if (o.concurrency < 1 || o.channels < 1 || o.rounds < 1) {
    std::fprintf(stderr, "concurrency, channels and rounds must be positive\n");
    return 2;
  }
  auto channels = Channels(o);
  std::vector<Call> ping = PingCalls(channels, o.concurrency);
  absl::StatusOr<std::vector<Call>> rpc;
  if (o.rpc == "keys.verify") {
    rpc = KeysVerifyCalls(channels, o.concurrency);
  } else if (o.rpc == "authz.check") {
    rpc = AuthzCheckCalls(channels, o);
  } else if (o.rpc == "pii.scan" || o.rpc == "pii.redact" || o.rpc == "pii.restore") {
    rpc = PiiCalls(channels, o.concurrency, o.rpc);
  } else if (o.rpc == "audit.append") {
    rpc = AuditAppendCalls(channels, o.concurrency);
  } else if (o.rpc == "region.route") {
    rpc = RegionRouteCalls(channels, o.concurrency);
  } else if (o.rpc == "edge.decide") {
    rpc = EdgeDecideCalls(channels, o);
  } else {
    std::fprintf(stderr,
                 "unknown --rpc=%s (known: keys.verify, authz.check, pii.scan, pii.redact, "
                 "pii.restore, audit.append, region.route, edge.decide)\n",
                 o.rpc.c_str());
    return 2;
  }
  if (!rpc.ok()) {
    std::fprintf(stderr, "%s\n", rpc.status().ToString().c_str());
    return 1;
  }
  if (o.rate > 0) {
    std::printf(
        "loadgen: target %s, open loop at %lld calls/s (at most %lld in flight) over %lld "
        "connections, %s per phase\n",
        o.target.c_str(), static_cast<long long>(o.rate), static_cast<long long>(o.concurrency),
        static_cast<long long>(o.channels), absl::FormatDuration(o.duration).c_str());
  } else {
    std::printf("loadgen: target %s, %lld in flight over %lld connections, %s per phase\n",
                o.target.c_str(), static_cast<long long>(o.concurrency),
                static_cast<long long>(o.channels), absl::FormatDuration(o.duration).c_str());
  }
  // The machine's speed drifts: rounds alternate which phase runs first, and each round's
  // ratio is taken between its own two phases, next to each other in time.
  std::vector<double> ping_qps, rpc_qps, round_ratios;
  int64_t errors = 0;
  for (int round = 1; round <= o.rounds; ++round) {
    auto run = [&](const std::string& name, const std::vector<Call>& calls) {
      PhaseResult result = o.rate > 0 ? RunOpenLoop(name, calls, o.rate, o.warmup, o.duration)
                                      : RunPhase(name, calls, o.warmup, o.duration);
      Print(round, result);
      errors += result.errors;
      return result;
    };
    PhaseResult p, r;
    if (round % 2 == 1) {
      p = run("ping", ping);
      r = run(o.rpc, *rpc);
    } else {
      r = run(o.rpc, *rpc);
      p = run("ping", ping);
    }
    ping_qps.push_back(p.qps);
    rpc_qps.push_back(r.qps);
    round_ratios.push_back(p.qps > 0 ? r.qps / p.qps : 0.0);
  }
  const double ping_median = Median(ping_qps), rpc_median = Median(rpc_qps);
  std::printf(
      "median   ping %.0f calls/s, %s %.0f calls/s, ratio %.3f (median of the rounds' "
      "ratios %.3f)\n",
      ping_median, o.rpc.c_str(), rpc_median, ping_median > 0 ? rpc_median / ping_median : 0.0,
      Median(round_ratios));
  return errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace policy::loadgen

int main(int argc, char** argv) { return policy::loadgen::Main(argc, argv); }
