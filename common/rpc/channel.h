// Outbound gRPC channels with the project's limits and TLS settings (--client_tls_*).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/channel.h"

namespace ctx::rpc {

// A channel to `target` ("host:port" or "dns:///name:port") with the max message size
// of this process (--max_message_bytes) and credentials from the --client_tls_* flags.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target);

}  // namespace ctx::rpc
