#include "common/policy/replanner.h"

#include <catch2/catch.hpp>
#include <vector>

#include "tests/policy/policy_fixtures.h"

namespace ctx::policy {
namespace {

using testing::MakeContext;
using testing::Simulate;
using testing::SimResult;

// Runs the replanner over a per-chunk bandwidth trace (measured throughput only, no oracle).
SimResult RunAdaptive(const CostModel& m, const ContextCosts& c, const std::vector<double>& bw,
                      double slo, double floor, BandwidthEstimator est,
                      std::vector<ChunkDecision>* decisions = nullptr) {
  StreamReplanner rp(m, c, est, slo, floor);
  return Simulate(
      m, c, bw,
      [&](size_t, double elapsed, double backlog) {
        ChunkDecision d = rp.Decide(elapsed, backlog);
        if (decisions) decisions->push_back(d);
        return d.level;
      },
      [&](double bytes, double seconds) { rp.ReportTransfer(bytes, seconds); });
}

TEST_CASE("Replanner: high bandwidth keeps the best level", "[policy]") {
  CostModel m;
  const ContextCosts c = MakeContext();
  SimResult r = RunAdaptive(m, c, std::vector<double>(8, 100e6), 1.0, 0, BandwidthEstimator(0.5, 100e6));
  CHECK(r.levels == std::vector<int>(8, 0));
  CHECK(r.ttft_s <= 1.0);
}

TEST_CASE("Replanner: a bandwidth drop raises the level", "[policy]") {
  CostModel m;
  const ContextCosts c = MakeContext();
  // 20 MB/s for 3 chunks, then 2 MB/s: level 0 would need 5 x 400 KB / 2 MB/s = 1 s more.
  std::vector<double> bw = {20e6, 20e6, 20e6, 2e6, 2e6, 2e6, 2e6, 2e6};
  std::vector<ChunkDecision> d;
  SimResult r = RunAdaptive(m, c, bw, 0.6, 0, BandwidthEstimator(1.0, 20e6), &d);
  INFO(d.back().reason);
  CHECK(r.levels[0] == 0);
  CHECK(r.levels[3] == 0);  // decided before the drop was measured
  for (size_t i = 5; i < 8; ++i) CHECK(r.levels[i] > 0);
  CHECK(r.levels[7] != kTextLevel);
  CHECK(d[5].measured_bps == Approx(2e6));
  // Better than staying at level 0 through the drop.
  SimResult fixed0 = Simulate(m, c, bw, [](size_t, double, double) { return 0; });
  CHECK(fixed0.ttft_s > 0.6);
  CHECK(r.ttft_s < fixed0.ttft_s);
}

TEST_CASE("Replanner: a collapse switches the rest to text", "[policy]") {
  CostModel m;
  m.prefill = PrefillModel({1e-4, 0, 0});  // fast prefill: 0.2 s for 2048 tokens
  const ContextCosts c = MakeContext();
  std::vector<double> bw = {20e6, 20e6, 50e3, 50e3, 50e3, 50e3, 50e3, 50e3};
  std::vector<ChunkDecision> d;
  SimResult r = RunAdaptive(m, c, bw, 0.6, 0, BandwidthEstimator(1.0, 20e6), &d);
  CHECK(r.levels[0] == 0);
  CHECK(r.levels[3] == kTextLevel);  // the first decision after measuring 50 KB/s
  for (size_t i = 3; i < 8; ++i) CHECK(r.levels[i] == kTextLevel);
  CHECK_THAT(d[3].reason, Catch::Contains("text for the remaining 5 chunks"));
  CHECK(r.ttft_s <= 0.6);
}

TEST_CASE("Replanner: recovery steps back up", "[policy]") {
  CostModel m;
  const ContextCosts c = MakeContext();
  std::vector<double> bw = {20e6, 20e6, 2e6, 2e6, 50e6, 50e6, 50e6, 50e6};
  SimResult r = RunAdaptive(m, c, bw, 0.6, 0, BandwidthEstimator(1.0, 20e6));
  CHECK(r.levels[0] == 0);
  CHECK(r.levels[3] > 0);   // after measuring the drop
  CHECK(r.levels[7] == 0);  // after measuring the recovery
}

TEST_CASE("Replanner: the quality floor is respected, no SLO means best allowed", "[policy]") {
  CostModel m;
  const ContextCosts c = MakeContext();
  std::vector<double> bw(8, 1e6);  // slow: the rule would want the smallest level
  SimResult r = RunAdaptive(m, c, bw, 0.3, 0.005, BandwidthEstimator(1.0, 1e6));
  for (int level : r.levels) CHECK((level == kTextLevel || c.level_loss[level] <= 0.005));

  SimResult none = RunAdaptive(m, c, bw, 0, 0.005, BandwidthEstimator(1.0, 1e6));
  CHECK(none.levels == std::vector<int>(8, 0));

  SimResult all_text = RunAdaptive(m, c, bw, 0.3, 0.0005, BandwidthEstimator(1.0, 1e6));
  CHECK(all_text.levels == std::vector<int>(8, kTextLevel));
}

TEST_CASE("Replanner: nothing fits -> smallest level, best effort", "[policy]") {
  CostModel m;  // slow default prefill: text cannot make it either
  const ContextCosts c = MakeContext();
  StreamReplanner rp(m, c, BandwidthEstimator(1.0, 100e3), 0.5, 0);
  ChunkDecision d = rp.Decide(0);
  CHECK(d.level == 3);
  CHECK_THAT(d.reason, Catch::Contains("best effort"));
  CHECK(rp.next_chunk() == 1);
  CHECK_FALSE(rp.switched_to_text());
}

}  // namespace
}  // namespace ctx::policy
