#include "loadtest/query_record.h"

namespace ctx::loadtest {

std::string Delivery::Label() const {
  if (kind == "kv") return "kv" + std::to_string(level);
  return kind;
}

std::map<std::string, double> QueryRecord::DecisionShares() const {
  std::map<std::string, double> shares;
  if (plan_form != "kv" || final_levels.empty()) {
    if (!plan_form.empty()) shares[plan_form] = 1.0;
    return shares;
  }
  const double w = 1.0 / static_cast<double>(final_levels.size());
  for (int level : final_levels) {
    shares[level < 0 ? std::string("text") : "kv" + std::to_string(level)] += w;
  }
  return shares;
}

nlohmann::json ToJson(const QueryRecord& r) {
  nlohmann::json j;
  j["index"] = r.index;
  j["context"] = r.context_name;
  j["question"] = r.question_index;
  j["start_s"] = r.start_seconds;
  j["ttft_s"] = r.ttft_seconds;
  j["total_s"] = r.total_seconds;
  j["code"] = r.status_code;
  if (!r.status_message.empty()) j["message"] = r.status_message;
  j["form"] = r.plan_form;
  j["plan_levels"] = r.plan_levels;
  j["final_levels"] = r.final_levels;
  j["replans"] = r.replans;
  j["predicted_ttft_s"] = r.predicted_ttft_seconds;
  j["bw_estimate_Bps"] = r.bandwidth_estimate_bytes_per_second;
  j["reason"] = r.plan_reason;
  j["stages"] = {{"queue", r.stages.queue},       {"fetch", r.stages.fetch},
                 {"decode", r.stages.decode},     {"prefill", r.stages.prefill},
                 {"compress", r.stages.compress}, {"ttft", r.stages.ttft},
                 {"total", r.stages.total}};
  nlohmann::json bytes = nlohmann::json::array();
  for (const auto& b : r.bytes) {
    bytes.push_back(
        {{"form", b.kind}, {"level", b.level}, {"bytes", b.bytes}, {"chunks", b.chunks}});
  }
  j["bytes"] = bytes;
  j["decision"] = r.DecisionShares();
  j["slo_met"] = r.server_slo_met;
  j["fell_back"] = r.fell_back;
  if (!r.fallback_reason.empty()) j["fallback_reason"] = r.fallback_reason;
  j["tokens"] = r.generated_tokens;
  j["endpoint"] = r.endpoint;
  return j;
}

}  // namespace ctx::loadtest
