#include "common/model/ops.h"

#include <cblas.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#include "common/tensor/target_clones.h"
#include "common/tensor/vec_math.h"

namespace ctx::model::ops {
using tensor::ExpApprox;

void MatMulTransB(Gemm gemm, int M, int N, int K, float alpha, const float* A, int lda,
                  const float* W, int ldw, float beta, float* C, int ldc) {
  if (gemm == Gemm::kNaive) {
    for (int m = 0; m < M; ++m) {
      for (int n = 0; n < N; ++n) {
        float acc = 0.0f;
        for (int k = 0; k < K; ++k)
          acc += A[static_cast<size_t>(m) * lda + k] * W[static_cast<size_t>(n) * ldw + k];
        float& c = C[static_cast<size_t>(m) * ldc + n];
        c = alpha * acc + (beta == 0.0f ? 0.0f : beta * c);
      }
    }
    return;
  }
  if (M == 1) {  // decode: a matrix-vector product (sgemm is slow for one row)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, W, ldw, A, 1, beta, C, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, alpha, A, lda, W, ldw, beta, C,
              ldc);
}

void MatMul(Gemm gemm, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
            float* C, int ldc) {
  if (gemm == Gemm::kNaive) {
    for (int m = 0; m < M; ++m) {
      for (int n = 0; n < N; ++n) {
        float acc = 0.0f;
        for (int k = 0; k < K; ++k)
          acc += A[static_cast<size_t>(m) * lda + k] * B[static_cast<size_t>(k) * ldb + n];
        C[static_cast<size_t>(m) * ldc + n] = acc;
      }
    }
    return;
  }
  if (M == 1) {
    cblas_sgemv(CblasRowMajor, CblasTrans, K, N, 1.0f, B, ldb, A, 1, 0.0f, C, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C,
              ldc);
}

CTX_TARGET_CLONES void GemvBF16(int N, int K, const uint16_t* W, const float* x, float beta,
                                float* y) {
  constexpr int kLanes = 16;
  for (int n = 0; n < N; ++n) {
    const uint16_t* w = W + static_cast<size_t>(n) * K;
    float acc[kLanes] = {};
    int k = 0;
    for (; k + kLanes <= K; k += kLanes) {
      for (int i = 0; i < kLanes; ++i) {
        acc[i] += std::bit_cast<float>(static_cast<uint32_t>(w[k + i]) << 16) * x[k + i];
      }
    }
    for (int width = kLanes / 2; width > 0; width /= 2) {  // fixed-order tree reduction
      for (int i = 0; i < width; ++i) acc[i] += acc[i + width];
    }
    float sum = acc[0];
    for (; k < K; ++k) sum += std::bit_cast<float>(static_cast<uint32_t>(w[k]) << 16) * x[k];
    y[n] = beta == 0.0f ? sum : sum + beta * y[n];
  }
}

void RmsNorm(const float* x, const float* weight, int T, int H, float eps, float* out) {
  for (int t = 0; t < T; ++t) {
    const float* row = x + static_cast<size_t>(t) * H;
    float* dst = out + static_cast<size_t>(t) * H;
    double sum_sq = 0.0;
    for (int i = 0; i < H; ++i) sum_sq += static_cast<double>(row[i]) * row[i];
    const float inv = 1.0f / std::sqrt(static_cast<float>(sum_sq / H) + eps);
    for (int i = 0; i < H; ++i) dst[i] = weight[i] * (row[i] * inv);
  }
}

RopeTable::RopeTable(int max_pos, int head_dim, double theta)
    : half(head_dim / 2),
      cos(static_cast<size_t>(max_pos) * (head_dim / 2)),
      sin(static_cast<size_t>(max_pos) * (head_dim / 2)) {
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) {
    // HF: 1.0 / (theta ** (arange(0, D, 2).float() / D)), in float32.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[i] = 1.0f / std::pow(static_cast<float>(theta), exponent);
  }
  for (int p = 0; p < max_pos; ++p) {
    for (int i = 0; i < half; ++i) {
      const float angle = static_cast<float>(p) * inv_freq[i];  // float product, like HF
      cos[static_cast<size_t>(p) * half + i] = std::cos(angle);
      sin[static_cast<size_t>(p) * half + i] = std::sin(angle);
    }
  }
}

void ApplyRope(const RopeTable& rope, float* x, int T, int ld, int n_heads, int head_dim,
               int pos0) {
  const int half = head_dim / 2;
  for (int t = 0; t < T; ++t) {
    const float* c = rope.cos.data() + static_cast<size_t>(pos0 + t) * half;
    const float* s = rope.sin.data() + static_cast<size_t>(pos0 + t) * half;
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + static_cast<size_t>(t) * ld + static_cast<size_t>(h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const float x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c[i] - x2 * s[i];         // x * cos + rotate_half(x) * sin, first half
        v[i + half] = x2 * c[i] + x1 * s[i];  // second half
      }
    }
  }
}

CTX_TARGET_CLONES void ExpInPlace(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = ExpApprox(x[i]);
}

CTX_TARGET_CLONES void SoftmaxPrefix(float* scores, int valid, int n) {
  // Eight independent accumulators so that the max and sum reductions vectorize without
  // -ffast-math (the summation order is fixed, hence deterministic).
  constexpr int kLanes = 8;
  float max_lane[kLanes];
  for (int j = 0; j < kLanes; ++j) max_lane[j] = scores[0];
  int i = 0;
  for (; i + kLanes <= valid; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) max_lane[j] = std::max(max_lane[j], scores[i + j]);
  }
  float max = max_lane[0];
  for (int j = 1; j < kLanes; ++j) max = std::max(max, max_lane[j]);
  for (; i < valid; ++i) max = std::max(max, scores[i]);

  for (i = 0; i < valid; ++i) scores[i] = ExpApprox(scores[i] - max);
  float sum_lane[kLanes] = {};
  for (i = 0; i + kLanes <= valid; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) sum_lane[j] += scores[i + j];
  }
  float sum = 0.0f;
  for (int j = 0; j < kLanes; ++j) sum += sum_lane[j];
  for (; i < valid; ++i) sum += scores[i];

  const float inv = 1.0f / sum;
  for (i = 0; i < valid; ++i) scores[i] *= inv;
  for (i = valid; i < n; ++i) scores[i] = 0.0f;
}

CTX_TARGET_CLONES void SwiGlu(float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + ExpApprox(-g)) * up[i];
  }
}

}  // namespace ctx::model::ops
