// PrefillModel: predicted seconds to prefill tokens n0..n1 (positions [n0, n1)) on top of
// an existing KV prefix of n0 tokens.
//
//   P(n0, n1) = a * (n1 - n0)                 per-token work (MLPs, projections)
//             + b * (n1^2 - n0^2) / 2         attention: token at position p costs ~ b * p
//             + c                             per-call overhead
//
// (The attention term is the integral of b*p over [n0, n1].) The coefficients are fitted by
// non-negative least squares from measured (n0, n1, seconds) samples, e.g. ModelInfo's
// prefill_speed entries (n0 = 0, n1 = tokens, seconds = tokens / tokens_per_second).
// Predictions are never negative; P(n0, n1) = 0 when n1 <= n0.
#ifndef CTX_COMMON_POLICY_PREFILL_MODEL_H_
#define CTX_COMMON_POLICY_PREFILL_MODEL_H_

#include <vector>

#include "absl/status/statusor.h"

namespace ctx::policy {

struct PrefillSample {
  double n0 = 0;       // prefix length (tokens already in the KV cache)
  double n1 = 0;       // prefix + new tokens
  double seconds = 0;  // measured wall time
};

struct PrefillCoefficients {
  double a = 0;  // seconds per token
  double b = 0;  // seconds per token per position
  double c = 0;  // seconds per call
};

class PrefillModel {
 public:
  // Defaults: the PyTorch reference on this machine (kv-anchors.md §1: 512 tokens in
  // 0.351 s, 2048 tokens in 2.357 s), solved exactly with c = 0:
  // a = 5.30e-4 s/token, b = 6.06e-7 s/token/position.
  PrefillModel() : coef_{5.30e-4, 6.06e-7, 0.0} {}
  explicit PrefillModel(PrefillCoefficients coef);

  // Fits a, b, c >= 0 minimising sum (P(n0, n1) - seconds)^2 over the samples (tries every
  // subset of the three terms and keeps the best fit with non-negative coefficients). Needs
  // at least one usable sample (n1 > n0, seconds > 0, finite).
  static absl::StatusOr<PrefillModel> Fit(const std::vector<PrefillSample>& samples);

  // Convenience for ModelInfo.prefill_speed: (tokens from position 0, tokens per second).
  static PrefillSample FromSpeed(double tokens, double tokens_per_second);

  // Seconds to prefill positions [n0, n1) given an n0-token prefix; >= 0.
  double Seconds(double n0, double n1) const;

  const PrefillCoefficients& coefficients() const { return coef_; }

 private:
  PrefillCoefficients coef_;
};

}  // namespace ctx::policy

#endif  // CTX_COMMON_POLICY_PREFILL_MODEL_H_
