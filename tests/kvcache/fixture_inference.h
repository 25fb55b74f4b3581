// TEST FIXTURE, not the inference service: an in-process gRPC server answering Inference
// GetModelInfo and Prefill with KV computed by ctx::model in this process, so kvcache's
// Ingest can be tested while services/inference is developed separately. It exports raw F32
// chunks exactly as KvCache::Export lays them out ([layer][K|V][T][C]).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/model/model.h"
#include "ctxstream/v1/inference.grpc.pb.h"
#include "grpcpp/server.h"

namespace ctx::kvcache::testing {

class FixtureInference final : public ctxstream::v1::Inference::Service {
 public:
  explicit FixtureInference(const model::Model* model) : model_(model) {}

  grpc::Status GetModelInfo(grpc::ServerContext* context,
                            const ctxstream::v1::GetModelInfoRequest* request,
                            ctxstream::v1::ModelInfo* response) override;
  grpc::Status Prefill(grpc::ServerContext* context, const ctxstream::v1::PrefillRequest* request,
                       grpc::ServerWriter<ctxstream::v1::PrefillResponse>* writer) override;

  std::atomic<int> prefill_calls{0};
  std::atomic<int> prefilled_tokens{0};

 private:
  const model::Model* model_;
};

// Serves `service` on 127.0.0.1:<ephemeral>; address() gives host:port.
class FixtureServer {
 public:
  explicit FixtureServer(grpc::Service* service);
  ~FixtureServer();
  const std::string& address() const { return address_; }

 private:
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

// The bundled tiny-llama, loaded once per test process.
const model::Model& TinyLlama();

}  // namespace ctx::kvcache::testing
