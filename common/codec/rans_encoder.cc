#include "common/codec/rans_encoder.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "common/codec/freq_table.h"

namespace ctx::codec {

// Invariants (ryg_rans, word variant):
//  * a state x is always in I = [L, 2^16 L) = [2^15, 2^31) between symbols, L = kRansL;
//  * coding s (start b, freq f) maps x to C(x) = (x / f) * M + b + x % f, M = 2^kProbBits;
//    C(x) is in I iff x is in [f L/M, 2^16 f L/M), so first emit the low 16 bits once if
//    x >= x_max = ((L / M) << 16) * f (one shift always suffices: x < 2^31 -> x >> 16 < 2^15);
//    x < x_max <= 2^31 also keeps the reciprocal division below exact (Alverson);
//  * rANS is LIFO: symbols are coded last-to-first and words written backwards, so that the
//    decoder reads forwards and produces symbols first-to-last.
RansEncSymbol MakeRansEncSymbol(uint32_t start, uint32_t freq) {
  RansEncSymbol s;
  s.x_max = ((kRansL >> kProbBits) << 16) * freq;
  s.cmpl_freq = static_cast<uint16_t>(kProbScale - freq);
  if (freq < 2) {
    // 1/1 does not fit the fixed point: q = mul_hi(x, 2^32 - 1) = x - 1 for 0 < x < 2^32,
    // and bias = start + M - 1 makes x + bias + q * (M - 1) = q * M + start + 0 (x % 1 = 0).
    s.rcp_freq = ~0u;
    s.rcp_shift = 0;
    s.bias = start + kProbScale - 1;
  } else {
    uint32_t shift = 0;
    while (freq > (1u << shift)) ++shift;  // ceil(log2(freq))
    s.rcp_freq = static_cast<uint32_t>(((uint64_t{1} << (shift + 31)) + freq - 1) / freq);
    s.rcp_shift = static_cast<uint16_t>(shift - 1);
    s.bias = start;
  }
  return s;
}

namespace {
std::vector<uint8_t>& ThreadBuffer() {
  // Reused per thread: a fresh buffer per chunk costs page faults + zeroing.
  static thread_local std::vector<uint8_t> buf;
  return buf;
}
}  // namespace

RansEncoder::RansEncoder(size_t max_symbols) : buf_(ThreadBuffer()) {
  const size_t need = 2 * max_symbols + kRansHeaderBytes + 16;
  if (buf_.size() < need) buf_.resize(need);
  ptr_ = buf_.data() + buf_.size();
  for (uint32_t& x : x_) x = kRansL;
}

namespace {

// One row of a column group, lanes W-1 .. 0 (W = kRansLanes: unrolled; 0: `width` lanes).
template <int W>
inline void PutRow(uint32_t* x, const RansEncSymbol* const* tab, const uint8_t* row, int width,
                   uint8_t*& ptr) {
  const int n = W > 0 ? W : width;
  for (int k = n; k-- > 0;) {
    const RansEncSymbol& e = tab[k][row[k]];
    uint32_t xk = x[k];
    // Branchless renorm: always store the low word, keep it only if x >= x_max.
    const uint32_t out = xk >= e.x_max;
    const uint16_t word = static_cast<uint16_t>(xk);
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(ptr - 2, &word, 2);
    } else {
      ptr[-2] = static_cast<uint8_t>(word);
      ptr[-1] = static_cast<uint8_t>(word >> 8);
    }
    ptr -= 2 * out;
    xk >>= 16 * out;
    const uint32_t q =
        static_cast<uint32_t>((static_cast<uint64_t>(xk) * e.rcp_freq) >> 32) >> e.rcp_shift;
    x[k] = xk + e.bias + q * e.cmpl_freq;
  }
}

// Codes a block column group by column group and row by row, both last first (the reverse of
// the decoder's order). Row r of group c0 uses its columns' own tables (tables + c * col_step)
// or, with kRepeat and rep_rows[r] >= 0, the repeat table of each column's symbol in row
// rep_rows[r] (rep_tables + q_rep * rep_step).
template <bool kRepeat>
void PutGroups(uint32_t* x, uint8_t*& ptr, const uint8_t* symbols, size_t rows, int cols,
               const RansEncSymbol* tables, size_t col_step, const RansEncSymbol* rep_tables,
               size_t rep_step, const int32_t* rep_rows) {
  for (size_t c0 = (static_cast<size_t>(cols) - 1) / kRansLanes * kRansLanes;; c0 -= kRansLanes) {
    const int width = static_cast<int>(std::min<size_t>(kRansLanes, cols - c0));
    const RansEncSymbol* own[kRansLanes];
    for (int k = 0; k < width; ++k) own[k] = tables + (c0 + k) * col_step;
    for (size_t r = rows; r-- > 0;) {
      const uint8_t* row = symbols + r * cols + c0;
      const RansEncSymbol* const* tab = own;
      const RansEncSymbol* rep[kRansLanes];
      if constexpr (kRepeat) {
        if (rep_rows[r] >= 0) {  // the encoder's own map: rep_rows[r] < r
          const uint8_t* prev = symbols + static_cast<size_t>(rep_rows[r]) * cols + c0;
          for (int k = 0; k < width; ++k) rep[k] = rep_tables + prev[k] * rep_step;
          tab = rep;
        }
      }
      if (width == kRansLanes) {
        PutRow<kRansLanes>(x, tab, row, width, ptr);
      } else {
        PutRow<0>(x, tab, row, width, ptr);
      }
    }
    if (c0 == 0) break;
  }
}

}  // namespace

void RansEncoder::PutBlock(const uint8_t* symbols, size_t rows, int cols,
                           const RansEncSymbol* tables, int table_stride, int alphabet) {
  uint8_t* ptr = ptr_;
  uint32_t x[kRansLanes];  // local: the byte stores cannot alias it
  std::copy(x_, x_ + kRansLanes, x);
  PutGroups<false>(x, ptr, symbols, rows, cols, tables,
                   static_cast<size_t>(table_stride) * alphabet, nullptr, 0, nullptr);
  std::copy(x, x + kRansLanes, x_);
  ptr_ = ptr;
}

void RansEncoder::PutBlockRepeat(const uint8_t* symbols, size_t rows, int cols,
                                 const RansEncSymbol* tables, int alphabet,
                                 const int32_t* rep_rows) {
  const size_t a = static_cast<size_t>(alphabet);
  uint8_t* ptr = ptr_;
  uint32_t x[kRansLanes];
  std::copy(x_, x_ + kRansLanes, x);
  PutGroups<true>(x, ptr, symbols, rows, cols, tables, a, tables + static_cast<size_t>(cols) * a, a,
                  rep_rows);
  std::copy(x, x + kRansLanes, x_);
  ptr_ = ptr;
}

void RansEncoder::Finish(std::string* out) {
  // Lane 15's state first so that lane 0 lands at the lowest address.
  for (int k = kRansLanes - 1; k >= 0; --k) {
    ptr_ -= 4;
    for (int b = 0; b < 4; ++b) ptr_[b] = static_cast<uint8_t>(x_[k] >> (8 * b));
  }
  out->append(reinterpret_cast<const char*>(ptr_),
              static_cast<size_t>(buf_.data() + buf_.size() - ptr_));
}

void RansEncode(const uint8_t* symbols, size_t rows, int cols, const RansEncSymbol* tables,
                int table_stride, int alphabet, std::string* out) {
  RansEncoder enc(rows * static_cast<size_t>(cols));
  enc.PutBlock(symbols, rows, cols, tables, table_stride, alphabet);
  enc.Finish(out);
}

}  // namespace ctx::codec
