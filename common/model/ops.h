// Numeric kernels of the Llama forward pass, on row-major float32 matrices.
// Matrix products go to OpenBLAS; the element-wise steps are plain loops the compiler
// vectorizes (with AVX2/AVX-512 clones selected at run time for the exp-heavy ones).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ctx::model::ops {

// Which matrix-product implementation to use: OpenBLAS, or a textbook triple loop (only
// for the benchmark's baseline).
enum class Gemm { kBlas, kNaive };

// C[M][N] = alpha * A[M][K] . W[N][K]^T + beta * C   (a Linear layer: W is [out][in]).
void MatMulTransB(Gemm gemm, int M, int N, int K, float alpha, const float* A, int lda,
                  const float* W, int ldw, float beta, float* C, int ldc);
// C[M][N] = A[M][K] . B[K][N]  (beta = 0).
void MatMul(Gemm gemm, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
            float* C, int ldc);

// y[N] = W[N][K] . x[K] + beta * y with W in bfloat16 bits (widened exactly to float32):
// the decode path's matrix-vector product, reading half the bytes of float32 weights.
void GemvBF16(int N, int K, const uint16_t* W, const float* x, float beta, float* y);

// out[t] = weight * x[t] / sqrt(mean(x[t]^2) + eps) for T rows of width H.
void RmsNorm(const float* x, const float* weight, int T, int H, float eps, float* out);

// cos/sin of RoPE angles pos * theta^(-2i/D), i < D/2, for positions [0, max_pos), computed
// in float32 the way HF does (inv_freq and the product rounded to float).
struct RopeTable {
  RopeTable(int max_pos, int head_dim, double theta);
  int half = 0;
  std::vector<float> cos, sin;  // [max_pos][D/2]
};

// Rotates `n_heads` heads of D values in each of T rows (row t at position pos0 + t, row
// stride ld) with HF's rotate_half convention: pairs (x[i], x[i + D/2]).
void ApplyRope(const RopeTable& rope, float* x, int T, int ld, int n_heads, int head_dim, int pos0);

// In-place softmax of scores[0, valid) of one row; entries [valid, n) are set to 0.
void SoftmaxPrefix(float* scores, int valid, int n);

// gate[i] = silu(gate[i]) * up[i]  (SwiGLU's element-wise part), n elements.
void SwiGlu(float* gate, const float* up, size_t n);

// exp(x) for a vector, accurate to ~2 ulp (exposed for tests).
void ExpInPlace(float* x, size_t n);

}  // namespace ctx::model::ops
