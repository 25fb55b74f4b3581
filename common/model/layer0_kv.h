// Recomputes layer 0's keys and values from token ids alone.
//
// Layer 0's K and V depend only on the token id and its position:
//   x = embed[id]  ->  xn = RMSNorm(x) * input_norm  ->  k = Wk xn, v = Wv xn  ->  k = RoPE(k, pos)
// so KV codec levels that do not send layer 0 (the "-r0" levels) let the receiver rebuild it
// here instead of paying for its bytes. Same ops as Model::ForwardBlock, so the result matches
// the model's own layer-0 KV up to GEMM blocking differences (~1e-6).
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "common/model/kv_cache.h"
#include "common/model/model.h"
#include "common/model/ops.h"

namespace ctx::model {

class Layer0KvComputer {
 public:
  // `model` must outlive this object.
  explicit Layer0KvComputer(const Model& model);

  // k_out, v_out: [T][kv_dim] with row strides ldk / ldv; row t is position pos0 + t.
  // InvalidArgument for ids outside the vocabulary or positions past max_position_embeddings.
  absl::Status Compute(std::span<const int32_t> tokens, int pos0, float* k_out, int ldk,
                       float* v_out, int ldv) const;

  // Writes layer 0's K and V rows [pos0, pos0 + T) of `cache` (its length is not changed;
  // the rows must lie within the cache capacity).
  absl::Status ComputeInto(std::span<const int32_t> tokens, int pos0, KvCache& cache) const;

 private:
  const Model& model_;
  ops::RopeTable rope_;
};

}  // namespace ctx::model
