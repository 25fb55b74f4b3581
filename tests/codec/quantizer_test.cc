#include "common/codec/quantizer.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "common/tensor/dtype.h"

namespace ctx::codec {
namespace {

TEST_CASE("quantizer error is within s/(2*MAX) per element", "[quantizer]") {
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.f, 1.f);
  const int c = 128;
  std::vector<float> x(c), y(c);
  std::vector<uint8_t> q(c);
  for (int bins : {4, 6, 8, 12, 16, 32, 64, 256}) {
    const int max_q = MaxQ(bins);
    for (int trial = 0; trial < 50; ++trial) {
      const float mag = std::pow(10.f, static_cast<float>(trial % 7) - 3.f);
      for (float& v : x) v = n(rng) * mag;
      if (trial % 5 == 0) x[trial % c] = 40.f * mag;  // an outlier channel
      uint16_t scale;
      REQUIRE(RowScale(x.data(), c, &scale).ok());
      const float s = tensor::HalfToFloat(scale);
      float m = 0;
      for (float v : x) m = std::max(m, std::fabs(v));
      CHECK(s >= m);
      CHECK(s <= m * (1 + 1.0f / 1024));
      QuantizeRow(x.data(), c, max_q, scale, q.data());
      DequantizeRow(q.data(), c, max_q, scale, y.data());
      const float bound = s / (2.f * max_q) * (1 + 1e-5f);
      for (int i = 0; i < c; ++i) {
        REQUIRE(q[i] <= 2 * max_q);
        REQUIRE(std::fabs(x[i] - y[i]) <= bound);
      }
    }
  }
}

TEST_CASE("quantizer maps an all-zero row to the middle symbol and back to zero", "[quantizer]") {
  std::vector<float> x(16, 0.f), y(16, 1.f);
  std::vector<uint8_t> q(16);
  uint16_t scale;
  REQUIRE(RowScale(x.data(), 16, &scale).ok());
  QuantizeRow(x.data(), 16, MaxQ(16), scale, q.data());
  for (uint8_t v : q) CHECK(v == MaxQ(16));
  DequantizeRow(q.data(), 16, MaxQ(16), scale, y.data());
  for (float v : y) CHECK(v == 0.f);
}

TEST_CASE("quantizer rejects NaN, inf and values beyond fp16", "[quantizer]") {
  uint16_t scale;
  std::vector<float> x(4, 1.f);
  x[2] = NAN;
  CHECK_FALSE(RowScale(x.data(), 4, &scale).ok());
  x[2] = INFINITY;
  CHECK_FALSE(RowScale(x.data(), 4, &scale).ok());
  x[2] = 1e6f;
  CHECK_FALSE(RowScale(x.data(), 4, &scale).ok());
  x[2] = 65504.f;
  CHECK(RowScale(x.data(), 4, &scale).ok());
}

TEST_CASE("bins validity", "[quantizer]") {
  CHECK(ValidBins(4));
  CHECK(ValidBins(256));
  CHECK_FALSE(ValidBins(2));
  CHECK_FALSE(ValidBins(7));
  CHECK_FALSE(ValidBins(258));
  CHECK(AlphabetSize(32) == 31);
  CHECK(AlphabetSize(256) == 255);
}

}  // namespace
}  // namespace ctx::codec
