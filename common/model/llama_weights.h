// The weights of a LlamaForCausalLM checkpoint, widened to float32 at load.
// Shapes follow HF's nn.Linear convention: a projection from `in` to `out` is [out][in].
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/llama_config.h"
#include "common/tensor/gemm.h"
#include "common/tensor/safetensors.h"

namespace ctx::model {

struct LlamaLayerWeights {
  std::vector<float> input_norm;  // [H]       input_layernorm
  std::vector<float> wq;          // [q_dim][H]
  std::vector<float> wk;          // [kv_dim][H]
  std::vector<float> wv;          // [kv_dim][H]
  std::vector<float> wo;          // [H][q_dim]
  std::vector<float> post_norm;   // [H]       post_attention_layernorm
  std::vector<float> w_gate;      // [I][H]
  std::vector<float> w_up;        // [I][H]
  std::vector<float> w_down;      // [H][I]
};

// bfloat16 copies of the projection matrices, kept when every value is exactly a bfloat16
// (always true for BF16 checkpoints). Decode is a matrix-vector product per matrix, bound by
// memory bandwidth, so reading half the bytes makes a token ~2x cheaper with identical
// products (only the summation order differs from the float32 path).
struct LlamaLayerWeightsBF16 {
  std::vector<uint16_t> wq, wk, wv, wo, w_gate, w_up, w_down;  // shapes as in float32
};

// The projection matrices packed at load time for tensor::MatMulPacked (the prefill path: one
// GEMM per matrix over a block of tokens).
struct LlamaLayerWeightsPacked {
  tensor::PackedMatrix wq, wk, wv, wo, w_gate, w_up, w_down;  // shapes as in float32
};

struct LlamaWeights {
  std::vector<float> embed;  // [V][H]  model.embed_tokens.weight
  std::vector<LlamaLayerWeights> layers;
  std::vector<float> final_norm;  // [H]  model.norm.weight
  std::vector<float> lm_head;     // [V][H]; empty when tied to `embed`

  const float* lm_head_data() const { return lm_head.empty() ? embed.data() : lm_head.data(); }

  // Empty unless every matrix (and the lm_head) is exactly representable in bfloat16.
  std::vector<LlamaLayerWeightsBF16> layers_bf16;
  std::vector<uint16_t> lm_head_bf16;  // [V][H] (the embedding's copy when tied)
  bool has_bf16() const { return !layers_bf16.empty(); }

  std::vector<LlamaLayerWeightsPacked> layers_packed;  // always filled by LoadLlamaWeights
  tensor::PackedMatrix lm_head_packed;                 // [V][H]
};

// Reads every tensor with its expected shape (HF names). A missing tensor or a wrong shape
// is FailedPrecondition naming the tensor.
absl::StatusOr<LlamaWeights> LoadLlamaWeights(const tensor::CheckpointWeights& checkpoint,
                                              const LlamaConfig& config);

}  // namespace ctx::model
