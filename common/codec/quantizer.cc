#include "common/codec/quantizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/codec/byte_io.h"
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
  QuantizeRowF(x, n, max_q, tensor::HalfToFloat(scale_f16), q);
}

void QuantizeRowF(const float* __restrict x, int n, int max_q, float s, uint8_t* __restrict q) {
  const float mq = static_cast<float>(max_q);
  const float inv = s > 0.f ? mq / s : 0.f;
  const float bias = mq + 0.5f;
  const int top = 2 * max_q;
  // v >= 0.5 since |x| <= s, so truncation = floor = round-half-up; the integer clamp only
  // guards rounding (written so that the loop vectorizes: float mul-add, cvttps, int min/max).
  for (int i = 0; i < n; ++i) {
    int v = static_cast<int>(x[i] * inv + bias);
    v = v < 0 ? 0 : v;
    v = v > top ? top : v;
    q[i] = static_cast<uint8_t>(v);
  }
}

void DequantizeRow(const uint8_t* q, int n, int max_q, uint16_t scale_f16, float* out) {
  const float step = tensor::HalfToFloat(scale_f16) / static_cast<float>(max_q);
  for (int i = 0; i < n; ++i) out[i] = static_cast<float>(q[i] - max_q) * step;
}

absl::Status RowMaxAbs(const float* x, int n, float* max_abs) {
  // On |x| bit patterns: integer order is float order for non-negative floats, inf/NaN are
  // >= 0x7f800000, and an integer max reduction vectorizes (a float one would not, for NaN).
  int32_t top = 0;  // |x| bits are non-negative as int32: a signed max (SSE2 pcmpgtd)
  for (int i = 0; i < n; ++i) {
    int32_t b;
    std::memcpy(&b, x + i, 4);
    b &= 0x7fffffff;
    top = b > top ? b : top;
  }
  float m;
  std::memcpy(&m, &top, 4);
  if (top >= 0x7f800000 || m > 65504.f) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV row not representable in fp16 (max |x| = ", m, ", or NaN/inf)"));
  }
  *max_abs = m;
  return absl::OkStatus();
}

bool ScaleGrid::Expand(float* s) const {
  if (lo_f16 == 0 || lo_f16 > 0x7bff) return false;
  const float r = ratio();
  s[0] = 0.f;
  s[1] = tensor::HalfToFloat(lo_f16);
  for (int k = 1; k + 1 < kScaleCodes; ++k) s[k + 1] = s[k] * r;
  return s[kScaleCodes - 1] <= 3.0e38f;  // finite (and not NaN)
}

ScaleGrid FitScaleGrid(const float* row_max, size_t n) {
  float lo = 0.f, hi = 0.f;
  for (size_t i = 0; i < n; ++i) {
    const float m = row_max[i];
    if (m > 0.f && (lo == 0.f || m < lo)) lo = m;
    hi = m > hi ? m : hi;
  }
  ScaleGrid g;
  if (hi == 0.f) return g;  // all rows zero: code 0 everywhere
  uint16_t h = tensor::FloatToHalf(lo);
  while (h > 1 && tensor::HalfToFloat(h) > lo) --h;  // round down (positive: bits - 1)
  g.lo_f16 = h == 0 ? 1 : h;
  const double base = tensor::HalfToFloat(g.lo_f16);
  if (hi <= base) return g;
  const double r = std::pow(static_cast<double>(hi) / base, 1.0 / (kScaleCodes - 2));
  g.ratio_m = static_cast<uint16_t>(std::min(65535.0, std::max(0.0, std::floor((r - 1) * 65536))));
  float s[kScaleCodes];
  while (g.ratio_m < 65535 && !(g.Expand(s) && s[kScaleCodes - 1] >= hi)) ++g.ratio_m;
  return g;
}

uint8_t ScaleCode(const float* s, float m) {
  if (m <= 0.f) return 0;
  int lo = 1, hi = kScaleCodes - 1;  // s[hi] >= m
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (s[mid] >= m) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return static_cast<uint8_t>(lo);
}

absl::Status QuantizeSlot(const float* base, size_t tokens, int channels, int bins,
                          std::string* scale_out, uint8_t* symbols, uint32_t* hist) {
  static thread_local std::vector<float> row_max;
  row_max.resize(tokens);
  for (size_t t = 0; t < tokens; ++t) {
    if (absl::Status s = RowMaxAbs(base + t * channels, channels, &row_max[t]); !s.ok()) return s;
  }
  const ScaleGrid grid = FitScaleGrid(row_max.data(), tokens);
  float scale[kScaleCodes];
  if (!grid.Expand(scale)) return absl::InternalError("scale grid does not expand");
  ByteWriter w(scale_out);
  w.U16(grid.lo_f16);
  w.U16(grid.ratio_m);
  const int max_q = MaxQ(bins), a = AlphabetSize(bins);
  for (size_t t = 0; t < tokens; ++t) {
    const uint8_t code = ScaleCode(scale, row_max[t]);
    w.U8(code);
    uint8_t* q = symbols + t * channels;
    QuantizeRowF(base + t * channels, channels, max_q, scale[code], q);
    if (hist) {
      for (int c = 0; c < channels; ++c) ++hist[static_cast<size_t>(c) * a + q[c]];
    }
  }
  return absl::OkStatus();
}

}  // namespace ctx::codec
