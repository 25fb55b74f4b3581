// The decoder's packed tables (one (freq, slot - start, symbol) entry per slot) and the
// PrefetchNext hint: exact at extreme frequencies, identical with and without the hint, on the
// AVX-512 and the portable paths, and never out of bounds for malformed frequency rows.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/codec/freq_table.h"
#include "common/codec/prepared_tables.h"
#include "common/codec/rans_decoder.h"
#include "common/codec/rans_encoder.h"

namespace ctx::codec {
namespace {

struct Block {
  size_t rows = 0;
  int cols = 0;
  int alphabet = 0;
  bool shared = false;
  std::vector<uint8_t> symbols;  // [rows][cols]
  std::vector<uint16_t> freqs;   // [count][alphabet]
  std::vector<float> step;       // [rows]
};

// Symbols skewed around the middle of the alphabet, per-column (or shared) tables from them.
Block MakeBlock(std::mt19937& rng, size_t rows, int cols, int a, bool shared) {
  Block b;
  b.rows = rows;
  b.cols = cols;
  b.alphabet = a;
  b.shared = shared;
  b.symbols.resize(rows * cols);
  std::geometric_distribution<int> geo(0.3);
  for (auto& s : b.symbols) {
    const int d = std::min(geo(rng), a / 2);
    s = static_cast<uint8_t>(rng() % 2 ? a / 2 + d : a / 2 - d);
  }
  const int count = shared ? 1 : cols;
  std::vector<uint64_t> hist(static_cast<size_t>(count) * a, 0);
  for (size_t i = 0; i < b.symbols.size(); ++i) {
    ++hist[(shared ? 0 : i % cols) * a + b.symbols[i]];
  }
  b.freqs.resize(hist.size());
  for (int k = 0; k < count; ++k) {
    NormalizeFrequencies(std::span<const uint64_t>(hist.data() + k * a, a),
                         std::span<uint16_t>(b.freqs.data() + k * a, a));
  }
  b.step.resize(rows);
  for (size_t r = 0; r < rows; ++r) b.step[r] = 0.003f * static_cast<float>(r % 17 + 1);
  return b;
}

// Encodes the blocks into one stream (last block first: rANS is LIFO).
std::string EncodeBlocks(const std::vector<Block>& blocks) {
  size_t total = 0;
  for (const Block& b : blocks) total += b.symbols.size();
  RansEncoder enc(total);
  for (size_t i = blocks.size(); i-- > 0;) {
    const Block& b = blocks[i];
    const auto sym = BuildEncodeSymbols(b.freqs, b.alphabet);
    enc.PutBlock(b.symbols.data(), b.rows, b.cols, sym.data(), b.shared ? 0 : 1, b.alphabet);
  }
  std::string stream;
  enc.Finish(&stream);
  return stream;
}

// Decodes all blocks (dequantized), optionally announcing each next block's tables.
std::vector<std::vector<float>> DecodeBlocks(const std::vector<Block>& blocks,
                                             const std::string& stream, bool hint) {
  std::vector<RansDecodeTables> tables;
  for (const Block& b : blocks) tables.push_back(RansDecodeTables::Build(b.freqs, b.alphabet));
  std::vector<std::vector<float>> out;
  RansDecoder d;
  REQUIRE(d.Begin(stream).ok());
  for (size_t i = 0; i < blocks.size(); ++i) {
    const Block& b = blocks[i];
    if (hint && i + 1 < blocks.size()) d.PrefetchNext(tables[i + 1], blocks[i + 1].shared ? 0 : 1);
    out.emplace_back(b.symbols.size(), -1.f);
    REQUIRE(d.BlockDequantize(b.rows, b.cols, tables[i], b.shared ? 0 : 1, b.alphabet / 2,
                              b.step.data(), out.back().data())
                .ok());
  }
  REQUIRE(d.Finish().ok());
  return out;
}

TEST_CASE("rANS decode with PrefetchNext hints is exact and equals decode without", "[rans]") {
  std::mt19937 rng(11);
  // Per-channel and shared tables, full and narrow groups, large and small alphabets.
  std::vector<Block> blocks;
  blocks.push_back(MakeBlock(rng, 200, 128, 127, false));
  blocks.push_back(MakeBlock(rng, 200, 128, 7, true));
  blocks.push_back(MakeBlock(rng, 150, 40, 31, false));
  blocks.push_back(MakeBlock(rng, 90, 64, 255, false));
  blocks.push_back(MakeBlock(rng, 300, 32, 15, true));
  const std::string stream = EncodeBlocks(blocks);
  std::vector<std::vector<float>> runs[4];
  for (int simd = 0; simd < 2; ++simd) {
    SetRansSimdEnabled(simd == 1);
    for (int hint = 0; hint < 2; ++hint) runs[2 * simd + hint] = DecodeBlocks(blocks, stream, hint);
  }
  SetRansSimdEnabled(true);
  for (size_t i = 0; i < blocks.size(); ++i) {
    const Block& b = blocks[i];
    for (size_t j = 0; j < b.symbols.size(); ++j) {
      REQUIRE(runs[0][i][j] ==
              static_cast<float>(b.symbols[j] - b.alphabet / 2) * b.step[j / b.cols]);
    }
    for (int run = 1; run < 4; ++run) {
      REQUIRE(std::memcmp(runs[0][i].data(), runs[run][i].data(), runs[0][i].size() * 4) == 0);
    }
  }
}

TEST_CASE("rANS packed tables keep extreme frequencies exact", "[rans]") {
  // Largest possible freq (M - (A - 1)) next to freq-1 symbols, at the alphabet bounds.
  std::mt19937 rng(12);
  for (int a : {2, 3, 255}) {
    std::vector<uint16_t> f(a, 1);
    f[a / 2] = static_cast<uint16_t>(kProbScale - (a - 1));
    const size_t rows = 120;
    const int cols = 32;
    std::vector<uint8_t> sym(rows * cols);
    for (auto& s : sym) s = static_cast<uint8_t>(rng() % 4 ? a / 2 : rng() % a);  // all symbols
    Block b;
    b.rows = rows;
    b.cols = cols;
    b.alphabet = a;
    b.shared = true;
    b.symbols = sym;
    b.freqs = f;
    b.step.assign(rows, 0.25f);
    const std::string stream = EncodeBlocks({b});
    for (int simd = 0; simd < 2; ++simd) {
      SetRansSimdEnabled(simd == 1);
      const auto out = DecodeBlocks({b}, stream, false);
      for (size_t j = 0; j < sym.size(); ++j) {
        REQUIRE(out[0][j] == static_cast<float>(sym[j] - a / 2) * 0.25f);
      }
      std::vector<uint8_t> back(sym.size());
      REQUIRE(RansDecode(stream, rows, cols, RansDecodeTables::Build(f, a), 0, back.data()).ok());
      REQUIRE(back == sym);
    }
    SetRansSimdEnabled(true);
  }
}

TEST_CASE("rANS packed tables stay inside M entries for rows not summing to M", "[rans]") {
  // Callers validate rows (ReadFreqTable, the profile parser); Build must still never write
  // past a table, and its entries must describe slots inside [0, M).
  for (const std::vector<uint16_t>& f :
       {std::vector<uint16_t>{1000, 1000, 1000}, std::vector<uint16_t>{10, 20, 30}}) {
    const RansDecodeTables t = RansDecodeTables::Build(f, 3);
    REQUIRE(t.entry.size() == kProbScale);
    uint32_t covered = 0;
    for (uint32_t slot = 0; slot < kProbScale; ++slot) {
      const uint32_t e = t.entry[slot];
      const uint32_t freq = e & RansDecodeTables::kFreqMask;
      const uint32_t offset = (e >> RansDecodeTables::kOffsetShift) & RansDecodeTables::kOffsetMask;
      CHECK(freq <= kProbScale);
      if (freq) {
        CHECK(offset < freq);
        CHECK(offset <= slot);
        ++covered;
      }
    }
    CHECK(covered == std::min<uint32_t>(kProbScale, f[0] + f[1] + f[2]));
  }
}

}  // namespace
}  // namespace ctx::codec
