#include "common/model/generate.h"

#include <chrono>

#include "absl/strings/str_cat.h"

namespace ctx::model {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

absl::StatusOr<GenerateResult> Generate(const Model& model, std::span<const int32_t> context,
                                        KvCache& cache, const GenerateOptions& options,
                                        const TokenCallback& on_token) {
  if (context.empty()) return absl::InvalidArgumentError("empty context: nothing to generate from");
  if (absl::Status s = ValidateSamplingParams(options.sampling); !s.ok()) return s;
  if (options.max_new_tokens < 0) {
    return absl::InvalidArgumentError("max_new_tokens must be >= 0");
  }
  if (absl::Status s = model.CheckTokens(context); !s.ok()) return s;
  const int n = static_cast<int>(context.size());
  if (cache.length() > n) {
    return absl::InvalidArgumentError(absl::StrCat("the KV cache holds ", cache.length(),
                                                   " tokens but the context has only ", n));
  }
  const int limit = std::min(cache.capacity(), model.config().max_position_embeddings);
  if (n > limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "context of ", n, " tokens exceeds max_position_embeddings / capacity ", limit));
  }
  // The logits of the last context token are needed, so at least that token is computed.
  if (cache.length() == n) (void)cache.Truncate(n - 1);

  GenerateResult result;
  result.reused_tokens = cache.length();
  result.prefilled_tokens = n - cache.length();
  const auto start = std::chrono::steady_clock::now();
  std::vector<float> logits;
  if (absl::Status s =
          model.Forward(context.subspan(cache.length()), cache, Logits::kLast, &logits);
      !s.ok()) {
    return s;
  }
  result.prefill_seconds = SecondsSince(start);

  Sampler sampler(options.sampling);
  const auto decode_start = std::chrono::steady_clock::now();
  for (int step = 0;; ++step) {
    if (step == options.max_new_tokens) {
      result.finish = FinishReason::kMaxTokens;
      break;
    }
    const int32_t token = sampler.Sample(logits);
    if (step == 0) result.time_to_first_token_seconds = SecondsSince(start);
    if (options.stop_at_eos && token == model.config().eos_token_id) {
      result.finish = FinishReason::kEos;
      break;
    }
    result.tokens.push_back(token);
    if (on_token && !on_token(token)) {
      result.finish = FinishReason::kStoppedByCallback;
      break;
    }
    if (step + 1 == options.max_new_tokens) {  // no need to compute logits nobody samples
      result.finish = FinishReason::kMaxTokens;
      break;
    }
    if (cache.length() >= limit) {
      result.finish = FinishReason::kContextFull;
      break;
    }
    const int32_t fed[1] = {token};
    if (absl::Status s = model.Forward(fed, cache, Logits::kLast, &logits); !s.ok()) return s;
  }
  result.decode_seconds = SecondsSince(decode_start);
  return result;
}

}  // namespace ctx::model
