#include "common/lingua/percentile.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace ctx::lingua {

double NumpyPercentile(std::span<const double> values, double q) {
  std::vector<double> v(values.begin(), values.end());
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  if (n == 0) return 0.0;
  const double h = (q / 100.0) * static_cast<double>(n - 1);
  const double fl = std::floor(h);
  const size_t i = std::min(static_cast<size_t>(fl), n - 1);
  const size_t j = std::min(i + 1, n - 1);
  const double g = h - fl;
  const double a = v[i], b = v[j], diff = b - a;
  return g >= 0.5 ? b - diff * (1.0 - g) : a + diff * g;
}

int TokenLevelPercentile(double reduce_rate) { return static_cast<int>(100.0 * reduce_rate + 1.0); }
int DropConsecutivePercentile(double reduce_rate) { return static_cast<int>(100.0 * reduce_rate); }
int ContextLevelPercentile(double context_level_rate) {
  return static_cast<int>(100.0 * (1.0 - context_level_rate));
}

}  // namespace ctx::lingua
