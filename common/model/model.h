// A loaded Llama-family model (LlamaForCausalLM) and its forward pass on CPU in float32.
//
// A Model is immutable after Load and may be shared by any number of threads; each request
// owns its KvCache (the forward pass works in per-thread scratch memory, reused across calls).
//
// Forward(tokens, cache) runs the tokens at positions cache.length() .. + n on top of the
// cached prefix, appends their keys/values to the cache and returns logits: this is both
// prefill (many tokens, processed as blocks through GEMMs) and decode (one token).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/fingerprint.h"
#include "common/model/kv_cache.h"
#include "common/model/llama_config.h"
#include "common/model/llama_weights.h"
#include "common/model/ops.h"

namespace ctx::model {

// Which positions' logits Forward returns.
enum class Logits {
  kNone,  // only fill the KV cache (prefill for export)
  kLast,  // [1][V]: the last token's (what generation needs)
  kAll,   // [n][V]: every token's
};

struct ForwardOptions {
  ops::Gemm gemm = ops::Gemm::kBlas;  // kNaive: textbook loops (benchmark baseline only)
  int block_tokens = 512;             // tokens per pass through the layers (bounds scratch)
  bool bf16_decode = true;            // single-token steps read bfloat16 weight copies if exact
};

class Model {
 public:
  // Loads config.json (+ generation_config.json) and the safetensors weights (single file or
  // sharded) of a HF model directory. Errors: FailedPrecondition for an unusable checkpoint
  // (missing files or tensors, wrong shapes, corrupt safetensors), InvalidArgument for a bad
  // config.
  static absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& model_dir);

  const LlamaConfig& config() const { return config_; }
  const ModelFingerprint& fingerprint() const { return fingerprint_; }
  const std::string& dir() const { return dir_; }
  const LlamaWeights& weights() const { return weights_; }

  // An empty cache for this model; capacity 0 means max_position_embeddings.
  KvCache NewKvCache(int capacity = 0) const;

  // InvalidArgument unless every id is in [0, vocab_size).
  absl::Status CheckTokens(std::span<const int32_t> tokens) const;

  // Runs `tokens` after the cache's prefix (see the header comment). `logits` receives
  // [1][V] (kLast), [n][V] (kAll) or nothing (kNone). Errors (InvalidArgument): no tokens,
  // ids out of vocabulary, cache of another geometry, or a context longer than the cache
  // capacity / max_position_embeddings. On error the cache is unchanged.
  absl::Status Forward(std::span<const int32_t> tokens, KvCache& cache, Logits which,
                       std::vector<float>* logits, const ForwardOptions& options = {}) const;

 private:
  Model(std::string dir, LlamaConfig config, LlamaWeights weights, ModelFingerprint fp);

  struct Scratch;  // work buffers of one Forward call (model.cc)
  // One block of T tokens at positions pos0.. through every layer; writes logits for rows
  // [first_logit_row, T) into `logits` (rows x V) unless it is null.
  void ForwardBlock(std::span<const int32_t> tokens, int pos0, KvCache& cache, int first_logit_row,
                    float* logits, Scratch& scratch, const ForwardOptions& options) const;
  // Causal GQA attention of the block's queries q [T][q_dim] over cache rows [0, pos0 + T)
  // of `layer`; out [T][q_dim].
  void Attention(const float* q, int T, int pos0, const KvCache& cache, int layer, float* out,
                 Scratch& scratch, const ForwardOptions& options) const;

  std::string dir_;
  LlamaConfig config_;
  LlamaWeights weights_;
  ModelFingerprint fingerprint_;
  ops::RopeTable rope_;
};

}  // namespace ctx::model
