#include "common/policy/cost_model.h"

#include <algorithm>

namespace ctx::policy {

namespace {
// Value for `level` from a per-level vector, reusing the last entry; `fallback` when empty.
double PerLevel(const std::vector<double>& v, int level, double fallback) {
  if (v.empty()) return fallback;
  const size_t i = std::min(static_cast<size_t>(std::max(level, 0)), v.size() - 1);
  return v[i];
}
}  // namespace

double DecodeModel::ChunkSeconds(int level, double bytes) const {
  // Defaults: 1 ms per chunk, 200 MB/s over compressed bytes ("decode well above link speed").
  const double fixed = std::max(PerLevel(per_chunk_s, level, 1e-3), 0.0);
  const double bps = PerLevel(bytes_per_second, level, 200e6);
  return fixed + (bps > 0 ? std::max(bytes, 0.0) / bps : 0.0);
}

double DecodeModel::GenerationSeconds(int tokens) const {
  return tokens > 1 ? (tokens - 1) * std::max(seconds_per_token, 0.0) : 0.0;
}

double CompressModel::Seconds(double tokens) const {
  return std::max(fixed_s + per_token_s * std::max(tokens, 0.0), 0.0);
}

int64_t ContextCosts::TotalTokens() const { return TokensBefore(chunk_tokens.size()); }

int64_t ContextCosts::TokensBefore(size_t chunk) const {
  int64_t n = 0;
  for (size_t i = 0; i < chunk && i < chunk_tokens.size(); ++i) n += chunk_tokens[i];
  return n;
}

uint64_t ContextCosts::LevelBytes(size_t level) const {
  uint64_t total = 0;
  if (level < chunk_bytes.size()) {
    for (uint64_t b : chunk_bytes[level]) total += b;
  }
  return total;
}

double PipelineSeconds(const std::vector<double>& transfer_s, const std::vector<double>& decode_s,
                       double decode_busy_s) {
  double transfer_done = 0;
  double decode_done = std::max(decode_busy_s, 0.0);
  const size_t n = std::min(transfer_s.size(), decode_s.size());
  for (size_t j = 0; j < n; ++j) {
    transfer_done += transfer_s[j];
    decode_done = std::max(decode_done, transfer_done) + decode_s[j];
  }
  return decode_done;
}

}  // namespace ctx::policy
