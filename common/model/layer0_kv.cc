#include "common/model/layer0_kv.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"

namespace ctx::model {

Layer0KvComputer::Layer0KvComputer(const Model& model)
    : model_(model),
      rope_(model.config().max_position_embeddings, model.config().head_dim,
            model.config().rope_theta) {}

absl::Status Layer0KvComputer::Compute(std::span<const int32_t> tokens, int pos0, float* k_out,
                                       int ldk, float* v_out, int ldv) const {
  const LlamaConfig& c = model_.config();
  const int T = static_cast<int>(tokens.size());
  if (T == 0) return absl::OkStatus();
  if (pos0 < 0 || pos0 + T > c.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("layer-0 recompute: positions [", pos0, ", ",
                                                   pos0 + T, ") exceed max_position_embeddings ",
                                                   c.max_position_embeddings));
  }
  if (absl::Status s = model_.CheckTokens(tokens); !s.ok()) return s;
  const int H = c.hidden_size;
  const LlamaLayerWeights& w = model_.weights().layers[0];

  // x[t] = embed[token t], then xn = RMSNorm(x)                            [T][H]
  std::vector<float> x(static_cast<size_t>(T) * H), xn(x.size());
  for (int t = 0; t < T; ++t) {
    std::copy_n(model_.weights().embed.data() + static_cast<size_t>(tokens[t]) * H, H,
                x.data() + static_cast<size_t>(t) * H);
  }
  ops::RmsNorm(x.data(), w.input_norm.data(), T, H, c.rms_norm_eps, xn.data());
  // k = xn Wk^T, v = xn Wv^T                                                [T][kv_dim]
  // (the packed weights Forward uses for blocks of tokens, so the rows match its prefill)
  const LlamaLayerWeightsPacked& p = model_.weights().layers_packed[0];
  tensor::MatMulPacked(T, xn.data(), H, p.wk, k_out, ldk);
  tensor::MatMulPacked(T, xn.data(), H, p.wv, v_out, ldv);
  // Keys are cached after RoPE (like HF and Model::Forward).
  ops::ApplyRope(rope_, k_out, T, ldk, c.num_kv_heads, c.head_dim, pos0);
  return absl::OkStatus();
}

absl::Status Layer0KvComputer::ComputeInto(std::span<const int32_t> tokens, int pos0,
                                           KvCache& cache) const {
  const int T = static_cast<int>(tokens.size());
  if (pos0 < 0 || pos0 + T > cache.capacity()) {
    return absl::InvalidArgumentError(absl::StrCat("layer-0 recompute: rows [", pos0, ", ",
                                                   pos0 + T, ") exceed the cache capacity ",
                                                   cache.capacity()));
  }
  const int KVD = cache.kv_dim();
  return Compute(tokens, pos0, cache.keys(0) + static_cast<size_t>(pos0) * KVD, KVD,
                 cache.values(0) + static_cast<size_t>(pos0) * KVD, KVD);
}

}  // namespace ctx::model
