// Token-by-token generation on top of a context, streaming each token to a callback.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/kv_cache.h"
#include "common/model/model.h"
#include "common/model/sampler.h"

namespace ctx::model {

struct GenerateOptions {
  SamplingParams sampling;
  int max_new_tokens = 128;
  bool stop_at_eos = true;  // the EOS token ends generation and is not returned
};

enum class FinishReason { kEos, kMaxTokens, kContextFull, kStoppedByCallback };

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (EOS excluded)
  FinishReason finish = FinishReason::kMaxTokens;
  int reused_tokens = 0;     // context tokens whose KV was already in the cache
  int prefilled_tokens = 0;  // context tokens computed here
  double prefill_seconds = 0;
  double time_to_first_token_seconds = 0;  // prefill + first sampling
  double decode_seconds = 0;               // all single-token steps
};

// Called with each new token as soon as it is chosen; return false to stop.
using TokenCallback = std::function<bool(int32_t token)>;

// `context` is the whole context's ids; `cache` holds the KV of a prefix of it
// (context[0, cache.length()), e.g. imported chunks) and gets the rest prefilled on top.
// If the cache already covers the whole context, its last token is recomputed to get the
// logits. Errors (InvalidArgument): empty context, ids out of vocabulary, a cache longer than
// the context, a context longer than the cache capacity, bad sampling parameters.
absl::StatusOr<GenerateResult> Generate(const Model& model, std::span<const int32_t> context,
                                        KvCache& cache, const GenerateOptions& options,
                                        const TokenCallback& on_token = nullptr);

}  // namespace ctx::model
