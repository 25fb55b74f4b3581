// Shared fixtures for the policy tests: a tiny-llama-like context and a stream simulator
// that plays a bandwidth trace (one value per chunk) against a per-chunk policy.
#ifndef CTX_TESTS_POLICY_POLICY_FIXTURES_H_
#define CTX_TESTS_POLICY_POLICY_FIXTURES_H_

#include <algorithm>
#include <functional>
#include <vector>

#include "common/policy/cost_model.h"

namespace ctx::policy::testing {

// 8 chunks x 256 tokens = 2048 tokens; 4 KV levels sized like kv-anchors §4 (int8, tok-L1,
// tok-OB, tok-OC: 1560, 620, 440, 386 bytes/token); one compressed version at rate 0.5.
inline ContextCosts MakeContext() {
  ContextCosts c;
  c.chunk_tokens.assign(8, 256);
  for (double bytes_per_token : {1560.0, 620.0, 440.0, 386.0}) {
    c.chunk_bytes.emplace_back(8, static_cast<uint64_t>(bytes_per_token * 256));
  }
  c.level_loss = {0.001, 0.004, 0.006, 0.008};
  c.compressed.push_back({0.5, 1024, 0.03, /*precomputed=*/true});
  c.question_tokens = 32;
  return c;
}

struct SimResult {
  std::vector<int> levels;  // per chunk; kTextLevel for text
  double ttft_s = 0;
  double loss = 0;  // token-weighted mean loss (text chunks: 0)
};

// policy(chunk, elapsed_s, decode_backlog_s) -> level; report(bytes, seconds) after each KV
// chunk. Time model (the truth the predictions approximate): chunk i's transfer takes
// S/bw[i]; decode of chunk i starts when it has arrived and chunk i-1 is decoded; once a
// chunk is text, the rest is text: their ids are sent, then prefilled after the KV prefix
// is decoded; finally the question is prefilled.
inline SimResult Simulate(const CostModel& m, const ContextCosts& c, const std::vector<double>& bw,
                          const std::function<int(size_t, double, double)>& policy,
                          const std::function<void(double, double)>& report = nullptr) {
  SimResult r;
  double now = 0, decode_done = 0, context_done = 0;
  const double n = static_cast<double>(c.TotalTokens());
  double loss_tokens = 0;
  for (size_t i = 0; i < c.num_chunks(); ++i) {
    const int level = policy(i, now, std::max(decode_done - now, 0.0));
    r.levels.push_back(level);
    if (level == kTextLevel) {
      const double before = static_cast<double>(c.TokensBefore(i));
      now += (n - before) * c.bytes_per_token_id / bw[i];
      context_done = std::max(now, decode_done) + m.prefill.Seconds(before, n);
      for (size_t j = i + 1; j < c.num_chunks(); ++j) r.levels.push_back(kTextLevel);
      break;
    }
    const double bytes = static_cast<double>(c.chunk_bytes[level][i]);
    const double t = bytes / bw[i];
    now += t;
    if (report) report(bytes, t);
    decode_done = std::max(decode_done, now) + m.decode.ChunkSeconds(level, bytes);
    context_done = decode_done;
    loss_tokens += c.level_loss[level] * static_cast<double>(c.chunk_tokens[i]);
  }
  r.ttft_s = context_done + m.prefill.Seconds(n, n + static_cast<double>(c.question_tokens));
  r.loss = loss_tokens / n;
  return r;
}

}  // namespace ctx::policy::testing

#endif  // CTX_TESTS_POLICY_POLICY_FIXTURES_H_
