#include "common/policy/replanner.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_format.h"

namespace ctx::policy {

StreamReplanner::StreamReplanner(const CostModel& model, const ContextCosts& context,
                                 BandwidthEstimator estimator, double slo_s,
                                 double max_quality_loss, double deviations)
    : model_(model),
      context_(context),
      estimator_(estimator),
      slo_s_(slo_s),
      floor_(max_quality_loss > 0 ? max_quality_loss : INFINITY),
      deviations_(deviations > 0 ? deviations : 0.0) {}

double StreamReplanner::RemainingSeconds(size_t first, int level, double decode_backlog_s,
                                         double bps, int rest_level) const {
  const double n = static_cast<double>(context_.TotalTokens());
  const double question = model_.prefill.Seconds(n, n + context_.question_tokens);
  const size_t c = context_.num_chunks();
  if (level == kTextLevel) {
    // Ids of the remaining chunks go over the link while the decoder finishes the KV prefix;
    // prefill of the text chunks starts when both are done.
    const double before = static_cast<double>(context_.TokensBefore(first));
    const double ids_s = (n - before) * context_.bytes_per_token_id / bps;
    return std::max(decode_backlog_s, ids_s) + model_.prefill.Seconds(before, n) + question;
  }
  std::vector<double> x, d;
  for (size_t j = first; j < c; ++j) {
    const int k = j > first && rest_level >= 0 ? rest_level : level;
    if (k < 0 || static_cast<size_t>(k) >= context_.num_levels() ||
        context_.chunk_bytes[static_cast<size_t>(k)].size() <= j) {
      return INFINITY;  // no such level / chunk size: never fits
    }
    const double bytes = static_cast<double>(context_.chunk_bytes[static_cast<size_t>(k)][j]);
    x.push_back(bytes / bps);
    d.push_back(model_.decode.ChunkSeconds(k, bytes));
  }
  return PipelineSeconds(x, d, decode_backlog_s) + question;
}

ChunkDecision StreamReplanner::Decide(double elapsed_s, double decode_backlog_s) {
  ChunkDecision out;
  out.chunk_index = next_;
  const double bps = estimator_.conservative_bps(deviations_);  // B̂_c
  out.estimate_bps = bps;
  out.measured_bps = estimator_.last_measured_bps();
  decode_backlog_s = std::max(decode_backlog_s, 0.0);
  if (text_head_ > 0) {
    // The head's prefill occupies the worker that decodes the tail.
    const double head_s =
        model_.prefill.Seconds(0, static_cast<double>(context_.TokensBefore(text_head_)));
    decode_backlog_s = std::max(decode_backlog_s, head_s - elapsed_s);
  }
  const double budget = slo_s_ - elapsed_s;  // R

  // Levels the floor allows, best quality first (codec levels are ordered by size; the loss
  // table decides which are allowed).
  std::vector<int> allowed;
  for (size_t k = 0; k < context_.num_levels() && k < context_.level_loss.size(); ++k) {
    if (context_.level_loss[k] <= floor_ &&
        context_.chunk_bytes[k].size() == context_.num_chunks()) {
      allowed.push_back(static_cast<int>(k));
    }
  }

  auto finish = [&](int level) {
    out.level = level;
    out.predicted_finish_s = elapsed_s + RemainingSeconds(next_, level, decode_backlog_s, bps);
    if (level == kTextLevel && text_from_ == kNoText) text_from_ = next_;
    ++next_;
    return out;
  };

  if (next_ < text_head_) {
    out.reason = absl::StrFormat("text head (chunks 0..%zu prefilled while the KV tail streams)",
                                 text_head_ - 1);
    out.level = kTextLevel;
    out.predicted_finish_s = elapsed_s;
    ++next_;
    return out;
  }
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
  const double min_bps =
      estimator_.samples() > 0 ? std::min(bps, estimator_.min_measured_bps()) : bps;  // B_min
  for (int k : allowed) {
    const double t = RemainingSeconds(next_, k, decode_backlog_s, bps);
    const double guard = RemainingSeconds(next_, k, decode_backlog_s, min_bps, allowed.back());
    if (t <= budget && guard <= budget) {
      out.reason = absl::StrFormat(
          "level %d: remaining %zu chunks predicted %.3f s <= budget %.3f s at %.3g B/s", k,
          context_.num_chunks() - next_, t, budget, out.estimate_bps);
      return finish(k);
    }
  }
  const double t_text = RemainingSeconds(next_, kTextLevel, decode_backlog_s, bps);
  if (t_text <= budget) {
    out.reason = absl::StrFormat(
        "no level fits budget %.3f s at %.3g B/s; text for the remaining %zu chunks "
        "predicted %.3f s",
        budget, out.estimate_bps, context_.num_chunks() - next_, t_text);
    return finish(kTextLevel);
  }
  // Best effort minimises the expected finish, so compare at the mean estimate B̂.
  const double mean_bps = estimator_.estimate_bps();
  const double t_small = RemainingSeconds(next_, allowed.back(), decode_backlog_s, mean_bps);
  const double t_text_mean = RemainingSeconds(next_, kTextLevel, decode_backlog_s, mean_bps);
  if (t_text_mean < t_small) {
    out.reason = absl::StrFormat(
        "nothing fits budget %.3f s at %.3g B/s: text for the remaining %zu chunks (%.3f s) "
        "beats smallest level %d (%.3f s), best effort",
        budget, out.estimate_bps, context_.num_chunks() - next_, t_text_mean, allowed.back(),
        t_small);
    return finish(kTextLevel);
  }
  out.reason = absl::StrFormat(
      "nothing fits budget %.3f s at %.3g B/s: smallest level %d (%.3f s, text %.3f s), best "
      "effort",
      budget, out.estimate_bps, allowed.back(), t_small, t_text_mean);
  return finish(allowed.back());
}

}  // namespace ctx::policy
