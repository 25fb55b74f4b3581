#include "common/policy/prefill_model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "absl/status/status.h"

namespace ctx::policy {

namespace {

// Regressors of the model for one sample: [n1 - n0, (n1^2 - n0^2) / 2, 1].
std::array<double, 3> Features(double n0, double n1) {
  return {n1 - n0, (n1 * n1 - n0 * n0) / 2.0, 1.0};
}

// Solves the k x k system m x = v in place by Gaussian elimination with partial pivoting.
// Returns false when the system is (numerically) singular.
bool Solve(int k, std::array<std::array<double, 3>, 3>& m, std::array<double, 3>& v) {
  for (int col = 0; col < k; ++col) {
    int pivot = col;
    for (int r = col + 1; r < k; ++r) {
      if (std::abs(m[r][col]) > std::abs(m[pivot][col])) pivot = r;
    }
    if (std::abs(m[pivot][col]) < 1e-12) return false;
    std::swap(m[pivot], m[col]);
    std::swap(v[pivot], v[col]);
    for (int r = 0; r < k; ++r) {
      if (r == col) continue;
      const double f = m[r][col] / m[col][col];
      for (int j = col; j < k; ++j) m[r][j] -= f * m[col][j];
      v[r] -= f * v[col];
    }
  }
  for (int r = 0; r < k; ++r) v[r] /= m[r][r];
  return true;
}

}  // namespace

PrefillModel::PrefillModel(PrefillCoefficients coef) : coef_(coef) {
  // Negative or non-finite coefficients make no physical sense; drop them.
  for (double* x : {&coef_.a, &coef_.b, &coef_.c}) {
    if (!std::isfinite(*x) || *x < 0) *x = 0;
  }
}

PrefillSample PrefillModel::FromSpeed(double tokens, double tokens_per_second) {
  return {0.0, tokens, tokens_per_second > 0 ? tokens / tokens_per_second : 0.0};
}

absl::StatusOr<PrefillModel> PrefillModel::Fit(const std::vector<PrefillSample>& samples) {
  std::vector<std::array<double, 3>> x;
  std::vector<double> y;
  for (const PrefillSample& s : samples) {
    if (!std::isfinite(s.n0) || !std::isfinite(s.n1) || !std::isfinite(s.seconds)) continue;
    if (s.n0 < 0 || s.n1 <= s.n0 || s.seconds <= 0) continue;
    x.push_back(Features(s.n0, s.n1));
    y.push_back(s.seconds);
  }
  if (x.empty()) {
    return absl::InvalidArgumentError(
        "PrefillModel::Fit: no usable sample (need n1 > n0 >= 0 and seconds > 0)");
  }
  // Column scales so that the normal equations are well conditioned (n^2 terms reach 1e8).
  std::array<double, 3> scale = {0, 0, 0};
  for (const auto& f : x) {
    for (int j = 0; j < 3; ++j) scale[j] = std::max(scale[j], std::abs(f[j]));
  }

  // Non-negative least squares for 3 unknowns by enumeration: fit every non-empty subset
  // of the terms by ordinary least squares, keep fits whose coefficients are all >= 0, and
  // take the one with the smallest residual (ties go to fewer terms).
  PrefillCoefficients best{};
  double best_sse = std::numeric_limits<double>::infinity();
  for (int mask : {1, 2, 4, 3, 5, 6, 7}) {  // subsets of {a, b, c}, fewest terms first
    std::array<int, 3> cols{};
    int k = 0;
    for (int j = 0; j < 3; ++j) {
      if (mask & (1 << j)) cols[k++] = j;
    }
    if (k > static_cast<int>(x.size())) continue;  // under-determined
    std::array<std::array<double, 3>, 3> m{};
    std::array<double, 3> v{};
    for (size_t i = 0; i < x.size(); ++i) {
      for (int p = 0; p < k; ++p) {
        const double fp = x[i][cols[p]] / scale[cols[p]];
        v[p] += fp * y[i];
        for (int q = 0; q < k; ++q) m[p][q] += fp * x[i][cols[q]] / scale[cols[q]];
      }
    }
    if (!Solve(k, m, v)) continue;
    std::array<double, 3> coef = {0, 0, 0};
    bool non_negative = true;
    for (int p = 0; p < k; ++p) {
      coef[cols[p]] = v[p] / scale[cols[p]];
      if (coef[cols[p]] < 0) non_negative = false;
    }
    if (!non_negative) continue;
    double sse = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double r = coef[0] * x[i][0] + coef[1] * x[i][1] + coef[2] * x[i][2] - y[i];
      sse += r * r;
    }
    if (sse < best_sse * (1 - 1e-9)) {
      best_sse = sse;
      best = {coef[0], coef[1], coef[2]};
    }
  }
  if (!std::isfinite(best_sse)) {
    return absl::InvalidArgumentError("PrefillModel::Fit: samples admit no non-negative fit");
  }
  return PrefillModel(best);
}

double PrefillModel::Seconds(double n0, double n1) const {
  n0 = std::max(n0, 0.0);
  if (!(n1 > n0)) return 0.0;
  const double t = coef_.a * (n1 - n0) + coef_.b * (n1 * n1 - n0 * n0) / 2.0 + coef_.c;
  return std::max(t, 0.0);
}

}  // namespace ctx::policy
