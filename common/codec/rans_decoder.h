// Interleaved rANS decoder, the mirror of rans_encoder.h (same lanes, coding order, stream).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/codec/rans_encoder.h"

namespace ctx::codec {

// Decode-side form of a set of tables with a common alphabet (immutable once built; shared
// by any number of decoding threads): one packed entry per slot of each table,
//   entry[t * M + slot] = freq | (slot - start) << 11 | symbol << 24      (M = 2^kProbBits)
// for the symbol whose [start, start + freq) contains slot. Decoding a symbol is then ONE
// lookup (one gather per 16 lanes) instead of slot -> symbol -> (freq, start): the AVX-512
// path is bound by gathers, so this nearly halves decode time (4 KB per table instead of
// 1 KB + 4 bytes per symbol; a column group's 32 tables, 128 KB, stay in L2).
struct RansDecodeTables {
  static constexpr uint32_t kFreqMask = 0x7ff;  // bits 0..10: freq (<= M)
  static constexpr int kOffsetShift = 11;       // bits 11..20: slot - start (< freq <= M)
  static constexpr uint32_t kOffsetMask = 0x3ff;
  static constexpr int kSymbolShift = 24;  // bits 24..31: the symbol (alphabet <= 256)
  int alphabet = 0;
  int count = 0;
  std::vector<uint32_t> entry;  // [count][M]

  // freqs: count x alphabet frequencies, each table summing to 2^kProbBits (slots past a
  // table's sum, if any, decode as symbol 0 with freq 0 and never index outside the table).
  static RansDecodeTables Build(std::span<const uint16_t> freqs, int alphabet);
};

// Reads one stream block by block, in the order the encoder's blocks were coded (its Put
// order reversed). Never reads outside the stream: a block checks once per row of a column
// group that the worst case (16 bits per lane) is available, else takes a checked path.
// Full column groups of BlockDequantize run on AVX-512 (two 16-lane vectors: gathers from the
// tables, vpexpandd for the renormalization words) when the CPU has it, chosen at run time;
// the portable scalar path decodes the same bits to the same floats.
class RansDecoder {
 public:
  // Reads the lanes' initial states; DataLoss if the stream is shorter or a state is not in I.
  absl::Status Begin(absl::string_view stream);
  // Decodes rows x cols symbols (column c uses table c * table_stride).
  absl::Status Block(size_t rows, int cols, const RansDecodeTables& t, int table_stride,
                     uint8_t* symbols);
  // Same, fused with dequantization: values[r * cols + c] = (s - max_q) * row_step[r].
  absl::Status BlockDequantize(size_t rows, int cols, const RansDecodeTables& t, int table_stride,
                               int max_q, const float* row_step, float* values);
  // Optional hint: `t` (with `table_stride`) are the tables of the block decoded after the next
  // Block/BlockDequantize call; that call prefetches their first column group's tables while
  // it decodes its last group. `t` must outlive that call.
  void PrefetchNext(const RansDecodeTables& t, int table_stride);
  // Same with repeat contexts (rans_repeat.cc; the mirror of RansEncoder::PutBlockRepeat):
  // `t` holds cols + alphabet tables; row r decodes column c with table c if rep_rows[r] < 0,
  // else with table cols + symbols[rep_rows[r] * cols + c]. Writes the symbols [rows][cols]
  // too (later rows read them). Requires kNoRepeat <= rep_rows[r] < r (checked by the caller).
  absl::Status BlockDequantizeRepeat(size_t rows, int cols, const RansDecodeTables& t, int max_q,
                                     const float* row_step, const int32_t* rep_rows,
                                     uint8_t* symbols, float* values);
  // DataLoss unless every byte was consumed and every lane is back at the encoder's initial
  // state L (which catches nearly every corruption).
  absl::Status Finish() const;

 private:
  template <typename Out>
  absl::Status DecodeBlock(size_t rows, int cols, const RansDecodeTables& t, int table_stride,
                           int max_q, const float* row_step, Out* dest);
  const uint8_t* p_ = nullptr;
  const uint8_t* end_ = nullptr;
  bool overrun_ = false;
  const RansDecodeTables* next_ = nullptr;  // PrefetchNext
  size_t next_count_ = 0;                   // entries of next_ to prefetch
  uint32_t x_[kRansLanes] = {};
};

// Whether BlockDequantize may use the AVX-512 path (default: if the CPU supports it). For
// tests and benchmarks of the portable path; not thread-safe against running decoders.
void SetRansSimdEnabled(bool enabled);
bool RansSimdAvailable();
bool RansSimdEnabled();  // the current setting

// One block as a whole stream: Begin + Block + Finish.
absl::Status RansDecode(absl::string_view in, size_t rows, int cols, const RansDecodeTables& t,
                        int table_stride, uint8_t* symbols);

// Renormalizes one lane's state after a symbol: if x fell below L, one 16-bit little-endian
// word from p brings it back into [L, 2^16 L). The hot path (kChecked = false) is branchless
// and unchecked: the caller guarantees 2 bytes per lane remain. The checked form (a stream's
// last rows) reads zeros past `end` and sets *overrun, which Finish reports.
template <bool kChecked>
inline void RenormalizeLane(uint32_t* x, const uint8_t*& p, const uint8_t* end, bool* overrun) {
  if constexpr (!kChecked) {
    const uint32_t word = p[0] | static_cast<uint32_t>(p[1]) << 8;
    const uint32_t in = *x < kRansL;
    *x = in ? (*x << 16) | word : *x;
    p += 2 * in;
  } else if (*x < kRansL) {
    const bool have = end - p >= 2;
    *overrun |= !have;
    *x = (*x << 16) | (have ? p[0] | static_cast<uint32_t>(p[1]) << 8 : 0u);
    p += have ? 2 : 0;
  }
}

}  // namespace ctx::codec
