#include "common/codec/rans_encoder.h"

#include <vector>

#include "common/codec/freq_table.h"

namespace ctx::codec {

// Invariants (ryg_rans):
//  * a state x is always in I = [L, 256 L) with L = kRansL = 2^23, so it fits 32 bits;
//  * to code s (start b, freq f) x becomes C(x) = (x / f) * M + b + x % f, M = 2^kProbBits;
//    C(x) stays in I iff x is in [f * L/M, 256 f L/M): so first shift bytes out while
//    x >= x_max = ((L >> kProbBits) << 8) * f (each shift divides x by 256);
//  * rANS is LIFO: we code symbols last-to-first and write bytes backwards, so that the
//    decoder reads forwards and produces symbols first-to-last.
void RansEncode(const uint8_t* symbols, size_t rows, int cols, const RansSymbol* tables,
                int table_stride, int alphabet, std::string* out) {
  const size_t n = rows * static_cast<size_t>(cols);
  // Worst case: 12 bits (<= 2 bytes) per symbol, plus the flushed states.
  std::vector<uint8_t> buf(2 * n + 4 * kRansStates + 16);
  uint8_t* const end = buf.data() + buf.size();
  uint8_t* ptr = end;
  uint32_t x[kRansStates];
  for (uint32_t& s : x) s = kRansL;

  const size_t col_step = static_cast<size_t>(table_stride) * alphabet;
  int c = cols - 1;
  for (size_t i = n; i-- > 0;) {
    const RansSymbol sym = tables[c * col_step + symbols[i]];
    uint32_t& st = x[i % kRansStates];
    const uint32_t x_max = ((kRansL >> kProbBits) << 8) * sym.freq;
    while (st >= x_max) {
      *--ptr = static_cast<uint8_t>(st);
      st >>= 8;
    }
    st = ((st / sym.freq) << kProbBits) + (st % sym.freq) + sym.start;
    c = c == 0 ? cols - 1 : c - 1;
  }
  // Flush the last state first so that state 0 lands at the lowest address.
  for (int k = kRansStates - 1; k >= 0; --k) {
    ptr -= 4;
    for (int b = 0; b < 4; ++b) ptr[b] = static_cast<uint8_t>(x[k] >> (8 * b));
  }
  out->append(reinterpret_cast<const char*>(ptr), static_cast<size_t>(end - ptr));
}

}  // namespace ctx::codec
