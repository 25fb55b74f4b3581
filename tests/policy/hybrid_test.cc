// Hybrid plans: a text head prefilled while the KV tail streams (planner.h, replanner.h).
// Pure numbers: a linear prefill model (2e-4 s/token: 2048 tokens in 0.41 s) and the
// tiny-llama-like context of policy_fixtures.h (8 chunks x 256 tokens).
#include <catch2/catch.hpp>
#include <vector>

#include "common/policy/planner.h"
#include "common/policy/replanner.h"
#include "tests/policy/policy_fixtures.h"

namespace ctx::policy {
namespace {

// The fixture's context without its compressed version (which would win at 10 Mbit/s here).
ContextCosts MakeContextNoCompressed() {
  ContextCosts c = testing::MakeContext();
  c.compressed.clear();
  return c;
}
using testing::MakeContext;

CostModel LinearPrefill() {
  CostModel m;
  m.prefill = PrefillModel({2e-4, 0, 0});
  return m;
}

const OptionEstimate* Find(const std::vector<OptionEstimate>& opts, int level, bool hybrid) {
  for (const OptionEstimate& o : opts) {
    if (o.form == Form::kKv && o.level == level && (o.text_chunks > 0) == hybrid) return &o;
  }
  return nullptr;
}

TEST_CASE("Hybrid: at 10 Mbit/s a text head of 5 chunks + level 3 tail beats text and KV",
          "[policy]") {
  const CostModel m = LinearPrefill();
  const ContextCosts c = MakeContextNoCompressed();
  PlanRequest req;
  req.bandwidth_bps = 1.25e6;  // 10 Mbit/s
  req.consider_hybrid = true;
  req.objective = Objective::kFastestWithinFloor;
  auto opts = EstimateOptions(m, c, req);
  REQUIRE(opts.ok());
  // Level 3: 98,816 B per chunk = 79 ms on the wire, decode d = 1 ms + 98,816 / 200 MB/s.
  // Split m: head prefill 51.2 ms per chunk is the decoder's initial busy time.
  //   m = 4: head 0.205 s; the tail's last chunk arrives at 4 x 79 ms = 0.316 s -> 0.3177 s
  //   m = 5: head 0.256 s; the 3 tail chunks arrived by 0.237 s -> 0.256 + 3d = 0.2605 s
  //   m = 6: head 0.307 s -> 0.307 + 2d
  // so m = 5, plus the question's prefill P(2048, 2080) = 6.4 ms.
  const double d = m.decode.ChunkSeconds(3, 386.0 * 256);
  const double q = m.prefill.Seconds(2048, 2080);
  const OptionEstimate* h3 = Find(*opts, 3, true);
  REQUIRE(h3 != nullptr);
  CHECK(h3->text_chunks == 5);
  CHECK(h3->ttft_s == Approx(5 * 256 * 2e-4 + 3 * d + q));
  CHECK(h3->loss == c.level_loss[3]);  // the level's loss, not token-weighted (planner.h)
  CHECK(h3->bytes == 5 * 256 * 4 + 3 * 386 * 256);
  const OptionEstimate* kv3 = Find(*opts, 3, false);
  REQUIRE(kv3 != nullptr);
  CHECK(kv3->ttft_s == Approx(8 * 386.0 * 256 / 1.25e6 + d + q));  // 0.639 s
  const double text = (*opts)[0].ttft_s;                           // 0.423 s
  CHECK(text == Approx(2048 * 2e-4 + 2048 * 4 / 1.25e6 + q));
  CHECK(h3->ttft_s < 0.65 * text);

  auto plan = ChoosePlan(m, c, req);
  REQUIRE(plan.ok());
  CHECK(plan->chosen.form == Form::kKv);
  CHECK(plan->chosen.level == 3);
  CHECK(plan->chosen.text_chunks == 5);
  CHECK(plan->chunk_levels == std::vector<int>{-1, -1, -1, -1, -1, 3, 3, 3});
  CHECK_THAT(plan->reason, Catch::Contains("text head of 5 chunks"));
}

TEST_CASE("Hybrid: listed only where it beats its level, off by default, never forced",
          "[policy]") {
  const CostModel m = LinearPrefill();
  const ContextCosts c = MakeContext();
  PlanRequest req;
  req.consider_hybrid = true;
  req.bandwidth_bps = 125e6;  // 1 Gbit/s: all of level 0 arrives in 26 ms, before any head
  auto fast = EstimateOptions(m, c, req);
  REQUIRE(fast.ok());
  CHECK(fast->size() == 6);  // text, compressed, 4 levels; no hybrid
  req.bandwidth_bps = 1.25e6;
  req.consider_hybrid = false;
  auto off = EstimateOptions(m, c, req);
  REQUIRE(off.ok());
  CHECK(off->size() == 6);
  req.consider_hybrid = true;
  req.force_form = Form::kKv;
  req.force_level = 3;
  auto forced = ChoosePlan(m, c, req);
  REQUIRE(forced.ok());
  CHECK(forced->chosen.text_chunks == 0);
  CHECK(forced->chunk_levels == std::vector<int>(8, 3));
}

TEST_CASE("Hybrid: the quality floor applies to the tail's level", "[policy]") {
  const CostModel m = LinearPrefill();
  const ContextCosts c = MakeContextNoCompressed();
  PlanRequest req;
  req.bandwidth_bps = 1.25e6;
  req.consider_hybrid = true;
  req.objective = Objective::kFastestWithinFloor;
  req.max_quality_loss = 0.005;  // levels 0 (0.001) and 1 (0.004) only
  auto plan = ChoosePlan(m, c, req);
  REQUIRE(plan.ok());
  CHECK(plan->chosen.loss <= 0.005);
  // Level 1: 158,720 B per chunk = 127 ms. Best split m = 6: head 0.307 s, 2 tail chunks
  // by 0.254 s -> 0.307 + 2 d1; beats text (0.423 s) and level 0's best split.
  CHECK(plan->chosen.form == Form::kKv);
  CHECK(plan->chosen.level == 1);
  CHECK(plan->chosen.text_chunks == 6);
  const double d1 = m.decode.ChunkSeconds(1, 620.0 * 256);
  CHECK(plan->chosen.ttft_s == Approx(6 * 256 * 2e-4 + 2 * d1 + m.prefill.Seconds(2048, 2080)));
}

TEST_CASE("Hybrid: the replanner skips the text head and counts its prefill as backlog",
          "[policy]") {
  const CostModel m = LinearPrefill();
  const ContextCosts c = MakeContext();
  const double q = m.prefill.Seconds(2048, 2080);
  const double d3 = m.decode.ChunkSeconds(3, 386.0 * 256);
  // Budget 0.25 s at 1.25e6 B/s (deviations 0: plan on B̂ itself). Without the head, level 3
  // for chunks 5..7 would fit (0.237 + d + q = 0.245 s); with the head's 0.256 s of prefill on
  // the worker it cannot (0.267 s), text for the tail is worse (0.256 + P(1280, 2048) + q =
  // 0.416 s), so best effort: level 3.
  StreamReplanner r(m, c, BandwidthEstimator(0.5, 1.25e6), /*slo_s=*/0.25, 0, /*deviations=*/0);
  r.set_text_head(5);
  for (size_t i = 0; i < 5; ++i) {
    const ChunkDecision d = r.Decide(0);
    CHECK(d.chunk_index == i);
    CHECK(d.level == kTextLevel);
    CHECK_THAT(d.reason, Catch::Contains("text head"));
  }
  CHECK_FALSE(r.switched_to_text());
  const ChunkDecision tail = r.Decide(0);
  CHECK(tail.chunk_index == 5);
  CHECK(tail.level == 3);
  CHECK_THAT(tail.reason, Catch::Contains("best effort"));
  CHECK(tail.predicted_finish_s == Approx(5 * 256 * 2e-4 + 3 * d3 + q));
  // The same tail without the head's backlog would have fit the budget.
  CHECK(r.RemainingSeconds(5, 3, 0, 1.25e6) == Approx(3 * 386.0 * 256 / 1.25e6 + d3 + q));
  CHECK(r.RemainingSeconds(5, 3, 0, 1.25e6) < 0.25);
}

}  // namespace
}  // namespace ctx::policy
