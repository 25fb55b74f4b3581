// The compressor service's gRPC handlers (callback API). Compress is thin: it validates and
// maps the request to ctx::lingua::CompressOptions (RequestToOptions), queues the work on a
// WorkerPool (never on a gRPC thread), runs the LLMLingua-2 pipeline (LinguaEngine::Compress)
// with a per-request ChunkScorer that feeds the shared cross-request BatchingScorer, and maps
// the result back
// (FillResponse). See README.md in this folder.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "absl/status/statusor.h"
#include "common/lingua/prompt_compressor.h"
#include "common/rpc/worker_pool.h"
#include "ctxstream/v1/compressor.grpc.pb.h"
#include "services/compressor/batching_scorer.h"
#include "services/compressor/lingua_engine.h"

namespace ctx::compressor {

// Request -> options. proto3 zero values mean "the reference's default": rate 0 -> 0.5,
// target_token <= 0 -> use rate, token_to_word "" -> "mean", context_level_rate 0 -> 1.0,
// chunk_end_tokens [] -> [".", "\n"]. InvalidArgument (naming the field) for: no contexts,
// an empty context, rate or context_level_rate outside (0, 1] (or NaN), an unknown
// token_to_word, negative target_context / context_level_target_token / force_context_ids.
// (The pipeline adds its own checks: UTF-8, size limit, more than 100 force tokens.)
absl::StatusOr<lingua::CompressOptions> RequestToOptions(const ctxstream::v1::CompressRequest& req);

// Result -> response (word_labels with probabilities when asked for).
void FillResponse(const lingua::CompressResult& r, bool want_labels,
                  ctxstream::v1::CompressResponse* resp);

class CompressorService final : public ctxstream::v1::Compressor::CallbackService {
 public:
  // All pointers must outlive the service.
  CompressorService(const LinguaEngine* engine, BatchingScorer* batcher, rpc::WorkerPool* pool)
      : engine_(engine), batcher_(batcher), pool_(pool) {}

  grpc::ServerUnaryReactor* Compress(grpc::CallbackServerContext* ctx,
                                     const ctxstream::v1::CompressRequest* req,
                                     ctxstream::v1::CompressResponse* resp) override;

 private:
  // Runs on a pool thread; t0 = when the request arrived (its seconds include queueing).
  grpc::Status RunCompress(uint64_t id, std::chrono::steady_clock::time_point t0,
                           grpc::CallbackServerContext* ctx,
                           const ctxstream::v1::CompressRequest& req,
                           ctxstream::v1::CompressResponse* resp);

  const LinguaEngine* engine_;
  BatchingScorer* batcher_;
  rpc::WorkerPool* pool_;
  std::atomic<uint64_t> next_id_{1};
};

}  // namespace ctx::compressor
