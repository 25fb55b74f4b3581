// Single-precision matrix products for the CPU engines (Llama and XLM-R), row-major.
//
// On CPUs with AVX-512 (checked once at run time) the products run on our own register-tiled
// kernel: a 14 x 32 tile of C in 28 zmm accumulators, A read in place (broadcast into the
// FMAs) and B in 32-column panels, K split into blocks of at most 384. Weight matrices are
// immutable, so they are packed once at load time (PackedMatrix); other operands (attention keys)
// are packed per call. Elsewhere every call goes to OpenBLAS (whatever OPENBLAS_CORETYPE says).
//
// Results are deterministic: each C element is summed over k in a fixed order that depends
// only on K (not on M, N, the row or the thread), so a row gives the same bits whether it is
// computed alone or inside a batch.
#pragma once

#include <cstddef>
#include <memory>

namespace ctx::tensor {

enum class GemmBackend {
  kAvx512,    // our kernel (needs avx512f/dq/bw/vl + fma)
  kOpenBlas,  // cblas_sgemm
};

// kAvx512 when the CPU supports it, else kOpenBlas; CTX_GEMM=openblas in the environment
// forces kOpenBlas (to test or compare the fallback on an AVX-512 machine).
GemmBackend DefaultGemmBackend();

// A weight matrix W[N][K] (nn.Linear's [out][in]) in the layout the backend reads: 32-column
// panels [ceil(N/32)][K][32] (zero-padded) for kAvx512, row-major for kOpenBlas.
class PackedMatrix {
 public:
  static constexpr int kPanel = 32;

  PackedMatrix() = default;
  // Packs w[n][k] (row stride ldw >= k).
  PackedMatrix(const float* w, int n, int k, int ldw, GemmBackend backend = DefaultGemmBackend());

  int n() const { return n_; }
  int k() const { return k_; }
  bool empty() const { return n_ == 0; }
  GemmBackend backend() const { return backend_; }
  const float* data() const { return data_.get(); }
  size_t size_bytes() const { return size_ * sizeof(float); }

 private:
  struct FreeAligned {
    void operator()(float* p) const;
  };
  int n_ = 0, k_ = 0;
  size_t size_ = 0;
  GemmBackend backend_ = GemmBackend::kOpenBlas;
  std::unique_ptr<float[], FreeAligned> data_;
};

// What is done with the product P = A · B before it lands in C:
//   C = alpha * P + beta * C + bias   (bias[N] added to every row when non-null; beta == 0
//   never reads C, so C may be uninitialized).
struct GemmEpilogue {
  float alpha = 1.0f;
  float beta = 0.0f;
  const float* bias = nullptr;
};

// C[M][N] = A[M][K] · Wᵀ with W packed (a Linear layer on M rows); K = w.k(), N = w.n().
void MatMulPacked(int m, const float* a, int lda, const PackedMatrix& w, float* c, int ldc,
                  const GemmEpilogue& epilogue = {});

// C[M][n] = A[M][K] · W[0:n]ᵀ: only W's first n <= w.n() rows (e.g. the keys a block of
// queries can see, out of keys packed once for all blocks).
void MatMulPackedPrefix(int m, int n, const float* a, int lda, const PackedMatrix& w, float* c,
                        int ldc, const GemmEpilogue& epilogue = {});

// C[M][N] = A[M][K] · B[N][K]ᵀ (B packed on the fly; e.g. attention scores Q · Kᵀ).
void MatMulNT(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c,
              int ldc, const GemmEpilogue& epilogue = {},
              GemmBackend backend = DefaultGemmBackend());

// C[M][N] = A[M][K] · B[K][N] (e.g. attention output P · V).
void MatMulNN(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c,
              int ldc, const GemmEpilogue& epilogue = {},
              GemmBackend backend = DefaultGemmBackend());

}  // namespace ctx::tensor
