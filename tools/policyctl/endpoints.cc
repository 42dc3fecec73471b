// policyctl endpoints: the registry region routes over, and its health.
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tools/policyctl/cli.h"

namespace policy::policyctl {
namespace {

void PrintEndpoint(const region::v1::Endpoint& e) {
  std::printf("%s  %s  %s  %s  zdr=%d private=%d cached=%d  priority %d  %s  [%s]%s\n",
              e.id().c_str(), region::v1::Residency_Name(e.residency()).c_str(), e.region().c_str(),
              e.base_url().c_str(), e.capabilities().zero_data_retention(),
              e.capabilities().private_link(), e.capabilities().cached(), e.priority(),
              region::v1::Provider_Name(e.provider()).c_str(),
              absl::StrJoin(e.models(), ",").c_str(), e.enabled() ? "" : "  (disabled)");
}

}  // namespace

int Endpoints(const Invocation& in) {
  if (in.words.empty()) return Usage("endpoints: list, create, update, delete or health");
  const std::string& verb = in.words[0];
  Global g;
  std::string id, region_name, residency, base_url, provider = "azure", deployment, models;
  bool zdr = false, private_link = false, cached = false, disabled = false;
  int64_t priority = 1, weight = 100;
  if (int rc = ParseFlags(in, g,
                          [&](config::Parser& p) {
                            p.AddString("id", &id, "the endpoint's id");
                            p.AddString("region", &region_name, "the provider's region name");
                            p.AddString("residency", &residency, "eu, us, apac or global");
                            p.AddString("base_url", &base_url, "https://host[:port][/path]");
                            p.AddString("provider", &provider, "azure or openai");
                            p.AddString("deployment", &deployment,
                                        "Azure's deployment name; required with --provider=azure "
                                        "(the default)");
                            p.AddString("models", &models, "comma-separated models served");
                            p.AddBool("zdr", &zdr, "zero data retention");
                            p.AddBool("private_link", &private_link, "reached over a private link");
                            p.AddBool("cached", &cached, "the provider caches prompts");
                            p.AddBool("disabled", &disabled, "registered but not used");
                            p.AddInt("priority", &priority, "1 is first");
                            p.AddInt("weight", &weight, "0..1000, for weighted choice");
                          });
      rc != kOk) {
    return rc;
  }
  if (int rc = Int32Flags({{"priority", priority}, {"weight", weight}}); rc != kOk) return rc;
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  if (verb == "list") {
    region::v1::ListEndpointsResponse response;
    if (grpc::Status s = stub->ListEndpoints(Context(g, true).get(),
                                             region::v1::ListEndpointsRequest(), &response);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      for (const region::v1::Endpoint& e : response.endpoints()) PrintEndpoint(e);
    });
  }
  if (verb == "create") {
    if (int rc = RequiredFlags("endpoints create", {{"id", &id},
                                                    {"region", &region_name},
                                                    {"residency", &residency},
                                                    {"base_url", &base_url}});
        rc != kOk) {
      return rc;
    }
    region::v1::CreateEndpointRequest request;
    region::v1::Endpoint* e = request.mutable_endpoint();
    e->set_id(id);
    e->set_region(region_name);
    region::v1::Residency r;
    if (!ResidencyFlag(residency, &r)) return Usage("--residency must be eu, us, apac or global");
    e->set_residency(r);
    region::v1::Provider pr;
    if (!region::v1::Provider_Parse(absl::StrCat("PROVIDER_", absl::AsciiStrToUpper(provider)),
                                    &pr)) {
      return Usage("--provider must be azure or openai");
    }
    e->set_provider(pr);
    e->set_base_url(base_url);
    e->set_deployment(deployment);
    for (absl::string_view m : absl::StrSplit(models, ',', absl::SkipEmpty())) {
      e->add_models(std::string(m));
    }
    e->mutable_capabilities()->set_zero_data_retention(zdr);
    e->mutable_capabilities()->set_private_link(private_link);
    e->mutable_capabilities()->set_cached(cached);
    e->set_priority(static_cast<int32_t>(priority));
    e->set_weight(static_cast<int32_t>(weight));
    e->set_enabled(!disabled);
    region::v1::CreateEndpointResponse response;
    if (grpc::Status s = stub->CreateEndpoint(Context(g, true).get(), request, &response);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] { PrintEndpoint(response.endpoint()); });
  }
  if (verb == "update") {
    if (in.words.size() != 2) return Usage("endpoints update ID");
    // Read, changed by the flags given, written back with what was read as `expected`: an
    // update another admin made meanwhile is not undone (FAILED_PRECONDITION).
    region::v1::ListEndpointsResponse all;
    if (grpc::Status s =
            stub->ListEndpoints(Context(g, true).get(), region::v1::ListEndpointsRequest(), &all);
        !s.ok()) {
      return Failed(s);
    }
    const region::v1::Endpoint* found = WithId(all.endpoints(), in.words[1]);
    if (found == nullptr) return NoSuch("endpoint", in.words[1]);
    region::v1::UpdateEndpointRequest request;
    *request.mutable_expected() = *found;
    region::v1::Endpoint* e = request.mutable_endpoint();
    *e = *found;
    if (in.Given("region")) e->set_region(region_name);
    if (in.Given("residency")) {
      region::v1::Residency r;
      if (!ResidencyFlag(residency, &r)) {
        return Usage("--residency must be eu, us, apac or global");
      }
      e->set_residency(r);
    }
    if (in.Given("base_url")) e->set_base_url(base_url);
    if (in.Given("deployment")) e->set_deployment(deployment);
    if (in.Given("models")) {
      e->clear_models();
      for (absl::string_view m : absl::StrSplit(models, ',', absl::SkipEmpty())) {
        e->add_models(std::string(m));
      }
    }
    if (in.Given("zdr")) e->mutable_capabilities()->set_zero_data_retention(zdr);
    if (in.Given("private_link")) e->mutable_capabilities()->set_private_link(private_link);
    if (in.Given("cached")) e->mutable_capabilities()->set_cached(cached);
    if (in.Given("priority")) e->set_priority(static_cast<int32_t>(priority));
    if (in.Given("weight")) e->set_weight(static_cast<int32_t>(weight));
    if (in.Given("disabled")) e->set_enabled(!disabled);
    region::v1::UpdateEndpointResponse response;
    if (grpc::Status s = stub->UpdateEndpoint(Context(g, true).get(), request, &response);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] { PrintEndpoint(response.endpoint()); });
  }
  if (verb == "delete") {
    if (in.words.size() != 2) return Usage("endpoints delete ID");
    region::v1::DeleteEndpointRequest request;
    request.set_id(in.words[1]);
    region::v1::DeleteEndpointResponse response;
    if (grpc::Status s = stub->DeleteEndpoint(Context(g, true).get(), request, &response);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] { std::printf("deleted %s\n", in.words[1].c_str()); });
  }
  if (verb == "health") {
    region::v1::GetHealthReportResponse response;
    if (grpc::Status s = stub->GetHealthReport(Context(g, true).get(),
                                               region::v1::GetHealthReportRequest(), &response);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      std::printf("%llu requests, %llu blocked, %llu failovers (rate %.4f)\n",
                  static_cast<unsigned long long>(response.requests()),
                  static_cast<unsigned long long>(response.blocked()),
                  static_cast<unsigned long long>(response.failovers()), response.failover_rate());
      for (const region::v1::EndpointHealth& h : response.endpoints()) {
        std::printf(
            "%s  %s  latency %lld us  %llu routed, %llu ok, %llu failed, %llu trips withheld\n",
            h.endpoint().id().c_str(), region::v1::BreakerState_Name(h.breaker_state()).c_str(),
            static_cast<long long>(h.latency().seconds() * 1'000'000 + h.latency().nanos() / 1000),
            static_cast<unsigned long long>(h.routed()),
            static_cast<unsigned long long>(h.successes()),
            static_cast<unsigned long long>(h.failures()),
            static_cast<unsigned long long>(h.trips_withheld()));
      }
    });
  }
  return Usage(absl::StrCat("endpoints: unknown verb '", verb, "'"));
}

}  // namespace policy::policyctl
