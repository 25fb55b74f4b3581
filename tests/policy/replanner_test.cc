#include "common/policy/replanner.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "tests/policy/policy_fixtures.h"

namespace ctx::policy {
namespace {

using testing::MakeContext;
using testing::SimResult;
using testing::Simulate;

// Runs the replanner over a per-chunk bandwidth trace (measured throughput only, no oracle).
// deviations = 0: plan on the EWMA itself, so the traces below can be followed by hand.
SimResult RunAdaptive(const CostModel& m, const ContextCosts& c, const std::vector<double>& bw,
                      double slo, double floor, BandwidthEstimator est,
                      std::vector<ChunkDecision>* decisions = nullptr, double deviations = 0) {
  StreamReplanner rp(m, c, est, slo, floor, deviations);
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
  SimResult r =
      RunAdaptive(m, c, std::vector<double>(8, 100e6), 1.0, 0, BandwidthEstimator(0.5, 100e6));
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
  // Chunk 2 is sent at level 0 before the collapse is measured (400 KB at 200 KB/s = 2 s);
  // then even level 3 needs 5 x 99 KB / 200 KB/s = 2.5 s > the 0.96 s left, text ~0.16 s.
  std::vector<double> bw = {20e6, 20e6, 200e3, 200e3, 200e3, 200e3, 200e3, 200e3};
  std::vector<ChunkDecision> d;
  SimResult r = RunAdaptive(m, c, bw, 3.0, 0, BandwidthEstimator(1.0, 20e6), &d);
  CHECK(r.levels[0] == 0);
  CHECK(r.levels[2] == 0);
  for (size_t i = 3; i < 8; ++i) CHECK(r.levels[i] == kTextLevel);
  REQUIRE(d.size() == 4);  // the simulator stops asking once the rest is text
  CHECK(d[3].measured_bps == Approx(200e3));
  CHECK_THAT(d[3].reason, Catch::Contains("text for the remaining 5 chunks"));
  CHECK(r.ttft_s <= 3.0);
  // Staying on KV at the smallest level would have missed the SLO.
  SimResult fixed3 = Simulate(m, c, bw, [](size_t i, double, double) { return i < 3 ? 0 : 3; });
  CHECK(fixed3.ttft_s > 3.0);
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

TEST_CASE("Replanner: nothing fits -> the faster of smallest level and text", "[policy]") {
  CostModel m;  // default prefill: text ~2.5 s, cannot make a 0.5 s SLO either
  const ContextCosts c = MakeContext();
  // 400 KB/s: level 3 needs ~2.0 s, text ~2.5 s -> smallest level, best effort.
  StreamReplanner slow(m, c, BandwidthEstimator(1.0, 400e3), 0.5, 0, 0);
  ChunkDecision d = slow.Decide(0);
  CHECK(d.level == 3);
  CHECK_THAT(d.reason, Catch::Contains("smallest level 3") && Catch::Contains("best effort"));
  CHECK(slow.next_chunk() == 1);
  CHECK_FALSE(slow.switched_to_text());

  // 100 KB/s: level 3 needs ~7.9 s, text ~2.5 s -> text for everything.
  StreamReplanner crawl(m, c, BandwidthEstimator(1.0, 100e3), 0.5, 0, 0);
  d = crawl.Decide(0);
  CHECK(d.level == kTextLevel);
  CHECK_THAT(d.reason, Catch::Contains("beats smallest level 3"));
  CHECK(crawl.switched_to_text());
  CHECK(crawl.Decide(0.1).level == kTextLevel);
}

TEST_CASE("Replanner: the guard keeps a large chunk from being stranded by a drop", "[policy]") {
  CostModel m;
  const ContextCosts c = MakeContext();
  // Seen: one chunk at 1 MB/s, then fast. The EWMA says level 0 fits the remaining chunks,
  // but if the link fell back to 1 MB/s a 400 KB chunk plus the rest at level 3 would not.
  BandwidthEstimator est(0.5, 10e6);
  est.AddSample(1e6, 1.0);
  est.AddSample(30e6, 1.0);
  est.AddSample(30e6, 1.0);
  StreamReplanner rp(m, c, est, 1.0, 0, 0);
  const double bps = est.estimate_bps();
  REQUIRE(rp.RemainingSeconds(0, 0, 0, bps) <= 1.0);    // level 0 fits on the EWMA (~0.2 s)
  REQUIRE(rp.RemainingSeconds(0, 0, 0, 1e6, 3) > 1.0);  // but not if the link drops (~1.15 s)
  ChunkDecision d = rp.Decide(0);
  CHECK(d.level == 1);  // 159 KB + 7 x 99 KB at 1 MB/s + question: ~0.91 s
  CHECK(rp.RemainingSeconds(0, d.level, 0, 1e6, 3) <= 1.0);
}

}  // namespace
}  // namespace ctx::policy

namespace ctx::policy {
namespace {

TEST_CASE("Replanner: unknown levels never fit, a ragged level is not used", "[policy]") {
  CostModel m;
  ContextCosts c = testing::MakeContext();
  c.chunk_bytes[0].pop_back();  // level 0 lacks the last chunk's size
  StreamReplanner rp(m, c, BandwidthEstimator(1.0, 1e9), 1.0, 0, 0);
  CHECK(std::isinf(rp.RemainingSeconds(0, 7, 0, 1e9)));
  CHECK(std::isinf(rp.RemainingSeconds(0, 0, 0, 1e9)));
  CHECK(rp.Decide(0).level == 1);
}

}  // namespace
}  // namespace ctx::policy
