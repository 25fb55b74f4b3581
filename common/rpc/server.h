// The server core every ctxstream service binary runs on: flags, TLS, gRPC health and
// reflection, Prometheus /metrics with per-RPC metrics, logging, and a graceful, bounded
// shutdown on SIGTERM/SIGINT.
//
//   int main(int argc, char** argv) {
//     ctx::rpc::ServerMain server_main("inference", argc, argv);
//     InferenceService service(...);
//     return server_main.Serve({&service});
//   }
//
// Flags (declared in server.cc and tls.cc): --listen, --metrics_listen,
// --max_message_bytes, --drain_seconds, --tls_cert/--tls_key/--tls_ca, --log_level,
// --log_format. When the server is up it prints one line to stdout:
//   ctxstream-<name> ready grpc=<host:port> metrics=<host:port>
// which scripts and tests use to learn ephemeral ports (--listen=127.0.0.1:0).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "grpcpp/impl/service_type.h"

namespace ctx::rpc {

// Default addresses per service (used when --listen / --metrics_listen are empty).
struct ServiceDefaults {
  std::string name;            // "inference", "kvcache", "compressor", "controller"
  std::string listen;          // e.g. "0.0.0.0:50051"
  std::string metrics_listen;  // e.g. "0.0.0.0:9461"
};

ServiceDefaults DefaultsFor(const std::string& name);

class ServerMain {
 public:
  // Parses flags, installs the SIGTERM/SIGINT handler (the signal is then taken by Serve,
  // whichever thread the kernel delivers it to), and sets up logging. Exits with status 2
  // and a one-line message on bad flags.
  ServerMain(const std::string& name, int argc, char** argv);

  // Prints "ctxstream-<name>: error: <message>" to stderr and returns 1 (for main()).
  int Fail(const absl::Status& status) const;

  // Runs hooks when shutdown starts, before draining (e.g. to cancel queued work).
  void OnShutdown(std::function<void()> hook) { shutdown_hooks_.push_back(std::move(hook)); }

  // Starts serving `services`, waits for SIGTERM/SIGINT, drains for at most
  // --drain_seconds, and ends the process. Returns (for main) 0, or 1 if the server
  // could not start (port in use, bad TLS files, metrics port in use).
  int Serve(const std::vector<grpc::Service*>& services);

  const std::string& name() const { return defaults_.name; }

 private:
  ServiceDefaults defaults_;
  std::vector<std::function<void()>> shutdown_hooks_;
};

}  // namespace ctx::rpc
