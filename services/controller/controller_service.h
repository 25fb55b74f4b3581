// The controller service's gRPC handlers (callback API). Handlers are thin: they resolve the
// tenant from the `x-api-key` metadata (ApiKeys), hand the request to the QueryEngine on a
// worker thread (the engine makes blocking outbound calls; gRPC's callback threads must
// not block), and stream the engine's events back through a queued write reactor.
#pragma once

#include <memory>
#include <string>

#include "common/rpc/worker_pool.h"
#include "ctxstream/v1/controller.grpc.pb.h"
#include "services/controller/api_keys.h"
#include "services/controller/query_engine.h"
#include "services/controller/tenant_limits.h"

namespace ctx::controller {

class ControllerService final : public ctxstream::v1::Controller::CallbackService {
 public:
  // `engine` must outlive the service. workers: concurrent requests being orchestrated;
  // max_queued: requests waiting for a worker before RESOURCE_EXHAUSTED.
  ControllerService(QueryEngine* engine, ApiKeys keys, size_t workers = 16,
                    size_t max_queued = 256);

  grpc::ServerWriteReactor<ctxstream::v1::RegisterProgress>* RegisterContext(
      grpc::CallbackServerContext* context,
      const ctxstream::v1::RegisterContextRequest* request) override;
  grpc::ServerWriteReactor<ctxstream::v1::QueryEvent>* Query(
      grpc::CallbackServerContext* context, const ctxstream::v1::QueryRequest* request) override;
  grpc::ServerUnaryReactor* GetContext(grpc::CallbackServerContext* context,
                                       const ctxstream::v1::GetContextRequest* request,
                                       ctxstream::v1::ContextInfo* response) override;
  grpc::ServerUnaryReactor* ListContexts(grpc::CallbackServerContext* context,
                                         const ctxstream::v1::ListContextsRequest* request,
                                         ctxstream::v1::ListContextsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteContext(
      grpc::CallbackServerContext* context,
      const ctxstream::v1::ControllerDeleteContextRequest* request,
      ctxstream::v1::ControllerDeleteContextResponse* response) override;

 private:
  // The tenant of the call, or UNAUTHENTICATED.
  absl::StatusOr<std::string> Tenant(grpc::CallbackServerContext* context) const;

  QueryEngine* engine_;
  ApiKeys keys_;
  TenantLimits limits_{TenantLimits::OptionsFromFlags()};  // per-tenant quotas (flags)
  rpc::WorkerPool pool_;
};

}  // namespace ctx::controller
