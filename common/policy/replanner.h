// StreamReplanner: per-chunk level choice while KV streams (DESIGN.md, cachegen.md §2.3).
//
// After every chunk the caller reports the measured transfer (bytes, seconds); the
// estimator updates B̂ (EWMA). Before sending chunk i the caller asks Decide(elapsed, backlog):
//   R = SLO - elapsed                      remaining budget
//   T_kv(k) = Pipeline(x_j = S(j,k)/B̂, d_j = D(k, S(j,k)) for j = i..c-1; decoder busy for
//             `backlog` s) + P(n, n + q)   time to finish ALL remaining chunks at level k
// We use the SUMMED remaining-budget variant (the paper's rule: "the highest-quality
// configuration whose expected delay for the remaining chunks fits the remaining budget"),
// not the per-chunk S(i,k)/B̂ + D <= R/n: chunks differ in size, and the summed form lets
// overlap and slack from earlier chunks count. Rule, over levels allowed by the floor:
//   1. the best-quality level k with T_kv(k) <= R;
//   2. else TEXT for chunk i and every later chunk, if
//        T_text = max(backlog, ids transfer) + P(t_i, n) + P(n, n + q) <= R
//      (t_i = tokens before chunk i; text chunks are prefilled on the inference node after
//      the KV prefix of chunks 0..i-1 is decoded, so once text, the rest is text);
//   3. else the smallest allowed level, best effort (it can still step back up later).
// With no SLO the best allowed level is used; if the floor allows no level, text.
// Re-evaluated every chunk, so the level rises when B̂ drops and steps back when it recovers.
#ifndef CTX_COMMON_POLICY_REPLANNER_H_
#define CTX_COMMON_POLICY_REPLANNER_H_

#include <cstddef>
#include <string>

#include "common/policy/bandwidth_estimator.h"
#include "common/policy/cost_model.h"

namespace ctx::policy {

struct ChunkDecision {
  size_t chunk_index = 0;
  int level = kTextLevel;         // KV level, or kTextLevel (-1) for text
  double estimate_bps = 0;        // B̂ used for the decision
  double measured_bps = 0;        // throughput of the previous chunk (0 for the first)
  double predicted_finish_s = 0;  // predicted TTFT (elapsed + remaining) under this choice
  std::string reason;
};

class StreamReplanner {
 public:
  // `context` and `model` must outlive the replanner. `estimator` seeds B̂ (copy the link's
  // estimator so the cold start is its current estimate). slo_s <= 0: no SLO.
  // max_quality_loss <= 0: no floor.
  StreamReplanner(const CostModel& model, const ContextCosts& context, BandwidthEstimator estimator,
                  double slo_s, double max_quality_loss);

  // Chooses the form/level of the next chunk and advances to the chunk after it.
  // elapsed_s: seconds since the request started; decode_backlog_s: seconds until the
  // decoder finishes chunks already received. Call only while !done().
  ChunkDecision Decide(double elapsed_s, double decode_backlog_s = 0);

  // Reports the measured transfer of the chunk just sent (ignored if unusable).
  void ReportTransfer(double bytes, double seconds) { estimator_.AddSample(bytes, seconds); }

  bool done() const { return next_ >= context_.num_chunks(); }
  size_t next_chunk() const { return next_; }
  bool switched_to_text() const { return text_from_ != kNoText; }
  const BandwidthEstimator& estimator() const { return estimator_; }

  // Predicted seconds from now to finish chunks [first, c) at `level` plus the question's
  // prefill (T_kv above); kTextLevel gives T_text.
  double RemainingSeconds(size_t first, int level, double decode_backlog_s) const;

 private:
  static constexpr size_t kNoText = static_cast<size_t>(-1);

  const CostModel& model_;
  const ContextCosts& context_;
  BandwidthEstimator estimator_;
  double slo_s_;
  double floor_;
  size_t next_ = 0;
  size_t text_from_ = kNoText;
};

}  // namespace ctx::policy

#endif  // CTX_COMMON_POLICY_REPLANNER_H_
