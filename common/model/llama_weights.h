// The weights of a LlamaForCausalLM checkpoint, widened to float32 at load.
// Shapes follow HF's nn.Linear convention: a projection from `in` to `out` is [out][in].
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "common/model/llama_config.h"
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

struct LlamaWeights {
  std::vector<float> embed;  // [V][H]  model.embed_tokens.weight
  std::vector<LlamaLayerWeights> layers;
  std::vector<float> final_norm;  // [H]  model.norm.weight
  std::vector<float> lm_head;     // [V][H]; empty when tied to `embed`

  const float* lm_head_data() const { return lm_head.empty() ? embed.data() : lm_head.data(); }
};

// Reads every tensor with its expected shape (HF names). A missing tensor or a wrong shape
// is FailedPrecondition naming the tensor.
absl::StatusOr<LlamaWeights> LoadLlamaWeights(const tensor::CheckpointWeights& checkpoint,
                                              const LlamaConfig& config);

}  // namespace ctx::model
