// Summary of a run: throughput, TTFT percentiles, errors by code, decision mix, SLO
// violations, and a decision timeline; written as one JSON object.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "loadtest/query_record.h"
#include "nlohmann/json.hpp"

namespace ctx::loadtest {

// Nearest-rank percentile of `values` (need not be sorted): the smallest value v such that
// at least p % of the values are <= v. p in (0, 100]; 0 for an empty input.
double Percentile(std::vector<double> values, double p);

struct SummaryOptions {
  double slo_ttft_seconds = 0;  // 0: no SLO (violations not counted)
  double timeline_bucket_seconds = 1;
  double duration_seconds = 0;  // wall time of the run (first send -> last completion)
  double offered_qps = 0;       // open loop: --rate; closed loop: 0
  std::string label;            // free text copied into the summary (strategy, bandwidth)
};

struct Summary {
  uint64_t sent = 0;
  uint64_t ok = 0;
  uint64_t failed = 0;
  std::map<std::string, uint64_t> errors_by_code;  // "UNAVAILABLE" -> n
  double duration_seconds = 0;
  double throughput_qps = 0;  // ok / duration
  double ttft_mean = 0, ttft_min = 0, ttft_max = 0;
  double ttft_p50 = 0, ttft_p95 = 0, ttft_p99 = 0;  // over OK queries
  double predicted_ttft_mean = 0;
  std::map<std::string, double> decision_mix;  // label -> queries (shares summed)
  std::map<std::string, uint64_t> plan_forms;  // "text"/"ctext"/"kv" -> queries
  uint64_t slo_violations = 0;                 // OK with TTFT > SLO, plus failures
  double slo_violation_ratio = 0;              // violations / sent
  uint64_t fell_back = 0;
  uint64_t replans = 0;
  std::map<std::string, double> stage_means;       // fetch/decode/prefill/... seconds
  std::map<std::string, uint64_t> bytes_by_label;  // "kv2" -> bytes, "text" -> bytes
  // Per time bucket (by start time): queries split by decision share, and mean TTFT.
  struct Bucket {
    double t = 0;
    std::map<std::string, double> mix;
    double ttft_mean = 0;
    uint64_t n = 0;
  };
  std::vector<Bucket> timeline;
};

Summary Summarize(const std::vector<QueryRecord>& records, const SummaryOptions& options);
nlohmann::json ToJson(const Summary& s, const SummaryOptions& options);

// "OK", "UNAVAILABLE", ... for a grpc::StatusCode value.
std::string StatusCodeName(int code);

}  // namespace ctx::loadtest
