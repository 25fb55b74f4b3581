// tensor::MatMul* against a double-precision triple loop on odd shapes (partial tiles in M,
// N and K blocks), for both backends, with every epilogue; and the determinism promise
// (a row's bits do not depend on the batch it is computed in).
#include "common/tensor/gemm.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace ctx::tensor {
namespace {

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// ref[m][n] = alpha * sum_k a[m][k] * b(n, k) + beta * c0[m][n] + bias[n], in double.
template <typename BAt>
std::vector<double> Reference(int M, int N, int K, const std::vector<float>& a, int lda, BAt b_at,
                              const std::vector<float>& c0, int ldc, const GemmEpilogue& e) {
  std::vector<double> ref(static_cast<size_t>(M) * N);
  for (int m = 0; m < M; ++m) {
    for (int n = 0; n < N; ++n) {
      double acc = 0;
      for (int k = 0; k < K; ++k) acc += static_cast<double>(a[m * lda + k]) * b_at(n, k);
      double v = e.alpha * acc;
      if (e.beta != 0.0f) v += e.beta * static_cast<double>(c0[m * ldc + n]);
      if (e.bias != nullptr) v += e.bias[n];
      ref[static_cast<size_t>(m) * N + n] = v;
    }
  }
  return ref;
}

// Max |c - ref| relative to sqrt(K) (the size of a sum of K products of values in [-1, 1]).
double MaxScaledError(int M, int N, int K, const std::vector<float>& c, int ldc,
                      const std::vector<double>& ref) {
  double worst = 0;
  for (int m = 0; m < M; ++m) {
    for (int n = 0; n < N; ++n) {
      worst = std::max(worst, std::fabs(c[m * ldc + n] - ref[static_cast<size_t>(m) * N + n]));
    }
  }
  return worst / std::sqrt(static_cast<double>(std::max(K, 1)));
}

struct Shape {
  int m, n, k;
};
// Partial row strips (M % 14), partial panels (N % 32), several K blocks (K > 384), and
// degenerate sizes.
const Shape kShapes[] = {{1, 1, 1},      {1, 33, 7},      {3, 31, 385},
                         {14, 32, 384},  {15, 65, 769},   {29, 100, 50},
                         {113, 47, 130}, {130, 96, 1000}, {7, 5, 0}};

std::vector<GemmBackend> Backends() {
  std::vector<GemmBackend> b{GemmBackend::kOpenBlas};
  if (DefaultGemmBackend() == GemmBackend::kAvx512) b.push_back(GemmBackend::kAvx512);
  return b;
}

TEST_CASE("MatMulPacked / NT / NN match a double-precision reference", "[tensor][gemm]") {
  for (GemmBackend backend : Backends()) {
    for (const Shape& s : kShapes) {
      for (int variant = 0; variant < 3; ++variant) {
        GemmEpilogue e;
        std::vector<float> bias = Random(static_cast<size_t>(s.n), 7);
        if (variant == 1) {
          e.alpha = 0.125f;
          e.beta = 1.0f;
        } else if (variant == 2) {
          e.alpha = -2.0f;
          e.beta = 0.5f;
          e.bias = bias.data();
        }
        INFO("backend " << static_cast<int>(backend) << " M " << s.m << " N " << s.n << " K " << s.k
                        << " variant " << variant);
        const int lda = s.k + 3, ldc = s.n + 5;
        const std::vector<float> a = Random(static_cast<size_t>(s.m) * lda, 1);
        const std::vector<float> c0 = Random(static_cast<size_t>(s.m) * ldc, 3);

        // W[N][K] (row stride K + 2): packed, and packed on the fly.
        const int ldw = s.k + 2;
        const std::vector<float> w = Random(static_cast<size_t>(s.n) * ldw + 1, 2);
        auto w_at = [&](int n, int k) { return static_cast<double>(w[n * ldw + k]); };
        const std::vector<double> ref_w = Reference(s.m, s.n, s.k, a, lda, w_at, c0, ldc, e);
        const PackedMatrix packed(w.data(), s.n, s.k, ldw, backend);
        REQUIRE(packed.n() == s.n);
        REQUIRE(packed.k() == s.k);
        std::vector<float> c = c0;
        MatMulPacked(s.m, a.data(), lda, packed, c.data(), ldc, e);
        CHECK(MaxScaledError(s.m, s.n, s.k, c, ldc, ref_w) < 1e-5);
        c = c0;
        MatMulNT(s.m, s.n, s.k, a.data(), lda, w.data(), ldw, c.data(), ldc, e, backend);
        CHECK(MaxScaledError(s.m, s.n, s.k, c, ldc, ref_w) < 1e-5);

        // B[K][N] (row stride N + 1).
        const int ldb = s.n + 1;
        const std::vector<float> b = Random(static_cast<size_t>(s.k) * ldb + 1, 4);
        auto b_at = [&](int n, int k) { return static_cast<double>(b[k * ldb + n]); };
        const std::vector<double> ref_b = Reference(s.m, s.n, s.k, a, lda, b_at, c0, ldc, e);
        c = c0;
        MatMulNN(s.m, s.n, s.k, a.data(), lda, b.data(), ldb, c.data(), ldc, e, backend);
        CHECK(MaxScaledError(s.m, s.n, s.k, c, ldc, ref_b) < 1e-5);

        // Columns of C beyond N (the padding of ldc) are never written.
        bool untouched = true;
        for (int m = 0; m < s.m; ++m) {
          for (int j = s.n; j < ldc; ++j)
            untouched = untouched && c[m * ldc + j] == c0[m * ldc + j];
        }
        CHECK(untouched);
      }
    }
  }
}

TEST_CASE("MatMulPackedPrefix uses only the first n rows of W", "[tensor][gemm]") {
  for (GemmBackend backend : Backends()) {
    const int M = 20, N = 75, K = 64;
    const std::vector<float> a = Random(static_cast<size_t>(M) * K, 1);
    const std::vector<float> w = Random(static_cast<size_t>(N) * K, 2);
    const PackedMatrix packed(w.data(), N, K, K, backend);
    for (int n : {1, 31, 32, 33, 75}) {
      std::vector<float> c(static_cast<size_t>(M) * n), ref(c.size());
      MatMulPackedPrefix(M, n, a.data(), K, packed, c.data(), n);
      MatMulNT(M, n, K, a.data(), K, w.data(), K, ref.data(), n, {}, backend);
      INFO("backend " << static_cast<int>(backend) << " n " << n);
      float worst = 0;
      for (size_t i = 0; i < c.size(); ++i) worst = std::max(worst, std::fabs(c[i] - ref[i]));
      CHECK(worst < 1e-5f);
    }
  }
}

TEST_CASE("a row's result does not depend on the rows computed with it", "[tensor][gemm]") {
  if (DefaultGemmBackend() != GemmBackend::kAvx512) return;  // OpenBLAS makes no such promise
  const int M = 50, N = 70, K = 900;
  const std::vector<float> a = Random(static_cast<size_t>(M) * K, 1);
  const std::vector<float> w = Random(static_cast<size_t>(N) * K, 2);
  const PackedMatrix packed(w.data(), N, K, K);
  std::vector<float> all(static_cast<size_t>(M) * N);
  MatMulPacked(M, a.data(), K, packed, all.data(), N);
  for (int m : {0, 13, 14, 49}) {
    std::vector<float> one(static_cast<size_t>(N));
    MatMulPacked(1, a.data() + static_cast<size_t>(m) * K, K, packed, one.data(), N);
    INFO("row " << m);
    CHECK(std::memcmp(one.data(), all.data() + static_cast<size_t>(m) * N, N * sizeof(float)) == 0);
  }
}

}  // namespace
}  // namespace ctx::tensor
