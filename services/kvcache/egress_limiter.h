// EgressLimiter: a token bucket over bytes sent, one per Fetch stream, to emulate a slow link
// honestly. Before a message of n bytes goes out the sender takes n tokens; when the bucket
// is short it waits until the missing tokens have accrued at `bytes_per_second` (never a
// computed sleep for the whole transfer up front). The bucket holds at most `burst_bytes`,
// so an idle stream cannot save up more than one burst.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>

namespace ctx::kvcache {

class EgressLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  // bytes_per_second <= 0: unlimited. The bucket starts full.
  EgressLimiter(double bytes_per_second, double burst_bytes)
      : rate_(bytes_per_second), burst_(burst_bytes), tokens_(burst_bytes), last_(Clock::now()) {}

  bool limited() const { return rate_ > 0; }
  double rate() const { return rate_; }

  // Changes the rate (EgressSchedule). Tokens accrued so far at the old rate are kept (up to
  // the new burst); an unlimited limiter that becomes limited starts with a full bucket.
  void SetRate(double bytes_per_second, double burst_bytes) {
    if (bytes_per_second == rate_ && burst_bytes == burst_) return;
    if (limited()) {
      Refill();
    } else {
      tokens_ = burst_bytes;
    }
    rate_ = bytes_per_second;
    burst_ = burst_bytes;
    tokens_ = std::min(tokens_, burst_);
    last_ = Clock::now();
  }

  // Blocks until `bytes` tokens are available, then takes them. A message larger than the
  // burst is allowed once the bucket is full and drives it negative (debt is paid by waiting
  // before the next message), so the long-run rate never exceeds `bytes_per_second`.
  void Acquire(double bytes) {
    if (!limited()) return;
    Refill();
    const double need = std::min(bytes, burst_);
    if (tokens_ < need) {
      std::this_thread::sleep_for(std::chrono::duration<double>((need - tokens_) / rate_));
      Refill();
    }
    tokens_ -= bytes;
  }

  // Message size that keeps the pacing fine-grained on a slow link (~50 ms of traffic),
  // bounded by `max_part` (the 1 MiB wire limit) and at least 16 KiB.
  size_t PartBytes(size_t max_part) const {
    if (!limited()) return max_part;
    const double part = std::max(16.0 * 1024, rate_ / 20);
    return static_cast<size_t>(std::min(part, static_cast<double>(max_part)));
  }

 private:
  void Refill() {
    const Clock::time_point now = Clock::now();
    tokens_ =
        std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
    last_ = now;
  }

  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point last_;
};

}  // namespace ctx::kvcache
