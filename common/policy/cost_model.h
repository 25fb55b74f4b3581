// Inputs of the controller's cost model (DESIGN.md "The controller's cost model"):
// what a context costs to deliver in each form, and how fast the stages run.
//
// Levels follow the codec: 0 = best quality (largest) ... L-1 = smallest. Quality is a loss
// (relative perplexity increase; text = 0). Bandwidths are bytes per second.
#ifndef CTX_COMMON_POLICY_COST_MODEL_H_
#define CTX_COMMON_POLICY_COST_MODEL_H_

#include <cstdint>
#include <vector>

#include "common/policy/prefill_model.h"

namespace ctx::policy {

// Level value meaning "this chunk goes as text" (matches ChunkPlan.level = -1 in the proto).
inline constexpr int kTextLevel = -1;

// Decode cost of a KV chunk at level k (entropy decode + dequantise + load into the cache):
//   D(k, bytes) = per_chunk_s[k] + bytes / bytes_per_second[k]
// Vectors shorter than the level count reuse their last entry (or the defaults when empty).
// Also holds the per-token generation time (not part of TTFT; for end-to-end estimates).
struct DecodeModel {
  std::vector<double> per_chunk_s;       // fixed cost per chunk, by level
  std::vector<double> bytes_per_second;  // decoder throughput over compressed bytes, by level
  double seconds_per_token = 0.016;      // one generation step (kv-anchors §1: ~15.7 ms)

  double ChunkSeconds(int level, double bytes) const;
  // Time to generate `tokens` tokens after the first: (tokens - 1) * seconds_per_token.
  double GenerationSeconds(int tokens) const;
};

// LLMLingua-2 compression time: C(n) = fixed_s + per_token_s * n for an n-token input.
// Defaults are placeholders until the compressor reports measurements.
struct CompressModel {
  double fixed_s = 0.05;
  double per_token_s = 2e-4;
  double Seconds(double tokens) const;
};

// One precomputed/compressible compressed-text version of the context.
struct CompressedVersion {
  double rate = 0.5;         // kept fraction requested from the compressor
  int64_t tokens = 0;        // tokens after compression
  double loss = 0;           // measured quality loss at this rate (compressor quality run)
  bool precomputed = false;  // already stored: no compression time on the query path
};

// What one context costs, from the kvcache manifest, the codec profile and the compressor.
struct ContextCosts {
  std::vector<int64_t> chunk_tokens;               // tokens per chunk; sum = context tokens
  std::vector<std::vector<uint64_t>> chunk_bytes;  // [level][chunk] encoded bytes, S(i, k)
  std::vector<double> level_loss;                  // [level] quality loss Q(k)
  std::vector<CompressedVersion> compressed;       // available compression rates
  int64_t question_tokens = 0;                     // prefilled on top of the context, always
  double bytes_per_token_id = 4;                   // text travels as int32 token ids

  int64_t TotalTokens() const;
  int64_t TokensBefore(size_t chunk) const;  // tokens of chunks [0, chunk)
  size_t num_chunks() const { return chunk_tokens.size(); }
  size_t num_levels() const { return chunk_bytes.size(); }
  uint64_t LevelBytes(size_t level) const;  // sum over chunks of S(i, level)
};

// The stage speeds the controller knows, apart from the bandwidth estimate.
struct CostModel {
  PrefillModel prefill;
  DecodeModel decode;
  CompressModel compress;
  double request_overhead_s = 0;  // fixed RPC/setup cost added to every option
};

// Completion time of a two-stage pipeline (transfer -> decode) over chunks in order, each
// stage processing one chunk at a time, decode of chunk j starting once chunk j arrived and
// chunk j-1 is decoded:
//   X_j = X_{j-1} + x_j                       (transfer finishes; X_{-1} = 0)
//   D_j = max(D_{j-1}, X_j) + d_j             (decode finishes;   D_{-1} = decode_busy_s)
//   T   = D_{last}
// For c equal chunks this is c * max(x, d) + min(x, d): the bottleneck stage's total plus
// the first chunk's latency through the other stage. decode_busy_s is when the decoder
// frees up (decode backlog of chunks already received). Empty input: T = decode_busy_s.
double PipelineSeconds(const std::vector<double>& transfer_s, const std::vector<double>& decode_s,
                       double decode_busy_s = 0);

}  // namespace ctx::policy

#endif  // CTX_COMMON_POLICY_COST_MODEL_H_
