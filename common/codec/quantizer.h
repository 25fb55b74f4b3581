// CacheGen's per-(layer, token) symmetric vectorwise quantizer (cachegen.md §1.2).
//
// For one row x[0..C) (one token of one K or V layer) and b bins:
//   MAX = b/2 - 1,  s = max_c |x_c|  (stored as fp16, rounded UP so that |x| <= s always),
//   q_c = round(x_c * MAX / s + MAX)  in [0, 2*MAX]      (alphabet of 2*MAX+1 = b-1 symbols)
//   x̂_c = (q_c - MAX) / MAX * s
// so |x_c - x̂_c| <= s / (2*MAX) for every element (plus float rounding).
// b = 256 gives the 8-bit baseline (255 levels, MAX = 127).
#pragma once

#include <cstdint>

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

}  // namespace ctx::codec
