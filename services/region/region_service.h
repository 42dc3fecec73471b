#ifndef POLICY_SERVICES_REGION_REGION_SERVICE_H_
#define POLICY_SERVICES_REGION_REGION_SERVICE_H_

#include "common/clock/clock.h"
#include "common/server/arena_allocator.h"
#include "common/server/blocking_pool.h"
#include "policy/region/v1/region.grpc.pb.h"
#include "services/region/endpoint_registry.h"
#include "services/region/endpoint_store.h"
#include "services/region/registry_sync.h"

namespace policy::region {

// policy.region.v1.RegionService over gRPC: translation only. Route, ReportOutcome and
// GetHealthReport answer from memory on gRPC's thread; the registry's administration goes to
// the store on the blocking pool (which writes each change's ledger record with it, by the
// request's actor), then reloads this replica's registry at once.
class RegionService final : public v1::RegionService::CallbackService {
 public:
  // Route fails closed (UNAVAILABLE) while the registry was last synchronised more than
  // `max_staleness` ago (InfiniteDuration: never, for a store only this process changes).
  RegionService(EndpointRegistry* registry, EndpointStore* store, RegistrySync* sync,
                server::BlockingPool* pool, Clock* clock, absl::Duration max_staleness,
                absl::Duration convergence_bound);

  grpc::ServerUnaryReactor* Route(grpc::CallbackServerContext* context,
                                  const v1::RouteRequest* request,
                                  v1::RouteResponse* response) override;
  grpc::ServerUnaryReactor* ReportOutcome(grpc::CallbackServerContext* context,
                                          const v1::ReportOutcomeRequest* request,
                                          v1::ReportOutcomeResponse* response) override;
  grpc::ServerUnaryReactor* GetHealthReport(grpc::CallbackServerContext* context,
                                            const v1::GetHealthReportRequest* request,
                                            v1::GetHealthReportResponse* response) override;
  grpc::ServerUnaryReactor* CreateEndpoint(grpc::CallbackServerContext* context,
                                           const v1::CreateEndpointRequest* request,
                                           v1::CreateEndpointResponse* response) override;
  grpc::ServerUnaryReactor* UpdateEndpoint(grpc::CallbackServerContext* context,
                                           const v1::UpdateEndpointRequest* request,
                                           v1::UpdateEndpointResponse* response) override;
  grpc::ServerUnaryReactor* DeleteEndpoint(grpc::CallbackServerContext* context,
                                           const v1::DeleteEndpointRequest* request,
                                           v1::DeleteEndpointResponse* response) override;
  grpc::ServerUnaryReactor* ListEndpoints(grpc::CallbackServerContext* context,
                                          const v1::ListEndpointsRequest* request,
                                          v1::ListEndpointsResponse* response) override;

 private:
  EndpointRegistry* const registry_;
  EndpointStore* const store_;
  RegistrySync* const sync_;
  server::BlockingPool* const pool_;
  Clock* const clock_;
  const absl::Duration max_staleness_;
  const absl::Duration convergence_bound_;
  // Route responses list many candidates: each call's messages live on one arena.
  server::ArenaMessageAllocator<v1::RouteRequest, v1::RouteResponse> route_allocator_;
};

}  // namespace policy::region

#endif  // POLICY_SERVICES_REGION_REGION_SERVICE_H_
