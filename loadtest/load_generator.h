// The load generator's core: sends queries through a QueryClient either open loop (Poisson
// arrivals at a rate, independent of completions) or closed loop (N clients, each sending
// its next query when the previous one finishes), bounded by a query count and a duration.
// The client is an interface so that tests drive the core with a fake.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "loadtest/query_record.h"

namespace ctx::loadtest {

// What to ask; the client turns it into a QueryRequest.
struct QuerySpec {
  uint64_t index = 0;
  std::string context_id;
  std::string context_name;
  int question_index = 0;
  std::string question;
};

class QueryClient {
 public:
  virtual ~QueryClient() = default;
  // Starts one query and returns at once; calls `done` exactly once, from any thread, with
  // the record filled in (index/context/question/start are filled by the generator).
  virtual void StartQuery(const QuerySpec& spec, std::function<void(QueryRecord)> done) = 0;
};

struct WorkloadContext {
  std::string id;    // registered context id
  std::string name;  // document name
};

struct LoadOptions {
  enum class Mode { kOpen, kClosed };
  Mode mode = Mode::kClosed;
  double rate_qps = 1;          // open loop
  int concurrency = 1;          // closed loop
  uint64_t max_queries = 10;    // stop sending after this many (0 = no count bound)
  double duration_seconds = 0;  // stop sending after this long (0 = no time bound)
  uint64_t seed = 1;
  // Called about every `progress_interval_seconds` while the run is going (from a
  // progress thread), and once at the end.
  std::function<void(const struct Progress&)> progress;
  double progress_interval_seconds = 1;
};

struct Progress {
  double elapsed_seconds = 0;
  uint64_t sent = 0;
  uint64_t done = 0;
  uint64_t ok = 0;
  uint64_t in_flight = 0;
  double last_ttft_seconds = -1;  // of the latest OK completion
};

struct RunResult {
  std::vector<QueryRecord> records;  // sorted by index; one per query sent
  double duration_seconds = 0;       // first send -> last completion
  int max_in_flight = 0;
};

// Runs the load; blocks until every sent query has completed.
RunResult RunLoad(QueryClient& client, const std::vector<WorkloadContext>& contexts,
                  const std::vector<std::string>& questions, const LoadOptions& options);

}  // namespace ctx::loadtest
