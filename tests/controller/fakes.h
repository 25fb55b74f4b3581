// In-process fakes of the three backends the controller calls (inference, kvcache,
// compressor), served by real gRPC servers on 127.0.0.1 so that the controller's stubs,
// deadlines and status codes behave exactly as against the real services. Each fake records
// what it was asked and can be told to fail.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ctxstream/v1/compressor.grpc.pb.h"
#include "ctxstream/v1/inference.grpc.pb.h"
#include "ctxstream/v1/kvcache.grpc.pb.h"
#include "grpcpp/server.h"

namespace ctx::testing {

using TimePoint = std::chrono::system_clock::time_point;

// Words -> ids: BOS = 1, each word (split on spaces) -> 100 + its length.
class FakeInference final : public ctxstream::v1::Inference::Service {
 public:
  grpc::Status GetModelInfo(grpc::ServerContext* ctx, const ctxstream::v1::GetModelInfoRequest*,
                            ctxstream::v1::ModelInfo* out) override;
  grpc::Status Tokenize(grpc::ServerContext* ctx, const ctxstream::v1::TokenizeRequest* req,
                        ctxstream::v1::TokenizeResponse* out) override;
  grpc::Status Generate(grpc::ServerContext* ctx,
                        grpc::ServerReaderWriter<ctxstream::v1::GenerateResponse,
                                                 ctxstream::v1::GenerateRequest>* stream) override;

  // Behaviour.
  std::atomic<bool> generate_unavailable{false};  // Generate answers UNAVAILABLE
  double fetch_seconds = 0.5;                     // reported in GenerateDone for KV
  uint64_t kv_bytes_reported = 1000000;           // KV bytes reported in GenerateDone
  bool report_fell_back = false;                  // GenerateDone.fell_back
  int tokens_to_generate = 3;
  // GenerateDone.prefill_seconds = prefill_scale * P(kv_tokens, context + question) on the
  // reference curve (a = 5.30e-4, b = 6.06e-7, c = 0), the one ModelInfo reports.
  double prefill_scale = 1.0;
  uint32_t max_context_tokens = 0;  // ModelInfo.max_context_tokens (0 = not reported)
  std::atomic<uint32_t> active_requests{0};  // ModelInfo.active_requests
  double chunk_wire_bps = 0;  // > 0: ChunkDecision i > 0 reports chunk i-1 moved at this rate
  // Slow mode: up to 2000 tokens, 5 ms apart, until the call is cancelled.
  std::atomic<bool> slow{false};
  std::atomic<bool> saw_cancel{false};

  // Observations.
  std::mutex mu;
  std::vector<TimePoint> deadlines;  // of every call
  std::vector<ctxstream::v1::GenerateStart> starts;
  std::atomic<int> generate_calls{0};
};

class FakeKvCache final : public ctxstream::v1::KvCache::Service {
 public:
  grpc::Status Ingest(grpc::ServerContext* ctx, const ctxstream::v1::IngestRequest* req,
                      grpc::ServerWriter<ctxstream::v1::IngestProgress>* writer) override;
  grpc::Status GetManifest(grpc::ServerContext* ctx, const ctxstream::v1::GetManifestRequest* req,
                           ctxstream::v1::Manifest* out) override;
  grpc::Status DeleteContext(grpc::ServerContext* ctx,
                             const ctxstream::v1::DeleteContextRequest* req,
                             ctxstream::v1::DeleteContextResponse* out) override;
  grpc::Status GetCodecInfo(grpc::ServerContext* ctx, const ctxstream::v1::GetCodecInfoRequest*,
                            ctxstream::v1::CodecInfo* out) override;

  // Behaviour: bytes per token at each level (level 0 largest) and its quality loss.
  std::vector<double> bytes_per_token = {500, 300, 220, 150};
  std::vector<double> level_loss = {0.001, 0.01, 0.03, 0.08};
  std::atomic<bool> unavailable{false};  // every call answers UNAVAILABLE

  // Observations.
  std::mutex mu;
  std::map<std::string, ctxstream::v1::Manifest> manifests;  // by tenant + "/" + id
  std::vector<TimePoint> deadlines;
  std::vector<std::string> deleted;  // tenant/id
};

class FakeCompressor final : public ctxstream::v1::Compressor::Service {
 public:
  // Keeps every other word.
  grpc::Status Compress(grpc::ServerContext* ctx, const ctxstream::v1::CompressRequest* req,
                        ctxstream::v1::CompressResponse* out) override;
  std::atomic<int> calls{0};
};

// A gRPC server on 127.0.0.1:<ephemeral> serving one service.
class FakeServer {
 public:
  explicit FakeServer(grpc::Service* service);
  ~FakeServer();
  const std::string& address() const { return address_; }
  void Shutdown();

 private:
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

// A text of `words` words "w" (each -> id 101).
std::string Words(int words);

}  // namespace ctx::testing
