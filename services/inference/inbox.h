// What a Generate worker waits for while it builds the KV cache: KV chunk parts and replan
// messages from the caller's stream, or chunks and decisions from the KvSource fetcher.
// Producers (the gRPC reader, the fetcher thread) push; the worker pops, blocking.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "common/rpc/kv_parts.h"
#include "ctxstream/v1/inference.pb.h"

namespace ctx::inference {

struct InboundEvent {
  enum class Kind {
    kPart,         // caller: one KvChunkPart (`part`)
    kReplan,       // caller: a pending KV segment becomes text (`replan`)
    kEndOfStream,  // caller half-closed its side
    kFetched,      // fetcher: whole chunk for segment `segment`, received in `fetch_seconds`
    kTextFrom,     // fetcher: segments >= `segment` go as text; `failure` = fallback
  };
  Kind kind = Kind::kPart;
  ctxstream::v1::KvChunkPart part;
  ctxstream::v1::ContextSegment replan;
  size_t segment = 0;
  rpc::KvChunk chunk;
  double fetch_seconds = 0;
  bool failure = false;
  std::string reason;
};

// Bytes an event holds on behalf of the caller's stream (what inbound flow control bounds).
inline size_t CallerBytes(const InboundEvent& e) {
  return e.kind == InboundEvent::Kind::kPart ? e.part.data().size() : 0;
}

class Inbox {
 public:
  void Push(InboundEvent event) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      caller_bytes_ += CallerBytes(event);
      peak_caller_bytes_ = std::max(peak_caller_bytes_, caller_bytes_);
      events_.push_back(std::move(event));
    }
    cv_.notify_all();
  }
  // Caller KV part bytes queued and not yet popped, now and at most so far.
  size_t caller_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return caller_bytes_;
  }
  size_t peak_caller_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return peak_caller_bytes_;
  }
  // Wakes a blocked Pop so that it re-checks its stop condition (cancellation).
  void Notify() { cv_.notify_all(); }

  // Next event, or nullopt once `stop()` is true. Adds the time spent blocked to *waited.
  std::optional<InboundEvent> Pop(const std::function<bool()>& stop, double* waited) {
    const auto t0 = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(mu_);
    while (events_.empty() && !stop()) cv_.wait_for(lock, std::chrono::milliseconds(50));
    if (waited) {
      *waited += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    if (events_.empty()) return std::nullopt;
    InboundEvent e = std::move(events_.front());
    events_.pop_front();
    caller_bytes_ -= CallerBytes(e);
    return e;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<InboundEvent> events_;
  size_t caller_bytes_ = 0;
  size_t peak_caller_bytes_ = 0;
};

}  // namespace ctx::inference
