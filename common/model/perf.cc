#include "common/model/perf.h"

#include <algorithm>
#include <chrono>
#include <ctime>

#include "absl/strings/str_cat.h"

namespace ctx::model {
namespace {

double CpuNow() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::vector<int32_t> SyntheticTokens(int n, int vocab_size, uint64_t seed) {
  std::vector<int32_t> ids(n);
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (int i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    ids[i] =
        3 + static_cast<int32_t>((s >> 33) % static_cast<uint64_t>(std::max(1, vocab_size - 3)));
  }
  return ids;
}

absl::StatusOr<PerfReport> MeasurePerf(const Model& model, std::span<const int> prefill_lengths,
                                       int decode_context, int decode_steps, int repeats,
                                       const ForwardOptions& options) {
  const LlamaConfig& c = model.config();
  PerfReport report;
  std::vector<float> logits;
  for (int len : prefill_lengths) {
    if (len <= 0 || len > c.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat("prefill length ", len, " out of range"));
    }
    const std::vector<int32_t> ids = SyntheticTokens(len, c.vocab_size, 1);
    KvCache cache = model.NewKvCache(len);
    double best = 1e300, best_cpu = 1e300;
    for (int r = 0; r < std::max(1, repeats); ++r) {
      (void)cache.Truncate(0);
      const double t0 = Now(), c0 = CpuNow();
      if (absl::Status s = model.Forward(ids, cache, Logits::kLast, &logits, options); !s.ok()) {
        return s;
      }
      best_cpu = std::min(best_cpu, CpuNow() - c0);
      best = std::min(best, Now() - t0);
    }
    report.prefill.push_back({len, best, len / best, best_cpu});
  }
  if (decode_steps > 0) {
    if (decode_context < 1 || decode_context + decode_steps > c.max_position_embeddings) {
      return absl::InvalidArgumentError("decode context + steps exceed max_position_embeddings");
    }
    const std::vector<int32_t> ids =
        SyntheticTokens(decode_context + decode_steps, c.vocab_size, 2);
    KvCache cache = model.NewKvCache(decode_context + decode_steps);
    std::span<const int32_t> all(ids);
    if (absl::Status s =
            model.Forward(all.first(decode_context), cache, Logits::kNone, nullptr, options);
        !s.ok()) {
      return s;
    }
    std::vector<double> steps, cpu_steps;
    for (int i = 0; i < decode_steps; ++i) {
      const double t0 = Now(), c0 = CpuNow();
      if (absl::Status s = model.Forward(all.subspan(decode_context + i, 1), cache, Logits::kLast,
                                         &logits, options);
          !s.ok()) {
        return s;
      }
      cpu_steps.push_back(CpuNow() - c0);
      steps.push_back(Now() - t0);
    }
    std::sort(steps.begin(), steps.end());
    std::sort(cpu_steps.begin(), cpu_steps.end());
    report.decode_cpu_seconds_per_token = cpu_steps[cpu_steps.size() / 2];
    report.decode_context = decode_context;
    report.decode_steps = decode_steps;
    report.decode_seconds_per_token = steps[steps.size() / 2];
  }
  return report;
}

}  // namespace ctx::model
