// One query as the load generator saw it, and its JSON form (one JSON object per line in
// the records file). Filled by a QueryClient; summarized by summary.h.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace ctx::loadtest {

// How one chunk (or a whole text/compressed-text context) reached the model.
// kind: "text", "ctext" or "kv"; level: KV level, -1 otherwise.
struct Delivery {
  std::string kind;
  int level = -1;
  std::string Label() const;  // "text", "ctext", "kv0", "kv1", ...
};

// Bytes moved for one form/level (QueryResult.bytes).
struct ByteCountRecord {
  std::string kind;  // as Delivery::kind
  int level = -1;
  uint64_t bytes = 0;
  uint32_t chunks = 0;
};

// Server-side stage seconds (QueryResult.timings).
struct StageSeconds {
  double queue = 0, fetch = 0, decode = 0, prefill = 0, compress = 0;
  double ttft = 0;  // measured at the controller
  double total = 0;
};

struct QueryRecord {
  uint64_t index = 0;        // 0-based order of sending
  std::string context_name;  // workload context the query was about
  int question_index = 0;
  double start_seconds = 0;  // when it was sent, seconds since the run started
  // Client-side: request sent -> first token event received; < 0 when no token arrived.
  double ttft_seconds = -1;
  double total_seconds = 0;  // request sent -> stream closed
  int status_code = 0;       // grpc::StatusCode (0 = OK)
  std::string status_message;
  // The plan (first event) and the re-planning decisions that followed.
  std::string plan_form;         // "text", "ctext", "kv" ("" if no plan arrived)
  std::vector<int> plan_levels;  // per chunk: KV level, -1 = text (FORM_KV only)
  double predicted_ttft_seconds = 0;
  double bandwidth_estimate_bytes_per_second = 0;
  std::string plan_reason;
  int replans = 0;                // ChunkDecision events that changed a chunk's plan
  std::vector<int> final_levels;  // per chunk after re-planning (FORM_KV only)
  StageSeconds stages;
  std::vector<ByteCountRecord> bytes;
  bool server_slo_met = false;
  bool fell_back = false;
  std::string fallback_reason;
  uint32_t generated_tokens = 0;
  std::string endpoint;  // inference replica that served it

  bool ok() const { return status_code == 0; }
  // The decision as query-weighted shares per label: a text query is {"text": 1}; a KV
  // query whose 4 chunks went kv1,kv1,kv2,text is {"kv1": .5, "kv2": .25, "text": .25}.
  std::map<std::string, double> DecisionShares() const;
};

nlohmann::json ToJson(const QueryRecord& r);

}  // namespace ctx::loadtest
