// Interleaved rANS encoder (ryg_rans "rans_byte" style: 32-bit state, byte-wise renorm).
//
// Coded object: `rows` x `cols` symbols, row-major (for us: tokens x channels of one slot);
// column c is coded with its own table (tables + c * table_stride * alphabet), so
// table_stride = 1 gives per-channel tables, 0 one table shared by all columns.
// Coding order: columns in groups of kRansGroup = 4 (the last group may be narrower); group
// by group, and inside a group row by row, left to right. The j-th symbol of this sequence
// is coded by state j % kRansStates, so a full group gives each state one column: the decoder
// keeps 4 tables hot in L1 for a whole group instead of touching all C tables on every row.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ctx::codec {

inline constexpr int kRansStates = 4;
inline constexpr int kRansGroup = 4;          // columns per group (== kRansStates)
inline constexpr uint32_t kRansL = 1u << 23;  // states live in [kRansL, kRansL << 8)

// One symbol of a table: [start, start + freq) is its slice of [0, 2^kProbBits).
struct RansSymbol {
  uint16_t start = 0;
  uint16_t freq = 0;
};

// Appends the stream (4 * kRansStates bytes of final states, then renorm bytes) to `out`.
// Every symbol must be < alphabet and have freq >= 1 in its table.
void RansEncode(const uint8_t* symbols, size_t rows, int cols, const RansSymbol* tables,
                int table_stride, int alphabet, std::string* out);

}  // namespace ctx::codec
