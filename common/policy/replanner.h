// StreamReplanner: per-chunk level choice while KV streams (DESIGN.md, cachegen.md §2.3).
//
// After every chunk the caller reports the measured transfer (bytes, seconds); the
// estimator updates B̂ (EWMA). Before sending chunk i the caller asks Decide(elapsed, backlog):
//   R = SLO - elapsed                      remaining budget
//   T_kv(k) = Pipeline(x_j = S(j,k)/B̂_c, d_j = D(k, S(j,k)) for j = i..c-1; decoder busy for
//             `backlog` s) + P(n, n + q)   time to finish ALL remaining chunks at level k
// We use the SUMMED remaining-budget variant (the paper's rule: "the highest-quality
// configuration whose expected delay for the remaining chunks fits the remaining budget"),
// not the per-chunk S(i,k)/B̂ + D <= R/n: chunks differ in size, and the summed form lets
// overlap and slack from earlier chunks count. Rule, over levels allowed by the floor:
//   1. the best-quality level k with T_kv(k) <= R and, as a guard for this chunk's
//      irreversible choice, T_guard(k) <= R, where
//        T_guard(k) = Pipeline(chunk i at k, chunks i+1.. at the smallest allowed level)
//                     at B_min = min(B̂_c, slowest throughput measured so far) + P(n, n+q)
//      (if the link falls back to the worst it has shown, the rest can still make it at the
//      smallest level; without it a fast run followed by a drop strands a large chunk);
//   2. else TEXT for chunk i and every later chunk, if
//        T_text = max(backlog, ids transfer) + P(t_i, n) + P(n, n + q) <= R
//      (t_i = tokens before chunk i; text chunks are prefilled on the inference node after
//      the KV prefix of chunks 0..i-1 is decoded, so once text, the rest is text);
//   3. else best effort: whichever of the smallest allowed level and text is predicted (at
//      the mean B̂, not B̂_c: best effort minimises the expected finish) to finish sooner
//      (cachegen.md §2.3 says "smallest level"; when the budget is already blown and text is far
//      faster, that would only add delay). Ties go to the level, which can still step back up
//      later.
// Predictions use the conservative estimate B̂_c = max(B̂ - K * dev, B̂ / 10) with
// K = deviations (BandwidthEstimator::conservative_bps; TCP-RTO-like): plan below the mean
// so one slow chunk late in the stream does not break the SLO. K = 0 plans on B̂ itself.
// With no SLO the best allowed level is used; if the floor allows no level, text.
// Re-evaluated every chunk, so the level rises when B̂ drops and steps back when it recovers.
//
// Hybrid plans (planner.h): with set_text_head(m), chunks [0, m) are the plan's text head,
// prefilled by the inference node's worker while the tail streams. Decide() returns text for
// them without switching the stream to text (re-planning concerns only the tail), and every
// prediction counts the head's remaining prefill as decoder backlog:
//   backlog = max(decode_backlog_s, P(0, t_m) - elapsed_s)
// (the worker starts the head when the request starts, then decodes the tail chunks in order).
//
// Measured, not oracle: on traces where each chunk's bandwidth is i.i.d. (CacheGen's
// artifact trace), past throughput says nothing about the next chunk, and this rule has
// more SLO violations than the smallest fixed level (tests/policy/simulation_test.cc prints
// the table); told each chunk's bandwidth up front, as the artifact's simulator is, it has
// none where the small fixed levels have none, at better quality. Adaptation pays off when
// bandwidth persists across chunks (drops, recoveries), which is what real links do.
#ifndef CTX_COMMON_POLICY_REPLANNER_H_
#define CTX_COMMON_POLICY_REPLANNER_H_

#include <algorithm>
#include <cstddef>
#include <string>

#include "common/policy/bandwidth_estimator.h"
#include "common/policy/cost_model.h"

namespace ctx::policy {

struct ChunkDecision {
  size_t chunk_index = 0;
  int level = kTextLevel;         // KV level, or kTextLevel (-1) for text
  double estimate_bps = 0;        // B̂_c used for the decision
  double measured_bps = 0;        // throughput of the previous chunk (0 for the first)
  double predicted_finish_s = 0;  // predicted TTFT (elapsed + remaining) under this choice
  std::string reason;
};

class StreamReplanner {
 public:
  // `context` and `model` must outlive the replanner. `estimator` seeds B̂ (copy the link's
  // estimator so the cold start is its current estimate). slo_s <= 0: no SLO.
  // max_quality_loss <= 0: no floor.
  // deviations: K above (>= 0).
  StreamReplanner(const CostModel& model, const ContextCosts& context, BandwidthEstimator estimator,
                  double slo_s, double max_quality_loss, double deviations = 1.0);

  // Chooses the form/level of the next chunk and advances to the chunk after it.
  // elapsed_s: seconds since the request started; decode_backlog_s: seconds until the
  // decoder finishes chunks already received. Call only while !done().
  ChunkDecision Decide(double elapsed_s, double decode_backlog_s = 0);

  // Chunks before `chunk` were already sent as planned (KV, decided elsewhere): the next
  // Decide is for `chunk`. Never moves backwards.
  void SkipTo(size_t chunk) { next_ = std::max(next_, chunk); }

  // Chunks [0, chunks) are a text head prefilled concurrently (above). Call before Decide.
  void set_text_head(size_t chunks) { text_head_ = chunks; }
  size_t text_head() const { return text_head_; }

  // Reports the measured transfer of the chunk just sent (ignored if unusable).
  void ReportTransfer(double bytes, double seconds) { estimator_.AddSample(bytes, seconds); }

  bool done() const { return next_ >= context_.num_chunks(); }
  size_t next_chunk() const { return next_; }
  bool switched_to_text() const { return text_from_ != kNoText; }
  const BandwidthEstimator& estimator() const { return estimator_; }

  // Predicted seconds from now to finish chunks [first, c) at `level` plus the question's
  // prefill (T_kv above); kTextLevel gives T_text.
  // Uses bandwidth `bps`. With rest_level >= 0 (a KV level), chunks after `first` use it
  // (T_guard above); otherwise they use `level` too.
  double RemainingSeconds(size_t first, int level, double decode_backlog_s, double bps,
                          int rest_level = -1) const;

 private:
  static constexpr size_t kNoText = static_cast<size_t>(-1);

  const CostModel& model_;
  const ContextCosts& context_;
  BandwidthEstimator estimator_;
  double slo_s_;
  double floor_;
  double deviations_;
  size_t next_ = 0;
  size_t text_from_ = kNoText;
  size_t text_head_ = 0;
};

}  // namespace ctx::policy

#endif  // CTX_COMMON_POLICY_REPLANNER_H_
