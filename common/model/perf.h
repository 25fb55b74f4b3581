// Measures the engine's own speed on synthetic token ids: prefill tokens/s at a few context
// lengths and decode seconds/token after a given context (what ModelInfo reports).
#pragma once

#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model.h"

namespace ctx::model {

struct PrefillRate {
  int tokens = 0;
  double seconds = 0;  // wall clock, best of the repeats
  double tokens_per_second = 0;
  // Process CPU time of the same run (all threads). On a shared machine wall time includes
  // waiting for a core; with one BLAS thread tokens / cpu_seconds is the uncontended rate.
  double cpu_seconds = 0;
};

struct PerfReport {
  std::vector<PrefillRate> prefill;
  int decode_context = 0;  // tokens in the cache before the timed decode steps
  int decode_steps = 0;
  double decode_seconds_per_token = 0;      // median step, wall clock
  double decode_cpu_seconds_per_token = 0;  // median step, process CPU time
};

// Prefill of each length from an empty cache (logits of the last token only), best of
// `repeats`; then `decode_steps` single-token steps after a `decode_context`-token prefill
// (decode_steps 0 skips decode). Lengths beyond max_position_embeddings are InvalidArgument.
absl::StatusOr<PerfReport> MeasurePerf(const Model& model, std::span<const int> prefill_lengths,
                                       int decode_context, int decode_steps, int repeats = 1,
                                       const ForwardOptions& options = {});

// Deterministic pseudo-random ids in [3, vocab) (skipping the special tokens).
std::vector<int32_t> SyntheticTokens(int n, int vocab_size, uint64_t seed);

}  // namespace ctx::model
