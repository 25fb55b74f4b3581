// Element types of checkpoint and KV tensors, and exact conversions between them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ctx::tensor {

enum class DType { kF32, kF16, kBF16, kI64, kI32 };

// Bytes per element.
size_t DTypeSize(DType dtype);
// "F32", "F16", "BF16", "I64", "I32" (safetensors spelling).
absl::string_view DTypeName(DType dtype);
absl::StatusOr<DType> ParseDType(absl::string_view name);

// bfloat16 is the top half of an IEEE float32: widening is exact.
inline float BF16ToFloat(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest even, NaN stays NaN (quiet).
inline uint16_t FloatToBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// IEEE binary16 <-> float32 (F16C-free so that it is portable; exact both ways for
// representable values, round-to-nearest-even on narrowing).
float HalfToFloat(uint16_t h);
uint16_t FloatToHalf(float f);

// Converts n elements of a float type (F32/F16/BF16) at `src` to float32.
// `src` need not be aligned. Returns InvalidArgument for integer dtypes.
absl::Status ConvertToFloat(DType dtype, const void* src, size_t n, float* out);
// Converts n float32 values to F32/F16/BF16 bytes at `dst` (n * DTypeSize bytes).
absl::Status ConvertFromFloat(DType dtype, const float* src, size_t n, void* dst);

}  // namespace ctx::tensor
