#include "common/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"

namespace ctx::model {

absl::Status ValidateSamplingParams(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature)) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be a finite number >= 0, got ", p.temperature));
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", p.top_p));
  }
  return absl::OkStatus();
}

int32_t Argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

double Sampler::NextUniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::Sample(std::span<const float> logits) {
  if (params_.temperature <= 0.0f) return Argmax(logits);
  // p_i = softmax(logits / temperature), in double.
  const double inv_t = 1.0 / params_.temperature;
  const double max = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    p[i] = std::exp((logits[i] - max) * inv_t);
    sum += p[i];
  }
  // Candidates in descending probability (ties by id), cut at cumulative mass top_p.
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  size_t keep = order.size();
  double kept_mass = sum;
  if (params_.top_p < 1.0f) {
    std::sort(order.begin(), order.end(),
              [&](int32_t a, int32_t b) { return p[a] != p[b] ? p[a] > p[b] : a < b; });
    double cumulative = 0.0;
    for (size_t i = 0; i < order.size(); ++i) {
      cumulative += p[order[i]];
      if (cumulative >= params_.top_p * sum) {
        keep = i + 1;
        break;
      }
    }
    kept_mass = 0.0;
    for (size_t i = 0; i < keep; ++i) kept_mass += p[order[i]];
  }
  const double u = NextUniform() * kept_mass;
  double cumulative = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    cumulative += p[order[i]];
    if (u < cumulative) return order[i];
  }
  return order[keep - 1];
}

}  // namespace ctx::model
