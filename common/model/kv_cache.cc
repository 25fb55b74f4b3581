#include "common/model/kv_cache.h"

#include "absl/strings/str_cat.h"

namespace ctx::model {

KvCache::KvCache(int num_layers, int kv_dim, int capacity)
    : num_layers_(num_layers),
      kv_dim_(kv_dim),
      capacity_(capacity),
      data_(new float[static_cast<size_t>(num_layers) * 2 * capacity * kv_dim]) {}

absl::Status KvCache::SetLength(int n) {
  if (n < 0 || n > capacity_) {
    return absl::OutOfRangeError(
        absl::StrCat("KV cache length ", n, " outside [0, ", capacity_, "]"));
  }
  length_ = n;
  return absl::OkStatus();
}

absl::Status KvCache::Truncate(int n) {
  if (n < 0 || n > length_) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot truncate KV cache of ", length_, " tokens to ", n));
  }
  length_ = n;
  return absl::OkStatus();
}

size_t KvCache::ChunkBytes(int tokens, tensor::DType dtype) const {
  return static_cast<size_t>(num_layers_) * 2 * tokens * kv_dim_ * tensor::DTypeSize(dtype);
}

absl::StatusOr<std::vector<std::byte>> KvCache::Export(int a, int b, tensor::DType dtype) const {
  if (a < 0 || a > b || b > length_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV export range [", a, ", ", b, ") is not inside the ", length_, " cached tokens"));
  }
  if (dtype != tensor::DType::kF32 && dtype != tensor::DType::kF16 &&
      dtype != tensor::DType::kBF16) {
    return absl::InvalidArgumentError("KV export dtype must be F32, F16 or BF16");
  }
  const size_t block = static_cast<size_t>(b - a) * kv_dim_;  // elements per K or V block
  const size_t esize = tensor::DTypeSize(dtype);
  std::vector<std::byte> out(ChunkBytes(b - a, dtype));
  std::byte* dst = out.data();
  for (int l = 0; l < num_layers_; ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      const float* src = data_.get() + Offset(l, kv) + static_cast<size_t>(a) * kv_dim_;
      if (absl::Status s = tensor::ConvertFromFloat(dtype, src, block, dst); !s.ok()) return s;
      dst += block * esize;
    }
  }
  return out;
}

absl::Status KvCache::Import(int a, int b, tensor::DType dtype, std::span<const std::byte> bytes) {
  if (a < 0 || a > b || b > capacity_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV import range [", a, ", ", b, ") is not inside the cache capacity ", capacity_));
  }
  if (a > length_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV import at token ", a, " would leave a hole: only ", length_, " tokens are cached"));
  }
  if (dtype != tensor::DType::kF32 && dtype != tensor::DType::kF16 &&
      dtype != tensor::DType::kBF16) {
    return absl::InvalidArgumentError("KV import dtype must be F32, F16 or BF16");
  }
  if (bytes.size() != ChunkBytes(b - a, dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV chunk for tokens [", a, ", ", b, ") in ", tensor::DTypeName(dtype),
                     " must be ", ChunkBytes(b - a, dtype), " bytes (", num_layers_,
                     " layers x K,V x ", b - a, " tokens x ", kv_dim_, "), got ", bytes.size()));
  }
  const size_t block = static_cast<size_t>(b - a) * kv_dim_;
  const size_t esize = tensor::DTypeSize(dtype);
  const std::byte* src = bytes.data();
  for (int l = 0; l < num_layers_; ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      float* dst = data_.get() + Offset(l, kv) + static_cast<size_t>(a) * kv_dim_;
      if (absl::Status s = tensor::ConvertToFloat(dtype, src, block, dst); !s.ok()) return s;
      src += block * esize;
    }
  }
  length_ = b;
  return absl::OkStatus();
}

}  // namespace ctx::model
