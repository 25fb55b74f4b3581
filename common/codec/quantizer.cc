#include "common/codec/quantizer.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/tensor/dtype.h"

namespace ctx::codec {

bool ValidBins(int bins) { return bins >= kMinBins && bins <= kMaxBins && bins % 2 == 0; }

absl::Status RowScale(const float* x, int n, uint16_t* scale_f16) {
  float m = 0.f;
  bool finite = true;
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    m = a > m ? a : m;
    finite &= (a <= 3.0e38f);  // false for NaN and inf
  }
  if (!finite || m > 65504.f) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV row not representable in fp16 (max |x| = ", m, ", or NaN/inf)"));
  }
  uint16_t h = tensor::FloatToHalf(m);
  if (tensor::HalfToFloat(h) < m) ++h;  // next fp16 up (positive finite: bit pattern + 1)
  *scale_f16 = h;
  return absl::OkStatus();
}

void QuantizeRow(const float* x, int n, int max_q, uint16_t scale_f16, uint8_t* q) {
  const float s = tensor::HalfToFloat(scale_f16);
  const float mq = static_cast<float>(max_q);
  const float inv = s > 0.f ? mq / s : 0.f;
  const float top = 2.f * mq;
  for (int i = 0; i < n; ++i) {
    float v = x[i] * inv + mq + 0.5f;  // >= 0.5 since |x| <= s; floor(v) = round-half-up
    v = v < 0.f ? 0.f : (v > top ? top : v);
    q[i] = static_cast<uint8_t>(static_cast<int>(v));
  }
}

void DequantizeRow(const uint8_t* q, int n, int max_q, uint16_t scale_f16, float* out) {
  const float step = tensor::HalfToFloat(scale_f16) / static_cast<float>(max_q);
  for (int i = 0; i < n; ++i) out[i] = static_cast<float>(q[i] - max_q) * step;
}

}  // namespace ctx::codec
