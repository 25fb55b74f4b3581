// The KV cache of one request: for every layer, the keys (after RoPE, like HF caches) and
// the values of every token so far.
//
//   memory layout  [layer][K|V][token][kv_heads * head_dim]      (float32)
//
// Capacity is fixed at construction (normally max_position_embeddings); `length()` tokens
// are valid. Chunks exported/imported as bytes use the same order restricted to a token
// range [a, b):  for each layer: K block [b-a][kv_dim], then V block [b-a][kv_dim],
// elements in F32, F16 or BF16.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tensor/dtype.h"

namespace ctx::model {

class KvCache {
 public:
  KvCache(int num_layers, int kv_dim, int capacity);
  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = default;

  int num_layers() const { return num_layers_; }
  int kv_dim() const { return kv_dim_; }
  int capacity() const { return capacity_; }
  int length() const { return length_; }

  // Rows [0, capacity) of layer l's keys / values: [capacity][kv_dim].
  float* keys(int layer) { return data_.get() + Offset(layer, 0); }
  float* values(int layer) { return data_.get() + Offset(layer, 1); }
  const float* keys(int layer) const { return data_.get() + Offset(layer, 0); }
  const float* values(int layer) const { return data_.get() + Offset(layer, 1); }

  // Marks tokens [0, n) valid (the forward pass calls it after writing rows).
  absl::Status SetLength(int n);
  // Drops tokens [n, length).
  absl::Status Truncate(int n);

  // Bytes of one chunk of `tokens` tokens in `dtype`.
  size_t ChunkBytes(int tokens, tensor::DType dtype) const;
  // Tokens [a, b) (b <= length) in the chunk layout.
  absl::StatusOr<std::vector<std::byte>> Export(int a, int b, tensor::DType dtype) const;
  // Writes a chunk for tokens [a, b). Requires a <= length (no holes) and b <= capacity;
  // afterwards length = b (tokens after b were computed on the old prefix, so they go).
  absl::Status Import(int a, int b, tensor::DType dtype, std::span<const std::byte> bytes);

 private:
  size_t Offset(int layer, int kv) const {
    return (static_cast<size_t>(layer) * 2 + kv) * capacity_ * kv_dim_;
  }
  int num_layers_;
  int kv_dim_;
  int capacity_;
  int length_ = 0;
  // Not zero-filled: rows past length() are never read (saves ~13 MB of memset per request
  // for tiny-llama at 2048 positions).
  std::unique_ptr<float[]> data_;
};

}  // namespace ctx::model
