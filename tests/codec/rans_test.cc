#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <vector>

#include "common/codec/freq_table.h"
#include "common/codec/prepared_tables.h"
#include "common/codec/rans_decoder.h"
#include "common/codec/rans_encoder.h"

namespace ctx::codec {
namespace {

// Builds per-column tables from the data itself (or uniform), encodes, decodes, compares.
void RoundTrip(const std::vector<uint8_t>& sym, size_t rows, int cols, int a, bool shared,
               size_t* bytes_out = nullptr) {
  const int count = shared ? 1 : cols;
  std::vector<uint64_t> hist(static_cast<size_t>(count) * a, 0);
  for (size_t i = 0; i < sym.size(); ++i) ++hist[(shared ? 0 : i % cols) * a + sym[i]];
  std::vector<uint16_t> freqs(hist.size());
  for (int k = 0; k < count; ++k) {
    NormalizeFrequencies(std::span<const uint64_t>(hist.data() + k * a, a),
                         std::span<uint16_t>(freqs.data() + k * a, a));
  }
  const auto enc = BuildEncodeSymbols(freqs, a);
  std::string stream;
  RansEncode(sym.data(), rows, cols, enc.data(), shared ? 0 : 1, a, &stream);
  const auto dec = RansDecodeTables::Build(freqs, a);
  std::vector<uint8_t> out(sym.size(), 0xee);
  REQUIRE(RansDecode(stream, rows, cols, dec, shared ? 0 : 1, out.data()).ok());
  REQUIRE(out == sym);
  if (bytes_out) *bytes_out = stream.size();
  // Any truncation is rejected, never read past the end.
  for (size_t cut : {size_t{0}, size_t{3}, stream.size() / 2, stream.size() - 1}) {
    if (cut >= stream.size()) continue;
    CHECK_FALSE(RansDecode(absl::string_view(stream).substr(0, cut), rows, cols, dec,
                           shared ? 0 : 1, out.data())
                    .ok());
  }
}

TEST_CASE("rANS round-trips uniform random symbols exactly", "[rans]") {
  std::mt19937 rng(1);
  for (int a : {3, 11, 31, 255}) {
    for (size_t rows : {size_t{1}, size_t{7}, size_t{100}}) {
      for (int cols : {1, 3, 4, 128}) {
        std::vector<uint8_t> sym(rows * cols);
        for (auto& s : sym) s = static_cast<uint8_t>(rng() % a);
        RoundTrip(sym, rows, cols, a, false);
        RoundTrip(sym, rows, cols, a, true);
      }
    }
  }
}

TEST_CASE("rANS codes skewed streams near their entropy", "[rans]") {
  std::mt19937 rng(2);
  std::geometric_distribution<int> geo(0.7);
  const size_t rows = 512;
  const int cols = 64, a = 31;
  std::vector<uint8_t> sym(rows * cols);
  for (auto& s : sym) s = static_cast<uint8_t>(std::min(geo(rng), a - 1));
  size_t bytes = 0;
  RoundTrip(sym, rows, cols, a, true, &bytes);
  // Entropy of geometric(0.7) ~ 1.26 bits/symbol; allow table quantization and flush slack.
  const double bits = 8.0 * bytes / sym.size();
  CHECK(bits < 1.35);
  CHECK(bits > 1.1);
  // A stream of one repeated symbol costs almost nothing: freq M-30 of M, ~0.043 bits each
  // (+ 0.016 bits for the 64 bytes of lane states over 32768 symbols).
  std::vector<uint8_t> constant(rows * cols, 5);
  RoundTrip(constant, rows, cols, a, false, &bytes);
  CHECK(8.0 * bytes / constant.size() < 0.065);  // + 16 lanes x 4 bytes of flushed state
}

TEST_CASE("rANS symbols absent from the table's statistics stay codable", "[rans]") {
  // Tables built from one distribution, data containing every symbol.
  const int a = 15, cols = 8;
  std::vector<uint64_t> hist(a, 0);
  hist[7] = 1000000;
  std::vector<uint16_t> f(a);
  NormalizeFrequencies(hist, f);
  for (uint16_t x : f) CHECK(x >= 1);
  std::vector<uint8_t> sym(40 * cols);
  for (size_t i = 0; i < sym.size(); ++i) sym[i] = static_cast<uint8_t>(i % a);
  const auto enc = BuildEncodeSymbols(f, a);
  std::string stream;
  RansEncode(sym.data(), 40, cols, enc.data(), 0, a, &stream);
  std::vector<uint8_t> out(sym.size());
  REQUIRE(RansDecode(stream, 40, cols, RansDecodeTables::Build(f, a), 0, out.data()).ok());
  CHECK(out == sym);
}

TEST_CASE("frequency normalization sums to 2^kProbBits with every symbol >= 1", "[rans]") {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    const int a = 3 + static_cast<int>(rng() % 253);
    std::vector<uint64_t> h(a);
    for (auto& x : h) x = (rng() % 4 == 0) ? 0 : rng() >> (rng() % 64);
    std::vector<uint16_t> f(a);
    NormalizeFrequencies(h, f);
    uint32_t sum = 0;
    for (uint16_t x : f) {
      CHECK(x >= 1);
      sum += x;
    }
    CHECK(sum == kProbScale);
  }
}

}  // namespace
}  // namespace ctx::codec

namespace ctx::codec {
namespace {

// Dequantizing decode on the AVX-512 path (when the CPU has it) and the portable path: the
// same floats, bit for bit, for full and narrow column groups, per-channel and shared tables.
TEST_CASE("rANS AVX-512 and scalar dequantizing decoders agree bit for bit", "[rans]") {
  std::mt19937 rng(5);
  for (int a : {3, 31, 255}) {
    for (int cols : {32, 40, 128, 7}) {
      for (bool shared : {false, true}) {
        const size_t rows = 300;
        std::geometric_distribution<int> geo(0.4);
        std::vector<uint8_t> sym(rows * cols);
        for (auto& s : sym) s = static_cast<uint8_t>(std::min(geo(rng), a - 1));
        const int count = shared ? 1 : cols;
        std::vector<uint64_t> hist(static_cast<size_t>(count) * a, 1);
        for (size_t i = 0; i < sym.size(); ++i) ++hist[(shared ? 0 : i % cols) * a + sym[i]];
        std::vector<uint16_t> freqs(hist.size());
        for (int k = 0; k < count; ++k) {
          NormalizeFrequencies(std::span<const uint64_t>(hist.data() + k * a, a),
                               std::span<uint16_t>(freqs.data() + k * a, a));
        }
        std::string stream;
        RansEncode(sym.data(), rows, cols, BuildEncodeSymbols(freqs, a).data(), shared ? 0 : 1, a,
                   &stream);
        const auto dec = RansDecodeTables::Build(freqs, a);
        std::vector<float> step(rows);
        for (size_t r = 0; r < rows; ++r) step[r] = 0.01f * static_cast<float>(r + 1) / 3.f;
        std::vector<float> out[2];
        for (int simd = 0; simd < 2; ++simd) {
          SetRansSimdEnabled(simd == 1);
          out[simd].assign(sym.size(), -1.f);
          RansDecoder d;
          REQUIRE(d.Begin(stream).ok());
          REQUIRE(d.BlockDequantize(rows, cols, dec, shared ? 0 : 1, a / 2, step.data(),
                                    out[simd].data())
                      .ok());
          REQUIRE(d.Finish().ok());
        }
        SetRansSimdEnabled(true);
        for (size_t i = 0; i < sym.size(); ++i) {
          REQUIRE(out[0][i] == static_cast<float>(sym[i] - a / 2) * step[i / cols]);
        }
        REQUIRE(std::memcmp(out[0].data(), out[1].data(), out[0].size() * sizeof(float)) == 0);
      }
    }
  }
  INFO("AVX-512 available: " << RansSimdAvailable());
}

}  // namespace
}  // namespace ctx::codec
