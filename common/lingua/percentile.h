// NumPy-compatible percentile and the reference's integer-percentile truncation.
#pragma once

#include <span>

namespace ctx::lingua {

// np.percentile(values, q) with the default "linear" method (NumPy >= 1.22):
//   v = sorted(values), h = (q / 100) * (n - 1), i = floor(h), g = h - i,
//   T = v[i] + g (v[i+1] - v[i])            if g < 0.5
//   T = v[i+1] - (1 - g) (v[i+1] - v[i])    if g >= 0.5
// In double. Requires a non-empty span and 0 <= q <= 100 (callers validate).
double NumpyPercentile(std::span<const double> values, double q);

// The token-level percentile LLMLingua-2 uses: int(100 * reduce_rate + 1), evaluated in IEEE
// double with truncation (rate 0.8 -> reduce 0.19999999999999996 -> 20, not 21).
int TokenLevelPercentile(double reduce_rate);
// drop_consecutive's pre-threshold percentile: int(100 * reduce_rate).
int DropConsecutivePercentile(double reduce_rate);
// Context-level percentile: int(100 * (1 - context_level_rate)).
int ContextLevelPercentile(double context_level_rate);

}  // namespace ctx::lingua
