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

void QuantizeRowRefined(const float* __restrict x, int n, int max_q, int refine_bits, float s,
                        uint8_t* __restrict q, uint8_t* __restrict lo) {
  const float mq = static_cast<float>(max_q);
  const float inv = s > 0.f ? mq / s : 0.f;
  const float bias = mq + 0.5f;
  const int top = 2 * max_q, lo_top = (1 << refine_bits) - 1;
  const float sub = static_cast<float>(1 << refine_bits);
  for (int i = 0; i < n; ++i) {
    const float u = x[i] * inv + bias;
    int v = static_cast<int>(u);
    v = v < 0 ? 0 : v;
    v = v > top ? top : v;
    // u - v is exact (v is u's integer part unless clamped); * 2^r is exact.
    int f = static_cast<int>((u - static_cast<float>(v)) * sub);
    f = f < 0 ? 0 : f;
    f = f > lo_top ? lo_top : f;
    q[i] = static_cast<uint8_t>(v);
    lo[i] = static_cast<uint8_t>(f);
  }
}

void PackRefineBits(const uint8_t* lo, size_t n, int r, std::string* out) {
  // 8 values = exactly r bytes: gather them in a u64 (8 * r <= 64 bits), write r bytes.
  const size_t start = out->size();
  out->resize(start + RefineBytes(n, r));
  uint8_t* dst = reinterpret_cast<uint8_t*>(out->data() + start);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w = 0;
    for (int k = 0; k < 8; ++k) w |= static_cast<uint64_t>(lo[i + k]) << (k * r);
    for (int b = 0; b < r; ++b) *dst++ = static_cast<uint8_t>(w >> (8 * b));
  }
  if (i < n) {
    uint64_t w = 0;
    for (size_t k = 0; i + k < n; ++k) w |= static_cast<uint64_t>(lo[i + k]) << (k * r);
    const size_t bytes = ((n - i) * r + 7) / 8;
    for (size_t b = 0; b < bytes; ++b) *dst++ = static_cast<uint8_t>(w >> (8 * b));
  }
}

namespace {

// Rows whose width is a multiple of 8: every row starts on a byte, 8 values per r bytes.
template <int R>
void ApplyRefineRows8(const uint8_t* __restrict bits, size_t rows, int cols, const float* row_step,
                      float* __restrict values) {
  constexpr uint64_t kMask = (uint64_t{1} << R) - 1;
  constexpr int kOffset = 1 - (1 << R);
  const float half_sub = 1.f / static_cast<float>(2 << R);  // 2^-(R+1), exact
  // Two passes per row: unpack to bytes (scalar), then a float loop the compiler vectorizes.
  static thread_local std::vector<uint8_t> lo;
  lo.resize(static_cast<size_t>(cols));
  uint8_t* __restrict l = lo.data();
  for (size_t t = 0; t < rows; ++t) {
    for (int g = 0; g < cols; g += 8) {
      uint64_t w = 0;  // r little-endian bytes (one load on little-endian hosts)
      for (int b = 0; b < R; ++b) w |= static_cast<uint64_t>(bits[b]) << (8 * b);
      bits += R;
      for (int k = 0; k < 8; ++k) l[g + k] = static_cast<uint8_t>((w >> (k * R)) & kMask);
    }
    const float fs = row_step[t] * half_sub;
    float* __restrict v = values + t * cols;
    for (int c = 0; c < cols; ++c) v[c] += static_cast<float>(2 * l[c] + kOffset) * fs;
  }
}

}  // namespace

bool ApplyRefineBits(const uint8_t* bits, size_t rows, int cols, int r, const float* row_step,
                     float* values) {
  const size_t n = rows * static_cast<size_t>(cols);
  const size_t bytes = RefineBytes(n, r);
  // Padding bits of the last byte must be zero (one canonical encoding).
  const int used = static_cast<int>((n * r) % 8);
  if (used != 0 && (bits[bytes - 1] >> used) != 0) return false;
  if (cols % 8 == 0) {
    switch (r) {
      case 1:
        ApplyRefineRows8<1>(bits, rows, cols, row_step, values);
        return true;
      case 2:
        ApplyRefineRows8<2>(bits, rows, cols, row_step, values);
        return true;
      case 3:
        ApplyRefineRows8<3>(bits, rows, cols, row_step, values);
        return true;
      case 4:
        ApplyRefineRows8<4>(bits, rows, cols, row_step, values);
        return true;
      case 5:
        ApplyRefineRows8<5>(bits, rows, cols, row_step, values);
        return true;
      case 6:
        ApplyRefineRows8<6>(bits, rows, cols, row_step, values);
        return true;
      case 7:
        ApplyRefineRows8<7>(bits, rows, cols, row_step, values);
        return true;
      case 8:
        ApplyRefineRows8<8>(bits, rows, cols, row_step, values);
        return true;
      default:
        return false;
    }
  }
  // Any width: a plain bit reader.
  const uint32_t mask = (1u << r) - 1;
  const int offset = 1 - (1 << r);
  const float half_sub = 1.f / static_cast<float>(2 << r);
  size_t bit = 0;
  for (size_t t = 0; t < rows; ++t) {
    const float fs = row_step[t] * half_sub;
    for (int c = 0; c < cols; ++c, bit += r) {
      const size_t byte = bit / 8;
      uint32_t w = bits[byte];
      if (byte + 1 < bytes) w |= static_cast<uint32_t>(bits[byte + 1]) << 8;
      const int lo = static_cast<int>((w >> (bit % 8)) & mask);
      values[t * cols + c] += static_cast<float>(2 * lo + offset) * fs;
    }
  }
  return true;
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
                          std::string* scale_out, uint8_t* symbols, uint32_t* hist, int refine_bits,
                          uint8_t* refine) {
  if (refine_bits < 0 || refine_bits > kMaxRefineBits || (refine_bits > 0 && !refine)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid refinement bits ", refine_bits));
  }
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
    if (refine_bits > 0) {
      QuantizeRowRefined(base + t * channels, channels, max_q, refine_bits, scale[code], q,
                         refine + t * channels);
    } else {
      QuantizeRowF(base + t * channels, channels, max_q, scale[code], q);
    }
    if (hist) {
      for (int c = 0; c < channels; ++c) ++hist[static_cast<size_t>(c) * a + q[c]];
    }
  }
  return absl::OkStatus();
}

}  // namespace ctx::codec
