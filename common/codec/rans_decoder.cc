#include "common/codec/rans_decoder.h"

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
absl::Status RansDecode(absl::string_view in, size_t rows, int cols, const RansDecodeTables& t,
                        int table_stride, uint8_t* symbols) {
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
  static_assert(kRansStates == 4, "the unrolled loops below code 4 states");
  bool overrun = false;
  const size_t lut_step = static_cast<size_t>(table_stride) * kProbScale;
  const size_t sym_step = static_cast<size_t>(table_stride) * t.alphabet;
  const uint8_t* const lut = t.lut.data();
  const uint32_t* const sym = t.sym.data();
  const uint8_t* p = ptr;
  uint8_t* out = symbols;
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
  if (cols % kRansStates == 0) {
    // Symbol r*cols + c uses state c % 4: unroll over columns.
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < static_cast<size_t>(cols); c += 4) {
        const uint8_t s0 = step(x0, c), s1 = step(x1, c + 1), s2 = step(x2, c + 2),
                      s3 = step(x3, c + 3);
        out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
        out += 4;
      }
    }
  } else {
    const size_t n = rows * static_cast<size_t>(cols);
    size_t c = 0;
    uint32_t* states[kRansStates] = {&x0, &x1, &x2, &x3};
    for (size_t i = 0; i < n; ++i) {
      *out++ = step(*states[i % kRansStates], c);
      c = c + 1 == static_cast<size_t>(cols) ? 0 : c + 1;
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

}  // namespace ctx::codec
