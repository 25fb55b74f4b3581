// bench_model [--cpu-time] [--no-avx512-blas] [model_dir] [repeats]: the inference engine's speed
// on tiny-llama.
//
// Prints prefill tokens/s at 512 and 2048 tokens (logits of the last token only, best of
// `repeats`), decode ms/token with an empty context and after ~2k tokens (median of 32
// steps), a naive-matmul baseline of the same forward pass measured in this run, and the
// ratios to the anchors measured on this machine (models/README, issue #3): PyTorch eager
// (models/reference/modeling.py) and llama.cpp (GGUF F32, 2 threads, flash attention).
// Threads: OPENBLAS_NUM_THREADS (default: all cores). OpenBLAS's AVX-512 kernels are used
// when the CPU has them and OPENBLAS_CORETYPE is unset (re-exec with SkylakeX, see
// blas_setup.h); an explicit OPENBLAS_CORETYPE is respected.
#include <cblas.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/model/blas_setup.h"
#include "common/model/model.h"
#include "common/model/perf.h"

namespace {

constexpr double kTorchPrefill512 = 1460, kTorchPrefill2048 = 869, kTorchDecode2048Ms = 15.7;
constexpr double kLlamaCppPrefill512 = 4950, kLlamaCppPrefill2048 = 3321,
                 kLlamaCppDecode2048Ms = 2.91;

}  // namespace

int main(int argc, char** argv) {
  using namespace ctx::model;
  // AVX-512 BLAS kernels unless asked not to (see blas_setup.h).
  bool avx512 = true;
  for (int i = 1; i < argc; ++i) avx512 = avx512 && std::string(argv[i]) != "--no-avx512-blas";
  if (avx512) ReexecWithAvx512BlasIfSupported(argv);
  bool cpu_time = false;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--cpu-time") {
      cpu_time = true;
    } else if (std::string(argv[i]) == "--no-avx512-blas") {
      // handled above
    } else {
      args.push_back(argv[i]);
    }
  }
  const std::string dir =
      args.size() > 0 ? args[0] : std::string(CTX_SOURCE_DIR) + "/models/tiny-llama";
  const int repeats = args.size() > 1 ? std::atoi(args[1].c_str()) : 3;
  auto model = Model::Load(dir);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  std::printf("model %s  fingerprint %s  OpenBLAS threads %d  (%s)\n", dir.c_str(),
              (*model)->fingerprint().Hex().c_str(), openblas_get_num_threads(),
              openblas_get_config());

  const int lengths[] = {512, 2048};
  auto perf = MeasurePerf(**model, lengths, /*decode_context=*/2016, /*decode_steps=*/32, repeats);
  const int empty_len[] = {1};
  auto perf_empty = MeasurePerf(**model, std::span<const int>(empty_len, 0), 1, 32, 1);
  if (!perf.ok() || !perf_empty.ok()) {
    std::fprintf(stderr, "measurement failed\n");
    return 1;
  }
  // On a machine shared with other work, wall time includes waiting for a core: --cpu-time
  // reports tokens per CPU-second instead (uncontended speed when OPENBLAS_NUM_THREADS=1).
  const bool cpu = cpu_time;
  auto rate = [&](const PrefillRate& r) { return r.tokens / (cpu ? r.cpu_seconds : r.seconds); };
  const double p512 = rate(perf->prefill[0]);
  const double p2048 = rate(perf->prefill[1]);
  const double d2048 =
      (cpu ? perf->decode_cpu_seconds_per_token : perf->decode_seconds_per_token) * 1e3;
  const double d0 =
      (cpu ? perf_empty->decode_cpu_seconds_per_token : perf_empty->decode_seconds_per_token) * 1e3;
  std::printf("timing: %s\n", cpu ? "process CPU time (--cpu-time)" : "wall clock");
  std::printf(
      "wall: prefill 512 %.0f tok/s, 2048 %.0f tok/s, decode@2016 %.2f ms | cpu: %.0f, %.0f tok/s, "
      "%.2f ms\n",
      perf->prefill[0].tokens_per_second, perf->prefill[1].tokens_per_second,
      perf->decode_seconds_per_token * 1e3, 512 / perf->prefill[0].cpu_seconds,
      2048 / perf->prefill[1].cpu_seconds, perf->decode_cpu_seconds_per_token * 1e3);

  // Naive baseline: the same forward pass with textbook triple-loop matrix products.
  const int naive_len[] = {128};
  ForwardOptions naive;
  naive.gemm = ops::Gemm::kNaive;
  auto blas128 = MeasurePerf(**model, naive_len, 0, 0, repeats);
  auto naive128 = MeasurePerf(**model, naive_len, 0, 0, 1, naive);
  if (!blas128.ok() || !naive128.ok()) return 1;
  const double b128 = rate(blas128->prefill[0]);
  const double n128 = rate(naive128->prefill[0]);

  std::printf("\n%-38s %12s %12s %12s %12s\n", "metric", "ctxstream", "PyTorch", "llama.cpp",
              "vs PyTorch");
  std::printf("%-38s %12.0f %12.0f %12.0f %11.2fx  (%.2fx llama.cpp)\n",
              "prefill 512 tokens, tok/s", p512, kTorchPrefill512, kLlamaCppPrefill512,
              p512 / kTorchPrefill512, p512 / kLlamaCppPrefill512);
  std::printf("%-38s %12.0f %12.0f %12.0f %11.2fx  (%.2fx llama.cpp)\n",
              "prefill 2048 tokens, tok/s", p2048, kTorchPrefill2048, kLlamaCppPrefill2048,
              p2048 / kTorchPrefill2048, p2048 / kLlamaCppPrefill2048);
  std::printf("%-38s %12.2f %12.2f %12.2f %11.2fx  (%.2fx llama.cpp)\n",
              "decode after 2016 tokens, ms/token", d2048, kTorchDecode2048Ms,
              kLlamaCppDecode2048Ms, kTorchDecode2048Ms / d2048, kLlamaCppDecode2048Ms / d2048);
  std::printf("%-38s %12.2f %12s %12s\n", "decode, empty context, ms/token", d0, "7.4 (64 ctx)",
              "-");
  std::printf(
      "\nnaive baseline (same run, 128-token prefill): triple-loop matmul %.0f tok/s, "
      "OpenBLAS %.0f tok/s: %.1fx\n",
      n128, b128, b128 / n128);
  std::printf(
      "(PyTorch / llama.cpp columns are the anchors measured on this machine, not "
      "this run.)\n");
  return 0;
}
