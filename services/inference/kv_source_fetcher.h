// Pulls a stored context's KV chunks from kvcache (Fetch bidi stream) on its own thread, for a
// Generate whose GenerateStart.kv_source is set. Segment i of the request is stored chunk i.
//
// Chunk by chunk: choose the chunk's level (the plan, or with adapt=true a
// policy::StreamReplanner fed with each chunk's measured throughput), emit a ChunkDecision,
// request it, reassemble its parts and hand it to the worker's Inbox, then immediately request
// the next one, so that chunk i+1 is in flight while the worker decodes chunk i. When the
// replanner picks text, or kvcache fails (unreachable, missing context or chunk), it pushes
// kTextFrom so the worker prefills the remaining segments from their tokens.
//
// Hybrid plans: segments planned as text before the first KV segment (the text head) are not
// fetched; the thread starts on the first KV segment at once, so the tail's chunks arrive
// (queued in the Inbox) while the worker prefills the head, and the replanner counts the head's
// prefill as decoder backlog (policy::StreamReplanner::set_text_head).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "ctxstream/v1/inference.pb.h"
#include "grpcpp/client_context.h"
#include "services/inference/inbox.h"

namespace ctx::inference {

struct SegmentSpan {
  int begin = 0, end = 0;
  bool kv = false;  // planned as KV (else text: not fetched)
  int level = -1;
};

class KvSourceFetcher {
 public:
  using DecisionSink = std::function<void(const ctxstream::v1::ChunkDecision&)>;

  KvSourceFetcher(ctxstream::v1::KvSource source, std::vector<SegmentSpan> segments,
                  std::optional<std::chrono::system_clock::time_point> deadline, Inbox& inbox,
                  DecisionSink on_decision);
  ~KvSourceFetcher();  // Stop() + join

  void Start();
  // Ends the Fetch stream (cancels it if still running) and joins the thread.
  void Stop();

 private:
  void Run();
  void Fail(size_t segment, const std::string& reason);

  ctxstream::v1::KvSource source_;
  std::vector<SegmentSpan> segments_;
  std::optional<std::chrono::system_clock::time_point> deadline_;
  Inbox& inbox_;
  DecisionSink on_decision_;
  std::atomic<bool> stop_{false};
  std::mutex ctx_mu_;
  grpc::ClientContext* active_ctx_ = nullptr;
  grpc::ClientContext* manifest_ctx_ = nullptr;  // adapt: the GetManifest call in flight
  std::thread thread_;
};

}  // namespace ctx::inference
