// Standard per-RPC metrics for every gRPC server, collected by a server interceptor:
//   ctxstream_rpc_requests_total{service,method,code}   counter
//   ctxstream_rpc_duration_seconds{service,method}      histogram (SecondsBuckets)
//   ctxstream_rpc_in_flight{service,method}             gauge
// `service` and `method` come from the fixed set of registered methods, so label
// cardinality is bounded.
#pragma once

#include <memory>

#include "grpcpp/support/server_interceptor.h"

namespace ctx::obs {

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcMetricsInterceptor();

}  // namespace ctx::obs
