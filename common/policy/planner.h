// Planner: per-request choice of how a context reaches the model.
//
// Predicted TTFT of each option (B̂ = bandwidth estimate, n = context tokens, q = question
// tokens, O = request overhead):
//   text               O + 4n/B̂_text + P(0, n) + P(n, n + q)
//   compressed, rate r O + C(n)[0 if precomputed] + 4m/B̂_text + P(0, m) + P(m, m + q),
//                      m = tokens after compression
//   KV at level k      O + Pipeline(x_i = S(i,k)/B̂, d_i = D(k, S(i,k))) + P(n, n + q)
//                      (PipelineSeconds in cost_model.h: transfer and decode overlap)
//   hybrid, level k,   O + Pipeline(x_i, d_i for i = m..c-1; decoder busy P(0, t_m))
//   text head m          + P(n, n + q)                        (t_m = tokens of chunks [0, m))
//                      chunks [0, m) are prefilled from their token ids while the KV of chunks
//                      [m, c) streams in; the inference node's one worker prefills the head,
//                      then decodes the tail chunks that arrived meanwhile (so the head's
//                      prefill is the decoder's initial busy time: TTFT = max(prefill(head),
//                      transfer(tail)) + what is left of the tail's decode + the question).
//                      A stored chunk's KV is exactly what prefilling its full prefix computes,
//                      so the head need not come from KV. Per level only the best m in
//                      [1, c-1] is listed, and only when it beats KV at that level
//                      (PlanRequest::consider_hybrid). Its loss is the level's loss Q(k),
//                      unweighted: Q(k) was measured with every chunk at level k, so it bounds
//                      a plan whose head is exact; a token-weighted Q(k)*(n-t_m)/n would be a
//                      guess nobody measured, so the floor uses the bound.
// Choice (objective kBestQualityWithinSlo, the default): among options whose loss <= the
// quality floor, the best quality (lowest loss; ties -> faster) whose TTFT <= SLO; if none
// meets the SLO, the fastest. Objective kFastestWithinFloor: the fastest option whose loss
// <= the floor (ties -> lower loss), whatever the SLO; the SLO is then only reported. An option
// whose loss exceeds the floor is never chosen; text (loss 0) always qualifies. A forced form (and
// level/rate) is honoured as asked; the reason then says if it breaks the SLO or floor.
#ifndef CTX_COMMON_POLICY_PLANNER_H_
#define CTX_COMMON_POLICY_PLANNER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/policy/cost_model.h"

namespace ctx::policy {

enum class Form { kText, kCompressedText, kKv };
// What the choice optimises (QueryRequest.objective).
enum class Objective { kBestQualityWithinSlo, kFastestWithinFloor };
const char* FormName(Form form);

struct PlanRequest {
  double bandwidth_bps = 0;       // B̂ kvcache -> inference: the link estimator's
                                  // estimate_bps(), or conservative_bps(K) to plan safely
  double text_bandwidth_bps = 0;  // controller -> inference for token ids; <= 0: use B̂
  double slo_s = 0;               // TTFT objective; <= 0: none (best quality)
  double max_quality_loss = 0;    // floor: never choose loss above this; <= 0: no floor
  std::optional<Form> force_form;
  int force_level = -1;   // with kKv: this level; -1 = choose
  double force_rate = 0;  // with kCompressedText: this rate; <= 0 = choose
  Objective objective = Objective::kBestQualityWithinSlo;
  // Also list hybrid options (text head + KV tail, above). Never chosen for a forced form.
  bool consider_hybrid = false;
};

struct OptionEstimate {
  Form form = Form::kText;
  int level = kTextLevel;  // KV level, -1 otherwise
  size_t text_chunks = 0;  // hybrid (form kKv): chunks [0, text_chunks) prefilled from text
  double rate = 0;         // compression rate for kCompressedText, else 0
  double ttft_s = 0;       // predicted time to first token
  double loss = 0;         // quality loss
  uint64_t bytes = 0;      // bytes to move to the inference node
  // Breakdown (seconds). For KV, transfer_s and decode_s are stage totals (they overlap).
  double transfer_s = 0, decode_s = 0, prefill_s = 0, compress_s = 0;
  bool meets_slo = true;
  bool meets_floor = true;
};

struct Plan {
  OptionEstimate chosen;
  std::vector<OptionEstimate> options;  // every option considered, in a stable order
  std::vector<int> chunk_levels;        // per chunk for kKv: kTextLevel for a hybrid's head
                                        // chunks, the level for the rest; empty else
  std::string reason;                   // human-readable: why this option
};

// Predicts every option's TTFT (text, each compressed version, each KV level, then with
// consider_hybrid the winning hybrid per level, in level order).
// KV levels need a size for every chunk; a level whose row is the wrong length is an error.
absl::StatusOr<std::vector<OptionEstimate>> EstimateOptions(const CostModel& model,
                                                            const ContextCosts& context,
                                                            const PlanRequest& request);

// Estimates and chooses. Errors: inconsistent context (chunk_bytes / level_loss sizes), a
// forced level or rate that does not exist, a forced form with no version available.
absl::StatusOr<Plan> ChoosePlan(const CostModel& model, const ContextCosts& context,
                                const PlanRequest& request);

}  // namespace ctx::policy

#endif  // CTX_COMMON_POLICY_PLANNER_H_
