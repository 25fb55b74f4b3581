#include "common/model/ops.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

namespace ctx::model::ops {
namespace {

TEST_CASE("Vectorized exp is accurate to a few ulp") {
  std::vector<float> x;
  for (float v = -80.0f; v <= 80.0f; v += 0.01337f) x.push_back(v);
  std::vector<float> y = x;
  ExpInPlace(y.data(), y.size());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(static_cast<double>(x[i]));
    worst = std::max(worst, std::fabs(y[i] - want) / want);
  }
  CHECK(worst < 5e-7);
}

TEST_CASE("SoftmaxPrefix normalizes the valid prefix and zeroes the rest") {
  std::vector<float> s = {1.0f, 2.0f, 3.0f, 100.0f, 100.0f};
  SoftmaxPrefix(s.data(), 3, 5);
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  CHECK(s[0] == Approx(std::exp(1.0) / z).epsilon(1e-6));
  CHECK(s[2] == Approx(std::exp(3.0) / z).epsilon(1e-6));
  CHECK(s[3] == 0.0f);
  CHECK(s[4] == 0.0f);
}

TEST_CASE("BLAS and naive matrix products agree") {
  const int M = 5, N = 7, K = 9;
  std::vector<float> a(M * K), w(N * K), c1(M * N, 1.0f), c2(M * N, 1.0f);
  for (int i = 0; i < M * K; ++i) a[i] = std::sin(i * 0.37f);
  for (int i = 0; i < N * K; ++i) w[i] = std::cos(i * 0.11f);
  MatMulTransB(Gemm::kBlas, M, N, K, 0.5f, a.data(), K, w.data(), K, 1.0f, c1.data(), N);
  MatMulTransB(Gemm::kNaive, M, N, K, 0.5f, a.data(), K, w.data(), K, 1.0f, c2.data(), N);
  for (int i = 0; i < M * N; ++i) CHECK(c1[i] == Approx(c2[i]).margin(1e-5));
}

}  // namespace
}  // namespace ctx::model::ops
