#include "services/compressor/batching_scorer.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ctx::compressor {

using Clock = std::chrono::steady_clock;

struct BatchingScorer::Request {
  Probs out;             // filled by compute threads, under mu_
  size_t remaining = 0;  // rows not yet scattered
  absl::Status status;   // first forward error, or Unavailable at shutdown
};

BatchingScorer::BatchingScorer(ForwardFn forward, BatchingOptions options)
    : forward_(std::move(forward)), options_(options) {
  const int n = std::max(1, options_.compute_threads);
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { Run(); });
}

BatchingScorer::~BatchingScorer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (Item& it : pending_) {
      it.request->status = absl::UnavailableError("compressor is shutting down");
    }
    pending_.clear();
  }
  work_cv_.notify_all();
  done_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

absl::StatusOr<Probs> BatchingScorer::Score(std::span<const std::vector<int32_t>> seqs,
                                            const CallControl& control) {
  if (seqs.empty()) return Probs{};
  auto req = std::make_shared<Request>();
  req->out.resize(seqs.size());
  req->remaining = seqs.size();
  // Items point at the caller's sequences; compute threads copy them out under mu_ when they
  // take them, so the caller may return (cancel) at any time afterwards.
  std::unique_lock lock(mu_);
  if (stopping_) return absl::UnavailableError("compressor is shutting down");
  const auto now = Clock::now();
  for (size_t i = 0; i < seqs.size(); ++i) pending_.push_back(Item{req, i, &seqs[i], now});
  work_cv_.notify_all();
  while (req->remaining > 0 && req->status.ok()) {
    done_cv_.wait_for(lock, std::chrono::milliseconds(20));
    if (req->remaining == 0 || !req->status.ok()) break;
    const bool cancelled = control.cancelled && control.cancelled();
    const bool expired = std::chrono::system_clock::now() >= control.deadline;
    if (cancelled || expired) {
      std::erase_if(pending_, [&](const Item& it) { return it.request == req; });
      if (cancelled) return absl::CancelledError("the client cancelled the request");
      return absl::DeadlineExceededError(
          absl::StrCat("deadline exceeded while ", req->remaining, " of ", seqs.size(),
                       " chunks waited for the classifier; raise the client deadline"));
    }
  }
  if (!req->status.ok()) return req->status;
  return std::move(req->out);
}

void BatchingScorer::Run() {
  const size_t max_batch = static_cast<size_t>(std::max(1, options_.max_batch_chunks));
  std::unique_lock lock(mu_);
  while (true) {
    work_cv_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
    if (stopping_) return;
    // Give concurrent requests a short window to join this forward (measured from the oldest
    // pending chunk: chunks that queued up during the previous forward go at once).
    while (!stopping_ && !pending_.empty() && pending_.size() < max_batch) {
      const auto until = pending_.front().enqueued + options_.batch_window;
      if (Clock::now() >= until) break;
      work_cv_.wait_until(lock, until);
    }
    if (stopping_) return;
    if (pending_.empty()) continue;  // taken by another compute thread or cancelled

    const size_t n = std::min(max_batch, pending_.size());
    std::vector<Item> items(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(n));
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(n));
    std::vector<std::vector<int32_t>> batch;
    batch.reserve(n);
    for (const Item& it : items) batch.push_back(*it.seq);
    if (!pending_.empty()) work_cv_.notify_one();  // another idle compute thread may take them

    lock.unlock();
    absl::StatusOr<Probs> probs = forward_(batch);
    if (probs.ok() && probs->size() != n) {
      probs = absl::InternalError(
          absl::StrCat("classifier returned ", probs->size(), " rows for ", n, " chunks"));
    }
    lock.lock();

    ++forwards_;
    chunks_scored_ += static_cast<int64_t>(n);
    max_in_forward_ = std::max(max_in_forward_, static_cast<int64_t>(n));
    for (size_t k = 0; k < n; ++k) {
      Request& r = *items[k].request;
      if (!probs.ok()) {
        if (r.status.ok()) r.status = probs.status();
        continue;
      }
      r.out[items[k].index] = std::move((*probs)[k]);
      --r.remaining;
    }
    done_cv_.notify_all();
  }
}

int64_t BatchingScorer::forwards() const {
  std::lock_guard lock(mu_);
  return forwards_;
}

int64_t BatchingScorer::chunks_scored() const {
  std::lock_guard lock(mu_);
  return chunks_scored_;
}

int64_t BatchingScorer::max_chunks_in_one_forward() const {
  std::lock_guard lock(mu_);
  return max_in_forward_;
}

size_t BatchingScorer::pending_chunks() const {
  std::lock_guard lock(mu_);
  return pending_.size();
}

}  // namespace ctx::compressor
