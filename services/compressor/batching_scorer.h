// Cross-request batching of classifier chunks: every Compress request hands its chunks to one
// BatchingScorer; compute threads take whatever chunks are pending (from any request, up to
// max_batch_chunks), run them as ONE padded forward, and scatter the p(keep) rows back.
//
//   request A: [a0 a1] --\                      /--> A gets [p(a0) p(a1)]
//   request B: [b0]    ----> pending -> forward(a0 a1 b0) --> B gets [p(b0)]
//
// Chunks that arrive while a forward runs wait for the next one; an idle compute thread waits
// at most `batch_window` after the first pending chunk for more to arrive (so a lone request
// pays at most that much extra latency). A request's chunks may be split over several forwards
// when it has more than max_batch_chunks. Padding does not change a row's result (the classifier
// masks padded keys), so batched outputs equal one-at-a-time outputs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/lingua/chunk_scorer.h"

namespace ctx::compressor {

using Probs = std::vector<std::vector<float>>;
// One padded forward over `seqs` (e.g. ClassifierScorer::KeepProbs); called from compute threads.
using ForwardFn = std::function<absl::StatusOr<Probs>(std::span<const std::vector<int32_t>>)>;

struct BatchingOptions {
  int compute_threads = 1;    // forwards running at the same time
  int max_batch_chunks = 50;  // chunks per forward (the reference's batch size)
  std::chrono::microseconds batch_window{2000};
};

// Whether a request should stop waiting (client cancelled, deadline passed); polled.
struct CallControl {
  std::function<bool()> cancelled;  // may be empty
  std::chrono::system_clock::time_point deadline = std::chrono::system_clock::time_point::max();
};

class BatchingScorer {
 public:
  BatchingScorer(ForwardFn forward, BatchingOptions options);
  ~BatchingScorer();  // fails pending requests with Unavailable, joins the compute threads
  BatchingScorer(const BatchingScorer&) = delete;
  BatchingScorer& operator=(const BatchingScorer&) = delete;

  // Blocks until every sequence is scored. Cancelled / DeadlineExceeded when `control` says so
  // before the request's chunks went into a forward (chunks already in a forward finish).
  absl::StatusOr<Probs> Score(std::span<const std::vector<int32_t>> seqs,
                              const CallControl& control = {});

  // Counters (for tests and logs).
  int64_t forwards() const;
  int64_t chunks_scored() const;
  int64_t max_chunks_in_one_forward() const;
  size_t pending_chunks() const;

 private:
  struct Request;
  struct Item {
    std::shared_ptr<Request> request;
    size_t index;                     // position in the request's seqs
    const std::vector<int32_t>* seq;  // valid while the item is pending (caller is waiting)
    std::chrono::steady_clock::time_point enqueued;
  };
  void Run();

  const ForwardFn forward_;
  const BatchingOptions options_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // compute threads: pending chunks / stop
  std::condition_variable done_cv_;  // requests: results scattered
  std::deque<Item> pending_;
  bool stopping_ = false;
  int64_t forwards_ = 0;
  int64_t chunks_scored_ = 0;
  int64_t max_in_forward_ = 0;
  std::vector<std::thread> threads_;
};

// ChunkScorer for one request: routes PromptCompressor's chunks through the shared batcher with
// that request's cancellation/deadline.
class RequestScorer : public lingua::ChunkScorer {
 public:
  RequestScorer(BatchingScorer* batcher, CallControl control)
      : batcher_(batcher), control_(std::move(control)) {}
  absl::StatusOr<Probs> KeepProbs(std::span<const std::vector<int32_t>> seqs) const override {
    return batcher_->Score(seqs, control_);
  }

 private:
  BatchingScorer* batcher_;
  CallControl control_;
};

}  // namespace ctx::compressor
