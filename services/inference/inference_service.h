// The inference service's gRPC handlers (callback API): thin translations between the proto
// contract (proto/ctxstream/v1/inference.proto) and the engine (common/model, common/tokenizer,
// common/codec). Prefill and Generate run on a WorkerPool, never on gRPC threads; each reactor
// queues its outgoing messages and writes them one at a time. See README.md in this folder.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/codec/codec.h"
#include "common/model/layer0_kv.h"
#include "common/model/model.h"
#include "common/model/perf.h"
#include "common/rpc/worker_pool.h"
#include "common/tokenizer/tokenizer_api.h"
#include "ctxstream/v1/inference.grpc.pb.h"

namespace ctx::inference {

// The tokenizer interface (common/tokenizer/tokenizer_api.h).
using tokenizer::StreamDecoderApi;
using tokenizer::TokenizerApi;

struct ServiceOptions {
  int compute_threads = 1;  // worker threads running forward passes
  int max_queue = 64;       // requests waiting for a worker before RESOURCE_EXHAUSTED
  // Per Generate call: bytes of caller KV parts received but not yet taken by the worker. At
  // or above it the reactor stops reading the stream until the worker catches up, so gRPC's
  // flow control holds the sender back (the queue exceeds it by at most one message).
  size_t max_inbound_kv_bytes = size_t{64} << 20;
};

class InferenceService final : public ctxstream::v1::Inference::CallbackService {
 public:
  InferenceService(std::unique_ptr<model::Model> model, std::unique_ptr<TokenizerApi> tokenizer,
                   codec::KvCodec codec, ServiceOptions options);
  ~InferenceService() override;

  // Start-up speed measurement (reported by GetModelInfo once set). Thread-safe.
  void SetPerf(const model::PerfReport& perf);
  // Cancels all requests in progress (shutdown hook).
  void CancelAll();

  const model::Model& model() const;

  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* ctx,
                                         const ctxstream::v1::GetModelInfoRequest* request,
                                         ctxstream::v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* ctx,
                                     const ctxstream::v1::TokenizeRequest* request,
                                     ctxstream::v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* ctx,
                                       const ctxstream::v1::DetokenizeRequest* request,
                                       ctxstream::v1::DetokenizeResponse* response) override;
  grpc::ServerWriteReactor<ctxstream::v1::PrefillResponse>* Prefill(
      grpc::CallbackServerContext* ctx, const ctxstream::v1::PrefillRequest* request) override;
  grpc::ServerBidiReactor<ctxstream::v1::GenerateRequest, ctxstream::v1::GenerateResponse>*
  Generate(grpc::CallbackServerContext* ctx) override;

  // Shared with the request reactors (inference_service.cc).
  struct Shared;

 private:
  std::shared_ptr<Shared> shared_;
};

}  // namespace ctx::inference
