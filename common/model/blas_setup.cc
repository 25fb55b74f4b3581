#include "common/model/blas_setup.h"

#include <cblas.h>
#include <unistd.h>

#include <cstdlib>

namespace ctx::model {

void ReexecWithAvx512BlasIfSupported(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl")) {
    return;
  }
  if (setenv("OPENBLAS_CORETYPE", "SkylakeX", /*overwrite=*/0) != 0) return;
  execv("/proc/self/exe", argv);
  // exec failed: carry on with the kernels already loaded.
}

const char* BlasCoreName() { return openblas_get_corename(); }

}  // namespace ctx::model
