// bench_model [--cpu-time] [--no-avx512-blas] [--no-pytorch] [model_dir] [repeats]: the inference
// engine's speed on tiny-llama.
//
// Prints prefill tokens/s at 512 and 2048 tokens (logits of the last token only, best of
// `repeats`), decode ms/token with an empty context and after ~2k tokens (median of 32
// steps), a naive-matmul baseline of the same forward pass measured in this run, and the
// ratios to PyTorch eager measured in the same run (loadtest/bench_pytorch.py: the same
// model in models/reference/modeling.py, fp32, same thread count, run as a child process
// with /usr/bin/python3; skipped with a note when python or torch is missing, or with
// --no-pytorch) and to the llama.cpp anchor measured on this machine (GGUF F32, 2 threads,
// flash attention; models/README, issue #3).
// Matrix products: the engine's own AVX-512 GEMM (common/tensor/gemm.h) when the CPU has
// AVX-512, else OpenBLAS. Threads: OPENBLAS_NUM_THREADS (default: all cores; our GEMM is
// single-threaded). OpenBLAS's AVX-512 kernels (for what still goes to OpenBLAS: decode
// attention, the fallback) are used when the CPU has them and OPENBLAS_CORETYPE is unset
// (re-exec with SkylakeX, see blas_setup.h); an explicit OPENBLAS_CORETYPE is respected.
#include <cblas.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/model/blas_setup.h"
#include "common/model/model.h"
#include "common/model/perf.h"
#include "common/tensor/gemm.h"
#include "loadtest/python_bench.h"

namespace {

constexpr double kLlamaCppPrefill512 = 4950, kLlamaCppPrefill2048 = 3321,
                 kLlamaCppDecode2048Ms = 2.91;

// Runs loadtest/bench_pytorch.py with `threads` torch threads and returns its JSON line, or
// nullopt (with a note on stderr) when python, torch or the script fails.
std::optional<nlohmann::json> RunPyTorchBench(const std::string& model_dir, int threads,
                                              int repeats) {
  const std::string python = ctx::bench::PythonInterpreter();
  const std::string cmd = python + " '" + std::string(CTX_SOURCE_DIR) +
                          "/loadtest/bench_pytorch.py' --threads " + std::to_string(threads) +
                          " --repeats " + std::to_string(repeats) + " --model '" + model_dir + "'";
  return ctx::bench::RunJsonChild(cmd);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ctx::model;
  // AVX-512 BLAS kernels unless asked not to (see blas_setup.h).
  bool avx512 = true;
  for (int i = 1; i < argc; ++i) avx512 = avx512 && std::string(argv[i]) != "--no-avx512-blas";
  if (avx512) ReexecWithAvx512BlasIfSupported(argv);
  bool cpu_time = false, pytorch = true;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--cpu-time") {
      cpu_time = true;
    } else if (std::string(argv[i]) == "--no-pytorch") {
      pytorch = false;
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
  const bool own_gemm = ctx::tensor::DefaultGemmBackend() == ctx::tensor::GemmBackend::kAvx512;
  std::printf("model %s  fingerprint %s  GEMM %s  OpenBLAS threads %d  (%s)\n", dir.c_str(),
              (*model)->fingerprint().Hex().c_str(), own_gemm ? "own AVX-512" : "OpenBLAS",
              openblas_get_num_threads(), openblas_get_config());

  const int lengths[] = {512, 2048};
  auto perf = MeasurePerf(**model, lengths, /*decode_context=*/2016, /*decode_steps=*/32, repeats);
  // Short context: 32 steps at positions 32..63 (bench_pytorch.py times the same positions).
  const int empty_len[] = {1};
  auto perf_empty = MeasurePerf(**model, std::span<const int>(empty_len, 0), 32, 32, 1);
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

  // PyTorch eager, same model and thread count, in this run.
  std::optional<nlohmann::json> torch;
  if (pytorch) torch = RunPyTorchBench(dir, openblas_get_num_threads(), repeats);
  auto torch_value = [&](const char* wall_key, const char* cpu_key) {
    const char* key = cpu ? cpu_key : wall_key;
    return torch && torch->contains(key) ? (*torch)[key].get<double>() : 0.0;
  };
  const double t512 = torch_value("prefill512_tok_s", "prefill512_cpu_tok_s");
  const double t2048 = torch_value("prefill2048_tok_s", "prefill2048_cpu_tok_s");
  const double t_d64 = torch_value("decode64_ms", "decode64_cpu_ms");
  const double t_d2048 = torch_value("decode2048_ms", "decode2048_cpu_ms");
  if (torch) {
    std::printf("\nPyTorch %s, %d thread(s), this run: %s\n",
                (*torch).value("torch", std::string("?")).c_str(), (*torch).value("threads", 0),
                torch->dump().c_str());
  }
  // Cell text: the number, or "-" when PyTorch was skipped; ratios are "how many times
  // faster ctxstream is" (>1 means ctxstream wins).
  auto cell = [](double v, const char* fmt) {
    char b[32];
    if (v <= 0) return std::string("-");
    std::snprintf(b, sizeof b, fmt, v);
    return std::string(b);
  };
  std::printf("\n%-38s %12s %12s %12s %12s\n", "metric", "ctxstream", "PyTorch", "vs PyTorch",
              "llama.cpp*");
  std::printf("%-38s %12.0f %12s %12s %12.0f  (%.2fx llama.cpp)\n", "prefill 512 tokens, tok/s",
              p512, cell(t512, "%.0f").c_str(), cell(t512 > 0 ? p512 / t512 : 0, "%.2fx").c_str(),
              kLlamaCppPrefill512, p512 / kLlamaCppPrefill512);
  std::printf("%-38s %12.0f %12s %12s %12.0f  (%.2fx llama.cpp)\n", "prefill 2048 tokens, tok/s",
              p2048, cell(t2048, "%.0f").c_str(),
              cell(t2048 > 0 ? p2048 / t2048 : 0, "%.2fx").c_str(), kLlamaCppPrefill2048,
              p2048 / kLlamaCppPrefill2048);
  std::printf("%-38s %12.2f %12s %12s %12s\n", "decode at 32..63 context, ms/token", d0,
              cell(t_d64, "%.2f").c_str(), cell(t_d64 / d0, "%.2fx").c_str(), "-");
  std::printf("%-38s %12.2f %12s %12s %12.2f  (%.2fx llama.cpp)\n",
              "decode at 2016..2047 context, ms/tok", d2048, cell(t_d2048, "%.2f").c_str(),
              cell(t_d2048 / d2048, "%.2fx").c_str(), kLlamaCppDecode2048Ms,
              kLlamaCppDecode2048Ms / d2048);
  std::printf(
      "\nnaive baseline (same run, 128-token prefill): triple-loop matmul %.0f tok/s, "
      "%s %.0f tok/s: %.1fx\n",
      n128, own_gemm ? "own AVX-512 GEMM" : "OpenBLAS", b128, b128 / n128);
  std::printf("(* llama.cpp: anchor measured earlier on this machine, not this run.)\n");
  return 0;
}
