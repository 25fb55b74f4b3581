// TLS credentials for servers and clients from PEM files named by flags.
//   server: --tls_cert, --tls_key (both or neither); --tls_ca additionally requires and
//           verifies client certificates (mutual TLS).
//   client: --client_tls_ca (trust roots; enables TLS), --client_tls_cert/--client_tls_key
//           (our certificate, for mutual TLS).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace ctx::rpc {

// Reads a whole file; NotFound / PermissionDenied name the path and the flag.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& flag);

// Insecure credentials when no TLS flag is set.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFromFlags();
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFromFlags();

}  // namespace ctx::rpc
