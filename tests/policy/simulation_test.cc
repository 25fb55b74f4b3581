// A CacheGen-style adaptation run (cachegen.md §2.2): per-chunk bandwidth i.i.d. uniform in a
// range, many seeded traces; the adaptive replanner sees only measured throughput of past
// chunks (no oracle), unlike the artifact. Compared with every fixed level and with text.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "common/policy/replanner.h"
#include "tests/policy/policy_fixtures.h"

namespace ctx::policy {
namespace {

using testing::MakeContext;
using testing::Simulate;
using testing::SimResult;

// Uniform in [lo, hi) from the raw 64-bit stream: identical on every standard library.
double Uniform(std::mt19937_64& rng, double lo, double hi) {
  return lo + (hi - lo) * static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

struct Tally {
  int violations = 0;
  double loss = 0;  // mean over traces
  double ttft = 0;  // mean over traces
};

TEST_CASE("Simulation: adaptive has no more SLO violations than any fixed level", "[policy]") {
  CostModel m;
  const ContextCosts c = MakeContext();
  const double slo = 0.5;
  const double lo = 1e6, hi = 12e6;  // 8 .. 96 Mbit/s per chunk
  const int traces = 500;
  const int levels = static_cast<int>(c.num_levels());

  std::vector<Tally> fixed(levels);
  Tally text, adaptive;
  std::mt19937_64 rng(20261127);
  for (int t = 0; t < traces; ++t) {
    std::vector<double> bw(c.num_chunks());
    for (double& b : bw) b = Uniform(rng, lo, hi);
    auto add = [&](Tally& tally, const SimResult& r) {
      tally.violations += r.ttft_s > slo;
      tally.loss += r.loss / traces;
      tally.ttft += r.ttft_s / traces;
    };
    for (int k = 0; k < levels; ++k) {
      add(fixed[k], Simulate(m, c, bw, [k](size_t, double, double) { return k; }));
    }
    add(text, Simulate(m, c, bw, [](size_t, double, double) { return kTextLevel; }));
    // Cold start: the middle of the range, as a per-link default would be configured.
    StreamReplanner rp(m, c, BandwidthEstimator(0.5, (lo + hi) / 2), slo, 0);
    add(adaptive, Simulate(
                      m, c, bw, [&](size_t, double e, double b) { return rp.Decide(e, b).level; },
                      [&](double bytes, double s) { rp.ReportTransfer(bytes, s); }));
  }

  std::printf("policy simulation: %d traces, bandwidth U[%.0f, %.0f] MB/s per chunk, SLO %.2f s\n",
              traces, lo / 1e6, hi / 1e6, slo);
  for (int k = 0; k < levels; ++k) {
    std::printf("  fixed level %d: violations %3d  mean loss %.4f  mean TTFT %.3f s\n", k,
                fixed[k].violations, fixed[k].loss, fixed[k].ttft);
  }
  std::printf("  text         : violations %3d  mean loss %.4f  mean TTFT %.3f s\n",
              text.violations, text.loss, text.ttft);
  std::printf("  adaptive     : violations %3d  mean loss %.4f  mean TTFT %.3f s\n",
              adaptive.violations, adaptive.loss, adaptive.ttft);

  for (int k = 0; k < levels; ++k) {
    INFO("fixed level " << k);
    CHECK(adaptive.violations <= fixed[k].violations);
  }
  CHECK(adaptive.loss <= fixed[levels - 1].loss);  // quality >= the smallest level's
  CHECK(fixed[0].violations > 0);                  // the run is not trivially easy
}

}  // namespace
}  // namespace ctx::policy
