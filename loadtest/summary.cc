#include "loadtest/summary.h"

#include <algorithm>
#include <cmath>

namespace ctx::loadtest {

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double n = static_cast<double>(values.size());
  // rank = ceil(p/100 * n), 1-based, clamped to [1, n].
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * n - 1e-9));
  rank = std::clamp<size_t>(rank, 1, values.size());
  return values[rank - 1];
}

std::string StatusCodeName(int code) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  if (code >= 0 && code < static_cast<int>(std::size(kNames))) return kNames[code];
  return "CODE_" + std::to_string(code);
}

Summary Summarize(const std::vector<QueryRecord>& records, const SummaryOptions& options) {
  Summary s;
  s.sent = records.size();
  s.duration_seconds = options.duration_seconds;
  std::vector<double> ttfts;
  double predicted_sum = 0;
  std::map<std::string, double> stage_sums;
  std::map<size_t, Summary::Bucket> buckets;
  const double bucket_w = options.timeline_bucket_seconds > 0 ? options.timeline_bucket_seconds : 1;
  for (const QueryRecord& r : records) {
    if (!r.ok()) {
      ++s.failed;
      ++s.errors_by_code[StatusCodeName(r.status_code)];
      if (options.slo_ttft_seconds > 0) ++s.slo_violations;
      continue;
    }
    ++s.ok;
    // A stream that ended OK without a token (max_tokens = 0) counts its total time.
    const double ttft = r.ttft_seconds >= 0 ? r.ttft_seconds : r.total_seconds;
    ttfts.push_back(ttft);
    predicted_sum += r.predicted_ttft_seconds;
    if (options.slo_ttft_seconds > 0 && ttft > options.slo_ttft_seconds) ++s.slo_violations;
    if (!r.plan_form.empty()) ++s.plan_forms[r.plan_form];
    if (r.fell_back) ++s.fell_back;
    s.replans += static_cast<uint64_t>(r.replans);
    const auto shares = r.DecisionShares();
    for (const auto& [label, w] : shares) s.decision_mix[label] += w;
    stage_sums["queue"] += r.stages.queue;
    stage_sums["fetch"] += r.stages.fetch;
    stage_sums["decode"] += r.stages.decode;
    stage_sums["prefill"] += r.stages.prefill;
    stage_sums["compress"] += r.stages.compress;
    stage_sums["server_ttft"] += r.stages.ttft;
    for (const auto& b : r.bytes) {
      s.bytes_by_label[Delivery{b.kind, b.level}.Label()] += b.bytes;
    }
    auto& bucket = buckets[static_cast<size_t>(std::max(0.0, r.start_seconds) / bucket_w)];
    for (const auto& [label, w] : shares) bucket.mix[label] += w;
    bucket.ttft_mean += ttft;
    ++bucket.n;
  }
  if (!ttfts.empty()) {
    double sum = 0;
    for (double t : ttfts) sum += t;
    s.ttft_mean = sum / static_cast<double>(ttfts.size());
    s.ttft_min = *std::min_element(ttfts.begin(), ttfts.end());
    s.ttft_max = *std::max_element(ttfts.begin(), ttfts.end());
    s.ttft_p50 = Percentile(ttfts, 50);
    s.ttft_p95 = Percentile(ttfts, 95);
    s.ttft_p99 = Percentile(ttfts, 99);
    s.predicted_ttft_mean = predicted_sum / static_cast<double>(ttfts.size());
    for (const auto& [k, v] : stage_sums) s.stage_means[k] = v / static_cast<double>(ttfts.size());
  }
  s.slo_violation_ratio =
      s.sent > 0 ? static_cast<double>(s.slo_violations) / static_cast<double>(s.sent) : 0;
  s.throughput_qps = s.duration_seconds > 0 ? static_cast<double>(s.ok) / s.duration_seconds : 0;
  for (auto& [index, bucket] : buckets) {
    bucket.t = static_cast<double>(index) * bucket_w;
    if (bucket.n > 0) bucket.ttft_mean /= static_cast<double>(bucket.n);
    s.timeline.push_back(bucket);
  }
  return s;
}

nlohmann::json ToJson(const Summary& s, const SummaryOptions& options) {
  nlohmann::json j;
  j["label"] = options.label;
  j["sent"] = s.sent;
  j["ok"] = s.ok;
  j["failed"] = s.failed;
  j["errors_by_code"] = s.errors_by_code;
  j["duration_s"] = s.duration_seconds;
  j["offered_qps"] = options.offered_qps;
  j["throughput_qps"] = s.throughput_qps;
  j["ttft_s"] = {{"mean", s.ttft_mean}, {"min", s.ttft_min}, {"max", s.ttft_max},
                 {"p50", s.ttft_p50},   {"p95", s.ttft_p95}, {"p99", s.ttft_p99}};
  j["predicted_ttft_mean_s"] = s.predicted_ttft_mean;
  j["slo_ttft_s"] = options.slo_ttft_seconds;
  j["slo_violations"] = s.slo_violations;
  j["slo_violation_ratio"] = s.slo_violation_ratio;
  j["decision_mix"] = s.decision_mix;
  j["plan_forms"] = s.plan_forms;
  j["fell_back"] = s.fell_back;
  j["replans"] = s.replans;
  j["stage_means_s"] = s.stage_means;
  j["bytes_by_label"] = s.bytes_by_label;
  nlohmann::json timeline = nlohmann::json::array();
  for (const auto& b : s.timeline) {
    timeline.push_back({{"t", b.t}, {"n", b.n}, {"ttft_mean", b.ttft_mean}, {"mix", b.mix}});
  }
  j["timeline"] = timeline;
  return j;
}

}  // namespace ctx::loadtest
