#include "common/rpc/worker_pool.h"

#include "absl/strings/str_cat.h"

namespace ctx::rpc {

WorkerPool::WorkerPool(size_t threads, size_t max_queued) : max_queued_(max_queued) {
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

absl::Status WorkerPool::Submit(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= max_queued_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("server busy: ", queue_.size(), " requests already queued; retry later"));
    }
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return absl::OkStatus();
}

size_t WorkerPool::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

size_t WorkerPool::busy() const {
  std::lock_guard lock(mu_);
  return busy_;
}

void WorkerPool::Run() {
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
      ++busy_;
    }
    task();
    std::lock_guard lock(mu_);
    --busy_;
  }
}

}  // namespace ctx::rpc
