#include "common/codec/rans_decoder.h"

#include <algorithm>
#include <atomic>
#include <type_traits>

#include "common/codec/freq_table.h"
#include "common/codec/rans_avx512.h"

namespace ctx::codec {

RansDecodeTables RansDecodeTables::Build(std::span<const uint16_t> freqs, int alphabet) {
  RansDecodeTables t;
  t.alphabet = alphabet;
  t.count = static_cast<int>(freqs.size() / alphabet);
  t.entry.assign(static_cast<size_t>(t.count) * kProbScale, 0);
  for (int k = 0; k < t.count; ++k) {
    uint32_t* e = t.entry.data() + static_cast<size_t>(k) * kProbScale;
    uint32_t start = 0;
    for (int s = 0; s < alphabet && start < kProbScale; ++s) {
      const uint32_t f =
          std::min<uint32_t>(freqs[static_cast<size_t>(k) * alphabet + s], kProbScale - start);
      const uint32_t base = f | static_cast<uint32_t>(s) << kSymbolShift;
      for (uint32_t j = 0; j < f; ++j) e[start + j] = base | j << kOffsetShift;
      start += f;
    }
  }
  return t;
}

absl::Status RansDecoder::Begin(absl::string_view stream) {
  p_ = reinterpret_cast<const uint8_t*>(stream.data());
  end_ = p_ + stream.size();
  overrun_ = false;
  if (stream.size() < kRansHeaderBytes) return absl::DataLossError("rANS stream truncated");
  for (uint32_t& x : x_) {
    x = p_[0] | p_[1] << 8 | p_[2] << 16 | static_cast<uint32_t>(p_[3]) << 24;
    p_ += 4;
    if (x < kRansL || x >= (kRansL << 16)) {
      return absl::DataLossError("rANS stream has an invalid initial state");
    }
  }
  return absl::OkStatus();
}

absl::Status RansDecoder::Finish() const {
  if (overrun_ || p_ != end_) return absl::DataLossError("rANS stream length does not match");
  for (uint32_t x : x_) {
    if (x != kRansL) return absl::DataLossError("rANS stream corrupted (final state mismatch)");
  }
  return absl::OkStatus();
}

// Invariants: x stays in I = [L, 2^16 L) between symbols (L = kRansL = 2^15). Decoding from x:
//   slot = x mod M names s (its packed table entry), x = f * (x / M) + slot - start (the inverse of
//   C) lands in [f L/M, 2^16 f L/M), so x >= 2^5; if x < L one 16-bit word brings it back into I.
// Reads: a row of a column group needs at most 2 bytes per lane; rows are decoded unchecked
// while that many bytes remain, the last ones with checked reads (zeros past the end, and
// Finish reports the overrun).
namespace {

struct Group {
  const uint32_t* entry[kRansLanes];  // lane k's table
};

// One row of a column group, W lanes (W = kRansLanes for full groups: unrolled), or `width`.
// Out = float: dequantized value[s] * step; Out = uint8_t: the symbol.
template <int W, bool kChecked, typename Out>
inline void DecodeRow(uint32_t* x, const Group& g, int width, const uint8_t*& p, const uint8_t* end,
                      bool* overrun, const float* value, float step, Out* out) {
  const int n = W > 0 ? W : width;
  for (int k = 0; k < n; ++k) {
    uint32_t xk = x[k];
    const uint32_t e = g.entry[k][xk & (kProbScale - 1)];
    const uint32_t s = e >> RansDecodeTables::kSymbolShift;
    xk = (e & RansDecodeTables::kFreqMask) * (xk >> kProbBits) +
         ((e >> RansDecodeTables::kOffsetShift) & RansDecodeTables::kOffsetMask);
    RenormalizeLane<kChecked>(&xk, p, end, overrun);
    x[k] = xk;
    if constexpr (std::is_same_v<Out, float>) {
      out[k] = value[s] * step;
    } else {
      (void)value, (void)step;
      out[k] = static_cast<uint8_t>(s);
    }
  }
}

#ifdef CTX_RANS_AVX512
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

// Full column groups, AVX-512: lanes 0..15 and 16..31 of a row are two vectors (independent
// dependency chains). Per vector: slot = x & (M-1); e = gather of the lanes' packed entries;
// x = freq * (x >> kProbBits) + (slot - start); lanes with x < L take the next words in lane
// order (vpexpandd), exactly the scalar path's reads. Decodes rows [r, rows) while 64 bytes
// (the worst case of a row) remain; returns the first row not decoded.
CTX_AVX512_TARGET size_t DecodeRowsAvx512(uint32_t* x, const uint32_t* entry, size_t entry_step,
                                          size_t r, size_t rows, int cols, const uint8_t*& p,
                                          const uint8_t* end, int max_q, const float* row_step,
                                          float* dest, const char* pf, size_t pf_lines,
                                          size_t pf_per_row) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i off0 = _mm512_mullo_epi32(lane, _mm512_set1_epi32(static_cast<int>(entry_step)));
  const __m512i off1 = _mm512_add_epi32(off0, _mm512_set1_epi32(static_cast<int>(16 * entry_step)));
  const __m512i vmax_q = _mm512_set1_epi32(max_q);
  __m512i x0 = _mm512_loadu_si512(x), x1 = _mm512_loadu_si512(x + 16);
  const uint8_t* q = p;
  for (; r < rows && end - q >= 4 * kRansLanes / 2; ++r) {
    for (size_t i = 0; i < pf_per_row && pf_lines > 0; ++i, --pf_lines, pf += 64) {
      _mm_prefetch(pf, _MM_HINT_T0);
    }
    __m512i s0, s1;
    DecodeVector16(&x0, &s0, off0, entry, &q);
    DecodeVector16(&x1, &s1, off1, entry, &q);
    const __m512 step = _mm512_set1_ps(row_step[r]);
    float* out = dest + r * cols;
    _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s0, vmax_q)), step));
    _mm512_storeu_ps(out + 16,
                     _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s1, vmax_q)), step));
  }
  _mm512_storeu_si512(x, x0);
  _mm512_storeu_si512(x + 16, x1);
  p = q;
  return r;
}
#pragma GCC diagnostic pop

bool CpuHasAvx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}
#else
bool CpuHasAvx512() { return false; }
#endif

std::atomic<bool>& SimdEnabled() {
  static std::atomic<bool> enabled{CpuHasAvx512()};
  return enabled;
}

}  // namespace

void SetRansSimdEnabled(bool enabled) { SimdEnabled() = enabled && CpuHasAvx512(); }
bool RansSimdAvailable() { return CpuHasAvx512(); }
bool RansSimdEnabled() { return SimdEnabled().load(std::memory_order_relaxed); }

template <typename Out>
absl::Status RansDecoder::DecodeBlock(size_t rows, int cols, const RansDecodeTables& t,
                                      int table_stride, int max_q, const float* row_step,
                                      Out* dest) {
  float value[256] = {};  // symbol -> (s - max_q), the fused dequantizer's LUT
  if constexpr (std::is_same_v<Out, float>) {
    for (int s = 0; s < t.alphabet; ++s) value[s] = static_cast<float>(s - max_q);
  }
  const size_t entry_step = static_cast<size_t>(table_stride) * kProbScale;
  const uint8_t* p = p_;
  [[maybe_unused]] const bool simd = SimdEnabled().load(std::memory_order_relaxed);
  uint32_t x[kRansLanes];
  std::copy(x_, x_ + kRansLanes, x);
  for (size_t c0 = 0; c0 < static_cast<size_t>(cols); c0 += kRansLanes) {
    const int width = static_cast<int>(std::min<size_t>(kRansLanes, cols - c0));
    Group g;
    for (int k = 0; k < width; ++k) g.entry[k] = t.entry.data() + (c0 + k) * entry_step;
    // Tables of the group decoded next, prefetched a few lines per row: this block's next
    // group, else the first group of the block announced by PrefetchNext (cold otherwise: a
    // slot's tables are 512 KB at C = 128, a chunk's several MB, more than L2).
    const uint32_t* pf = nullptr;
    size_t pf_count = 0;
    if (c0 + kRansLanes < static_cast<size_t>(cols) && entry_step != 0) {
      pf = t.entry.data() + (c0 + kRansLanes) * entry_step;
      pf_count = (std::min<size_t>(cols, c0 + 2 * kRansLanes) - c0 - kRansLanes) * entry_step;
    } else if (c0 + kRansLanes >= static_cast<size_t>(cols) && next_ != nullptr) {
      pf = next_->entry.data();
      pf_count = next_count_;
    }
    const char* pf_line = reinterpret_cast<const char*>(pf);
    size_t pf_lines = pf_count * sizeof(uint32_t) / 64;
    const size_t pf_per_row = rows ? (pf_lines + rows - 1) / rows : 0;
    size_t r = 0;
#ifdef CTX_RANS_AVX512
    if constexpr (std::is_same_v<Out, float>) {
      static_assert(kRansLanes == 32, "the AVX-512 path decodes a row as two 16-lane vectors");
      if (width == kRansLanes && simd) {
        r = DecodeRowsAvx512(x, g.entry[0], entry_step, 0, rows, cols, p, end_, max_q, row_step,
                             dest + c0, pf_line, pf_lines, pf_per_row);
        pf_lines = 0;  // done there, as far as it got
      }
    }
#endif
    for (; r < rows; ++r) {
      for (size_t i = 0; i < pf_per_row && pf_lines > 0; ++i, --pf_lines, pf_line += 64) {
        __builtin_prefetch(pf_line);  // a hint: never faults
      }
      Out* out = dest + r * cols + c0;
      const float step = row_step ? row_step[r] : 0.f;
      if (end_ - p >= 2 * kRansLanes) {
        if (width == kRansLanes) {
          DecodeRow<kRansLanes, false>(x, g, width, p, end_, &overrun_, value, step, out);
        } else {
          DecodeRow<0, false>(x, g, width, p, end_, &overrun_, value, step, out);
        }
      } else {
        DecodeRow<0, true>(x, g, width, p, end_, &overrun_, value, step, out);
      }
    }
  }
  std::copy(x, x + kRansLanes, x_);
  p_ = p;
  next_ = nullptr;
  if (overrun_) return absl::DataLossError("rANS stream truncated");
  return absl::OkStatus();
}

void RansDecoder::PrefetchNext(const RansDecodeTables& t, int table_stride) {
  next_ = &t;
  // Entries of the first column group: one table (shared), or 32 tables table_stride apart.
  next_count_ = std::min(t.entry.size(), static_cast<size_t>(kProbScale) *
                                             (table_stride == 0 ? 1 : kRansLanes * table_stride));
}

absl::Status RansDecoder::Block(size_t rows, int cols, const RansDecodeTables& t, int table_stride,
                                uint8_t* symbols) {
  return DecodeBlock<uint8_t>(rows, cols, t, table_stride, 0, nullptr, symbols);
}

absl::Status RansDecoder::BlockDequantize(size_t rows, int cols, const RansDecodeTables& t,
                                          int table_stride, int max_q, const float* row_step,
                                          float* values) {
  return DecodeBlock<float>(rows, cols, t, table_stride, max_q, row_step, values);
}

absl::Status RansDecode(absl::string_view in, size_t rows, int cols, const RansDecodeTables& t,
                        int table_stride, uint8_t* symbols) {
  RansDecoder d;
  if (absl::Status s = d.Begin(in); !s.ok()) return s;
  if (absl::Status s = d.Block(rows, cols, t, table_stride, symbols); !s.ok()) return s;
  return d.Finish();
}

}  // namespace ctx::codec
