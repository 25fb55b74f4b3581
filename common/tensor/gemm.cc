#include "common/tensor/gemm.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace ctx::tensor {
namespace {

#define CTX_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))

constexpr int kMR = 14;                    // rows of C per micro-tile
constexpr int kNR = PackedMatrix::kPanel;  // columns of C per micro-tile (2 zmm)
constexpr int kMaxKC = 384;  // K block (measured: 384 beats 256 and 512 on K = 256..1024)
constexpr int kMC =
    8 * kMR;  // rows of A per pass over the B panels (one panel serves them from L1)

float* AllocAligned(size_t n) {
  const size_t bytes = std::max<size_t>(64, (n * sizeof(float) + 63) / 64 * 64);
  return static_cast<float*>(std::aligned_alloc(64, bytes));
}

// Per-thread scratch (on-the-fly packed B) reused across calls.
struct Scratch {
  std::vector<float> b, tail;
};
Scratch& ThreadScratch() {
  thread_local Scratch s;
  return s;
}

// Where B's 32-column panels are: panel p, row kk at base + p * panel_stride + kk * k_stride,
// except the last panel, which is read from `tail` (stride 32) when it is non-null.
struct BPanels {
  const float* base;
  size_t panel_stride;
  size_t k_stride;
  const float* tail = nullptr;
};

// C[MR][32] (columns masked by m0/m1) from MR rows of A read in place (a[r * lda + kk]: each
// A value is broadcast straight from memory into the FMA; measured faster than packing A,
// up to 1.5x when N is small) and the B panel b (row kk at b + kk * ldb). `first`: this is the
// first K block, so the epilogue (alpha, beta, bias) applies; later blocks add alpha * P to C.
template <int MR>
CTX_AVX512 void Kernel(int kc, const float* a, size_t lda, const float* b, size_t ldb, float* c,
                       int ldc, __mmask16 m0, __mmask16 m1, bool first, const GemmEpilogue& e,
                       const float* bias) {
  __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 14
  for (int r = 0; r < MR; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  for (int kk = 0; kk < kc; ++kk) {
    const __m512 b0 = _mm512_loadu_ps(b);
    const __m512 b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 14
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * lda]);
      acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
    }
    ++a;
    b += ldb;
  }
  const __m512 alpha = _mm512_set1_ps(e.alpha);
  if (first) {
    const __m512 beta = _mm512_set1_ps(e.beta);
    const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 14
    for (int r = 0; r < MR; ++r) {
      float* cr = c + static_cast<size_t>(r) * ldc;
      __m512 v0 = _mm512_mul_ps(alpha, acc0[r]), v1 = _mm512_mul_ps(alpha, acc1[r]);
      if (e.beta != 0.0f) {
        v0 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m0, cr), v0);
        v1 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m1, cr + 16), v1);
      }
      if (bias) {
        v0 = _mm512_add_ps(v0, bias0);
        v1 = _mm512_add_ps(v1, bias1);
      }
      _mm512_mask_storeu_ps(cr, m0, v0);
      _mm512_mask_storeu_ps(cr + 16, m1, v1);
    }
  } else {
#pragma GCC unroll 14
    for (int r = 0; r < MR; ++r) {
      float* cr = c + static_cast<size_t>(r) * ldc;
      _mm512_mask_storeu_ps(cr, m0, _mm512_fmadd_ps(alpha, acc0[r], _mm512_maskz_loadu_ps(m0, cr)));
      _mm512_mask_storeu_ps(cr + 16, m1,
                            _mm512_fmadd_ps(alpha, acc1[r], _mm512_maskz_loadu_ps(m1, cr + 16)));
    }
  }
}

using KernelFn = void (*)(int, const float*, size_t, const float*, size_t, float*, int, __mmask16,
                          __mmask16, bool, const GemmEpilogue&, const float*);
constexpr KernelFn kKernels[kMR + 1] = {nullptr,    Kernel<1>,  Kernel<2>,  Kernel<3>,  Kernel<4>,
                                        Kernel<5>,  Kernel<6>,  Kernel<7>,  Kernel<8>,  Kernel<9>,
                                        Kernel<10>, Kernel<11>, Kernel<12>, Kernel<13>, Kernel<14>};

// C[M][N] = epilogue(A[M][K] · B) with B given as 32-column panels.
CTX_AVX512 void Driver(int m, int n, int k, const float* a, int lda, const BPanels& bp, float* c,
                       int ldc, const GemmEpilogue& e) {
  if (m <= 0 || n <= 0) return;
  const int panels = (n + kNR - 1) / kNR;
  if (k <= 0) {  // P = 0: only the epilogue
    for (int i = 0; i < m; ++i) {
      float* cr = c + static_cast<size_t>(i) * ldc;
      for (int j = 0; j < n; ++j) {
        cr[j] = (e.beta == 0.0f ? 0.0f : e.beta * cr[j]) + (e.bias ? e.bias[j] : 0.0f);
      }
    }
    return;
  }
  // K blocks of nearly equal size (their number depends only on K: determinism).
  const int kblocks = (k + kMaxKC - 1) / kMaxKC;
  const int kc_max = (k + kblocks - 1) / kblocks;
  for (int k0 = 0; k0 < k; k0 += kc_max) {
    const int kc = std::min(kc_max, k - k0);
    const bool first = k0 == 0;
    for (int m0 = 0; m0 < m; m0 += kMC) {
      const int mc = std::min(kMC, m - m0);
      for (int p = 0; p < panels; ++p) {
        const int j0 = p * kNR;
        const int cols = std::min(kNR, n - j0);
        const __mmask16 mk0 = cols >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << cols) - 1);
        const __mmask16 mk1 = cols >= 32   ? 0xFFFF
                              : cols <= 16 ? 0
                                           : static_cast<__mmask16>((1u << (cols - 16)) - 1);
        const bool tail = bp.tail != nullptr && p == panels - 1;
        const float* b = tail ? bp.tail + static_cast<size_t>(k0) * kNR
                              : bp.base + p * bp.panel_stride + k0 * bp.k_stride;
        const size_t ldb = tail ? kNR : bp.k_stride;
        const float* bias = e.bias ? e.bias + j0 : nullptr;
        for (int s = 0; s < mc; s += kMR) {
          const int mr = std::min(kMR, mc - s);
          kKernels[mr](kc, a + static_cast<size_t>(m0 + s) * lda + k0, lda, b, ldb,
                       c + static_cast<size_t>(m0 + s) * ldc + j0, ldc, mk0, mk1, first, e, bias);
        }
      }
    }
  }
}

// dst[p][kk][32] = w[p * 32 + j][kk] (zero for j beyond n).
void PackPanels(const float* w, int n, int k, int ldw, float* dst) {
  const int panels = (n + kNR - 1) / kNR;
  for (int p = 0; p < panels; ++p) {
    float* panel = dst + static_cast<size_t>(p) * k * kNR;
    for (int j = 0; j < kNR; ++j) {
      const int row = p * kNR + j;
      if (row < n) {
        const float* src = w + static_cast<size_t>(row) * ldw;
        for (int kk = 0; kk < k; ++kk) panel[static_cast<size_t>(kk) * kNR + j] = src[kk];
      } else {
        for (int kk = 0; kk < k; ++kk) panel[static_cast<size_t>(kk) * kNR + j] = 0.0f;
      }
    }
  }
}

// The epilogue's beta and bias applied to C before an OpenBLAS product with beta 1 (or
// instead of it when K = 0, which BLAS rejects for some leading dimensions).
void BlasPrologue(int m, int n, int k, float* c, int ldc, const GemmEpilogue& e, float* beta_out) {
  if (e.bias == nullptr && k > 0) {
    *beta_out = e.beta;
    return;
  }
  for (int i = 0; i < m; ++i) {
    float* cr = c + static_cast<size_t>(i) * ldc;
    for (int j = 0; j < n; ++j) {
      cr[j] = (e.beta == 0.0f ? 0.0f : e.beta * cr[j]) + (e.bias ? e.bias[j] : 0.0f);
    }
  }
  *beta_out = 1.0f;
}

bool CpuHasAvx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("fma");
}

}  // namespace

GemmBackend DefaultGemmBackend() {
  static const GemmBackend backend = [] {
    const char* env = std::getenv("CTX_GEMM");
    if (env != nullptr && std::strcmp(env, "openblas") == 0) return GemmBackend::kOpenBlas;
    return CpuHasAvx512() ? GemmBackend::kAvx512 : GemmBackend::kOpenBlas;
  }();
  return backend;
}

void PackedMatrix::FreeAligned::operator()(float* p) const { std::free(p); }

PackedMatrix::PackedMatrix(const float* w, int n, int k, int ldw, GemmBackend backend)
    : n_(n), k_(k), backend_(backend) {
  if (backend == GemmBackend::kAvx512) {
    size_ = static_cast<size_t>((n + kNR - 1) / kNR) * kNR * k;
    data_.reset(AllocAligned(size_));
    PackPanels(w, n, k, ldw, data_.get());
  } else {
    size_ = static_cast<size_t>(n) * k;
    data_.reset(AllocAligned(size_));
    for (int i = 0; i < n; ++i) {
      std::memcpy(data_.get() + static_cast<size_t>(i) * k, w + static_cast<size_t>(i) * ldw,
                  static_cast<size_t>(k) * sizeof(float));
    }
  }
}

void MatMulPacked(int m, const float* a, int lda, const PackedMatrix& w, float* c, int ldc,
                  const GemmEpilogue& e) {
  MatMulPackedPrefix(m, w.n(), a, lda, w, c, ldc, e);
}

void MatMulPackedPrefix(int m, int n, const float* a, int lda, const PackedMatrix& w, float* c,
                        int ldc, const GemmEpilogue& e) {
  const int k = w.k();
  n = std::min(n, w.n());
  if (m <= 0 || n <= 0) return;
  if (w.backend() == GemmBackend::kAvx512) {
    Driver(m, n, k, a, lda, BPanels{w.data(), static_cast<size_t>(k) * kNR, kNR}, c, ldc, e);
    return;
  }
  float beta = 0.0f;
  BlasPrologue(m, n, k, c, ldc, e, &beta);
  if (k <= 0) return;
  if (m == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, e.alpha, w.data(), k, a, 1, beta, c, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, e.alpha, a, lda, w.data(), k, beta,
              c, ldc);
}

void MatMulNT(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c,
              int ldc, const GemmEpilogue& e, GemmBackend backend) {
  if (m <= 0 || n <= 0) return;
  if (backend == GemmBackend::kAvx512) {
    std::vector<float>& bbuf = ThreadScratch().b;
    const size_t need = static_cast<size_t>((n + kNR - 1) / kNR) * kNR * std::max(k, 1);
    if (bbuf.size() < need) bbuf.resize(need);
    PackPanels(b, n, k, ldb, bbuf.data());
    Driver(m, n, k, a, lda, BPanels{bbuf.data(), static_cast<size_t>(k) * kNR, kNR}, c, ldc, e);
    return;
  }
  float beta = 0.0f;
  BlasPrologue(m, n, k, c, ldc, e, &beta);
  if (k <= 0) return;
  if (m == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, e.alpha, b, ldb, a, 1, beta, c, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, e.alpha, a, lda, b, ldb, beta, c,
              ldc);
}

void MatMulNN(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c,
              int ldc, const GemmEpilogue& e, GemmBackend backend) {
  if (m <= 0 || n <= 0) return;
  if (backend == GemmBackend::kAvx512) {
    // Full panels are read in place (row kk of panel p at b + kk * ldb + 32 p); a partial last
    // panel is copied into a zero-padded buffer so no read goes past a row.
    BPanels bp{b, kNR, static_cast<size_t>(ldb)};
    const int rem = n % kNR;
    if (rem != 0) {
      std::vector<float>& tail = ThreadScratch().tail;
      tail.assign(static_cast<size_t>(std::max(k, 1)) * kNR, 0.0f);
      const float* src = b + (n - rem);
      for (int kk = 0; kk < k; ++kk) {
        std::memcpy(tail.data() + static_cast<size_t>(kk) * kNR,
                    src + static_cast<size_t>(kk) * ldb, static_cast<size_t>(rem) * sizeof(float));
      }
      bp.tail = tail.data();
    }
    Driver(m, n, k, a, lda, bp, c, ldc, e);
    return;
  }
  float beta = 0.0f;
  BlasPrologue(m, n, k, c, ldc, e, &beta);
  if (k <= 0) return;
  if (m == 1) {
    cblas_sgemv(CblasRowMajor, CblasTrans, k, n, e.alpha, b, ldb, a, 1, beta, c, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, e.alpha, a, lda, b, ldb, beta, c,
              ldc);
}

}  // namespace ctx::tensor
