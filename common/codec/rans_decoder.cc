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
  static_assert(kRansStates == 4, "the unrolled loop below codes 4 states");
  bool overrun = false;
  const size_t n = rows * static_cast<size_t>(cols);
  const size_t lut_step = static_cast<size_t>(table_stride) * kProbScale;
  const size_t sym_step = static_cast<size_t>(table_stride) * t.alphabet;
  const uint8_t* lut = t.lut.data();
  const uint32_t* sym = t.sym.data();
  int c = 0;
  auto step = [&](uint32_t& st, size_t i) {
    const uint32_t slot = st & (kProbScale - 1);
    const uint8_t s = lut[c * lut_step + slot];
    const uint32_t info = sym[c * sym_step + s];
    st = (info & 0xffff) * (st >> kProbBits) + slot - (info >> 16);
    while (st < kRansL) {
      const bool have = ptr < end;
      overrun |= !have;
      st = (st << 8) | (have ? *ptr : 0u);
      ptr += have;
    }
    symbols[i] = s;
    c = c + 1 == cols ? 0 : c + 1;
  };
  size_t i = 0;
  for (; i + kRansStates <= n; i += kRansStates) {
    step(x[0], i);
    step(x[1], i + 1);
    step(x[2], i + 2);
    step(x[3], i + 3);
  }
  for (; i < n; ++i) step(x[i % kRansStates], i);
  if (overrun || ptr != end) return absl::DataLossError("rANS stream length does not match");
  for (uint32_t s : x) {
    if (s != kRansL) return absl::DataLossError("rANS stream corrupted (final state mismatch)");
  }
  return absl::OkStatus();
}

}  // namespace ctx::codec
