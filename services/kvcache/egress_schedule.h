// EgressSchedule: how the per-stream egress rate (EgressLimiter) changes while a Fetch stream
// runs, to emulate a link whose bandwidth drops and recovers (issue #6 tests and benchmark).
//
// Spec (flag --egress_schedule, or the file --egress_schedule_file): comma-separated steps
//   RATE            bytes/s from the start of the stream
//   RATE@Nc         bytes/s from chunk index N on (the chunk the receiver asks for)
//   RATE@Ts         bytes/s from T seconds after the stream opened
// The rate of a chunk is that of the LAST listed step whose start has been reached (steps
// are applied in the order written); before any step applies, the --egress_bytes_per_second
// rate. RATE 0 = unlimited. Example: "4e6,2e5@3c,4e6@6c" sends chunks 0-2 at 4 MB/s, 3-5 at
// 200 kB/s, 6.. at 4 MB/s. The rate is applied when a chunk starts to go out (parts already
// paced keep their rate), so a chunk-indexed schedule gives every chunk exactly one rate.
// A scheduled rate's token bucket holds 20 ms of traffic (at least 16 KiB) instead of the
// flag's max(64 KiB, 50 ms), so a slow scheduled link is slow from its first byte.
//
// The file is read when a Fetch stream opens (its first request), so a test or benchmark
// can change the link between queries without restarting kvcache; an empty or missing file
// means "no schedule" (the flag's schedule applies).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ctx::kvcache {

class EgressSchedule {
 public:
  struct Step {
    double bytes_per_second = 0;  // 0 = unlimited
    bool by_chunk = true;         // start is a chunk index (else seconds)
    double start = 0;             // chunk index or seconds since the stream opened
  };

  EgressSchedule() = default;
  // Parses the spec above; an empty (or all-whitespace) spec is the empty schedule.
  static absl::StatusOr<EgressSchedule> Parse(const std::string& spec);
  // Parse(contents of `path`); a missing or empty file is the empty schedule.
  static absl::StatusOr<EgressSchedule> ReadFile(const std::string& path);

  bool empty() const { return steps_.empty(); }
  // Rate for chunk `chunk_index` starting `seconds` after the stream opened; `base` when no
  // step applies yet.
  double RateAt(unsigned chunk_index, double seconds, double base) const;
  const std::vector<Step>& steps() const { return steps_; }

 private:
  std::vector<Step> steps_;
};

}  // namespace ctx::kvcache
