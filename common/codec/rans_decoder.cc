#include "common/codec/rans_decoder.h"

#include <algorithm>
#include <type_traits>

#include "common/codec/freq_table.h"

namespace ctx::codec {

RansDecodeTables RansDecodeTables::Build(std::span<const uint16_t> freqs, int alphabet) {
  RansDecodeTables t;
  t.alphabet = alphabet;
  t.count = static_cast<int>(freqs.size() / alphabet);
  t.lut.resize(static_cast<size_t>(t.count) * kProbScale);
  t.sym.resize(freqs.size());
  for (int k = 0; k < t.count; ++k) {
    uint8_t* lut = t.lut.data() + static_cast<size_t>(k) * kProbScale;
    uint32_t start = 0;
    for (int s = 0; s < alphabet; ++s) {
      const uint32_t f = freqs[static_cast<size_t>(k) * alphabet + s];
      t.sym[static_cast<size_t>(k) * alphabet + s] = f | (start << 16);
      for (uint32_t j = 0; j < f && start + j < kProbScale; ++j)
        lut[start + j] = static_cast<uint8_t>(s);
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
//   slot = x mod M names s (lut), x = f * (x / M) + slot - start (the inverse of C) lands in
//   [f L/M, 2^16 f L/M), so x >= 2^5; if x < L one 16-bit word brings it back into I.
// Reads: a row of a column group needs at most 2 bytes per lane; rows are decoded unchecked
// while that many bytes remain, the last ones with checked reads (zeros past the end, and
// Finish reports the overrun).
namespace {

struct Group {
  const uint8_t* lut[kRansLanes];
  const uint32_t* sym[kRansLanes];
};

// One row of a column group, W lanes (W = kRansLanes for full groups: unrolled), or `width`.
// Out = float: dequantized value[s] * step; Out = uint8_t: the symbol.
template <int W, bool kChecked, typename Out>
inline void DecodeRow(uint32_t* x, const Group& g, int width, const uint8_t*& p, const uint8_t* end,
                      bool* overrun, const float* value, float step, Out* out) {
  const int n = W > 0 ? W : width;
  for (int k = 0; k < n; ++k) {
    uint32_t xk = x[k];
    const uint32_t slot = xk & (kProbScale - 1);
    const uint32_t s = g.lut[k][slot];
    const uint32_t info = g.sym[k][s];
    xk = (info & 0xffff) * (xk >> kProbBits) + slot - (info >> 16);
    if constexpr (!kChecked) {  // hot path: no bounds check, branchless renorm
      const uint32_t word = p[0] | static_cast<uint32_t>(p[1]) << 8;
      const uint32_t in = xk < kRansL;
      xk = in ? (xk << 16) | word : xk;
      p += 2 * in;
    } else if (xk < kRansL) {
      const bool have = end - p >= 2;
      *overrun |= !have;
      xk = (xk << 16) | (have ? p[0] | static_cast<uint32_t>(p[1]) << 8 : 0u);
      p += have ? 2 : 0;
    }
    x[k] = xk;
    if constexpr (std::is_same_v<Out, float>) {
      out[k] = value[s] * step;
    } else {
      (void)value, (void)step;
      out[k] = static_cast<uint8_t>(s);
    }
  }
}

}  // namespace

template <typename Out>
absl::Status RansDecoder::DecodeBlock(size_t rows, int cols, const RansDecodeTables& t,
                                      int table_stride, int max_q, const float* row_step,
                                      Out* dest) {
  float value[256] = {};  // symbol -> (s - max_q), the fused dequantizer's LUT
  if constexpr (std::is_same_v<Out, float>) {
    for (int s = 0; s < t.alphabet; ++s) value[s] = static_cast<float>(s - max_q);
  }
  const size_t lut_step = static_cast<size_t>(table_stride) * kProbScale;
  const size_t sym_step = static_cast<size_t>(table_stride) * t.alphabet;
  const uint8_t* p = p_;
  uint32_t x[kRansLanes];
  std::copy(x_, x_ + kRansLanes, x);
  for (size_t c0 = 0; c0 < static_cast<size_t>(cols); c0 += kRansLanes) {
    const int width = static_cast<int>(std::min<size_t>(kRansLanes, cols - c0));
    Group g;
    for (int k = 0; k < width; ++k) {
      g.lut[k] = t.lut.data() + (c0 + k) * lut_step;
      g.sym[k] = t.sym.data() + (c0 + k) * sym_step;
    }
    for (size_t r = 0; r < rows; ++r) {
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
  if (overrun_) return absl::DataLossError("rANS stream truncated");
  return absl::OkStatus();
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
