#include "common/policy/planner.h"

#include <catch2/catch.hpp>

#include "tests/policy/policy_fixtures.h"

namespace ctx::policy {
namespace {

using testing::MakeContext;

TEST_CASE("PipelineSeconds: two-stage pipeline by hand", "[policy]") {
  // Equal chunks: c * max(x, d) + min(x, d).
  CHECK(PipelineSeconds({1, 1, 1}, {0.5, 0.5, 0.5}) == Approx(3.5));
  CHECK(PipelineSeconds({0.5, 0.5, 0.5}, {1, 1, 1}) == Approx(3.5));
  // Uneven: X = 1, 1.5, 4.5; D = 1.2, 2.4 (max(1.2,1.5)+0.9), 4.6.
  CHECK(PipelineSeconds({1, 0.5, 3}, {0.2, 0.9, 0.1}) == Approx(4.6));
  // A busy decoder delays the first decode.
  CHECK(PipelineSeconds({1}, {1}, 5) == Approx(6));
  CHECK(PipelineSeconds({}, {}, 2) == Approx(2));
}

TEST_CASE("Planner: option estimates follow the documented formulas", "[policy]") {
  CostModel m;
  const ContextCosts c = MakeContext();
  PlanRequest req;
  req.bandwidth_bps = 10e6;
  auto opts = EstimateOptions(m, c, req);
  REQUIRE(opts.ok());
  REQUIRE(opts->size() == 1 + 1 + 4);  // text, one compressed rate, four KV levels
  const OptionEstimate& text = (*opts)[0];
  CHECK(text.form == Form::kText);
  CHECK(text.bytes == 2048 * 4);
  CHECK(text.ttft_s ==
        Approx(2048 * 4 / 10e6 + m.prefill.Seconds(0, 2048) + m.prefill.Seconds(2048, 2080)));
  const OptionEstimate& comp = (*opts)[1];
  CHECK(comp.form == Form::kCompressedText);
  CHECK(comp.compress_s == 0);  // precomputed
  CHECK(comp.ttft_s ==
        Approx(1024 * 4 / 10e6 + m.prefill.Seconds(0, 1024) + m.prefill.Seconds(1024, 1056)));
  const OptionEstimate& kv0 = (*opts)[2];
  CHECK(kv0.form == Form::kKv);
  CHECK(kv0.level == 0);
  const double x = 1560.0 * 256 / 10e6, d = m.decode.ChunkSeconds(0, 1560.0 * 256);
  CHECK(kv0.ttft_s == Approx(8 * std::max(x, d) + std::min(x, d) + m.prefill.Seconds(2048, 2080)));
}

TEST_CASE("Planner: tiny bandwidth and fast prefill -> text", "[policy]") {
  CostModel m;
  m.prefill = PrefillModel({1e-4, 0, 0});  // 0.2 s for 2048 tokens
  PlanRequest req;
  req.bandwidth_bps = 100e3;  // 100 KB/s: the smallest KV level needs ~7.9 s
  req.slo_s = 0.5;
  auto plan = ChoosePlan(m, MakeContext(), req);
  REQUIRE(plan.ok());
  CHECK(plan->chosen.form == Form::kText);
  CHECK(plan->chosen.meets_slo);
  CHECK(plan->chunk_levels.empty());
  CHECK(plan->options.size() == 6);
  CHECK_THAT(plan->reason, Catch::Contains("best quality within SLO"));
}

TEST_CASE("Planner: high bandwidth -> best KV level", "[policy]") {
  CostModel m;  // default prefill: ~2.4 s for 2048 tokens, misses a 1 s SLO
  PlanRequest req;
  req.bandwidth_bps = 1e9;
  req.slo_s = 1.0;
  auto plan = ChoosePlan(m, MakeContext(), req);
  REQUIRE(plan.ok());
  CHECK(plan->chosen.form == Form::kKv);
  CHECK(plan->chosen.level == 0);
  CHECK(plan->chunk_levels == std::vector<int>(8, 0));
}

TEST_CASE("Planner: a tighter SLO picks a smaller level", "[policy]") {
  CostModel m;
  PlanRequest req;
  req.bandwidth_bps = 10e6;  // level 0: 3.2 MB -> ~0.38 s; level 2: 0.9 MB -> ~0.15 s
  req.slo_s = 1.0;
  auto loose = ChoosePlan(m, MakeContext(), req);
  REQUIRE(loose.ok());
  CHECK(loose->chosen.form == Form::kKv);
  CHECK(loose->chosen.level == 0);

  req.slo_s = 0.17;
  auto tight = ChoosePlan(m, MakeContext(), req);
  REQUIRE(tight.ok());
  CHECK(tight->chosen.form == Form::kKv);
  CHECK(tight->chosen.level == 2);
  CHECK(tight->chosen.ttft_s <= 0.17);
  CHECK(tight->options[2 + 1].ttft_s > 0.17);  // level 1 would miss it
}

TEST_CASE("Planner: nothing meets the SLO -> the fastest", "[policy]") {
  CostModel m;
  PlanRequest req;
  req.bandwidth_bps = 10e6;
  req.slo_s = 0.01;
  auto plan = ChoosePlan(m, MakeContext(), req);
  REQUIRE(plan.ok());
  double fastest = 1e9;
  for (const OptionEstimate& o : plan->options) fastest = std::min(fastest, o.ttft_s);
  CHECK(plan->chosen.ttft_s == fastest);
  CHECK(plan->chosen.level == 3);
  CHECK_THAT(plan->reason, Catch::Contains("no option meets SLO"));
}

TEST_CASE("Planner: FASTEST_WITHIN_FLOOR takes the fastest option the floor allows", "[policy]") {
  CostModel m;
  m.prefill = PrefillModel({1e-4, 0, 0});  // text 0.2 s: meets a loose SLO
  PlanRequest req;
  req.slo_s = 5.0;
  req.objective = Objective::kFastestWithinFloor;
  // High bandwidth: a KV level beats text although text meets the SLO.
  req.bandwidth_bps = 1e9;
  auto fast = ChoosePlan(m, MakeContext(), req);
  REQUIRE(fast.ok());
  double fastest = 1e9;
  for (const OptionEstimate& o : fast->options) fastest = std::min(fastest, o.ttft_s);
  CHECK(fast->chosen.ttft_s == fastest);
  CHECK(fast->chosen.form == Form::kKv);
  CHECK_THAT(fast->reason, Catch::Contains("fastest within the quality floor"));
  // The default objective sends text (loss 0 within the SLO) in the same situation.
  req.objective = Objective::kBestQualityWithinSlo;
  auto quality = ChoosePlan(m, MakeContext(), req);
  REQUIRE(quality.ok());
  CHECK(quality->chosen.form == Form::kText);
  // Low bandwidth: (compressed) text is fastest; with a floor below its loss, text.
  req.objective = Objective::kFastestWithinFloor;
  req.bandwidth_bps = 100e3;
  auto slow = ChoosePlan(m, MakeContext(), req);
  REQUIRE(slow.ok());
  CHECK(slow->chosen.form == Form::kCompressedText);  // 1024 precomputed tokens
  req.max_quality_loss = 0.01;                        // compressed text loses 0.03
  auto slow_floor = ChoosePlan(m, MakeContext(), req);
  REQUIRE(slow_floor.ok());
  CHECK(slow_floor->chosen.form == Form::kText);
  // The floor still rules: only levels within it.
  req.bandwidth_bps = 1e9;
  req.max_quality_loss = 0.005;  // levels 0, 1
  auto floored = ChoosePlan(m, MakeContext(), req);
  REQUIRE(floored.ok());
  CHECK(floored->chosen.loss <= 0.005);
  CHECK(floored->chosen.level == 1);
  for (const OptionEstimate& o : floored->options) {
    if (o.loss <= 0.005) CHECK(floored->chosen.ttft_s <= o.ttft_s);
  }
  // Forced KV without a level: the fastest level within the floor.
  req.max_quality_loss = 0;
  req.force_form = Form::kKv;
  auto forced = ChoosePlan(m, MakeContext(), req);
  REQUIRE(forced.ok());
  for (const OptionEstimate& o : forced->options) {
    if (o.form == Form::kKv) CHECK(forced->chosen.ttft_s <= o.ttft_s);
  }
}

TEST_CASE("Planner: compressed text when KV is slow and text misses the SLO", "[policy]") {
  CostModel m;
  PlanRequest req;
  req.bandwidth_bps = 100e3;
  req.slo_s = 1.0;  // text ~2.5 s, compressed (1024 tokens) ~0.7 s, KV >= 7.9 s
  auto plan = ChoosePlan(m, MakeContext(), req);
  REQUIRE(plan.ok());
  CHECK(plan->chosen.form == Form::kCompressedText);
  CHECK(plan->chosen.rate == 0.5);
}

TEST_CASE("Planner: never chooses an option above the quality floor", "[policy]") {
  CostModel m;
  const ContextCosts c = MakeContext();
  for (double bw : {1e4, 1e5, 1e6, 3e6, 1e7, 1e8, 1e9}) {
    for (double slo : {0.0, 0.05, 0.15, 0.3, 1.0, 5.0}) {
      for (double floor : {0.0005, 0.002, 0.005, 0.007, 0.02}) {
        PlanRequest req;
        req.bandwidth_bps = bw;
        req.slo_s = slo;
        req.max_quality_loss = floor;
        auto plan = ChoosePlan(m, c, req);
        REQUIRE(plan.ok());
        INFO("bw " << bw << " slo " << slo << " floor " << floor << ": " << plan->reason);
        CHECK(plan->chosen.loss <= floor);
      }
    }
  }
  // Floor below every KV level and the compressed version: text even though it is slow.
  PlanRequest req;
  req.bandwidth_bps = 1e9;
  req.slo_s = 0.5;
  req.max_quality_loss = 0.0005;
  auto plan = ChoosePlan(m, c, req);
  REQUIRE(plan.ok());
  CHECK(plan->chosen.form == Form::kText);
}

TEST_CASE("Planner: a forced form / level is honoured", "[policy]") {
  CostModel m;
  const ContextCosts c = MakeContext();
  PlanRequest req;
  req.bandwidth_bps = 1e9;
  req.slo_s = 1.0;
  req.force_form = Form::kText;
  auto text = ChoosePlan(m, c, req);
  REQUIRE(text.ok());
  CHECK(text->chosen.form == Form::kText);
  CHECK_THAT(text->reason, Catch::Contains("forced text") && Catch::Contains("misses SLO"));

  req.force_form = Form::kKv;
  req.force_level = 3;
  auto kv3 = ChoosePlan(m, c, req);
  REQUIRE(kv3.ok());
  CHECK(kv3->chosen.level == 3);
  CHECK(kv3->chunk_levels == std::vector<int>(8, 3));

  req.force_level = -1;  // KV, level chosen by the rule: best within SLO
  auto kv = ChoosePlan(m, c, req);
  REQUIRE(kv.ok());
  CHECK(kv->chosen.level == 0);

  req.force_level = 9;
  auto bad = ChoosePlan(m, c, req);
  CHECK_FALSE(bad.ok());
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);

  req.force_form = Form::kCompressedText;
  req.force_level = -1;
  auto comp = ChoosePlan(m, c, req);
  REQUIRE(comp.ok());
  CHECK(comp->chosen.form == Form::kCompressedText);
}

TEST_CASE("Planner: inconsistent inputs are errors", "[policy]") {
  CostModel m;
  ContextCosts c = MakeContext();
  PlanRequest req;
  req.bandwidth_bps = 0;
  CHECK_FALSE(ChoosePlan(m, c, req).ok());
  req.bandwidth_bps = 1e6;
  c.level_loss.pop_back();
  CHECK_FALSE(ChoosePlan(m, c, req).ok());
  c = MakeContext();
  c.chunk_bytes[1].pop_back();
  CHECK_FALSE(ChoosePlan(m, c, req).ok());
}

}  // namespace
}  // namespace ctx::policy
