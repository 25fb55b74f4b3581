// Picks the next token from logits: greedy (temperature 0) or sampled with temperature and
// nucleus (top-p) truncation. Deterministic for a given seed: the random stream is
// mt19937_64 turned into doubles by hand (no implementation-defined distributions).
#pragma once

#include <cstdint>
#include <random>
#include <span>

#include "absl/status/status.h"

namespace ctx::model {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (argmax, first on ties)
  float top_p = 1.0f;        // keep the smallest set of most likely tokens with mass >= top_p
  uint64_t seed = 0;
};

// InvalidArgument for negative/non-finite temperature or top_p outside (0, 1].
absl::Status ValidateSamplingParams(const SamplingParams& params);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  int32_t Sample(std::span<const float> logits);

 private:
  double NextUniform();  // [0, 1)
  SamplingParams params_;
  std::mt19937_64 rng_;
};

int32_t Argmax(std::span<const float> logits);

}  // namespace ctx::model
