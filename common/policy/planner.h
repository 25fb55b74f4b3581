// Planner: per-request choice of how a context reaches the model.
//
// Predicted TTFT of each option (B̂ = bandwidth estimate, n = context tokens, q = question
// tokens, O = request overhead):
//   text               O + 4n/B̂_text + P(0, n) + P(n, n + q)
//   compressed, rate r O + C(n)[0 if precomputed] + 4m/B̂_text + P(0, m) + P(m, m + q),
//                      m = tokens after compression
//   KV at level k      O + Pipeline(x_i = S(i,k)/B̂, d_i = D(k, S(i,k))) + P(n, n + q)
//                      (PipelineSeconds in cost_model.h: transfer and decode overlap)
// Choice (objective kBestQualityWithinSlo, the default): among options whose loss <= the
// quality floor, the best quality (lowest loss; ties -> faster) whose TTFT <= SLO; if none
// meets the SLO, the fastest. Objective kFastestWithinFloor: the fastest option whose loss
// <= the floor (ties -> lower loss), whatever the SLO; the SLO is then only reported. An option whose
// loss exceeds the floor is never chosen; text (loss 0) always qualifies. A forced form
// (and level/rate) is honoured as asked; the reason then says if it breaks the SLO or floor.
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
};

struct OptionEstimate {
  Form form = Form::kText;
  int level = kTextLevel;  // KV level, -1 otherwise
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
  std::vector<int> chunk_levels;        // per chunk for kKv (level, all equal); empty else
  std::string reason;                   // human-readable: why this option
};

// Predicts every option's TTFT (text, each compressed version, each KV level).
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
