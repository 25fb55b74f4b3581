#include "common/policy/planner.h"

#include <cmath>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ctx::policy {

const char* FormName(Form form) {
  switch (form) {
    case Form::kText:
      return "text";
    case Form::kCompressedText:
      return "compressed text";
    case Form::kKv:
      return "KV";
  }
  return "?";
}

namespace {

double Floor(const PlanRequest& r) {
  return r.max_quality_loss > 0 ? r.max_quality_loss : INFINITY;
}

std::string Describe(const OptionEstimate& o) {
  switch (o.form) {
    case Form::kText:
      return "text";
    case Form::kCompressedText:
      return absl::StrFormat("compressed text (rate %.2f)", o.rate);
    case Form::kKv:
      return o.text_chunks > 0 ? absl::StrFormat("KV level %d after a text head of %zu chunks",
                                                 o.level, o.text_chunks)
                               : absl::StrFormat("KV level %d", o.level);
  }
  return "?";
}

// Text-like option: optional compression, send m token ids, prefill m + q tokens.
OptionEstimate TextLike(const CostModel& model, const ContextCosts& ctx, double text_bps,
                        double tokens_kept, double compress_s) {
  OptionEstimate o;
  const double q = static_cast<double>(ctx.question_tokens);
  o.bytes = static_cast<uint64_t>(tokens_kept * ctx.bytes_per_token_id);
  o.compress_s = compress_s;
  o.transfer_s = static_cast<double>(o.bytes) / text_bps;
  o.prefill_s =
      model.prefill.Seconds(0, tokens_kept) + model.prefill.Seconds(tokens_kept, tokens_kept + q);
  o.ttft_s = model.request_overhead_s + compress_s + o.transfer_s + o.prefill_s;
  return o;
}

// The best hybrid at `kv`'s level: chunks [0, m) prefilled from text while chunks [m, c)
// stream (x, d: per-chunk transfer and decode seconds at that level). text_chunks = 0 when no
// split beats the pure KV option.
OptionEstimate BestHybrid(const CostModel& model, const ContextCosts& ctx, const OptionEstimate& kv,
                          const std::vector<double>& x, const std::vector<double>& d) {
  OptionEstimate best = kv;
  best.text_chunks = 0;
  const size_t c = x.size();
  for (size_t m = 1; m < c; ++m) {
    const double head = static_cast<double>(ctx.TokensBefore(m));
    const double head_s = model.prefill.Seconds(0, head);
    const std::vector<double> xt(x.begin() + static_cast<std::ptrdiff_t>(m), x.end());
    const std::vector<double> dt(d.begin() + static_cast<std::ptrdiff_t>(m), d.end());
    const double ttft = model.request_overhead_s + PipelineSeconds(xt, dt, head_s) + kv.prefill_s;
    if (ttft < best.ttft_s) {
      best.text_chunks = m;
      best.ttft_s = ttft;
      best.prefill_s = head_s + kv.prefill_s;
      best.bytes = static_cast<uint64_t>(head * ctx.bytes_per_token_id);
      best.transfer_s = best.decode_s = 0;
      for (size_t j = m; j < c; ++j) {
        best.bytes += ctx.chunk_bytes[static_cast<size_t>(kv.level)][j];
        best.transfer_s += x[j];
        best.decode_s += d[j];
      }
    }
  }
  return best;
}

}  // namespace

absl::StatusOr<std::vector<OptionEstimate>> EstimateOptions(const CostModel& model,
                                                            const ContextCosts& ctx,
                                                            const PlanRequest& request) {
  if (!(request.bandwidth_bps > 0) || !std::isfinite(request.bandwidth_bps)) {
    return absl::InvalidArgumentError("EstimateOptions: bandwidth estimate must be > 0 B/s");
  }
  if (ctx.level_loss.size() != ctx.chunk_bytes.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "EstimateOptions: ", ctx.chunk_bytes.size(), " KV levels have sizes but ",
        ctx.level_loss.size(), " have a quality loss; the codec profile and manifest disagree"));
  }
  const double kv_bps = request.bandwidth_bps;
  const double text_bps = request.text_bandwidth_bps > 0 ? request.text_bandwidth_bps : kv_bps;
  const double n = static_cast<double>(ctx.TotalTokens());
  const double q = static_cast<double>(ctx.question_tokens);
  const double floor = Floor(request);

  std::vector<OptionEstimate> out;
  std::vector<OptionEstimate> hybrids;  // listed after every pure option
  // Text: prefill everything.
  out.push_back(TextLike(model, ctx, text_bps, n, 0));

  // Compressed text at every available rate.
  for (const CompressedVersion& v : ctx.compressed) {
    const double c = v.precomputed ? 0.0 : model.compress.Seconds(n);
    OptionEstimate o = TextLike(model, ctx, text_bps, static_cast<double>(v.tokens), c);
    o.form = Form::kCompressedText;
    o.rate = v.rate;
    o.loss = v.loss;
    out.push_back(o);
  }

  // KV at every level: transfer and decode pipelined over chunks, then the question.
  for (size_t k = 0; k < ctx.chunk_bytes.size(); ++k) {
    const std::vector<uint64_t>& sizes = ctx.chunk_bytes[k];
    if (sizes.size() != ctx.num_chunks()) {
      return absl::InvalidArgumentError(
          absl::StrCat("EstimateOptions: level ", k, " has sizes for ", sizes.size(),
                       " chunks but the context has ", ctx.num_chunks()));
    }
    std::vector<double> x(sizes.size()), d(sizes.size());
    OptionEstimate o;
    o.form = Form::kKv;
    o.level = static_cast<int>(k);
    o.loss = ctx.level_loss[k];
    for (size_t i = 0; i < sizes.size(); ++i) {
      x[i] = static_cast<double>(sizes[i]) / kv_bps;
      d[i] = model.decode.ChunkSeconds(o.level, static_cast<double>(sizes[i]));
      o.bytes += sizes[i];
      o.transfer_s += x[i];
      o.decode_s += d[i];
    }
    o.prefill_s = model.prefill.Seconds(n, n + q);
    o.ttft_s = model.request_overhead_s + PipelineSeconds(x, d) + o.prefill_s;
    out.push_back(o);
    if (request.consider_hybrid) hybrids.push_back(BestHybrid(model, ctx, o, x, d));
  }
  for (const OptionEstimate& h : hybrids) {
    if (h.text_chunks > 0) out.push_back(h);
  }

  for (OptionEstimate& o : out) {
    o.meets_slo = request.slo_s <= 0 || o.ttft_s <= request.slo_s;
    o.meets_floor = o.loss <= floor;
  }
  return out;
}

absl::StatusOr<Plan> ChoosePlan(const CostModel& model, const ContextCosts& ctx,
                                const PlanRequest& request) {
  absl::StatusOr<std::vector<OptionEstimate>> options = EstimateOptions(model, ctx, request);
  if (!options.ok()) return options.status();
  Plan plan;
  plan.options = *std::move(options);
  const std::vector<OptionEstimate>& opts = plan.options;

  const OptionEstimate* chosen = nullptr;
  if (request.force_form.has_value()) {
    // Honour the forced form; pick within it by the usual rule unless a level/rate is given.
    const Form f = *request.force_form;
    const OptionEstimate* best_in_form = nullptr;
    for (const OptionEstimate& o : opts) {
      if (o.form != f || o.text_chunks > 0) continue;  // forced KV = every chunk KV
      if (f == Form::kKv && request.force_level >= 0 && o.level != request.force_level) continue;
      if (f == Form::kCompressedText && request.force_rate > 0 &&
          std::abs(o.rate - request.force_rate) > 1e-6) {
        continue;
      }
      // Within the form: prefer options meeting floor, then SLO, then lower loss, then faster
      // (kFastestWithinFloor: meeting the floor, then faster, then lower loss).
      const bool fastest_first = request.objective == Objective::kFastestWithinFloor;
      auto key = [fastest_first](const OptionEstimate& e) {
        return fastest_first
                   ? std::tuple(!e.meets_floor, false, e.ttft_s, e.loss)
                   : std::tuple(!e.meets_floor, !e.meets_slo, e.meets_slo ? e.loss : 0.0, e.ttft_s);
      };
      if (best_in_form == nullptr || key(o) < key(*best_in_form)) best_in_form = &o;
    }
    if (best_in_form == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ChoosePlan: forced ", FormName(f),
          f == Form::kKv && request.force_level >= 0
              ? absl::StrCat(" level ", request.force_level, " is not stored for this context")
              : (f == Form::kCompressedText ? " at that rate is not available" : " unavailable")));
    }
    chosen = best_in_form;
    plan.reason =
        absl::StrFormat("forced %s: predicted TTFT %.3f s", Describe(*chosen), chosen->ttft_s);
    if (!chosen->meets_slo)
      absl::StrAppendFormat(&plan.reason, ", misses SLO %.3f s", request.slo_s);
    if (!chosen->meets_floor) {
      absl::StrAppendFormat(&plan.reason, ", loss %.4f exceeds floor %.4f", chosen->loss,
                            request.max_quality_loss);
    }
  } else {
    // Best quality within the SLO among options that respect the floor.
    const OptionEstimate* best_quality = nullptr;
    const OptionEstimate* fastest = nullptr;
    for (const OptionEstimate& o : opts) {
      if (!o.meets_floor) continue;
      if (o.meets_slo && (best_quality == nullptr || o.loss < best_quality->loss ||
                          (o.loss == best_quality->loss && o.ttft_s < best_quality->ttft_s))) {
        best_quality = &o;
      }
      if (fastest == nullptr || o.ttft_s < fastest->ttft_s) fastest = &o;
    }
    if (request.objective == Objective::kFastestWithinFloor && fastest != nullptr) {
      for (const OptionEstimate& o : opts) {  // ties on time: the better quality
        if (o.meets_floor && o.ttft_s == fastest->ttft_s && o.loss < fastest->loss) fastest = &o;
      }
      chosen = fastest;
      plan.reason =
          absl::StrFormat("fastest within the quality floor: %s, loss %.4f, predicted TTFT %.3f s",
                          Describe(*chosen), chosen->loss, chosen->ttft_s);
      if (!chosen->meets_slo) {
        absl::StrAppendFormat(&plan.reason, " (misses SLO %.3f s)", request.slo_s);
      }
    } else if (best_quality != nullptr) {
      chosen = best_quality;
      plan.reason =
          request.slo_s > 0
              ? absl::StrFormat(
                    "best quality within SLO: %s, loss %.4f, predicted TTFT %.3f s "
                    "<= %.3f s",
                    Describe(*chosen), chosen->loss, chosen->ttft_s, request.slo_s)
              : absl::StrFormat("no SLO: best quality %s, loss %.4f, predicted TTFT %.3f s",
                                Describe(*chosen), chosen->loss, chosen->ttft_s);
    } else if (fastest != nullptr) {
      chosen = fastest;
      plan.reason = absl::StrFormat(
          "no option meets SLO %.3f s: fastest within the quality floor is %s, predicted TTFT "
          "%.3f s",
          request.slo_s, Describe(*chosen), chosen->ttft_s);
    } else {
      chosen = &opts.front();  // text (loss 0): only reachable with a negative loss table
      plan.reason = "no option meets the quality floor: text (loss 0)";
    }
  }
  plan.chosen = *chosen;
  if (plan.chosen.form == Form::kKv) {
    plan.chunk_levels.assign(ctx.num_chunks(), plan.chosen.level);
    for (size_t i = 0; i < plan.chosen.text_chunks && i < ctx.num_chunks(); ++i) {
      plan.chunk_levels[i] = kTextLevel;
    }
  }
  return plan;
}

}  // namespace ctx::policy
