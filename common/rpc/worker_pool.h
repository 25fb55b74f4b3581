// A fixed pool of threads for compute (model forward passes, encoding) so that gRPC's
// callback threads never block. Tasks queue FIFO; the queue is bounded so overload turns
// into RESOURCE_EXHAUSTED at submission instead of unbounded memory.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace ctx::rpc {

class WorkerPool {
 public:
  WorkerPool(size_t threads, size_t max_queued);
  ~WorkerPool();  // finishes queued tasks, then joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`; ResourceExhausted when max_queued tasks are already waiting.
  absl::Status Submit(std::function<void()> task);

  size_t queued() const;
  size_t busy() const;

 private:
  void Run();

  const size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  size_t busy_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace ctx::rpc
