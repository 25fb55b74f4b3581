// Interleaved rANS encoder (ryg_rans "rans_word" style: 32-bit states, 16-bit renormalization,
// ryg's reciprocal-multiply symbol coding), kRansLanes interleaved states.
//
// Coded object: blocks of `rows` x `cols` symbols, row-major (for us: one slot's tokens x
// channels); column c uses table `tables + c * table_stride * alphabet` (stride 1: one table
// per channel, 0: one table for all columns). Coding order inside a block: columns in groups
// of kRansLanes ([0,32), [32,64), ...; the last group may be narrower), group after group,
// inside a group row after row, columns left to right. Column g*32 + k is always coded by
// lane k: lanes never wait on each other (the decoder is throughput-bound, not latency-bound;
// a row of a group is two 16-lane AVX-512 vectors) and a group keeps only 32 tables hot.
// Several blocks share one stream and the lanes' states carry over from block to block (one
// stream per chunk: its 128-byte state flush is paid once).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ctx::codec {

inline constexpr int kRansLanes = 32;
inline constexpr uint32_t kRansL = 1u
                                   << 15;  // states live in [kRansL, kRansL << 16) = [2^15, 2^31)
inline constexpr size_t kRansHeaderBytes = 4 * kRansLanes;  // the lanes' initial decoder states

// One symbol of a table in encoder form (ryg_rans RansEncSymbol): code x -> x + bias +
// q * cmpl_freq with q = x / freq computed as a multiply-high by rcp_freq (exact for x < 2^31).
struct RansEncSymbol {
  uint32_t x_max = 0;      // renormalize (emit 16 bits) while x >= x_max
  uint32_t rcp_freq = 0;   // fixed-point reciprocal of freq
  uint32_t bias = 0;       // start (or start + M - 1 for freq 1)
  uint16_t cmpl_freq = 0;  // M - freq
  uint16_t rcp_shift = 0;  // shift after the multiply-high
};
// [start, start + freq) is the symbol's slice of [0, 2^kProbBits); freq >= 1.
RansEncSymbol MakeRansEncSymbol(uint32_t start, uint32_t freq);

// Codes blocks into one stream. rANS is LIFO: Put the LAST block first; the decoder then
// reads the blocks first to last.
class RansEncoder {
 public:
  // `max_symbols`: total symbols of all blocks (each symbol emits at most 16 bits).
  explicit RansEncoder(size_t max_symbols);
  // Every symbol must be < alphabet and have freq >= 1 in its table.
  void PutBlock(const uint8_t* symbols, size_t rows, int cols, const RansEncSymbol* tables,
                int table_stride, int alphabet);
  // Same with repeat contexts: `tables` holds cols + alphabet tables; row r codes column c
  // with table c when rep_rows[r] == kNoRepeat (repeat_map.h), else with table
  // cols + symbols[rep_rows[r] * cols + c] (the symbol the same column had in that earlier row).
  void PutBlockRepeat(const uint8_t* symbols, size_t rows, int cols, const RansEncSymbol* tables,
                      int alphabet, const int32_t* rep_rows);
  // Appends the stream (kRansLanes u32 states, lane 0 first, then u16 words in read order).
  void Finish(std::string* out);

 private:
  std::vector<uint8_t>& buf_;
  uint8_t* ptr_;  // writes go backwards from the end of buf_
  uint32_t x_[kRansLanes];
};

// One block as a whole stream.
void RansEncode(const uint8_t* symbols, size_t rows, int cols, const RansEncSymbol* tables,
                int table_stride, int alphabet, std::string* out);

}  // namespace ctx::codec
