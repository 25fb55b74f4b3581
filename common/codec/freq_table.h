// Static probability tables for the rANS coder: symbol frequencies normalized to a total of
// 2^kProbBits, every symbol of the alphabet with frequency >= 1 (so any symbol is codable,
// which is what lets a profiled table code a chunk it has never seen).
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/codec/byte_io.h"

namespace ctx::codec {

// 10 bits, not 12: the decoder's per-channel lookup tables (M bytes each, C per slot) then fit
// in L2; measured on tiny-llama: decode 1.5-1.7x faster for +0.007 bits/element (+0.4 %).
inline constexpr int kProbBits = 10;
inline constexpr uint32_t kProbScale = 1u << kProbBits;  // M = 1024

// counts[0..A) -> freqs[0..A) with sum == M and every freq >= 1:
//   f_s = 1 + floor((M - A) * counts_s / sum(counts)), remainder to the most frequent symbol.
// (The "+1" is add-one smoothing; all-zero counts give a near-uniform table.) Requires A <= M.
void NormalizeFrequencies(std::span<const uint64_t> counts, std::span<uint16_t> freqs);

// Bits to code symbol s under table f: kProbBits - log2(f_s).
inline double SymbolCostBits(uint16_t f) { return kProbBits - std::log2(static_cast<double>(f)); }

// Compact encoding of one table of A frequencies: A varints of (f_s - 1).
void WriteFreqTable(std::span<const uint16_t> freqs, ByteWriter* w);
// Parses and validates (every f >= 1, sum == M). DataLossError on bad bytes.
absl::Status ReadFreqTable(ByteReader* r, std::span<uint16_t> freqs);

// Exact size in bytes WriteFreqTable would produce.
size_t FreqTableBytes(std::span<const uint16_t> freqs);

}  // namespace ctx::codec
