#include "common/policy/replanner.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_format.h"

namespace ctx::policy {

StreamReplanner::StreamReplanner(const CostModel& model, const ContextCosts& context,
                                 BandwidthEstimator estimator, double slo_s,
                                 double max_quality_loss)
    : model_(model),
      context_(context),
      estimator_(estimator),
      slo_s_(slo_s),
      floor_(max_quality_loss > 0 ? max_quality_loss : INFINITY) {}

double StreamReplanner::RemainingSeconds(size_t first, int level, double decode_backlog_s) const {
  const double n = static_cast<double>(context_.TotalTokens());
  const double question = model_.prefill.Seconds(n, n + context_.question_tokens);
  const double bps = estimator_.estimate_bps();
  const size_t c = context_.num_chunks();
  if (level == kTextLevel) {
    // Ids of the remaining chunks go over the link while the decoder finishes the KV prefix;
    // prefill of the text chunks starts when both are done.
    const double before = static_cast<double>(context_.TokensBefore(first));
    const double ids_s = (n - before) * context_.bytes_per_token_id / bps;
    return std::max(decode_backlog_s, ids_s) + model_.prefill.Seconds(before, n) + question;
  }
  const std::vector<uint64_t>& sizes = context_.chunk_bytes[static_cast<size_t>(level)];
  std::vector<double> x, d;
  for (size_t j = first; j < c && j < sizes.size(); ++j) {
    x.push_back(static_cast<double>(sizes[j]) / bps);
    d.push_back(model_.decode.ChunkSeconds(level, static_cast<double>(sizes[j])));
  }
  return PipelineSeconds(x, d, decode_backlog_s) + question;
}

ChunkDecision StreamReplanner::Decide(double elapsed_s, double decode_backlog_s) {
  ChunkDecision out;
  out.chunk_index = next_;
  out.estimate_bps = estimator_.estimate_bps();
  out.measured_bps = estimator_.last_measured_bps();
  decode_backlog_s = std::max(decode_backlog_s, 0.0);
  const double budget = slo_s_ - elapsed_s;  // R

  // Levels the floor allows, best quality first (codec levels are ordered by size; the loss
  // table decides which are allowed).
  std::vector<int> allowed;
  for (size_t k = 0; k < context_.num_levels() && k < context_.level_loss.size(); ++k) {
    if (context_.level_loss[k] <= floor_ && context_.chunk_bytes[k].size() > next_) {
      allowed.push_back(static_cast<int>(k));
    }
  }

  auto finish = [&](int level) {
    out.level = level;
    out.predicted_finish_s = elapsed_s + RemainingSeconds(next_, level, decode_backlog_s);
    if (level == kTextLevel && text_from_ == kNoText) text_from_ = next_;
    ++next_;
    return out;
  };

  if (text_from_ != kNoText) {
    out.reason = absl::StrFormat("text since chunk %d: later chunks need its KV", text_from_);
    return finish(kTextLevel);
  }
  if (allowed.empty()) {
    out.reason = "no KV level meets the quality floor: text";
    return finish(kTextLevel);
  }
  if (slo_s_ <= 0) {
    out.reason = absl::StrFormat("no SLO: best allowed level %d", allowed.front());
    return finish(allowed.front());
  }
  for (int k : allowed) {
    const double t = RemainingSeconds(next_, k, decode_backlog_s);
    if (t <= budget) {
      out.reason = absl::StrFormat(
          "level %d: remaining %zu chunks predicted %.3f s <= budget %.3f s at %.3g B/s", k,
          context_.num_chunks() - next_, t, budget, out.estimate_bps);
      return finish(k);
    }
  }
  const double t_text = RemainingSeconds(next_, kTextLevel, decode_backlog_s);
  if (t_text <= budget) {
    out.reason = absl::StrFormat(
        "no level fits budget %.3f s at %.3g B/s; text for the remaining %zu chunks "
        "predicted %.3f s",
        budget, out.estimate_bps, context_.num_chunks() - next_, t_text);
    return finish(kTextLevel);
  }
  out.reason = absl::StrFormat(
      "nothing fits budget %.3f s at %.3g B/s (text %.3f s): smallest level %d, best effort",
      budget, out.estimate_bps, t_text, allowed.back());
  return finish(allowed.back());
}

}  // namespace ctx::policy
