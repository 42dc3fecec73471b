#ifndef POLICY_SERVICES_EDGE_FAKE_DOWNSTREAM_H_
#define POLICY_SERVICES_EDGE_FAKE_DOWNSTREAM_H_

// For tests only: the edge's downstream services as a script.
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "services/edge/downstream.h"

namespace policy::edge {

// The five services scripted: each method records its request and its deadline, then answers
// with its status and, when OK, its response; inline, from a thread of its own when `async`,
// or when the test releases it (`held`).
class FakeDownstream final : public Downstream {
 public:
  ~FakeDownstream() override {
    for (std::thread& t : threads_) t.join();
  }

  void VerifyKey(grpc::ClientContext* context, const keys::v1::VerifyKeyRequest* request,
                 keys::v1::VerifyKeyResponse* response, Done done) override {
    Answer(context, "keys.VerifyKey", *request, &verify_request, response, verify_response,
           verify_status, std::move(done));
  }
  void Check(grpc::ClientContext* context, const authz::v1::CheckRequest* request,
             authz::v1::CheckResponse* response, Done done) override {
    Answer(context, "authz.Check", *request, &check_request, response, check_response, check_status,
           std::move(done));
  }
  void ReportUsage(grpc::ClientContext* context, const authz::v1::ReportUsageRequest* request,
                   authz::v1::ReportUsageResponse* response, Done done) override {
    Answer(context, "authz.ReportUsage", *request, &usage_request, response, usage_response,
           usage_status, std::move(done));
  }
  void Redact(grpc::ClientContext* context, const pii::v1::RedactRequest* request,
              pii::v1::RedactResponse* response, Done done) override {
    Answer(context, "pii.Redact", *request, &redact_request, response, redact_response,
           NextStatus(redact_statuses, redact_status), std::move(done));
  }
  void Route(grpc::ClientContext* context, const region::v1::RouteRequest* request,
             region::v1::RouteResponse* response, Done done) override {
    Answer(context, "region.Route", *request, &route_request, response, route_response,
           route_status, std::move(done));
  }
  void ReportOutcome(grpc::ClientContext* context, const region::v1::ReportOutcomeRequest* request,
                     region::v1::ReportOutcomeResponse* response, Done done) override {
    Answer(context, "region.ReportOutcome", *request, &outcome_request, response,
           region::v1::ReportOutcomeResponse(), outcome_status, std::move(done));
  }
  void Append(grpc::ClientContext* context, const audit::v1::AppendRequest* request,
              audit::v1::AppendResponse* response, Done done) override {
    Answer(context, "audit.Append", *request, &append_request, response, append_response,
           NextStatus(append_statuses, append_status), std::move(done));
  }
  void GetEntry(grpc::ClientContext* context, const audit::v1::GetEntryRequest* request,
                audit::v1::GetEntryResponse* response, Done done) override {
    Answer(context, "audit.GetEntry", *request, &get_entry_request, response, get_entry_response,
           get_entry_status, std::move(done));
  }

  // The deadline each call carried, by call name ("authz.Check"), the latest call's.
  std::map<std::string, std::chrono::system_clock::time_point> deadlines() {
    absl::MutexLock lock(&mu_);
    return deadlines_;
  }

  // Calls named here ("authz.Check") are recorded at once but answered only by ReleaseHeld.
  std::set<std::string> held;
  // Answers the held calls made so far, from the calling thread, in the order they came.
  void ReleaseHeld() {
    std::vector<std::function<void()>> answers;
    {
      absl::MutexLock lock(&mu_);
      answers.swap(held_answers_);
    }
    for (std::function<void()>& answer : answers) answer();
  }

  // The calls made so far, in order.
  std::vector<std::string> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

  bool async = false;
  grpc::Status verify_status, check_status, usage_status, redact_status, route_status,
      outcome_status, append_status, get_entry_status;
  // When not empty, audit.Append answers with the first of these (taken off), not
  // append_status.
  std::deque<grpc::Status> append_statuses;
  // The same for pii.Redact and redact_status.
  std::deque<grpc::Status> redact_statuses;
  keys::v1::VerifyKeyResponse verify_response;
  // keys answers for alice's project key in support-eu/production, scoped to chat completions.
  void VerifyAsAlicesProjectKey() {
    keys::v1::Key* key = verify_response.mutable_key();
    key->set_key_id("key-1");
    key->set_kind(keys::v1::KEY_KIND_PROJECT);
    key->mutable_owner()->set_type(keys::v1::PRINCIPAL_TYPE_MEMBER);
    key->mutable_owner()->set_id("alice@example.com");
    key->set_project("support-eu");
    key->set_environment(keys::v1::ENVIRONMENT_PRODUCTION);
    key->add_scopes("chat.completions");
  }
  authz::v1::CheckResponse check_response;
  authz::v1::ReportUsageResponse usage_response;
  pii::v1::RedactResponse redact_response;
  region::v1::RouteResponse route_response;
  audit::v1::AppendResponse append_response;
  audit::v1::GetEntryResponse get_entry_response;
  keys::v1::VerifyKeyRequest verify_request;
  authz::v1::CheckRequest check_request;
  authz::v1::ReportUsageRequest usage_request;
  pii::v1::RedactRequest redact_request;
  region::v1::RouteRequest route_request;
  region::v1::ReportOutcomeRequest outcome_request;
  audit::v1::AppendRequest append_request;
  audit::v1::GetEntryRequest get_entry_request;

 private:
  // The first of `queue` (taken off), or `otherwise` when it is empty.
  grpc::Status NextStatus(std::deque<grpc::Status>& queue, const grpc::Status& otherwise) {
    absl::MutexLock lock(&mu_);
    if (queue.empty()) return otherwise;
    grpc::Status next = queue.front();
    queue.pop_front();
    return next;
  }

  template <typename Request, typename Response>
  void Answer(grpc::ClientContext* context, const char* name, const Request& request, Request* seen,
              Response* response, const Response& scripted, const grpc::Status& status, Done done) {
    std::function<void()> run = [response, scripted, status, done = std::move(done)] {
      if (status.ok()) *response = scripted;
      done(status);
    };
    {
      absl::MutexLock lock(&mu_);
      calls_.push_back(name);
      deadlines_[name] = context->deadline();
      *seen = request;
      if (held.contains(name)) {
        held_answers_.push_back(std::move(run));
        return;
      }
      if (async) {
        threads_.emplace_back(std::move(run));
        return;
      }
    }
    run();
  }

  absl::Mutex mu_;
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::chrono::system_clock::time_point> deadlines_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> held_answers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_FAKE_DOWNSTREAM_H_
