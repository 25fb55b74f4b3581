#include "common/codec/rans_decoder.h"

#include <algorithm>
#include <type_traits>

#include "common/codec/freq_table.h"
#include "common/codec/rans_encoder.h"

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

// Invariants: x stays in [L, 256 L) between symbols (L = kRansL). Decoding s from x:
//   slot = x mod M  identifies s (lut), then x = f * (x / M) + slot - start  (inverse of C),
//   which leaves x in [f L / M, 256 f L/M): read bytes while x < L to return to I.
// The reads are bounds-checked: past the end we feed zeros and report DataLoss afterwards.
namespace {

// Emit<uint8_t>: store symbols; Emit<float>: store (s - max_q) * row_step[r] (dequantized).
template <typename Out>
absl::Status DecodeImpl(absl::string_view in, size_t rows, int cols, const RansDecodeTables& t,
                        int table_stride, Out* dest, const float* row_step, int max_q) {
  const uint8_t* ptr = reinterpret_cast<const uint8_t*>(in.data());
  const uint8_t* const end = ptr + in.size();
  if (in.size() < 4 * kRansStates) return absl::DataLossError("rANS stream truncated");
  uint32_t x[kRansStates];
  for (uint32_t& s : x) {
    s = ptr[0] | ptr[1] << 8 | ptr[2] << 16 | static_cast<uint32_t>(ptr[3]) << 24;
    ptr += 4;
    if (s < kRansL || s >= (kRansL << 8)) {
      return absl::DataLossError("rANS stream has an invalid initial state");
    }
  }
  static_assert(kRansStates == 4 && kRansGroup == 4, "the unrolled loop codes 4 states");
  bool overrun = false;
  const size_t lut_step = static_cast<size_t>(table_stride) * kProbScale;
  const size_t sym_step = static_cast<size_t>(table_stride) * t.alphabet;
  const uint8_t* const lut = t.lut.data();
  const uint32_t* const sym = t.sym.data();
  const uint8_t* p = ptr;
  // One symbol with state `st` from table column `c`. After the update st >= 2^13, so at most
  // two bytes bring it back to >= L (2^13 << 16 >= 2^23); with >= 2 bytes left both reads are
  // in bounds, otherwise the checked loop runs.
  // (A branchless renorm measured no faster here: the lut loads dominate.)
  auto step = [&](uint32_t& st, size_t c) -> uint8_t {
    const uint32_t slot = st & (kProbScale - 1);
    const uint8_t s = lut[c * lut_step + slot];
    const uint32_t info = sym[c * sym_step + s];
    st = (info & 0xffff) * (st >> kProbBits) + slot - (info >> 16);
    if (st < kRansL) {
      if (end - p >= 2) {
        st = (st << 8) | *p++;
        if (st < kRansL) st = (st << 8) | *p++;
      } else {
        while (st < kRansL) {
          const bool have = p < end;
          overrun |= !have;
          st = (st << 8) | (have ? *p : 0u);
          p += have;
        }
      }
    }
    return s;
  };
  uint32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
  uint32_t* states[kRansStates] = {&x0, &x1, &x2, &x3};
  const size_t stride = static_cast<size_t>(cols);
  for (size_t c0 = 0; c0 < stride; c0 += kRansGroup) {
    const size_t width = std::min<size_t>(kRansGroup, stride - c0);
    Out* out = dest + c0;
    auto emit = [&](uint8_t v, size_t r) -> Out {
      if constexpr (std::is_same_v<Out, float>) {
        return static_cast<float>(static_cast<int>(v) - max_q) * row_step[r];
      } else {
        (void)r;
        return v;
      }
    };
    if (width == kRansGroup) {
      // Full group: state k decodes column c0 + k of every row (sequence index j = 4*(..) + k).
      for (size_t r = 0; r < rows; ++r, out += stride) {
        const uint8_t s0 = step(x0, c0), s1 = step(x1, c0 + 1), s2 = step(x2, c0 + 2),
                      s3 = step(x3, c0 + 3);
        out[0] = emit(s0, r), out[1] = emit(s1, r), out[2] = emit(s2, r), out[3] = emit(s3, r);
      }
    } else {
      size_t j = c0 * rows;
      for (size_t r = 0; r < rows; ++r, out += stride) {
        for (size_t k = 0; k < width; ++k, ++j) {
          out[k] = emit(step(*states[j % kRansStates], c0 + k), r);
        }
      }
    }
  }
  x[0] = x0, x[1] = x1, x[2] = x2, x[3] = x3;
  ptr = p;
  if (overrun || ptr != end) return absl::DataLossError("rANS stream length does not match");
  for (uint32_t s : x) {
    if (s != kRansL) return absl::DataLossError("rANS stream corrupted (final state mismatch)");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RansDecode(absl::string_view in, size_t rows, int cols, const RansDecodeTables& t,
                        int table_stride, uint8_t* symbols) {
  return DecodeImpl<uint8_t>(in, rows, cols, t, table_stride, symbols, nullptr, 0);
}

absl::Status RansDecodeDequantize(absl::string_view in, size_t rows, int cols,
                                  const RansDecodeTables& t, int table_stride, int max_q,
                                  const float* row_step, float* values) {
  return DecodeImpl<float>(in, rows, cols, t, table_stride, values, row_step, max_q);
}

}  // namespace ctx::codec
