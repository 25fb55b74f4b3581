// Choosing OpenBLAS's kernels. Debian 12's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not know
// AMD Zen 4 and falls back to its Haswell (AVX2) kernels, although the CPU runs the
// SkylakeX (AVX-512) ones: on this machine they make prefill ~1.6x faster (bench_model).
// OpenBLAS picks its kernels once, when the library is loaded, from the environment
// variable OPENBLAS_CORETYPE; so a program that wants them re-executes itself once with
// the variable set, first thing in main().
#pragma once

namespace ctx::model {

// If OPENBLAS_CORETYPE is unset and the CPU has AVX-512 (F, BW, DQ, VL), sets it to
// "SkylakeX" and re-executes /proc/self/exe with `argv`. Returns (doing nothing) otherwise,
// or if exec fails. Call before starting any thread.
void ReexecWithAvx512BlasIfSupported(char** argv);

// The kernel family OpenBLAS is using, e.g. "Haswell" or "SkylakeX".
const char* BlasCoreName();

}  // namespace ctx::model
