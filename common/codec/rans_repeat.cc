// RansDecoder::BlockDequantizeRepeat: decoding a block whose rows pick their tables by the
// chunk's repeat map (repeat_map.h). Same stream, lanes and renormalization as DecodeBlock
// (rans_decoder.cc); only the table of each (row, lane) differs:
//   row without an earlier same-id row: lane k of group g uses table 32g + k (its channel's)
//   repeated row:                       table cols + q_rep, q_rep = the symbol of the same
//                                       channel in the earlier row (decoded before: rows go
//                                       in order inside a group, and the earlier row is in
//                                       the same group)
// Kept apart from DecodeBlock so that its hot loop stays as it is. The table look-up is in
// DecodeSymbol below and DecodeVector16 (rans_avx512.h) (the only code that knows RansDecodeTables'
// layout).
#include <algorithm>

#include "common/codec/freq_table.h"
#include "common/codec/rans_avx512.h"
#include "common/codec/rans_decoder.h"

namespace ctx::codec {

namespace {

// Table i of t (its M packed entries, rans_decoder.h).
using LaneTable = const uint32_t*;
inline LaneTable TableOf(const RansDecodeTables& t, size_t i) {
  return t.entry.data() + i * kProbScale;
}

// One symbol from state *x under table `tab` (before renormalization).
inline uint32_t DecodeSymbol(uint32_t* x, LaneTable tab) {
  const uint32_t xk = *x;
  const uint32_t e = tab[xk & (kProbScale - 1)];
  *x = (e & RansDecodeTables::kFreqMask) * (xk >> kProbBits) +
       ((e >> RansDecodeTables::kOffsetShift) & RansDecodeTables::kOffsetMask);
  return e >> RansDecodeTables::kSymbolShift;
}

// One row of `width` lanes (scalar), renormalization as in rans_decoder.cc's DecodeRow.
template <bool kChecked>
inline void DecodeRowRepeat(uint32_t* x, const LaneTable* tab, int width, const uint8_t*& p,
                            const uint8_t* end, bool* overrun, const float* value, float step,
                            float* out, uint8_t* sym_out) {
  for (int k = 0; k < width; ++k) {
    uint32_t xk = x[k];
    const uint32_t s = DecodeSymbol(&xk, tab[k]);
    RenormalizeLane<kChecked>(&xk, p, end, overrun);
    x[k] = xk;
    out[k] = value[s] * step;
    sym_out[k] = static_cast<uint8_t>(s);
  }
}

#ifdef CTX_RANS_AVX512
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

// Rows [r, rows) of the full column group at c0 while 64 bytes remain; returns the first row
// not decoded. Branchless table choice: a row without repeat blends in its channels' indices
// (its 32-byte load reads row 0, which exists, and is discarded).
CTX_AVX512_TARGET size_t DecodeRowsRepeatAvx512(uint32_t* x, const RansDecodeTables& t, size_t c0,
                                                size_t r, size_t rows, int cols, const uint8_t*& p,
                                                const uint8_t* end, int max_q,
                                                const float* row_step, const int32_t* rep_rows,
                                                uint8_t* symbols, float* dest, const char* pf,
                                                size_t pf_lines, size_t pf_per_row) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i own0 = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int>(c0)));
  const __m512i own1 = _mm512_add_epi32(own0, _mm512_set1_epi32(16));
  const __m512i rep_base = _mm512_set1_epi32(cols);
  const __m512i vmax_q = _mm512_set1_epi32(max_q);
  const uint32_t* entry = t.entry.data();
  __m512i x0 = _mm512_loadu_si512(x), x1 = _mm512_loadu_si512(x + 16);
  const uint8_t* q = p;
  for (; r < rows && end - q >= 4 * kRansLanes / 2; ++r) {
    for (size_t i = 0; i < pf_per_row && pf_lines > 0; ++i, --pf_lines, pf += 64) {
      _mm_prefetch(pf, _MM_HINT_T0);  // a hint: never faults
    }
    const int32_t rep = rep_rows[r];
    const __mmask16 use = rep >= 0 ? 0xffff : 0;
    const uint8_t* prev = symbols + static_cast<size_t>(rep >= 0 ? rep : 0) * cols + c0;
    const __m512i q0 =
        _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(prev)));
    const __m512i q1 =
        _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(prev + 16)));
    const __m512i i0 = _mm512_mask_add_epi32(own0, use, q0, rep_base);
    const __m512i i1 = _mm512_mask_add_epi32(own1, use, q1, rep_base);
    __m512i s0, s1;
    DecodeVector16(&x0, &s0, _mm512_slli_epi32(i0, kProbBits), entry, &q);
    DecodeVector16(&x1, &s1, _mm512_slli_epi32(i1, kProbBits), entry, &q);
    const __m512 step = _mm512_set1_ps(row_step[r]);
    float* out = dest + r * cols + c0;
    _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s0, vmax_q)), step));
    _mm512_storeu_ps(out + 16,
                     _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s1, vmax_q)), step));
    uint8_t* so = symbols + r * cols + c0;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(so), _mm512_cvtepi32_epi8(s0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(so + 16), _mm512_cvtepi32_epi8(s1));
  }
  _mm512_storeu_si512(x, x0);
  _mm512_storeu_si512(x + 16, x1);
  p = q;
  return r;
}
#pragma GCC diagnostic pop
#endif

}  // namespace

absl::Status RansDecoder::BlockDequantizeRepeat(size_t rows, int cols, const RansDecodeTables& t,
                                                int max_q, const float* row_step,
                                                const int32_t* rep_rows, uint8_t* symbols,
                                                float* values) {
  float value[256] = {};
  for (int s = 0; s < t.alphabet; ++s) value[s] = static_cast<float>(s - max_q);
  const uint8_t* p = p_;
  [[maybe_unused]] const bool simd = RansSimdEnabled();
  uint32_t x[kRansLanes];
  std::copy(x_, x_ + kRansLanes, x);
  for (size_t c0 = 0; c0 < static_cast<size_t>(cols); c0 += kRansLanes) {
    const int width = static_cast<int>(std::min<size_t>(kRansLanes, cols - c0));
    LaneTable own[kRansLanes], rep[kRansLanes];
    for (int k = 0; k < width; ++k) own[k] = TableOf(t, c0 + k);
    // As DecodeBlock: prefetch the next group's channel tables while decoding this one, or at
    // the last group those announced by PrefetchNext (the repeat tables stay hot: shared).
    const uint32_t* pf = nullptr;
    size_t pf_count = 0;
    if (c0 + kRansLanes < static_cast<size_t>(cols)) {
      pf = TableOf(t, c0 + kRansLanes);
      pf_count = (std::min<size_t>(cols, c0 + 2 * kRansLanes) - c0 - kRansLanes) * kProbScale;
    } else if (next_ != nullptr) {
      pf = next_->entry.data();
      pf_count = next_count_;
    }
    const char* pf_line = reinterpret_cast<const char*>(pf);
    size_t pf_lines = pf_count * sizeof(uint32_t) / 64;
    const size_t pf_per_row = rows ? (pf_lines + rows - 1) / rows : 0;
    size_t r = 0;
#ifdef CTX_RANS_AVX512
    if (width == kRansLanes && simd) {
      r = DecodeRowsRepeatAvx512(x, t, c0, 0, rows, cols, p, end_, max_q, row_step, rep_rows,
                                 symbols, values, pf_line, pf_lines, pf_per_row);
      pf_lines = 0;
    }
#endif
    for (; r < rows; ++r) {
      for (size_t i = 0; i < pf_per_row && pf_lines > 0; ++i, --pf_lines, pf_line += 64) {
        __builtin_prefetch(pf_line);
      }
      const LaneTable* tab = own;
      if (rep_rows[r] >= 0) {
        const uint8_t* prev = symbols + static_cast<size_t>(rep_rows[r]) * cols + c0;
        for (int k = 0; k < width; ++k) rep[k] = TableOf(t, static_cast<size_t>(cols) + prev[k]);
        tab = rep;
      }
      float* out = values + r * cols + c0;
      uint8_t* sym_out = symbols + r * cols + c0;
      if (end_ - p >= 2 * kRansLanes) {
        DecodeRowRepeat<false>(x, tab, width, p, end_, &overrun_, value, row_step[r], out, sym_out);
      } else {
        DecodeRowRepeat<true>(x, tab, width, p, end_, &overrun_, value, row_step[r], out, sym_out);
      }
    }
  }
  std::copy(x, x + kRansLanes, x_);
  p_ = p;
  next_ = nullptr;
  if (overrun_) return absl::DataLossError("rANS stream truncated");
  return absl::OkStatus();
}

}  // namespace ctx::codec
