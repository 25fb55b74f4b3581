// QueryEngine: the controller's orchestration, apart from gRPC server plumbing.
//
//   Register: tokenize (inference Tokenize, BOS) -> registry record -> optional LLMLingua-2
//             version (compressor) -> kvcache Ingest, progress streamed to the caller.
//   Query:    context costs (kvcache manifest + codec info, compressor estimate, inference
//             ModelInfo -> PrefillModel fit) + the link's bandwidth estimate -> policy::ChoosePlan
//             -> Plan event -> inference Generate (text / compressed-text segments, or KV
//             segments pulled by the inference node from kvcache via KvSource, re-planned per
//             chunk there) -> tokens and decisions forwarded -> QueryResult with timings.
//
// Backends are injected as the generated *StubInterface types (ReplicaSet), so tests can
// plug fakes. Every outbound call carries a deadline no later than the query's.
// Thread-safe: one engine serves all concurrent requests.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/policy/bandwidth_estimator.h"
#include "common/policy/prefill_model.h"
#include "ctxstream/v1/compressor.grpc.pb.h"
#include "ctxstream/v1/controller.pb.h"
#include "ctxstream/v1/inference.grpc.pb.h"
#include "ctxstream/v1/kvcache.grpc.pb.h"
#include "grpcpp/support/status.h"
#include "services/controller/context_registry.h"
#include "services/controller/replicas.h"

namespace ctx::controller {

using InferenceSet = ReplicaSet<ctxstream::v1::Inference::StubInterface>;
using KvCacheSet = ReplicaSet<ctxstream::v1::KvCache::StubInterface>;

struct EngineOptions {
  uint32_t chunk_tokens = 256;        // tokens per KV chunk asked of kvcache
  double default_timeout_s = 120;     // query / register deadline when the client sets none
  double metadata_timeout_s = 10;     // cap for small calls (model info, manifest, tokenize)
  bool adapt = true;                  // per-chunk re-planning unless the query asks for it anyway
  double bandwidth_alpha = 0.5;       // EWMA weight of the newest fetch measurement
  double cold_start_bps = 12.5e6;     // B̂ of a link before its first measurement (100 Mbit/s)
  double text_bandwidth_bps = 125e6;  // controller -> inference for token ids
  double compress_rate = 0.5;         // LLMLingua-2 rate when compressing on the query path
  // Quality loss assumed for compressed text (relative perplexity increase): measured 0.225 at
  // rate 0.5 by tools/lingua_quality (docs/bench-pytorch.md); the compressor does not report
  // one per request. See README.
  double compress_loss = 0.225;
  // KV decode throughput before a replica's is measured (GenerateDone.decode_seconds).
  double decode_bytes_per_second = 200e6;
  bool retry_inference = true;  // retry an UNAVAILABLE inference replica once elsewhere
  // Also consider hybrid plans: a text head prefilled on the inference node while the KV tail
  // streams (policy::PlanRequest::consider_hybrid). main.cc turns it on (--hybrid).
  bool hybrid = false;
  // OBJECTIVE_FASTEST_WITHIN_FLOOR: the receiver's budget. false (default): ~0, i.e. "as soon
  // as possible": each remaining chunk at whichever of the smallest allowed level and text is
  // predicted to finish sooner (the replanner's best-effort rule). true: the chosen option's
  // predicted TTFT, so the receiver upgrades quality wherever that seems to fit; measured
  // (loadtest/adaptive_bench.sh, 30-1000 Mbit/s) that costs 1.3-2x TTFT: a fast first chunk
  // (the limiter's burst) makes a level-0 chunk look affordable.
  bool fastest_keeps_pace = false;
  // With `adapt`: re-plan per chunk only when the plan's predicted transfer time is at least
  // this (main.cc: --min_adapt_transfer_seconds, 0.05).
  double min_adapt_transfer_s = 0;
};

struct Backends {
  InferenceSet* inference = nullptr;  // required, >= 1 replica
  KvCacheSet* kvcache = nullptr;      // may be null/empty: everything goes as text
  ctxstream::v1::Compressor::StubInterface* compressor = nullptr;  // may be null
};

class QueryEngine {
 public:
  using Clock = std::chrono::system_clock;
  // Sinks return false when the client has gone away; the engine then cancels its calls.
  using RegisterSink = std::function<bool(const ctxstream::v1::RegisterProgress&)>;
  using QuerySink = std::function<bool(const ctxstream::v1::QueryEvent&)>;

  QueryEngine(Backends backends, ContextRegistry* registry, EngineOptions options);

  grpc::Status Register(const std::string& tenant,
                        const ctxstream::v1::RegisterContextRequest& request,
                        Clock::time_point deadline, const RegisterSink& sink);
  grpc::Status Query(const std::string& tenant, const ctxstream::v1::QueryRequest& request,
                     Clock::time_point deadline, const QuerySink& sink);
  grpc::Status GetContext(const std::string& tenant, const ctxstream::v1::GetContextRequest& req,
                          ctxstream::v1::ContextInfo* out);
  grpc::Status ListContexts(const std::string& tenant,
                            const ctxstream::v1::ListContextsRequest& req,
                            ctxstream::v1::ListContextsResponse* out);
  grpc::Status DeleteContext(const std::string& tenant,
                             const ctxstream::v1::ControllerDeleteContextRequest& req,
                             Clock::time_point deadline,
                             ctxstream::v1::ControllerDeleteContextResponse* out);

  // The deadline of a request whose client set `client_deadline` (max() = none).
  Clock::time_point QueryDeadline(Clock::time_point client_deadline) const;

  // B̂ of the link kvcache replica -> inference replica (the cold start until measured).
  double BandwidthEstimate(size_t kvcache_index, size_t inference_index) const;
  // Replaces a link's estimator state (tests, warm starts from a benchmark).
  void SeedBandwidth(size_t kvcache_index, size_t inference_index, double bps);

  const EngineOptions& options() const { return options_; }

 private:
  struct Prepared;
  grpc::Status ModelInfoFor(InferenceSet::Lease& lease, Clock::time_point deadline,
                            ctxstream::v1::ModelInfo* info);
  grpc::Status Tokenize(InferenceSet::Lease& lease, const std::string& text, bool add_bos,
                        Clock::time_point deadline, std::vector<int32_t>* out);
  grpc::Status CodecInfoFor(KvCacheSet::Lease& lease, Clock::time_point deadline,
                            ctxstream::v1::CodecInfo* info);
  std::string LinkKey(size_t kv, size_t inf) const;
  // KV decode bytes/s of an inference replica: measured (EWMA) or the option's default.
  double DecodeSpeed(size_t inference_index) const;
  policy::BandwidthEstimator LinkEstimator(size_t kv, size_t inf) const;

  Backends backends_;
  ContextRegistry* registry_;
  EngineOptions options_;

  mutable std::mutex mu_;
  std::map<std::string, policy::BandwidthEstimator> links_;  // "kvcache-i>inference-j"
  struct CachedModelInfo {
    ctxstream::v1::ModelInfo info;
    std::chrono::steady_clock::time_point fetched;
  };
  std::map<size_t, CachedModelInfo> model_info_;           // by inference replica
  std::map<size_t, ctxstream::v1::CodecInfo> codec_info_;  // by kvcache replica
  // Prefill times measured by each inference replica on real queries (GenerateDone), the
  // newest kMaxPrefillSamples, fitted together with ModelInfo.prefill_speed until there are
  // kMinLongPrefills long ones.
  static constexpr size_t kMaxPrefillSamples = 32;
  // With this many measured prefills of >= kMinLongPrefillTokens tokens, ModelInfo's start-up
  // speeds leave the fit.
  static constexpr long kMinLongPrefills = 3;
  static constexpr double kMinLongPrefillTokens = 64;
  // Newest kMaxPrefillSamples / 2 of each: >= kMinLongPrefillTokens tokens, and shorter
  // (the question on top of KV).
  std::map<size_t, std::deque<policy::PrefillSample>> prefill_samples_;
  std::map<size_t, std::deque<policy::PrefillSample>> short_prefill_samples_;
  std::map<size_t, double> decode_bps_;  // measured KV decode throughput by replica
};

}  // namespace ctx::controller
