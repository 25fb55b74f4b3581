// Open-loop arrival times: a Poisson process (exponential gaps) at a given rate, seeded so
// that the same seed gives the same schedule.
#pragma once

#include <cstdint>
#include <random>

namespace ctx::loadtest {

class PoissonArrivals {
 public:
  // rate_qps > 0.
  PoissonArrivals(double rate_qps, uint64_t seed) : gap_(rate_qps), rng_(seed) {}
  // Seconds from the previous arrival to the next one (exponential, mean 1/rate).
  double NextGap() { return gap_(rng_); }

 private:
  std::exponential_distribution<double> gap_;
  std::mt19937_64 rng_;
};

}  // namespace ctx::loadtest
