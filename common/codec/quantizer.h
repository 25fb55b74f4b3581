// CacheGen's per-(layer, token) symmetric vectorwise quantizer (cachegen.md §1.2).
//
// For one row x[0..C) (one token of one K or V layer) and b bins:
//   MAX = b/2 - 1,  s = max_c |x_c|  (stored as fp16, rounded UP so that |x| <= s always),
//   q_c = round(x_c * MAX / s + MAX)  in [0, 2*MAX]      (alphabet of 2*MAX+1 = b-1 symbols)
//   x̂_c = (q_c - MAX) / MAX * s
// so |x_c - x̂_c| <= s / (2*MAX) for every element (plus float rounding).
// b = 256 gives the 8-bit baseline (255 levels, MAX = 127).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace ctx::codec {

inline constexpr int kMinBins = 4;    // 3 symbols
inline constexpr int kMaxBins = 256;  // 255 symbols: one byte per symbol

inline int MaxQ(int bins) { return bins / 2 - 1; }
inline int AlphabetSize(int bins) { return 2 * MaxQ(bins) + 1; }
// Bins must be even and within [kMinBins, kMaxBins]; 0 means "slot not sent".
bool ValidBins(int bins);

// Smallest fp16 value >= max|x| (an fp16 bit pattern). InvalidArgument if a value is NaN/inf or
// max|x| exceeds the fp16 range (65504).
absl::Status RowScale(const float* x, int n, uint16_t* scale_f16);

// Quantizes one row with the scale from RowScale; q[c] in [0, 2*max_q].
void QuantizeRow(const float* x, int n, int max_q, uint16_t scale_f16, uint8_t* q);

// x̂[c] = (q[c] - max_q) * (s / max_q).
void DequantizeRow(const uint8_t* q, int n, int max_q, uint16_t scale_f16, float* out);

// Same with a float scale s >= max|x| (the rANS kind's 8-bit log-grid scales below).
void QuantizeRowF(const float* x, int n, int max_q, float s, uint8_t* q);

// Refinement (wire format v3, §4): with r refinement bits a row is quantized as above (the
// symbol q is unchanged, so are its tables) and each element also gets the r-bit index of its
// sub-bin: with u = x*MAX/s + MAX + 1/2 (q = floor(u), clamped), lo = floor((u - q) * 2^r)
// clamped to [0, 2^r). Reconstruction at the sub-bin centre:
//   x̂ = (q - MAX)*step + (2*lo + 1 - 2^r) * (step * 2^-(r+1)),  step = s/MAX,
// so |x - x̂| <= s / (2^(r+1) * MAX): 2^r times finer, for r raw bits per element.
inline constexpr int kMaxRefineBits = 8;
void QuantizeRowRefined(const float* x, int n, int max_q, int refine_bits, float s, uint8_t* q,
                        uint8_t* lo);

// Refinement bits on the wire: per slot, the T*C values lo[t][c] as r-bit fields packed
// LSB-first into little-endian bytes (8 values fill exactly r bytes), the slot's last byte
// padded with zero bits. RefineBytes = ceil(n*r/8).
inline size_t RefineBytes(size_t n, int refine_bits) {
  return (n * static_cast<size_t>(refine_bits) + 7) / 8;
}
void PackRefineBits(const uint8_t* lo, size_t n, int refine_bits, std::string* out);
// Adds the refinement of a decoded slot: for row t, element c,
//   values[t*cols + c] += float(2*lo + 1 - 2^r) * fl(row_step[t] * 2^-(r+1))
// with lo unpacked from `bits` (exactly RefineBytes(rows*cols, r) bytes). False (nothing
// guaranteed about values) if the padding bits of the last byte are not zero.
bool ApplyRefineBits(const uint8_t* bits, size_t rows, int cols, int refine_bits,
                     const float* row_step, float* values);

// max|x| of a row. InvalidArgument if a value is NaN/inf or max|x| exceeds 65504.
absl::Status RowMaxAbs(const float* x, int n, float* max_abs);

// The rANS kind's row scales (wire format v2, §4): one byte per row, a code into a per-slot
// log-spaced grid
//   s_0 = 0 (all-zero rows),  s_1 = lo,  s_{k+1} = fl(s_k * r)  for k = 1..254,
//   lo = an fp16 (lo_f16 bits, 1..0x7bff),  r = 1 + ratio_m / 2^16.
// The grid is expanded by repeated IEEE float multiplication, so encoder and decoder get
// bit-identical scales on any machine (no libm). A row gets the smallest code with
// s_k >= max|x|: the quantizer bound |x - x̂| <= s_k / (2 MAX) holds with the stored scale,
// and s_k < r * max|x| (code >= 2) or s_k = lo <= max|x| (code 1): scales cost at most a
// factor r (typically 1.01-1.03) over exact ones, for 8 bits instead of 16.
inline constexpr int kScaleCodes = 256;
struct ScaleGrid {
  uint16_t lo_f16 = 1;
  uint16_t ratio_m = 0;

  float ratio() const { return 1.f + static_cast<float>(ratio_m) * (1.f / 65536.f); }
  // Fills s[0..256). False if lo is not a positive finite fp16 or s_255 is not finite.
  bool Expand(float* s) const;
};
// The grid for rows with these max|x| (each finite, <= 65504): lo = the largest fp16 <= the
// smallest non-zero max (at least the smallest fp16 subnormal), r the smallest with s_255 >= the
// largest max.
ScaleGrid FitScaleGrid(const float* row_max, size_t n);
// Smallest k with s[k] >= m (s from Expand; m <= s[255]).
uint8_t ScaleCode(const float* s, float m);

// Quantizes one slot x[T][C] at `bins` the way the rANS kind does: appends the slot's scale
// entry (u16 lo_f16, u16 ratio_m, T u8 codes) to scale_out, writes symbols[T][C] and, if
// hist is not null, adds them to hist[C][A] (A = AlphabetSize(bins)).
// With refine_bits > 0 also writes the refinement indices lo[T][C] to `refine` (quantizer
// above; may be null when refine_bits is 0).
absl::Status QuantizeSlot(const float* x, size_t tokens, int channels, int bins,
                          std::string* scale_out, uint8_t* symbols, uint32_t* hist,
                          int refine_bits = 0, uint8_t* refine = nullptr);

}  // namespace ctx::codec
