// Test-side probes of the standard gRPC services every ctxstream server exposes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "grpcpp/channel.h"

namespace ctx::testing {

std::shared_ptr<grpc::Channel> InsecureChannel(const std::string& address);

// grpc.health.v1.Health/Check for `service` ("" = the whole server); returns the
// ServingStatus enum value (1 = SERVING) or -1 if the call failed.
int HealthStatus(const std::shared_ptr<grpc::Channel>& channel, const std::string& service = "");

// Service names listed by grpc.reflection.v1alpha (list_services), parsed without a
// generated copy of reflection.proto (libgrpc++_reflection already owns that package).
std::vector<std::string> ReflectionServices(const std::shared_ptr<grpc::Channel>& channel);

}  // namespace ctx::testing
