#include "common/codec/rans_encoder.h"

#include <algorithm>
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
  // Worst case: kProbBits <= 16 bits (<= 2 bytes) per symbol, plus the flushed states.
  // Reused per thread: a fresh 2n-byte buffer per call costs page faults + zeroing.
  static thread_local std::vector<uint8_t> buf;
  if (buf.size() < 2 * n + 4 * kRansStates + 16) buf.resize(2 * n + 4 * kRansStates + 16);
  uint8_t* const end = buf.data() + buf.size();
  uint8_t* ptr = end;
  uint32_t x[kRansStates];
  for (uint32_t& s : x) s = kRansL;

  const size_t col_step = static_cast<size_t>(table_stride) * alphabet;
  // Coding order (see the header): column groups of 4, inside a group row by row; the j-th
  // symbol of that sequence uses state j % 4. We walk the sequence backwards.
  const size_t groups = (static_cast<size_t>(cols) + kRansGroup - 1) / kRansGroup;
  for (size_t g = groups; g-- > 0;) {
    const size_t c0 = g * kRansGroup;
    const size_t width = std::min<size_t>(kRansGroup, cols - c0);
    const size_t j0 = c0 * rows;  // sequence index of the group's first symbol
    for (size_t r = rows; r-- > 0;) {
      for (size_t k = width; k-- > 0;) {
        const size_t c = c0 + k;
        const RansSymbol sym = tables[c * col_step + symbols[r * cols + c]];
        uint32_t& st = x[(j0 + r * width + k) % kRansStates];
        const uint32_t x_max = ((kRansL >> kProbBits) << 8) * sym.freq;
        while (st >= x_max) {
          *--ptr = static_cast<uint8_t>(st);
          st >>= 8;
        }
        st = ((st / sym.freq) << kProbBits) + (st % sym.freq) + sym.start;
      }
    }
  }
  // Flush the last state first so that state 0 lands at the lowest address.
  for (int k = kRansStates - 1; k >= 0; --k) {
    ptr -= 4;
    for (int b = 0; b < 4; ++b) ptr[b] = static_cast<uint8_t>(x[k] >> (8 * b));
  }
  out->append(reinterpret_cast<const char*>(ptr), static_cast<size_t>(end - ptr));
}

}  // namespace ctx::codec
