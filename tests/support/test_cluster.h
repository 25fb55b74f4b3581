// The all-in-one cluster for end-to-end tests: inference, kvcache (memory store), compressor
// and controller on ephemeral loopback ports with the bundled models, like
// scripts/quickstart.sh but disposable.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ctxstream/v1/controller.grpc.pb.h"
#include "tests/support/child_process.h"

namespace ctx::testing {

// Registers `text` with the controller at `controller_address` (plaintext, no API key) through
// ctx::client::ControllerClient; the context id once its KV is ready, else the error with the
// stream's last progress message.
absl::StatusOr<std::string> RegisterContext(const std::string& controller_address,
                                            const std::string& text, double timeout_seconds = 240);

struct ClusterOptions {
  // Appended to each service's default flags (a later flag overrides an earlier one).
  std::vector<std::string> inference_args, kvcache_args, compressor_args, controller_args;
  bool with_compressor = true;  // false: the controller runs with --compressor= (no ctext)
};

struct TestCluster {
  explicit TestCluster(const ClusterOptions& options = {});

  // RegisterContext on this cluster's controller.
  absl::StatusOr<std::string> Register(const std::string& text,
                                       double timeout_seconds = 240) const {
    return RegisterContext(controller.grpc_address, text, timeout_seconds);
  }

  RunningService inference, kvcache, compressor, controller;
  std::unique_ptr<ctxstream::v1::Controller::Stub> stub;  // to controller, plaintext
};

// Reads a Query stream to its end into `events`; the stream's status. No Catch assertions, so
// callable from any thread. `ctx` without a deadline gets 240 s.
grpc::Status ReadQuery(ctxstream::v1::Controller::Stub& stub, grpc::ClientContext* ctx,
                       const ctxstream::v1::QueryRequest& req,
                       std::vector<ctxstream::v1::QueryEvent>* events);
// A Query that must succeed (Catch assertions): status OK, the plan first, the result last.
std::vector<ctxstream::v1::QueryEvent> QueryOk(ctxstream::v1::Controller::Stub& stub,
                                               const ctxstream::v1::QueryRequest& req,
                                               grpc::ClientContext* ctx = nullptr);

// Per-chunk levels of a query, -1 = text: the plan's (PlanLevels), the receiver's per-chunk
// decisions laid over `start` (ChunkLevels; chunks with neither are -2), and "a b c " for
// messages (JoinLevels).
std::vector<int> PlanLevels(const ctxstream::v1::Plan& plan);
std::vector<int> ChunkLevels(const std::vector<ctxstream::v1::QueryEvent>& events,
                             std::vector<int> start = {});
std::string JoinLevels(const std::vector<int>& levels);

}  // namespace ctx::testing
